// Loader: instance lock, skeleton, pins, adoption and uninstall.
#include "agent/loader.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/failpoint.h"
#include "agent/map_migration.h"
#include "maps/abi/binding.h"
#include "maps/abi/counters.h"
#include "maps/abi/limits.h"
#include "maps/abi/policy.h"
// The skeleton names the ABI structs (BTF anchors in .rodata); they are declared above.
#include "persona.skel.h"

namespace fs = std::filesystem;

namespace pbpf::agent {

// bpftool names the skeleton after the object: persona.bpf.o -> struct persona.
#if defined(__PERSONA_BPF_SKEL_H__)
struct Skeleton {
    persona_bpf* s = nullptr;
};
static persona_bpf* skel_open() { return persona_bpf__open(); }
static int skel_load(persona_bpf* s) { return persona_bpf__load(s); }
static void skel_destroy(persona_bpf* s) { persona_bpf__destroy(s); }
#else
struct Skeleton {
    persona* s = nullptr;
};
static persona* skel_open() { return persona__open(); }
static int skel_load(persona* s) { return persona__load(s); }
static void skel_destroy(persona* s) { persona__destroy(s); }
#endif

namespace {

constexpr const char* kBpffsMount = "/sys/fs/bpf";

int libbpf_log(enum libbpf_print_level level, const char* fmt, va_list args) {
    char buf[1024];
    int n = vsnprintf(buf, sizeof buf, fmt, args);
    std::string msg(buf);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    switch (level) {
        case LIBBPF_WARN:
            spdlog::warn("libbpf: {}", msg);
            break;
        case LIBBPF_INFO:
            spdlog::debug("libbpf: {}", msg);
            break;
        default:
            spdlog::trace("libbpf: {}", msg);
            break;
    }
    return n;
}

bool on_bpffs(const std::string& path) {
    struct statfs sfs {};
    return ::statfs(path.c_str(), &sfs) == 0 &&
           static_cast<unsigned long>(sfs.f_type) == BPF_FS_MAGIC;
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

// pid holding a flock on the file with this dev/inode, from /proc/locks.
std::optional<pid_t> flock_holder(dev_t dev, ino_t ino) {
    std::ifstream in("/proc/locks");
    std::string line;
    char want[64];
    std::snprintf(want, sizeof want, "%02x:%02x:%lu", major(dev), minor(dev),
                  static_cast<unsigned long>(ino));
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string idx, type, adv, mode, pid, id;
        ls >> idx >> type;
        if (type == "->") ls >> type;  // a waiter line
        ls >> adv >> mode >> pid >> id;
        if (type == "FLOCK" && id == want) {
            try {
                return static_cast<pid_t>(std::stol(pid));
            } catch (...) {
            }
        }
    }
    return std::nullopt;
}

std::optional<pid_t> read_pid_file(const std::string& path) {
    std::ifstream in(path);
    long pid = 0;
    if (in >> pid && pid > 0) return static_cast<pid_t>(pid);
    return std::nullopt;
}

std::string holder_text(int fd, const std::string& pid_file) {
    struct stat st {};
    std::optional<pid_t> pid;
    if (::fstat(fd, &st) == 0) pid = flock_holder(st.st_dev, st.st_ino);
    if (!pid) pid = read_pid_file(pid_file);
    return pid ? "pid " + std::to_string(*pid) : "pid unknown";
}

Result<Fd> lock_fd(const std::string& path, int open_flags, const std::string& what,
                   const std::string& pid_file) {
    Fd fd(::open(path.c_str(), open_flags | O_CLOEXEC, 0600));
    if (!fd.valid()) return sys_error("open " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return Error{EWOULDBLOCK, "another agent owns " + what + " (" +
                                          holder_text(fd.get(), pid_file) + ")"};
        return sys_error("flock " + path);
    }
    return fd;
}

Result<Fd> obj_get(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return sys_error("open pinned " + path);
    return Fd(fd);
}

// The schema version of pinned maps (informational: the layouts themselves decide what
// migrates). It sits at the same offset in every layout of pbpf_globals, so a buffer of
// any size reads it.
Result<uint32_t> read_schema(const std::string& pin_dir) {
    auto g = obj_get(pin_dir + "/pbpf_globals");
    if (!g) return g.error();
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(g->get(), &info, &len) != 0)
        return sys_error("map info " + pin_dir + "/pbpf_globals");
    std::vector<unsigned char> buf(std::max<size_t>(info.value_size, sizeof(pbpf_globals)));
    __u32 key = 0;
    if (bpf_map_lookup_elem(g->get(), &key, buf.data()) != 0)
        return sys_error("read pinned pbpf_globals");
    __u32 version = 0;
    std::memcpy(&version, buf.data() + offsetof(pbpf_globals, schema_version), sizeof version);
    return version;
}

// The program a link runs now (to swap it back).
Result<Fd> link_program(bpf_link* link) {
    bpf_link_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len) != 0) return sys_error("link info");
    int fd = bpf_prog_get_fd_by_id(info.prog_id);
    if (fd < 0) return sys_error("open program " + std::to_string(info.prog_id));
    return Fd(fd);
}

// The cookie of the calling thread's network namespace (SO_NETNS_COOKIE, Linux 5.14).
Result<uint64_t> own_netns_cookie() {
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return sys_error("socket");
    uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    constexpr int kSoNetnsCookie = 71;  // newer than the build's headers, maybe
    if (::getsockopt(s.get(), SOL_SOCKET, kSoNetnsCookie, &cookie, &len) != 0)
        return sys_error("getsockopt SO_NETNS_COOKIE");
    return cookie;
}

}  // namespace

void route_libbpf_logs_to_spdlog() { libbpf_set_print(libbpf_log); }

Result<void> prepare_pin_dir(const std::string& pin_dir) {
    if (pin_dir.empty() || pin_dir[0] != '/')
        return Error{EINVAL, "bpffs root must be an absolute path: '" + pin_dir + "'"};
    std::string mnt = kBpffsMount;
    if (pin_dir.rfind(mnt + "/", 0) == 0 && !on_bpffs(mnt)) {
        spdlog::info("mounting bpffs at {}", mnt);
        if (::mount("bpf", mnt.c_str(), "bpf", 0, "mode=0700") != 0)
            return sys_error("mount bpffs at " + mnt);
    }
    std::error_code ec;
    fs::create_directories(pin_dir, ec);
    if (ec) return Error{ec.value(), "create pin dir " + pin_dir};
    if (!on_bpffs(pin_dir)) return Error{EINVAL, "pin dir " + pin_dir + " is not on a bpffs mount"};
    struct stat self {
    }, parent{};
    std::string up = fs::path(pin_dir).lexically_normal().parent_path().string();
    if (::stat(pin_dir.c_str(), &self) != 0 || ::stat(up.c_str(), &parent) != 0)
        return sys_error("stat pin dir " + pin_dir);
    if (self.st_dev != parent.st_dev || self.st_ino == parent.st_ino)
        return Error{EINVAL, "pin dir " + pin_dir +
                                 " is a bpffs mount root; use a directory below it "
                                 "(e.g. /sys/fs/bpf/personabpf)"};
    return {};
}

InstanceLock::~InstanceLock() {
    if (!pid_file_.empty() && state_lock_fd_.valid()) ::unlink(pid_file_.c_str());
}

Result<InstanceLock> InstanceLock::acquire(const std::string& pin_dir,
                                           const std::string& state_dir) {
    std::error_code ec;
    fs::create_directories(state_dir, ec);
    if (ec) return Error{ec.value(), "create state dir " + state_dir};
    ::chmod(state_dir.c_str(), 0700);
    InstanceLock lock;
    std::string pid_file = state_dir + "/agent.pid";
    auto pin = lock_fd(pin_dir, O_RDONLY | O_DIRECTORY, pin_dir, pid_file);
    if (!pin) return pin.error();
    auto st =
        lock_fd(state_dir + "/agent.lock", O_RDWR | O_CREAT, "state dir " + state_dir, pid_file);
    if (!st) return st.error();
    lock.pin_dir_fd_ = std::move(*pin);
    lock.state_lock_fd_ = std::move(*st);
    lock.pid_file_ = pid_file;
    std::ofstream(pid_file, std::ios::trunc) << ::getpid() << "\n";
    return lock;
}

Result<uint64_t> pinned_link_cgroup_id(const std::string& path) {
    auto fd = obj_get(path);
    if (!fd) return fd.error();
    bpf_link_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd->get(), &info, &len) != 0) return sys_error("link info " + path);
    if (info.type != BPF_LINK_TYPE_CGROUP)
        return Error{EINVAL,
                     path + " is not a cgroup link (type " + std::to_string(info.type) + ")"};
    return static_cast<uint64_t>(info.cgroup.cgroup_id);
}

Loader::~Loader() {
    // Destroying a link object only closes our fd: the pinned link stays attached.
    if (link_ingress_) bpf_link__destroy(link_ingress_);
    if (link_egress_) bpf_link__destroy(link_egress_);
    if (link_sockops_) bpf_link__destroy(link_sockops_);
    if (link_sock_create_) bpf_link__destroy(link_sock_create_);
    if (skel_) {
        if (skel_->s) skel_destroy(skel_->s);
        delete skel_;
    }
}

void Loader::finish_migration() {
    if (!migration_) return;
    migration_->catch_up();
    migration_.reset();
}

int Loader::policies_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_policies); }
int Loader::bindings_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_bindings); }
int Loader::resolve_cache_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_resolve_cache); }
int Loader::globals_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_globals); }
int Loader::counters_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_counters); }
int Loader::binding_counters_fd() const {
    return bpf_map__fd(skel_->s->maps.pbpf_binding_counters);
}
int Loader::binding_drops_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_binding_drops); }
int Loader::geo_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_geo); }
int Loader::geo4_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_geo4); }
int Loader::qos_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_qos); }
int Loader::rtt_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_rtt); }
int Loader::topology_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_topology); }
int Loader::conntrack_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_conntrack); }
int Loader::if_bindings_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_if_bindings); }
int Loader::events_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_events); }
int Loader::event_state_fd() const { return bpf_map__fd(skel_->s->maps.pbpf_event_state); }
int Loader::tc_ingress_prog_fd() const { return bpf_program__fd(skel_->s->progs.pbpf_tc_ingress); }
int Loader::tc_egress_prog_fd() const { return bpf_program__fd(skel_->s->progs.pbpf_tc_egress); }
int Loader::qos_egress_prog_fd() const { return bpf_program__fd(skel_->s->progs.pbpf_qos_egress); }
int Loader::topo_ingress_prog_fd() const {
    return bpf_program__fd(skel_->s->progs.pbpf_topo_ingress);
}
int Loader::topo_egress_prog_fd() const {
    return bpf_program__fd(skel_->s->progs.pbpf_topo_egress);
}

Result<pbpf_globals> Loader::read_globals() const {
    __u32 key = 0;
    pbpf_globals g{};
    if (bpf_map_lookup_elem(globals_fd(), &key, &g) != 0) return sys_error("read pbpf_globals");
    return g;
}

Result<uint64_t> Loader::bump_epoch() const {
    auto g = read_globals();
    if (!g) return g.error();
    g->binding_epoch += 1;
    __u32 key = 0;
    if (bpf_map_update_elem(globals_fd(), &key, &*g, BPF_ANY) != 0)
        return sys_error("write pbpf_globals");
    return static_cast<uint64_t>(g->binding_epoch);
}

Result<uint64_t> Loader::bump_policy_epoch() const {
    auto g = read_globals();
    if (!g) return g.error();
    g->policy_epoch += 1;
    __u32 key = 0;
    if (bpf_map_update_elem(globals_fd(), &key, &*g, BPF_ANY) != 0)
        return sys_error("write pbpf_globals");
    return static_cast<uint64_t>(g->policy_epoch);
}

Result<void> Loader::write_event_limits(const EventsConfig& events) const {
    auto g = read_globals();
    if (!g) return g.error();
    g->event_rate = events.rate;
    g->event_burst = events.burst;
    __u32 key = 0;
    if (bpf_map_update_elem(globals_fd(), &key, &*g, BPF_ANY) != 0)
        return sys_error("write pbpf_globals");
    return {};
}

// The configurable maps' sizes: set from [limits] before a fresh load; for pinned maps,
// their own sizes (the kernel cannot resize a map), with a warning when the config asks
// for another.
Result<void> Loader::size_maps(const LoaderOptions& opts, bool pinned) {
    struct Sized {
        bpf_map* map;
        uint32_t want;
        const char* key;
        uint32_t* effective;
    } sized[] = {
        {skel_->s->maps.pbpf_bindings, opts.limits.bindings, "bindings", &limits_.bindings},
        {skel_->s->maps.pbpf_if_bindings, opts.limits.interface_bindings, "interface_bindings",
         &limits_.interface_bindings},
        {skel_->s->maps.pbpf_conntrack, opts.limits.conntrack_entries, "conntrack_entries",
         &limits_.conntrack_entries},
        {skel_->s->maps.pbpf_events, opts.events.ring_kib * 1024u, "ring_kib", nullptr},
    };
    limits_ = opts.limits;
    for (auto& s : sized) {
        uint32_t size = s.want;
        if (pinned && exists(opts.pin_dir + "/" + bpf_map__name(s.map))) {
            std::string p = opts.pin_dir + "/" + bpf_map__name(s.map);
            auto fd = obj_get(p);
            if (!fd) return fd.error();
            bpf_map_info info{};
            __u32 len = sizeof info;
            if (bpf_obj_get_info_by_fd(fd->get(), &info, &len) != 0)
                return sys_error("map info " + p);
            if (info.max_entries != s.want)
                spdlog::warn(
                    "[{}] {} asks for {} but the pinned {} holds {}; it keeps that size "
                    "until personabpfd --uninstall (which drops enforcement)",
                    s.effective ? "limits" : "events", s.key, s.effective ? s.want : s.want / 1024,
                    bpf_map__name(s.map), s.effective ? info.max_entries : info.max_entries / 1024);
            size = info.max_entries;
        }
        if (int err = bpf_map__set_max_entries(s.map, size); err != 0)
            return sys_error(std::string("size ") + bpf_map__name(s.map), err);
        if (s.effective) *s.effective = size;
    }
    return {};
}

bool Loader::programs_attached() const {
    for (const char* name : {kLinkIngress, kLinkEgress, kLinkSockops, kLinkSockCreate}) {
        auto id = pinned_link_cgroup_id(pin_dir_ + "/" + name);
        if (!id || *id != root_id_) return false;
    }
    return true;
}

Result<std::unique_ptr<Loader>> Loader::start(const LoaderOptions& opts) {
    std::unique_ptr<Loader> l(new Loader());
    l->pin_dir_ = opts.pin_dir;
    l->root_id_ = opts.cgroup_root_id;
    l->skel_ = new Skeleton{skel_open()};
    if (l->skel_->s == nullptr) return sys_error("open BPF skeleton");
    // The netns whose sockets the topology mark is for: the agent's own.
    auto cookie = own_netns_cookie();
    if (!cookie) return cookie.error();
    l->skel_->s->rodata->pbpf_host_netns_cookie = *cookie;

    // A migration a crash interrupted is finished or undone first; then the schema version
    // says whether maps may be missing (a newer layout adds maps).
    std::optional<uint32_t> pinned_schema;
    if (exists(opts.pin_dir + "/pbpf_globals")) {
        std::vector<std::string> link_pins;
        for (const char* n : {kLinkIngress, kLinkEgress, kLinkSockops, kLinkSockCreate})
            link_pins.push_back(opts.pin_dir + "/" + n);
        if (auto r = recover_interrupted_migration(opts.pin_dir, link_pins); !r) return r.error();
        auto v = read_schema(opts.pin_dir);
        if (!v) return v.error();
        pinned_schema = *v;
    }
    // Which of this object's (non-internal) maps are pinned already?
    std::vector<std::string> pinned, missing;
    bpf_map* map;
    bpf_object__for_each_map(map, l->skel_->s->obj) {
        if (bpf_map__is_internal(map)) continue;
        std::string p = opts.pin_dir + "/" + bpf_map__name(map);
        (exists(p) ? pinned : missing).push_back(bpf_map__name(map));
    }
    if (!pinned.empty() && !missing.empty() && pinned_schema == PBPF_MAP_SCHEMA_VERSION)
        return Error{EINVAL, "pin dir " + opts.pin_dir + " is incomplete (has " + pinned.front() +
                                 ", lacks " + missing.front() +
                                 "); run personabpfd --uninstall with this --bpffs-root first"};
    if (pinned.empty()) {
        if (exists(opts.pin_dir + "/" + kLinkIngress) || exists(opts.pin_dir + "/" + kLinkEgress) ||
            exists(opts.pin_dir + "/" + kLinkSockops) ||
            exists(opts.pin_dir + "/" + kLinkSockCreate))
            return Error{EINVAL, "pin dir " + opts.pin_dir +
                                     " has program links but no maps; run personabpfd "
                                     "--uninstall with this --bpffs-root first"};
        if (auto r = l->fresh(opts); !r) return r.error();
    } else {
        if (auto r = l->adopt(opts, pinned_schema.value_or(0)); !r) return r.error();
    }
    l->slots_ = std::make_unique<BindingSlots>(l->binding_counters_fd(), l->binding_drops_fd(),
                                               PBPF_MAX_BINDING_SLOTS);
    if (auto r = l->slots_->seed(l->bindings_fd(), l->if_bindings_fd()); !r) return r.error();
    return l;
}

Result<void> Loader::fresh(const LoaderOptions& opts) {
    if (auto r = size_maps(opts, false); !r) return r;
    if (int err = skel_load(skel_->s); err != 0) return sys_error("load BPF programs", err);
    __u32 key = 0;
    pbpf_globals g{};
    g.binding_epoch = 1;
    g.policy_epoch = 1;
    g.event_rate = opts.events.rate;
    g.event_burst = opts.events.burst;
    g.schema_version = PBPF_MAP_SCHEMA_VERSION;
    if (bpf_map_update_elem(globals_fd(), &key, &g, BPF_ANY) != 0)
        return sys_error("write pbpf_globals");
    bpf_map* map;
    bpf_object__for_each_map(map, skel_->s->obj) {
        if (bpf_map__is_internal(map)) continue;
        std::string p = opts.pin_dir + "/" + bpf_map__name(map);
        if (int err = bpf_map__pin(map, p.c_str()); err != 0) return sys_error("pin map " + p, err);
    }
    spdlog::info("loaded BPF programs; maps pinned under {}", opts.pin_dir);
    return attach_missing_links(opts);
}

Result<void> Loader::attach_missing_links(const LoaderOptions& opts) {
    Fd cg(::open(opts.cgroup_root.fs_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.valid()) return sys_error("open cgroup " + opts.cgroup_root.fs_path);
    struct Want {
        const char* name;
        bpf_program* prog;
        bpf_link** slot;
    } wants[] = {{kLinkIngress, skel_->s->progs.pbpf_cgroup_ingress, &link_ingress_},
                 {kLinkEgress, skel_->s->progs.pbpf_cgroup_egress, &link_egress_},
                 {kLinkSockops, skel_->s->progs.pbpf_sockops, &link_sockops_},
                 {kLinkSockCreate, skel_->s->progs.pbpf_topo_sock_create, &link_sock_create_}};
    for (auto& w : wants) {
        if (*w.slot != nullptr) continue;
        std::string p = opts.pin_dir + "/" + w.name;
        bpf_link* link = bpf_program__attach_cgroup(w.prog, cg.get());
        if (link == nullptr)
            return sys_error("attach " + std::string(w.name) + " to cgroup " +
                             opts.cgroup_root.rel_path);
        if (int err = bpf_link__pin(link, p.c_str()); err != 0) {
            bpf_link__destroy(link);  // not pinned: this detaches it
            return sys_error("pin " + p, err);
        }
        *w.slot = link;
        spdlog::info("attached {} to cgroup {} (id {})", w.name, opts.cgroup_root.rel_path,
                     opts.cgroup_root_id);
    }
    return {};
}

Result<void> Loader::adopt(const LoaderOptions& opts, uint32_t pinned_schema) {
    // 1. start() read the schema version (and finished an interrupted migration).
    // 2. The pinned links must belong to this managed root.
    auto other_root = [&](const std::string& what) {
        return Error{EINVAL, "pinned programs under " + opts.pin_dir + " are attached to " + what +
                                 ", not to the managed root " + opts.cgroup_root.rel_path +
                                 " (id " + std::to_string(opts.cgroup_root_id) +
                                 "); run personabpfd --uninstall with this --bpffs-root first"};
    };
    constexpr int kLinks = 4;
    bool link_present[kLinks] = {false, false, false, false};
    const char* link_names[kLinks] = {kLinkIngress, kLinkEgress, kLinkSockops, kLinkSockCreate};
    bool any_live = false;
    for (int i = 0; i < kLinks; ++i) {
        std::string p = opts.pin_dir + "/" + link_names[i];
        if (!exists(p)) continue;
        auto id = pinned_link_cgroup_id(p);
        if (!id) return id.error();
        if (*id == 0) {
            // The cgroup it was attached to is gone; the link is dead weight.
            spdlog::warn("pinned {} is detached (its cgroup was removed); re-attaching", p);
            if (::unlink(p.c_str()) != 0) return sys_error("unpin dead link " + p);
            continue;
        }
        if (*id != opts.cgroup_root_id) return other_root("cgroup id " + std::to_string(*id));
        link_present[i] = true;
        any_live = true;
    }
    if (opts.recorded_root_id && *opts.recorded_root_id != opts.cgroup_root_id) {
        // Same path, new cgroup, old links dead: the managed root was removed and
        // recreated, so there is nothing of another root to protect.
        bool recreated = !any_live && opts.recorded_root_path == opts.cgroup_root.rel_path;
        if (!recreated)
            return other_root("cgroup " + opts.recorded_root_path.value_or("?") + " (id " +
                              std::to_string(*opts.recorded_root_id) + ")");
        spdlog::warn("managed root {} was recreated (cgroup id {} -> {}); attaching anew",
                     opts.cgroup_root.rel_path, *opts.recorded_root_id, opts.cgroup_root_id);
    }
    // 3. Reuse every pinned map whose layout matches this build's; the others are
    //    migrated (agent/map_migration.h), new maps created, dropped ones retired.
    if (auto r = size_maps(opts, true); !r) return r;
    auto plan = MapMigration::plan(opts.pin_dir, skel_->s->obj);
    if (!plan) return plan.error();
    auto migration = std::make_unique<MapMigration>(std::move(*plan));
    const bool migrating = migration->needed();
    if (migrating)
        spdlog::info("pinned maps under {} (schema {}) differ from this build's (schema {}): {}",
                     opts.pin_dir, pinned_schema, PBPF_MAP_SCHEMA_VERSION, migration->summary());
    if (auto r = migration->reuse(); !r) return r;
    if (int err = skel_load(skel_->s); err != 0)
        return sys_error("load BPF programs against pinned maps", err);
    auto unchanged = [&](const Error& e) {
        return Error{e.err, e.message +
                                "; nothing changed: the programs and maps in force "
                                "keep enforcing"};
    };
    if (migrating) {
        if (auto r = migration->stage(); !r) return unchanged(r.error());
    }
    // 4. Swap the new programs into the live links: no moment without enforcement. A
    //    failure swaps the ones already done back (during a migration, the old programs
    //    must go on with the old maps they were built for).
    bpf_program* progs[kLinks] = {skel_->s->progs.pbpf_cgroup_ingress,
                                  skel_->s->progs.pbpf_cgroup_egress, skel_->s->progs.pbpf_sockops,
                                  skel_->s->progs.pbpf_topo_sock_create};
    bpf_link** slots[kLinks] = {&link_ingress_, &link_egress_, &link_sockops_, &link_sock_create_};
    std::vector<std::pair<bpf_link*, Fd>> swapped;  // link, its former program
    auto swap_back = [&](const Error& e) {
        for (auto& [link, prog] : swapped)
            if (bpf_link_update(bpf_link__fd(link), prog.get(), nullptr) != 0)
                spdlog::error("swap the former program back into a link: {}", std::strerror(errno));
        migration->abort();
        return unchanged(e);
    };
    for (int i = 0; i < kLinks; ++i) {
        if (!link_present[i]) continue;
        std::string p = opts.pin_dir + "/" + link_names[i];
        bpf_link* link = bpf_link__open(p.c_str());
        if (link == nullptr) return swap_back(sys_error("open pinned link " + p));
        *slots[i] = link;
        auto former = link_program(link);
        if (!former) return swap_back(former.error());
        if (failpoint_armed("migrate-swap-fail") && migrating && !swapped.empty())
            return swap_back(Error{
                EIO, "swap new program into " + p + ": failing on purpose (PERSONABPF_FAILPOINT)"});
        if (int err = bpf_link__update_program(link, progs[i]); err != 0)
            return swap_back(sys_error("swap new program into " + p, err));
        swapped.emplace_back(link, std::move(*former));
    }
    if (migrating) {
        failpoint("migrate-swapped");
        // The new maps are live: a failed rename is finished by the next start.
        if (auto r = migration->commit(); !r) spdlog::error("{}", r.error().what());
        // The label of the layout in force (pbpf_globals may be a reused map: written only
        // now that this build's programs run on it).
        auto g = read_globals();
        __u32 key = 0;
        if (g) g->schema_version = PBPF_MAP_SCHEMA_VERSION;
        if (!g || bpf_map_update_elem(globals_fd(), &key, &*g, BPF_ANY) != 0)
            spdlog::error("write the schema version into pbpf_globals: {}", std::strerror(errno));
        spdlog::info("migrated pinned maps under {} to schema {}: {}", opts.pin_dir,
                     PBPF_MAP_SCHEMA_VERSION, migration->summary());
        migration_ = std::move(migration);
        migrated_from_ = pinned_schema;
    }
    adopted_ = true;
    if (auto r = write_event_limits(opts.events); !r) return r;
    spdlog::info("adopted pinned maps and links under {}", opts.pin_dir);
    return attach_missing_links(opts);
}

Result<void> uninstall(const std::string& pin_dir) {
    std::vector<fs::path> links, others;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(pin_dir, ec)) {
        (e.path().filename().string().rfind("link_", 0) == 0 ? links : others).push_back(e.path());
    }
    if (ec) return Error{ec.value(), "list pin dir " + pin_dir};
    for (const auto& p : links) {
        int fd = bpf_obj_get(p.c_str());
        if (fd >= 0) {
            if (bpf_link_detach(fd) != 0 && errno != ENOLINK)
                spdlog::warn("detach {}: {}", p.string(), std::strerror(errno));
            ::close(fd);
        }
        if (::unlink(p.c_str()) != 0) return sys_error("unpin " + p.string());
        spdlog::info("detached and unpinned {}", p.string());
    }
    for (const auto& p : others) {
        fs::remove_all(p, ec);
        if (ec) return Error{ec.value(), "unpin " + p.string()};
        spdlog::info("unpinned {}", p.string());
    }
    if (::rmdir(pin_dir.c_str()) != 0) return sys_error("remove pin dir " + pin_dir);
    return {};
}

}  // namespace pbpf::agent
