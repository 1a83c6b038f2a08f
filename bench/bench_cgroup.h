// The benchmark's private cgroup tree: <cgroup2 mount>/pbpf-bench-<pid>-<n>/a/b, with the
// benchmark process moved into b for the run (bpf_prog_test_run's skb belongs to the
// caller's cgroup, so b is the cgroup the programs see). Removed again by the destructor
// and by the handlers of SIGINT, SIGTERM, SIGHUP and SIGQUIT.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "maps/result.h"

namespace pbpf::bench {

// Mount point of cgroup2, from /proc/self/mountinfo (never assumed).
Result<std::string> cgroup2_mount();

class CgroupTree {
  public:
    // Creates top/a/b under the cgroup2 mount and moves this process into b. On failure
    // everything created so far is removed again.
    static Result<std::unique_ptr<CgroupTree>> create_and_enter();

    CgroupTree(const CgroupTree&) = delete;
    CgroupTree& operator=(const CgroupTree&) = delete;
    ~CgroupTree();

    // Moves the process back to its original cgroup and removes the tree (idempotent).
    void cleanup() noexcept;

    uint64_t top_id() const { return ids_[0]; }
    uint64_t a_id() const { return ids_[1]; }
    uint64_t b_id() const { return ids_[2]; }  // the process's cgroup during the run
    const std::string& top_path() const { return dirs_[0]; }

  private:
    CgroupTree() = default;

    std::string original_;  // absolute dir of the cgroup the process started in
    std::string dirs_[3];   // top, a, b
    uint64_t ids_[3] = {0, 0, 0};
    int created_ = 0;  // how many of dirs_ exist
    bool entered_ = false;
};

}  // namespace pbpf::bench
