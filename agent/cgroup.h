// cgroup v2 helpers: find the cgroup2 mount, resolve user-given cgroup paths against it
// and the managed subtree, and find a process's cgroup.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "maps/result.h"

namespace pbpf::agent {

// Mount point of the cgroup2 hierarchy, from a mountinfo file (the first cgroup2 entry).
Result<std::string> find_cgroup2_mount(const std::string& mountinfo = "/proc/self/mountinfo");

// cgroup id of a cgroup directory: its inode number (what bpf_skb_cgroup_id returns).
Result<uint64_t> cgroup_id_of(const std::string& dir);

// A cgroup named both ways: the filesystem path and the path relative to the cgroup2
// mount ("/demo/w1", "/" for the mount root), which is what users and the API see.
struct CgroupRef {
    std::string fs_path;
    std::string rel_path;
};

class CgroupTree {
  public:
    CgroupTree() = default;
    CgroupTree(std::string mount, CgroupRef root)
        : mount_(std::move(mount)), root_(std::move(root)) {}

    // Builds the tree from the cgroup2 mount and the managed root (absolute, or relative
    // to the mount; empty means the mount root). The root must exist.
    static Result<CgroupTree> open(const std::string& mount, const std::string& root);

    const std::string& mount() const { return mount_; }
    const CgroupRef& root() const { return root_; }
    bool root_is_mount() const { return root_.rel_path == "/"; }

    // Lexically normalises a user path (absolute under the mount, or relative to it) and
    // checks it lies inside the managed subtree. Does not require the cgroup to exist.
    Result<CgroupRef> resolve(const std::string& path) const;
    // resolve() plus: the cgroup directory must exist.
    Result<CgroupRef> resolve_existing(const std::string& path) const;
    // The cgroup a process is in (its "0::" line in /proc/PID/cgroup), checked as above.
    Result<CgroupRef> of_pid(pid_t pid) const;

  private:
    std::string mount_;
    CgroupRef root_;
};

}  // namespace pbpf::agent
