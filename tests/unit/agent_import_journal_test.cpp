// The undo journal of a migration import (agent/import_journal.h): a round trip keeps
// everything an undo needs, a truncated or foreign file is refused with a message saying
// what is wrong, flows of another map layout are left out, and the file on disk exists
// complete or not at all.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "agent/import_journal.h"
#include "tests/unit/temp_dir.h"

namespace pbpf::agent {
namespace {

ImportJournal cgroup_journal(size_t flows) {
    ImportJournal j;
    j.persona = "web";
    j.version = 3;
    j.persona_created = true;
    j.version_added = false;
    j.kind = "cgroup";
    j.rebinds = true;
    j.cgroup = "/pbpf/w";
    j.cgroup_id = 4242;
    j.previous = BindingRecord{4242, "/pbpf/w", "other", 1796000000, "rule", 7};
    j.from = "peer host-a (10.0.0.1:40112)";
    j.started_at = 1796000100;
    for (size_t i = 0; i < flows; ++i) {
        ImportJournal::Flow f;
        f.key.workload = 4242;
        f.key.family = PBPF_FAMILY_IPV4;
        f.key.proto = 6;
        f.key.local_port = static_cast<__be16>(i);
        f.key.remote[0] = static_cast<uint8_t>(i);
        f.created_ns = 1000 + i;
        if (i % 2) {
            f.before.emplace();
            f.before->packets[0] = i;
            f.before->persona_id = 9;
        }
        j.flows.push_back(f);
    }
    return j;
}

TEST(ImportJournal, RoundTripKeepsWhatAnUndoNeeds) {
    const ImportJournal j = cgroup_journal(5);
    auto back = decode_import_journal(encode_import_journal(j));
    ASSERT_TRUE(back) << back.error().what();
    EXPECT_EQ(back->persona, "web");
    EXPECT_EQ(back->version, 3);
    EXPECT_TRUE(back->persona_created);
    EXPECT_FALSE(back->version_added);
    EXPECT_TRUE(back->rebinds);
    EXPECT_EQ(back->cgroup, "/pbpf/w");
    EXPECT_EQ(back->cgroup_id, 4242u);
    ASSERT_TRUE(back->previous.has_value());
    EXPECT_EQ(back->previous->persona, "other");
    EXPECT_EQ(back->previous->bound_at, 1796000000);
    EXPECT_EQ(back->previous->origin, "rule");
    EXPECT_EQ(back->previous->rule_id, 7);
    EXPECT_EQ(back->from, j.from);
    EXPECT_EQ(back->started_at, j.started_at);
    EXPECT_TRUE(back->flows_readable);
    ASSERT_EQ(back->flows.size(), 5u);
    for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(std::memcmp(&back->flows[i].key, &j.flows[i].key, sizeof(pbpf_ct_key)), 0) << i;
        EXPECT_EQ(back->flows[i].created_ns, 1000 + i);
        ASSERT_EQ(back->flows[i].before.has_value(), j.flows[i].before.has_value()) << i;
        if (j.flows[i].before) {
            EXPECT_EQ(
                std::memcmp(&*back->flows[i].before, &*j.flows[i].before, sizeof(pbpf_ct_value)), 0)
                << i;
        }
    }
    EXPECT_EQ(back->describe(), "persona web v3 into cgroup /pbpf/w");
}

TEST(ImportJournal, InterfaceRoundTrip) {
    ImportJournal j;
    j.persona = "vm";
    j.version = 1;
    j.kind = "interface";
    j.ifname = "tap0";
    j.netns = "hostb";
    j.netns_cookie = 99;
    j.ifindex = 12;
    j.previous_if = IfBindingRecord{"hostb", "tap0", 11, 99, "old", 5, "api", 0};
    auto back = decode_import_journal(encode_import_journal(j));
    ASSERT_TRUE(back) << back.error().what();
    EXPECT_EQ(back->kind, "interface");
    EXPECT_EQ(back->ifname, "tap0");
    EXPECT_EQ(back->netns, "hostb");
    EXPECT_EQ(back->netns_cookie, 99u);
    EXPECT_EQ(back->ifindex, 12u);
    ASSERT_TRUE(back->previous_if.has_value());
    EXPECT_EQ(back->previous_if->persona, "old");
    EXPECT_EQ(back->previous_if->ifindex, 11u);
    EXPECT_FALSE(back->previous.has_value());
    EXPECT_TRUE(back->flows.empty());
    EXPECT_EQ(back->describe(), "persona vm v1 into interface tap0 in netns hostb");
}

TEST(ImportJournal, RefusesTruncatedAndForeignFiles) {
    const std::string bytes = encode_import_journal(cgroup_journal(3));
    // Every proper prefix is refused (a file cut anywhere), with what is wrong.
    for (size_t n = 0; n < bytes.size(); ++n) {
        auto r = decode_import_journal(std::string_view(bytes).substr(0, n));
        ASSERT_FALSE(r) << "a journal cut at " << n << " of " << bytes.size() << " was accepted";
        EXPECT_EQ(r.error().message.rfind("import journal: ", 0), 0u) << r.error().message;
    }
    auto extra = decode_import_journal(bytes + "x");
    ASSERT_FALSE(extra);
    EXPECT_NE(extra.error().message.find("end marker"), std::string::npos) << extra.error().message;
    auto foreign = decode_import_journal("SQLite format 3\0");
    ASSERT_FALSE(foreign);
    EXPECT_NE(foreign.error().message.find("not a personabpf import journal"), std::string::npos)
        << foreign.error().message;
    // A header that is JSON but misses a member names it.
    std::string broken = bytes;
    const size_t at = broken.find("\"rebinds\"");
    ASSERT_NE(at, std::string::npos);
    broken.replace(at, 9, "\"rebindz\"");
    auto r = decode_import_journal(broken);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("rebinds"), std::string::npos) << r.error().message;
}

TEST(ImportJournal, FlowsOfAnotherLayoutAreLeftOut) {
    std::string bytes = encode_import_journal(cgroup_journal(2));
    // As another release would have written it: a key of another size.
    const std::string from = "\"key_size\":" + std::to_string(sizeof(pbpf_ct_key));
    const size_t at = bytes.find(from);
    ASSERT_NE(at, std::string::npos);
    // Same length, so that the header's size prefix still holds: 56 -> 57 etc.
    std::string to = "\"key_size\":" + std::to_string(sizeof(pbpf_ct_key) + 1);
    ASSERT_EQ(to.size(), from.size());
    bytes.replace(at, from.size(), to);
    // The flows as that layout would have them: one byte more per key.
    const ImportJournal j = cgroup_journal(2);
    // Per flow: key, created_ns, has_before, and `before` for the second one.
    const size_t flows_at = bytes.size() - 4 /* "end\n" */ -
                            (2 * (sizeof(pbpf_ct_key) + 8 + 1) + sizeof(pbpf_ct_value));
    std::string rewritten = bytes.substr(0, flows_at);
    for (const auto& f : j.flows) {
        rewritten.append(reinterpret_cast<const char*>(&f.key), sizeof f.key);
        rewritten.push_back('\0');  // the longer key's extra byte
        rewritten.append(reinterpret_cast<const char*>(&f.created_ns), sizeof f.created_ns);
        rewritten.push_back(f.before ? 1 : 0);
        if (f.before) rewritten.append(reinterpret_cast<const char*>(&*f.before), sizeof *f.before);
    }
    rewritten += "end\n";
    auto back = decode_import_journal(rewritten);
    ASSERT_TRUE(back) << back.error().what();
    EXPECT_FALSE(back->flows_readable);
    EXPECT_TRUE(back->flows.empty());
    EXPECT_EQ(back->persona, "web") << "the rest of the undo is still there";
}

class ImportJournalFile : public test::TempDirTest {};

TEST_F(ImportJournalFile, WriteReadRemove) {
    const std::string path = dir_ + "/import.journal";
    auto none = read_import_journal(path);
    ASSERT_TRUE(none) << none.error().what();
    EXPECT_FALSE(none->has_value());

    ASSERT_TRUE(write_import_journal(path, cgroup_journal(4)));
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    auto got = read_import_journal(path);
    ASSERT_TRUE(got) << got.error().what();
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ((*got)->flows.size(), 4u);

    ASSERT_TRUE(remove_import_journal(path));
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_TRUE(remove_import_journal(path)) << "removing no journal is no error";
}

TEST_F(ImportJournalFile, LeftoverTemporaryFileMeansNothingToUndo) {
    const std::string path = dir_ + "/import.journal";
    write("import.journal.tmp", "personabpf-import-journal 1\n\x10");  // cut while written
    auto got = read_import_journal(path);
    ASSERT_TRUE(got) << got.error().what();
    EXPECT_FALSE(got->has_value());
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp")) << "the leftover is removed";
}

TEST_F(ImportJournalFile, DamagedJournalIsAnErrorNamingTheFile) {
    const std::string path = write("import.journal", "personabpf-import-journal 1\nxx");
    auto got = read_import_journal(path);
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().message.find(path), std::string::npos) << got.error().message;
    EXPECT_NE(got.error().message.find("truncated"), std::string::npos) << got.error().message;
}

TEST_F(ImportJournalFile, UnwritableDirectoryIsAnError) {
    auto r = write_import_journal(dir_ + "/missing/import.journal", cgroup_journal(1));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what().find("missing/import.journal.tmp"), std::string::npos)
        << r.error().what();
}

}  // namespace
}  // namespace pbpf::agent
