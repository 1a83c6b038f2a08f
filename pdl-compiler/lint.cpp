// The lint pass (lint.h). Rule-level findings are decided exactly on what rules match:
// a packet is a (protocol, destination port, peer address) triple; a rule without `port`
// covers every port, `any` peers cover every address of the families its protocol
// reaches. Port lists are merged into disjoint ranges and CIDR lists aggregated (nested
// CIDRs dropped, sibling halves joined), so that a CIDR lies in a union of CIDRs exactly
// when it lies in one member. The rule-level checks compare rules pairwise; their work is
// bounded per file (kWorkBudget), and past the bound they stop instead of making a huge
// file slow to compile (they only ever miss a warning, never report a wrong one).
#include "pdl-compiler/lint.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>

#include "pdl-compiler/countries.h"
#include "pdl-compiler/values.h"

namespace pdl {
namespace {

using ir::Cidr;
using ir::PortRange;

constexpr size_t kWorkBudget = 4'000'000;

// Protocols as packets carry them: `any` matches all five.
enum class Atom { Tcp, Udp, Icmp, Icmpv6, Other };

// Called for every pair of rules compared: no allocation.
std::span<const Atom> atoms_of(ir::Proto p) {
    static constexpr Atom kAll[] = {Atom::Tcp, Atom::Udp, Atom::Icmp, Atom::Icmpv6, Atom::Other};
    switch (p) {
        case ir::Proto::Tcp:
            return {kAll, 1};
        case ir::Proto::Udp:
            return {kAll + 1, 1};
        case ir::Proto::Icmp:
            return {kAll + 2, 1};
        case ir::Proto::Icmpv6:
            return {kAll + 3, 1};
        case ir::Proto::Any:
            break;
    }
    return kAll;
}

bool proto_covers(ir::Proto p, Atom a) { return p == ir::Proto::Any || atoms_of(p)[0] == a; }
bool has_ports(Atom a) { return a == Atom::Tcp || a == Atom::Udp; }
bool reaches(Atom a, ir::Family f) {
    if (a == Atom::Icmp) return f == ir::Family::V4;
    if (a == Atom::Icmpv6) return f == ir::Family::V6;
    return true;
}
bool reaches(ir::Proto p, ir::Family f) {
    if (p == ir::Proto::Icmp) return f == ir::Family::V4;
    if (p == ir::Proto::Icmpv6) return f == ir::Family::V6;
    return true;
}

const char* direction_name(ir::Direction d) {
    return d == ir::Direction::Egress ? "egress" : "ingress";
}
const char* action_name(ir::Action a) { return a == ir::Action::Deny ? "deny" : "allow"; }

bool cidr_less(const Cidr& a, const Cidr& b) {
    return std::tie(a.family, a.addr, a.prefix_len) < std::tie(b.family, b.addr, b.prefix_len);
}

// Sorted, disjoint, sibling halves joined: the canonical form of a set of addresses. Done
// in place on v[from, end), which it shortens.
void aggregate_tail(std::vector<Cidr>& v, size_t from) {
    std::sort(v.begin() + static_cast<std::ptrdiff_t>(from), v.end(), cidr_less);
    size_t out = from;  // v[from, out): the result so far (never ahead of the input)
    for (size_t i = from; i < v.size(); ++i) {
        const Cidr c = v[i];
        // Sorted by address then length, a CIDR inside a kept one is inside the last.
        if (out > from && cidr_contains(v[out - 1], c)) continue;
        v[out++] = c;
        while (out - from >= 2) {
            const Cidr& a = v[out - 2];
            const Cidr& b = v[out - 1];
            if (a.family != b.family || a.prefix_len != b.prefix_len || a.prefix_len == 0) break;
            Cidr parent = a;
            parent.prefix_len = static_cast<uint8_t>(a.prefix_len - 1);
            parent.addr[parent.prefix_len / 8] &=
                static_cast<uint8_t>(~(0x80u >> (parent.prefix_len % 8)));
            if (!cidr_contains(parent, b)) break;
            --out;
            v[out - 1] = parent;
        }
    }
    v.resize(out);
}

std::vector<Cidr> aggregate(std::vector<Cidr> v) {
    aggregate_tail(v, 0);
    return v;
}

// Sorted, overlapping and adjacent ranges joined; in place on v[from, end), like
// aggregate_tail().
void merge_tail(std::vector<PortRange>& v, size_t from) {
    std::sort(v.begin() + static_cast<std::ptrdiff_t>(from), v.end(),
              [](const PortRange& a, const PortRange& b) { return a.lo < b.lo; });
    size_t out = from;
    for (size_t i = from; i < v.size(); ++i) {
        const PortRange r = v[i];
        if (out > from && r.lo <= static_cast<uint32_t>(v[out - 1].hi) + 1)
            v[out - 1].hi = std::max(v[out - 1].hi, r.hi);
        else
            v[out++] = r;
    }
    v.resize(out);
}

const PortRange kAllPorts[] = {{0, 65535}};

// What a rule matches, in canonical form. The lists are views into a NormPool.
struct Norm {
    const ir::Rule* rule = nullptr;
    Span span;
    std::span<const PortRange> ports;  // tcp/udp: merged, never empty; other protocols: empty
    std::span<const Cidr> peers;       // aggregated; never empty
    std::span<const PortRange> ports_for_atom() const {
        return ports.empty() ? std::span<const PortRange>(kAllPorts) : ports;
    }
};

// The ports and peers of many Norms in two vectors, so that normalizing the rules of a
// persona allocates twice rather than a few times per rule. Norms view into it: it is
// sized for the rules first (plan() each, then reserve()), and normalize() never grows it.
class NormPool {
  public:
    void plan(const ir::Rule& r) {
        ports_needed_ += r.ports.size();
        peers_needed_ += std::max<size_t>(r.peers.size(), 2);
    }
    void reserve() {
        ports_.reserve(ports_needed_);
        peers_.reserve(peers_needed_);
    }

    Norm normalize(const ir::Rule& r, Span span) {
        assert(ports_.size() + r.ports.size() <= ports_.capacity());
        assert(peers_.size() + std::max<size_t>(r.peers.size(), 2) <= peers_.capacity());
        Norm n;
        n.rule = &r;
        n.span = span;
        if (r.proto == ir::Proto::Tcp || r.proto == ir::Proto::Udp) {
            if (r.ports.empty()) {
                n.ports = kAllPorts;
            } else {
                const size_t from = ports_.size();
                ports_.insert(ports_.end(), r.ports.begin(), r.ports.end());
                merge_tail(ports_, from);
                n.ports = std::span<const PortRange>(ports_).subspan(from);
            }
        }
        const size_t from = peers_.size();
        if (r.peers.empty()) {
            for (ir::Family f : {ir::Family::V4, ir::Family::V6}) {
                if (!reaches(r.proto, f)) continue;
                Cidr all;
                all.family = f;
                peers_.push_back(all);
            }
        } else {
            for (const auto& c : r.peers)
                if (reaches(r.proto, c.family)) peers_.push_back(c);
        }
        aggregate_tail(peers_, from);
        n.peers = std::span<const Cidr>(peers_).subspan(from);
        return n;
    }

  private:
    std::vector<PortRange> ports_;
    std::vector<Cidr> peers_;
    size_t ports_needed_ = 0, peers_needed_ = 0;
};

// Orders rules by action, direction, protocol and match set: rules that compare equal
// either way are the same rule.
bool norm_less(const Norm& a, const Norm& b) {
    const ir::Rule& x = *a.rule;
    const ir::Rule& y = *b.rule;
    if (std::tie(x.action, x.direction, x.proto) != std::tie(y.action, y.direction, y.proto))
        return std::tie(x.action, x.direction, x.proto) < std::tie(y.action, y.direction, y.proto);
    auto port_less = [](const PortRange& p, const PortRange& q) {
        return std::tie(p.lo, p.hi) < std::tie(q.lo, q.hi);
    };
    if (a.ports.size() != b.ports.size()) return a.ports.size() < b.ports.size();
    if (!std::equal(a.ports.begin(), a.ports.end(), b.ports.begin()))
        return std::lexicographical_compare(a.ports.begin(), a.ports.end(), b.ports.begin(),
                                            b.ports.end(), port_less);
    return std::lexicographical_compare(a.peers.begin(), a.peers.end(), b.peers.begin(),
                                        b.peers.end(), cidr_less);
}

bool ranges_intersect(std::span<const PortRange> a, std::span<const PortRange> b) {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i].hi < b[j].lo)
            ++i;
        else if (b[j].hi < a[i].lo)
            ++j;
        else
            return true;
    }
    return false;
}

// "2", "2 and 5", "2, 3 and 5".
std::string list_ids(const std::vector<const Norm*>& rules) {
    std::string s;
    for (size_t i = 0; i < rules.size(); ++i) {
        if (i > 0) s += i + 1 == rules.size() ? " and " : ", ";
        s += std::to_string(rules[i]->rule->id);
    }
    return s;
}

Span join(Span first, Span last) {
    return Span{first.offset, last.offset + last.length - first.offset};
}

// The statements of one persona that lint points at.
struct PersonaSyntax {
    std::vector<const ast::Rule*> rules;  // in source order, like the IR's rule ids
    std::optional<Span> mode;
    std::optional<Span> default_of[2];  // indexed by ir::Direction
    const ast::Encryption* encryption = nullptr;
    std::optional<Span> latency, priority;
    std::vector<const ast::Countries*> countries;
    std::vector<Span> needs_countries;                 // unknown, exempt, on-violation
    std::vector<const ast::ValueList*> address_lists;  // next-hops, exempt, servers
};

void gather(const ast::Block& block, PersonaSyntax& out) {
    for (const auto& st : block.statements) {
        if (auto* r = std::get_if<ast::Rule>(&st.node)) {
            out.rules.push_back(r);
        } else if (auto* m = std::get_if<ast::Mode>(&st.node)) {
            out.mode = join(st.keyword, m->value.span);
        } else if (auto* d = std::get_if<ast::Default>(&st.node)) {
            bool egress = d->direction.text == "egress";
            out.default_of[static_cast<int>(egress ? ir::Direction::Egress
                                                   : ir::Direction::Ingress)] =
                join(st.keyword, d->action.span);
        } else if (auto* s = std::get_if<ast::Section>(&st.node)) {
            gather(s->block, out);
        } else if (auto* e = std::get_if<ast::Encryption>(&st.node)) {
            out.encryption = e;
        } else if (auto* l = std::get_if<ast::LatencyTarget>(&st.node)) {
            out.latency = join(st.keyword, l->value.span);
        } else if (std::holds_alternative<ast::Priority>(st.node)) {
            out.priority = st.keyword;
        } else if (auto* c = std::get_if<ast::Countries>(&st.node)) {
            out.countries.push_back(c);
        } else if (auto* u = std::get_if<ast::Unknown>(&st.node)) {
            out.needs_countries.push_back(join(st.keyword, u->action.span));
        } else if (auto* v = std::get_if<ast::OnViolation>(&st.node)) {
            out.needs_countries.push_back(join(st.keyword, v->action.span));
        } else if (auto* x = std::get_if<ast::Exempt>(&st.node)) {
            out.needs_countries.push_back(st.keyword);
            out.address_lists.push_back(&x->cidrs);
        } else if (auto* n = std::get_if<ast::NextHops>(&st.node)) {
            out.address_lists.push_back(&n->hops);
        } else if (auto* d = std::get_if<ast::DnsServers>(&st.node)) {
            out.address_lists.push_back(&d->servers);
        }
    }
}

struct SetData {
    std::vector<PortRange> ports;
    std::vector<Cidr> cidrs;
    Span name_span;
    bool used = false;
};

// One value a list item stands for (a set reference stands for several), as an
// interval of a totally ordered key: ports, or family + address for CIDRs.
template <typename Key, typename Value>
struct Elem {
    Key lo, hi;
    size_t item = 0;  // index into the list's items
    Value value;      // formatted only for a warning
};

std::string format_value(const PortRange& r) { return format_port_range(r); }
std::string format_value(const Cidr& c) { return format_cidr(c); }

using AddrKey = std::array<uint8_t, 17>;  // family, then the 16 address bytes

Elem<AddrKey, Cidr> cidr_elem(const Cidr& c, size_t item) {
    Elem<AddrKey, Cidr> e;
    e.lo[0] = e.hi[0] = static_cast<uint8_t>(c.family);
    for (unsigned i = 0; i < 16; ++i) e.lo[i + 1] = e.hi[i + 1] = c.addr[i];
    unsigned max_len = c.family == ir::Family::V6 ? 128 : 32;
    for (unsigned bit = c.prefix_len; bit < max_len; ++bit)
        e.hi[1 + bit / 8] |= static_cast<uint8_t>(0x80u >> (bit % 8));
    e.item = item;
    e.value = c;
    return e;
}

Elem<uint32_t, PortRange> port_elem(const PortRange& r, size_t item) {
    return Elem<uint32_t, PortRange>{r.lo, r.hi, item, r};
}

class Linter {
  public:
    Linter(Diagnostics& d, const LintOptions& o) : d_(d), werror_(o.werror) {}

    void run(const ast::File& file, const std::vector<ir::Persona>& personas) {
        for (const auto& item : file.items)
            if (auto* s = std::get_if<ast::SetDecl>(&item.node)) set_decl(*s);
        size_t next = 0;
        for (const auto& item : file.items) {
            auto* p = std::get_if<ast::PersonaDecl>(&item.node);
            if (!p) continue;
            if (next >= personas.size()) break;  // cannot happen in a file without errors
            persona(*p, personas[next++]);
        }
        for (const auto& item : file.items)
            if (auto* b = std::get_if<ast::BindDecl>(&item.node); b && b->block.statements.empty())
                report(b->persona.span, "bind block for '" + std::string(b->persona.text) +
                                            "' matches no workload; add cgroup, user, group or "
                                            "interface lines");
        // A file of sets only is a library for files that import it: its sets are meant
        // for them.
        bool library = std::none_of(file.items.begin(), file.items.end(), [](const auto& i) {
            return std::holds_alternative<ast::PersonaDecl>(i.node);
        });
        for (const auto& [name, set] : sets_)
            if (!set.used && !library) report(set.name_span, "set '" + name + "' is never used");
    }

  private:
    // Like errors, warnings stop at Diagnostics::kMaxErrors: hostile input must not make
    // the report unbounded. (With --werror the error limit applies.)
    Diagnostic& report(Span span, std::string message) {
        if (werror_) return d_.error(span, message + " [--werror]");
        if (reported_ >= Diagnostics::kMaxErrors) {
            discard_ = Diagnostic{};
            return discard_;
        }
        if (++reported_ == Diagnostics::kMaxErrors)
            message += " (too many warnings; stopping here)";
        return d_.warning(span, std::move(message));
    }

    // False once the rule-level checks have used up their budget.
    bool tick(size_t n = 1) {
        work_ += n;
        return work_ <= kWorkBudget;
    }

    // ---- values and lists ----

    void set_decl(const ast::SetDecl& s) {
        SetData data;
        data.name_span = s.name.span;
        std::vector<const ast::Item*> items;
        std::vector<Elem<uint32_t, PortRange>> ports;
        std::vector<Elem<AddrKey, Cidr>> cidrs;
        for (const auto& item : s.items.items) {
            items.push_back(&item);
            if (auto port = parse_port_item(item.text)) {
                single_port_range(item, port->range);
                data.ports.push_back(port->range);
                ports.push_back(port_elem(port->range, items.size() - 1));
            } else if (auto cidr = parse_cidr(item.text)) {
                data.cidrs.push_back(cidr->cidr);
                cidrs.push_back(cidr_elem(cidr->cidr, items.size() - 1));
            }
        }
        overlaps(items, std::move(ports), "in this set");
        overlaps(items, std::move(cidrs), "in this set");
        sets_.emplace(s.name.text, std::move(data));
    }

    void single_port_range(const ast::Item& item, const PortRange& r) {
        if (r.lo != r.hi || item.text.find('-') == std::string_view::npos) return;
        report(item.span, "range " + std::string(item.text) + " is a single port; write " +
                              std::to_string(r.lo));
    }

    // The set an item names, marked used; nullptr for other items.
    SetData* use_set(const ast::Item& item) {
        if (!item.set_ref) return nullptr;
        auto it = sets_.find(item.text);
        if (it == sets_.end()) return nullptr;
        it->second.used = true;
        return &it->second;
    }

    // A list of one item (most lists) has nothing to overlap: its values are not gathered.
    void port_list(const ast::ValueList& list) {
        if (list.items.size() < 2) {
            for (const auto& item : list.items) {
                if (item.set_ref) {
                    use_set(item);
                } else if (item.text.find('-') != std::string_view::npos) {  // a range
                    if (auto port = parse_port_item(item.text))
                        single_port_range(item, port->range);
                }
            }
            return;
        }
        std::vector<const ast::Item*> items;
        std::vector<Elem<uint32_t, PortRange>> elems;
        for (const auto& item : list.items) {
            items.push_back(&item);
            if (item.set_ref) {
                if (const SetData* set = use_set(item))
                    for (const auto& r : set->ports)
                        elems.push_back(port_elem(r, items.size() - 1));
            } else if (auto port = parse_port_item(item.text)) {
                single_port_range(item, port->range);
                elems.push_back(port_elem(port->range, items.size() - 1));
            }
        }
        overlaps(items, std::move(elems), "in this list");
    }

    void peer_list(const ast::ValueList& list) {
        if (list.items.size() < 2) {
            for (const auto& item : list.items) use_set(item);
            return;
        }
        std::vector<const ast::Item*> items;
        std::vector<Elem<AddrKey, Cidr>> elems;
        for (const auto& item : list.items) {
            items.push_back(&item);
            if (item.set_ref) {
                if (const SetData* set = use_set(item))
                    for (const auto& c : set->cidrs)
                        elems.push_back(cidr_elem(c, items.size() - 1));
            } else if (auto cidr = parse_cidr(item.text)) {
                elems.push_back(cidr_elem(cidr->cidr, items.size() - 1));
            }
        }
        overlaps(items, std::move(elems), "in this list");
    }

    // Items of one list whose values overlap: a sweep over the values sorted by start,
    // keeping the value reaching furthest (and the furthest of another item). At most one
    // warning per item, on the item that can go: the narrower one, else the later one.
    template <typename Key, typename Value>
    void overlaps(const std::vector<const ast::Item*>& items, std::vector<Elem<Key, Value>> elems,
                  const std::string& where) {
        using E = Elem<Key, Value>;
        if (items.size() < 2) return;
        std::sort(elems.begin(), elems.end(), [](const E& a, const E& b) {
            return std::tie(a.lo, b.hi, a.item) < std::tie(b.lo, a.hi, b.item);
        });
        std::vector<bool> reported(items.size());
        const E* best = nullptr;   // furthest-reaching so far
        const E* other = nullptr;  // furthest-reaching of an item other than best's
        for (const auto& x : elems) {
            const E* c = best && best->item != x.item ? best : other;
            if (c && x.lo <= c->hi) overlap(items, *c, x, reported, where);
            if (!best || x.hi > best->hi) {
                if (best && best->item != x.item) other = best;
                best = &x;
            } else if (x.item != best->item && (!other || x.hi > other->hi)) {
                other = &x;
            }
        }
    }

    // `c` starts no later than `x` (and at the same start, reaches at least as far).
    template <typename Key, typename Value>
    void overlap(const std::vector<const ast::Item*>& items, const Elem<Key, Value>& c,
                 const Elem<Key, Value>& x, std::vector<bool>& reported, const std::string& where) {
        using E = Elem<Key, Value>;
        const bool equal = c.lo == x.lo && c.hi == x.hi;
        const bool inside = !equal && x.hi <= c.hi;  // x strictly inside c
        const E& earlier = c.item < x.item ? c : x;
        const E& later = c.item < x.item ? x : c;
        const E& target = inside ? x : later;
        if (reported[target.item]) return;
        reported[target.item] = true;
        const ast::Item& e = *items[earlier.item];
        const ast::Item& l = *items[later.item];
        auto desc = [&items](const E& v) {
            const ast::Item& it = *items[v.item];
            return it.set_ref ? format_value(v.value) + " (in set '$" + std::string(it.text) + "')"
                              : std::string(it.text);
        };
        const Span span = items[target.item]->span;
        if (e.set_ref && l.set_ref && e.text == l.text) {
            report(span, "set '$" + std::string(l.text) + "' is already " + where);
        } else if (equal) {
            report(span, desc(later) + " is already " + where +
                             (e.set_ref ? " (in set '$" + std::string(e.text) + "')" : ""));
        } else if (inside) {
            report(span, desc(x) + " is already covered by " + desc(c) + " " + where);
        } else {
            report(span, desc(later) + " overlaps " + desc(earlier) + " " + where);
        }
    }

    // ---- personas and rules ----

    void persona(const ast::PersonaDecl& decl, const ir::Persona& p) {
        PersonaSyntax syn;
        gather(decl.block, syn);
        for (const ast::Rule* r : syn.rules) {
            if (r->port_keyword) port_list(r->ports);
            peer_list(r->peers);
        }
        for (const ast::ValueList* list : syn.address_lists) peer_list(*list);
        if (syn.encryption)
            for (const auto& m : syn.encryption->exceptions.items) {
                if (m.port_keyword) port_list(m.ports);
                if (m.peer_keyword) peer_list(m.peers);
            }
        settings(p, syn);
        if (p.mode == ir::Mode::Audit && syn.mode && p.default_ingress == ir::Action::Allow &&
            p.default_egress == ir::Action::Allow &&
            std::none_of(p.rules.begin(), p.rules.end(),
                         [](const ir::Rule& r) { return r.action == ir::Action::Deny; })) {
            auto& w = report(*syn.mode, "audit mode has nothing to report: persona '" + p.name +
                                            "' has no deny rule and both defaults allow");
            w.notes.push_back(
                {"audit mode counts what deny rules and 'default ... deny' would drop",
                 std::nullopt});
        }
        // The persona's own rules come last in `rules`, after the inherited ones (whose
        // findings belong to the file that declares them), in source order.
        if (syn.rules.size() > p.rules.size()) return;
        const size_t inherited = p.rules.size() - syn.rules.size();
        NormPool pool;
        for (size_t i = 0; i < syn.rules.size(); ++i) pool.plan(p.rules[inherited + i]);
        pool.reserve();
        std::vector<Norm> rules;
        rules.reserve(syn.rules.size());
        for (size_t i = 0; i < syn.rules.size(); ++i) {
            const ast::Rule& r = *syn.rules[i];
            rules.push_back(
                pool.normalize(p.rules[inherited + i], join(r.action.span, r.peers.span)));
        }
        // Equal rules sort next to each other, the first of them (in source order) first.
        std::vector<size_t> order(rules.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t a, size_t b) { return norm_less(rules[a], rules[b]); });
        std::vector<size_t> first_of(rules.size());  // the first rule equal to each one
        for (size_t k = 0; k < order.size(); ++k) {
            const bool same = k > 0 && !norm_less(rules[order[k - 1]], rules[order[k]]);
            first_of[order[k]] = same ? first_of[order[k - 1]] : order[k];
        }
        std::vector<bool> duplicate(rules.size());
        for (size_t i = 0; i < rules.size(); ++i) {
            if (first_of[i] == i) continue;
            duplicate[i] = true;
            const Norm& first = rules[first_of[i]];
            auto& w =
                report(rules[i].span, "rule " + std::to_string(rules[i].rule->id) +
                                          " duplicates rule " + std::to_string(first.rule->id) +
                                          " (same action, direction, protocol, ports "
                                          "and peers)");
            w.notes.push_back({"rule " + std::to_string(first.rule->id) + " is here", first.span});
        }
        // By direction, then action: each rule is only compared with the opposite action.
        std::vector<const Norm*> by_kind[2][2];
        for (const auto& n : rules)
            by_kind[static_cast<int>(n.rule->direction)][static_cast<int>(n.rule->action)]
                .push_back(&n);
        for (size_t i = 0; i < rules.size(); ++i) {
            if (duplicate[i]) continue;
            const ir::Rule& r = *rules[i].rule;
            const int opposite = r.action == ir::Action::Allow
                                     ? static_cast<int>(ir::Action::Deny)
                                     : static_cast<int>(ir::Action::Allow);
            if (!effect(p, syn, by_kind[static_cast<int>(r.direction)][opposite], rules[i]))
                return;  // out of budget
        }
    }

    // ---- settings ----

    void settings(const ir::Persona& p, const PersonaSyntax& syn) {
        if (syn.latency && !p.qos.priority) {
            auto& w =
                report(*syn.latency, "latency target without a qos priority: persona '" + p.name +
                                         "' competes at normal priority, so nothing "
                                         "backs the target under contention");
            w.notes.push_back(
                {"add 'priority high' (or critical) to the qos block, or "
                 "'priority normal' to say that is intended",
                 std::nullopt});
        }
        if (syn.countries.empty() && !p.sovereignty.list)
            for (Span s : syn.needs_countries)
                report(s, "this sovereignty setting has no effect: persona '" + p.name +
                              "' has no 'allow countries' or 'deny countries' list");
        for (const ast::Countries* c : syn.countries) countries(*c);
        if (syn.encryption && syn.encryption->except_keyword) exceptions(p, *syn.encryption);
    }

    // Countries named twice, directly or through a group.
    void countries(const ast::Countries& c) {
        std::map<std::string, std::string> seen;  // code -> how it was named first
        for (const auto& item : c.countries.items) {
            const std::string text(item.text);
            std::vector<std::string> codes;
            if (const auto* members = country_group(text))
                codes = *members;
            else
                codes = {text};
            bool group = codes.size() != 1 || codes[0] != text;
            size_t repeated = 0;
            std::string first;  // how the first repeated code was named before
            for (const auto& code : codes) {
                auto [it, fresh] = seen.emplace(code, text);
                if (!fresh && repeated++ == 0) first = it->second;
            }
            if (repeated == 0) continue;
            if (!group)
                report(item.span, text + " is already in the list" +
                                      (first == text ? "" : ", through " + first));
            else if (repeated == codes.size())
                report(item.span, "every country of " + text + " is already in the list");
        }
    }

    // Encryption exceptions that no flow the persona allows can match.
    void exceptions(const ir::Persona& p, const ast::Encryption& e) {
        if (e.exceptions.items.size() != p.encryption.exceptions.size()) return;
        for (size_t i = 0; i < p.encryption.exceptions.size(); ++i) {
            const ir::Match& m = p.encryption.exceptions[i];
            bool allowed = false;
            for (ir::Direction dir : {ir::Direction::Ingress, ir::Direction::Egress}) {
                if (m.direction && *m.direction != dir) continue;
                if (!tick(0)) return;
                if (may_allow(p, m, dir)) allowed = true;
            }
            if (allowed) continue;
            const std::string dirs =
                m.direction ? std::string(direction_name(*m.direction)) : "ingress or egress";
            auto& w = report(e.exceptions.items[i].span,
                             "encryption exception '" + m.text + "' has no effect: persona '" +
                                 p.name + "' allows no " + dirs + " flow it matches");
            w.notes.push_back(
                {"an exception only matters for flows that a rule (or the "
                 "default) allows",
                 std::nullopt});
        }
    }

    // Might some flow of `m` in `dir` be allowed? Exact when the default allows (the flow
    // is dropped only if deny rules cover all of m); when the default denies, an allow
    // rule must overlap m (a deny that drops exactly that overlap is not looked at: the
    // answer errs on "might", so a warning is never wrong).
    bool may_allow(const ir::Persona& p, const ir::Match& m, ir::Direction dir) {
        ir::Rule pseudo;
        pseudo.action = ir::Action::Allow;
        pseudo.direction = dir;
        pseudo.proto = m.proto;
        pseudo.ports = m.ports;
        pseudo.peers = m.peers;
        NormPool pool;
        pool.plan(pseudo);
        for (const auto& r : p.rules)
            if (r.direction == dir) pool.plan(r);
        pool.reserve();
        Norm e = pool.normalize(pseudo, Span{});
        std::vector<Norm> denies, allows;
        for (const auto& r : p.rules) {
            if (r.direction != dir) continue;
            (r.action == ir::Action::Deny ? denies : allows).push_back(pool.normalize(r, Span{}));
        }
        std::vector<const Norm*> against;
        for (const auto& d : denies) {
            if (!tick()) return true;
            if (intersects(e, d)) against.push_back(&d);
        }
        if (!against.empty() && covered(e, against)) return false;
        const ir::Action def = dir == ir::Direction::Egress ? p.default_egress : p.default_ingress;
        if (def == ir::Action::Allow) return true;
        for (const auto& a : allows) {
            if (!tick()) return true;
            if (intersects(e, a)) return true;
        }
        return false;
    }

    // Shadowed allow rules and rules that only restate the default; `opposite` holds the
    // rules of a's direction with the other action. False when the work budget ran out.
    bool effect(const ir::Persona& p, const PersonaSyntax& syn,
                const std::vector<const Norm*>& opposite, const Norm& a) {
        const ir::Rule& r = *a.rule;
        std::vector<const Norm*> against;  // opposite rules that match some of a's packets
        for (const Norm* b : opposite) {
            if (!tick()) return false;
            if (intersects(a, *b)) against.push_back(b);
        }
        if (!tick(0)) return false;
        const int dir = static_cast<int>(r.direction);
        const ir::Action def =
            r.direction == ir::Direction::Egress ? p.default_egress : p.default_ingress;
        const std::string id = std::to_string(r.id);
        if (against.empty()) {
            if (def != r.action) return true;
            auto& w =
                report(a.span, "rule " + id + " has no effect: " + direction_name(r.direction) +
                                   " already defaults to " + action_name(def));
            if (syn.default_of[dir]) {
                w.notes.push_back({std::string(direction_name(r.direction)) + " defaults to " +
                                       action_name(def) + " here",
                                   *syn.default_of[dir]});
            } else {
                w.notes.push_back({std::string(direction_name(r.direction)) +
                                       " defaults to allow when the persona does not say "
                                       "'default " +
                                       direction_name(r.direction) + " deny'",
                                   std::nullopt});
            }
            return true;
        }
        if (r.action != ir::Action::Allow) return true;
        std::vector<const Norm*> by;
        for (const Norm* d : against) {
            if (covered(a, std::span<const Norm* const>(&d, 1))) {
                by.push_back(d);
                break;
            }
        }
        if (by.empty() && against.size() > 1 && covered(a, against)) {
            // Name only the denies needed: drop each one the others make redundant.
            std::vector<bool> needed(against.size(), true);
            for (size_t k = against.size(); k-- > 0;) {
                std::vector<const Norm*> without;
                for (size_t j = 0; j < against.size(); ++j)
                    if (needed[j] && j != k) without.push_back(against[j]);
                if (covered(a, without)) needed[k] = false;
            }
            for (size_t j = 0; j < against.size(); ++j)
                if (needed[j]) by.push_back(against[j]);
        }
        if (!tick(0)) return false;
        if (by.empty()) return true;
        auto& w = report(a.span, "rule " + id + " is shadowed by deny rule" +
                                     (by.size() > 1 ? "s " : " ") + list_ids(by) +
                                     ": every packet it matches is denied");
        for (const Norm* d : by)
            w.notes.push_back({"deny rule " + std::to_string(d->rule->id) + " is here", d->span});
        return true;
    }

    // Does some packet match both rules?
    bool intersects(const Norm& a, const Norm& b) {
        for (Atom atom : atoms_of(a.rule->proto)) {
            if (!proto_covers(b.rule->proto, atom)) continue;
            if (has_ports(atom) && !ranges_intersect(a.ports_for_atom(), b.ports_for_atom()))
                continue;
            for (const auto& x : a.peers) {
                if (!reaches(atom, x.family)) continue;
                for (const auto& y : b.peers) {
                    if (!tick()) return true;  // out of budget: assume the worst
                    if (cidr_contains(x, y) || cidr_contains(y, x)) return true;
                }
            }
        }
        return false;
    }

    // Does the union of `ds` match every packet `a` matches?
    bool covered(const Norm& a, std::span<const Norm* const> ds) {
        for (Atom atom : atoms_of(a.rule->proto)) {
            std::vector<Cidr> need;
            for (const auto& c : a.peers)
                if (reaches(atom, c.family)) need.push_back(c);
            if (need.empty()) continue;  // a matches nothing of this protocol
            std::vector<const Norm*> da;
            for (const Norm* d : ds)
                if (proto_covers(d->rule->proto, atom)) da.push_back(d);
            if (da.empty()) return false;
            if (!has_ports(atom)) {
                if (!peers_covered(need, da)) return false;
                continue;
            }
            // Cut a's ports where any deny's ranges start or end; within each piece the
            // same denies apply to every port.
            std::vector<uint32_t> cuts;
            for (const Norm* d : da)
                for (const auto& r : d->ports_for_atom()) {
                    cuts.push_back(r.lo);
                    cuts.push_back(static_cast<uint32_t>(r.hi) + 1);
                }
            std::sort(cuts.begin(), cuts.end());
            cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
            for (const auto& range : a.ports_for_atom()) {
                uint32_t lo = range.lo;
                while (lo <= range.hi) {
                    auto next = std::upper_bound(cuts.begin(), cuts.end(), lo);
                    uint32_t hi =
                        next == cuts.end() ? range.hi : std::min<uint32_t>(range.hi, *next - 1);
                    std::vector<const Norm*> here;
                    for (const Norm* d : da) {
                        if (!tick()) return false;
                        for (const auto& r : d->ports_for_atom())
                            if (r.lo <= lo && lo <= r.hi) {
                                here.push_back(d);
                                break;
                            }
                    }
                    if (here.empty() || !peers_covered(need, here)) return false;
                    lo = hi + 1;
                }
            }
        }
        return true;
    }

    bool peers_covered(const std::vector<Cidr>& need, std::span<const Norm* const> ds) {
        std::vector<Cidr> have;
        for (const Norm* d : ds) have.insert(have.end(), d->peers.begin(), d->peers.end());
        if (!tick(have.size() * (need.size() + 1))) return false;
        have = aggregate(std::move(have));
        for (const auto& c : need)
            if (std::none_of(have.begin(), have.end(),
                             [&c](const Cidr& h) { return cidr_contains(h, c); }))
                return false;
        return true;
    }

    Diagnostics& d_;
    bool werror_ = false;
    std::map<std::string, SetData, std::less<>> sets_;
    size_t work_ = 0;
    size_t reported_ = 0;
    Diagnostic discard_;  // target of reports past the limit
};

}  // namespace

void lint(const ast::File& file, const std::vector<ir::Persona>& personas, Diagnostics& diags,
          const LintOptions& options) {
    Linter(diags, options).run(file, personas);
}

}  // namespace pdl
