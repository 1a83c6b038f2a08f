// The program's policy lookup (tuple-space search over a policy map: one exact lookup per
// prefix length, lengths from the LENGTHS entries, port lengths from the class's ADDR
// entry) against a plain longest-prefix match over the same entries, for random policies
// and packets through bpf_prog_test_run. The policies use many distinct prefix lengths
// (IPv6 tables span several LENGTHS entries), nested prefixes, missing catch-alls (a
// miss drops), and both directions. Seeded, so failures reproduce.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <set>

#include "maps/policy_map.h"
#include "tests/bpf/cgroup_util.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

constexpr uint32_t kPersona = 21;
constexpr uint32_t kClasses = 6;

struct Probe {
    Prog prog;
    bool v6;
    std::array<uint8_t, 16> peer{};
    uint16_t dport;
};

bool prefix_contains(const uint8_t* prefix, unsigned len, const uint8_t* addr) {
    for (unsigned bit = 0; bit < len; ++bit) {
        const uint8_t m = static_cast<uint8_t>(0x80u >> (bit % 8));
        if ((prefix[bit / 8] & m) != (addr[bit / 8] & m)) return false;
    }
    return true;
}

// The reference: longest matching ADDR entry, then the longest matching PORT block of its
// class in the TCP bucket. nullopt when either misses.
struct Expected {
    bool pass;
    unsigned addr_rank;  // 0-based rank of the matched ADDR length, longest first
};
std::optional<Expected> reference(const std::vector<PolicyEntry>& entries, const Probe& p) {
    const uint8_t dir = p.prog == Prog::Egress ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS;
    const uint8_t fam = p.v6 ? PBPF_FAMILY_IPV6 : PBPF_FAMILY_IPV4;
    const PolicyEntry* addr = nullptr;
    std::set<unsigned, std::greater<>> lengths;
    for (const auto& e : entries) {
        if (e.key.kind != PBPF_ENTRY_ADDR || e.key.dir != dir || e.key.family_or_proto != fam)
            continue;
        const unsigned len = e.key.prefixlen - PBPF_POLICY_HEADER_BITS;
        lengths.insert(len);
        if (prefix_contains(e.key.data, len, p.peer.data()) &&
            (!addr || e.key.prefixlen > addr->key.prefixlen))
            addr = &e;
    }
    if (!addr) return std::nullopt;
    const unsigned addr_len = addr->key.prefixlen - PBPF_POLICY_HEADER_BITS;
    const unsigned rank =
        static_cast<unsigned>(std::distance(lengths.begin(), lengths.find(addr_len)));
    const uint8_t cls[4] = {static_cast<uint8_t>(addr->value.class_id >> 24),
                            static_cast<uint8_t>(addr->value.class_id >> 16),
                            static_cast<uint8_t>(addr->value.class_id >> 8),
                            static_cast<uint8_t>(addr->value.class_id)};
    const uint8_t want[6] = {cls[0],
                             cls[1],
                             cls[2],
                             cls[3],
                             static_cast<uint8_t>(p.dport >> 8),
                             static_cast<uint8_t>(p.dport)};
    const PolicyEntry* port = nullptr;
    for (const auto& e : entries) {
        if (e.key.kind != PBPF_ENTRY_PORT || e.key.family_or_proto != PBPF_PROTO_TCP) continue;
        const unsigned len = e.key.prefixlen - PBPF_POLICY_HEADER_BITS;  // class + port bits
        if (prefix_contains(e.key.data, len, want) &&
            (!port || e.key.prefixlen > port->key.prefixlen))
            port = &e;
    }
    if (!port) return std::nullopt;
    return Expected{port->value.verdict == PBPF_VERDICT_ALLOW, rank};
}

struct RandomPolicy {
    std::vector<PolicyEntry> entries;
    std::vector<std::array<uint8_t, 16>> seeds4, seeds6;  // addresses prefixes nest around
    std::vector<uint16_t> ports;                          // ports the blocks are cut around
};

std::array<uint8_t, 16> perturb(std::mt19937& rng, std::array<uint8_t, 16> a, unsigned bits) {
    // Flip one random bit of the first `bits` with probability 1/2.
    if (bits > 0 && rng() % 2 == 0) {
        const unsigned b = rng() % bits;
        a[b / 8] ^= static_cast<uint8_t>(0x80u >> (b % 8));
    }
    return a;
}

RandomPolicy random_policy(std::mt19937& rng) {
    RandomPolicy rp;
    for (int i = 0; i < 3; ++i) {
        std::array<uint8_t, 16> a4{}, a6{};
        for (int b = 0; b < 4; ++b) a4[b] = static_cast<uint8_t>(rng());
        for (int b = 0; b < 16; ++b) a6[b] = static_cast<uint8_t>(rng());
        rp.seeds4.push_back(a4);
        rp.seeds6.push_back(a6);
    }
    for (int i = 0; i < 6; ++i) rp.ports.push_back(static_cast<uint16_t>(rng()));
    rp.ports.push_back(0);
    rp.ports.push_back(65535);

    std::vector<PolicyEntry> all;
    for (auto dir : {PBPF_DIR_INGRESS, PBPF_DIR_EGRESS}) {
        for (bool v6 : {false, true}) {
            const unsigned max_len = v6 ? 128 : 32;
            // A random subset of lengths: up to 40 for IPv6 (more than three LENGTHS
            // entries hold), up to 20 for IPv4.
            std::vector<unsigned> lens;
            const unsigned n_lens = 1 + rng() % (v6 ? 40 : 20);
            for (unsigned i = 0; i < n_lens; ++i) lens.push_back(rng() % (max_len + 1));
            if (rng() % 2) lens.push_back(0);  // sometimes a catch-all address
            const auto& seeds = v6 ? rp.seeds6 : rp.seeds4;
            for (int i = 0; i < 60; ++i) {
                const unsigned len = lens[rng() % lens.size()];
                const auto addr = perturb(rng, seeds[rng() % seeds.size()], len);
                all.push_back(make_addr_entry(dir, v6 ? PBPF_FAMILY_IPV6 : PBPF_FAMILY_IPV4,
                                              addr.data(), len, 1 + rng() % kClasses));
            }
        }
    }
    for (uint32_t cls = 1; cls <= kClasses; ++cls) {
        std::vector<unsigned> lens;
        for (unsigned i = 0, n = 1 + rng() % 6; i < n; ++i) lens.push_back(1 + rng() % 16);
        for (int i = 0; i < 12; ++i) {
            const unsigned len = lens[rng() % lens.size()];
            const uint16_t port = rp.ports[rng() % rp.ports.size()];
            all.push_back(make_port_entry(
                cls, PBPF_PROTO_TCP, static_cast<uint16_t>(port ^ (rng() % 4)), len,
                rng() % 2 ? PBPF_VERDICT_ALLOW : PBPF_VERDICT_DENY, 1 + rng() % 50, false));
        }
        if (rng() % 5 != 0)  // usually a catch-all; without one, a port miss drops
            all.push_back(make_port_entry(cls, PBPF_PROTO_TCP, 0, 0,
                                          rng() % 2 ? PBPF_VERDICT_ALLOW : PBPF_VERDICT_DENY, 0,
                                          false));
    }
    // One entry per key (the first generated wins), canonical order.
    std::sort(all.begin(), all.end());
    for (const auto& e : all) {
        if (!rp.entries.empty() && std::memcmp(&rp.entries.back().key, &e.key, sizeof e.key) == 0)
            continue;
        rp.entries.push_back(e);
    }
    return rp;
}

Probe random_probe(std::mt19937& rng, const RandomPolicy& rp) {
    Probe p;
    p.prog = rng() % 2 ? Prog::Egress : Prog::Ingress;
    p.v6 = rng() % 2;
    const auto& seeds = p.v6 ? rp.seeds6 : rp.seeds4;
    if (rng() % 8 == 0) {
        for (int b = 0; b < (p.v6 ? 16 : 4); ++b) p.peer[b] = static_cast<uint8_t>(rng());
    } else {
        p.peer = perturb(rng, seeds[rng() % seeds.size()], p.v6 ? 128 : 32);
        p.peer = perturb(rng, p.peer, p.v6 ? 128 : 32);
    }
    const uint16_t base = rp.ports[rng() % rp.ports.size()];
    p.dport = rng() % 4 == 0 ? static_cast<uint16_t>(rng())
                             : static_cast<uint16_t>(base ^ (1u << (rng() % 16)) * (rng() % 2));
    return p;
}

std::string text(const Probe& p) {
    char addr[INET6_ADDRSTRLEN];
    inet_ntop(p.v6 ? AF_INET6 : AF_INET, p.peer.data(), addr, sizeof addr);
    return std::string(prog_name(p.prog)) + " peer " + addr + " port " + std::to_string(p.dport);
}

Bytes frame(const Probe& p, uint16_t sport) {
    char peer[INET6_ADDRSTRLEN];
    inet_ntop(p.v6 ? AF_INET6 : AF_INET, p.peer.data(), peer, sizeof peer);
    const std::string me = p.v6 ? "fd00::10" : "192.168.1.10";
    Packet pkt;
    pkt.eth();
    const bool egress = p.prog == Prog::Egress;
    if (p.v6)
        pkt.ipv6(egress ? me : peer, egress ? peer : me);
    else
        pkt.ipv4(egress ? me : peer, egress ? peer : me);
    // Egress: the peer's port is the destination. Ingress: the workload's own port is.
    pkt.tcp(sport, p.dport).payload(8);
    return pkt.bytes();
}

TEST(PolicyLookup, TupleSpaceSearchAgreesWithLongestPrefixMatch) {
    PBPF_REQUIRE_ROOT();
    auto skel = load_persona_skeleton();
    if (!skel) PBPF_KERNEL_UNAVAILABLE(skel.error().what());
    auto self = self_cgroup_path();
    auto mount = cgroup2_mount();
    ASSERT_TRUE(self && mount);
    auto id = cgroup_id(*mount + (*self == "/" ? "" : *self));
    ASSERT_TRUE(id) << id.error().what();
    ASSERT_TRUE(bind_cgroup(skel->get(), *id, kPersona));

    size_t passed = 0, dropped = 0, missed = 0, deep_v6 = 0;
    for (uint32_t seed : {1u, 2u, 3u, 4u}) {
        std::mt19937 rng(seed);
        const RandomPolicy rp = random_policy(rng);
        auto installed = install_policy(skel->get(), kPersona, rp.entries, "random");
        ASSERT_TRUE(installed) << installed.error().what();
        ASSERT_TRUE(bump_policy_epoch(skel->get()));
        for (int i = 0; i < 1500; ++i) {
            const Probe p = random_probe(rng, rp);
            // A fresh source port each time: every probe is a new flow, decided by the map.
            const uint16_t sport = static_cast<uint16_t>(1024 + (seed * 1500 + i) % 60000);
            auto run = run_prog(skel->get(), p.prog, frame(p, sport));
            ASSERT_TRUE(run) << run.error().what();
            const auto want = reference(rp.entries, p);
            const bool want_pass = want && want->pass;
            ASSERT_EQ(run->retval, want_pass ? 1u : 0u)
                << "seed " << seed << " probe " << i << ": " << text(p) << ": program "
                << (run->retval ? "passed" : "dropped") << ", longest-prefix match says "
                << (!want        ? "miss"
                    : want->pass ? "allow"
                                 : "deny");
            (want_pass ? passed : dropped)++;
            missed += !want;
            deep_v6 += want && p.v6 && want->addr_rank >= PBPF_POLICY_LENGTHS_PER_ENTRY;
        }
    }
    // The probes reached every outcome, and IPv6 matches past the first LENGTHS entry.
    EXPECT_GT(passed, 500u);
    EXPECT_GT(dropped, 500u);
    EXPECT_GT(missed, 50u);
    EXPECT_GT(deep_v6, 20u);
    ASSERT_TRUE(unbind_cgroup(skel->get(), *id));
}

}  // namespace
}  // namespace pbpf::test
