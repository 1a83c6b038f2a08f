// Data sovereignty with real traffic: a small CSV dataset assigns the test's own netns
// addresses to countries (nothing is ever sent to a public address); the persona's country
// list, `unknown`, `exempt`, `on-violation log` and groups decide, for IPv4 and IPv6; the
// drops carry the reason `sovereignty` and the events the remote's country; `geo reload`
// swaps the data with no gap and re-judges tracked flows; a broken file leaves the data in
// force; and the migration gate answers from the persona's list.
#include <unistd.h>

#include <sstream>
#include <utility>
#include <vector>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

class Sovereignty : public IntegrationTest {
  protected:
    void SetUp() override {
        IntegrationTest::SetUp();
        if (HasFatalFailure() || IsSkipped()) return;
        // A third address in the netns that the dataset does not know.
        CommandResult r =
            net_->exec({"ip", "addr", "add", veth_->unused4 + "/29", "dev", veth_->peer_if()});
        ASSERT_EQ(r.exit_code, 0) << r.describe();
        write_dataset(veth_->alt4, veth_->alt6, "US");
        std::string cfg = scratch_.write(
            "agent.toml", "[geo]\ndatabase = \"" + dataset_ + "\"\nhost_country = \"DE\"\n");
        agent_->stop();
        agent_->extra_args = {"--config", cfg};
        ASSERT_TRUE(agent_->start());
    }

    // peer -> DE, `alt` -> `alt_country`; unused4 has no entry. Both CSV forms.
    void write_dataset(const std::string& alt4, const std::string& alt6,
                       const std::string& alt_country) {
        std::ostringstream csv;
        csv << "# integration test dataset\n"
            << veth_->peer4 << "/32,DE\n"
            << alt4 << "," << alt4 << "," << alt_country << "\n"
            << veth_->peer6 << "/128,DE\n"
            << alt6 << "/128," << alt_country << "\n";
        dataset_ = scratch_.write("geo.csv", csv.str());
    }

    std::string sov_persona(const std::string& name, const std::string& sovereignty) {
        return "persona " + name +
               " {\n  security {\n    default ingress deny\n    default egress allow\n  }\n"
               "  sovereignty {\n" +
               sovereignty + "\n  }\n}\n";
    }

    std::vector<json> events() {
        CommandResult r = agent_->cli({"-j", "events", "-n", "1000"});
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        std::vector<json> out;
        std::istringstream in(r.out);
        std::string line;
        while (std::getline(in, line))
            if (!line.empty()) out.push_back(json::parse(line));
        return out;
    }
    // The first flow event to `dst` with reason sovereignty, or null.
    json sovereignty_event(const std::string& dst) {
        json found;
        EXPECT_TRUE(wait_until(
            [&] {
                for (const auto& e : events())
                    if (e.value("reason", "") == "sovereignty" && e.value("dst", "") == dst) {
                        found = e;
                        return true;
                    }
                return false;
            },
            3s))
            << "no sovereignty event for " << dst;
        return found;
    }

    std::string dataset_;
};

TEST_F(Sovereignty, AllowListDropsOtherCountriesAndUnknownButNotExemptIPv4AndIPv6) {
    const auto& v = *veth_;
    apply(*agent_, sov_persona("it-sov", "    allow countries { EU }\n    unknown deny"));
    bind("it-sov", "w");
    const Where w = in("w");

    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).ok()) << "DE is in the EU";
    EXPECT_TRUE(tcp_probe(w, v.peer6, kPortA).ok()) << "DE over IPv6";
    Probe us = tcp_probe(w, v.alt4, kPortA);
    EXPECT_TRUE(us.blocked()) << "US is not: " << us;
    us = tcp_probe(w, v.alt6, kPortA);
    EXPECT_TRUE(us.blocked()) << "US over IPv6: " << us;
    Probe unknown = tcp_probe(w, v.unused4, kPortA);
    EXPECT_TRUE(unknown.blocked()) << "no geo data, `unknown deny`: " << unknown;

    json e = sovereignty_event(v.alt4);
    EXPECT_EQ(e.value("verdict", ""), "dropped") << e.dump();
    EXPECT_EQ(e.value("country", ""), "US") << e.dump();
    e = sovereignty_event(v.unused4);
    EXPECT_EQ(e.value("country", ""), "unknown") << e.dump();
    json rows;
    ASSERT_TRUE(cli_json(*agent_, {"stats", "it-sov"}, &rows));
    ASSERT_FALSE(rows.empty());
    EXPECT_GE(rows[0]["egress"]["dropped_by_reason"].value("sovereignty", 0), 3) << rows.dump(2);
    CommandResult text = agent_->cli({"events", "-n", "1000"});
    EXPECT_NE(text.out.find("sovereignty: destination country US"), std::string::npos) << text.out;

    // Exempt ranges are never checked; `unknown allow` lets unknown through.
    apply(*agent_, sov_persona("it-sov",
                               "    allow countries { EU }\n    unknown allow\n"
                               "    exempt { " +
                                   v.alt4 + ", " + v.alt6 + " }"));
    EXPECT_TRUE(tcp_probe(w, v.alt4, kPortA).ok()) << "exempt";
    EXPECT_TRUE(tcp_probe(w, v.alt6, kPortA).ok()) << "exempt, IPv6";
    EXPECT_TRUE(tcp_probe(w, v.unused4, kPortA).ok()) << "unknown allow";

    // A deny list: only the listed countries violate.
    apply(*agent_, sov_persona("it-sov", "    deny countries { US }\n    unknown allow"));
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).ok());
    EXPECT_TRUE(tcp_probe(w, v.alt4, kPortA).blocked());
}

TEST_F(Sovereignty, LogOnlyPassesAndReportsTheCountry) {
    const auto& v = *veth_;
    apply(*agent_, sov_persona("it-sovlog", "    allow countries { DE }\n    on-violation log"));
    bind("it-sovlog", "w");
    Probe p = tcp_probe(in("w"), v.alt4, kPortA);
    EXPECT_TRUE(p.ok()) << "`on-violation log` never drops: " << p;
    json e = sovereignty_event(v.alt4);
    EXPECT_EQ(e.value("verdict", ""), "allowed") << e.dump();
    EXPECT_EQ(e.value("country", ""), "US") << e.dump();
}

TEST_F(Sovereignty, ReloadSwapsTheDataAndJudgesTrackedFlowsAgainBrokenFileKeepsIt) {
    const auto& v = *veth_;
    apply(*agent_, sov_persona("it-sovr", "    allow countries { DE }\n    unknown deny"));
    bind("it-sovr", "w");
    const Where w = in("w");
    ASSERT_TRUE(tcp_probe(w, v.alt4, kPortA).blocked());

    json info;
    ASSERT_TRUE(cli_json(*agent_, {"geo", "info"}, &info));
    EXPECT_EQ(info["dataset"].value("format", ""), "csv") << info.dump(2);
    EXPECT_EQ(info["dataset"].value("ipv4_prefixes", 0), 2) << info.dump(2);
    EXPECT_EQ(info["dataset"].value("ipv6_prefixes", 0), 2) << info.dump(2);
    const uint64_t generation = info["dataset"].value("generation", uint64_t{0});
    json look;
    ASSERT_TRUE(cli_json(*agent_, {"geo", "lookup", v.alt4}, &look));
    EXPECT_EQ(look.value("country", ""), "US") << look.dump();

    // New data: alt becomes DE, peer becomes FR; the next judgements follow it.
    {
        std::ostringstream csv;
        csv << v.peer4 << "/32,FR\n"
            << v.alt4 << "/32,DE\n"
            << v.peer6 << "/128,FR\n"
            << v.alt6 << "/128,DE\n";
        scratch_.write("geo.csv", csv.str());
    }
    CommandResult r = agent_->cli({"geo", "reload"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    ASSERT_TRUE(cli_json(*agent_, {"geo", "info"}, &info));
    EXPECT_EQ(info["dataset"].value("generation", uint64_t{0}), generation + 1) << info.dump(2);
    EXPECT_TRUE(tcp_probe(w, v.alt4, kPortA).ok()) << "alt is DE now";
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).blocked()) << "peer is FR now";
    ASSERT_TRUE(cli_json(*agent_, {"geo", "lookup", v.peer6}, &look));
    EXPECT_EQ(look.value("country", ""), "FR") << look.dump();

    // A broken file: a clear error naming the line; the data in force stays.
    scratch_.write("geo.csv", v.alt4 + "/32,DE\nnot-an-address,US\n");
    r = agent_->cli({"geo", "reload"});
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.err.find("geo.csv:2"), std::string::npos) << r.describe();
    EXPECT_NE(r.err.find("in force stays"), std::string::npos) << r.describe();
    EXPECT_TRUE(tcp_probe(w, v.alt4, kPortA).ok());
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).blocked());
    ASSERT_TRUE(cli_json(*agent_, {"geo", "info"}, &info));
    EXPECT_EQ(info["dataset"].value("generation", uint64_t{0}), generation + 1);
    EXPECT_TRUE(info.contains("error")) << info.dump(2);
}

TEST_F(Sovereignty, RestartKeepsTheDataAndTrackedFlowsAreJudgedAgainByNewLists) {
    const auto& v = *veth_;
    apply(*agent_, sov_persona("it-sovt", "    allow countries { US, DE }"));
    bind("it-sovt", "w");
    const Where w = in("w");
    // Continuous traffic to US (one socket per port: tracked flows) across kill -9 and
    // start: the pinned trie is adopted, nothing is dropped.
    {
        UdpHammer hammer(w, v.alt4, kPortA, kPortB);
        ASSERT_TRUE(hammer.ok()) << hammer.error();
        agent_->stop(SIGKILL);
        ASSERT_TRUE(agent_->start());
        EXPECT_NE(agent_->log().find("kept the dataset in force"), std::string::npos);
        PersonaStats st;
        ASSERT_TRUE(stats(*agent_, "it-sovt", &st));
        const uint64_t before = st.egress.allowed_packets;
        ASSERT_TRUE(wait_stats(
            *agent_, "it-sovt",
            [before](const PersonaStats& s) { return s.egress.allowed_packets > before + 500; },
            &st));
        HammerCounts c = hammer.stop();
        EXPECT_GT(c.allowed_passed + c.denied_passed, 0u) << c;
        EXPECT_EQ(c.allowed_dropped + c.denied_dropped, 0u) << "a gap across the restart: " << c;
    }
    // The same flows once the list loses US: judged again at their next packet, dropped.
    UdpHammer hammer(w, v.alt4, kPortA, kPortB);
    ASSERT_TRUE(hammer.ok()) << hammer.error();
    json rows;
    ASSERT_TRUE(wait_until(
        [&] {
            return cli_json(*agent_, {"stats", "it-sovt"}, &rows) && !rows.empty() &&
                   rows[0]["egress"].value("allowed_packets", 0) > 0;
        },
        3s));
    apply(*agent_, sov_persona("it-sovt", "    allow countries { DE }"));
    EXPECT_TRUE(wait_until(
        [&] {
            return cli_json(*agent_, {"stats", "it-sovt"}, &rows) && !rows.empty() &&
                   rows[0]["egress"]["dropped_by_reason"].value("sovereignty", 0) > 100;
        },
        5s))
        << rows.dump(2);
    HammerCounts c = hammer.stop();
    EXPECT_GT(c.allowed_dropped, 0u) << "the tracked flow to US passed after US left: " << c;
    EXPECT_TRUE(tcp_probe(w, v.peer4, kPortA).ok());
}

// An upgrade from an agent before the IPv4 table: its trie (both families) is pinned in
// pbpf_geo and pbpf_geo4 is empty. The programs answer IPv4 from the trie meanwhile, and
// the new agent loads the file into a table at start. No gap for tracked flows.
TEST_F(Sovereignty, AnOlderAgentsTrieAnswersUntilTheNewAgentLoadsItsTable) {
    const auto& v = *veth_;
    apply(*agent_, sov_persona("it-sovo", "    allow countries { US, DE }"));
    bind("it-sovo", "w");
    const Where w = in("w");
    UdpHammer hammer(w, v.alt4, kPortA, kPortB);
    ASSERT_TRUE(hammer.ok()) << hammer.error();
    agent_->stop(SIGKILL);

    // What the older agent left: a trie of both families (here the test dataset's IPv4
    // addresses: alt4 in the US, peer4 in DE), made with bpftool, and no table.
    const std::string pins = agent_->paths().bpffs_root;
    const std::string trie = pins + "/it_old_geo_trie";
    auto bpftool = [](std::vector<std::string> args) {
        args.insert(args.begin(), "bpftool");
        CommandResult r = run_command(args);
        EXPECT_EQ(r.exit_code, 0) << r.describe();
    };
    // struct pbpf_geo_key: prefixlen 8 + 32 (LE), family 4, address, padding;
    // struct pbpf_geo_value: country index (LE), its letters.
    auto key = [](const std::string& addr) {
        std::vector<std::string> k = {"key", "40", "0", "0", "0", "4"};
        std::istringstream in(addr);
        for (std::string byte; std::getline(in, byte, '.');) k.push_back(byte);
        while (k.size() < 1 + 24) k.push_back("0");
        return k;
    };
    auto value = [](const std::string& cc) {
        const int index = (cc[0] - 'A') * 26 + (cc[1] - 'A');
        return std::vector<std::string>{"value", std::to_string(index & 0xff),
                                        std::to_string(index >> 8), std::to_string(cc[0]),
                                        std::to_string(cc[1])};
    };
    bpftool({"map", "create", trie, "type", "lpm_trie", "key", "24", "value", "4", "entries", "4",
             "name", "it_old_geo", "flags", "1"});
    for (const auto& [addr, cc] : {std::pair{v.alt4, "US"}, std::pair{v.peer4, "DE"}}) {
        std::vector<std::string> args = {"map", "update", "pinned", trie};
        for (auto part : {key(addr), value(cc)}) args.insert(args.end(), part.begin(), part.end());
        bpftool(args);
    }
    bpftool({"map", "delete", "pinned", pins + "/pbpf_geo4", "key", "0", "0", "0", "0"});
    bpftool({"map", "update", "pinned", pins + "/pbpf_geo", "key", "0", "0", "0", "0", "value",
             "pinned", trie});
    ::unlink(trie.c_str());  // pbpf_geo holds it
    // A new flow to the US is judged by the trie (unknown would be denied), and one to an
    // address without data is not allowed.
    EXPECT_TRUE(tcp_probe(w, v.alt4, kPortA).ok());
    EXPECT_TRUE(tcp_probe(w, v.unused4, kPortA).blocked());

    ASSERT_TRUE(agent_->start());
    EXPECT_NE(agent_->log().find("geo: loaded"), std::string::npos) << agent_->log();
    json info;
    ASSERT_TRUE(cli_json(*agent_, {"geo", "info"}, &info));
    EXPECT_GT(info.value("memory_bytes_ipv4_table", uint64_t{0}), 0u) << info.dump(2);
    json where;
    ASSERT_TRUE(cli_json(*agent_, {"geo", "lookup", v.alt4}, &where));
    EXPECT_EQ(where.value("country", ""), "US") << where.dump();
    EXPECT_TRUE(tcp_probe(w, v.alt4, kPortA).ok());
    EXPECT_TRUE(tcp_probe(w, v.unused4, kPortA).blocked());
    HammerCounts c = hammer.stop();
    EXPECT_GT(c.allowed_passed + c.denied_passed, 0u) << c;
    EXPECT_EQ(c.allowed_dropped + c.denied_dropped, 0u) << "a gap across the upgrade: " << c;
}

TEST_F(Sovereignty, MigrationGateAnswersFromThePersonasCountries) {
    apply(*agent_, sov_persona("it-gate", "    allow countries { EU, CH }"));
    json g;
    ASSERT_TRUE(cli_json(*agent_, {"migrate", "check", "it-gate", "--country", "CH"}, &g));
    EXPECT_TRUE(g.value("allowed", false)) << g.dump();
    ASSERT_TRUE(cli_json(*agent_, {"migrate", "check", "it-gate"}, &g));
    EXPECT_EQ(g.value("country", ""), "DE") << "defaults to [geo] host_country: " << g.dump();
    EXPECT_TRUE(g.value("allowed", false)) << g.dump();
    CommandResult r = agent_->cli({"migrate", "check", "it-gate", "--country", "US"});
    EXPECT_NE(r.exit_code, 0) << "a refused move exits non-zero: " << r.describe();
    EXPECT_NE(r.out.find("US is not among the persona's allowed countries"), std::string::npos)
        << r.describe();
    r = agent_->cli({"migrate", "check", "it-gate", "--country", "XX"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("not an ISO 3166-1"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace pbpf::it
