// Two agent instances on one kernel: each enforces its own persona on its own subtree,
// removing one leaves the other alone, and a second agent on a taken bpffs root refuses.
#include "tests/integration/fixture.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

namespace pbpf::it {
namespace {

class Instances : public IntegrationTest {};

TEST_F(Instances, SideBySideAgentsStayIndependent) {
    const auto& v = *veth_;
    CgroupTree& tree_b = add_cgroup_tree();
    ASSERT_TRUE(tree_b.ok()) << tree_b.error();
    Agent& agent_a = *agent_;
    Agent& agent_b = add_agent(tree_b.path());
    ASSERT_TRUE(agent_b.start());

    // The same persona name means different rules in each instance.
    auto deny = [&](uint16_t port) {
        return persona_pdl("it-shared",
                           {"mode enforce", "default ingress allow", "default egress allow",
                            "deny egress tcp port " + std::to_string(port) + " to " + v.peer4});
    };
    apply(agent_a, deny(kPortB));
    apply(agent_b, deny(kPortA));
    bind(agent_a, "it-shared", *cg_, "w");
    bind(agent_b, "it-shared", tree_b, "w");
    const Where wa = in("w");
    const Where wb{tree_b.create("w"), ""};

    auto check = [&](const Where& w, const char* who, bool a_open, bool b_open) {
        Probe pa = tcp_probe(w, v.peer4, kPortA);
        Probe pb = tcp_probe(w, v.peer4, kPortB);
        EXPECT_EQ(pa.ok(), a_open) << who << " 8080: " << pa;
        EXPECT_EQ(pb.ok(), b_open) << who << " 9090: " << pb;
    };
    {
        SCOPED_TRACE("both instances running");
        check(wa, "instance A", true, false);
        check(wb, "instance B", false, true);
    }

    // Each instance manages only its own subtree.
    CommandResult r = agent_a.cli({"bind", "--persona", "it-shared", "--cgroup", tree_b.rel("w")});
    EXPECT_EQ(r.exit_code, 1) << "A bound a cgroup of B's subtree: " << r.describe();
    nlohmann::json bl;
    ASSERT_TRUE(cli_json(agent_b, {"bindings", "ls"}, &bl));
    EXPECT_EQ(bl.size(), 1u) << bl.dump(2);

    // Removing A's persona changes nothing for B.
    r = agent_a.cli({"persona", "rm", "it-shared", "--force"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    {
        SCOPED_TRACE("A's persona removed");
        check(wa, "instance A", true, true);
        check(wb, "instance B", false, true);
    }

    // A second agent sharing B's pin dir, API socket or state dir (everything else its
    // own) must refuse to start, and leave B untouched.
    ScratchDir intruders;
    CgroupTree& tree_c = add_cgroup_tree();
    ASSERT_TRUE(tree_c.ok()) << tree_c.error();
    auto refused = [&](const std::string& what, AgentPaths paths, Agent::Owns owns,
                       const std::string& message) {
        SCOPED_TRACE("second agent sharing B's " + what);
        Agent& intruder = add_agent(paths, owns);
        intruder.spawn();
        std::optional<int> st = intruder.wait_exit(15s);
        ASSERT_TRUE(st.has_value()) << "it kept running; log:\n" << intruder.log();
        EXPECT_FALSE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "it exited 0; log:\n"
                                                              << intruder.log();
        if (!message.empty()) {
            EXPECT_NE(intruder.log().find(message), std::string::npos)
                << "its message does not say \"" << message << "\":\n"
                << intruder.log();
        }
        EXPECT_TRUE(agent_b.api_ready()) << "B stopped answering; its log:\n" << agent_b.log();
    };
    auto own = [&](const std::string& tag) {
        const std::string dir = intruders.path() + "/" + tag;
        ::mkdir(dir.c_str(), 0755);
        return AgentPaths{dir + "/agent.sock", dir + "/state", bpffs_mount() + "/" + unique_name(),
                          tree_c.path(), dir + "/agent.log"};
    };
    AgentPaths same_pins = own("pins");
    same_pins.bpffs_root = agent_b.paths().bpffs_root;
    refused("pin dir", same_pins, Agent::Owns::kNothing, "another agent");
    AgentPaths same_socket = own("socket");
    same_socket.socket = agent_b.paths().socket;
    refused("API socket", same_socket, Agent::Owns::kInstance, "");
    AgentPaths same_state = own("state");
    same_state.state_dir = agent_b.paths().state_dir;
    refused("state dir", same_state, Agent::Owns::kPins, "");
    {
        SCOPED_TRACE("after the refused second agents");
        check(wb, "instance B", false, true);
        nlohmann::json personas;
        ASSERT_TRUE(cli_json(agent_b, {"persona", "ls"}, &personas));
        EXPECT_EQ(personas.size(), 1u) << personas.dump(2);
    }

    // A running instance cannot be uninstalled from under its agent.
    r = agent_b.uninstall(/*purge_state=*/true);
    EXPECT_NE(r.exit_code, 0) << "--uninstall of a running instance succeeded: " << r.describe();
    EXPECT_TRUE(agent_b.api_ready()) << "B stopped answering after a refused --uninstall";

    // Uninstalling A leaves B enforcing.
    agent_a.stop(SIGTERM);
    r = agent_a.uninstall(/*purge_state=*/true);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(agent_b.api_ready()) << "B stopped answering after A's uninstall";
    CommandResult status = agent_b.cli({"status"});
    EXPECT_EQ(status.exit_code, 0) << status.describe();
    {
        SCOPED_TRACE("A uninstalled");
        check(wb, "instance B", false, true);
    }
    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        agent_b, "it-shared", [](const PersonaStats& x) { return x.egress.denied_packets >= 3; },
        &s));
}

}  // namespace
}  // namespace pbpf::it
