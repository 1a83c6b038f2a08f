// Shared pieces of the persona.bpf.o tests: an RAII skeleton, running a program on a frame
// with bpf_prog_test_run_opts, binding cgroups and installing hand-made policies.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "maps/abi/counters.h"
#include "maps/map_image.h"
#include "maps/result.h"
#include "persona.skel.h"
#include "tests/bpf/packet_builder.h"

namespace pbpf::test {

struct SkeletonDeleter {
    void operator()(persona* s) const { persona__destroy(s); }
};
using Skeleton = std::unique_ptr<persona, SkeletonDeleter>;

// Opens and loads persona.bpf.o (nothing attached). libbpf's log is shown only on failure.
Result<Skeleton> load_persona_skeleton();

enum class Prog { Ingress, Egress };
const char* prog_name(Prog p);

struct RunResult {
    uint32_t retval = 0;
    uint32_t duration_ns = 0;  // average per repetition, as the kernel reports it
};
Result<RunResult> run_prog(const persona* skel, Prog prog, const Bytes& frame, int repeat = 1);

// counter_slot: the binding's row in pbpf_binding_counters (0: not counted per binding).
Result<void> bind_cgroup(const persona* skel, uint64_t cgroup_id, uint32_t persona_id,
                         uint32_t counter_slot = 0);
Result<void> unbind_cgroup(const persona* skel, uint64_t cgroup_id);
// Increments pbpf_globals.binding_epoch, as the binder does after every binding change.
Result<uint64_t> bump_binding_epoch(const persona* skel);
// Increments pbpf_globals.policy_epoch, as the persona manager does after every flip:
// tracked flows decide again under the persona's current policy map.
Result<uint64_t> bump_policy_epoch(const persona* skel);
// Fresh policy map holding `entries`, then one update of pbpf_policies[persona_id] (the flip).
Result<void> install_policy(const persona* skel, uint32_t persona_id,
                            const std::vector<PolicyEntry>& entries,
                            const std::string& name = "test");
Result<void> remove_policy(const persona* skel, uint32_t persona_id);
Result<pbpf_counters> counters_of(const persona* skel, uint32_t persona_id);

// Address helpers for make_addr_entry.
std::array<uint8_t, 16> v4(const char* text);
std::array<uint8_t, 16> v6(const char* text);

// The test personas' policies (see persona_prog_test.cpp for the rules they encode).
std::vector<PolicyEntry> web_policy(bool audit);
std::vector<PolicyEntry> uniform_policy(pbpf_verdict verdict, uint32_t rule_id);

// "ingress allowed 1/60 denied 0/0 audited 0/0 | egress ..." for failure messages.
std::string describe(const pbpf_counters& c);

}  // namespace pbpf::test
