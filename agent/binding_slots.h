// Counter slots of bindings: each binding's row in pbpf_binding_counters. A slot is held
// while its binding lasts (rebinding to another persona keeps it, so a workload's counts
// continue) and reused after the binding goes, zeroed before its next owner gets it (its
// row in pbpf_binding_counters, and its keys in pbpf_binding_drops).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "maps/result.h"

namespace pbpf::agent {

// A bound workload: a cgroup (ifindex 0, id = cgroup id) or an interface (id = netns
// cookie).
struct BindingKey {
    uint64_t id = 0;
    uint32_t ifindex = 0;
    auto operator<=>(const BindingKey&) const = default;
};

class BindingSlots {
  public:
    // counters_fd: pbpf_binding_counters, drops_fd: pbpf_binding_drops; slots
    // 1..max_slots-1 are handed out.
    BindingSlots(int counters_fd, int drops_fd, uint32_t max_slots)
        : fd_(counters_fd), drops_fd_(drops_fd), max_(max_slots) {}

    // Records the slots that pinned binding entries already carry (an agent restart), so
    // counts survive it. Entries with a slot already taken or out of range are ignored
    // (their next write gets a fresh one).
    Result<void> seed(int bindings_fd, int if_bindings_fd);
    // The key's slot: the one it holds, or a free one zeroed now. 0 when all are taken or
    // zeroing failed (the binding then works, uncounted per binding; logged once).
    uint32_t acquire(const BindingKey& key);
    // The key's slot, 0 if none.
    uint32_t find(const BindingKey& key) const;
    void release(const BindingKey& key);
    std::vector<std::pair<BindingKey, uint32_t>> snapshot() const;

  private:
    int fd_;
    int drops_fd_;
    uint32_t max_;
    mutable std::mutex mu_;
    std::map<BindingKey, uint32_t> held_;
    std::vector<bool> used_;  // by slot
    uint32_t next_ = 1;       // lowest slot never handed out
    std::vector<uint32_t> free_;
    bool warned_ = false;
};

}  // namespace pbpf::agent
