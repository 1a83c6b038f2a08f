// Counter slots of bindings (see binding_slots.h).
#include "agent/binding_slots.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "maps/abi/binding.h"
#include "maps/abi/counters.h"
#include "maps/policy_map.h"

namespace pbpf::agent {

Result<void> BindingSlots::seed(int bindings_fd, int if_bindings_fd) {
    std::lock_guard<std::mutex> lock(mu_);
    used_.assign(max_, false);
    auto take = [&](const BindingKey& k, uint32_t slot) {
        if (slot == 0 || slot >= max_ || used_[slot]) return;
        used_[slot] = true;
        held_[k] = slot;
        if (slot >= next_) next_ = slot + 1;
    };
    __u64 cg = 0, cg_next = 0;
    bool first = true;
    while (bpf_map_get_next_key(bindings_fd, first ? nullptr : &cg, &cg_next) == 0) {
        first = false;
        cg = cg_next;
        pbpf_binding b{};
        if (bpf_map_lookup_elem(bindings_fd, &cg, &b) == 0) take({cg, 0}, b.counter_slot);
    }
    pbpf_if_key ik{}, ik_next{};
    first = true;
    while (bpf_map_get_next_key(if_bindings_fd, first ? nullptr : &ik, &ik_next) == 0) {
        first = false;
        ik = ik_next;
        pbpf_binding b{};
        if (bpf_map_lookup_elem(if_bindings_fd, &ik, &b) == 0)
            take({ik.netns_cookie, ik.ifindex}, b.counter_slot);
    }
    for (uint32_t s = 1; s < next_; ++s)
        if (!used_[s]) free_.push_back(s);
    return {};
}

uint32_t BindingSlots::acquire(const BindingKey& key) {
    std::lock_guard<std::mutex> lock(mu_);
    if (used_.size() != max_) used_.assign(max_, false);
    if (auto it = held_.find(key); it != held_.end()) return it->second;
    uint32_t slot = 0;
    if (!free_.empty()) {
        slot = free_.back();
        free_.pop_back();
    } else if (next_ < max_) {
        slot = next_++;
    } else {
        if (!warned_)
            spdlog::warn(
                "all {} binding counter slots are taken; new bindings are not counted "
                "per binding",
                max_ - 1);
        warned_ = true;
        return 0;
    }
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<pbpf_binding_counters> zero(static_cast<size_t>(ncpu > 0 ? ncpu : 1));
    if (ncpu <= 0 || bpf_map_update_elem(fd_, &slot, zero.data(), BPF_ANY) != 0) {
        spdlog::warn("zero binding counter slot {}: {}", slot, std::strerror(errno));
        free_.push_back(slot);
        return 0;
    }
    if (auto r = clear_binding_drops(drops_fd_, slot); !r) {
        spdlog::warn("{}", r.error().what());
        free_.push_back(slot);
        return 0;
    }
    used_[slot] = true;
    held_[key] = slot;
    return slot;
}

uint32_t BindingSlots::find(const BindingKey& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = held_.find(key);
    return it == held_.end() ? 0 : it->second;
}

void BindingSlots::release(const BindingKey& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = held_.find(key);
    if (it == held_.end()) return;
    used_[it->second] = false;
    free_.push_back(it->second);
    // Frees the slot's drop keys now (the map has a bounded number); acquire() clears them
    // again, for drops counted between now and the slot's reuse.
    if (auto r = clear_binding_drops(drops_fd_, it->second); !r)
        spdlog::debug("{}", r.error().what());
    held_.erase(it);
}

std::vector<std::pair<BindingKey, uint32_t>> BindingSlots::snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {held_.begin(), held_.end()};
}

}  // namespace pbpf::agent
