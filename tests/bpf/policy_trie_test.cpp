// Tests of the policy-trie writer and reader (maps/policy_trie.*) and of PolicyEntry keys
// (maps/policy_entry.cpp) against a real kernel LPM trie.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "maps/policy_trie.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

TEST(PolicyEntryKeys, AddrKeyIsZeroedMaskedAndPrefixed) {
    const auto addr = v4("10.1.2.3");
    const PolicyEntry e = make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, addr.data(), 12, 9);
    EXPECT_EQ(e.key.prefixlen, 32u + 12);
    EXPECT_EQ(e.key.kind, PBPF_ENTRY_ADDR);
    EXPECT_EQ(e.key.dir, PBPF_DIR_EGRESS);
    EXPECT_EQ(e.key.family_or_proto, PBPF_FAMILY_IPV4);
    EXPECT_EQ(e.key.pad0, 0);
    const uint8_t want[16] = {10, 0, 0, 0};  // 10.1.x.x/12 -> 10.0.0.0
    EXPECT_EQ(std::memcmp(e.key.data, want, 16), 0);
    EXPECT_EQ(e.value.class_id, 9u);
    // Same prefix written differently: the same entry.
    EXPECT_EQ(
        e, make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, v4("10.15.255.255").data(), 12, 9));

    const PolicyEntry six =
        make_addr_entry(PBPF_DIR_INGRESS, PBPF_FAMILY_IPV6, v6("2001:db8:ffff::1").data(), 33, 1);
    EXPECT_EQ(six.key.prefixlen, 32u + 33);
    const auto masked = v6("2001:db8:8000::");
    EXPECT_EQ(std::memcmp(six.key.data, masked.data(), 16), 0);
}

TEST(PolicyEntryKeys, PortKeyIsBigEndianAndMasked) {
    const PolicyEntry e =
        make_port_entry(0x01020304, PBPF_PROTO_UDP, 8007, 12, PBPF_VERDICT_DENY, 5, true);
    EXPECT_EQ(e.key.prefixlen, 32u + 32 + 12);
    EXPECT_EQ(e.key.kind, PBPF_ENTRY_PORT);
    EXPECT_EQ(e.key.dir, 0);
    EXPECT_EQ(e.key.family_or_proto, PBPF_PROTO_UDP);
    const uint8_t want[16] = {1, 2, 3, 4, 0x1f, 0x40};  // 8007 & ~0xf = 8000 = 0x1f40
    EXPECT_EQ(std::memcmp(e.key.data, want, 16), 0);
    EXPECT_EQ(e.value.verdict, PBPF_VERDICT_DENY);
    EXPECT_EQ(e.value.rule_id, 5u);
    EXPECT_EQ(e.value.flags, PBPF_POLICY_F_AUDIT);
    EXPECT_EQ(describe(e), "PORT class 16909060 udp 8000/12 (8000-8015) -> deny rule 5 audit");
}

TEST(PolicyEntryKeys, OrderIsTotalAndByContent) {
    auto entries = web_policy(false);
    auto shuffled = entries;
    std::reverse(shuffled.begin(), shuffled.end());
    std::sort(shuffled.begin(), shuffled.end());
    EXPECT_EQ(shuffled, entries);
    // Copies compare equal (content, not addresses).
    const PolicyEntry a = entries[3];
    const PolicyEntry b = entries[3];
    EXPECT_EQ(a, b);
    EXPECT_FALSE(a < b);
    for (size_t i = 1; i < entries.size(); ++i) EXPECT_TRUE(entries[i - 1] < entries[i]);
}

TEST(PolicyFits, RefusesBeforeTouchingTheKernel) {
    PersonaImage image;
    image.name = "web";
    image.entries = web_policy(false);
    EXPECT_TRUE(check_policy_fits(image, static_cast<uint32_t>(image.entries.size())));
    auto r = check_policy_fits(image, 10);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().err, E2BIG);
    EXPECT_EQ(r.error().message, "persona 'web' needs " + std::to_string(image.entries.size()) +
                                     " policy entries, limit is 10");
}

class PolicyTrie : public ::testing::Test {
  protected:
    void SetUp() override {
        PBPF_REQUIRE_ROOT();
        auto t = create_policy_trie();
        if (!t) PBPF_KERNEL_UNAVAILABLE(t.error().what());
        trie_ = std::move(t.value());
    }
    Fd trie_;
};

TEST_F(PolicyTrie, WriteThenReadRoundTrips) {
    PersonaImage image;
    image.name = "web";
    image.entries = web_policy(true);
    ASSERT_TRUE(write_policy(trie_.get(), image));
    auto back = read_policy(trie_.get());
    ASSERT_TRUE(back) << back.error().what();
    ASSERT_EQ(back->size(), image.entries.size());
    for (size_t i = 0; i < back->size(); ++i) {
        EXPECT_EQ((*back)[i], image.entries[i])
            << "got " << describe((*back)[i]) << "\nwant " << describe(image.entries[i]);
    }
}

TEST_F(PolicyTrie, LongestPrefixLookupFindsPortBlock) {
    PersonaImage image;
    image.name = "ports";
    image.entries = {make_port_entry(3, PBPF_PROTO_TCP, 0, 0, PBPF_VERDICT_DENY, 0, false),
                     make_port_entry(3, PBPF_PROTO_TCP, 8000, 12, PBPF_VERDICT_ALLOW, 2, false)};
    ASSERT_TRUE(write_policy(trie_.get(), image));
    for (auto [port, verdict] : {std::pair{7999, PBPF_VERDICT_DENY},
                                 {8000, PBPF_VERDICT_ALLOW},
                                 {8015, PBPF_VERDICT_ALLOW},
                                 {8016, PBPF_VERDICT_DENY}}) {
        PolicyEntry probe = make_port_entry(3, PBPF_PROTO_TCP, static_cast<uint16_t>(port), 16,
                                            PBPF_VERDICT_ALLOW, 0, false);
        pbpf_policy_value v{};
        ASSERT_EQ(bpf_map_lookup_elem(trie_.get(), &probe.key, &v), 0) << port;
        EXPECT_EQ(v.verdict, verdict) << "port " << port;
    }
}

TEST_F(PolicyTrie, FullTrieErrorNamesEntryAndLimit) {
    auto small = create_policy_trie(4, "pbpf_tiny");
    ASSERT_TRUE(small) << small.error().what();
    PersonaImage image;
    image.name = "big";
    image.entries = web_policy(false);
    auto r = write_policy(small->get(), image);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().err, E2BIG);
    EXPECT_EQ(r.error().what(), "persona 'big' needs " + std::to_string(image.entries.size()) +
                                    " policy entries, limit is 4: " + std::strerror(E2BIG));

    // The kernel's own refusal (entries beyond max_entries) names the entry that failed.
    image.entries.resize(4);
    ASSERT_TRUE(write_policy(small->get(), image));
    PersonaImage more;
    more.name = "more";
    more.entries = {make_port_entry(99, PBPF_PROTO_TCP, 1, 16, PBPF_VERDICT_ALLOW, 1, false)};
    auto full = write_policy(small->get(), more);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().err, ENOSPC) << full.error().what();
    EXPECT_EQ(full.error().message,
              "persona 'more': write policy entry 1 of 1 (PORT class 99 tcp 1/16 (1-1) -> allow "
              "rule 1) (policy trie limit is 4 entries)");
}

TEST_F(PolicyTrie, WriteToBadFdFails) {
    PersonaImage image;
    image.name = "x";
    image.entries = web_policy(false);
    auto r = write_policy(-1, image);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().err, 0) << r.error().what();
    EXPECT_NE(r.error().message.find("fd -1"), std::string::npos) << r.error().what();
}

}  // namespace
}  // namespace pbpf::test
