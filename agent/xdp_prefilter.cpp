// XdpPrefilter: load or adopt the prefilter, keep the deny trie in step with the config and
// the API, attach to the uplinks through pinned XDP links, and --uninstall them.
#include "agent/xdp_prefilter.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <type_traits>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/api_server.h"
#include "maps/abi/xdp.h"
#include "maps/fd.h"
// The skeleton names the ABI structs; they are declared above.
#include "xdp_prefilter.skel.h"

// The layouts the BPF program sees (maps/abi/xdp.h): no implicit padding, fixed offsets.
static_assert(sizeof(pbpf_xdp_key) == 24);
static_assert(offsetof(pbpf_xdp_key, prefixlen) == 0);
static_assert(offsetof(pbpf_xdp_key, family) == 4);
static_assert(offsetof(pbpf_xdp_key, pad0) == 5);
static_assert(offsetof(pbpf_xdp_key, addr) == 8);
static_assert(sizeof(pbpf_xdp_deny_value) == 8);
static_assert(offsetof(pbpf_xdp_deny_value, origin) == 0);
static_assert(offsetof(pbpf_xdp_deny_value, pad0) == 4);
static_assert(sizeof(pbpf_xdp_iface) == 8);
static_assert(offsetof(pbpf_xdp_iface, slot) == 0);
static_assert(offsetof(pbpf_xdp_iface, flags) == 4);
static_assert(sizeof(pbpf_xdp_counters) == 32);
static_assert(offsetof(pbpf_xdp_counters, passed_packets) == 0);
static_assert(offsetof(pbpf_xdp_counters, passed_bytes) == 8);
static_assert(offsetof(pbpf_xdp_counters, dropped_packets) == 16);
static_assert(offsetof(pbpf_xdp_counters, dropped_bytes) == 24);
static_assert(std::has_unique_object_representations_v<pbpf_xdp_key>);
static_assert(std::has_unique_object_representations_v<pbpf_xdp_deny_value>);
static_assert(std::has_unique_object_representations_v<pbpf_xdp_iface>);
static_assert(std::has_unique_object_representations_v<pbpf_xdp_counters>);
static_assert(PBPF_XDP_FAMILY_IPV4 == AF_INET && PBPF_XDP_FAMILY_IPV6 == AF_INET6);

namespace fs = std::filesystem;

namespace pbpf::agent {

struct XdpSkeleton {
    xdp_prefilter* s = nullptr;
};

namespace {

using nlohmann::json;

constexpr const char* kLinkPrefix = "link_";

const char* origin_name(uint32_t origin) {
    switch (origin) {
        case PBPF_XDP_ORIGIN_CONFIG:
            return "config";
        case PBPF_XDP_ORIGIN_API:
            return "api";
        default:
            return "unknown";
    }
}

pbpf_xdp_key key_of(const Cidr& c) {
    pbpf_xdp_key k;
    std::memset(&k, 0, sizeof k);
    k.prefixlen = PBPF_XDP_KEY_HEAD_BITS + static_cast<uint32_t>(c.prefix_len);
    k.family = static_cast<uint8_t>(c.family);
    std::memcpy(k.addr, c.addr.data(), sizeof k.addr);
    return k;
}

Cidr cidr_of(const pbpf_xdp_key& k) {
    Cidr c;
    c.family = k.family;
    c.prefix_len = static_cast<int>(k.prefixlen) - PBPF_XDP_KEY_HEAD_BITS;
    std::memcpy(c.addr.data(), k.addr, sizeof k.addr);
    return c;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

// The deny trie's entries, read from the kernel.
Result<std::map<Cidr, uint32_t>> read_trie(int fd) {
    std::map<Cidr, uint32_t> out;
    pbpf_xdp_key key{}, next{};
    const pbpf_xdp_key* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        pbpf_xdp_deny_value v{};
        // LPM lookups return the longest match, which for a stored key is itself.
        if (bpf_map_lookup_elem(fd, &next, &v) == 0) out[cidr_of(next)] = v.origin;
        key = next;
        prev = &key;
    }
    if (errno != ENOENT) return sys_error("list pbpf_xdp_deny");
    return out;
}

struct LinkInfo {
    uint32_t type = 0;
    uint32_t prog_id = 0;
    int ifindex = 0;
};

Result<LinkInfo> link_info(int fd, const std::string& path) {
    bpf_link_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return sys_error("link info " + path);
    return LinkInfo{info.type, info.prog_id, static_cast<int>(info.xdp.ifindex)};
}

// "native", "generic" or "" (prog_id is not attached to ifindex) as the kernel sees it.
std::string attached_mode(int ifindex, uint32_t prog_id) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) != 0) return "";
    if (prog_id != 0 && q.drv_prog_id == prog_id) return "native";
    if (prog_id != 0 && q.skb_prog_id == prog_id) return "generic";
    if (prog_id != 0 && q.hw_prog_id == prog_id) return "offload";
    return "";
}

std::string ifname_of(int ifindex) {
    char buf[IF_NAMESIZE] = {};
    return ::if_indextoname(static_cast<unsigned>(ifindex), buf)
               ? buf
               : "ifindex " + std::to_string(ifindex);
}

// Creates an XDP link in `mode` ("native" or "generic"); the link's fd.
Result<Fd> create_link(int prog_fd, int ifindex, const std::string& mode) {
    LIBBPF_OPTS(bpf_link_create_opts, opts);
    opts.flags = mode == "native" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
    if (fd < 0) return sys_error("attach XDP (" + mode + ") to " + ifname_of(ifindex));
    return Fd(fd);
}

void detach_and_unpin(int fd, const std::string& path) {
    if (fd >= 0 && bpf_link_detach(fd) != 0 && errno != ENOLINK)
        spdlog::warn("detach {}: {}", path, std::strerror(errno));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        spdlog::warn("unpin {}: {}", path, std::strerror(errno));
}

}  // namespace

// ---------------------------------------------------------------------------- Cidr

std::string Cidr::text() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, addr.data(), buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(prefix_len);
}

Result<Cidr> parse_cidr(std::string_view text) {
    const std::string t(text);
    auto bad = [&](const std::string& why) { return Error{EINVAL, "'" + t + "': " + why}; };
    if (t.empty()) return Error{EINVAL, "empty CIDR"};
    auto slash = t.find('/');
    std::string addr = t.substr(0, slash);
    Cidr c;
    if (addr.find(':') != std::string::npos) {
        c.family = AF_INET6;
        if (::inet_pton(AF_INET6, addr.c_str(), c.addr.data()) != 1)
            return bad("not an IPv6 address");
    } else {
        c.family = AF_INET;
        if (::inet_pton(AF_INET, addr.c_str(), c.addr.data()) != 1)
            return bad("not an IPv4 address (a.b.c.d)");
    }
    const int max = c.family == AF_INET ? 32 : 128;
    c.prefix_len = max;
    if (slash != std::string::npos) {
        std::string len = t.substr(slash + 1);
        if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != len.npos ||
            (len.size() > 1 && len[0] == '0') || std::stoi(len) > max)
            return bad("prefix length must be 0.." + std::to_string(max));
        c.prefix_len = std::stoi(len);
    }
    // Bits past the prefix: refused rather than silently masked, since "10.1.2.3/8"
    // is more often a typo for /32 than a way of writing 10.0.0.0/8.
    Cidr net = c;
    for (int bit = c.prefix_len; bit < max; ++bit)
        net.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    if (net.addr != c.addr)
        return bad("host bits set beyond /" + std::to_string(c.prefix_len) + " (the network is " +
                   net.text() + ")");
    return c;
}

// ---------------------------------------------------------------------------- XdpPrefilter

XdpPrefilter::~XdpPrefilter() {
    // Closing our fds leaves the pinned links attached and the pinned maps in place.
    if (skel_) {
        if (skel_->s) xdp_prefilter__destroy(skel_->s);
        delete skel_;
    }
}

int XdpPrefilter::deny_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_xdp_deny); }
int XdpPrefilter::ifaces_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_xdp_ifaces); }
int XdpPrefilter::counters_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_xdp_counters); }
int XdpPrefilter::prog_fd() const { return bpf_program__fd(skel_->s->progs.pbpf_xdp_prefilter); }

Result<std::unique_ptr<XdpPrefilter>> XdpPrefilter::start(const std::string& bpffs_root,
                                                          const XdpConfig& cfg) {
    // Everything that can be checked before touching the kernel is checked first.
    std::vector<Cidr> deny;
    for (const auto& text : cfg.deny) {
        auto c = parse_cidr(text);
        if (!c) return Error{EINVAL, "[xdp] deny: " + c.error().message};
        deny.push_back(*c);
    }
    for (const auto& name : cfg.interfaces) {
        if (::if_nametoindex(name.c_str()) == 0)
            return Error{EINVAL, "[xdp] interface '" + name +
                                     "' does not exist in the agent's network namespace"};
    }
    if (cfg.mode != "auto" && cfg.mode != "native" && cfg.mode != "generic")
        return Error{EINVAL, "[xdp] mode '" + cfg.mode + "' is not auto, native or generic"};

    std::unique_ptr<XdpPrefilter> x(new XdpPrefilter());
    x->dir_ = bpffs_root + "/" + kXdpPinSubdir;
    x->mode_ = cfg.mode;
    if (::mkdir(x->dir_.c_str(), 0700) != 0 && errno != EEXIST)
        return sys_error("create pin dir " + x->dir_);
    if (auto r = x->load(cfg); !r) return r.error();

    // The deny list must fit: the config's entries plus the API's that stay.
    auto trie = read_trie(x->deny_fd());
    if (!trie) return trie.error();
    std::set<Cidr> wanted(deny.begin(), deny.end());
    size_t api_kept = 0;
    for (const auto& [c, origin] : *trie)
        if (origin != PBPF_XDP_ORIGIN_CONFIG && !wanted.count(c)) ++api_kept;
    if (wanted.size() + api_kept > x->max_entries_)
        return Error{EINVAL, "[xdp] deny list does not fit: " + std::to_string(wanted.size()) +
                                 " config entries + " + std::to_string(api_kept) +
                                 " API entries = " + std::to_string(wanted.size() + api_kept) +
                                 ", max_entries is " + std::to_string(x->max_entries_)};

    if (auto r = x->sync_config_entries(deny); !r) return r.error();
    if (auto r = x->attach_all(cfg); !r) return r.error();
    return x;
}

Result<void> XdpPrefilter::load(const XdpConfig& cfg) {
    skel_ = new XdpSkeleton{xdp_prefilter__open()};
    if (skel_->s == nullptr) return sys_error("open XDP prefilter skeleton");
    std::vector<bpf_map*> maps = {skel_->s->maps.pbpf_xdp_deny, skel_->s->maps.pbpf_xdp_ifaces,
                                  skel_->s->maps.pbpf_xdp_counters};
    std::vector<std::string> pinned, missing;
    for (bpf_map* m : maps)
        (exists(dir_ + "/" + bpf_map__name(m)) ? pinned : missing).push_back(bpf_map__name(m));
    if (!pinned.empty() && !missing.empty())
        return Error{EINVAL, "pin dir " + dir_ + " is incomplete (has " + pinned.front() +
                                 ", lacks " + missing.front() +
                                 "); run personabpfd --uninstall with this --bpffs-root first"};
    adopted_ = !pinned.empty();
    max_entries_ = cfg.max_entries;
    if (int err = bpf_map__set_max_entries(skel_->s->maps.pbpf_xdp_deny, cfg.max_entries); err)
        return sys_error("size pbpf_xdp_deny", err);
    if (adopted_) {
        for (bpf_map* m : maps) {
            std::string p = dir_ + "/" + bpf_map__name(m);
            Fd fd(bpf_obj_get(p.c_str()));
            if (!fd.valid()) return sys_error("open pinned " + p);
            bpf_map_info info{};
            __u32 len = sizeof info;
            if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
                return sys_error("map info " + p);
            bool is_deny = m == skel_->s->maps.pbpf_xdp_deny;
            if (info.type != bpf_map__type(m) || info.key_size != bpf_map__key_size(m) ||
                info.value_size != bpf_map__value_size(m) ||
                (!is_deny && info.max_entries != bpf_map__max_entries(m)))
                return Error{EPROTO, "pinned map " + p +
                                         " has a different layout than this agent's; run "
                                         "personabpfd --uninstall with this --bpffs-root"};
            if (is_deny && info.max_entries != cfg.max_entries) {
                // Like [limits], the size is fixed when the map is created; the pinned
                // trie (and the API's entries in it) is kept rather than recreated.
                spdlog::warn(
                    "[xdp] max_entries = {} differs from the pinned deny trie's {}; "
                    "{} applies until personabpfd --uninstall",
                    cfg.max_entries, info.max_entries, info.max_entries);
                max_entries_ = info.max_entries;
            }
            if (int err = bpf_map__reuse_fd(m, fd.get()); err != 0)
                return sys_error("reuse pinned map " + p, err);
        }
    }
    if (int err = xdp_prefilter__load(skel_->s); err != 0)
        return sys_error("load XDP prefilter", err);
    if (!adopted_) {
        for (bpf_map* m : maps) {
            std::string p = dir_ + "/" + bpf_map__name(m);
            if (int err = bpf_map__pin(m, p.c_str()); err != 0)
                return sys_error("pin map " + p, err);
        }
        spdlog::info("loaded XDP prefilter; maps pinned under {}", dir_);
    } else {
        spdlog::info("XDP prefilter: adopted pinned maps under {}", dir_);
    }
    return {};
}

Result<void> XdpPrefilter::sync_config_entries(const std::vector<Cidr>& deny) {
    auto trie = read_trie(deny_fd());
    if (!trie) return trie.error();
    // Add first, then remove: a prefix that stays never leaves the trie.
    std::set<Cidr> wanted(deny.begin(), deny.end());
    pbpf_xdp_deny_value v{};
    v.origin = PBPF_XDP_ORIGIN_CONFIG;
    for (const Cidr& c : wanted) {
        auto it = trie->find(c);
        if (it != trie->end() && it->second == PBPF_XDP_ORIGIN_CONFIG) continue;
        pbpf_xdp_key k = key_of(c);
        if (bpf_map_update_elem(deny_fd(), &k, &v, BPF_ANY) != 0)
            return sys_error("write XDP deny entry " + c.text());
    }
    size_t removed = 0;
    for (const auto& [c, origin] : *trie) {
        if (origin != PBPF_XDP_ORIGIN_CONFIG || wanted.count(c)) continue;
        pbpf_xdp_key k = key_of(c);
        if (bpf_map_delete_elem(deny_fd(), &k) != 0 && errno != ENOENT)
            return sys_error("remove XDP deny entry " + c.text());
        ++removed;
    }
    spdlog::info("XDP deny list: {} config entries ({} removed since the last start)",
                 wanted.size(), removed);
    return {};
}

Result<void> XdpPrefilter::attach_all(const XdpConfig& cfg) {
    std::map<std::string, int> want;  // name -> ifindex
    for (const auto& name : cfg.interfaces) {
        unsigned idx = ::if_nametoindex(name.c_str());
        if (idx == 0) return sys_error("[xdp] interface '" + name + "'");
        want[name] = static_cast<int>(idx);
    }

    // Counter slots: kept for interfaces that had one, the lowest free one otherwise.
    std::map<int, uint32_t> slots;  // ifindex -> slot
    {
        __u32 k = 0, next = 0;
        const __u32* prev = nullptr;
        std::vector<__u32> stale;
        while (bpf_map_get_next_key(ifaces_fd(), prev, &next) == 0) {
            pbpf_xdp_iface v{};
            if (bpf_map_lookup_elem(ifaces_fd(), &next, &v) == 0)
                slots[static_cast<int>(next)] = v.slot;
            k = next;
            prev = &k;
        }
        std::set<uint32_t> used;
        std::map<int, uint32_t> keep;
        for (const auto& [name, idx] : want)
            if (auto it = slots.find(idx); it != slots.end() && !used.count(it->second)) {
                keep[idx] = it->second;
                used.insert(it->second);
            }
        for (const auto& [idx, slot] : slots)
            if (!keep.count(idx)) stale.push_back(static_cast<__u32>(idx));
        for (const auto& [name, idx] : want) {
            if (keep.count(idx)) continue;
            uint32_t s = 1;
            while (used.count(s)) ++s;
            used.insert(s);
            keep[idx] = s;
            // A fresh slot starts at zero (it may have counted a removed interface).
            std::vector<pbpf_xdp_counters> zero(static_cast<size_t>(libbpf_num_possible_cpus()));
            __u32 key = s;
            if (bpf_map_update_elem(counters_fd(), &key, zero.data(), BPF_ANY) != 0)
                return sys_error("reset XDP counters slot " + std::to_string(s));
            pbpf_xdp_iface v{};
            v.slot = s;
            __u32 ik = static_cast<__u32>(idx);
            if (bpf_map_update_elem(ifaces_fd(), &ik, &v, BPF_ANY) != 0)
                return sys_error("register XDP interface " + name);
        }
        for (__u32 idx : stale) bpf_map_delete_elem(ifaces_fd(), &idx);
        slots = std::move(keep);
    }

    bpf_prog_info pinfo{};
    __u32 plen = sizeof pinfo;
    if (bpf_obj_get_info_by_fd(prog_fd(), &pinfo, &plen) != 0)
        return sys_error("XDP prefilter program info");

    // Pinned links of the previous agent: keep (with the new program swapped in), move to
    // the configured mode, or detach when the interface left the config.
    std::set<std::string> live;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
        std::string file = e.path().filename().string();
        if (file.rfind(kLinkPrefix, 0) != 0) continue;
        std::string name = file.substr(std::strlen(kLinkPrefix));
        std::string path = e.path().string();
        Fd fd(bpf_obj_get(path.c_str()));
        if (!fd.valid()) return sys_error("open pinned link " + path);
        auto info = link_info(fd.get(), path);
        if (!info) return info.error();
        if (info->type != BPF_LINK_TYPE_XDP)
            return Error{EINVAL, path +
                                     " is not an XDP link; run personabpfd --uninstall with "
                                     "this --bpffs-root first"};
        auto it = want.find(name);
        if (info->ifindex == 0) {
            spdlog::warn("pinned {} is detached (its interface is gone); unpinning", path);
            detach_and_unpin(-1, path);
            continue;
        }
        if (it == want.end()) {
            detach_and_unpin(fd.get(), path);
            spdlog::info("detached the XDP prefilter from {} (no longer in [xdp] interfaces)",
                         name);
            continue;
        }
        if (it->second != info->ifindex) {
            spdlog::warn(
                "pinned {} is attached to {} (ifindex {}), not to {} (ifindex {}); "
                "re-attaching",
                path, ifname_of(info->ifindex), info->ifindex, name, it->second);
            detach_and_unpin(fd.get(), path);
            continue;
        }
        std::string mode = attached_mode(info->ifindex, info->prog_id);
        if (cfg.mode != "auto" && mode != cfg.mode) {
            // A mode change needs a new attachment: the interface passes everything for
            // the moment between detach and attach.
            spdlog::warn("XDP prefilter on {} runs in {} mode, config asks for {}; re-attaching",
                         name, mode.empty() ? "no" : mode, cfg.mode);
            detach_and_unpin(fd.get(), path);
            continue;
        }
        if (bpf_link_update(fd.get(), prog_fd(), nullptr) != 0)
            return sys_error("swap new XDP program into " + path);
        live.insert(name);
        spdlog::info("XDP prefilter on {}: adopted pinned link ({} mode)", name, mode);
    }
    if (ec) return Error{ec.value(), "list pin dir " + dir_};

    for (const auto& [name, idx] : want) {
        if (live.count(name)) continue;
        std::string path = dir_ + "/" + kLinkPrefix + name;
        Result<Fd> link = Error{};
        if (cfg.mode == "auto") {
            link = create_link(prog_fd(), idx, "native");
            if (!link) {
                int err = link.error().err;
                if (err == EBUSY || err == EEXIST) return link.error();
                spdlog::info("native XDP on {} failed ({}); falling back to generic", name,
                             std::strerror(err));
                link = create_link(prog_fd(), idx, "generic");
            }
        } else {
            link = create_link(prog_fd(), idx, cfg.mode);
        }
        if (!link) return link.error();
        if (bpf_obj_pin(link->get(), path.c_str()) != 0) {
            Error e = sys_error("pin " + path);
            bpf_link_detach(link->get());
            return e;
        }
        spdlog::info("attached the XDP prefilter to {} ({} mode)", name,
                     attached_mode(idx, pinfo.id));
    }

    ifaces_.clear();
    for (const auto& name : cfg.interfaces) {
        int idx = want[name];
        ifaces_.push_back({name, idx, slots[idx], attached_mode(idx, pinfo.id)});
    }
    return {};
}

// ---------------------------------------------------------------------------- API

json XdpPrefilter::describe() const {
    bpf_prog_info pinfo{};
    __u32 plen = sizeof pinfo;
    uint32_t prog_id = 0;
    if (bpf_obj_get_info_by_fd(prog_fd(), &pinfo, &plen) == 0) prog_id = pinfo.id;
    const size_t ncpu = static_cast<size_t>(libbpf_num_possible_cpus());
    json ifs = json::array();
    for (const auto& i : ifaces_) {
        std::vector<pbpf_xdp_counters> per_cpu(ncpu);
        pbpf_xdp_counters sum{};
        __u32 key = i.slot;
        if (bpf_map_lookup_elem(counters_fd(), &key, per_cpu.data()) == 0) {
            for (const auto& c : per_cpu) {
                sum.passed_packets += c.passed_packets;
                sum.passed_bytes += c.passed_bytes;
                sum.dropped_packets += c.dropped_packets;
                sum.dropped_bytes += c.dropped_bytes;
            }
        }
        std::string mode = attached_mode(i.ifindex, prog_id);
        ifs.push_back({{"name", i.name},
                       {"ifindex", i.ifindex},
                       {"mode", mode.empty() ? "detached" : mode},
                       {"passed_packets", sum.passed_packets},
                       {"passed_bytes", sum.passed_bytes},
                       {"dropped_packets", sum.dropped_packets},
                       {"dropped_bytes", sum.dropped_bytes}});
    }
    auto trie = must(read_trie(deny_fd()));
    json deny = json::array();
    for (const auto& [c, origin] : trie)
        deny.push_back({{"cidr", c.text()}, {"origin", origin_name(origin)}});
    return {{"mode", mode_},
            {"max_entries", max_entries_},
            {"entries", trie.size()},
            {"interfaces", ifs},
            {"deny", deny}};
}

json XdpPrefilter::add_deny(const json& body) {
    if (!body.is_object() || !body.contains("cidrs") || !body["cidrs"].is_array() ||
        body["cidrs"].empty())
        throw ApiError(400, "request needs \"cidrs\": a non-empty array of CIDR strings");
    // All or nothing: every CIDR is checked before the first is written.
    std::set<Cidr> asked;
    for (const auto& e : body["cidrs"]) {
        if (!e.is_string()) throw ApiError(400, "\"cidrs\" must hold strings, got " + e.dump());
        auto c = parse_cidr(e.get<std::string>());
        if (!c) throw ApiError(400, "invalid CIDR " + c.error().message);
        asked.insert(*c);
    }
    auto trie = must(read_trie(deny_fd()));
    std::vector<Cidr> fresh;
    json present = json::array();
    for (const Cidr& c : asked) {
        if (trie.count(c))
            present.push_back(c.text());
        else
            fresh.push_back(c);
    }
    if (trie.size() + fresh.size() > max_entries_)
        throw ApiError(409, "XDP deny list full: " + std::to_string(trie.size()) + " entries + " +
                                std::to_string(fresh.size()) + " new would exceed max_entries " +
                                std::to_string(max_entries_));
    pbpf_xdp_deny_value v{};
    v.origin = PBPF_XDP_ORIGIN_API;
    json added = json::array();
    for (size_t i = 0; i < fresh.size(); ++i) {
        pbpf_xdp_key k = key_of(fresh[i]);
        if (bpf_map_update_elem(deny_fd(), &k, &v, BPF_NOEXIST) != 0) {
            Error e = sys_error("write XDP deny entry " + fresh[i].text());
            for (size_t j = 0; j < i; ++j) {
                pbpf_xdp_key undo = key_of(fresh[j]);
                bpf_map_delete_elem(deny_fd(), &undo);
            }
            throw ApiError(500, e.what());
        }
        added.push_back(fresh[i].text());
    }
    if (!added.empty()) spdlog::info("XDP deny list: added {} via API", added.dump());
    return {{"added", added},
            {"present", present},
            {"entries", trie.size() + fresh.size()},
            {"max_entries", max_entries_}};
}

json XdpPrefilter::remove_deny(const std::vector<std::string>& cidrs) {
    if (cidrs.empty()) throw ApiError(400, "name the entries to remove: ?cidr=CIDR (repeatable)");
    std::set<Cidr> asked;
    for (const auto& text : cidrs) {
        auto c = parse_cidr(text);
        if (!c) throw ApiError(400, "invalid CIDR " + c.error().message);
        asked.insert(*c);
    }
    auto trie = must(read_trie(deny_fd()));
    for (const Cidr& c : asked) {
        auto it = trie.find(c);
        if (it == trie.end()) throw ApiError(404, c.text() + " is not in the XDP deny list");
        if (it->second == PBPF_XDP_ORIGIN_CONFIG)
            throw ApiError(409, c.text() +
                                    " comes from [xdp] deny in the agent config; remove it there "
                                    "and restart the agent");
    }
    json removed = json::array();
    for (const Cidr& c : asked) {
        pbpf_xdp_key k = key_of(c);
        if (bpf_map_delete_elem(deny_fd(), &k) != 0 && errno != ENOENT)
            throw ApiError(500, sys_error("remove XDP deny entry " + c.text()).what());
        removed.push_back(c.text());
    }
    spdlog::info("XDP deny list: removed {} via API", removed.dump());
    return {{"removed", removed}, {"entries", trie.size() - asked.size()}};
}

void XdpPrefilter::add_routes(ApiServer& server) {
    server.add_route("GET", "/v1/xdp", [this](const httplib::Request&) { return describe(); });
    server.add_route(
        "POST", "/v1/xdp/deny",
        [this](const httplib::Request& req) {
            json body = parse_body(req);
            audit_note("", body.is_object() && body.contains("cidrs") ? body["cidrs"].dump() : "");
            return add_deny(body);
        },
        true, "xdp-deny-add");
    server.add_route(
        "DELETE", "/v1/xdp/deny",
        [this](const httplib::Request& req) {
            std::vector<std::string> cidrs;
            for (size_t i = 0; i < req.get_param_value_count("cidr"); ++i)
                cidrs.push_back(req.get_param_value("cidr", i));
            audit_note("", json(cidrs).dump());
            return remove_deny(cidrs);
        },
        true, "xdp-deny-rm");
}

Result<void> uninstall_xdp(const std::string& bpffs_root) {
    std::string dir = bpffs_root + "/" + kXdpPinSubdir;
    if (!exists(dir)) return {};
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        std::string file = e.path().filename().string();
        if (file.rfind(kLinkPrefix, 0) != 0) continue;
        Fd fd(bpf_obj_get(e.path().c_str()));
        detach_and_unpin(fd.get(), e.path().string());
        if (exists(e.path().string())) return sys_error("unpin " + e.path().string());
        spdlog::info("detached and unpinned {}", e.path().string());
    }
    if (ec) return Error{ec.value(), "list pin dir " + dir};
    return {};
}

}  // namespace pbpf::agent
