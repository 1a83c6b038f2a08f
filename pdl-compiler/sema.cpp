// The semantic pass: resolves $sets and `extends` across the import closure, parses values
// and units, and checks everything the grammar cannot: duplicates, set kinds, address
// families, `port` only with tcp/udp, ranges, countries, conflicting settings, inheritance
// cycles, binds to unknown personas. Errors carry the location of what they are about and
// go to the Diagnostics of the file they are in.
//
// Each persona declaration is first checked on its own into a Draft (its own settings,
// each single-valued one optional); `extends` then merges drafts parent first: rules,
// exempt ranges and forwards add up, every other setting given by the child replaces the
// parent's (docs/pdl.md, "Inheritance").
#include "pdl-compiler/sema.h"

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "pdl-compiler/compiler.h"
#include "pdl-compiler/countries.h"
#include "pdl-compiler/values.h"

namespace pdl {

namespace {

enum class SetKind { Ports, Addresses, Invalid };

struct SetInfo {
    SetKind kind = SetKind::Invalid;
    std::vector<ir::PortRange> ports;
    std::vector<ir::Cidr> cidrs;
    Span name_span;
    size_t unit = 0;  // the file that defines it
};

// Keeps the first of equal items, in order, in O(n log n): lists and sets may hold tens of
// thousands of items, and a quadratic pass over them would let one file stall the agent.
// Most lists (every rule's) hold a few items: those are compared directly, without
// allocating.
template <class T, class Less>
void drop_repeats(std::vector<T>& v, Less less) {
    constexpr size_t kSmall = 16;
    if (v.size() < 2) return;
    if (v.size() <= kSmall) {
        size_t kept = 1;  // v[0, kept): the distinct items so far
        for (size_t i = 1; i < v.size(); ++i) {
            bool seen = false;
            for (size_t j = 0; j < kept && !seen; ++j) seen = v[j] == v[i];
            if (!seen) v[kept++] = v[i];
        }
        v.resize(kept);
        return;
    }
    std::vector<uint32_t> order(v.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return less(v[a], v[b]); });
    std::vector<bool> repeat(v.size());
    for (size_t k = 1; k < order.size(); ++k) repeat[order[k]] = v[order[k - 1]] == v[order[k]];
    size_t kept = 0;
    for (size_t i = 0; i < v.size(); ++i)
        if (!repeat[i]) v[kept++] = v[i];
    v.resize(kept);
}
void drop_repeats(std::vector<ir::PortRange>& v) {
    drop_repeats(v, [](const ir::PortRange& a, const ir::PortRange& b) {
        return std::tie(a.lo, a.hi) < std::tie(b.lo, b.hi);
    });
}
void drop_repeats(std::vector<ir::Cidr>& v) {
    drop_repeats(v, [](const ir::Cidr& a, const ir::Cidr& b) {
        return std::tie(a.family, a.addr, a.prefix_len) < std::tie(b.family, b.addr, b.prefix_len);
    });
}

const char* proto_name(ir::Proto p) {
    switch (p) {
        case ir::Proto::Tcp:
            return "tcp";
        case ir::Proto::Udp:
            return "udp";
        case ir::Proto::Icmp:
            return "icmp";
        case ir::Proto::Icmpv6:
            return "icmpv6";
        case ir::Proto::Any:
            return "any";
    }
    return "?";
}

constexpr size_t kMaxNextHops = 8;    // PBPF_MAX_NEXT_HOPS
constexpr size_t kMaxDnsServers = 4;  // PBPF_MAX_DNS_SERVERS
constexpr size_t kMaxSearchDomains = 6;

// A persona declaration checked on its own, before inheritance. Single-valued settings
// are optional: unset ones come from the parent, or the defaults.
struct Draft {
    std::optional<std::string> description;
    std::optional<ir::Mode> mode;
    std::optional<ir::Action> default_ingress, default_egress;
    std::vector<ir::Rule> rules;
    std::optional<ir::Encryption> encryption;
    std::optional<ir::Threshold> syn_flood, port_scan;
    std::optional<ir::Shaping> egress, ingress;
    std::optional<ir::Priority> priority;
    std::optional<uint64_t> latency_target_ns;
    std::optional<ir::Route> route;
    std::optional<std::vector<ir::Cidr>> next_hops;
    std::optional<uint8_t> max_hops;
    std::optional<ir::Action> country_list;
    std::vector<std::string> countries;  // with country_list
    std::optional<ir::Action> unknown;
    std::optional<ir::OnViolation> on_violation;
    std::vector<ir::Cidr> exempt;
    std::optional<std::vector<ir::Cidr>> dns_servers;
    std::optional<std::vector<std::string>> dns_search;
    std::vector<ir::Forward> forwards;
};

template <class T>
void inherit(std::optional<T>& child, const std::optional<T>& parent) {
    if (!child) child = parent;
}

bool same_forward(const ir::Forward& a, const ir::Forward& b) {
    return a.direction == b.direction && a.proto == b.proto && a.match_addr == b.match_addr &&
           a.match_port == b.match_port;
}

// The child's draft on top of its (already merged) parent's.
Draft merge(const Draft& parent, Draft child) {
    inherit(child.description, parent.description);
    inherit(child.mode, parent.mode);
    inherit(child.default_ingress, parent.default_ingress);
    inherit(child.default_egress, parent.default_egress);
    std::vector<ir::Rule> rules = parent.rules;
    rules.insert(rules.end(), std::make_move_iterator(child.rules.begin()),
                 std::make_move_iterator(child.rules.end()));
    child.rules = std::move(rules);
    inherit(child.encryption, parent.encryption);
    inherit(child.syn_flood, parent.syn_flood);
    inherit(child.port_scan, parent.port_scan);
    inherit(child.egress, parent.egress);
    inherit(child.ingress, parent.ingress);
    inherit(child.priority, parent.priority);
    inherit(child.latency_target_ns, parent.latency_target_ns);
    inherit(child.route, parent.route);
    inherit(child.next_hops, parent.next_hops);
    inherit(child.max_hops, parent.max_hops);
    if (!child.country_list) {
        child.country_list = parent.country_list;
        child.countries = parent.countries;
    }
    inherit(child.unknown, parent.unknown);
    inherit(child.on_violation, parent.on_violation);
    std::vector<ir::Cidr> exempt = parent.exempt;
    exempt.insert(exempt.end(), child.exempt.begin(), child.exempt.end());
    drop_repeats(exempt);
    child.exempt = std::move(exempt);
    inherit(child.dns_servers, parent.dns_servers);
    inherit(child.dns_search, parent.dns_search);
    // A child's forward for the same port replaces the parent's.
    std::vector<ir::Forward> forwards;
    for (const auto& f : parent.forwards)
        if (std::none_of(child.forwards.begin(), child.forwards.end(),
                         [&](const ir::Forward& c) { return same_forward(c, f); }))
            forwards.push_back(f);
    forwards.insert(forwards.end(), child.forwards.begin(), child.forwards.end());
    child.forwards = std::move(forwards);
    return child;
}

ir::Persona finish(std::string_view name, std::string_view parent, ir::SourceLoc loc, Draft d) {
    ir::Persona p;
    p.name = name;
    p.parent = parent;
    p.loc = std::move(loc);
    p.description = d.description.value_or("");
    p.mode = d.mode.value_or(ir::Mode::Enforce);
    p.default_ingress = d.default_ingress.value_or(ir::Action::Allow);
    p.default_egress = d.default_egress.value_or(ir::Action::Allow);
    p.rules = std::move(d.rules);
    for (size_t i = 0; i < p.rules.size(); ++i) p.rules[i].id = static_cast<uint32_t>(i + 1);
    p.encryption = d.encryption.value_or(ir::Encryption{});
    p.ids = {d.syn_flood, d.port_scan};
    p.qos = {d.egress, d.ingress, d.priority, d.latency_target_ns};
    p.topology.route = d.route;
    p.topology.next_hops = d.next_hops.value_or(std::vector<ir::Cidr>{});
    p.topology.max_hops = d.max_hops;
    p.sovereignty.list = d.country_list;
    p.sovereignty.countries = std::move(d.countries);
    p.sovereignty.unknown = d.unknown;
    p.sovereignty.exempt = std::move(d.exempt);
    p.sovereignty.on_violation = d.on_violation;
    p.dns.servers = d.dns_servers.value_or(std::vector<ir::Cidr>{});
    p.dns.search = d.dns_search.value_or(std::vector<std::string>{});
    p.forwards = std::move(d.forwards);
    return p;
}

ir::Proto proto_of(std::string_view p) {
    return p == "tcp"      ? ir::Proto::Tcp
           : p == "udp"    ? ir::Proto::Udp
           : p == "icmp"   ? ir::Proto::Icmp
           : p == "icmpv6" ? ir::Proto::Icmpv6
                           : ir::Proto::Any;
}

std::string join_words(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i)
        s += (i == 0 ? "" : i + 1 == v.size() ? " or " : ", ") + v[i];
    return s;
}

// RFC 1035 host names as resolv.conf takes them: labels of letters, digits and '-', not
// starting or ending with '-', at most 63 bytes each, 253 in all.
std::string check_domain(const std::string& d) {
    if (d.empty()) return "empty search domain";
    if (d.size() > 253) return "search domain is longer than 253 characters";
    size_t start = 0;
    std::string name = d.back() == '.' ? d.substr(0, d.size() - 1) : d;
    while (start <= name.size()) {
        size_t dot = name.find('.', start);
        std::string label = name.substr(start, dot == std::string::npos ? dot : dot - start);
        if (label.empty()) return "empty label in search domain '" + d + "'";
        if (label.size() > 63)
            return "label '" + label + "' of search domain '" + d +
                   "' is longer than 63 characters";
        for (char c : label)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-')
                return "invalid character '" + std::string(1, c) + "' in search domain '" + d +
                       "'; expected letters, digits, '-' and '.'";
        if (label.front() == '-' || label.back() == '-')
            return "label '" + label + "' of search domain '" + d + "' starts or ends with '-'";
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return "";
}

// cgroup path globs are absolute paths within the agent's cgroup tree.
std::string check_cgroup_glob(const std::string& g) {
    if (g.empty() || g[0] != '/')
        return "cgroup pattern '" + g +
               "' must be an absolute path in the cgroup tree, e.g. "
               "\"/system.slice/nginx.service\"";
    if (g.find("//") != std::string::npos)
        return "cgroup pattern '" + g + "' has an empty path component ('//')";
    for (const char* bad : {"/./", "/../"})
        if ((g + "/").find(bad) != std::string::npos)
            return "cgroup pattern '" + g + "' must not contain '.' or '..' components";
    for (char c : g)
        if (static_cast<unsigned char>(c) < 0x20)
            return "cgroup pattern '" + g + "' contains a control character";
    return "";
}

// Interface names are at most 15 bytes (IFNAMSIZ - 1); a glob may be longer only
// through its wildcards.
std::string check_interface_glob(const std::string& g) {
    if (g.empty()) return "empty interface pattern";
    size_t literal = 0;
    for (char c : g) {
        if (c == '/' || std::isspace(static_cast<unsigned char>(c)) ||
            static_cast<unsigned char>(c) < 0x20)
            return "interface pattern '" + g + "' contains '" + std::string(1, c) +
                   "', which no interface name can";
        if (c != '*' && c != '?') ++literal;
    }
    if (literal > 15)
        return "interface pattern '" + g +
               "' cannot match anything: interface names are at most 15 characters";
    return "";
}

// POSIX user and group names as shadow-utils accepts them, or a numeric id.
bool valid_account(const std::string& n) {
    if (n.empty() || n.size() > 32) return false;
    bool digits = std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) return parse_number(n, 0, 4294967294).has_value();  // (uid_t)-1 is "none"
    unsigned char c0 = static_cast<unsigned char>(n[0]);
    if (!(std::islower(c0) || c0 == '_')) return false;
    for (size_t i = 0; i < n.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(n[i]);
        bool last_dollar = c == '$' && i + 1 == n.size();
        if (!(std::islower(c) || std::isdigit(c) || c == '_' || c == '-' || c == '.' ||
              last_dollar))
            return false;
    }
    return true;
}

class Checker {
  public:
    explicit Checker(const std::vector<Unit>& units) : units_(units) {}

    CheckResult run() {
        visibility();
        for (cur_ = 0; cur_ < units_.size(); ++cur_)
            for (const auto& item : units_[cur_].file->items)
                if (auto* s = std::get_if<ast::SetDecl>(&item.node)) declare_set(*s);
        for (cur_ = 0; cur_ < units_.size(); ++cur_)
            for (const auto& item : units_[cur_].file->items)
                if (auto* p = std::get_if<ast::PersonaDecl>(&item.node))
                    declare_persona(*p, item.keyword);
        // Every declaration is checked, also in imported files, so that a library file
        // reports the same errors whether it is compiled alone or imported.
        for (auto& [name, decl] : personas_) {
            cur_ = decl.unit;
            decl.own = persona(*decl.decl, decl.errors);
            if (decl.decl->parent)
                if (auto parent = personas_.find(decl.decl->parent->text);
                    parent != personas_.end())
                    ++parent->second.children;
        }
        CheckResult out;
        for (cur_ = 0; cur_ < units_.size(); ++cur_) {
            bool main = cur_ + 1 == units_.size();
            for (const auto& item : units_[cur_].file->items) {
                if (auto* p = std::get_if<ast::PersonaDecl>(&item.node)) {
                    ir::Persona* merged = resolve(p->name.text, p);
                    // Each persona is output once; only its draft is read again (by children).
                    if (main && merged) out.personas.push_back(std::move(*merged));
                } else if (auto* b = std::get_if<ast::BindDecl>(&item.node)) {
                    auto rule = bind(*b, item.keyword);
                    if (main && rule) out.binds.push_back(std::move(*rule));
                }
            }
        }
        return out;
    }

  private:
    struct PersonaDeclInfo {
        const ast::PersonaDecl* decl = nullptr;
        size_t unit = 0;
        Span keyword;
        Draft own;
        bool errors = false;  // own checks failed
        enum class State { New, Visiting, Done, Bad } state = State::New;
        Draft merged;
        size_t children = 0;  // declarations that extend this one: they read `merged`
        std::optional<ir::Persona> result;
    };

    Diagnostics& d() { return *units_[cur_].diags; }

    std::string where(size_t unit, Span span) const {
        auto [line, col] = units_[unit].diags->line_col(span.offset);
        return units_[unit].diags->filename() + ":" + std::to_string(line) + ":" +
               std::to_string(col);
    }

    // A note pointing at a definition: with a caret in the same file, as text otherwise.
    void note_at(Diagnostic& e, const std::string& what, size_t unit, Span span) {
        if (unit == cur_)
            e.notes.push_back({what, span});
        else
            e.notes.push_back({what + " (" + where(unit, span) + ")", std::nullopt});
    }

    // visible_[a][b]: unit a may use the names of unit b.
    void visibility() {
        size_t n = units_.size();
        visible_.assign(n, std::vector<bool>(n, false));
        incomplete_.assign(n, false);
        for (size_t a = 0; a < n; ++a) {
            visible_[a][a] = true;
            incomplete_[a] = units_[a].incomplete;
            for (size_t b : units_[a].imports)
                if (b < a)
                    for (size_t c = 0; c < n; ++c)
                        if (visible_[b][c]) {
                            visible_[a][c] = true;
                            if (incomplete_[c]) incomplete_[a] = true;
                        }
        }
    }

    // Reports a name defined in a file that the current file does not import.
    void not_imported(Span span, const std::string& what, size_t unit) {
        d().error(span, what + " is defined in '" + units_[unit].diags->filename() +
                            "', which this file does not import");
    }

    // ---- sets ----

    void declare_set(const ast::SetDecl& s) {
        auto it = sets_.find(s.name.text);
        if (it != sets_.end()) {
            auto& e = d().error(s.name.span, "duplicate set '" + std::string(s.name.text) + "'");
            note_at(e, "'" + std::string(s.name.text) + "' is first defined here", it->second.unit,
                    it->second.name_span);
            return;
        }
        SetInfo info;
        info.name_span = s.name.span;
        info.unit = cur_;
        bool ok = true;
        const ast::Item* first_port = nullptr;
        const ast::Item* first_addr = nullptr;
        if (s.items.items.empty()) {
            d().error(s.items.span, "set '" + std::string(s.name.text) +
                                        "' is empty; expected at least one address, CIDR, "
                                        "port or port range");
            ok = false;
        }
        for (const auto& item : s.items.items) {
            if (item.set_ref) {
                d().error(item.span, "a set cannot contain another set ('$" +
                                         std::string(item.text) + "'); list its items instead");
                ok = false;
                continue;
            }
            if (auto port = parse_port_item(item.text)) {
                if (!port->error.empty()) {
                    d().error(item.span, port->error);
                    ok = false;
                    continue;
                }
                if (!first_port) first_port = &item;
                info.ports.push_back(port->range);
            } else if (auto cidr = parse_cidr(item.text)) {
                if (!cidr->error.empty()) {
                    d().error(item.span, cidr->error);
                    ok = false;
                    continue;
                }
                if (!first_addr) first_addr = &item;
                info.cidrs.push_back(cidr->cidr);
            } else {
                d().error(item.span, "invalid set item '" + std::string(item.text) +
                                         "'; expected an address, CIDR, port or port range");
                ok = false;
            }
        }
        if (first_port && first_addr) {
            bool port_first = first_port->span.offset < first_addr->span.offset;
            const ast::Item* first = port_first ? first_port : first_addr;
            const ast::Item* odd = port_first ? first_addr : first_port;
            auto& e =
                d().error(odd->span, "set '" + std::string(s.name.text) +
                                         "' mixes ports and addresses; '" + std::string(odd->text) +
                                         "' is " + (port_first ? "an address" : "a port") +
                                         " but '" + std::string(first->text) + "' is " +
                                         (port_first ? "a port" : "an address"));
            e.notes.push_back(
                {"a set holds either addresses and CIDRs, or ports and port "
                 "ranges; split it into two sets",
                 std::nullopt});
            ok = false;
        }
        drop_repeats(info.ports);
        drop_repeats(info.cidrs);
        if (ok) info.kind = first_port ? SetKind::Ports : SetKind::Addresses;
        sets_.emplace(s.name.text, std::move(info));
    }

    // nullptr after reporting an unknown or invisible set; an Invalid set is returned (its
    // errors were reported where it is defined).
    SetInfo* lookup_set(const ast::Item& ref) {
        auto it = sets_.find(ref.text);
        if (it != sets_.end()) {
            if (visible_[cur_][it->second.unit]) return &it->second;
            not_imported(ref.span, "set '$" + std::string(ref.text) + "'", it->second.unit);
            return nullptr;
        }
        if (incomplete_[cur_]) return nullptr;  // the failed import is the error to fix
        std::vector<std::string> names;
        for (const auto& [name, info] : sets_)
            if (visible_[cur_][info.unit]) names.push_back(name);
        std::string msg = "unknown set '$" + std::string(ref.text) + "'";
        if (auto best = nearest(std::string(ref.text), names))
            msg += "; did you mean '$" + *best + "'?";
        else
            msg += "; define it at top level with 'set " + std::string(ref.text) + " = { ... }'";
        d().error(ref.span, msg);
        return nullptr;
    }

    // Expands a list of addresses (for kind: addresses or CIDRs) with $set references.
    // `host_only`: every element must be a single address.
    void addresses(const ast::ValueList& list, bool host_only, const std::string& what,
                   std::vector<ir::Cidr>& out,
                   const std::function<bool(const ir::Cidr&, const ast::Item&)>& extra = {}) {
        if (list.braced && list.items.empty())
            d().error(list.span, "empty " + what + " list; expected at least one " +
                                     (host_only ? "address" : "address or CIDR"));
        auto accept = [&](const ir::Cidr& c, const ast::Item& item) {
            if (host_only && c.prefix_len != (c.family == ir::Family::V6 ? 128 : 32)) {
                if (item.set_ref)
                    d().error(item.span, "set '$" + std::string(item.text) +
                                             "' contains the network " + format_cidr(c) +
                                             ", but a " + what + " is a single address");
                else
                    d().error(item.span, "expected a single address for " + what +
                                             ", found the network " + format_cidr(c));
                return false;
            }
            if (extra && !extra(c, item)) return false;
            out.push_back(c);
            return true;
        };
        // Room for the literal items; a lone set reference makes room for its members below.
        size_t literals = 0;
        for (const auto& item : list.items) literals += !item.set_ref;
        out.reserve(out.size() + literals);
        for (const auto& item : list.items) {
            if (item.set_ref) {
                SetInfo* s = lookup_set(item);
                if (!s || s->kind == SetKind::Invalid) continue;
                if (s->kind != SetKind::Addresses) {
                    auto& e = d().error(item.span, "set '$" + std::string(item.text) +
                                                       "' holds ports, but addresses are "
                                                       "expected here");
                    note_at(e, "'" + std::string(item.text) + "' is defined here", s->unit,
                            s->name_span);
                    continue;
                }
                // Only into an empty list: reserving per reference would copy a long list
                // of references quadratically.
                if (out.empty()) out.reserve(s->cidrs.size());
                for (const auto& c : s->cidrs)
                    if (!accept(c, item)) break;  // one error per reference is enough
                continue;
            }
            if (item.text == "any" && what == "address") {  // rule peers
                d().error(item.span,
                          "'any' cannot be part of a list; write it alone (to any / "
                          "from any)");
                continue;
            }
            auto cidr = parse_cidr(item.text);
            if (!cidr) {
                bool peer = what == "address";  // rule peers may also be 'any'
                d().error(item.span, std::string("expected an address") +
                                         (host_only ? "" : ", a CIDR") +
                                         (peer ? ", a $set or 'any'" : " or a $set") + ", found '" +
                                         std::string(item.text) + "'");
            } else if (!cidr->error.empty()) {
                d().error(item.span, cidr->error);
            } else {
                accept(cidr->cidr, item);
            }
        }
        drop_repeats(out);
    }

    // ---- personas ----

    void declare_persona(const ast::PersonaDecl& p, Span keyword) {
        auto [it, fresh] = personas_.try_emplace(std::string(p.name.text));
        if (!fresh) {
            auto& e =
                d().error(p.name.span, "duplicate persona '" + std::string(p.name.text) + "'");
            note_at(e, "'" + std::string(p.name.text) + "' is first defined here", it->second.unit,
                    it->second.decl->name.span);
            duplicates_.insert(&p);
            return;
        }
        it->second.decl = &p;
        it->second.unit = cur_;
        it->second.keyword = keyword;
    }

    // The merged persona, or nullptr when it (or an ancestor) has errors. `decl` is the
    // declaration being output (a duplicate declaration resolves to nothing).
    ir::Persona* resolve(std::string_view name, const ast::PersonaDecl* decl) {
        if (duplicates_.count(decl)) return nullptr;
        auto it = personas_.find(name);
        if (it == personas_.end()) return nullptr;
        return merged(it->second) ? &*it->second.result : nullptr;
    }

    // Merges `info` with its ancestors. False on errors: its own (reported where they
    // are), an ancestor's (reported there) or an unknown parent or a cycle (reported here,
    // once per cycle).
    bool merged(PersonaDeclInfo& info) {
        using State = PersonaDeclInfo::State;
        if (info.state == State::Done) return true;
        if (info.state != State::New) return false;  // Bad, or Visiting: a cycle, reported
        const ast::PersonaDecl& decl = *info.decl;
        size_t saved = cur_;
        cur_ = info.unit;
        info.state = State::Visiting;
        bool ok = !info.errors;
        if (decl.parent) {
            const std::string parent(decl.parent->text);
            auto pit = personas_.find(parent);
            if (pit == personas_.end() && incomplete_[cur_]) {
                ok = false;  // the failed import is the error to fix
            } else if (pit == personas_.end()) {
                std::vector<std::string> names;
                for (const auto& [n, i] : personas_)
                    if (visible_[cur_][i.unit] && n != decl.name.text) names.push_back(n);
                std::string msg = "persona '" + std::string(decl.name.text) +
                                  "' extends unknown persona '" + parent + "'";
                if (auto best = nearest(parent, names)) msg += "; did you mean '" + *best + "'?";
                d().error(decl.parent->span, msg);
                ok = false;
            } else if (!visible_[cur_][pit->second.unit]) {
                not_imported(decl.parent->span, "persona '" + parent + "'", pit->second.unit);
                ok = false;
            } else if (pit->second.state == State::Visiting) {
                // Walk from the parent back to this persona for the message.
                std::string chain(decl.name.text);
                const PersonaDeclInfo* at = &pit->second;
                while (at) {
                    chain += " -> " + std::string(at->decl->name.text);
                    if (at == &info || !at->decl->parent) break;
                    auto next = personas_.find(at->decl->parent->text);
                    at = next == personas_.end() ? nullptr : &next->second;
                }
                d().error(decl.parent->span, "inheritance cycle: " + chain);
                ok = false;
            } else {
                bool parent_ok = merged(pit->second);
                cur_ = info.unit;
                if (!parent_ok)
                    ok = false;
                else if (ok)
                    info.merged = merge(pit->second.merged, std::move(info.own));
            }
        } else if (ok) {
            info.merged = std::move(info.own);
        }
        cur_ = saved;
        if (!ok) {
            info.state = State::Bad;
            return false;
        }
        info.result = finish(decl.name.text, decl.parent ? decl.parent->text : std::string_view(),
                             loc_in(info.unit, info.keyword),
                             info.children ? Draft(info.merged) : std::move(info.merged));
        info.state = State::Done;
        return true;
    }

    ir::SourceLoc loc_in(size_t unit, Span span) const {
        auto [line, col] = units_[unit].diags->line_col(span.offset);
        return ir::SourceLoc{units_[unit].diags->filename(), line, col};
    }
    ir::SourceLoc loc(Span span) const { return loc_in(cur_, span); }

    // Single-valued settings: a second one in the same persona is an error.
    struct Given {
        std::map<std::string, Span> first;
        std::string persona;
    };
    bool once(Given& g, const std::string& key, Span here, const std::string& what) {
        auto [it, fresh] = g.first.emplace(key, here);
        if (fresh) return true;
        auto& e = d().error(here, what + " in persona '" + g.persona + "'");
        e.notes.push_back({"first given here", it->second});
        return false;
    }
    bool once(Given& g, const std::string& key, Span here) {
        return once(g, key, here, "'" + key + "' is given twice");
    }

    static Span join(Span a, Span b) { return Span{a.offset, b.offset + b.length - a.offset}; }

    static size_t count_rules(const ast::Block& block) {
        size_t n = 0;
        for (const auto& st : block.statements) {
            if (std::holds_alternative<ast::Rule>(st.node))
                ++n;
            else if (auto* section = std::get_if<ast::Section>(&st.node))
                n += count_rules(section->block);
        }
        return n;
    }

    Draft persona(const ast::PersonaDecl& p, bool& errors) {
        Draft out;
        out.rules.reserve(count_rules(p.block));  // the persona's IR keeps this vector
        Given given{{}, std::string(p.name.text)};
        size_t errors_before = d().errors();
        uint32_t next_id = 1;
        std::function<void(const ast::Statement&)> visit = [&](const ast::Statement& st) {
            std::visit([&](const auto& node) { statement(node, st, out, given, next_id, visit); },
                       st.node);
        };
        for (const auto& st : p.block.statements) visit(st);
        errors = d().errors() != errors_before;
        return out;
    }

    using Visit = std::function<void(const ast::Statement&)>;

    void statement(const ast::Section& s, const ast::Statement&, Draft&, Given&, uint32_t&,
                   const Visit& visit) {
        for (const auto& inner : s.block.statements) visit(inner);
    }

    void statement(const ast::Description& desc, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        if (once(g, "description", st.keyword)) out.description = desc.value;
    }

    void statement(const ast::Mode& m, const ast::Statement& st, Draft& out, Given& g, uint32_t&,
                   const Visit&) {
        if (once(g, "mode", st.keyword))
            out.mode = m.value.text == "audit" ? ir::Mode::Audit : ir::Mode::Enforce;
    }

    void statement(const ast::Default& df, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        bool ingress = df.direction.text == "ingress";
        if (!once(g, "default " + std::string(df.direction.text),
                  join(st.keyword, df.direction.span)))
            return;
        ir::Action a = df.action.text == "deny" ? ir::Action::Deny : ir::Action::Allow;
        (ingress ? out.default_ingress : out.default_egress) = a;
    }

    void statement(const ast::Rule& r, const ast::Statement&, Draft& out, Given&, uint32_t& next_id,
                   const Visit&) {
        if (auto rule = check_rule(r, next_id++)) out.rules.push_back(std::move(*rule));
    }

    void statement(const ast::Encryption& e, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        size_t before = d().errors();
        ir::Encryption enc;
        enc.required = e.setting.text == "required";
        if (e.min_tls) {
            static const std::vector<std::pair<std::string, ir::TlsVersion>> kVersions = {
                {"1.0", ir::TlsVersion::V1_0},
                {"1.1", ir::TlsVersion::V1_1},
                {"1.2", ir::TlsVersion::V1_2},
                {"1.3", ir::TlsVersion::V1_3}};
            auto v = std::find_if(kVersions.begin(), kVersions.end(),
                                  [&](const auto& kv) { return kv.first == e.min_tls->text; });
            if (!enc.required)
                d().error(e.min_tls->span, "'min-tls' applies only to 'encryption required'");
            else if (v == kVersions.end())
                d().error(e.min_tls->span, "unknown TLS version '" + std::string(e.min_tls->text) +
                                               "'; expected 1.0, 1.1, 1.2 or 1.3");
            else
                enc.min_tls = v->second;
        }
        if (e.except_keyword) {
            if (!enc.required)
                d().error(e.except_keyword->span, "'except' applies only to 'encryption required'");
            else if (e.exceptions.items.empty())
                d().error(e.exceptions.span,
                          "empty exception list; expected at least one flow pattern, e.g. "
                          "'udp port 53'");
            for (const auto& m : e.exceptions.items)
                if (auto match = check_match(m)) enc.exceptions.push_back(std::move(*match));
        }
        if (once(g, "encryption", st.keyword) && d().errors() == before)
            out.encryption = std::move(enc);
    }

    void statement(const ast::Threshold& t, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        size_t before = d().errors();
        ir::Threshold th;
        auto rate = parse_event_rate(t.rate.text);
        if (!rate.ok())
            d().error(t.rate.span, rate.error);
        else
            th = {rate.value.count, rate.value.window_ns, 0};
        if (t.block) {
            auto dur = parse_duration(t.block->text);
            if (!dur.ok())
                d().error(t.block->span, "block time: " + dur.error);
            else
                th.block_ns = dur.value;
        }
        if (!once(g, std::string(t.kind.text), join(st.keyword, t.kind.span)) ||
            d().errors() != before)
            return;
        (t.kind.text == "syn-flood" ? out.syn_flood : out.port_scan) = th;
    }

    void statement(const ast::Shaping& s, const ast::Statement& st, Draft& out, Given& g, uint32_t&,
                   const Visit&) {
        size_t before = d().errors();
        ir::Shaping sh;
        auto rate = parse_rate(s.rate.text);
        if (!rate.ok())
            d().error(s.rate.span, rate.error);
        else
            sh.rate_bps = rate.value;
        if (s.burst) {
            auto burst = parse_size(s.burst->text);
            if (!burst.ok())
                d().error(s.burst->span, "burst: " + burst.error);
            else
                sh.burst_bytes = burst.value;
        }
        if (!once(g, std::string(s.direction.text) + " rate", join(st.keyword, s.direction.span)) ||
            d().errors() != before)
            return;
        (s.direction.text == "egress" ? out.egress : out.ingress) = sh;
    }

    void statement(const ast::Priority& p, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        if (!once(g, "priority", st.keyword)) return;
        std::string_view v = p.value.text;
        out.priority = v == "low"        ? ir::Priority::Low
                       : v == "high"     ? ir::Priority::High
                       : v == "critical" ? ir::Priority::Critical
                                         : ir::Priority::Normal;
    }

    void statement(const ast::LatencyTarget& l, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        auto dur = parse_duration(l.value.text);
        if (!dur.ok()) {
            d().error(l.value.span, "latency target: " + dur.error);
            return;
        }
        if (once(g, "latency target", st.keyword)) out.latency_target_ns = dur.value;
    }

    void statement(const ast::Route& r, const ast::Statement& st, Draft& out, Given& g, uint32_t&,
                   const Visit&) {
        ir::Route route;
        if (r.kind.text == "table") {
            // Names from /etc/iproute2/rt_tables that every system has.
            static const std::map<std::string, uint32_t> kNamed = {
                {"main", 254}, {"default", 253}, {"local", 255}};
            route.kind = ir::Route::Kind::Table;
            const std::string t(r.value.text);
            if (auto named = kNamed.find(t); named != kNamed.end()) {
                route.table = named->second;
            } else if (auto n = parse_number(t, 1, UINT32_MAX)) {
                route.table = static_cast<uint32_t>(*n);
            } else {
                d().error(r.value.span, "invalid routing table '" + t +
                                            "'; expected a number 1-4294967295, 'main', "
                                            "'default' or 'local'");
                return;
            }
        } else {
            route.kind = ir::Route::Kind::Via;
            auto via = parse_host(r.value.text);
            if (!via.ok()) {
                d().error(r.value.span, "route via: " + via.error);
                return;
            }
            route.via = via.value;
        }
        auto [it, fresh] = g.first.emplace("route", st.keyword);
        if (!fresh) {
            auto& e = d().error(
                join(st.keyword, r.kind.span),
                "a persona routes through one table or one gateway; 'route' is given twice in "
                "persona '" +
                    g.persona + "'");
            e.notes.push_back({"first given here", it->second});
            return;
        }
        out.route = route;
    }

    void statement(const ast::NextHops& n, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        size_t before = d().errors();
        std::vector<ir::Cidr> hops;
        addresses(n.hops, true, "next hop", hops);
        if (d().errors() == before && hops.size() > kMaxNextHops)
            d().error(n.hops.span, "too many next hops (" + std::to_string(hops.size()) +
                                       "); at most " + std::to_string(kMaxNextHops));
        if (once(g, "next-hops", st.keyword) && d().errors() == before) out.next_hops = hops;
    }

    void statement(const ast::MaxHops& m, const ast::Statement& st, Draft& out, Given& g, uint32_t&,
                   const Visit&) {
        auto n = parse_number(m.value.text, 1, 255);
        if (!n) {
            d().error(m.value.span, "invalid hop limit '" + std::string(m.value.text) +
                                        "'; expected a number 1-255");
            return;
        }
        if (once(g, "max-hops", st.keyword)) out.max_hops = static_cast<uint8_t>(*n);
    }

    void statement(const ast::Countries& c, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        size_t before = d().errors();
        std::set<std::string> codes;
        if (c.countries.braced && c.countries.items.empty())
            d().error(c.countries.span,
                      "empty country list; expected at least one country code or group");
        for (const auto& item : c.countries.items) {
            if (item.set_ref) {
                d().error(item.span, "country lists cannot use sets ('$" + std::string(item.text) +
                                         "'); list the country codes or groups");
                continue;
            }
            const std::string text(item.text);
            if (const auto* members = country_group(text)) {
                codes.insert(members->begin(), members->end());
            } else if (is_country_code(text)) {
                codes.insert(text);
            } else if (auto hint = country_hint(text)) {
                d().error(item.span,
                          "unknown country code '" + std::string(item.text) + "'; " + *hint);
            } else {
                d().error(item.span, "unknown country code '" + std::string(item.text) +
                                         "'; expected an ISO 3166-1 alpha-2 code (e.g. DE) or "
                                         "a group (" +
                                         join_words(country_group_names()) + ")");
            }
        }
        auto [it, fresh] = g.first.emplace("countries", join(st.keyword, c.countries.span));
        if (!fresh) {
            auto& e = d().error(join(st.keyword, c.countries.span),
                                "a persona has one country list, either 'allow countries' or "
                                "'deny countries'; it is given twice in persona '" +
                                    g.persona + "'");
            e.notes.push_back({"first given here", it->second});
            return;
        }
        if (d().errors() != before) return;
        out.country_list = c.action.text == "deny" ? ir::Action::Deny : ir::Action::Allow;
        out.countries.assign(codes.begin(), codes.end());
    }

    void statement(const ast::Unknown& u, const ast::Statement& st, Draft& out, Given& g, uint32_t&,
                   const Visit&) {
        if (once(g, "unknown", st.keyword))
            out.unknown = u.action.text == "allow" ? ir::Action::Allow : ir::Action::Deny;
    }

    void statement(const ast::Exempt& e, const ast::Statement&, Draft& out, Given&, uint32_t&,
                   const Visit&) {
        addresses(e.cidrs, false, "exempt address", out.exempt);
    }

    void statement(const ast::OnViolation& v, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        if (once(g, "on-violation", st.keyword))
            out.on_violation =
                v.action.text == "log" ? ir::OnViolation::Log : ir::OnViolation::Drop;
    }

    void statement(const ast::DnsServers& s, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        size_t before = d().errors();
        std::vector<ir::Cidr> servers;
        addresses(s.servers, true, "DNS server", servers);
        if (d().errors() == before && servers.size() > kMaxDnsServers)
            d().error(s.servers.span, "too many DNS servers (" + std::to_string(servers.size()) +
                                          "); at most " + std::to_string(kMaxDnsServers));
        if (once(g, "servers", st.keyword) && d().errors() == before) out.dns_servers = servers;
    }

    void statement(const ast::DnsSearch& s, const ast::Statement& st, Draft& out, Given& g,
                   uint32_t&, const Visit&) {
        size_t before = d().errors();
        std::vector<std::string> domains;
        for (const auto& dom : s.domains) {
            std::string err = check_domain(std::string(dom.value));
            if (!err.empty())
                d().error(dom.span, err);
            else if (std::find(domains.begin(), domains.end(), dom.value) == domains.end())
                domains.emplace_back(dom.value);
        }
        if (d().errors() == before && domains.size() > kMaxSearchDomains)
            d().error(s.domains[kMaxSearchDomains].span,
                      "too many search domains (" + std::to_string(domains.size()) + "); at most " +
                          std::to_string(kMaxSearchDomains));
        if (once(g, "search", st.keyword) && d().errors() == before) out.dns_search = domains;
    }

    void statement(const ast::Forward& f, const ast::Statement& st, Draft& out, Given& g, uint32_t&,
                   const Visit&) {
        size_t before = d().errors();
        ir::Forward fw;
        fw.direction =
            f.direction.text == "ingress" ? ir::Direction::Ingress : ir::Direction::Egress;
        fw.loc = loc(st.keyword);
        if (f.proto.text != "tcp" && f.proto.text != "udp") {
            d().error(f.proto.span,
                      "forward needs tcp or udp, found '" + std::string(f.proto.text) + "'");
        } else {
            fw.proto = proto_of(f.proto.text);
        }
        auto from = parse_endpoint(f.from.text);
        auto to = parse_endpoint(f.to.text);
        if (!from.ok()) d().error(f.from.span, from.error);
        if (!to.ok()) d().error(f.to.span, to.error);
        if (d().errors() != before) return;
        bool ingress = fw.direction == ir::Direction::Ingress;
        if (ingress && (from.value.addr || to.value.addr)) {
            const ast::Word& w = from.value.addr ? f.from : f.to;
            d().error(w.span,
                      "ingress forwards map a port of the host to a port of the "
                      "workload; write ports only, e.g. 'ingress tcp 8443 -> 443'");
            return;
        }
        if (!ingress && !to.value.addr) {
            d().error(f.to.span, "an egress forward needs a target address, e.g. '" +
                                     std::string(f.from.text) +
                                     " -> 10.1.2.3:" + std::string(f.to.text) + "'");
            return;
        }
        if (!ingress && from.value.addr && from.value.addr->family != to.value.addr->family) {
            d().error(join(f.from.span, f.to.span),
                      "a forward cannot translate between IPv4 and IPv6");
            return;
        }
        fw.match_addr = from.value.addr;
        fw.match_port = from.value.port;
        fw.target_addr = to.value.addr;
        fw.target_port = to.value.port;
        fw.text = std::string(f.direction.text) + " " + std::string(f.proto.text) + " " +
                  format_endpoint(fw.match_addr, fw.match_port) + " -> " +
                  format_endpoint(fw.target_addr, fw.target_port);
        for (const auto& other : out.forwards) {
            if (!same_forward(other, fw)) continue;
            d().error(join(st.keyword, f.from.span),
                      "'" + std::string(f.direction.text) + " " + std::string(f.proto.text) + " " +
                          format_endpoint(fw.match_addr, fw.match_port) +
                          "' is forwarded twice in persona '" + g.persona + "' (first on line " +
                          std::to_string(other.loc.line) + ")");
            return;
        }
        out.forwards.push_back(std::move(fw));
    }

    void statement(const ast::BindMatch& b, const ast::Statement&, Draft&, Given&, uint32_t&,
                   const Visit&) {
        d().error(b.kind.span,
                  "'" + std::string(b.kind.text) + "' belongs inside a top-level bind block");
    }

    // ---- rules and flow patterns ----

    std::optional<ir::Rule> check_rule(const ast::Rule& r, uint32_t id) {
        size_t errors_before = d().errors();
        ir::Rule out;
        out.id = id;
        out.loc = loc(r.action.span);
        out.action = r.action.text == "deny" ? ir::Action::Deny : ir::Action::Allow;
        out.direction =
            r.direction.text == "egress" ? ir::Direction::Egress : ir::Direction::Ingress;
        out.proto = proto_of(r.proto.text);
        if (r.port_keyword) port_keyword(*r.port_keyword, out.proto, r.ports, out.ports);
        peers(r.peers, out.proto, out.peers);
        if (d().errors() != errors_before) return std::nullopt;
        out.text = describe_rule(out);
        return out;
    }

    std::optional<ir::Match> check_match(const ast::Match& m) {
        size_t errors_before = d().errors();
        ir::Match out;
        out.loc = loc(m.span);
        if (m.direction)
            out.direction =
                m.direction->text == "egress" ? ir::Direction::Egress : ir::Direction::Ingress;
        out.proto = proto_of(m.proto.text);
        if (m.port_keyword) port_keyword(*m.port_keyword, out.proto, m.ports, out.ports);
        if (m.peer_keyword) {
            std::string_view kw = m.peer_keyword->text;
            if (!out.direction) {
                d().error(m.peer_keyword->span, "a pattern with peers needs a direction: 'egress " +
                                                    std::string(m.proto.text) +
                                                    " ... to ...' or 'ingress " +
                                                    std::string(m.proto.text) + " ... from ...'");
            } else if ((kw == "to") != (*out.direction == ir::Direction::Egress)) {
                bool eg = *out.direction == ir::Direction::Egress;
                d().error(m.peer_keyword->span,
                          std::string(eg ? "egress" : "ingress") + " patterns name the " +
                              (eg ? "destination" : "source") + " with '" + (eg ? "to" : "from") +
                              "'; did you mean '" + (eg ? "to" : "from") + "'?");
            } else {
                peers(m.peers, out.proto, out.peers);
            }
        }
        if (d().errors() != errors_before) return std::nullopt;
        out.text = describe_match(out);
        return out;
    }

    static std::string describe_match(const ir::Match& m) {
        ir::Rule r;
        r.direction = m.direction.value_or(ir::Direction::Egress);
        r.proto = m.proto;
        r.ports = m.ports;
        r.peers = m.peers;
        // "allow egress tcp port 443 to any" -> "egress tcp port 443 [to ...]"
        std::string s = describe_rule(r).substr(std::string("allow ").size());
        if (m.peers.empty()) s = s.substr(0, s.rfind(' ', s.rfind(' ') - 1));
        if (!m.direction) s = s.substr(s.find(' ') + 1);
        return s;
    }

    void port_keyword(const ast::Word& kw, ir::Proto proto, const ast::ValueList& list,
                      std::vector<ir::PortRange>& out) {
        if (proto != ir::Proto::Tcp && proto != ir::Proto::Udp) {
            std::string why = proto == ir::Proto::Any
                                  ? "'any' also covers protocols without ports; write one "
                                    "rule for tcp and one for udp"
                                  : std::string(proto_name(proto)) + " has no ports";
            d().error(kw.span, "'port' needs tcp or udp; " + why);
            return;
        }
        ports(list, out);
    }

    void ports(const ast::ValueList& list, std::vector<ir::PortRange>& out) {
        if (list.braced && list.items.empty())
            d().error(list.span, "empty port list; expected at least one port or port range");
        for (const auto& item : list.items) {
            if (item.set_ref) {
                SetInfo* s = lookup_set(item);
                if (!s || s->kind == SetKind::Invalid) continue;
                if (s->kind != SetKind::Ports) {
                    auto& e = d().error(item.span, "set '$" + std::string(item.text) +
                                                       "' holds addresses, but ports are "
                                                       "expected here");
                    note_at(e, "'" + std::string(item.text) + "' is defined here", s->unit,
                            s->name_span);
                    continue;
                }
                out.insert(out.end(), s->ports.begin(), s->ports.end());
                continue;
            }
            auto port = parse_port_item(item.text);
            if (!port) {
                d().error(item.span, "expected a port, a port range or a $set, found '" +
                                         std::string(item.text) + "'");
            } else if (!port->error.empty()) {
                d().error(item.span, port->error);
            } else {
                out.push_back(port->range);
            }
        }
        drop_repeats(out);
    }

    // icmp only reaches IPv4 peers and icmpv6 only IPv6 ones; anything else is a mistake
    // that would silently never match.
    bool check_family(ir::Proto proto, const ir::Cidr& c, const ast::Item& item) {
        bool bad = (proto == ir::Proto::Icmp && c.family == ir::Family::V6) ||
                   (proto == ir::Proto::Icmpv6 && c.family == ir::Family::V4);
        if (!bad) return true;
        bool v6 = c.family == ir::Family::V6;
        std::string what =
            item.set_ref ? "set '$" + std::string(item.text) + "' contains " + format_cidr(c) + ","
                         : format_cidr(c) + " is";
        d().error(item.span, std::string(proto_name(proto)) + " matches " + (v6 ? "IPv4" : "IPv6") +
                                 " only, but " + what + " an " + (v6 ? "IPv6" : "IPv4") + " " +
                                 (c.prefix_len == (v6 ? 128 : 32) ? "address" : "network") +
                                 "; use " + (v6 ? "icmpv6" : "icmp") + " for " +
                                 (v6 ? "IPv6" : "IPv4"));
        return false;
    }

    void peers(const ast::ValueList& list, ir::Proto proto, std::vector<ir::Cidr>& out) {
        if (!list.braced && list.items.size() == 1 && !list.items[0].set_ref &&
            list.items[0].text == "any")
            return;  // no peers: any address
        if (list.braced && list.items.empty()) {
            d().error(list.span,
                      "empty address list; expected at least one address or CIDR "
                      "(or write 'any')");
            return;
        }
        addresses(list, false, "address", out, [&](const ir::Cidr& c, const ast::Item& item) {
            return check_family(proto, c, item);
        });
    }

    // ---- bind ----

    std::optional<ir::BindRule> bind(const ast::BindDecl& b, Span keyword) {
        size_t before = d().errors();
        ir::BindRule out;
        out.persona = b.persona.text;
        out.loc = loc(keyword);
        auto it = personas_.find(b.persona.text);
        if (it == personas_.end() && incomplete_[cur_]) {
            d().error(b.persona.span, "bind names unknown persona '" + std::string(b.persona.text) +
                                          "' (an import of this file failed; fix that first)");
        } else if (it == personas_.end()) {
            std::vector<std::string> names;
            for (const auto& [n, i] : personas_)
                if (i.unit == cur_) names.push_back(n);
            std::string msg = "bind names unknown persona '" + std::string(b.persona.text) + "'";
            if (auto best = nearest(std::string(b.persona.text), names))
                msg += "; did you mean '" + *best + "'?";
            else
                msg += "; a bind block binds a persona defined in the same file";
            d().error(b.persona.span, msg);
        } else if (it->second.unit != cur_) {
            auto& e = d().error(b.persona.span,
                                "bind names persona '" + std::string(b.persona.text) +
                                    "' from an imported file; a bind block binds a persona "
                                    "defined in the same file");
            note_at(e, "'" + std::string(b.persona.text) + "' is defined here", it->second.unit,
                    it->second.decl->name.span);
        }
        for (const auto& st : b.block.statements) {
            auto* m = std::get_if<ast::BindMatch>(&st.node);
            if (!m) continue;  // the parser accepts only matches here
            const std::string kind(m->kind.text);
            const std::string v(m->value.text);
            std::string err;
            std::vector<std::string>* into = nullptr;
            if (kind == "cgroup") {
                err = check_cgroup_glob(v);
                into = &out.cgroups;
            } else if (kind == "interface") {
                err = check_interface_glob(v);
                into = &out.interfaces;
            } else {
                if (!valid_account(v))
                    err = "invalid " + kind + " name '" + v + "'; expected a " + kind +
                          " name (lower case letters, digits, '_', '-', '.') or a numeric " +
                          (kind == "user" ? "uid" : "gid");
                into = kind == "user" ? &out.users : &out.groups;
            }
            if (!err.empty()) {
                d().error(m->value.span, err);
                continue;
            }
            auto [claimed, fresh] = bind_claims_.try_emplace(
                kind + "\n" + v + "\n" + std::to_string(cur_), b.persona.text, m->value.span);
            if (!fresh && claimed->second.first != b.persona.text) {
                auto& e = d().error(m->value.span, kind + " '" + v + "' is bound to persona '" +
                                                       claimed->second.first +
                                                       "' already; a workload gets one persona");
                e.notes.push_back({"bound here", claimed->second.second});
                continue;
            }
            if (std::find(into->begin(), into->end(), v) == into->end()) into->push_back(v);
        }
        if (d().errors() != before) return std::nullopt;
        return out;
    }

    const std::vector<Unit>& units_;
    size_t cur_ = 0;
    std::vector<std::vector<bool>> visible_;
    // A unit sees a file that failed to import: unknown names may live there.
    std::vector<bool> incomplete_;
    std::map<std::string, SetInfo, std::less<>> sets_;
    std::map<std::string, PersonaDeclInfo, std::less<>> personas_;
    std::set<const ast::PersonaDecl*> duplicates_;
    // "kind\nvalue\nunit" -> persona and where: one workload, one persona (per file).
    std::map<std::string, std::pair<std::string, Span>> bind_claims_;
};

}  // namespace

CheckResult check(const std::vector<Unit>& units) { return Checker(units).run(); }

}  // namespace pdl
