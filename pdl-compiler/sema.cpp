// The semantic pass: resolves $sets (defined anywhere at top level), parses values, and
// checks everything the grammar cannot: duplicates, set kinds, address families,
// `port` only with tcp/udp. Errors carry the location of what they are about.
#include "pdl-compiler/sema.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <tuple>

#include "pdl-compiler/compiler.h"
#include "pdl-compiler/values.h"

namespace pdl {

namespace {

enum class SetKind { Ports, Addresses, Invalid };

struct SetInfo {
    SetKind kind = SetKind::Invalid;
    std::vector<ir::PortRange> ports;
    std::vector<ir::Cidr> cidrs;
    Span name_span;
};

// Keeps the first of equal items, in order, in O(n log n): lists and sets may hold tens of
// thousands of items, and a quadratic pass over them would let one file stall the agent.
void drop_repeats(std::vector<ir::PortRange>& v) {
    std::set<std::pair<uint16_t, uint16_t>> seen;
    std::erase_if(v, [&](const ir::PortRange& r) { return !seen.insert({r.lo, r.hi}).second; });
}
void drop_repeats(std::vector<ir::Cidr>& v) {
    std::set<std::tuple<ir::Family, std::array<uint8_t, 16>, uint8_t>> seen;
    std::erase_if(v, [&](const ir::Cidr& c) {
        return !seen.insert({c.family, c.addr, c.prefix_len}).second;
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

class Checker {
  public:
    Checker(const ast::File& file, Diagnostics& d) : file_(file), d_(d) {}

    std::vector<ir::Persona> run() {
        for (const auto& item : file_.items)
            if (auto* s = std::get_if<ast::SetDecl>(&item.node)) declare_set(*s);
        std::vector<ir::Persona> out;
        std::map<std::string, Span> persona_names;
        for (const auto& item : file_.items) {
            auto* p = std::get_if<ast::PersonaDecl>(&item.node);
            if (!p) continue;
            auto [it, fresh] = persona_names.emplace(p->name.text, p->name.span);
            if (!fresh) {
                auto& e = d_.error(p->name.span, "duplicate persona '" + p->name.text + "'");
                e.notes.push_back({"'" + p->name.text + "' is first defined here", it->second});
            }
            out.push_back(persona(*p, item.keyword));
        }
        return out;
    }

  private:
    void declare_set(const ast::SetDecl& s) {
        auto it = sets_.find(s.name.text);
        if (it != sets_.end()) {
            auto& e = d_.error(s.name.span, "duplicate set '" + s.name.text + "'");
            e.notes.push_back(
                {"'" + s.name.text + "' is first defined here", it->second.name_span});
            return;
        }
        SetInfo info;
        info.name_span = s.name.span;
        bool ok = true;
        const ast::Item* first_port = nullptr;
        const ast::Item* first_addr = nullptr;
        if (s.items.items.empty()) {
            d_.error(s.items.span, "set '" + s.name.text +
                                       "' is empty; expected at least one address, CIDR, port "
                                       "or port range");
            ok = false;
        }
        for (const auto& item : s.items.items) {
            if (item.set_ref) {
                d_.error(item.span, "a set cannot contain another set ('$" + item.text +
                                        "'); list its items instead");
                ok = false;
                continue;
            }
            if (auto port = parse_port_item(item.text)) {
                if (!port->error.empty()) {
                    d_.error(item.span, port->error);
                    ok = false;
                    continue;
                }
                if (!first_port) first_port = &item;
                info.ports.push_back(port->range);
            } else if (auto cidr = parse_cidr(item.text)) {
                if (!cidr->error.empty()) {
                    d_.error(item.span, cidr->error);
                    ok = false;
                    continue;
                }
                if (!first_addr) first_addr = &item;
                info.cidrs.push_back(cidr->cidr);
            } else {
                d_.error(item.span, "invalid set item '" + item.text +
                                        "'; expected an address, CIDR, port or port range");
                ok = false;
            }
        }
        if (first_port && first_addr) {
            bool port_first = first_port->span.offset < first_addr->span.offset;
            const ast::Item* first = port_first ? first_port : first_addr;
            const ast::Item* odd = port_first ? first_addr : first_port;
            auto& e = d_.error(
                odd->span, "set '" + s.name.text + "' mixes ports and addresses; '" + odd->text +
                               "' is " + (port_first ? "an address" : "a port") + " but '" +
                               first->text + "' is " + (port_first ? "a port" : "an address"));
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

    // nullptr after reporting an unknown set; an Invalid set is returned (its errors
    // were reported where it is defined).
    SetInfo* lookup_set(const ast::Item& ref) {
        auto it = sets_.find(ref.text);
        if (it != sets_.end()) return &it->second;
        std::vector<std::string> names;
        for (const auto& [name, info] : sets_) names.push_back(name);
        std::string msg = "unknown set '$" + ref.text + "'";
        if (auto best = nearest(ref.text, names))
            msg += "; did you mean '$" + *best + "'?";
        else
            msg += "; define it at top level with 'set " + ref.text + " = { ... }'";
        d_.error(ref.span, msg);
        return nullptr;
    }

    ir::SourceLoc loc(Span span) const {
        auto [line, col] = d_.line_col(span.offset);
        return ir::SourceLoc{d_.filename(), line, col};
    }

    void once(std::optional<Span>& first, Span here, const std::string& what,
              const std::string& persona) {
        if (first) {
            auto& e = d_.error(here, "'" + what + "' is given twice in persona '" + persona + "'");
            e.notes.push_back({"first given here", *first});
        } else {
            first = here;
        }
    }

    ir::Persona persona(const ast::PersonaDecl& p, Span keyword) {
        ir::Persona out;
        out.name = p.name.text;
        out.loc = loc(keyword);
        std::optional<Span> description, mode, def_in, def_eg;
        uint32_t next_id = 1;
        auto visit = [&](const ast::Statement& st, auto&& self) -> void {
            if (auto* d = std::get_if<ast::Description>(&st.node)) {
                once(description, st.keyword, "description", out.name);
                out.description = d->value;
            } else if (auto* m = std::get_if<ast::Mode>(&st.node)) {
                once(mode, st.keyword, "mode", out.name);
                out.mode = m->value.text == "audit" ? ir::Mode::Audit : ir::Mode::Enforce;
            } else if (auto* df = std::get_if<ast::Default>(&st.node)) {
                bool ingress = df->direction.text == "ingress";
                Span both{st.keyword.offset, df->direction.span.offset + df->direction.span.length -
                                                 st.keyword.offset};
                once(ingress ? def_in : def_eg, both, "default " + df->direction.text, out.name);
                ir::Action a = df->action.text == "deny" ? ir::Action::Deny : ir::Action::Allow;
                (ingress ? out.default_ingress : out.default_egress) = a;
            } else if (auto* r = std::get_if<ast::Rule>(&st.node)) {
                if (auto rule = check_rule(*r, next_id++)) out.rules.push_back(std::move(*rule));
            } else if (auto* sec = std::get_if<ast::Section>(&st.node)) {
                for (const auto& inner : sec->block.statements) self(inner, self);
            }
        };
        for (const auto& st : p.block.statements) visit(st, visit);
        return out;
    }

    std::optional<ir::Rule> check_rule(const ast::Rule& r, uint32_t id) {
        size_t errors_before = d_.errors();
        ir::Rule out;
        out.id = id;
        out.loc = loc(r.action.span);
        out.action = r.action.text == "deny" ? ir::Action::Deny : ir::Action::Allow;
        out.direction =
            r.direction.text == "egress" ? ir::Direction::Egress : ir::Direction::Ingress;
        const std::string& p = r.proto.text;
        out.proto = p == "tcp"      ? ir::Proto::Tcp
                    : p == "udp"    ? ir::Proto::Udp
                    : p == "icmp"   ? ir::Proto::Icmp
                    : p == "icmpv6" ? ir::Proto::Icmpv6
                                    : ir::Proto::Any;

        if (r.port_keyword) {
            if (out.proto != ir::Proto::Tcp && out.proto != ir::Proto::Udp) {
                std::string why = out.proto == ir::Proto::Any
                                      ? "'any' also covers protocols without ports; write one "
                                        "rule for tcp and one for udp"
                                      : std::string(proto_name(out.proto)) + " has no ports";
                d_.error(r.port_keyword->span, "'port' needs tcp or udp; " + why);
            } else {
                ports(r.ports, out.ports);
            }
        }
        peers(r.peers, out);
        if (d_.errors() != errors_before) return std::nullopt;
        out.text = describe_rule(out);
        return out;
    }

    void ports(const ast::ValueList& list, std::vector<ir::PortRange>& out) {
        if (list.braced && list.items.empty())
            d_.error(list.span, "empty port list; expected at least one port or port range");
        for (const auto& item : list.items) {
            if (item.set_ref) {
                SetInfo* s = lookup_set(item);
                if (!s || s->kind == SetKind::Invalid) continue;
                if (s->kind != SetKind::Ports) {
                    auto& e = d_.error(item.span, "set '$" + item.text +
                                                      "' holds addresses, but ports are "
                                                      "expected here");
                    e.notes.push_back({"'" + item.text + "' is defined here", s->name_span});
                    continue;
                }
                out.insert(out.end(), s->ports.begin(), s->ports.end());
                continue;
            }
            auto port = parse_port_item(item.text);
            if (!port) {
                d_.error(item.span,
                         "expected a port, a port range or a $set, found '" + item.text + "'");
            } else if (!port->error.empty()) {
                d_.error(item.span, port->error);
            } else {
                out.push_back(port->range);
            }
        }
        drop_repeats(out);
    }

    // icmp only reaches IPv4 peers and icmpv6 only IPv6 ones; anything else is a mistake
    // that would silently never match.
    void check_family(const ir::Rule& r, const ir::Cidr& c, const ast::Item& item) {
        bool bad = (r.proto == ir::Proto::Icmp && c.family == ir::Family::V6) ||
                   (r.proto == ir::Proto::Icmpv6 && c.family == ir::Family::V4);
        if (!bad) return;
        bool v6 = c.family == ir::Family::V6;
        std::string what = item.set_ref
                               ? "set '$" + item.text + "' contains " + format_cidr(c) + ","
                               : format_cidr(c) + " is";
        d_.error(item.span,
                 std::string(proto_name(r.proto)) + " matches " + (v6 ? "IPv4" : "IPv6") +
                     " only, but " + what + " an " + (v6 ? "IPv6" : "IPv4") + " " +
                     (c.prefix_len == (v6 ? 128 : 32) ? "address" : "network") + "; use " +
                     (v6 ? "icmpv6" : "icmp") + " for " + (v6 ? "IPv6" : "IPv4"));
    }

    void peers(const ast::ValueList& list, ir::Rule& out) {
        if (!list.braced && list.items.size() == 1 && !list.items[0].set_ref &&
            list.items[0].text == "any")
            return;  // no peers: any address
        if (list.braced && list.items.empty())
            d_.error(list.span,
                     "empty address list; expected at least one address or CIDR "
                     "(or write 'any')");
        for (const auto& item : list.items) {
            if (item.set_ref) {
                SetInfo* s = lookup_set(item);
                if (!s || s->kind == SetKind::Invalid) continue;
                if (s->kind != SetKind::Addresses) {
                    auto& e = d_.error(item.span, "set '$" + item.text +
                                                      "' holds ports, but addresses are "
                                                      "expected here");
                    e.notes.push_back({"'" + item.text + "' is defined here", s->name_span});
                    continue;
                }
                size_t before = d_.errors();
                for (const auto& c : s->cidrs) {
                    check_family(out, c, item);
                    if (d_.errors() != before) break;  // one error per reference is enough
                    out.peers.push_back(c);
                }
                continue;
            }
            if (item.text == "any") {
                d_.error(item.span,
                         "'any' cannot be part of a list; write it alone (to any / "
                         "from any)");
                continue;
            }
            auto cidr = parse_cidr(item.text);
            if (!cidr) {
                d_.error(item.span,
                         "expected an address, a CIDR, a $set or 'any', found '" + item.text + "'");
            } else if (!cidr->error.empty()) {
                d_.error(item.span, cidr->error);
            } else {
                check_family(out, cidr->cidr, item);
                out.peers.push_back(cidr->cidr);
            }
        }
        drop_repeats(out.peers);
    }

    const ast::File& file_;
    Diagnostics& d_;
    std::map<std::string, SetInfo> sets_;
};

}  // namespace

std::vector<ir::Persona> check(const ast::File& file, Diagnostics& diags) {
    return Checker(file, diags).run();
}

}  // namespace pdl
