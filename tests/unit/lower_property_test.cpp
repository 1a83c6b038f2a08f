// The key property of lowering: for random personas and random packets, a longest-prefix
// match over the PolicyEntry list, done exactly as the BPF program does it (ADDR lookup ->
// class, PORT lookup -> verdict and rule), agrees with evaluating the IR rules directly
// (deny beats allow, else the default). Seeded, so failures reproduce.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>

#include "pdl-compiler/compiler.h"
#include "pdl-compiler/values.h"

namespace pdl {
namespace {

struct Packet {
    ir::Direction dir;
    ir::Family family;
    std::array<uint8_t, 16> addr{};
    uint8_t ip_proto;
    uint16_t dport;
};

struct Verdict {
    pbpf_verdict verdict;
    uint32_t rule;
    bool operator==(const Verdict&) const = default;
};

// ---- (b) the meaning of the IR, straight from the language reference ----

bool proto_matches(ir::Proto p, const Packet& pk) {
    switch (p) {
        case ir::Proto::Any:
            return true;
        case ir::Proto::Tcp:
            return pk.ip_proto == 6;
        case ir::Proto::Udp:
            return pk.ip_proto == 17;
        case ir::Proto::Icmp:
            return pk.family == ir::Family::V4 && pk.ip_proto == 1;
        case ir::Proto::Icmpv6:
            return pk.family == ir::Family::V6 && pk.ip_proto == 58;
    }
    return false;
}

bool rule_matches(const ir::Rule& r, const Packet& pk) {
    if (r.direction != pk.dir || !proto_matches(r.proto, pk)) return false;
    if (!r.ports.empty()) {
        bool in = false;
        for (const auto& pr : r.ports) in = in || (pk.dport >= pr.lo && pk.dport <= pr.hi);
        if (!in) return false;
    }
    if (r.peers.empty()) return true;
    ir::Cidr host{pk.family, pk.addr, static_cast<uint8_t>(pk.family == ir::Family::V4 ? 32 : 128)};
    for (const auto& c : r.peers)
        if (cidr_contains(c, host)) return true;
    return false;
}

Verdict eval_ir(const ir::Persona& p, const Packet& pk) {
    uint32_t deny = 0, allow = 0;
    for (const auto& r : p.rules) {
        if (!rule_matches(r, pk)) continue;
        uint32_t& best = r.action == ir::Action::Deny ? deny : allow;
        if (best == 0 || r.id < best) best = r.id;
    }
    if (deny) return {PBPF_VERDICT_DENY, deny};
    if (allow) return {PBPF_VERDICT_ALLOW, allow};
    ir::Action d = pk.dir == ir::Direction::Ingress ? p.default_ingress : p.default_egress;
    return {d == ir::Action::Deny ? PBPF_VERDICT_DENY : PBPF_VERDICT_ALLOW, 0};
}

// ---- (a) the kernel's view: longest prefix over the key bits from `kind` on ----
// (the program's tuple-space search finds exactly that; tests/bpf/policy_lookup_test.cpp
// checks it against the real program)

const pbpf::PolicyEntry* lpm_lookup(const std::vector<pbpf::PolicyEntry>& entries,
                                    const pbpf_policy_key& key) {
    const auto* kb = reinterpret_cast<const uint8_t*>(&key) + offsetof(pbpf_policy_key, kind);
    const pbpf::PolicyEntry* best = nullptr;
    for (const auto& e : entries) {
        if (e.key.prefixlen > key.prefixlen) continue;
        const auto* eb = reinterpret_cast<const uint8_t*>(&e.key) + offsetof(pbpf_policy_key, kind);
        bool match = true;
        for (uint32_t bit = 0; bit < e.key.prefixlen && match; ++bit) {
            uint8_t m = static_cast<uint8_t>(0x80u >> (bit % 8));
            match = (eb[bit / 8] & m) == (kb[bit / 8] & m);
        }
        if (match && (!best || e.key.prefixlen > best->key.prefixlen)) best = &e;
    }
    return best;
}

std::optional<Verdict> eval_map(const pbpf::PersonaImage& img, const Packet& pk) {
    pbpf_policy_key k;
    std::memset(&k, 0, sizeof k);
    bool v4 = pk.family == ir::Family::V4;
    k.kind = PBPF_ENTRY_ADDR;
    k.dir = pk.dir == ir::Direction::Ingress ? PBPF_DIR_INGRESS : PBPF_DIR_EGRESS;
    k.family_or_proto = v4 ? PBPF_FAMILY_IPV4 : PBPF_FAMILY_IPV6;
    std::memcpy(k.data, pk.addr.data(), v4 ? 4 : 16);
    k.prefixlen = PBPF_POLICY_HEADER_BITS + (v4 ? 32 : 128);
    const auto* addr = lpm_lookup(img.entries, k);
    if (!addr || addr->key.kind != PBPF_ENTRY_ADDR) return std::nullopt;
    uint32_t cls = addr->value.class_id;

    uint8_t bucket = PBPF_PROTO_OTHER;
    if (pk.ip_proto == 6 || pk.ip_proto == 17)
        bucket = pk.ip_proto;
    else if (v4 && pk.ip_proto == 1)
        bucket = PBPF_PROTO_ICMP;
    else if (!v4 && pk.ip_proto == 58)
        bucket = PBPF_PROTO_ICMPV6;
    bool ported = bucket == PBPF_PROTO_TCP || bucket == PBPF_PROTO_UDP;
    std::memset(&k, 0, sizeof k);
    k.kind = PBPF_ENTRY_PORT;
    k.family_or_proto = bucket;
    k.data[0] = static_cast<uint8_t>(cls >> 24);
    k.data[1] = static_cast<uint8_t>(cls >> 16);
    k.data[2] = static_cast<uint8_t>(cls >> 8);
    k.data[3] = static_cast<uint8_t>(cls);
    uint16_t port = ported ? pk.dport : 0;
    k.data[4] = static_cast<uint8_t>(port >> 8);
    k.data[5] = static_cast<uint8_t>(port);
    k.prefixlen = PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS + 16;
    const auto* verdict = lpm_lookup(img.entries, k);
    if (!verdict || verdict->key.kind != PBPF_ENTRY_PORT) return std::nullopt;
    return Verdict{static_cast<pbpf_verdict>(verdict->value.verdict), verdict->value.rule_id};
}

// ---- random personas and packets, biased towards overlaps and boundaries ----

class Gen {
  public:
    explicit Gen(uint32_t seed) : rng_(seed) {}

    uint32_t below(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng_); }
    bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

    // Addresses from a small space, so prefixes nest and overlap often.
    std::array<uint8_t, 16> address(ir::Family f) {
        std::array<uint8_t, 16> a{};
        if (f == ir::Family::V4) {
            if (chance(0.8)) {
                a[0] = chance(0.7) ? 10 : 192;
                a[1] = static_cast<uint8_t>(below(4));
                a[2] = static_cast<uint8_t>(below(4));
                a[3] = static_cast<uint8_t>(chance(0.5) ? below(8) : below(256));
            } else {
                for (int i = 0; i < 4; ++i) a[i] = static_cast<uint8_t>(below(256));
            }
        } else {
            if (chance(0.8)) {
                a[0] = 0x20;
                a[1] = 0x01;
                a[2] = 0x0d;
                a[3] = 0xb8;
                a[5] = static_cast<uint8_t>(below(4));
                a[7] = static_cast<uint8_t>(below(4));
                a[15] = static_cast<uint8_t>(below(8));
            } else {
                for (auto& b : a) b = static_cast<uint8_t>(below(256));
            }
        }
        return a;
    }

    ir::Cidr cidr(ir::Family f) {
        static const uint8_t v4_lens[] = {0, 1, 8, 12, 16, 20, 22, 24, 28, 29, 30, 31, 32};
        static const uint8_t v6_lens[] = {0, 1, 16, 32, 40, 48, 56, 62, 64, 96, 120, 127, 128};
        ir::Cidr c;
        c.family = f;
        c.addr = address(f);
        c.prefix_len = f == ir::Family::V4 ? v4_lens[below(13)] : v6_lens[below(13)];
        unsigned max = f == ir::Family::V4 ? 32 : 128;
        for (unsigned bit = c.prefix_len; bit < max; ++bit)
            c.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
        return c;
    }

    ir::PortRange port_range() {
        static const uint16_t los[] = {0,    1,    22,   53,    80,    443,  1023,
                                       1024, 8000, 8080, 32768, 65534, 65535};
        static const uint32_t widths[] = {0, 0, 1, 3, 15, 99, 1000, 40000};
        uint32_t lo = chance(0.7) ? los[below(13)] : below(65536);
        uint32_t hi =
            std::min<uint32_t>(65535, lo + (chance(0.8) ? widths[below(8)] : below(65536)));
        return {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
    }

    ir::Persona persona() {
        ir::Persona p;
        p.name = "p";
        p.mode = chance(0.3) ? ir::Mode::Audit : ir::Mode::Enforce;
        p.default_ingress = chance(0.5) ? ir::Action::Deny : ir::Action::Allow;
        p.default_egress = chance(0.5) ? ir::Action::Deny : ir::Action::Allow;
        uint32_t n = below(14);
        for (uint32_t i = 1; i <= n; ++i) {
            ir::Rule r;
            r.id = i;
            r.action = chance(0.4) ? ir::Action::Deny : ir::Action::Allow;
            r.direction = chance(0.5) ? ir::Direction::Ingress : ir::Direction::Egress;
            static const ir::Proto protos[] = {ir::Proto::Tcp,  ir::Proto::Tcp,    ir::Proto::Udp,
                                               ir::Proto::Icmp, ir::Proto::Icmpv6, ir::Proto::Any};
            r.proto = protos[below(6)];
            if ((r.proto == ir::Proto::Tcp || r.proto == ir::Proto::Udp) && chance(0.7)) {
                uint32_t k = 1 + below(3);
                for (uint32_t j = 0; j < k; ++j) {
                    ir::PortRange pr = port_range();
                    // Duplicates would be merged by the compiler; keep rules canonical.
                    if (std::find(r.ports.begin(), r.ports.end(), pr) == r.ports.end())
                        r.ports.push_back(pr);
                }
            }
            if (chance(0.75)) {
                uint32_t k = 1 + below(3);
                for (uint32_t j = 0; j < k; ++j) {
                    ir::Family f = r.proto == ir::Proto::Icmp     ? ir::Family::V4
                                   : r.proto == ir::Proto::Icmpv6 ? ir::Family::V6
                                   : chance(0.6)                  ? ir::Family::V4
                                                                  : ir::Family::V6;
                    ir::Cidr c = cidr(f);
                    if (std::find(r.peers.begin(), r.peers.end(), c) == r.peers.end())
                        r.peers.push_back(c);
                }
            }
            r.text = describe_rule(r);
            p.rules.push_back(r);
        }
        return p;
    }

    Packet packet(const ir::Persona& p) {
        Packet pk;
        pk.dir = chance(0.5) ? ir::Direction::Ingress : ir::Direction::Egress;
        pk.family = chance(0.6) ? ir::Family::V4 : ir::Family::V6;
        pk.addr = address(pk.family);
        // Often land inside (or just at the edge of) a rule's CIDR.
        if (!p.rules.empty() && chance(0.5)) {
            const auto& r = p.rules[below(static_cast<uint32_t>(p.rules.size()))];
            if (!r.peers.empty()) {
                const auto& c = r.peers[below(static_cast<uint32_t>(r.peers.size()))];
                pk.family = c.family;
                pk.addr = c.addr;
                unsigned max = c.family == ir::Family::V4 ? 32 : 128;
                for (unsigned bit = c.prefix_len; bit < max; ++bit)
                    if (chance(0.5)) pk.addr[bit / 8] |= static_cast<uint8_t>(0x80u >> (bit % 8));
                if (pk.family == ir::Family::V4)
                    for (int i = 4; i < 16; ++i) pk.addr[i] = 0;
            }
        }
        static const uint8_t protos[] = {6, 6, 17, 17, 1, 58, 47, 0, 132};
        pk.ip_proto = protos[below(9)];
        pk.dport = static_cast<uint16_t>(below(65536));
        if (!p.rules.empty() && chance(0.6)) {
            const auto& r = p.rules[below(static_cast<uint32_t>(p.rules.size()))];
            if (!r.ports.empty()) {
                const auto& pr = r.ports[below(static_cast<uint32_t>(r.ports.size()))];
                int32_t choices[] = {pr.lo - 1, pr.lo, pr.lo + 1, pr.hi - 1, pr.hi, pr.hi + 1};
                int32_t v = choices[below(6)];
                pk.dport = static_cast<uint16_t>(std::clamp(v, 0, 65535));
            }
        }
        return pk;
    }

  private:
    std::mt19937 rng_;
};

std::string describe(const ir::Persona& p, const Packet& pk) {
    std::string s =
        std::string("persona: mode ") + (p.mode == ir::Mode::Audit ? "audit" : "enforce") +
        ", default ingress " + (p.default_ingress == ir::Action::Deny ? "deny" : "allow") +
        ", default egress " + (p.default_egress == ir::Action::Deny ? "deny" : "allow") + "\n";
    for (const auto& r : p.rules) s += "  " + std::to_string(r.id) + ": " + r.text + "\n";
    s += std::string("packet: ") + (pk.dir == ir::Direction::Ingress ? "ingress" : "egress") + " " +
         format_address(pk.family, pk.addr.data()) + " proto " + std::to_string(pk.ip_proto) +
         " dport " + std::to_string(pk.dport) + "\n";
    return s;
}

TEST(LowerProperty, TwoLookupsAgreeWithTheRules) {
    Gen gen(0x5eed1234);
    size_t packets = 0;
    for (int i = 0; i < 400; ++i) {
        ir::Persona p = gen.persona();
        pbpf::PersonaImage img = lower(p);
        ASSERT_LE(img.entries.size(), size_t{PBPF_MAX_POLICY_ENTRIES});
        for (const auto& e : img.entries) {
            if (e.key.kind == PBPF_ENTRY_PORT) {
                ASSERT_EQ(e.value.flags, p.mode == ir::Mode::Audit ? PBPF_POLICY_F_AUDIT : 0);
            }
        }
        for (int j = 0; j < 300; ++j) {
            Packet pk = gen.packet(p);
            Verdict want = eval_ir(p, pk);
            std::optional<Verdict> got = eval_map(img, pk);
            ASSERT_TRUE(got.has_value()) << "no entry matched\n" << describe(p, pk);
            ASSERT_EQ(got->verdict, want.verdict) << describe(p, pk);
            ASSERT_EQ(got->rule, want.rule) << describe(p, pk);
            ++packets;
        }
    }
    EXPECT_EQ(packets, 400u * 300u);
}

// The exhaustive form of the property above, now that the port table is sparse (one
// catch-all per class and bucket, blocks only where a rule decides otherwise): for every
// ADDR entry, an address whose longest match it is, and every protocol bucket, every port
// resolves to the rules' verdict and rule id. Both sides are constant between the edges
// of the rules' port ranges and of the class's port blocks, so checking the ports at and
// next to every edge checks them all, the ones only a catch-all covers included.
TEST(LowerProperty, EveryPortOfEveryClassAgrees) {
    Gen gen(0xc1a55);
    std::mt19937 rng(5);
    size_t prefixes = 0, checked = 0, probes = 0;
    for (int i = 0; i < 300; ++i) {
        ir::Persona p = gen.persona();
        pbpf::PersonaImage img = lower(p);
        std::vector<pbpf::PolicyEntry> addrs;
        std::map<uint32_t, std::vector<pbpf::PolicyEntry>> ports_of;  // class -> PORT entries
        for (const auto& e : img.entries) {
            if (e.key.kind == PBPF_ENTRY_ADDR) addrs.push_back(e);
            if (e.key.kind == PBPF_ENTRY_PORT) {
                const uint32_t cls = uint32_t{e.key.data[0]} << 24 | uint32_t{e.key.data[1]} << 16 |
                                     uint32_t{e.key.data[2]} << 8 | e.key.data[3];
                ports_of[cls].push_back(e);
            }
        }
        for (const auto& a : addrs) {
            ++prefixes;
            const bool v4 = a.key.family_or_proto == PBPF_FAMILY_IPV4;
            const unsigned len = a.key.prefixlen - PBPF_POLICY_HEADER_BITS;
            const unsigned bits = v4 ? 32 : 128;
            // An address inside the prefix but in no longer one: random host bits, a few
            // tries (a prefix wholly split into longer ones has none; those are skipped).
            pbpf_policy_key k = a.key;
            k.prefixlen = PBPF_POLICY_HEADER_BITS + bits;
            bool found = false;
            for (int t = 0; t < 64 && !found; ++t) {
                for (unsigned bit = len; bit < bits; ++bit) {
                    const auto m = static_cast<uint8_t>(0x80u >> (bit % 8));
                    k.data[bit / 8] =
                        static_cast<uint8_t>((k.data[bit / 8] & ~m) | ((rng() & 1) ? m : 0));
                }
                found = lpm_lookup(addrs, k) == &a;
            }
            if (!found) continue;
            ++checked;
            const auto& ports = ports_of[a.value.class_id];
            Packet pk;
            pk.dir = a.key.dir == PBPF_DIR_EGRESS ? ir::Direction::Egress : ir::Direction::Ingress;
            pk.family = v4 ? ir::Family::V4 : ir::Family::V6;
            std::copy(k.data, k.data + 16, pk.addr.begin());
            const auto icmp = static_cast<uint8_t>(v4 ? 1 : 58);
            for (uint8_t proto : {uint8_t{6}, uint8_t{17}, icmp, uint8_t{47}}) {
                pk.ip_proto = proto;
                const bool ported = proto == 6 || proto == 17;
                std::vector<int32_t> edges = {0, 65535};
                if (ported) {
                    for (const auto& r : p.rules)
                        for (const auto& pr : r.ports)
                            edges.insert(edges.end(), {pr.lo - 1, pr.lo, pr.hi, pr.hi + 1});
                    for (const auto& e : ports) {
                        if (e.key.family_or_proto != proto) continue;
                        const unsigned plen =
                            e.key.prefixlen - PBPF_POLICY_HEADER_BITS - PBPF_POLICY_CLASS_BITS;
                        const int32_t lo = e.key.data[4] << 8 | e.key.data[5];
                        const int32_t hi = lo + (1 << (16 - plen)) - 1;
                        edges.insert(edges.end(), {lo - 1, lo, hi, hi + 1});
                    }
                }
                std::sort(edges.begin(), edges.end());
                edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
                for (int32_t port : edges) {
                    if (port < 0 || port > 65535) continue;
                    pk.dport = static_cast<uint16_t>(port);
                    // The whole lookup, but over this class's PORT entries only (an entry
                    // of another class or kind cannot match the key anyway).
                    pbpf_policy_key pkey;
                    std::memset(&pkey, 0, sizeof pkey);
                    pkey.prefixlen = PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS + 16;
                    pkey.kind = PBPF_ENTRY_PORT;
                    // IP protocol numbers are the bucket numbers, but for "other".
                    pkey.family_or_proto = proto == 47 ? uint8_t{PBPF_PROTO_OTHER} : proto;
                    pkey.data[0] = static_cast<uint8_t>(a.value.class_id >> 24);
                    pkey.data[1] = static_cast<uint8_t>(a.value.class_id >> 16);
                    pkey.data[2] = static_cast<uint8_t>(a.value.class_id >> 8);
                    pkey.data[3] = static_cast<uint8_t>(a.value.class_id);
                    const uint16_t key_port = ported ? pk.dport : 0;
                    pkey.data[4] = static_cast<uint8_t>(key_port >> 8);
                    pkey.data[5] = static_cast<uint8_t>(key_port);
                    const auto* got = lpm_lookup(ports, pkey);
                    const Verdict want = eval_ir(p, pk);
                    ASSERT_NE(got, nullptr) << "no PORT entry matched\n" << describe(p, pk);
                    ASSERT_EQ(got->value.verdict, want.verdict) << describe(p, pk);
                    ASSERT_EQ(got->value.rule_id, want.rule) << describe(p, pk);
                    ++probes;
                    if (!ported) break;  // port 0 is the only key
                }
            }
        }
    }
    // Nearly every prefix has an address of its own; the probes are many.
    EXPECT_GT(checked, prefixes * 9 / 10);
    EXPECT_GT(probes, size_t{100000});
}

// Every class has, in each protocol bucket of its family, exactly one catch-all (port
// prefix length 0): a lookup of any port of any class finds an entry, never a miss
// (the program fails closed on a miss).
TEST(LowerProperty, OneCatchAllPerClassAndBucket) {
    Gen gen(0xca7c);
    for (int i = 0; i < 200; ++i) {
        ir::Persona p = gen.persona();
        pbpf::PersonaImage img = lower(p);
        std::map<uint32_t, uint8_t> family_of;  // class -> family
        std::map<std::pair<uint32_t, uint8_t>, int> catch_alls;
        for (const auto& e : img.entries) {
            if (e.key.kind == PBPF_ENTRY_ADDR) family_of[e.value.class_id] = e.key.family_or_proto;
            if (e.key.kind == PBPF_ENTRY_PORT &&
                e.key.prefixlen == PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS) {
                const uint32_t cls = uint32_t{e.key.data[0]} << 24 | uint32_t{e.key.data[1]} << 16 |
                                     uint32_t{e.key.data[2]} << 8 | e.key.data[3];
                ++catch_alls[{cls, e.key.family_or_proto}];
            }
        }
        ASSERT_EQ(family_of.size(), img.class_count);
        for (const auto& [cls, fam] : family_of) {
            const uint8_t icmp = fam == PBPF_FAMILY_IPV4 ? PBPF_PROTO_ICMP : PBPF_PROTO_ICMPV6;
            for (uint8_t bucket : {uint8_t{PBPF_PROTO_TCP}, uint8_t{PBPF_PROTO_UDP}, icmp,
                                   uint8_t{PBPF_PROTO_OTHER}})
                EXPECT_EQ((catch_alls[{cls, bucket}]), 1)
                    << "class " << cls << " bucket " << int{bucket};
        }
        // Nothing for the other family's ICMP bucket, nor for classes that do not exist.
        size_t total = 0;
        for (const auto& [key, n] : catch_alls) total += static_cast<size_t>(n);
        EXPECT_EQ(total, 4 * family_of.size());
    }
}

TEST(LowerProperty, DeterministicAndRoundTrips) {
    Gen gen(42);
    for (int i = 0; i < 200; ++i) {
        ir::Persona p = gen.persona();
        pbpf::PersonaImage a = lower(p);
        pbpf::PersonaImage b = lower(p);
        ASSERT_EQ(a.entries, b.entries);
        nlohmann::json j = to_json(a);
        ASSERT_EQ(to_json(pbpf::persona_image_from_json(j)), j);
        // No two entries share a key: the policy map would refuse the second.
        for (size_t k = 1; k < a.entries.size(); ++k)
            ASSERT_NE(
                std::memcmp(&a.entries[k - 1].key, &a.entries[k].key, sizeof(pbpf_policy_key)), 0);
    }
}

// Random personas printed as PDL compile back to the same IR rules, and formatting
// that text changes nothing.
TEST(LowerProperty, DescribedRulesCompileBack) {
    Gen gen(7);
    for (int i = 0; i < 200; ++i) {
        ir::Persona p = gen.persona();
        std::string text = "persona p {\n  security {\n";
        text += std::string("    mode ") + (p.mode == ir::Mode::Audit ? "audit" : "enforce") + "\n";
        text += std::string("    default ingress ") +
                (p.default_ingress == ir::Action::Deny ? "deny" : "allow") + "\n";
        text += std::string("    default egress ") +
                (p.default_egress == ir::Action::Deny ? "deny" : "allow") + "\n";
        for (const auto& r : p.rules) text += "    " + r.text + "\n";
        text += "  }\n}\n";
        CompileOutput out = compile(Source{"r.pdl", text});
        ASSERT_TRUE(out.ok()) << out.diagnostics << text;
        ASSERT_EQ(out.personas.size(), 1u);
        const auto& q = out.personas[0];
        ASSERT_EQ(q.rules.size(), p.rules.size());
        for (size_t k = 0; k < p.rules.size(); ++k) EXPECT_EQ(q.rules[k].text, p.rules[k].text);
        EXPECT_EQ(to_json(lower(q)), to_json(lower(p)));
        FormatOutput f = format(Source{"r.pdl", text});
        ASSERT_TRUE(f.ok);
        EXPECT_EQ(f.text, text);
    }
}

// Whatever the bytes, the compiler answers (no crash, no hang) and a file with errors
// yields no personas. Fuzzing proper comes later; this keeps the obvious cases covered.
TEST(Robustness, RandomInputNeverCrashes) {
    std::mt19937 rng(99);
    const std::vector<std::string> pieces = {
        "persona", "set", "security", "{",    "}",      "allow",      "deny",        "ingress",
        "egress",  "tcp", "port",     "to",   "from",   "10.0.0.0/8", "$x",          "=",
        ",",       ";",   "\n",       "\"s",  "\"ok\"", "#c\n",       "mode",        "audit",
        "default", "any", "80-90",    "::/0", "\xff",   "x",          "description", "qos"};
    for (int i = 0; i < 2000; ++i) {
        std::string text;
        int n = std::uniform_int_distribution<int>(0, 60)(rng);
        for (int k = 0; k < n; ++k) {
            text += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
            text += ' ';
        }
        CompileOutput out = compile(Source{"f.pdl", text});
        if (!out.ok()) {
            EXPECT_TRUE(out.personas.empty());
        }
        FormatOutput f = format(Source{"f.pdl", text});
        if (f.ok) {
            EXPECT_EQ(format(Source{"f.pdl", f.text}).text, f.text) << text;
        }
    }
}

}  // namespace
}  // namespace pdl
