// Where workloads appear: a watcher of the managed cgroup subtree (inotify on every
// directory; cgroupfs reports mkdir/rmdir as IN_CREATE/IN_DELETE with IN_ISDIR) and a
// watcher of the agent's network namespace's interfaces (rtnetlink RTMGRP_LINK).
// Each runs one thread and calls back on it; callbacks must be quick and must not call
// back into the watcher (stop() from a callback deadlocks).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/cgroup.h"
#include "maps/result.h"

namespace pbpf::agent {

class CgroupWatcher {
  public:
    struct Callbacks {
        // A cgroup appeared under the managed root: its path relative to the cgroup2
        // mount ("/root/a/b"). Parents are reported before their children. Directories
        // created before their parent's watch was in place are found by scanning the new
        // parent, so a whole tree made by `mkdir -p` is reported. A cgroup may be
        // reported twice (scan and event racing): receivers must be idempotent.
        std::function<void(const std::string& rel_path)> created;
        // A cgroup under the managed root was removed (rmdir): its relative path.
        std::function<void(const std::string& rel_path)> removed;
        // The kernel's inotify queue overflowed (IN_Q_OVERFLOW): events were lost. The
        // watcher has re-armed watches on every directory that exists by the time this
        // is called; the receiver should rescan the subtree.
        std::function<void()> overflow;
    };

    // Arms watches on the managed root and every directory under it that exists now (no
    // created() for those: the caller scans at start), then starts the thread.
    static Result<std::unique_ptr<CgroupWatcher>> start(const CgroupTree& tree, Callbacks cb);

    ~CgroupWatcher();  // stop()
    CgroupWatcher(const CgroupWatcher&) = delete;
    CgroupWatcher& operator=(const CgroupWatcher&) = delete;

    // Stops and joins the thread (wakes it through an eventfd); idempotent.
    void stop();
    // Directories currently watched (for status and tests).
    size_t watched() const;

    struct Impl;

  private:
    explicit CgroupWatcher(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

struct LinkInfo {
    uint32_t ifindex = 0;
    std::string ifname;
};

class LinkWatcher {
  public:
    struct Callbacks {
        // An interface appeared in the agent's netns, or was renamed to `ifname`. Not
        // called for mere state changes (up/down, address changes) of a known link.
        std::function<void(const LinkInfo& link)> added;
        // An interface disappeared (or moved to another netns): its last known name.
        std::function<void(const LinkInfo& link)> removed;
        // The netlink socket overflowed (ENOBUFS): events were lost; rescan with
        // list_links().
        std::function<void()> overflow;
    };

    // Subscribes to RTMGRP_LINK in the calling thread's netns, then starts the thread.
    // Links that exist at start are not reported (the caller scans with list_links()).
    static Result<std::unique_ptr<LinkWatcher>> start(Callbacks cb);
    // Every link of the calling thread's netns now (RTM_GETLINK dump).
    static Result<std::vector<LinkInfo>> list_links();
    // start() for a receiver that keeps its own state by name: added(name, ifindex) for
    // every link that appears, and for every link that exists once the subscription is in
    // place (one that appeared between the receiver's own scan and the subscription is
    // not missed) and after an overflow (a rescan); removed(name) for every link that
    // goes. Receivers must be idempotent.
    static Result<std::unique_ptr<LinkWatcher>> follow(
        std::function<void(const std::string& name, uint32_t ifindex)> added,
        std::function<void(const std::string& name)> removed);

    ~LinkWatcher();  // stop()
    LinkWatcher(const LinkWatcher&) = delete;
    LinkWatcher& operator=(const LinkWatcher&) = delete;

    void stop();

    struct Impl;

  private:
    explicit LinkWatcher(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace pbpf::agent
