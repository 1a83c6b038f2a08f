// Interface bindings: tc programs on the interface facing a workload.
#include "agent/if_binder.h"
#include "agent/tcx.h"

#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "maps/abi/binding.h"
#include "maps/abi/events.h"
#include "maps/fd.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace pbpf::agent {
namespace {

using nlohmann::json;

namespace fs = std::filesystem;

std::string netns_path(const std::string& netns) {
    if (netns.empty()) return "";
    if (netns[0] == '/') return netns;
    return "/run/netns/" + netns;
}

std::string describe(const std::string& ifname, const std::string& netns) {
    return netns.empty() ? ifname : ifname + " in netns " + netns;
}

std::string pin_base(const std::string& pin_dir, uint64_t cookie, uint32_t ifindex) {
    return pin_dir + "/if/" + std::to_string(cookie) + "-" + std::to_string(ifindex);
}

// Runs fn on a thread that joined the netns (the agent's own if netns is ""): interface
// names, ifindexes and TCX attachment resolve in the calling thread's netns.
Result<void> in_netns(const std::string& netns, const std::function<Result<void>()>& fn) {
    if (netns.empty()) return fn();
    const std::string path = netns_path(netns);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return sys_error("open netns " + path);
    Result<void> result;
    std::thread t([&] {
        if (::setns(fd.get(), CLONE_NEWNET) != 0) {
            result = sys_error("enter netns " + path);
            return;
        }
        result = fn();
    });
    t.join();
    return result;
}

struct Interface {
    uint32_t ifindex = 0;
    uint64_t cookie = 0;
    bool l3 = false;  // no link-layer header (tun)
};

// In the current thread's netns.
Result<Interface> probe_interface(const std::string& ifname) {
    Interface i;
    if (ifname.empty() || ifname.size() >= IFNAMSIZ)
        return Error{EINVAL, "bad interface name '" + ifname + "'"};
    i.ifindex = if_nametoindex(ifname.c_str());
    if (i.ifindex == 0) return Error{ENODEV, "no interface " + ifname};
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return sys_error("socket");
    socklen_t len = sizeof i.cookie;
    int rc = ::getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &i.cookie, &len);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    int rc2 = ::ioctl(s, SIOCGIFHWADDR, &ifr);
    ::close(s);
    if (rc != 0) return sys_error("read the netns cookie (SO_NETNS_COOKIE)");
    if (rc2 != 0) return sys_error("read the link type of " + ifname);
    if (ifr.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK)
        return Error{EINVAL, ifname +
                                 " is a loopback interface; bind the interface that faces "
                                 "the workload (a veth or tap)"};
    // Ethernet-framed (veth, tap, bridges' ports) or no link header at all (tun); other
    // link types put headers before IP that the programs do not parse.
    if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER && ifr.ifr_hwaddr.sa_family != ARPHRD_NONE)
        return Error{EINVAL,
                     ifname + " has link type " + std::to_string(ifr.ifr_hwaddr.sa_family) +
                         "; only Ethernet-framed (veth, tap) and tun interfaces can be bound"};
    i.l3 = ifr.ifr_hwaddr.sa_family == ARPHRD_NONE;
    return i;
}

// probe_interface() in `netns` ("" = the agent's own, a name under /run/netns, or a path).
Result<Interface> probe_in_netns(const std::string& ifname, const std::string& netns) {
    if (netns.find('/') != std::string::npos && netns[0] != '/')
        return Error{EINVAL,
                     "netns must be a name under /run/netns or an absolute path: '" + netns + "'"};
    Interface i;
    auto probed = in_netns(netns, [&]() -> Result<void> {
        auto r = probe_interface(ifname);
        if (!r) return r.error();
        i = *r;
        return {};
    });
    if (!probed) return probed.error();
    return i;
}

Result<void> write_entry(const Loader& loader, const Interface& i, uint32_t persona_id) {
    pbpf_if_key k{};
    k.netns_cookie = i.cookie;
    k.ifindex = i.ifindex;
    pbpf_binding b{};
    b.persona_id = persona_id;
    b.flags = i.l3 ? PBPF_BINDING_F_L3 : 0;
    b.counter_slot = loader.slots().acquire({i.cookie, i.ifindex});
    if (bpf_map_update_elem(loader.if_bindings_fd(), &k, &b, BPF_ANY) != 0) {
        if (errno == E2BIG || errno == ENOSPC)
            return Error{errno, "interface binding table full (" +
                                    std::to_string(loader.limits().interface_bindings) +
                                    " entries, [limits] interface_bindings)"};
        return sys_error("write pbpf_if_bindings");
    }
    return {};
}

// Attaches both programs (in the interface's netns) unless pinned links exist, in which
// case they get this agent's programs. Pins: <pin dir>/if/<cookie>-<ifindex>-{ingress,egress,
// topology}.
Result<void> attach(const Loader& loader, const std::string& netns, const Interface& i) {
    std::error_code ec;
    fs::create_directories(loader.pin_dir() + "/if", ec);
    if (ec) return Error{ec.value(), "create " + loader.pin_dir() + "/if"};
    const std::string base = pin_base(loader.pin_dir(), i.cookie, i.ifindex);
    struct Want {
        const char* suffix;
        int attach_type;
        int prog_fd;
        unsigned flags;
    } wants[] = {{"-ingress", kTcxIngress, loader.tc_ingress_prog_fd(), 0},
                 {"-egress", kTcxEgress, loader.tc_egress_prog_fd(), 0},
                 // The topology mark and hop clamp: ahead of the firewall, which ends the
                 // chain when it passes a packet (docs/topology.md).
                 {"-topology", kTcxIngress, loader.topo_ingress_prog_fd(), kTcxBefore}};
    for (const auto& w : wants) {
        auto r = in_netns(netns, [&]() {
            return attach_tcx_pinned(w.prog_fd, i.ifindex, w.attach_type, base + w.suffix, w.flags);
        });
        if (!r) return r;
    }
    return {};
}

}  // namespace

Result<void> release_interface(const Loader& loader, uint64_t netns_cookie, uint32_t ifindex) {
    pbpf_if_key k{};
    k.netns_cookie = netns_cookie;
    k.ifindex = ifindex;
    if (bpf_map_delete_elem(loader.if_bindings_fd(), &k) != 0 && errno != ENOENT)
        return sys_error("delete pbpf_if_bindings entry");
    loader.slots().release({netns_cookie, ifindex});
    const std::string base = pin_base(loader.pin_dir(), netns_cookie, ifindex);
    for (const char* suffix : {"-ingress", "-egress", "-topology"})
        if (auto r = detach_tcx_pinned(base + suffix); !r) return r;
    return {};
}

Result<IfBinder::Key> IfBinder::resolve(const std::string& ifname, const std::string& netns) const {
    auto i = probe_in_netns(ifname, netns);
    if (!i) return i.error();
    return Key{i->cookie, i->ifindex};
}

json IfBinder::bind(const json& body) {
    auto str = [&](const char* key, bool required) -> std::string {
        if (!body.contains(key)) {
            if (required) throw ApiError(400, std::string("binding needs \"") + key + "\"");
            return "";
        }
        if (!body[key].is_string())
            throw ApiError(400, std::string("\"") + key + "\" must be a string");
        return body[key].get<std::string>();
    };
    const std::string persona = str("persona", true);
    const std::string ifname = str("ifname", true);
    const std::string netns = str("netns", false);
    if (netns.find('/') != std::string::npos && netns[0] != '/')
        throw ApiError(
            400, "netns must be a name under /run/netns or an absolute path: '" + netns + "'");
    return bind_as(persona, ifname, netns, "api", 0);
}

json IfBinder::bind_as(const std::string& persona, const std::string& ifname,
                       const std::string& netns, const std::string& origin, int64_t rule_id) {
    auto rec = must(store_.persona(persona));
    if (!rec) throw ApiError(404, "no persona '" + persona + "'");

    auto probed = probe_in_netns(ifname, netns);
    if (!probed) {
        const Error& e = probed.error();
        throw ApiError(e.err == ENOENT || e.err == ENODEV ? 404 : 400,
                       "cannot bind " + describe(ifname, netns) + ": " + e.what());
    }
    const Interface i = *probed;

    auto previous = must(store_.if_binding(netns, ifname));
    // One interface, one binding: another spelling of the same netns ("" vs a path) must
    // not make a second record that an unbind of the first would silently undercut.
    for (const auto& other : must(store_.if_bindings())) {
        if (other.netns_cookie == i.cookie && other.ifindex == i.ifindex &&
            (other.netns != netns || other.ifname != ifname))
            throw ApiError(409, describe(ifname, netns) + " is already bound to '" + other.persona +
                                    "' as " + describe(other.ifname, other.netns) +
                                    "; unbind that first");
    }
    if (!previous && must(store_.if_bindings()).size() >= loader_.limits().interface_bindings)
        throw ApiError(507, "interface binding table full: " +
                                std::to_string(loader_.limits().interface_bindings) +
                                " in use ([limits] interface_bindings in the agent config)");
    // The same name may now be another interface (recreated): release the old one first.
    if (previous && (previous->ifindex != i.ifindex || previous->netns_cookie != i.cookie))
        must(release_interface(loader_, previous->netns_cookie, previous->ifindex));

    IfBindingRecord b{netns,    ifname,  i.ifindex,
                      i.cookie, persona, static_cast<int64_t>(std::time(nullptr)),
                      origin,   rule_id};
    // On failure: an interface bound before keeps its previous persona, a new one is
    // released again.
    const bool same_interface =
        previous && previous->ifindex == i.ifindex && previous->netns_cookie == i.cookie;
    auto undo = [&]() {
        if (same_interface) {
            if (auto old = store_.persona(previous->persona); old && old->has_value())
                if (write_entry(loader_, i, (*old)->id)) return;
        }
        (void)release_interface(loader_, i.cookie, i.ifindex);
    };
    auto txn = must(store_.begin());
    must(store_.upsert_if_binding(b));
    // Entry first, then the programs: a packet never meets the programs without it.
    if (auto r = write_entry(loader_, i, rec->id); !r) {
        undo();
        throw ApiError(507, r.error().what());
    }
    if (auto r = attach(loader_, netns, i); !r) {
        undo();
        throw ApiError(500, "attach to " + describe(ifname, netns) + ": " + r.error().what());
    }
    if (auto c = txn->commit(); !c) {
        undo();
        throw ApiError(500, c.error().what());
    }
    spdlog::info("bound interface {} (ifindex {}) to persona '{}' ({}){}", describe(ifname, netns),
                 i.ifindex, persona, origin == "rule" ? "rule " + std::to_string(rule_id) : origin,
                 previous ? " (was '" + previous->persona + "')" : std::string());
    if (on_event_)
        on_event_(PBPF_EV_BIND, origin == "rule" ? PBPF_BIND_RULE : PBPF_BIND_API, i.cookie,
                  i.ifindex, netns.empty() ? ifname : ifname + "@" + netns, rec->id, rule_id);
    return {
        {"ifname", ifname},       {"netns", netns},
        {"ifindex", i.ifindex},   {"persona", persona},
        {"bound_at", b.bound_at}, {"replaced", previous ? json(previous->persona) : json(nullptr)}};
}

json IfBinder::unbind(const std::string& ifname, const std::string& netns) {
    auto found = must(store_.if_binding(netns, ifname));
    if (!found) throw ApiError(404, "no binding for interface " + describe(ifname, netns));
    if (found->origin == "rule") {
        auto rule = must(store_.bind_rule(found->rule_id));
        throw ApiError(409, "interface " + describe(ifname, netns) + " is bound to persona '" +
                                found->persona + "' by binding rule " +
                                std::to_string(found->rule_id) + "; " +
                                (rule ? removal_hint(*rule) : std::string("remove the rule")) +
                                ", or bind it explicitly");
    }
    unbind_record(*found, PBPF_BIND_API);
    return {{"unbound",
             {{"ifname", ifname},
              {"netns", netns},
              {"ifindex", found->ifindex},
              {"persona", found->persona}}}};
}

void IfBinder::unbind_record(const IfBindingRecord& b, uint8_t trigger) {
    const std::string& netns = b.netns;
    const std::string& ifname = b.ifname;
    const auto* found = &b;
    // Store first: if the kernel part fails, the next start's reconcile removes what no
    // stored binding accounts for; the other order could leave a stored binding unenforced.
    must(store_.delete_if_binding(netns, ifname));
    if (auto r = release_interface(loader_, found->netns_cookie, found->ifindex); !r)
        spdlog::error("unbind {}: {} (removed at the next start)", describe(ifname, netns),
                      r.error().what());
    spdlog::info("unbound interface {} (was '{}')", describe(ifname, netns), found->persona);
    if (on_event_) {
        auto rec = store_.persona(found->persona);
        uint32_t pid = rec && rec->has_value() ? (*rec)->id : 0;
        on_event_(PBPF_EV_UNBIND, trigger, found->netns_cookie, found->ifindex,
                  netns.empty() ? ifname : ifname + "@" + netns, pid, found->rule_id);
    }
}

json IfBinder::list() {
    json arr = json::array();
    for (const auto& b : must(store_.if_bindings()))
        arr.push_back({{"ifname", b.ifname},
                       {"netns", b.netns},
                       {"ifindex", b.ifindex},
                       {"persona", b.persona},
                       {"bound_at", b.bound_at},
                       {"origin", b.origin},
                       {"rule", b.origin == "rule" ? json(b.rule_id) : json(nullptr)}});
    return arr;
}

Result<void> IfBinder::reconcile() {
    auto recs = store_.if_bindings();
    if (!recs) return recs.error();
    std::set<std::string> keep;  // pin bases that stay
    std::set<std::pair<uint64_t, uint32_t>> keys;
    size_t kept = 0, dropped = 0;
    for (const auto& b : *recs) {
        Interface i;
        auto probed = in_netns(b.netns, [&]() -> Result<void> {
            auto r = probe_interface(b.ifname);
            if (!r) return r.error();
            i = *r;
            return {};
        });
        auto persona = store_.persona(b.persona);
        if (!persona) return persona.error();
        if (!probed || i.ifindex != b.ifindex || i.cookie != b.netns_cookie || !*persona) {
            spdlog::warn("interface binding {} -> '{}' dropped: {}", describe(b.ifname, b.netns),
                         b.persona,
                         !probed ? probed.error().what() : "the interface was recreated");
            (void)release_interface(loader_, b.netns_cookie, b.ifindex);
            if (auto r = store_.delete_if_binding(b.netns, b.ifname); !r) return r;
            ++dropped;
            continue;
        }
        if (auto r = write_entry(loader_, i, (*persona)->id); !r) return r;
        if (auto r = attach(loader_, b.netns, i); !r) return r;
        keep.insert(pin_base(loader_.pin_dir(), i.cookie, i.ifindex));
        keys.insert({i.cookie, i.ifindex});
        ++kept;
    }
    // Map entries and pinned links that no stored binding accounts for.
    std::vector<pbpf_if_key> stale;
    pbpf_if_key prev{}, next{};
    bool first = true;
    while (bpf_map_get_next_key(loader_.if_bindings_fd(), first ? nullptr : &prev, &next) == 0) {
        first = false;
        prev = next;
        if (!keys.count({next.netns_cookie, next.ifindex})) stale.push_back(next);
    }
    for (const auto& k : stale) (void)release_interface(loader_, k.netns_cookie, k.ifindex);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(loader_.pin_dir() + "/if", ec)) {
        std::string name = e.path().string();
        std::string base = name.substr(0, name.rfind('-'));
        if (keep.count(base)) continue;
        int fd = bpf_obj_get(name.c_str());
        if (fd >= 0) {
            (void)bpf_link_detach(fd);
            ::close(fd);
        }
        ::unlink(name.c_str());
    }
    spdlog::info("reconciled interface bindings: {} kept, {} dropped, {} stale removed", kept,
                 dropped, stale.size());
    return {};
}

}  // namespace pbpf::agent
