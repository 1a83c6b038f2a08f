// The common integration-test fixture: a netns with echo servers behind a veth, a managed
// cgroup subtree and a running agent on it; plus CLI helpers for personas, bindings, stats.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/common/kernel_required.h"
#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

namespace pbpf::it {

// Ports the netns echo servers listen on (TCP and UDP, IPv4 and IPv6).
inline constexpr uint16_t kPortA = 8080;
inline constexpr uint16_t kPortB = 9090;

struct DirCounters {
    uint64_t allowed_packets = 0, allowed_bytes = 0;
    uint64_t denied_packets = 0, denied_bytes = 0;
    uint64_t audited_packets = 0, audited_bytes = 0;
};
struct PersonaStats {
    DirCounters ingress, egress;
};
std::ostream& operator<<(std::ostream& o, const DirCounters& c);

// persona NAME { description "..."; security { <lines> } }
std::string persona_pdl(const std::string& name, const std::vector<std::string>& security,
                        const std::string& description = "integration test persona");

class IntegrationTest : public ::testing::Test {
  protected:
    void SetUp() override;
    void TearDown() override;

    // Where a workload in `sub` of the managed subtree runs.
    Where in(const std::string& sub) { return Where{cg_->create(sub), ""}; }
    // A client inside the netns (outside every managed cgroup).
    Where from_netns() const { return Where{"", net_->path()}; }

    // Writes PDL to a file and applies it; asserts success.
    void apply(Agent& agent, const std::string& pdl, const std::string& file = "persona.pdl");
    CommandResult try_apply(Agent& agent, const std::string& pdl,
                            const std::string& file = "persona.pdl");
    // bind --persona NAME --cgroup <managed root>/<sub>; asserts success.
    void bind(Agent& agent, const std::string& persona, CgroupTree& tree, const std::string& sub);
    void bind(const std::string& persona, const std::string& sub) {
        bind(*agent_, persona, *cg_, sub);
    }
    // What a migration import may change on a host, as the CLI shows it: its personas,
    // bindings and flows, and the exit code of `persona history PERSONA` (non-zero: no
    // version of it there).
    nlohmann::json migration_snapshot(Agent& agent, const std::string& persona);
    // kill -9 in the middle of an import: `start(point)` (re)starts `agent` with the
    // failpoint `point` armed, the import `args` must find it killed there with its journal
    // left behind, and `start("")` starts it again, which must undo the import (its log
    // says so, the journal is gone). The caller compares the host with its snapshot.
    void kill_during_import(Agent& agent, const std::function<void(const std::string&)>& start,
                            const std::vector<std::string>& args, const std::string& point);
    // `stats -j NAME` parsed; fails the assertion when it cannot.
    ::testing::AssertionResult stats(Agent& agent, const std::string& persona, PersonaStats* out);
    // Polls `stats -j NAME` until pred holds (counters are per-CPU sums read on demand).
    ::testing::AssertionResult wait_stats(Agent& agent, const std::string& persona,
                                          const std::function<bool(const PersonaStats&)>& pred,
                                          PersonaStats* out,
                                          std::chrono::milliseconds timeout = 3s);
    // `-j ARGS...` parsed as JSON.
    ::testing::AssertionResult cli_json(Agent& agent, const std::vector<std::string>& args,
                                        nlohmann::json* out);

    // A further agent (on its own cgroup subtree); logs print on failure, removed at teardown.
    Agent& add_agent(const std::string& cgroup_root);
    Agent& add_agent(const AgentPaths& paths, Agent::Owns owns);
    CgroupTree& add_cgroup_tree();

    ScratchDir scratch_;
    std::unique_ptr<Netns> net_;
    std::unique_ptr<Veth> veth_;
    std::unique_ptr<EchoServer> server_;
    std::unique_ptr<CgroupTree> cg_;
    std::unique_ptr<Agent> agent_;
    std::vector<std::unique_ptr<CgroupTree>> extra_trees_;
    std::vector<std::unique_ptr<Agent>> extra_agents_;
};

}  // namespace pbpf::it
