// Bindings against real traffic: unbind (by cgroup and by pid) restores access, and
// descendants inherit the nearest bound ancestor's persona.
#include "tests/integration/fixture.h"

#include <set>
#include <thread>

namespace pbpf::it {
namespace {

class Binding : public IntegrationTest {};

std::string deny_port(const std::string& name, const std::string& peer, uint16_t port) {
    return persona_pdl(name, {"mode enforce", "default ingress allow", "default egress allow",
                              "deny egress tcp port " + std::to_string(port) + " to " + peer});
}

TEST_F(Binding, UnbindRestoresAccess) {
    const auto& v = *veth_;
    apply(*agent_, deny_port("it-block", v.peer4, kPortB));
    bind("it-block", "app");
    const Where app = in("app");

    Probe p = tcp_probe(app, v.peer4, kPortB);
    ASSERT_TRUE(p.blocked()) << "bound: " << p;

    CommandResult r = agent_->cli({"unbind", "--cgroup", cg_->rel("app")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    p = tcp_probe(app, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "after unbind: " << p;

    // A cgroup may also be named by its absolute filesystem path.
    r = agent_->cli({"bind", "--persona", "it-block", "--cgroup", cg_->abs("app")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    p = tcp_probe(app, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "bound by absolute path: " << p;
    r = agent_->cli({"unbind", "--cgroup", cg_->rel("app")});
    ASSERT_EQ(r.exit_code, 0) << "unbind by the mount-relative path: " << r.describe();
    p = tcp_probe(app, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "after the second unbind: " << p;
    nlohmann::json j;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &j));
    EXPECT_TRUE(j.is_array() && j.empty()) << j.dump(2);

    // Unbinding what is not bound is an error.
    r = agent_->cli({"unbind", "--cgroup", cg_->rel("app")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_NE(r.err.find("personabpf: error:"), std::string::npos) << r.err;
}

TEST_F(Binding, BindAndUnbindByPid) {
    const auto& v = *veth_;
    apply(*agent_, deny_port("it-block", v.peer4, kPortB));
    const Where w = in("by-pid");
    Sleeper workload(w);
    ASSERT_TRUE(workload.ok()) << workload.error();

    CommandResult r =
        agent_->cli({"bind", "--persona", "it-block", "--pid", std::to_string(workload.pid())});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    nlohmann::json j;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &j));
    ASSERT_TRUE(j.is_array() && j.size() == 1) << j.dump(2);
    EXPECT_EQ(j[0].value("persona", ""), "it-block") << j.dump(2);
    // The binding names the pid's cgroup, not the pid.
    EXPECT_NE(j[0].value("cgroup", "").find(cg_->rel("by-pid")), std::string::npos) << j.dump(2);

    Probe p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "bound by pid: " << p;
    p = tcp_probe(w, v.peer4, kPortA);
    EXPECT_TRUE(p.ok()) << "bound by pid, other port: " << p;

    r = agent_->cli({"unbind", "--pid", std::to_string(workload.pid())});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    p = tcp_probe(w, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "after unbind --pid: " << p;
}

TEST_F(Binding, NearestBoundAncestorWins) {
    const auto& v = *veth_;
    apply(*agent_,
          deny_port("it-parent", v.peer4, kPortB) + deny_port("it-child", v.peer4, kPortA));
    bind("it-parent", "a");
    const Where a = in("a");
    const Where ab = in("a/b");
    const Where abc = in("a/b/c");

    auto expect = [&](const Where& w, const char* who, bool a_open, bool b_open) {
        Probe pa = tcp_probe(w, v.peer4, kPortA);
        Probe pb = tcp_probe(w, v.peer4, kPortB);
        EXPECT_EQ(pa.ok(), a_open) << who << " port 8080: " << pa;
        EXPECT_EQ(pb.ok(), b_open) << who << " port 9090: " << pb;
        if (!a_open) {
            EXPECT_TRUE(pa.blocked()) << who << " port 8080: " << pa;
        }
        if (!b_open) {
            EXPECT_TRUE(pb.blocked()) << who << " port 9090: " << pb;
        }
    };
    {
        SCOPED_TRACE("only a bound to it-parent");
        expect(a, "a", true, false);
        expect(ab, "a/b", true, false);
        expect(abc, "a/b/c", true, false);
    }
    bind("it-child", "a/b");
    {
        SCOPED_TRACE("a/b bound to it-child");
        expect(a, "a", true, false);
        expect(ab, "a/b", false, true);
        expect(abc, "a/b/c", false, true);
    }
    CommandResult r = agent_->cli({"unbind", "--cgroup", cg_->rel("a/b")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    {
        // Cached inherited results must not outlive a binding change.
        SCOPED_TRACE("a/b unbound again");
        expect(ab, "a/b", true, false);
        expect(abc, "a/b/c", true, false);
    }

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-child", [](const PersonaStats& st) { return st.egress.denied_packets >= 2; },
        &s));
    EXPECT_TRUE(wait_stats(
        *agent_, "it-parent", [](const PersonaStats& st) { return st.egress.denied_packets >= 6; },
        &s));
}

TEST_F(Binding, ManagedRootBindingAndRebindInPlace) {
    const auto& v = *veth_;
    apply(*agent_, deny_port("it-block", v.peer4, kPortB) + deny_port("it-other", v.peer4, kPortA));
    // The managed subtree's own root may be bound: everything below inherits it.
    CommandResult r = agent_->cli({"bind", "--persona", "it-block", "--cgroup", cg_->rel()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const Where deep = in("x/y");
    Probe p = tcp_probe(deep, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "x/y under the bound root, 9090: " << p;

    // Binding a bound cgroup again replaces its persona.
    bind("it-other", "x");
    bind("it-block", "x");
    bind("it-other", "x");
    nlohmann::json j;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &j));
    ASSERT_TRUE(j.is_array() && j.size() == 2) << j.dump(2);
    int x_bindings = 0;
    for (const auto& b : j) {
        const std::string cg = b.value("cgroup", "");
        if (cg.size() >= 2 && cg.compare(cg.size() - 2, 2, "/x") == 0) {
            ++x_bindings;
            EXPECT_EQ(b.value("persona", ""), "it-other") << j.dump(2);
        }
    }
    EXPECT_EQ(x_bindings, 1) << j.dump(2);
    p = tcp_probe(deep, v.peer4, kPortA);
    EXPECT_TRUE(p.blocked()) << "x/y after rebinding x to it-other, 8080: " << p;
    p = tcp_probe(deep, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "x/y after rebinding x to it-other, 9090: " << p;
}

TEST_F(Binding, ConcurrentClientsAllLand) {
    const auto& v = *veth_;
    constexpr int kClients = 8;
    std::vector<std::string> files;
    for (int i = 0; i < kClients; ++i) {
        files.push_back(scratch_.write(
            "c" + std::to_string(i) + ".pdl",
            persona_pdl("it-c" + std::to_string(i),
                        {"mode enforce", "default ingress allow", "default egress allow",
                         "deny egress udp port " + std::to_string(i % 2 ? kPortA : kPortB) +
                             " to " + v.peer4})));
        cg_->create("c" + std::to_string(i));
    }
    // Each client applies its persona and binds its cgroup, all at once.
    std::vector<CommandResult> applied(kClients), bound(kClients);
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.emplace_back([&, i] {
            applied[i] = agent_->cli({"persona", "apply", files[i]});
            bound[i] = agent_->cli({"bind", "--persona", "it-c" + std::to_string(i), "--cgroup",
                                    cg_->rel("c" + std::to_string(i))});
        });
    }
    for (auto& t : clients) t.join();
    for (int i = 0; i < kClients; ++i) {
        EXPECT_EQ(applied[i].exit_code, 0) << "client " << i << ": " << applied[i].describe();
        EXPECT_EQ(bound[i].exit_code, 0) << "client " << i << ": " << bound[i].describe();
    }
    nlohmann::json personas, bindings;
    ASSERT_TRUE(cli_json(*agent_, {"persona", "ls"}, &personas));
    EXPECT_EQ(personas.size(), static_cast<size_t>(kClients)) << personas.dump(2);
    std::set<int64_t> ids;
    for (const auto& p : personas) ids.insert(p.value("id", int64_t{-1}));
    EXPECT_EQ(ids.size(), static_cast<size_t>(kClients)) << "persona ids collide:\n"
                                                         << personas.dump(2);
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &bindings));
    EXPECT_EQ(bindings.size(), static_cast<size_t>(kClients)) << bindings.dump(2);
    // Each cgroup got its own persona: odd ones drop 8080 over UDP, even ones 9090.
    for (int i = 0; i < 2; ++i) {
        const Where w{cg_->abs("c" + std::to_string(i)), ""};
        Probe dropped = udp_probe(w, v.peer4, i % 2 ? kPortA : kPortB);
        Probe passed = udp_probe(w, v.peer4, i % 2 ? kPortB : kPortA);
        EXPECT_EQ(dropped.outcome, Outcome::kEperm) << "c" << i << ": " << dropped;
        EXPECT_TRUE(passed.ok()) << "c" << i << ": " << passed;
    }
}

}  // namespace
}  // namespace pbpf::it

namespace pbpf::it {
namespace {

class BindingLimits : public IntegrationTest {};

// [limits] bindings: a bind that would not fit is refused before anything changes, with
// the limit and the numbers; rebinding a bound cgroup needs no new entry.
TEST_F(BindingLimits, FullBindingTableRefusesNewBindingsOnly) {
    // Map sizes are fixed when the maps are created: a fresh instance takes the config's.
    agent_->stop(SIGTERM);
    CommandResult u = agent_->uninstall(true);
    ASSERT_EQ(u.exit_code, 0) << u.describe();
    agent_->extra_args = {"--config", scratch_.write("limits.toml", "[limits]\nbindings = 2\n")};
    ASSERT_TRUE(agent_->start());
    apply(*agent_, persona_pdl("it-a", {"default egress allow"}));
    apply(*agent_, persona_pdl("it-b", {"default egress deny"}), "b.pdl");
    bind("it-a", "one");
    bind("it-a", "two");
    const std::string third = cg_->create("three");
    CommandResult r = agent_->cli({"bind", "--persona", "it-a", "--cgroup", third});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("binding table full: 2 of 2"), std::string::npos) << r.describe();
    EXPECT_NE(r.err.find("[limits] bindings"), std::string::npos) << r.describe();
    nlohmann::json list;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &list));
    EXPECT_EQ(list.size(), 2u) << list.dump();
    // The third cgroup stays unbound: its traffic is not enforced.
    EXPECT_TRUE(udp_probe(Where{third, ""}, veth_->peer4, kPortA).ok());
    // Replacing a binding takes no new entry.
    bind("it-b", "two");
    EXPECT_EQ(udp_probe(in("two"), veth_->peer4, kPortA).outcome, Outcome::kEperm);
}

}  // namespace
}  // namespace pbpf::it
