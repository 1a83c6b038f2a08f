// The workload watchers: inotify over the managed cgroup subtree and rtnetlink link
// notifications, each on one thread woken for stop() through an eventfd.
#include "agent/watchers.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "maps/fd.h"

namespace pbpf::agent {
namespace {

// Wakes a thread blocked in poll() on the eventfd.
void wake(const Fd& ev) {
    const uint64_t one = 1;
    if (::write(ev.get(), &one, sizeof one) != sizeof one)
        spdlog::warn("watcher: wake the thread through its eventfd: {}", std::strerror(errno));
}

// Waits for input on `fd` or a wake on `ev`; false when stop() was asked for.
bool wait_readable(int fd, const Fd& ev, const char* who) {
    for (;;) {
        pollfd fds[2] = {{fd, POLLIN, 0}, {ev.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            // poll() fails only on resource shortage here: back off instead of spinning.
            spdlog::warn("{}: poll: {}", who, std::strerror(errno));
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        if (fds[1].revents != 0) return false;
        if (fds[0].revents != 0) return true;
    }
}

Result<Fd> make_eventfd() {
    Fd ev(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!ev.valid()) return sys_error("eventfd");
    return ev;
}

}  // namespace

// CgroupWatcher ----------------------------------------------------------------------------

struct CgroupWatcher::Impl {
    static constexpr uint32_t kMask =
        IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR;

    std::string mount;
    std::string root_rel;
    Callbacks cb;
    Fd inotify;
    Fd stop_ev;
    std::thread thread;
    std::mutex stop_mu;

    // Touched only by start() and then by the thread alone; watched() reads the count.
    std::unordered_map<int, std::string> paths;  // wd -> path relative to the mount
    std::unordered_map<std::string, int> wds;    // the reverse
    std::atomic<size_t> count{0};
    bool warned_add = false;

    std::string fs_path(const std::string& rel) const {
        if (mount == "/") return rel;
        return rel == "/" ? mount : mount + rel;
    }
    static std::string child(const std::string& rel, const char* name) {
        return (rel == "/" ? "" : rel) + "/" + name;
    }

    void forget(int wd) {
        auto it = paths.find(wd);
        if (it == paths.end()) return;
        auto rev = wds.find(it->second);
        if (rev != wds.end() && rev->second == wd) wds.erase(rev);
        paths.erase(it);
        count = paths.size();
    }

    // Watches one directory. Returns the wd, or -1 when it could not be watched (gone
    // meanwhile: ENOENT/ENOTDIR, silently; anything else is logged once).
    int watch(const std::string& rel) {
        const std::string fs = fs_path(rel);
        const int wd = ::inotify_add_watch(inotify.get(), fs.c_str(), kMask);
        if (wd < 0) {
            const int err = errno;
            if (err != ENOENT && err != ENOTDIR && !warned_add) {
                warned_add = true;
                spdlog::warn(
                    "cgroup watcher: cannot watch {}: {}; cgroups below it go unnoticed{} "
                    "(logged once)",
                    fs, std::strerror(err),
                    err == ENOSPC ? "; raise the sysctl fs.inotify.max_user_watches" : "");
            }
            return -1;
        }
        if (auto old = wds.find(rel); old != wds.end() && old->second != wd) forget(old->second);
        paths[wd] = rel;
        wds[rel] = wd;
        count = paths.size();
        return wd;
    }

    // Watches every directory below `rel` (parents first), calling created() for each when
    // `report`. `rel` itself must already be watched.
    void scan(const std::string& rel, bool report) {
        const std::string fs = fs_path(rel);
        DIR* d = ::opendir(fs.c_str());
        if (d == nullptr) {
            if (errno != ENOENT)
                spdlog::warn("cgroup watcher: scan {}: {}", fs, std::strerror(errno));
            return;
        }
        std::vector<std::string> subdirs;
        while (const dirent* e = ::readdir(d)) {
            if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
            bool dir = e->d_type == DT_DIR;
            if (e->d_type == DT_UNKNOWN) {
                struct stat st {};
                dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                      S_ISDIR(st.st_mode);
            }
            if (dir) subdirs.push_back(child(rel, e->d_name));
        }
        ::closedir(d);
        for (const auto& sub : subdirs) {
            const auto known = wds.find(sub);
            const int before = known == wds.end() ? -1 : known->second;
            const int wd = watch(sub);
            // The same wd means the same inode: found, reported and scanned before.
            if (wd >= 0 && wd == before) continue;
            if (wd < 0 && ::access(fs_path(sub).c_str(), F_OK) != 0) continue;  // gone
            if (report && cb.created) cb.created(sub);
            if (wd >= 0) scan(sub, report);
        }
    }

    // A directory appeared under a watched one (IN_CREATE or IN_MOVED_TO).
    void appeared(const std::string& rel) {
        const auto known = wds.find(rel);
        const int before = known == wds.end() ? -1 : known->second;
        const int wd = watch(rel);
        // The same wd means the same inode: the scan of its parent already reported it.
        if (wd >= 0 && wd == before) return;
        if (wd < 0 && ::access(fs_path(rel).c_str(), F_OK) != 0) return;  // gone meanwhile
        if (cb.created) cb.created(rel);
        if (wd >= 0) scan(rel, true);
    }

    // A directory went away (IN_DELETE or IN_MOVED_FROM): it and whatever was watched
    // below it (only possible for a move), deepest first.
    void disappeared(const std::string& rel, bool moved) {
        if (moved) {
            std::vector<std::string> below;
            for (const auto& [path, wd] : wds)
                if (path.size() > rel.size() && path.compare(0, rel.size(), rel) == 0 &&
                    path[rel.size()] == '/')
                    below.push_back(path);
            std::sort(below.begin(), below.end(), std::greater<>());
            for (const auto& path : below) {
                const int wd = wds[path];
                ::inotify_rm_watch(inotify.get(), wd);
                forget(wd);
                if (cb.removed) cb.removed(path);
            }
            // The moved directory keeps its inode and so its watch: drop it, its path is
            // stale (IN_MOVED_TO re-arms it under the new name).
            if (auto it = wds.find(rel); it != wds.end()) {
                const int wd = it->second;
                ::inotify_rm_watch(inotify.get(), wd);
                forget(wd);
            }
        } else if (auto it = wds.find(rel); it != wds.end()) {
            forget(it->second);  // IN_IGNORED follows and finds nothing left
        }
        if (cb.removed) cb.removed(rel);
    }

    void arm_all() {
        if (watch(root_rel) < 0) {
            spdlog::warn("cgroup watcher: the managed root {} cannot be watched any more",
                         fs_path(root_rel));
            return;
        }
        scan(root_rel, false);
    }

    void overflowed() {
        spdlog::warn("cgroup watcher: inotify queue overflowed; re-arming every watch");
        for (const auto& [wd, path] : paths) ::inotify_rm_watch(inotify.get(), wd);
        paths.clear();
        wds.clear();
        count = 0;
        arm_all();
        if (cb.overflow) cb.overflow();
    }

    void handle(const inotify_event& ev) {
        if (ev.mask & IN_Q_OVERFLOW) {
            overflowed();
            return;
        }
        if (ev.mask & IN_IGNORED) {
            forget(ev.wd);
            return;
        }
        auto it = paths.find(ev.wd);
        if (it == paths.end()) return;  // a watch dropped meanwhile
        if (ev.mask & IN_DELETE_SELF) {
            if (it->second == root_rel)
                spdlog::warn("cgroup watcher: the managed root {} was removed", fs_path(root_rel));
            return;
        }
        if (!(ev.mask & IN_ISDIR) || ev.len == 0) return;
        const std::string rel = child(it->second, ev.name);
        if (ev.mask & (IN_CREATE | IN_MOVED_TO))
            appeared(rel);
        else if (ev.mask & (IN_DELETE | IN_MOVED_FROM))
            disappeared(rel, (ev.mask & IN_MOVED_FROM) != 0);
    }

    void drain() {
        alignas(inotify_event) char buf[64 * 1024];
        for (;;) {
            const ssize_t n = ::read(inotify.get(), buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN)
                    spdlog::warn("cgroup watcher: read inotify: {}", std::strerror(errno));
                return;
            }
            if (n == 0) return;
            for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
                const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
                handle(*ev);
                off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
            }
        }
    }

    void run() {
        while (wait_readable(inotify.get(), stop_ev, "cgroup watcher")) drain();
    }
};

CgroupWatcher::CgroupWatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CgroupWatcher::~CgroupWatcher() { stop(); }

Result<std::unique_ptr<CgroupWatcher>> CgroupWatcher::start(const CgroupTree& tree, Callbacks cb) {
    auto impl = std::make_unique<Impl>();
    impl->mount = tree.mount();
    impl->root_rel = tree.root().rel_path;
    impl->cb = std::move(cb);
    impl->inotify.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!impl->inotify.valid()) return sys_error("cgroup watcher: inotify_init1");
    auto ev = make_eventfd();
    if (!ev) return Error{ev.error().err, "cgroup watcher: " + ev.error().message};
    impl->stop_ev = std::move(*ev);
    if (::inotify_add_watch(impl->inotify.get(), tree.root().fs_path.c_str(), Impl::kMask) < 0)
        return sys_error("cgroup watcher: watch the managed root " + tree.root().fs_path);
    impl->arm_all();
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<CgroupWatcher>(new CgroupWatcher(std::move(impl)));
}

void CgroupWatcher::stop() {
    if (!impl_) return;
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    if (!impl_->thread.joinable()) return;
    wake(impl_->stop_ev);
    impl_->thread.join();
}

size_t CgroupWatcher::watched() const { return impl_ ? impl_->count.load() : 0; }

// LinkWatcher -------------------------------------------------------------------------------

namespace {

constexpr size_t kNetlinkBuf = 64 * 1024;

Result<Fd> netlink_route_socket(int flags) {
    Fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags, NETLINK_ROUTE));
    if (!fd.valid()) return sys_error("socket(NETLINK_ROUTE)");
    return fd;
}

// The link an RTM_NEWLINK/RTM_DELLINK message names; false for other families (AF_BRIDGE
// port notifications share the group) or a message without a name.
bool parse_link(const nlmsghdr* nlh, LinkInfo& out) {
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return false;
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(nlh));
    if (ifi->ifi_family != AF_UNSPEC || ifi->ifi_index <= 0) return false;
    int len = static_cast<int>(IFLA_PAYLOAD(nlh));
    for (auto* rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
        if (rta->rta_type != IFLA_IFNAME) continue;
        const auto* name = static_cast<const char*>(RTA_DATA(rta));
        out.ifindex = static_cast<uint32_t>(ifi->ifi_index);
        out.ifname.assign(name, strnlen(name, RTA_PAYLOAD(rta)));
        return !out.ifname.empty();
    }
    return false;
}

// One RTM_GETLINK dump over `fd` (a blocking NETLINK_ROUTE socket). `interrupted` is set
// when the kernel flagged the dump as inconsistent (links changed while it ran).
Result<std::vector<LinkInfo>> dump_links(int fd, uint32_t seq, bool& interrupted) {
    struct {
        nlmsghdr nlh;
        ifinfomsg ifi;
    } req{};
    req.nlh.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
    req.nlh.nlmsg_type = RTM_GETLINK;
    req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nlh.nlmsg_seq = seq;
    req.ifi.ifi_family = AF_UNSPEC;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd, &req, req.nlh.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                 sizeof kernel) < 0)
        return sys_error("send RTM_GETLINK");

    std::vector<uint64_t> storage(kNetlinkBuf / sizeof(uint64_t));  // aligned for nlmsghdr
    auto* buf = reinterpret_cast<char*>(storage.data());
    std::vector<LinkInfo> links;
    interrupted = false;
    for (;;) {
        const ssize_t n = ::recv(fd, buf, kNetlinkBuf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sys_error("receive the RTM_GETLINK dump");
        }
        if (n == 0) return Error{EIO, "receive the RTM_GETLINK dump: connection closed"};
        int len = static_cast<int>(n);
        for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nlh, len);
             nlh = NLMSG_NEXT(nlh, len)) {
            if (nlh->nlmsg_seq != seq) continue;  // left over from an earlier dump
            if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
            if (nlh->nlmsg_type == NLMSG_DONE) return links;
            if (nlh->nlmsg_type == NLMSG_ERROR) {
                if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
                    return Error{EIO, "RTM_GETLINK dump: truncated error message"};
                const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
                return sys_error("RTM_GETLINK dump", err->error == 0 ? EIO : -err->error);
            }
            LinkInfo link;
            if (nlh->nlmsg_type == RTM_NEWLINK && parse_link(nlh, link))
                links.push_back(std::move(link));
        }
    }
}

// A dump that changed under us is retried a few times, then returned as it is.
Result<std::vector<LinkInfo>> list_links_on(int fd, uint32_t& seq) {
    for (int attempt = 0;; ++attempt) {
        bool interrupted = false;
        auto links = dump_links(fd, ++seq, interrupted);
        if (!links || !interrupted || attempt == 3) return links;
    }
}

Result<Fd> dump_socket() {
    auto fd = netlink_route_socket(0);
    if (!fd) return fd;
    // A kernel that never answers must not hang the caller (or the watcher's thread).
    timeval tv{5, 0};
    ::setsockopt(fd->get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

}  // namespace

struct LinkWatcher::Impl {
    Callbacks cb;
    Fd sock;       // RTMGRP_LINK subscriber
    Fd dump_sock;  // re-seeds after an overflow, in the same netns as `sock`
    uint32_t seq = 0;
    Fd stop_ev;
    std::thread thread;
    std::mutex stop_mu;
    std::unordered_map<uint32_t, std::string> links;  // ifindex -> name; the thread's own

    Result<void> seed() {
        auto now = list_links_on(dump_sock.get(), seq);
        if (!now) return now.error();
        links.clear();
        for (auto& l : *now) links[l.ifindex] = std::move(l.ifname);
        return {};
    }

    void overflowed(const char* why) {
        spdlog::warn("link watcher: {}: link events were lost; rescanning", why);
        if (auto r = seed(); !r) spdlog::warn("link watcher: rescan: {}", r.error().what());
        if (cb.overflow) cb.overflow();
    }

    void handle(const nlmsghdr* nlh) {
        LinkInfo link;
        if (nlh->nlmsg_type == RTM_NEWLINK) {
            if (!parse_link(nlh, link)) return;
            auto it = links.find(link.ifindex);
            if (it != links.end() && it->second == link.ifname) return;  // a state change
            if (it != links.end() && cb.removed) cb.removed(LinkInfo{link.ifindex, it->second});
            links[link.ifindex] = link.ifname;
            if (cb.added) cb.added(link);
        } else if (nlh->nlmsg_type == RTM_DELLINK) {
            if (!parse_link(nlh, link)) return;
            // A link unknown here (deleted between bind and seed) is still reported: the
            // caller may have seen it in its own scan.
            if (auto it = links.find(link.ifindex); it != links.end()) {
                link.ifname = it->second;
                links.erase(it);
            }
            if (cb.removed) cb.removed(link);
        }
    }

    void drain() {
        std::vector<uint64_t> storage(kNetlinkBuf / sizeof(uint64_t));  // aligned for nlmsghdr
        auto* buf = reinterpret_cast<char*>(storage.data());
        for (;;) {
            sockaddr_nl from{};
            iovec iov{buf, kNetlinkBuf};
            msghdr msg{};
            msg.msg_name = &from;
            msg.msg_namelen = sizeof from;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            const ssize_t n = ::recvmsg(sock.get(), &msg, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == ENOBUFS) {
                    overflowed("netlink socket overflowed (ENOBUFS)");
                    continue;
                }
                if (errno != EAGAIN) spdlog::warn("link watcher: recv: {}", std::strerror(errno));
                return;
            }
            if (n == 0) return;
            if (from.nl_pid != 0) continue;  // only the kernel speaks on this group
            if (msg.msg_flags & MSG_TRUNC) {
                overflowed("truncated netlink message");
                continue;
            }
            int len = static_cast<int>(n);
            for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nlh, len);
                 nlh = NLMSG_NEXT(nlh, len))
                handle(nlh);
        }
    }

    void run() {
        while (wait_readable(sock.get(), stop_ev, "link watcher")) drain();
    }
};

LinkWatcher::LinkWatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LinkWatcher::~LinkWatcher() { stop(); }

Result<std::unique_ptr<LinkWatcher>> LinkWatcher::start(Callbacks cb) {
    auto impl = std::make_unique<Impl>();
    impl->cb = std::move(cb);
    auto sock = netlink_route_socket(SOCK_NONBLOCK);
    if (!sock) return Error{sock.error().err, "link watcher: " + sock.error().message};
    impl->sock = std::move(*sock);
    // Bursts of link events (many veths at once) must not overflow the default buffer.
    const int rcvbuf = 1 << 20;
    if (::setsockopt(impl->sock.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        (void)::setsockopt(impl->sock.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    local.nl_groups = RTMGRP_LINK;
    if (::bind(impl->sock.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
        return sys_error("link watcher: bind to RTMGRP_LINK");
    auto dump = dump_socket();
    if (!dump) return Error{dump.error().err, "link watcher: " + dump.error().message};
    impl->dump_sock = std::move(*dump);
    // Seeded after subscribing: a link made in between is in the seed and its event then
    // reports nothing, rather than being missed by both.
    if (auto r = impl->seed(); !r)
        return Error{r.error().err, "link watcher: " + r.error().message};
    auto ev = make_eventfd();
    if (!ev) return Error{ev.error().err, "link watcher: " + ev.error().message};
    impl->stop_ev = std::move(*ev);
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<LinkWatcher>(new LinkWatcher(std::move(impl)));
}

Result<std::vector<LinkInfo>> LinkWatcher::list_links() {
    auto fd = dump_socket();
    if (!fd) return fd.error();
    uint32_t seq = static_cast<uint32_t>(::getpid());
    return list_links_on(fd->get(), seq);
}

Result<std::unique_ptr<LinkWatcher>> LinkWatcher::follow(
    std::function<void(const std::string& name, uint32_t ifindex)> added,
    std::function<void(const std::string& name)> removed) {
    auto rescan = [added] {
        if (auto links = list_links())
            for (const auto& l : *links) added(l.ifname, l.ifindex);
    };
    Callbacks cb;
    cb.added = [added](const LinkInfo& l) { added(l.ifname, l.ifindex); };
    cb.removed = [removed](const LinkInfo& l) { removed(l.ifname); };
    cb.overflow = rescan;
    auto w = start(std::move(cb));
    if (!w) return w.error();
    rescan();
    return w;
}

void LinkWatcher::stop() {
    if (!impl_) return;
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    if (!impl_->thread.joinable()) return;
    wake(impl_->stop_ev);
    impl_->thread.join();
}

}  // namespace pbpf::agent
