// Lowering: ir::Persona -> PersonaImage, the two-table policy of docs/architecture.md
// "Policy lookup" (ADDR: peer prefix -> address class; PORT: class, proto, port -> verdict);
// the other sections are lowered by lower_settings.cpp.
#include <algorithm>
#include <array>
#include <map>
#include <set>

#include "pdl-compiler/compiler.h"
#include "pdl-compiler/lower.h"

namespace pdl {

namespace {

bool proto_reaches(ir::Proto p, ir::Family f) {
    if (p == ir::Proto::Icmp) return f == ir::Family::V4;
    if (p == ir::Proto::Icmpv6) return f == ir::Family::V6;
    return true;
}

// The first `len` bits of `addr`, the rest zero.
std::array<uint8_t, 16> truncated(const std::array<uint8_t, 16>& addr, unsigned len) {
    std::array<uint8_t, 16> out{};
    for (unsigned i = 0; i < 16 && len > 0; ++i) {
        unsigned bits = len >= 8 ? 8 : len;
        out[i] = static_cast<uint8_t>(addr[i] & (0xff00u >> bits));
        len -= bits;
    }
    return out;
}

// The rules of one direction and family that cover each prefix. A rule covers a prefix
// when one of its peers contains it (is one of the prefix's ancestors, itself included)
// or when it has no peers (any address). Indexing the rules by the exact CIDRs they name
// makes that an ancestor walk (at most 129 lookups per prefix) instead of a scan of every
// peer of every rule, which was quadratic for personas naming many addresses. Rules are
// named by their index in the policy's rule list.
class CoverIndex {
  public:
    CoverIndex(const std::vector<ir::Rule>& all, const std::vector<uint32_t>& rules,
               ir::Family fam) {
        for (uint32_t r : rules) {
            if (all[r].peers.empty()) {
                any_.push_back(r);
                continue;
            }
            for (const auto& c : all[r].peers)
                if (c.family == fam) by_cidr_[{c.addr, c.prefix_len}].push_back(r);
        }
    }

    // Sorted rule indices, no repeats.
    std::vector<uint32_t> covering(const ir::Cidr& prefix) const {
        std::vector<uint32_t> rules = any_;
        for (unsigned len = 0; len <= prefix.prefix_len; ++len) {
            auto it = by_cidr_.find({truncated(prefix.addr, len), static_cast<uint8_t>(len)});
            if (it != by_cidr_.end())
                rules.insert(rules.end(), it->second.begin(), it->second.end());
        }
        std::sort(rules.begin(), rules.end());
        rules.erase(std::unique(rules.begin(), rules.end()), rules.end());
        return rules;
    }

  private:
    std::vector<uint32_t> any_;
    std::map<std::pair<std::array<uint8_t, 16>, uint8_t>, std::vector<uint32_t>> by_cidr_;
};

bool cidr_less(const ir::Cidr& a, const ir::Cidr& b) {
    if (a.addr != b.addr) return a.addr < b.addr;
    return a.prefix_len < b.prefix_len;
}

struct Decision {
    pbpf_verdict verdict;
    uint32_t rule_id;
    bool operator==(const Decision&) const = default;
};

// Deny beats allow; the lowest id among the deciding rules is reported; no match takes
// the default (rule 0).
Decision decide(const std::multiset<uint32_t>& denies, const std::multiset<uint32_t>& allows,
                pbpf_verdict fallback) {
    if (!denies.empty()) return {PBPF_VERDICT_DENY, *denies.begin()};
    if (!allows.empty()) return {PBPF_VERDICT_ALLOW, *allows.begin()};
    return {fallback, 0};
}

// Cuts [lo, hi] into aligned power-of-two blocks (at most 30 for 16-bit ports).
template <typename Emit>
void emit_blocks(uint32_t lo, uint32_t hi, Emit&& emit) {
    while (lo <= hi) {
        unsigned size_log = 0;
        while (size_log < 16) {
            uint32_t next = 1u << (size_log + 1);
            if (lo % next != 0 || lo + next - 1 > hi) break;
            ++size_log;
        }
        emit(static_cast<uint16_t>(lo), 16 - size_log);
        lo += 1u << size_log;
    }
}

class PolicyLowerer {
  public:
    PolicyLowerer(const std::vector<ir::Rule>& rules, ir::Action default_ingress,
                  ir::Action default_egress, bool audit, uint32_t first_class)
        : rules_(rules),
          default_ingress_(default_ingress),
          default_egress_(default_egress),
          audit_(audit) {
        out_.next_class = first_class;
    }

    LoweredPolicy run() && {
        for (ir::Direction d : {ir::Direction::Ingress, ir::Direction::Egress})
            for (ir::Family f : {ir::Family::V4, ir::Family::V6}) direction_family(d, f);
        return std::move(out_);
    }

  private:
    const std::vector<ir::Rule>& rules_;
    ir::Action default_ingress_, default_egress_;
    bool audit_;
    LoweredPolicy out_;

    pbpf_verdict default_of(ir::Direction d) const {
        ir::Action a = d == ir::Direction::Ingress ? default_ingress_ : default_egress_;
        return a == ir::Action::Deny ? PBPF_VERDICT_DENY : PBPF_VERDICT_ALLOW;
    }

    void direction_family(ir::Direction dir, ir::Family fam) {
        std::vector<uint32_t> rules;
        std::vector<ir::Cidr> prefixes;
        ir::Cidr all;
        all.family = fam;
        prefixes.push_back(all);
        for (uint32_t i = 0; i < rules_.size(); ++i) {
            const ir::Rule& r = rules_[i];
            if (r.direction != dir || !proto_reaches(r.proto, fam)) continue;
            rules.push_back(i);
            for (const auto& c : r.peers)
                if (c.family == fam) prefixes.push_back(c);
        }
        std::sort(prefixes.begin(), prefixes.end(), cidr_less);
        prefixes.erase(std::unique(prefixes.begin(), prefixes.end()), prefixes.end());

        // Classes are numbered in the order of their first prefix, so ids are stable for
        // equal input.
        std::map<std::vector<uint32_t>, uint32_t> classes;
        const CoverIndex index(rules_, rules, fam);
        for (const auto& prefix : prefixes) {
            std::vector<uint32_t> covering = index.covering(prefix);
            auto [it, fresh] = classes.emplace(covering, out_.next_class);
            if (fresh) {
                ++out_.next_class;
                port_table(it->second, covering, dir, fam);
            }
            out_.entries.push_back(pbpf::make_addr_entry(
                dir == ir::Direction::Ingress ? PBPF_DIR_INGRESS : PBPF_DIR_EGRESS,
                fam == ir::Family::V4 ? PBPF_FAMILY_IPV4 : PBPF_FAMILY_IPV6, prefix.addr.data(),
                prefix.prefix_len, it->second));
        }
    }

    // `covering`: indices of the rules that match the class's addresses.
    void port_table(uint32_t class_id, const std::vector<uint32_t>& covering, ir::Direction dir,
                    ir::Family fam) {
        const pbpf_verdict fallback = default_of(dir);
        const pbpf_proto buckets[] = {PBPF_PROTO_TCP, PBPF_PROTO_UDP,
                                      fam == ir::Family::V4 ? PBPF_PROTO_ICMP : PBPF_PROTO_ICMPV6,
                                      PBPF_PROTO_OTHER};
        for (pbpf_proto bucket : buckets) {
            // Sweep over the port space: a rule enters its deny/allow set at lo and leaves
            // it after hi; every boundary starts a new interval.
            std::map<uint32_t, std::vector<std::pair<uint32_t, int>>>
                events;  // port -> (rule index, +1/-1)
            for (uint32_t i : covering) {
                const ir::Rule& r = rules_[i];
                if (!applies(r.proto, bucket)) continue;
                if (r.ports.empty() || (bucket != PBPF_PROTO_TCP && bucket != PBPF_PROTO_UDP)) {
                    events[0].push_back({i, +1});
                    continue;
                }
                for (const auto& pr : r.ports) {
                    events[pr.lo].push_back({i, +1});
                    events[uint32_t{pr.hi} + 1].push_back({i, -1});
                }
            }
            events[0];  // the first interval starts at 0 even with no rules
            bool ported = bucket == PBPF_PROTO_TCP || bucket == PBPF_PROTO_UDP;
            // The bags hold rule ids (what is reported), one per matching rule.
            std::multiset<uint32_t> denies, allows;
            auto bag_of = [&](uint32_t i) -> std::multiset<uint32_t>& {
                return rules_[i].action == ir::Action::Deny ? denies : allows;
            };
            if (!ported) {
                for (auto [i, delta] : events[0]) bag_of(i).insert(rules_[i].id);
                Decision d = decide(denies, allows, fallback);
                out_.entries.push_back(
                    pbpf::make_port_entry(class_id, bucket, 0, 0, d.verdict, d.rule_id, audit_));
                continue;
            }
            std::vector<std::pair<uint32_t, Decision>> starts;  // interval start -> decision
            for (const auto& [port, changes] : events) {
                if (port > 65535) break;
                for (auto [i, delta] : changes) {
                    auto& bag = bag_of(i);
                    if (delta > 0)
                        bag.insert(rules_[i].id);
                    else
                        bag.erase(bag.find(rules_[i].id));
                }
                Decision d = decide(denies, allows, fallback);
                if (starts.empty() || !(starts.back().second == d)) starts.push_back({port, d});
            }
            for (size_t k = 0; k < starts.size(); ++k) {
                uint32_t lo = starts[k].first;
                uint32_t hi = k + 1 < starts.size() ? starts[k + 1].first - 1 : 65535;
                Decision d = starts[k].second;
                emit_blocks(lo, hi, [&](uint16_t port, unsigned plen) {
                    out_.entries.push_back(pbpf::make_port_entry(class_id, bucket, port, plen,
                                                                 d.verdict, d.rule_id, audit_));
                });
            }
        }
    }

    static bool applies(ir::Proto p, pbpf_proto bucket) {
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
};

}  // namespace

LoweredPolicy lower_policy(const std::vector<ir::Rule>& rules, ir::Action default_ingress,
                           ir::Action default_egress, bool audit, uint32_t first_class) {
    return PolicyLowerer(rules, default_ingress, default_egress, audit, first_class).run();
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
    image.entries = std::move(policy.entries);
    image.class_count = policy.next_class - 1;
    lower_settings(persona, image);
    image.canonicalize();
    return image;
}

pbpf::MapImage lower(const std::vector<ir::Persona>& personas) {
    pbpf::MapImage m;
    for (const auto& p : personas) m.personas.push_back(lower(p));
    std::stable_sort(m.personas.begin(), m.personas.end(),
                     [](const auto& a, const auto& b) { return a.name < b.name; });
    return m;
}

}  // namespace pdl
