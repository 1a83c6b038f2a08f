// TopologyManager: persona marks, policy-routing rules and tables, the next-hop check.
#include "agent/topology.h"

#include <arpa/inet.h>
#include <net/if.h>  // before the linux/ headers libnl pulls in

#include <bpf/bpf.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "agent/api_server.h"
#include "agent/loader.h"
#include "agent/netlink.h"
#include "agent/tcx.h"
#include "agent/watchers.h"
#include "maps/abi/qos.h"

namespace pbpf::agent {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string topo_pin_dir(const std::string& bpffs_root) { return bpffs_root + "/topology"; }
std::string topo_pin(const std::string& bpffs_root, uint32_t ifindex) {
    return topo_pin_dir(bpffs_root) + "/" + std::to_string(ifindex) + "-egress";
}

using RulePtr = NlPtr<rtnl_rule, rtnl_rule_put>;
using RoutePtr = NlPtr<rtnl_route, rtnl_route_put>;
using CachePtr = NlPtr<nl_cache, nl_cache_free>;
using AddrPtr = NlPtr<nl_addr, nl_addr_put>;

int af_of(uint8_t family) { return family == PBPF_FAMILY_IPV6 ? AF_INET6 : AF_INET; }

std::string addr_text(const pbpf_addr& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(af_of(a.family), a.addr, buf, sizeof buf);
    return buf;
}

bool ours(const TopologyConfig& cfg, uint32_t prio, uint32_t mask) {
    return mask == PBPF_MARK_PERSONA_MASK &&
           (prio == cfg.rule_priority || prio == cfg.rule_priority + 1);
}

bool our_table(const TopologyConfig& cfg, uint32_t table) {
    return table > cfg.table_base && table - cfg.table_base < PBPF_MAX_PERSONAS;
}

// The agent's rules as the kernel has them (both families).
Result<std::vector<TopologyRule>> kernel_rules(NlRoute& nl, const TopologyConfig& cfg) {
    CachePtr cache;
    int err = rtnl_rule_alloc_cache(nl.get(), AF_UNSPEC, &cache.p);
    if (err < 0) return Error{0, nl_error("list rules", err)};
    std::vector<TopologyRule> out;
    for (nl_object* o = nl_cache_get_first(cache.p); o != nullptr; o = nl_cache_get_next(o)) {
        auto* r = reinterpret_cast<rtnl_rule*>(o);
        if (!ours(cfg, rtnl_rule_get_prio(r), rtnl_rule_get_mask(r))) continue;
        TopologyRule k;
        k.family = rtnl_rule_get_family(r);
        k.priority = rtnl_rule_get_prio(r);
        k.mark = rtnl_rule_get_mark(r);
        k.unreachable = rtnl_rule_get_action(r) == FR_ACT_UNREACHABLE;
        k.table = k.unreachable ? 0 : rtnl_rule_get_table(r);
        k.persona_id = k.mark >> PBPF_MARK_PERSONA_SHIFT;
        out.push_back(k);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<void> change_rule(NlRoute& nl, const TopologyRule& k, bool add) {
    RulePtr r(rtnl_rule_alloc());
    if (r.p == nullptr) return Error{ENOMEM, "rule"};
    rtnl_rule_set_family(r.p, k.family);
    rtnl_rule_set_prio(r.p, k.priority);
    rtnl_rule_set_mark(r.p, k.mark);
    rtnl_rule_set_mask(r.p, PBPF_MARK_PERSONA_MASK);
    rtnl_rule_set_action(r.p, k.unreachable ? FR_ACT_UNREACHABLE : FR_ACT_TO_TBL);
    if (!k.unreachable) rtnl_rule_set_table(r.p, k.table);
    int err = add ? rtnl_rule_add(nl.get(), r.p, NLM_F_CREATE | NLM_F_EXCL)
                  : rtnl_rule_delete(nl.get(), r.p, 0);
    if (err == -NLE_EXIST && add) return {};
    if (err == -NLE_OBJ_NOTFOUND && !add) return {};
    if (err < 0) {
        char m[16];
        std::snprintf(m, sizeof m, "0x%x", k.mark);
        std::string what = std::string(add ? "add" : "delete") + " rule " +
                           std::to_string(k.priority) + " fwmark " + m + " " +
                           (k.unreachable ? "unreachable" : "lookup " + std::to_string(k.table));
        return Error{0, nl_error(what, err)};
    }
    return {};
}

// Default routes in the agent's tables.
Result<std::vector<TopologyRoute>> kernel_routes(NlRoute& nl, const TopologyConfig& cfg) {
    CachePtr cache;
    int err = rtnl_route_alloc_cache(nl.get(), AF_UNSPEC, 0, &cache.p);
    if (err < 0) return Error{0, nl_error("list routes", err)};
    std::vector<TopologyRoute> out;
    for (nl_object* o = nl_cache_get_first(cache.p); o != nullptr; o = nl_cache_get_next(o)) {
        auto* r = reinterpret_cast<rtnl_route*>(o);
        if (!our_table(cfg, rtnl_route_get_table(r))) continue;
        TopologyRoute k;
        k.family = rtnl_route_get_family(r);
        k.table = rtnl_route_get_table(r);
        k.persona_id = k.table - cfg.table_base;
        if (rtnl_route_get_nnexthops(r) > 0) {
            nl_addr* gw = rtnl_route_nh_get_gateway(rtnl_route_nexthop_n(r, 0));
            char buf[INET6_ADDRSTRLEN] = {};
            if (gw != nullptr && nl_addr_get_len(gw) <= 16 &&
                ::inet_ntop(k.family, nl_addr_get_binary_addr(gw), buf, sizeof buf) != nullptr)
                k.gateway = buf;
        }
        out.push_back(k);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<void> change_route(NlRoute& nl, const TopologyRoute& k, bool add) {
    RoutePtr r(rtnl_route_alloc());
    if (r.p == nullptr) return Error{ENOMEM, "route"};
    rtnl_route_set_family(r.p, static_cast<uint8_t>(k.family));
    rtnl_route_set_table(r.p, k.table);
    rtnl_route_set_protocol(r.p, RTPROT_STATIC);
    rtnl_route_set_scope(r.p, RT_SCOPE_UNIVERSE);
    rtnl_route_set_type(r.p, RTN_UNICAST);
    AddrPtr dst;
    int err = nl_addr_parse(k.family == AF_INET6 ? "::/0" : "0.0.0.0/0", k.family, &dst.p);
    if (err < 0) return Error{0, nl_error("default route", err)};
    rtnl_route_set_dst(r.p, dst.p);
    if (!k.gateway.empty()) {
        AddrPtr gw;
        err = nl_addr_parse(k.gateway.c_str(), k.family, &gw.p);
        if (err < 0) return Error{0, nl_error("gateway " + k.gateway, err)};
        rtnl_nexthop* nh = rtnl_route_nh_alloc();
        if (nh == nullptr) return Error{ENOMEM, "nexthop"};
        rtnl_route_nh_set_gateway(nh, gw.p);
        rtnl_route_add_nexthop(r.p, nh);  // the route owns it now
    }
    err = add ? rtnl_route_add(nl.get(), r.p, NLM_F_CREATE | NLM_F_REPLACE)
              : rtnl_route_delete(nl.get(), r.p, 0);
    if (err == -NLE_OBJ_NOTFOUND && !add) return {};
    if (err < 0)
        return Error{0, nl_error(std::string(add ? "add" : "delete") + " default via " + k.gateway +
                                     " table " + std::to_string(k.table),
                                 err)};
    return {};
}

void append(std::string& errors, const std::string& e) {
    errors += (errors.empty() ? "" : "; ") + e;
}

}  // namespace

std::optional<pbpf_topology> topology_entry_for(const pbpf_persona_settings& s) {
    pbpf_topology t{};
    if (s.flags & (PBPF_SETTINGS_F_ROUTE_TABLE | PBPF_SETTINGS_F_ROUTE_VIA))
        t.flags |= PBPF_TOPO_F_ROUTE;
    if (s.max_hops != 0) {
        t.flags |= PBPF_TOPO_F_MAX_HOPS;
        t.max_hops = s.max_hops;
    }
    if (s.next_hop_count != 0) {
        t.flags |= PBPF_TOPO_F_NEXT_HOPS;
        t.next_hop_count = std::min<uint8_t>(s.next_hop_count, PBPF_MAX_NEXT_HOPS);
        for (uint8_t i = 0; i < t.next_hop_count; ++i) t.next_hops[i] = s.next_hops[i];
    }
    if (t.flags == 0) return std::nullopt;
    return t;
}

TopologyPlan plan_topology(const std::vector<PersonaQosInput>& personas,
                           const TopologyConfig& cfg) {
    TopologyPlan plan;
    for (const auto& p : personas) {
        if (p.id == 0 || p.id >= PBPF_MAX_PERSONAS) continue;
        auto e = topology_entry_for(p.settings);
        if (!e) continue;
        plan.entries[p.id] = *e;
        const uint32_t mark = p.id << PBPF_MARK_PERSONA_SHIFT;
        auto rules = [&](int family, uint32_t table) {
            plan.rules.push_back({family, cfg.rule_priority, mark, table, false, p.id});
            plan.rules.push_back({family, cfg.rule_priority + 1, mark, 0, true, p.id});
        };
        if (p.settings.flags & PBPF_SETTINGS_F_ROUTE_TABLE) {
            rules(AF_INET, p.settings.route_table);
            rules(AF_INET6, p.settings.route_table);
        } else if (p.settings.flags & PBPF_SETTINGS_F_ROUTE_VIA) {
            const int family = af_of(p.settings.route_via.family);
            const uint32_t table = cfg.table_base + p.id;
            plan.routes.push_back({family, table, addr_text(p.settings.route_via), p.id});
            rules(family, table);
        }
    }
    std::sort(plan.rules.begin(), plan.rules.end());
    std::sort(plan.routes.begin(), plan.routes.end());
    return plan;
}

TopologyManager::TopologyManager(Loader& loader, TopologyConfig cfg, PersonaSource source,
                                 std::mutex& api_mu)
    : loader_(loader), api_mu_(api_mu), cfg_(std::move(cfg)), source_(std::move(source)) {}

TopologyManager::~TopologyManager() { stop(); }

void TopologyManager::stop() {
    if (watcher_) watcher_->stop();
}

Result<std::unique_ptr<TopologyManager>> TopologyManager::start(Loader& loader,
                                                                const TopologyConfig& cfg,
                                                                PersonaSource source,
                                                                std::mutex& api_mutex) {
    std::unique_ptr<TopologyManager> m(
        new TopologyManager(loader, cfg, std::move(source), api_mutex));
    for (const auto& name : cfg.egress_interfaces) m->ifaces_.push_back(Iface{name, 0, "absent"});
    std::error_code ec;
    fs::create_directories(topo_pin_dir(loader.pin_dir()), ec);
    if (ec) return Error{ec.value(), "create " + topo_pin_dir(loader.pin_dir())};
    {
        std::lock_guard lock(m->mu_);
        for (auto& i : m->ifaces_) {
            i.ifindex = if_nametoindex(i.name.c_str());
            if (i.ifindex == 0) {
                spdlog::warn(
                    "[topology] egress interface {} does not exist (yet); its next-hop "
                    "check starts when it appears",
                    i.name);
                continue;
            }
            m->attach_interface(i);
        }
        // Links of interfaces no longer configured, or gone.
        std::set<std::string> keep;
        for (const auto& i : m->ifaces_)
            if (i.ifindex != 0) keep.insert(topo_pin(loader.pin_dir(), i.ifindex));
        for (const auto& e : fs::directory_iterator(topo_pin_dir(loader.pin_dir()), ec)) {
            if (keep.count(e.path().string())) continue;
            if (auto r = detach_tcx_pinned(e.path().string()); !r)
                spdlog::warn("[topology] {}", r.error().what());
        }
        if (auto r = m->sync_locked(); !r) spdlog::error("{}", r.error().what());
    }
    if (!cfg.egress_interfaces.empty()) {
        TopologyManager* self = m.get();
        auto w =
            LinkWatcher::follow([self](const std::string& name,
                                       uint32_t ifindex) { self->on_link_added(name, ifindex); },
                                [self](const std::string& name) { self->on_link_removed(name); });
        if (!w) return w.error();
        m->watcher_ = std::move(*w);
    }
    return m;
}

void TopologyManager::attach_interface(Iface& i) {
    // Ahead of the QoS classifier, which ends the chain when it passes a packet.
    if (auto r = attach_tcx_pinned(loader_.topo_egress_prog_fd(), i.ifindex, kTcxEgress,
                                   topo_pin(loader_.pin_dir(), i.ifindex), kTcxBefore);
        !r) {
        i.error = r.error().what();
        spdlog::error("[topology] {}: {}", i.name, i.error);
        return;
    }
    i.error.clear();
    spdlog::info("[topology] next-hop check on egress of {} (ifindex {})", i.name, i.ifindex);
}

void TopologyManager::on_link_added(const std::string& name, uint32_t ifindex) {
    std::lock_guard api(api_mu_);
    std::lock_guard lock(mu_);
    bool attached = false;
    for (auto& i : ifaces_) {
        if (i.name != name || (i.ifindex == ifindex && i.error.empty())) continue;
        i.ifindex = ifindex;
        attach_interface(i);
        attached = true;
    }
    // A gateway that just became reachable lets a `route via` table be filled.
    if (attached)
        if (auto r = sync_locked(); !r) spdlog::error("{}", r.error().what());
}

void TopologyManager::on_link_removed(const std::string& name) {
    std::lock_guard api(api_mu_);
    std::lock_guard lock(mu_);
    for (auto& i : ifaces_) {
        if (i.name != name) continue;
        spdlog::warn("[topology] egress interface {} went away", name);
        (void)detach_tcx_pinned(topo_pin(loader_.pin_dir(), i.ifindex));
        i.ifindex = 0;
        i.error = "absent";
    }
}

Result<void> TopologyManager::sync() {
    std::lock_guard lock(mu_);
    return sync_locked();
}

Result<void> TopologyManager::sync_locked() {
    auto personas = source_();
    if (!personas) return personas.error();
    names_.clear();
    for (const auto& p : *personas) names_[p.id] = p.name;
    const TopologyPlan plan = plan_topology(*personas, cfg_);

    NlRoute nl;
    if (auto r = nl.connect(); !r) return r;
    auto have_rules = kernel_rules(nl, cfg_);
    if (!have_rules) return have_rules.error();
    auto have_routes = kernel_routes(nl, cfg_);
    if (!have_routes) return have_routes.error();

    // Tables, then rules, then the marks (a mark without its rule would be routed by the
    // main table); going away in the opposite order.
    std::string errors;
    for (const auto& rt : plan.routes)
        if (!std::binary_search(have_routes->begin(), have_routes->end(), rt))
            if (auto r = change_route(nl, rt, true); !r) append(errors, r.error().what());
    for (const auto& rule : plan.rules)
        if (!std::binary_search(have_rules->begin(), have_rules->end(), rule))
            if (auto r = change_rule(nl, rule, true); !r) append(errors, r.error().what());

    const int fd = loader_.topology_fd();
    for (const auto& [id, t] : plan.entries) {
        __u32 key = id;
        if (bpf_map_update_elem(fd, &key, &t, BPF_ANY) != 0)
            return sys_error("write pbpf_topology[" + std::to_string(id) + "]");
    }
    std::vector<__u32> gone;
    __u32 key = 0, next = 0;
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        if (!plan.entries.count(next)) gone.push_back(next);
    }
    for (__u32 id : gone)
        if (bpf_map_delete_elem(fd, &id) != 0 && errno != ENOENT)
            return sys_error("delete pbpf_topology[" + std::to_string(id) + "]");

    for (const auto& rule : *have_rules)
        if (!std::binary_search(plan.rules.begin(), plan.rules.end(), rule))
            if (auto r = change_rule(nl, rule, false); !r) append(errors, r.error().what());
    for (const auto& rt : *have_routes) {
        bool wanted = std::any_of(plan.routes.begin(), plan.routes.end(), [&](const auto& w) {
            return w.family == rt.family && w.table == rt.table;
        });
        // A changed gateway was replaced in place above.
        if (!wanted)
            if (auto r = change_route(nl, rt, false); !r) append(errors, r.error().what());
    }
    if (!errors.empty()) return Error{0, "[topology] " + errors};
    return {};
}

json TopologyManager::describe() {
    std::lock_guard lock(mu_);
    json ifs = json::array();
    for (const auto& i : ifaces_) {
        json j = {{"name", i.name},
                  {"ifindex", i.ifindex},
                  {"state", i.error.empty()       ? "checking"
                            : i.error == "absent" ? "absent"
                                                  : "error"}};
        if (!i.error.empty() && i.error != "absent") j["error"] = i.error;
        ifs.push_back(std::move(j));
    }
    json personas = json::array();
    const int fd = loader_.topology_fd();
    for (const auto& [id, name] : names_) {
        pbpf_topology t{};
        __u32 key = id;
        if (bpf_map_lookup_elem(fd, &key, &t) != 0) continue;
        char mark[16];
        std::snprintf(mark, sizeof mark, "0x%x", id << PBPF_MARK_PERSONA_SHIFT);
        json p = {{"persona", name}, {"id", id}, {"mark", mark}};
        if (t.flags & PBPF_TOPO_F_MAX_HOPS) p["max_hops"] = t.max_hops;
        if (t.flags & PBPF_TOPO_F_NEXT_HOPS) {
            json hops = json::array();
            for (uint8_t n = 0; n < t.next_hop_count && n < PBPF_MAX_NEXT_HOPS; ++n)
                hops.push_back(addr_text(t.next_hops[n]));
            p["next_hops"] = hops;
        }
        personas.push_back(std::move(p));
    }
    json rules = json::array(), routes = json::array();
    NlRoute nl;
    if (nl.connect()) {
        if (auto have = kernel_rules(nl, cfg_))
            for (const auto& r : *have)
                rules.push_back({{"family", r.family == AF_INET6 ? "ipv6" : "ipv4"},
                                 {"priority", r.priority},
                                 {"persona_id", r.persona_id},
                                 {"action", r.unreachable ? "unreachable" : "lookup"},
                                 {"table", r.table}});
        if (auto have = kernel_routes(nl, cfg_))
            for (const auto& r : *have)
                routes.push_back({{"family", r.family == AF_INET6 ? "ipv6" : "ipv4"},
                                  {"table", r.table},
                                  {"persona_id", r.persona_id},
                                  {"via", r.gateway}});
    }
    return {{"interfaces", ifs}, {"personas", personas}, {"rules", rules}, {"routes", routes}};
}

void TopologyManager::add_routes(ApiServer& server) {
    server.add_route("GET", "/v1/topology", [this](const httplib::Request&) { return describe(); });
}

Result<void> uninstall_topology(const std::string& bpffs_root, const TopologyConfig& cfg) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(topo_pin_dir(bpffs_root), ec))
        if (auto r = detach_tcx_pinned(e.path().string()); !r) return r;
    NlRoute nl;
    if (auto r = nl.connect(); !r) return r;
    auto rules = kernel_rules(nl, cfg);
    if (!rules) return rules.error();
    for (const auto& rule : *rules)
        if (auto r = change_rule(nl, rule, false); !r) return r;
    auto routes = kernel_routes(nl, cfg);
    if (!routes) return routes.error();
    for (const auto& rt : *routes)
        if (auto r = change_route(nl, rt, false); !r) return r;
    return {};
}

}  // namespace pbpf::agent
