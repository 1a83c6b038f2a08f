// Tests of the policy-map writer and reader (maps/policy_map.*), of the entries it adds
// (LENGTHS lists, port_lengths) and of PolicyEntry keys (maps/policy_entry.cpp), against
// a real kernel hash map.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "maps/policy_map.h"
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
    EXPECT_EQ(e.key.table, 0);
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
    // The entries plus one LENGTHS list per address table (web: egress ipv4 and ipv6).
    const size_t needed = policy_map_size(image);
    EXPECT_EQ(needed, kernel_policy_entries(image).size());
    EXPECT_GT(needed, image.entries.size());
    EXPECT_TRUE(check_policy_fits(image, static_cast<uint32_t>(needed)));
    auto r = check_policy_fits(image, static_cast<uint32_t>(needed - 1));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().err, E2BIG);
    EXPECT_EQ(r.error().message, "persona 'web' needs " + std::to_string(needed) +
                                     " policy entries, limit is " + std::to_string(needed - 1));
}

std::vector<const PolicyEntry*> lengths_entries(const std::vector<PolicyEntry>& entries) {
    std::vector<const PolicyEntry*> out;
    for (const auto& e : entries)
        if (e.key.kind == PBPF_ENTRY_LENGTHS) out.push_back(&e);
    return out;
}

TEST(KernelPolicyEntries, ListTheLengthsOfEachAddressTableLongestFirst) {
    PersonaImage image;
    image.name = "lens";
    uint32_t cls = 1;
    // egress ipv4: /0, /8, /24, /32 (twice: one list entry per length).
    for (auto [addr, len] : {std::pair{"0.0.0.0", 0u},
                             {"10.0.0.0", 8u},
                             {"10.1.2.0", 24u},
                             {"10.1.2.3", 32u},
                             {"10.1.2.4", 32u}})
        image.entries.push_back(
            make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, v4(addr).data(), len, cls++));
    // ingress ipv6: 14 lengths, more than one LENGTHS entry holds.
    for (unsigned len = 0; len <= 130; len += 10) {
        const unsigned l = std::min(len, 128u);
        image.entries.push_back(make_addr_entry(PBPF_DIR_INGRESS, PBPF_FAMILY_IPV6,
                                                v6("2001:db8::1").data(), l, cls++));
    }
    image.canonicalize();
    const auto all = kernel_policy_entries(image);
    const auto lens = lengths_entries(all);
    ASSERT_EQ(lens.size(), 3u);
    std::vector<std::string> got;
    for (const auto* e : lens) got.push_back(describe(*e));
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<std::string>{
                       "LENGTHS ADDR egress ipv4 chunk 0: 32 24 8 0",
                       "LENGTHS ADDR ingress ipv6 chunk 0: 128 120 110 100 90 80 70 60 50 40 30 20",
                       "LENGTHS ADDR ingress ipv6 chunk 1: 10 0"}));
    for (const auto* e : lens) {
        EXPECT_EQ(e->key.prefixlen, 0u);
        EXPECT_EQ(e->key.table, PBPF_ENTRY_ADDR);
    }
    EXPECT_EQ(policy_map_size(image), image.entries.size() + 3);
}

TEST(KernelPolicyEntries, AddrValuesCarryTheirClassPortLengths) {
    PersonaImage image;
    image.name = "ports";
    image.entries = {
        make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, v4("0.0.0.0").data(), 0, 1),
        make_addr_entry(PBPF_DIR_EGRESS, PBPF_FAMILY_IPV4, v4("10.0.0.0").data(), 8, 2),
        make_port_entry(1, PBPF_PROTO_TCP, 0, 0, PBPF_VERDICT_DENY, 0, false),
        make_port_entry(2, PBPF_PROTO_TCP, 0, 0, PBPF_VERDICT_DENY, 0, false),
        make_port_entry(2, PBPF_PROTO_TCP, 80, 16, PBPF_VERDICT_ALLOW, 1, false),
        make_port_entry(2, PBPF_PROTO_UDP, 8000, 12, PBPF_VERDICT_ALLOW, 2, false),
        make_port_entry(2, PBPF_PROTO_UDP, 0, 0, PBPF_VERDICT_DENY, 0, false),
    };
    image.canonicalize();
    for (const auto& e : kernel_policy_entries(image)) {
        if (e.key.kind == PBPF_ENTRY_LENGTHS) continue;  // its value is the list
        if (e.key.kind != PBPF_ENTRY_ADDR) {
            EXPECT_EQ(e.value.port_lengths, 0) << describe(e);
            continue;
        }
        // Class 1 has only its catch-all; class 2 blocks of /16 and /12 (any bucket).
        const uint16_t want = e.value.class_id == 1 ? 0 : (1u << 15 | 1u << 11);
        EXPECT_EQ(e.value.port_lengths, want) << describe(e);
    }
}

class PolicyMap : public ::testing::Test {
  protected:
    void SetUp() override {
        PBPF_REQUIRE_ROOT();
        auto t = create_policy_map(1024);
        if (!t) PBPF_KERNEL_UNAVAILABLE(t.error().what());
        map_ = std::move(t.value());
    }
    Fd map_;
};

size_t count_keys(int fd) {
    size_t n = 0;
    pbpf_policy_key key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        ++n;
        key = next;
        prev = &key;
    }
    return n;
}

TEST_F(PolicyMap, WriteThenReadRoundTrips) {
    PersonaImage image;
    image.name = "web";
    image.entries = web_policy(true);
    ASSERT_TRUE(write_policy(map_.get(), image));
    // The kernel holds the LENGTHS lists too; the reader gives back the image alone.
    EXPECT_EQ(count_keys(map_.get()), policy_map_size(image));
    auto back = read_policy(map_.get());
    ASSERT_TRUE(back) << back.error().what();
    ASSERT_EQ(back->size(), image.entries.size());
    for (size_t i = 0; i < back->size(); ++i) {
        EXPECT_EQ((*back)[i], image.entries[i])
            << "got " << describe((*back)[i]) << "\nwant " << describe(image.entries[i]);
    }
}

TEST_F(PolicyMap, EntriesAreFoundByTheirMaskedKey) {
    PersonaImage image;
    image.name = "ports";
    image.entries = {make_port_entry(3, PBPF_PROTO_TCP, 0, 0, PBPF_VERDICT_DENY, 0, false),
                     make_port_entry(3, PBPF_PROTO_TCP, 8000, 12, PBPF_VERDICT_ALLOW, 2, false)};
    ASSERT_TRUE(write_policy(map_.get(), image));
    // Exact lookups (the program masks the port to each length it tries).
    for (auto [port, len, found] : {std::tuple{8000, 12u, true},
                                    {8007, 12u, true},  // masked by make_port_entry
                                    {8000, 16u, false},
                                    {0, 0u, true}}) {
        PolicyEntry probe = make_port_entry(3, PBPF_PROTO_TCP, static_cast<uint16_t>(port), len,
                                            PBPF_VERDICT_ALLOW, 0, false);
        pbpf_policy_value v{};
        EXPECT_EQ(bpf_map_lookup_elem(map_.get(), &probe.key, &v) == 0, found)
            << port << "/" << len;
    }
}

TEST_F(PolicyMap, BuildSizesTheMapToThePersona) {
    PersonaImage image;
    image.name = "web";
    image.entries = web_policy(false);
    auto map = build_policy_map(image);
    ASSERT_TRUE(map) << map.error().what();
    bpf_map_info info{};
    uint32_t len = sizeof info;
    ASSERT_EQ(bpf_obj_get_info_by_fd(map->get(), &info, &len), 0);
    EXPECT_EQ(info.type, BPF_MAP_TYPE_HASH);
    EXPECT_EQ(info.max_entries, policy_map_size(image));
    EXPECT_EQ(count_keys(map->get()), policy_map_size(image));
    // Over the limit: refused before a map exists.
    auto refused = build_policy_map(image, 4);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().err, E2BIG);
}

TEST_F(PolicyMap, FullMapErrorNamesEntryAndLimit) {
    auto small = create_policy_map(4, "pbpf_tiny");
    ASSERT_TRUE(small) << small.error().what();
    PersonaImage image;
    image.name = "big";
    image.entries = web_policy(false);
    auto r = write_policy(small->get(), image);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().err, E2BIG);
    EXPECT_EQ(r.error().what(), "persona 'big' needs " + std::to_string(policy_map_size(image)) +
                                    " policy entries, limit is 4: " + std::strerror(E2BIG));

    // The kernel's own refusal (entries beyond max_entries) names the entry that failed.
    image.entries.clear();
    for (uint16_t port = 1; port <= 4; ++port)
        image.entries.push_back(
            make_port_entry(7, PBPF_PROTO_TCP, port, 16, PBPF_VERDICT_ALLOW, 1, false));
    ASSERT_TRUE(write_policy(small->get(), image));
    PersonaImage more;
    more.name = "more";
    more.entries = {make_port_entry(99, PBPF_PROTO_TCP, 1, 16, PBPF_VERDICT_ALLOW, 1, false)};
    auto full = write_policy(small->get(), more);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().err, E2BIG) << full.error().what();
    EXPECT_EQ(full.error().message,
              "persona 'more': write policy entry 1 of 1 (PORT class 99 tcp 1/16 (1-1) -> allow "
              "rule 1) (policy map limit is 4 entries)");
}

TEST_F(PolicyMap, WriteToBadFdFails) {
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
