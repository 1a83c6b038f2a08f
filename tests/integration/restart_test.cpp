// Agent restarts: enforcement outlives a SIGKILLed agent and is adopted by the next one;
// after --uninstall (state kept) a new agent rebuilds everything from SQLite.
#include "tests/integration/fixture.h"

#include <signal.h>

namespace pbpf::it {
namespace {

class Restart : public IntegrationTest {
  protected:
    // it-web drops 9090 (v1) or 8080 (v2), passes the rest.
    std::string web(int version) {
        const uint16_t port = version == 1 ? kPortB : kPortA;
        return persona_pdl("it-web",
                           {"mode enforce", "default ingress allow", "default egress allow",
                            "deny egress tcp port " + std::to_string(port) + " to " + veth_->peer4},
                           "web v" + std::to_string(version));
    }

    void expect_v1_enforced(const Where& w, const std::string& when) {
        Probe a = tcp_probe(w, veth_->peer4, kPortA);
        EXPECT_TRUE(a.ok()) << when << ": 8080 must pass: " << a;
        Probe b = tcp_probe(w, veth_->peer4, kPortB);
        EXPECT_TRUE(b.blocked()) << when << ": 9090 must be dropped: " << b;
    }

    // status -j: the running agent's pid, one persona, one binding, how it started.
    void expect_status(const std::string& start) {
        nlohmann::json st;
        ASSERT_TRUE(cli_json(*agent_, {"status"}, &st));
        EXPECT_EQ(st.value("pid", -1), agent_->pid()) << st.dump(2);
        EXPECT_EQ(st.value("personas", -1), 1) << st.dump(2);
        EXPECT_EQ(st.value("bindings", -1), 1) << st.dump(2);
        if (st.contains("start")) {
            EXPECT_EQ(st.value("start", ""), start) << st.dump(2);
        }
    }

    // persona ls and bindings ls show it-web bound to <root>/web.
    void expect_state_listed(const std::string& when) {
        nlohmann::json personas, bindings;
        ASSERT_TRUE(cli_json(*agent_, {"persona", "ls"}, &personas)) << when;
        bool found = false;
        for (const auto& p : personas)
            if (p.is_object() && p.value("name", "") == "it-web") found = true;
        EXPECT_TRUE(found) << when << ": persona ls lacks it-web:\n" << personas.dump(2);
        ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bindings)) << when;
        ASSERT_TRUE(bindings.is_array() && bindings.size() == 1) << when << ": bindings ls:\n"
                                                                 << bindings.dump(2);
        EXPECT_EQ(bindings[0].value("persona", ""), "it-web") << bindings.dump(2);
        EXPECT_NE(bindings[0].value("cgroup", "").find(cg_->rel("web")), std::string::npos)
            << bindings.dump(2);
    }
};

TEST_F(Restart, KilledAgentKeepsEnforcingAndRestartAdopts) {
    apply(*agent_, web(1));
    bind("it-web", "web");
    const Where w = in("web");
    expect_v1_enforced(w, "agent running");
    PersonaStats before;
    ASSERT_TRUE(wait_stats(
        *agent_, "it-web", [](const PersonaStats& s) { return s.egress.denied_packets > 0; },
        &before));

    agent_->stop(SIGKILL);
    ASSERT_FALSE(agent_->running());
    EXPECT_FALSE(agent_->api_ready());
    expect_v1_enforced(w, "agent dead");
    // The CLI says so instead of hanging.
    CommandResult down = agent_->cli({"status"});
    EXPECT_EQ(down.exit_code, 1) << down.describe();
    EXPECT_EQ(down.err.rfind("personabpf: error: ", 0), 0u) << down.err;

    ASSERT_TRUE(agent_->start()) << "restart after SIGKILL";
    CommandResult st = agent_->cli({"status"});
    EXPECT_EQ(st.exit_code, 0) << st.describe();
    expect_status("adopted");
    expect_state_listed("after restart");
    expect_v1_enforced(w, "after restart");

    // The pinned counters were adopted, not recreated: they include the drops that
    // happened while no agent ran.
    PersonaStats after;
    const uint64_t denied_before = before.egress.denied_packets;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-web",
        [&](const PersonaStats& s) { return s.egress.denied_packets >= denied_before + 2; },
        &after))
        << "denied before the kill: " << denied_before;

    // A new version applied by the new agent takes effect.
    apply(*agent_, web(2));
    Probe a = tcp_probe(w, veth_->peer4, kPortA);
    EXPECT_TRUE(a.blocked()) << "v2 drops 8080: " << a;
    Probe b = tcp_probe(w, veth_->peer4, kPortB);
    EXPECT_TRUE(b.ok()) << "v2 passes 9090: " << b;
}

TEST_F(Restart, StateRestoredFromSqliteAfterUninstall) {
    apply(*agent_, web(1));
    bind("it-web", "web");
    const Where w = in("web");
    expect_v1_enforced(w, "before uninstall");

    // SIGTERM stops the agent but, like SIGKILL, leaves the pinned programs enforcing.
    agent_->stop(SIGTERM);
    expect_v1_enforced(w, "after SIGTERM");
    CommandResult r = agent_->uninstall(/*purge_state=*/false);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    // Nothing of the instance is left pinned, so nothing enforces.
    if (path_exists(agent_->paths().bpffs_root)) {
        CommandResult pins = run_command(
            {"find", agent_->paths().bpffs_root, "-mindepth", "1", "-not", "-type", "d"}, 5s);
        EXPECT_TRUE(pins.out.empty()) << "pins left after --uninstall:\n" << pins.out;
    }
    Probe b = tcp_probe(w, veth_->peer4, kPortB);
    EXPECT_TRUE(b.ok()) << "after uninstall 9090 must pass: " << b;
    ASSERT_TRUE(path_exists(agent_->paths().state_dir)) << "uninstall without --purge-state "
                                                           "removed the state dir";

    ASSERT_TRUE(agent_->start()) << "start on the kept state";
    expect_status("fresh");
    expect_state_listed("restored from SQLite");
    expect_v1_enforced(w, "restored from SQLite");
    nlohmann::json show;
    ASSERT_TRUE(cli_json(*agent_, {"persona", "show", "it-web"}, &show));
    EXPECT_EQ(show.value("description", ""), "web v1") << show.dump(2);
}

// A persona that imports its parent: the CLI sends the imported file along, the agent
// enforces the inherited rules, says which sections it does not enforce yet, and rebuilds
// the persona from the stored files after a restart from SQLite alone.
TEST_F(Restart, ImportedParentIsStoredAndRebuilt) {
    scratch_.write("base.pdl",
                   persona_pdl("it-base", {"deny egress tcp port " + std::to_string(kPortB) +
                                           " to " + veth_->peer4}));
    const std::string path = scratch_.write("web.pdl", R"pdl(import "base.pdl"

persona it-web extends it-base {
  description "web, child of it-base"
  qos {
    priority high
  }
}
)pdl");
    CommandResult r = agent_->cli({"persona", "apply", path});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(
        r.err.find("note: it-web: qos priority compiled and stored, not enforced by this agent"),
        std::string::npos)
        << r.err;
    bind("it-web", "web");
    const Where w = in("web");
    expect_v1_enforced(w, "inherited rule");

    agent_->stop(SIGTERM);
    CommandResult u = agent_->uninstall(/*purge_state=*/false);
    ASSERT_EQ(u.exit_code, 0) << u.describe();
    ASSERT_TRUE(agent_->start()) << "start on the kept state";
    expect_v1_enforced(w, "rebuilt from SQLite");
    EXPECT_EQ(agent_->log().find("no longer compiles"), std::string::npos) << agent_->log();
    nlohmann::json show;
    ASSERT_TRUE(cli_json(*agent_, {"persona", "show", "it-web"}, &show));
    EXPECT_EQ(show.value("description", ""), "web, child of it-base") << show.dump(2);
}

TEST_F(Restart, BindingOfACgroupRemovedWhileDownIsDropped) {
    apply(*agent_, web(1));
    bind("it-web", "web");
    bind("it-web", "gone");
    const Where w = in("web");
    agent_->stop(SIGKILL);
    destroy_cgroup_tree(cg_->abs("gone"));
    ASSERT_FALSE(path_exists(cg_->abs("gone")));

    ASSERT_TRUE(agent_->start()) << "restart with a bound cgroup gone";
    expect_state_listed("after restart without 'gone'");
    expect_v1_enforced(w, "after restart without 'gone'");
    // A cgroup of the same name created later is a new cgroup: it is not bound.
    const Where again = in("gone");
    Probe p = tcp_probe(again, veth_->peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "recreated 'gone' must not inherit the old binding: " << p;
}

TEST_F(Restart, NoGapWhileReapplyingOrRestarting) {
    const auto& v = *veth_;
    // Two versions with the same verdicts for the hammered ports, so every datagram has
    // exactly one right answer whatever version a packet meets.
    auto version = [&](int n) {
        std::vector<std::string> rules = {"mode enforce", "default ingress allow",
                                          "default egress allow",
                                          "deny egress udp port 9090 to " + v.peer4};
        if (n == 2) rules.push_back("deny egress tcp port 7070 to " + v.alt4);
        return persona_pdl("it-steady", rules, "steady v" + std::to_string(n));
    };
    apply(*agent_, version(1));
    bind("it-steady", "steady");
    UdpHammer hammer(in("steady"), v.peer4, kPortA, kPortB);
    ASSERT_TRUE(hammer.ok()) << hammer.error();

    for (int i = 0; i < 5; ++i) {
        apply(*agent_, version(2));
        apply(*agent_, version(1));
    }
    agent_->stop(SIGKILL);
    ASSERT_TRUE(agent_->start()) << "restart after SIGKILL";
    agent_->stop(SIGTERM);
    ASSERT_TRUE(agent_->start()) << "restart after SIGTERM";
    apply(*agent_, version(2));

    HammerCounts c = hammer.stop();
    RecordProperty("hammer_counts", ::testing::PrintToString(c));
    EXPECT_EQ(c.denied_passed, 0u) << "datagrams to the denied port escaped: " << c;
    EXPECT_EQ(c.allowed_dropped, 0u) << "datagrams to the allowed port were dropped: " << c;
    EXPECT_GT(c.denied_dropped, 100u) << c;
    EXPECT_GT(c.allowed_passed, 100u) << c;
    EXPECT_EQ(c.errors, 0u) << c;
}

}  // namespace
}  // namespace pbpf::it
