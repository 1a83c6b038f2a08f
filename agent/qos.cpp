// QosManager: HTB classes per persona on the egress interfaces, through libnl-route.
#include "agent/qos.h"

#include <net/if.h>  // before the linux/ headers libnl pulls in

#include <bpf/bpf.h>
#include <linux/if_arp.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/class.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/tc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "agent/api_error.h"
#include "agent/api_server.h"
#include "agent/loader.h"
#include "agent/netlink.h"
#include "agent/tcx.h"
#include "agent/watchers.h"
#include "pdl-compiler/values.h"

namespace pbpf::agent {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint32_t kRootHandle = static_cast<uint32_t>(PBPF_QOS_HTB_MAJOR) << 16;
constexpr uint32_t kLinkHandle = kRootHandle | PBPF_QOS_LINK_MINOR;
// The assured rate of a class that only borrows: enough to keep a TCP connection alive
// under full contention, small against any link.
constexpr uint64_t kTrickleBps = 100'000;

uint32_t handle_of(uint16_t minor) { return kRootHandle | minor; }

std::string qos_pin_dir(const std::string& bpffs_root) { return bpffs_root + "/qos"; }
std::string qos_pin(const std::string& bpffs_root, uint32_t ifindex) {
    return qos_pin_dir(bpffs_root) + "/" + std::to_string(ifindex) + "-egress";
}

using QdiscPtr = NlPtr<rtnl_qdisc, rtnl_qdisc_put>;
using ClassPtr = NlPtr<rtnl_class, rtnl_class_put>;
using CachePtr = NlPtr<nl_cache, nl_cache_free>;
using MsgPtr = NlPtr<nl_msg, nlmsg_free>;

// The root qdisc of an interface: (handle, kind), or handle 0 and "" when there is none.
Result<std::pair<uint32_t, std::string>> root_qdisc(NlRoute& nl, uint32_t ifindex) {
    CachePtr cache;
    int err = rtnl_qdisc_alloc_cache(nl.get(), &cache.p);
    if (err < 0) return Error{0, nl_error("list qdiscs", err)};
    QdiscPtr root(rtnl_qdisc_get_by_parent(cache.p, static_cast<int>(ifindex), TC_H_ROOT));
    if (root.p == nullptr) return std::pair<uint32_t, std::string>{0, ""};
    const char* kind = rtnl_tc_get_kind(TC_CAST(root.p));
    return std::pair<uint32_t, std::string>{rtnl_tc_get_handle(TC_CAST(root.p)),
                                            kind != nullptr ? kind : ""};
}

// The link-layer header the qdisc's size table subtracts, so that rates count IP packets
// (what a workload sends) whatever the link: 14 on Ethernet, 0 on an L3 device.
Result<int> header_len(NlRoute& nl, uint32_t ifindex) {
    rtnl_link* link = nullptr;
    int err = rtnl_link_get_kernel(nl.get(), static_cast<int>(ifindex), nullptr, &link);
    if (err < 0) return Error{ENODEV, nl_error("interface " + std::to_string(ifindex), err)};
    unsigned int type = rtnl_link_get_arptype(link);
    rtnl_link_put(link);
    return type == ARPHRD_ETHER ? 14 : 0;
}

Result<void> add_root(NlRoute& nl, uint32_t ifindex, int hdr) {
    QdiscPtr q(rtnl_qdisc_alloc());
    if (q.p == nullptr) return Error{ENOMEM, "qdisc"};
    rtnl_tc_set_ifindex(TC_CAST(q.p), static_cast<int>(ifindex));
    rtnl_tc_set_parent(TC_CAST(q.p), TC_H_ROOT);
    rtnl_tc_set_handle(TC_CAST(q.p), kRootHandle);
    int err = rtnl_tc_set_kind(TC_CAST(q.p), "htb");
    if (err < 0) return Error{0, nl_error("htb", err)};
    rtnl_htb_set_defcls(q.p, 0);  // unclassified traffic: not shaped
    rtnl_htb_set_rate2quantum(q.p, 10);
    MsgPtr msg;
    err = rtnl_qdisc_build_add_request(q.p, NLM_F_CREATE | NLM_F_REPLACE, &msg.p);
    if (err < 0) return Error{0, nl_error("build htb request", err)};
    // A size table with only an overhead: the kernel counts skb->len + overhead.
    if (hdr > 0) {
        tc_sizespec spec{};
        spec.overhead = -hdr;
        nlattr* stab = nla_nest_start(msg.p, TCA_STAB);
        if (stab == nullptr || nla_put(msg.p, TCA_STAB_BASE, sizeof spec, &spec) < 0)
            return Error{ENOMEM, "htb size table"};
        nla_nest_end(msg.p, stab);
    }
    err = nl_send_sync(nl.get(), msg.p);
    msg.p = nullptr;  // nl_send_sync frees it
    if (err < 0) return Error{0, nl_error("add htb root", err)};
    return {};
}

Result<void> put_class(NlRoute& nl, uint32_t ifindex, uint32_t parent, uint32_t handle,
                       const HtbClassSpec& c) {
    ClassPtr cl(rtnl_class_alloc());
    if (cl.p == nullptr) return Error{ENOMEM, "class"};
    rtnl_tc_set_ifindex(TC_CAST(cl.p), static_cast<int>(ifindex));
    rtnl_tc_set_parent(TC_CAST(cl.p), parent);
    rtnl_tc_set_handle(TC_CAST(cl.p), handle);
    int err = rtnl_tc_set_kind(TC_CAST(cl.p), "htb");
    if (err < 0) return Error{0, nl_error("htb", err)};
    // libnl takes HTB rates in bytes per second.
    rtnl_htb_set_rate64(cl.p, c.rate_bps / 8);
    rtnl_htb_set_ceil64(cl.p, c.ceil_bps / 8);
    rtnl_htb_set_prio(cl.p, c.prio);
    rtnl_htb_set_quantum(cl.p, c.quantum);
    // Without a burst, tc's default: what the rate sends in a timer tick (1 ms), plus
    // one packet (libnl's own default, one MTU, starves fast classes).
    auto tick = [](uint64_t bps) {
        return static_cast<uint32_t>(std::min<uint64_t>(bps / 8 / 1000 + 1600, UINT32_MAX));
    };
    rtnl_htb_set_rbuffer(cl.p, c.burst_bytes > 0 ? c.burst_bytes : tick(c.rate_bps));
    rtnl_htb_set_cbuffer(cl.p, c.burst_bytes > 0 ? c.burst_bytes : tick(c.ceil_bps));
    err = rtnl_class_add(nl.get(), cl.p, NLM_F_CREATE);
    if (err < 0) {
        char h[32];
        std::snprintf(h, sizeof h, "%x:%x", handle >> 16, handle & 0xffff);
        return Error{0, nl_error(std::string("set class ") + h, err)};
    }
    return {};
}

struct KernelClass {
    uint32_t handle = 0;
    uint64_t bytes = 0, packets = 0, drops = 0, overlimits = 0;
};

// Our persona classes on an interface (minor >= PBPF_QOS_CLASS_BASE under the root).
Result<std::vector<KernelClass>> persona_classes(NlRoute& nl, uint32_t ifindex) {
    CachePtr cache;
    int err = rtnl_class_alloc_cache(nl.get(), static_cast<int>(ifindex), &cache.p);
    if (err < 0) return Error{0, nl_error("list classes", err)};
    std::vector<KernelClass> out;
    for (nl_object* o = nl_cache_get_first(cache.p); o != nullptr; o = nl_cache_get_next(o)) {
        auto* tc = TC_CAST(o);
        uint32_t h = rtnl_tc_get_handle(tc);
        if (TC_H_MAJ(h) != kRootHandle || TC_H_MIN(h) < PBPF_QOS_CLASS_BASE) continue;
        KernelClass k;
        k.handle = h;
        k.bytes = rtnl_tc_get_stat(tc, RTNL_TC_BYTES);
        k.packets = rtnl_tc_get_stat(tc, RTNL_TC_PACKETS);
        k.drops = rtnl_tc_get_stat(tc, RTNL_TC_DROPS);
        k.overlimits = rtnl_tc_get_stat(tc, RTNL_TC_OVERLIMITS);
        out.push_back(k);
    }
    return out;
}

Result<void> delete_class(NlRoute& nl, uint32_t ifindex, uint32_t handle) {
    ClassPtr cl(rtnl_class_alloc());
    if (cl.p == nullptr) return Error{ENOMEM, "class"};
    rtnl_tc_set_ifindex(TC_CAST(cl.p), static_cast<int>(ifindex));
    rtnl_tc_set_handle(TC_CAST(cl.p), handle);
    int err = rtnl_class_delete(nl.get(), cl.p);
    if (err < 0 && err != -NLE_OBJ_NOTFOUND) return Error{0, nl_error("delete class", err)};
    return {};
}

std::string handle_text(uint32_t h) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%x:%x", h >> 16, h & 0xffff);
    return buf;
}

}  // namespace

uint8_t dscp_for(uint8_t priority) {
    switch (priority) {
        case PBPF_PRIORITY_LOW:
            return PBPF_DSCP_LOW;
        case PBPF_PRIORITY_HIGH:
            return PBPF_DSCP_HIGH;
        case PBPF_PRIORITY_CRITICAL:
            return PBPF_DSCP_CRITICAL;
        default:
            return PBPF_DSCP_NORMAL;
    }
}

uint64_t ingress_burst(uint64_t rate_bps) {
    return std::max<uint64_t>(rate_bps / 8 * PBPF_INGRESS_BURST_MS / 1000, PBPF_INGRESS_MIN_BURST);
}

uint32_t htb_quantum(uint64_t rate_bps) {
    uint64_t q = rate_bps / 8 / 10;
    return static_cast<uint32_t>(std::clamp<uint64_t>(q, 1600, 60000));
}

std::optional<HtbClassSpec> htb_class_for(uint32_t persona_id, const pbpf_persona_settings& s,
                                          uint64_t link_rate_bps) {
    const bool has_rate = (s.flags & PBPF_SETTINGS_F_QOS_EGRESS) != 0 && s.egress.rate_bps > 0;
    if (!has_rate && s.priority == PBPF_PRIORITY_UNSET) return std::nullopt;
    HtbClassSpec c;
    c.persona_id = persona_id;
    c.minor = static_cast<uint16_t>(PBPF_QOS_CLASS_BASE + persona_id);
    c.ceil_bps = has_rate ? s.egress.rate_bps : link_rate_bps;
    const bool borrows_only = !has_rate || s.priority == PBPF_PRIORITY_LOW;
    c.rate_bps = borrows_only ? std::min(kTrickleBps, c.ceil_bps) : c.ceil_bps;
    c.burst_bytes =
        has_rate ? static_cast<uint32_t>(std::min<uint64_t>(s.egress.burst_bytes, UINT32_MAX)) : 0;
    switch (s.priority) {
        case PBPF_PRIORITY_CRITICAL:
            c.prio = 0;
            break;
        case PBPF_PRIORITY_HIGH:
            c.prio = 1;
            break;
        case PBPF_PRIORITY_LOW:
            c.prio = 3;
            break;
        default:
            c.prio = 2;
    }
    c.quantum = htb_quantum(c.rate_bps);
    return c;
}

std::optional<pbpf_qos> qos_entry_for(uint32_t persona_id, const pbpf_persona_settings& s,
                                      bool shaping) {
    pbpf_qos q{};
    q.priority = s.priority;
    if (shaping) {
        if (auto c = htb_class_for(persona_id, s, 1)) {
            q.flags |= PBPF_QOS_F_EGRESS_CLASS;
            q.class_minor = c->minor;
        }
        if (s.priority != PBPF_PRIORITY_UNSET) {
            q.flags |= PBPF_QOS_F_DSCP;
            q.dscp = dscp_for(s.priority);
        }
    }
    if ((s.flags & PBPF_SETTINGS_F_QOS_INGRESS) && s.ingress.rate_bps > 0) {
        q.flags |= PBPF_QOS_F_INGRESS_LIMIT;
        q.ingress_rate_bps = s.ingress.rate_bps;
        q.ingress_burst_bytes =
            s.ingress.burst_bytes > 0 ? s.ingress.burst_bytes : ingress_burst(s.ingress.rate_bps);
    }
    // The RTT is sampled by the sock_ops program wherever the persona's sockets are, so a
    // latency target needs no egress interface.
    if (s.latency_target_ns != 0) {
        q.flags |= PBPF_QOS_F_RTT;
        q.latency_target_ns = s.latency_target_ns;
    }
    if (q.flags == 0) return std::nullopt;
    return q;
}

QosManager::QosManager(Loader& loader, QosConfig cfg, PersonaSource source, std::mutex& api_mutex)
    : loader_(loader), api_mu_(api_mutex), cfg_(std::move(cfg)), source_(std::move(source)) {}

QosManager::~QosManager() { stop(); }

void QosManager::stop() {
    if (watcher_) watcher_->stop();
}

Result<std::unique_ptr<QosManager>> QosManager::start(Loader& loader, const QosConfig& cfg,
                                                      PersonaSource source, std::mutex& api_mutex) {
    std::unique_ptr<QosManager> m(new QosManager(loader, cfg, std::move(source), api_mutex));
    for (const auto& name : cfg.egress_interfaces) m->ifaces_.push_back(Iface{name, 0, ""});
    if (!cfg.egress_interfaces.empty()) {
        std::error_code ec;
        fs::create_directories(qos_pin_dir(loader.pin_dir()), ec);
        if (ec) return Error{ec.value(), "create " + qos_pin_dir(loader.pin_dir())};
    }
    {
        std::lock_guard lock(m->mu_);
        for (auto& i : m->ifaces_) {
            unsigned idx = if_nametoindex(i.name.c_str());
            if (idx == 0) {
                spdlog::warn(
                    "[qos] egress interface {} does not exist (yet); shaping starts "
                    "when it appears",
                    i.name);
                i.error = "absent";
                continue;
            }
            i.ifindex = idx;
            // A root qdisc someone else made is not ours to replace: refuse to start.
            if (auto r = m->setup_interface(i); !r) return r.error();
        }
        // Classifier links of interfaces no longer configured or gone.
        std::set<std::string> keep;
        for (const auto& i : m->ifaces_)
            if (i.ifindex != 0) keep.insert(qos_pin(loader.pin_dir(), i.ifindex));
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(qos_pin_dir(loader.pin_dir()), ec)) {
            if (keep.count(e.path().string())) continue;
            if (auto r = detach_tcx_pinned(e.path().string()); !r)
                spdlog::warn("[qos] {}", r.error().what());
        }
        if (auto r = m->sync_locked(); !r) return r.error();
    }
    if (!cfg.egress_interfaces.empty()) {
        QosManager* self = m.get();
        auto w =
            LinkWatcher::follow([self](const std::string& name,
                                       uint32_t ifindex) { self->on_link_added(name, ifindex); },
                                [self](const std::string& name) { self->on_link_removed(name); });
        if (!w) return w.error();
        m->watcher_ = std::move(*w);
    }
    return m;
}

Result<void> QosManager::setup_interface(Iface& i) {
    // A new root (or a new ifindex) has none of the classes applied before.
    for (auto it = applied_.begin(); it != applied_.end();)
        it = it->first.first == i.ifindex ? applied_.erase(it) : std::next(it);
    NlRoute nl;
    if (auto r = nl.connect(); !r) return r;
    auto root = root_qdisc(nl, i.ifindex);
    if (!root) return root.error();
    auto [handle, kind] = *root;
    if (handle == kRootHandle && kind != "htb")
        return Error{0, "[qos] " + i.name + " has a root qdisc 7062: of kind " + kind +
                            ", not personabpf's HTB"};
    if (handle != kRootHandle && handle != 0)
        return Error{0,
                     "[qos] " + i.name + " has a root qdisc " + handle_text(handle) + " (" + kind +
                         ") that personabpf did not create; remove it (tc qdisc del dev " + i.name +
                         " root) or drop the interface from [qos] "
                         "egress_interfaces"};
    if (handle != kRootHandle) {
        auto hdr = header_len(nl, i.ifindex);
        if (!hdr) return hdr.error();
        if (auto r = add_root(nl, i.ifindex, *hdr); !r)
            return Error{0, "[qos] " + i.name + ": " + r.error().what()};
    }
    HtbClassSpec link;
    link.rate_bps = link.ceil_bps = cfg_.link_rate_bps;
    link.quantum = htb_quantum(cfg_.link_rate_bps);
    if (auto r = put_class(nl, i.ifindex, kRootHandle, kLinkHandle, link); !r)
        return Error{0, "[qos] " + i.name + ": " + r.error().what()};
    if (auto r = attach_tcx_pinned(loader_.qos_egress_prog_fd(), i.ifindex, kTcxEgress,
                                   qos_pin(loader_.pin_dir(), i.ifindex));
        !r)
        return Error{0, "[qos] " + i.name + ": " + r.error().what()};
    i.error.clear();
    spdlog::info("[qos] shaping egress of {} (ifindex {}, link rate {})", i.name, i.ifindex,
                 pdl::format_rate(cfg_.link_rate_bps));
    return {};
}

Result<void> QosManager::sync() {
    std::lock_guard lock(mu_);
    return sync_locked();
}

Result<void> QosManager::sync_locked() {
    auto personas = source_();
    if (!personas) return personas.error();
    const bool shaping = !cfg_.egress_interfaces.empty();
    std::map<uint32_t, pbpf_qos> entries;
    std::map<uint16_t, HtbClassSpec> classes;
    names_.clear();
    alloc_.clear();
    for (const auto& p : *personas) {
        names_[p.id] = p.name;
        QosAllocation a;
        a.priority = p.settings.priority;
        if (auto q = qos_entry_for(p.id, p.settings, shaping)) {
            entries[p.id] = *q;
            if (q->flags & PBPF_QOS_F_DSCP) a.dscp = q->dscp;
            if (q->flags & PBPF_QOS_F_INGRESS_LIMIT) {
                a.ingress_rate_bps = q->ingress_rate_bps;
                a.ingress_burst_bytes = q->ingress_burst_bytes;
            }
        }
        if (shaping) {
            if (auto c = htb_class_for(p.id, p.settings, cfg_.link_rate_bps)) {
                classes[c->minor] = *c;
                a.egress_ceil_bps = c->ceil_bps;
                a.egress_assured_bps = c->rate_bps;
                a.class_minor = c->minor;
            }
        }
        if (entries.count(p.id) || a.egress_ceil_bps > 0) alloc_[p.id] = a;
    }

    // Classes first (a class must exist before a packet is sent to it), then the map;
    // classes of personas that lost their QoS go last.
    std::string errors;
    NlRoute nl;
    if (shaping)
        if (auto r = nl.connect(); !r) return r;
    std::vector<std::pair<uint32_t, uint32_t>> stale;  // (ifindex, handle)
    for (auto& i : ifaces_) {
        if (i.ifindex == 0 || !i.error.empty()) continue;
        // Only what changed: an in-place change still recomputes the class's rate tables.
        for (const auto& [minor, c] : classes) {
            auto key = std::make_pair(i.ifindex, minor);
            auto done = applied_.find(key);
            if (done != applied_.end() && done->second == c) continue;
            if (auto r = put_class(nl, i.ifindex, kLinkHandle, handle_of(minor), c); !r) {
                applied_.erase(key);
                errors += (errors.empty() ? "" : "; ") + i.name + ": " + r.error().what();
                continue;
            }
            applied_[key] = c;
        }
        auto have = persona_classes(nl, i.ifindex);
        if (!have) {
            errors += (errors.empty() ? "" : "; ") + i.name + ": " + have.error().what();
            continue;
        }
        for (const auto& k : *have)
            if (!classes.count(static_cast<uint16_t>(TC_H_MIN(k.handle))))
                stale.emplace_back(i.ifindex, k.handle);
    }

    const int fd = loader_.qos_fd();
    // Tracked flows carry "policed" from when they were decided: when a persona gains or
    // loses its ingress limit, they are decided again (policy epoch).
    bool policing_changed = false;
    auto policed = [](const pbpf_qos& q) { return (q.flags & PBPF_QOS_F_INGRESS_LIMIT) != 0; };
    for (auto& [id, q] : entries) {
        __u32 key = id;
        pbpf_qos old{};
        bool had = bpf_map_lookup_elem(fd, &key, &old) == 0;
        policing_changed = policing_changed || (had && policed(old)) != policed(q);
        if (bpf_map_update_elem(fd, &key, &q, BPF_ANY) != 0)
            return sys_error("write pbpf_qos[" + std::to_string(id) + "]");
    }
    __u32 key = 0, next = 0;
    std::vector<__u32> gone;
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        if (!entries.count(next)) gone.push_back(next);
    }
    for (__u32 id : gone) {
        pbpf_qos old{};
        if (bpf_map_lookup_elem(fd, &id, &old) == 0 && policed(old)) policing_changed = true;
        if (bpf_map_delete_elem(fd, &id) != 0 && errno != ENOENT)
            return sys_error("delete pbpf_qos[" + std::to_string(id) + "]");
    }
    if (policing_changed)
        if (auto r = loader_.bump_policy_epoch(); !r) return r.error();

    for (const auto& [ifindex, handle] : stale) {
        applied_.erase(std::make_pair(ifindex, static_cast<uint16_t>(TC_H_MIN(handle))));
        if (auto r = delete_class(nl, ifindex, handle); !r)
            errors += (errors.empty() ? "" : "; ") + r.error().what();
    }
    if (!errors.empty()) return Error{0, "[qos] " + errors};
    return {};
}

void QosManager::on_link_added(const std::string& name, uint32_t ifindex) {
    std::lock_guard api(api_mu_);
    std::lock_guard lock(mu_);
    for (auto& i : ifaces_) {
        if (i.name != name || (i.ifindex == ifindex && i.error.empty())) continue;
        i.ifindex = ifindex;
        if (auto r = setup_interface(i); !r) {
            i.error = r.error().what();
            spdlog::error("{}", i.error);
            return;
        }
        if (auto r = sync_locked(); !r) spdlog::error("{}", r.error().what());
    }
}

void QosManager::on_link_removed(const std::string& name) {
    std::lock_guard api(api_mu_);
    std::lock_guard lock(mu_);
    for (auto& i : ifaces_) {
        if (i.name != name) continue;
        spdlog::warn("[qos] egress interface {} went away; shaping resumes when it is back", name);
        (void)detach_tcx_pinned(qos_pin(loader_.pin_dir(), i.ifindex));
        for (auto it = applied_.begin(); it != applied_.end();)
            it = it->first.first == i.ifindex ? applied_.erase(it) : std::next(it);
        i.ifindex = 0;
        i.error = "absent";
    }
}

json QosManager::describe() {
    std::lock_guard lock(mu_);
    json ifs = json::array();
    NlRoute nl;
    bool connected = static_cast<bool>(nl.connect());
    for (const auto& i : ifaces_) {
        json j = {{"name", i.name},
                  {"ifindex", i.ifindex},
                  {"state", i.error.empty()       ? "shaping"
                            : i.error == "absent" ? "absent"
                                                  : "error"},
                  {"link_rate_bps", cfg_.link_rate_bps}};
        if (!i.error.empty() && i.error != "absent") j["error"] = i.error;
        json cls = json::array();
        if (i.ifindex != 0 && i.error.empty() && connected) {
            if (auto have = persona_classes(nl, i.ifindex)) {
                for (const auto& k : *have) {
                    uint32_t id = TC_H_MIN(k.handle) - PBPF_QOS_CLASS_BASE;
                    auto n = names_.find(id);
                    cls.push_back({{"class", handle_text(k.handle)},
                                   {"persona_id", id},
                                   {"persona", n == names_.end() ? "" : n->second},
                                   {"sent_bytes", k.bytes},
                                   {"sent_packets", k.packets},
                                   {"dropped", k.drops},
                                   {"overlimits", k.overlimits}});
                }
            }
        }
        j["classes"] = cls;
        ifs.push_back(std::move(j));
    }
    json personas = json::array();
    const int fd = loader_.qos_fd();
    for (const auto& [id, name] : names_) {
        pbpf_qos q{};
        __u32 key = id;
        if (bpf_map_lookup_elem(fd, &key, &q) != 0) continue;
        json p = {{"persona", name}, {"id", id}};
        if (q.flags & PBPF_QOS_F_EGRESS_CLASS) p["class"] = handle_text(handle_of(q.class_minor));
        if (q.flags & PBPF_QOS_F_DSCP) p["dscp"] = q.dscp;
        if (q.flags & PBPF_QOS_F_INGRESS_LIMIT) {
            p["ingress_rate_bps"] = q.ingress_rate_bps;
            p["ingress_burst_bytes"] = q.ingress_burst_bytes;
        }
        personas.push_back(std::move(p));
    }
    return {{"interfaces", ifs}, {"personas", personas}};
}

namespace {
const char* priority_name(uint8_t p) {
    switch (p) {
        case PBPF_PRIORITY_LOW:
            return "low";
        case PBPF_PRIORITY_NORMAL:
            return "normal";
        case PBPF_PRIORITY_HIGH:
            return "high";
        case PBPF_PRIORITY_CRITICAL:
            return "critical";
        default:
            return "unset";
    }
}
}  // namespace

void QosManager::persona_fields(const PersonaStats& ps, json& row) const {
    std::lock_guard lock(mu_);
    auto it = alloc_.find(ps.id);
    if (it == alloc_.end()) return;
    const QosAllocation& a = it->second;
    json q = {{"priority", priority_name(a.priority)}};
    if (a.dscp >= 0) q["dscp"] = a.dscp;
    if (a.class_minor != 0) q["class"] = handle_text(handle_of(a.class_minor));
    row["qos"] = q;
    auto used = [](double bps, uint64_t limit) { return limit > 0 ? bps / limit : 0.0; };
    if (a.egress_ceil_bps > 0 && row.contains("egress"))
        row["egress"]["allocation"] = {
            {"rate_bps", a.egress_ceil_bps},
            {"assured_bps", a.egress_assured_bps},
            {"used", used(ps.rate[PBPF_DIR_EGRESS].bits_per_second, a.egress_ceil_bps)}};
    if (a.ingress_rate_bps > 0 && row.contains("ingress"))
        row["ingress"]["allocation"] = {
            {"rate_bps", a.ingress_rate_bps},
            {"burst_bytes", a.ingress_burst_bytes},
            {"used", used(ps.rate[PBPF_DIR_INGRESS].bits_per_second, a.ingress_rate_bps)}};
}

void QosManager::metrics(const MonitorSnapshot& snap, MetricsWriter& w) const {
    std::lock_guard lock(mu_);
    const std::string fam = "personabpf_persona_qos_limit_bytes_per_second";
    w.family(fam, MetricsWriter::Type::Gauge,
             "The persona's QoS rate limit per direction (egress: its HTB ceiling on the "
             "[qos] egress interfaces; ingress: its policer)");
    for (const auto& ps : snap.personas) {
        auto it = alloc_.find(ps.id);
        if (it == alloc_.end()) continue;
        if (it->second.egress_ceil_bps > 0)
            w.sample(fam, {{"persona", ps.name}, {"direction", "egress"}},
                     static_cast<double>(it->second.egress_ceil_bps) / 8);
        if (it->second.ingress_rate_bps > 0)
            w.sample(fam, {{"persona", ps.name}, {"direction", "ingress"}},
                     static_cast<double>(it->second.ingress_rate_bps) / 8);
    }
}

void QosManager::add_routes(ApiServer& server) {
    server.add_route("GET", "/v1/qos", [this](const httplib::Request&) { return describe(); });
}

Result<void> uninstall_qos(const std::string& bpffs_root, const QosConfig& cfg) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(qos_pin_dir(bpffs_root), ec))
        if (auto r = detach_tcx_pinned(e.path().string()); !r) return r;
    NlRoute nl;
    if (auto r = nl.connect(); !r) return r;
    for (const auto& name : cfg.egress_interfaces) {
        unsigned idx = if_nametoindex(name.c_str());
        if (idx == 0) continue;
        auto root = root_qdisc(nl, idx);
        if (!root || root->first != kRootHandle) continue;
        QdiscPtr q(rtnl_qdisc_alloc());
        if (q.p == nullptr) return Error{ENOMEM, "qdisc"};
        rtnl_tc_set_ifindex(TC_CAST(q.p), static_cast<int>(idx));
        rtnl_tc_set_parent(TC_CAST(q.p), TC_H_ROOT);
        rtnl_tc_set_handle(TC_CAST(q.p), kRootHandle);
        int err = rtnl_qdisc_delete(nl.get(), q.p);
        if (err < 0) return Error{0, nl_error("remove htb root of " + name, err)};
    }
    return {};
}

}  // namespace pbpf::agent
