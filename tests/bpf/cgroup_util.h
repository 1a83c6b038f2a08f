// cgroup v2 helpers for the BPF tests: find the mount, the test process's own cgroup and
// its id, and an RAII tree of throwaway cgroups the process can move into and back out of.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maps/result.h"

namespace pbpf::test {

// Mount point of cgroup2, from /proc/self/mountinfo (never assumed).
Result<std::string> cgroup2_mount();
// This process's cgroup v2 path ("0::/path" in /proc/self/cgroup), e.g. "/" or "/a/b".
Result<std::string> self_cgroup_path();
// A cgroup's id: the inode number of its directory (what bpf_skb_cgroup_id returns).
Result<uint64_t> cgroup_id(const std::string& abs_dir);

// <mount>/pbpf-bpftest-<pid>-<n>[/child...]: created by create(), removed (deepest first)
// by the destructor after moving this process back to the cgroup it started in.
class TestCgroupTree {
  public:
    TestCgroupTree() = default;
    TestCgroupTree(const TestCgroupTree&) = delete;
    TestCgroupTree& operator=(const TestCgroupTree&) = delete;
    ~TestCgroupTree();

    // Creates the top directory and each of `chain` nested below the previous one.
    Result<void> create(const std::vector<std::string>& chain);
    // Absolute path of level i (0: the unique top directory).
    const std::string& path(size_t level) const { return dirs_.at(level); }
    size_t levels() const { return dirs_.size(); }
    // Moves this whole process into `abs_dir`.
    Result<void> enter(const std::string& abs_dir);
    // Moves it back to where it was before the first enter().
    Result<void> leave();

  private:
    std::string mount_;
    std::string original_;  // absolute dir, set by the first enter()
    std::vector<std::string> dirs_;
};

}  // namespace pbpf::test
