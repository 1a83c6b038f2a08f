// Lowering: ir::Persona -> PersonaImage, the two-table policy of docs/architecture.md
// "Policy lookup" (ADDR: peer prefix -> address class; PORT: class, proto, port -> verdict);
// the other sections are lowered by lower_settings.cpp.
#include <algorithm>
#include <array>
#include <bit>
#include <compare>
#include <iterator>
#include <limits>

#include "pdl-compiler/compiler.h"
#include "pdl-compiler/lower.h"

namespace pdl {

namespace {

bool proto_reaches(ir::Proto p, ir::Family f) {
    if (p == ir::Proto::Icmp) return f == ir::Family::V4;
    if (p == ir::Proto::Icmpv6) return f == ir::Family::V6;
    return true;
}

bool applies(ir::Proto p, pbpf_proto bucket) {
    switch (p) {
        case ir::Proto::Any:
            return true;
        case ir::Proto::Tcp:
            return bucket == PBPF_PROTO_TCP;
        case ir::Proto::Udp:
            return bucket == PBPF_PROTO_UDP;
        case ir::Proto::Icmp:
            return bucket == PBPF_PROTO_ICMP;
        case ir::Proto::Icmpv6:
            return bucket == PBPF_PROTO_ICMPV6;
    }
    return false;
}

// A CIDR as two big-endian words (IPv4 in the top of `hi`), host bits cleared: ordering,
// equality and containment are a few integer operations. The order (address, then
// length) is that of ADDR keys, and a preorder of the prefix tree: every prefix comes
// after all of its ancestors.
struct Prefix {
    uint64_t hi = 0, lo = 0;
    uint8_t len = 0;
    auto operator<=>(const Prefix&) const = default;
};

uint64_t high_bits(unsigned n) {  // the first n (0..64) of 64 bits
    return n == 0 ? 0 : ~uint64_t{0} << (64 - n);
}

Prefix prefix_of(const ir::Cidr& c) {
    Prefix p;
    for (unsigned i = 0; i < 8; ++i) {
        p.hi = p.hi << 8 | c.addr[i];
        p.lo = p.lo << 8 | c.addr[8 + i];
    }
    // The IR promises zero host bits; the ancestor walk relies on it, so it is not left
    // to trust.
    p.len = c.prefix_len;
    p.hi &= high_bits(std::min(64u, unsigned{p.len}));
    p.lo &= high_bits(p.len > 64 ? p.len - 64u : 0u);
    return p;
}

std::array<uint8_t, 16> bytes_of(const Prefix& p) {
    std::array<uint8_t, 16> out{};
    for (unsigned i = 0; i < 8; ++i) {
        out[i] = static_cast<uint8_t>(p.hi >> (56 - 8 * i));
        out[8 + i] = static_cast<uint8_t>(p.lo >> (56 - 8 * i));
    }
    return out;
}

bool contains(const Prefix& outer, const Prefix& inner) {
    return outer.len <= inner.len &&
           (inner.hi & high_bits(std::min(64u, unsigned{outer.len}))) == outer.hi &&
           (inner.lo & high_bits(outer.len > 64 ? outer.len - 64u : 0u)) == outer.lo;
}

// Calls emit(port, prefix length) for each aligned power-of-two block of [lo, hi], in
// order (at most 30 for 16-bit ports).
template <typename Emit>
void for_each_block(uint32_t lo, uint32_t hi, Emit&& emit) {
    while (lo <= hi) {
        // As large as the alignment of lo and the length left allow.
        const auto aligned = static_cast<unsigned>(std::countr_zero(lo | 0x10000u));
        const auto fits = static_cast<unsigned>(std::bit_width(hi - lo + 1)) - 1;
        const unsigned size_log = std::min(aligned, fits);
        emit(static_cast<uint16_t>(lo), 16 - size_log);
        lo += uint32_t{1} << size_log;
    }
}

size_t block_count(uint32_t lo, uint32_t hi) {
    size_t n = 0;
    for_each_block(lo, hi, [&n](uint16_t, unsigned) { ++n; });
    return n;
}

// The rules (by position in a class's deciding order) that match the port the sweep is
// at, as counts plus a two-level bitset: the first member, the rule that decides, is
// found in a couple of word scans however many rules the class has.
class ActiveRules {
  public:
    static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

    void reset(size_t n) {
        count_.assign(n, 0);
        low_.assign((n + 63) / 64, 0);
        high_.assign((low_.size() + 63) / 64, 0);
    }
    void add(uint32_t p) {
        if (count_[p]++ != 0) return;
        low_[p / 64] |= uint64_t{1} << (p % 64);
        high_[p / 4096] |= uint64_t{1} << (p / 64 % 64);
    }
    void remove(uint32_t p) {
        if (--count_[p] != 0) return;
        low_[p / 64] &= ~(uint64_t{1} << (p % 64));
        if (low_[p / 64] == 0) high_[p / 4096] &= ~(uint64_t{1} << (p / 64 % 64));
    }
    uint32_t first() const {
        for (size_t h = 0; h < high_.size(); ++h) {
            if (high_[h] == 0) continue;
            const size_t w = h * 64 + static_cast<size_t>(std::countr_zero(high_[h]));
            return static_cast<uint32_t>(w * 64 + static_cast<size_t>(std::countr_zero(low_[w])));
        }
        return kNone;
    }

  private:
    std::vector<int32_t> count_;  // a rule may name overlapping ranges
    std::vector<uint64_t> low_, high_;
};

// Class ids by covering set: the sets back to back in one pool and open addressing on
// their hashes, so numbering the classes of a persona allocates nothing once warm.
class ClassTable {
  public:
    void clear() {
        pool_.clear();
        sets_.clear();
        std::fill(slots_.begin(), slots_.end(), 0);
    }

    // The id of `set`; `fresh_id` (and true) when it was not there yet.
    std::pair<uint32_t, bool> find_or_add(const std::vector<uint32_t>& set, uint32_t fresh_id) {
        if ((sets_.size() + 1) * 2 > slots_.size()) grow();
        const uint64_t h = hash(set);
        const size_t mask = slots_.size() - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
            if (slots_[i] == 0) {
                slots_[i] = static_cast<uint32_t>(sets_.size() + 1);
                sets_.push_back({h, pool_.size(), set.size(), fresh_id});
                pool_.insert(pool_.end(), set.begin(), set.end());
                return {fresh_id, true};
            }
            const Set& s = sets_[slots_[i] - 1];
            if (s.hash == h && s.size == set.size() &&
                std::equal(set.begin(), set.end(),
                           pool_.begin() + static_cast<ptrdiff_t>(s.offset)))
                return {s.id, false};
        }
    }

  private:
    struct Set {
        uint64_t hash;
        size_t offset, size;
        uint32_t id;
    };
    std::vector<uint32_t> pool_;
    std::vector<Set> sets_;
    std::vector<uint32_t> slots_;  // 1 + index into sets_, 0 when free; a power of two long

    static uint64_t hash(const std::vector<uint32_t>& v) {
        uint64_t h = 0x9e3779b97f4a7c15u ^ v.size();
        for (uint32_t x : v) h = (h ^ x) * 0xff51afd7ed558ccdu;
        return h ^ (h >> 29);
    }

    void grow() {
        slots_.assign(std::max<size_t>(64, slots_.size() * 2), 0);
        const size_t mask = slots_.size() - 1;
        for (size_t k = 0; k < sets_.size(); ++k) {
            size_t i = sets_[k].hash & mask;
            while (slots_[i] != 0) i = (i + 1) & mask;
            slots_[i] = static_cast<uint32_t>(k + 1);
        }
    }
};

// The sweep's events, one 64-bit word each so that sorting them is cheap: the port in the
// high bits, then whether the rule leaves (after hi) or enters (at lo), then its position.
constexpr uint64_t kLeave = uint64_t{1} << 32;
uint64_t event(uint32_t port, bool leave, uint32_t pos) {
    return uint64_t{port} << 33 | (leave ? kLeave : 0) | pos;
}
uint32_t event_port(uint64_t e) { return static_cast<uint32_t>(e >> 33); }

// Buckets in the order of their protocol numbers (the key order).
constexpr std::array<pbpf_proto, 5> kBuckets = {PBPF_PROTO_OTHER, PBPF_PROTO_ICMP, PBPF_PROTO_TCP,
                                                PBPF_PROTO_UDP, PBPF_PROTO_ICMPV6};

// What the port tables need of a rule, in deciding order and in one place (the IR rule
// is large and far away).
struct RankedRule {
    const ir::PortRange* ports;
    uint32_t port_count;
    uint32_t id;
    uint32_t canon;  // the first rank with the same verdict and id
    ir::Proto proto;
    bool deny;
};
struct PrefixRule {
    Prefix prefix;
    uint32_t rank;
};
struct Open {  // a prefix of the ancestor walk and the ranks of the rules covering it
    Prefix prefix;
    std::vector<uint32_t> covering;
};
struct Interval {
    uint32_t start;
    uint32_t decider;  // canonical rank, or kDefault
};
constexpr uint32_t kDefault = std::numeric_limits<uint32_t>::max();

// The lowerer's working memory. A file of many personas is lowered one persona after the
// other, each needing the same dozen buffers: keeping them (per thread) from one persona
// to the next saves most of lowering's allocations.
struct Scratch {
    std::vector<pbpf::PolicyEntry> addr;
    std::array<std::vector<pbpf::PolicyEntry>, kBuckets.size()> port;
    std::vector<uint32_t> order;
    std::vector<RankedRule> ranked;
    std::vector<uint32_t> everywhere, exact;
    std::vector<PrefixRule> named;
    std::vector<Open> stack;
    ClassTable classes;
    ActiveRules active;
    std::vector<uint64_t> events;
    std::vector<Interval> intervals;
    std::vector<size_t> blocks;  // canonical rank (kDefault: the last slot) -> blocks

    // Keeps what a usual persona needs, not what the largest one lowered so far did.
    void trim() {
        size_t entries = addr.capacity();
        for (const auto& b : port) entries += b.capacity();
        if (entries > 65536 || events.capacity() > 65536 || blocks.capacity() > 65536)
            *this = Scratch{};
    }
};

class PolicyLowerer {
  public:
    PolicyLowerer(const std::vector<ir::Rule>& rules, ir::Action default_ingress,
                  ir::Action default_egress, bool audit, uint32_t first_class, Scratch& scratch)
        : rules_(rules),
          default_ingress_(default_ingress),
          default_egress_(default_egress),
          audit_(audit),
          s_(scratch) {
        out_.next_class = first_class;
        s_.addr.clear();
        for (auto& b : s_.port) b.clear();
    }

    // Entries come out in canonical order, so canonicalizing them costs one pass: ADDR by
    // (direction, family, prefix), as generated; PORT by (bucket, class, port), each
    // bucket in its own vector, each class's catch-all before its blocks.
    LoweredPolicy run() && {
        for (ir::Direction d : {ir::Direction::Ingress, ir::Direction::Egress})
            for (ir::Family f : {ir::Family::V4, ir::Family::V6}) direction_family(d, f);
        size_t total = s_.addr.size();
        for (const auto& b : s_.port) total += b.size();
        out_.entries.reserve(total);
        out_.entries.insert(out_.entries.end(), s_.addr.begin(), s_.addr.end());
        for (const auto& b : s_.port) out_.entries.insert(out_.entries.end(), b.begin(), b.end());
        return std::move(out_);
    }

  private:
    const std::vector<ir::Rule>& rules_;
    ir::Action default_ingress_, default_egress_;
    bool audit_;
    LoweredPolicy out_;
    Scratch& s_;
    pbpf_verdict fallback_ = PBPF_VERDICT_ALLOW;  // of the direction being lowered

    // Per direction and family. A rule is named by its rank in the deciding order (denies
    // first, then by id): the first matching rule in that order decides, and it reports
    // the lowest id among the matching rules of its action, as the contract says.
    void direction_family(ir::Direction dir, ir::Family fam) {
        const ir::Action d = dir == ir::Direction::Ingress ? default_ingress_ : default_egress_;
        fallback_ = d == ir::Action::Deny ? PBPF_VERDICT_DENY : PBPF_VERDICT_ALLOW;
        auto& order = s_.order;  // rank -> rule index
        order.clear();
        for (uint32_t i = 0; i < rules_.size(); ++i)
            if (rules_[i].direction == dir && proto_reaches(rules_[i].proto, fam))
                order.push_back(i);
        std::sort(order.begin(), order.end(), [this](uint32_t a, uint32_t b) {
            const bool da = rules_[a].action == ir::Action::Deny;
            const bool db = rules_[b].action == ir::Action::Deny;
            if (da != db) return da;
            if (rules_[a].id != rules_[b].id) return rules_[a].id < rules_[b].id;
            return a < b;
        });
        auto& ranked = s_.ranked;
        ranked.clear();
        for (uint32_t rank = 0; rank < order.size(); ++rank) {
            const ir::Rule& r = rules_[order[rank]];
            RankedRule rr{r.ports.data(), static_cast<uint32_t>(r.ports.size()), r.id, rank,
                          r.proto,        r.action == ir::Action::Deny};
            if (rank > 0 && ranked.back().deny == rr.deny && ranked.back().id == rr.id)
                rr.canon = ranked.back().canon;
            ranked.push_back(rr);
        }
        s_.blocks.assign(ranked.size() + 1, 0);

        // Rules without peers cover every prefix; the others cover the prefixes inside
        // the CIDRs they name.
        auto& everywhere = s_.everywhere;
        auto& named = s_.named;
        everywhere.clear();
        named.clear();
        for (uint32_t rank = 0; rank < order.size(); ++rank) {
            const ir::Rule& r = rules_[order[rank]];
            if (r.peers.empty()) everywhere.push_back(rank);
            for (const auto& c : r.peers)
                if (c.family == fam) named.push_back({prefix_of(c), rank});
        }
        std::sort(named.begin(), named.end(), [](const PrefixRule& a, const PrefixRule& b) {
            if (a.prefix != b.prefix) return a.prefix < b.prefix;
            return a.rank < b.rank;
        });

        // Every ADDR prefix (the CIDRs named, plus /0) in preorder. The rules covering a
        // prefix are those covering its nearest named ancestor plus those naming it, and
        // the open ancestors form a stack: popping the ones that do not contain the next
        // prefix leaves its nearest ancestor on top. Classes are numbered in the order of
        // their first prefix, so ids are stable for equal input.
        s_.classes.clear();
        auto& stack = s_.stack;
        // Nested prefixes have distinct lengths, so the stack never grows past 129 (and
        // never reallocates under the references below).
        if (stack.size() < 129) stack.resize(129);
        auto& exact = s_.exact;
        size_t i = 0;
        auto visit = [&](size_t depth, const Prefix& prefix,
                         const std::vector<uint32_t>& inherited) {
            exact.clear();
            for (; i < named.size() && named[i].prefix == prefix; ++i)
                if (exact.empty() || exact.back() != named[i].rank) exact.push_back(named[i].rank);
            Open& o = stack[depth];
            o.prefix = prefix;
            o.covering.clear();
            std::set_union(inherited.begin(), inherited.end(), exact.begin(), exact.end(),
                           std::back_inserter(o.covering));
            emit_prefix(o, dir, fam);
        };
        visit(0, Prefix{}, everywhere);
        size_t depth = 1;
        while (i < named.size()) {
            const Prefix prefix = named[i].prefix;
            while (!contains(stack[depth - 1].prefix, prefix)) --depth;  // /0 stays
            visit(depth, prefix, stack[depth - 1].covering);
            ++depth;
        }
    }

    void emit_prefix(const Open& open, ir::Direction dir, ir::Family fam) {
        const auto [class_id, fresh] = s_.classes.find_or_add(open.covering, out_.next_class);
        if (fresh) {
            ++out_.next_class;
            port_table(class_id, open.covering, fam);
        }
        s_.addr.push_back(pbpf::make_addr_entry(
            dir == ir::Direction::Ingress ? PBPF_DIR_INGRESS : PBPF_DIR_EGRESS,
            fam == ir::Family::V4 ? PBPF_FAMILY_IPV4 : PBPF_FAMILY_IPV6,
            bytes_of(open.prefix).data(), open.prefix.len, class_id));
    }

    void push_port(size_t bucket, uint32_t class_id, uint16_t port, unsigned plen,
                   uint32_t decider) {
        const bool by_rule = decider != kDefault;
        const pbpf_verdict verdict = !by_rule                  ? fallback_
                                     : s_.ranked[decider].deny ? PBPF_VERDICT_DENY
                                                               : PBPF_VERDICT_ALLOW;
        s_.port[bucket].push_back(
            pbpf::make_port_entry(class_id, kBuckets[bucket], port, plen, verdict,
                                  by_rule ? s_.ranked[decider].id : 0, audit_));
    }

    // One class's PORT entries. The lookup is longest-prefix, so each bucket gets one
    // catch-all (port prefix length 0) and blocks only where another decision holds: the
    // catch-all takes the decision that would otherwise cost the most blocks (mostly the
    // direction's default). `covering`: ranks of the rules matching the class's addresses,
    // sorted, so position order is deciding order.
    void port_table(uint32_t class_id, const std::vector<uint32_t>& covering, ir::Family fam) {
        const auto& ranked = s_.ranked;
        const uint32_t k = static_cast<uint32_t>(covering.size());
        for (size_t b = 0; b < kBuckets.size(); ++b) {
            const pbpf_proto bucket = kBuckets[b];
            if (bucket == (fam == ir::Family::V4 ? PBPF_PROTO_ICMPV6 : PBPF_PROTO_ICMP)) continue;
            const bool ported = bucket == PBPF_PROTO_TCP || bucket == PBPF_PROTO_UDP;
            // The first rule matching every port of the bucket: no later one ever decides.
            uint32_t floor = k;
            bool ranged = false;
            for (uint32_t p = 0; p < k; ++p) {
                const RankedRule& r = ranked[covering[p]];
                if (!applies(r.proto, bucket)) continue;
                if (!ported || r.port_count == 0) {
                    floor = p;
                    break;
                }
                ranged = true;
            }
            const uint32_t base = floor < k ? ranked[covering[floor]].canon : kDefault;
            if (!ranged) {
                push_port(b, class_id, 0, 0, base);
                continue;
            }

            // Sweep the port space: a rule enters at lo and leaves after hi; every port
            // where the deciding rule changes starts an interval.
            auto& events = s_.events;
            events.clear();
            for (uint32_t p = 0; p < floor; ++p) {
                const RankedRule& r = ranked[covering[p]];
                if (!applies(r.proto, bucket)) continue;
                for (const auto* pr = r.ports; pr != r.ports + r.port_count; ++pr) {
                    events.push_back(event(pr->lo, false, p));
                    if (pr->hi < 65535) events.push_back(event(uint32_t{pr->hi} + 1, true, p));
                }
            }
            std::sort(events.begin(), events.end());
            auto& active = s_.active;
            auto& intervals = s_.intervals;
            active.reset(floor);
            intervals.clear();
            uint32_t at = 0;
            for (size_t e = 0;;) {
                for (; e < events.size() && event_port(events[e]) == at; ++e) {
                    const auto pos = static_cast<uint32_t>(events[e]);
                    if (events[e] & kLeave)
                        active.remove(pos);
                    else
                        active.add(pos);
                }
                const uint32_t first = active.first();
                const uint32_t decider =
                    first == ActiveRules::kNone ? base : ranked[covering[first]].canon;
                if (intervals.empty() || intervals.back().decider != decider)
                    intervals.push_back({at, decider});
                if (e == events.size()) break;
                at = event_port(events[e]);
            }

            if (intervals.size() == 1) {
                push_port(b, class_id, 0, 0, intervals[0].decider);
                continue;
            }
            auto& blocks = s_.blocks;
            auto slot = [&](uint32_t decider) {
                return decider == kDefault ? ranked.size() : size_t{decider};
            };
            auto hi_of = [&](size_t n) {
                return n + 1 < intervals.size() ? intervals[n + 1].start - 1 : 65535u;
            };
            for (size_t n = 0; n < intervals.size(); ++n)
                blocks[slot(intervals[n].decider)] += block_count(intervals[n].start, hi_of(n));
            // The most blocks wins; on a tie the default, then the first in deciding order.
            uint32_t catch_all = kDefault;
            size_t best = blocks[slot(kDefault)];
            for (const auto& iv : intervals) {
                const size_t n = blocks[slot(iv.decider)];
                if (n > best || (n == best && catch_all != kDefault && iv.decider < catch_all)) {
                    best = n;
                    catch_all = iv.decider;
                }
            }
            for (const auto& iv : intervals) blocks[slot(iv.decider)] = 0;
            blocks[slot(kDefault)] = 0;

            push_port(b, class_id, 0, 0, catch_all);
            for (size_t n = 0; n < intervals.size(); ++n) {
                if (intervals[n].decider == catch_all) continue;
                for_each_block(intervals[n].start, hi_of(n), [&](uint16_t port, unsigned plen) {
                    push_port(b, class_id, port, plen, intervals[n].decider);
                });
            }
        }
    }
};

}  // namespace

LoweredPolicy lower_policy(const std::vector<ir::Rule>& rules, ir::Action default_ingress,
                           ir::Action default_egress, bool audit, uint32_t first_class) {
    thread_local Scratch scratch;
    LoweredPolicy out =
        PolicyLowerer(rules, default_ingress, default_egress, audit, first_class, scratch).run();
    scratch.trim();
    return out;
}

pbpf::PersonaImage lower(const ir::Persona& persona) {
    pbpf::PersonaImage image;
    image.name = persona.name;
    image.audit = persona.mode == ir::Mode::Audit;
    auto verdict = [](ir::Action a) {
        return a == ir::Action::Deny ? PBPF_VERDICT_DENY : PBPF_VERDICT_ALLOW;
    };
    image.default_ingress = verdict(persona.default_ingress);
    image.default_egress = verdict(persona.default_egress);
    image.rule_count = static_cast<uint32_t>(persona.rules.size());
    LoweredPolicy policy =
        lower_policy(persona.rules, persona.default_ingress, persona.default_egress, image.audit);
    image.class_count = policy.next_class - 1;
    // The other sections' entries on their own first, so that the image's entries are
    // allocated once and at their exact size (a file's images are most of its memory).
    lower_settings(persona, image);
    if (image.entries.empty()) {
        image.entries = std::move(policy.entries);
    } else {
        std::vector<pbpf::PolicyEntry> others = std::move(image.entries);
        image.entries = std::move(policy.entries);
        image.entries.reserve(image.entries.size() + others.size());
        image.entries.insert(image.entries.end(), others.begin(), others.end());
    }
    image.canonicalize();
    return image;
}

pbpf::MapImage lower(const std::vector<ir::Persona>& personas) {
    pbpf::MapImage m;
    m.personas.reserve(personas.size());
    for (const auto& p : personas) m.personas.push_back(lower(p));
    std::stable_sort(m.personas.begin(), m.personas.end(),
                     [](const auto& a, const auto& b) { return a.name < b.name; });
    return m;
}

}  // namespace pdl
