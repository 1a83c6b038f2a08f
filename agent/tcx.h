// TCX links pinned on bpffs: the way the agent attaches its tc programs, so that they keep
// running while no agent does and a new agent swaps programs in without a gap.
#pragma once

#include <cstdint>
#include <string>

#include "maps/result.h"

namespace pbpf::agent {

// libbpf 1.1's headers predate TCX; the kernel's numbers (include/uapi/linux/bpf.h).
inline constexpr int kTcxIngress = 46;
inline constexpr int kTcxEgress = 47;
// BPF_F_BEFORE: a new link runs ahead of the programs already attached (relative to none:
// first). Programs that pass with TCX_NEXT let the rest run after them.
inline constexpr unsigned kTcxBefore = 1u << 3;

// Makes `prog_fd` run at `attach_type` of `ifindex` through the link pinned at `pin`: a
// live pinned link takes the program in place (no gap); a missing or defunct one (its
// interface went away) is replaced by a new link, attached in the calling thread's netns.
// `flags`: 0 (after the programs already there) or kTcxBefore.
Result<void> attach_tcx_pinned(int prog_fd, uint32_t ifindex, int attach_type,
                               const std::string& pin, unsigned flags = 0);

// Detaches the link pinned at `pin` and removes the pin; nothing pinned is fine.
Result<void> detach_tcx_pinned(const std::string& pin);

}  // namespace pbpf::agent
