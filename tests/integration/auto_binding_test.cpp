// Automatic binding with real workloads and traffic: bind-block rules bind cgroups the
// moment they appear and unbind them when they go; precedence (explicit > exact cgroup >
// glob) and re-evaluation when rules change; a real user's login slice; interfaces bound
// by name glob; a fail-closed subtree under a burst of 1,000 new workloads; bind events.
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class AutoBinding : public IntegrationTest {
  protected:
    // The persona `bindings ls -j` shows for a cgroup path ("" when unbound).
    std::string bound_to(const std::string& rel) {
        json j;
        if (!cli_json(*agent_, {"bindings", "ls"}, &j) || !j.is_array()) return "?";
        for (const auto& b : j)
            if (b.value("cgroup", "") == rel) return b.value("persona", "");
        return "";
    }
    ::testing::AssertionResult wait_bound(const std::string& rel, const std::string& persona,
                                          std::chrono::milliseconds timeout = 5s) {
        std::string last;
        bool ok = wait_until([&] { return (last = bound_to(rel)) == persona; }, timeout);
        if (ok) return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure()
               << rel << " bound to '" << last << "', expected '" << persona << "'";
    }
};

std::string deny_port(const std::string& name, const std::string& peer, uint16_t port) {
    return persona_pdl(name, {"mode enforce", "default ingress allow", "default egress allow",
                              "deny egress tcp port " + std::to_string(port) + " to " + peer,
                              "deny egress udp port " + std::to_string(port) + " to " + peer});
}

TEST_F(AutoBinding, BindBlockBindsCgroupsAsTheyAppearAndGo) {
    const auto& v = *veth_;
    const std::string glob = cg_->rel() + "/svc-*";
    apply(*agent_, deny_port("it-block", v.peer4, kPortB) + "\nbind it-block {\n  cgroup \"" +
                       glob + "\"\n}\n");
    json rules;
    ASSERT_TRUE(cli_json(*agent_, {"rules", "ls"}, &rules));
    ASSERT_EQ(rules.size(), 1u) << rules.dump(2);
    EXPECT_EQ(rules[0].value("origin", ""), "pdl");
    EXPECT_EQ(rules[0].value("pattern", ""), glob);
    const int64_t rule_id = rules[0].value("id", int64_t{0});

    // A workload that starts in a matching cgroup is bound before it is used.
    const Where svc{cg_->create("svc-1"), ""};
    ASSERT_TRUE(wait_bound(cg_->rel("svc-1"), "it-block"));
    EXPECT_TRUE(tcp_probe(svc, v.peer4, kPortB).blocked());
    EXPECT_TRUE(tcp_probe(svc, v.peer4, kPortA).ok());
    // One that does not match stays unbound; its children inherit nothing.
    const Where other{cg_->create("other/deep"), ""};
    EXPECT_TRUE(tcp_probe(other, v.peer4, kPortB).ok());
    EXPECT_EQ(bound_to(cg_->rel("other/deep")), "");

    // An explicit unbind of a rule-made binding is refused with the way out.
    CommandResult r = agent_->cli({"unbind", "--cgroup", cg_->rel("svc-1")});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("binding rule " + std::to_string(rule_id)), std::string::npos)
        << r.describe();
    EXPECT_NE(r.err.find("edit the bind block of persona 'it-block' (in "), std::string::npos)
        << r.describe();

    // Removal unbinds; a bind event and an unbind event name the rule.
    ASSERT_EQ(::rmdir(cg_->abs("svc-1").c_str()), 0);
    ASSERT_TRUE(wait_bound(cg_->rel("svc-1"), ""));
    // `events -j`: one JSON object per line; the text form names the rule too.
    CommandResult ev = agent_->cli({"-j", "events", "-n", "100"});
    ASSERT_EQ(ev.exit_code, 0) << ev.describe();
    std::vector<json> events;
    std::istringstream lines(ev.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) events.push_back(json::parse(line));
    bool bind_seen = false, unbind_seen = false;
    for (const auto& e : events) {
        if (e.value("workload", "") != cg_->rel("svc-1")) continue;
        bind_seen |= e.value("type", "") == "bind" && e.value("trigger", "") == "rule" &&
                     e.value("rule", int64_t{0}) == rule_id && e.value("persona", "") == "it-block";
        unbind_seen |= e.value("type", "") == "unbind" && e.value("trigger", "") == "workload-gone";
    }
    EXPECT_TRUE(bind_seen) << ev.out;
    EXPECT_TRUE(unbind_seen) << ev.out;
    ev = agent_->cli({"events", "-n", "100"});
    EXPECT_NE(ev.out.find("BOUND (rule " + std::to_string(rule_id) + ": cgroup \"" + glob + "\")"),
              std::string::npos)
        << ev.out;

    // Editing the file: without the bind block, the rule and its bindings go.
    const Where svc2{cg_->create("svc-2"), ""};
    ASSERT_TRUE(wait_bound(cg_->rel("svc-2"), "it-block"));
    apply(*agent_, deny_port("it-block", v.peer4, kPortB));
    ASSERT_TRUE(cli_json(*agent_, {"rules", "ls"}, &rules));
    EXPECT_TRUE(rules.empty()) << rules.dump(2);
    EXPECT_EQ(bound_to(cg_->rel("svc-2")), "");
    EXPECT_TRUE(tcp_probe(svc2, v.peer4, kPortB).ok());
}

TEST_F(AutoBinding, MostSpecificRuleWinsAndExplicitBeatsRules) {
    const auto& v = *veth_;
    apply(*agent_, deny_port("it-glob", v.peer4, kPortB));
    apply(*agent_, deny_port("it-exact", v.peer4, kPortA), "exact.pdl");
    apply(*agent_, persona_pdl("it-explicit", {"default egress deny"}), "explicit.pdl");
    const Where a{cg_->create("app-a"), ""};
    cg_->create("app-b");

    CommandResult r =
        agent_->cli({"rules", "add", "--persona", "it-glob", "--cgroup", cg_->rel() + "/app-*"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    // Existing cgroups are bound when the rule is added.
    EXPECT_EQ(bound_to(cg_->rel("app-a")), "it-glob");
    EXPECT_EQ(bound_to(cg_->rel("app-b")), "it-glob");

    r = agent_->cli({"-j", "rules", "add", "--persona", "it-exact", "--cgroup", cg_->rel("app-a")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const int64_t exact_id = json::parse(r.out).value("id", int64_t{0});
    EXPECT_EQ(bound_to(cg_->rel("app-a")), "it-exact");
    EXPECT_EQ(bound_to(cg_->rel("app-b")), "it-glob");
    EXPECT_TRUE(tcp_probe(a, v.peer4, kPortA).blocked());
    EXPECT_TRUE(tcp_probe(a, v.peer4, kPortB).ok());

    // The same rule twice is refused; a bad pattern says what is wrong.
    r = agent_->cli({"rules", "add", "--persona", "it-exact", "--cgroup", cg_->rel("app-a")});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("exists already"), std::string::npos) << r.describe();
    r = agent_->cli({"rules", "add", "--persona", "it-exact", "--cgroup", "app-[a"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("app-[a"), std::string::npos) << r.describe();

    // An explicit binding beats every rule and survives rule changes.
    r = agent_->cli({"bind", "--persona", "it-explicit", "--cgroup", cg_->rel("app-b")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bound_to(cg_->rel("app-b")), "it-explicit");

    // Removing the exact rule hands app-a back to the glob.
    r = agent_->cli({"rules", "rm", std::to_string(exact_id)});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bound_to(cg_->rel("app-a")), "it-glob");
    EXPECT_TRUE(tcp_probe(a, v.peer4, kPortB).blocked());
    EXPECT_EQ(bound_to(cg_->rel("app-b")), "it-explicit");
    // Unbinding the explicit binding lets the rule apply again.
    r = agent_->cli({"unbind", "--cgroup", cg_->rel("app-b")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bound_to(cg_->rel("app-b")), "it-glob");
}

TEST_F(AutoBinding, UserLoginBindsTheUsersSessions) {
    const auto& v = *veth_;
    TestUser user("pbit" + std::to_string(::getpid()));
    ASSERT_TRUE(user.ok()) << "useradd failed";
    apply(*agent_, deny_port("it-user", v.peer4, kPortB));
    CommandResult r = agent_->cli({"rules", "add", "--persona", "it-user", "--user", user.name()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    // A login as logind makes it: user-UID.slice with a session scope, the user's shell in it.
    const std::string slice = "user.slice/user-" + std::to_string(user.uid()) + ".slice";
    const std::string scope = cg_->create(slice + "/session-1.scope");
    ASSERT_TRUE(wait_bound(cg_->rel(slice), "it-user"));
    const Where session{scope, "", user.uid(), user.gid()};
    Probe p = tcp_probe(session, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "the user's process: " << p;
    EXPECT_TRUE(tcp_probe(session, v.peer4, kPortA).ok());
    // Another user's slice is not bound: the watcher takes cgroups in order, so once a
    // later matching cgroup is bound the other one has been judged.
    cg_->create("user.slice/user-4000000.slice");
    r = agent_->cli({"rules", "add", "--persona", "it-user", "--cgroup", cg_->rel("marker")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    cg_->create("marker");
    ASSERT_TRUE(wait_bound(cg_->rel("marker"), "it-user"));
    EXPECT_EQ(bound_to(cg_->rel("user.slice/user-4000000.slice")), "");
    // A user-UID.slice outside user.slice (one a user could make in a cgroup delegated
    // to them) does not get the user's persona.
    const std::string fake = "delegated/user-" + std::to_string(user.uid()) + ".slice";
    cg_->create(fake);
    cg_->create("marker2");
    r = agent_->cli({"rules", "add", "--persona", "it-user", "--cgroup", cg_->rel("marker2")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bound_to(cg_->rel(fake)), "");

    // The PAM hook's call: no persona, the rules applied now; answers what is bound.
    r = agent_->cli({"-j", "bind", "--user", user.name()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json j = json::parse(r.out);
    ASSERT_EQ(j.value("bound", json::array()).size(), 1u) << j.dump(2);
    EXPECT_EQ(j["bound"][0].value("persona", ""), "it-user");

    // An explicit user binding beats the rule; unbinding it hands the slice back.
    apply(*agent_, persona_pdl("it-user-explicit", {"default egress deny"}), "explicit.pdl");
    r = agent_->cli({"bind", "--user", user.name(), "--persona", "it-user-explicit"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bound_to(cg_->rel(slice)), "it-user-explicit");
    EXPECT_TRUE(tcp_probe(session, v.peer4, kPortA).blocked());
    // Named by uid, it is the same user: one explicit binding, replaced.
    r = agent_->cli(
        {"bind", "--user", std::to_string(user.uid()), "--persona", "it-user-explicit"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json all;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &all));
    size_t user_rows = 0;
    for (const auto& b : all) user_rows += b.contains("user");
    EXPECT_EQ(user_rows, 1u) << all.dump(2);
    r = agent_->cli({"unbind", "--user", user.name()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bound_to(cg_->rel(slice)), "it-user");
    r = agent_->cli({"bind", "--user", "pbit-no-such-user-x"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("no user"), std::string::npos) << r.describe();
}

TEST_F(AutoBinding, InterfaceRuleBindsAVmLikeWorkload) {
    const auto& v = *veth_;
    const Where vm = from_netns();
    EchoServer host_server(Where{},
                           {{Proto::kUdp, v.host4, kPortA}, {Proto::kUdp, v.host4, kPortB}});
    ASSERT_TRUE(host_server.ok()) << host_server.error();
    apply(*agent_, persona_pdl("it-vm", {"default ingress allow", "default egress allow",
                                         "deny egress udp port 9090 to " + v.host4}));
    // The glob names this test's host-side interfaces only.
    const std::string glob = v.host_if().substr(0, v.host_if().rfind('-') + 1) + "*h";
    CommandResult r = agent_->cli({"rules", "add", "--persona", "it-vm", "--ifname", glob});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json list;
    ASSERT_TRUE(wait_until(
        [&] {
            if (!cli_json(*agent_, {"bindings", "ls"}, &list)) return false;
            for (const auto& b : list)
                if (b.value("ifname", "") == v.host_if() && b.value("origin", "") == "rule")
                    return true;
            return false;
        },
        5s))
        << list.dump(2);
    EXPECT_TRUE(udp_probe(vm, v.host4, kPortB).blocked());
    EXPECT_TRUE(udp_probe(vm, v.host4, kPortA).ok());

    // A second VM appears: its interface is bound as it shows up, and unbound when it goes.
    std::string second_if;
    {
        Netns ns2;
        ASSERT_TRUE(ns2.ok()) << ns2.error();
        Veth v2(ns2);
        ASSERT_TRUE(v2.ok()) << v2.error();
        second_if = v2.host_if();
        ASSERT_TRUE(wait_until(
            [&] {
                if (!cli_json(*agent_, {"bindings", "ls"}, &list)) return false;
                for (const auto& b : list)
                    if (b.value("ifname", "") == second_if) return true;
                return false;
            },
            5s))
            << second_if << " not bound: " << list.dump(2);
    }
    ASSERT_TRUE(wait_until(
        [&] {
            if (!cli_json(*agent_, {"bindings", "ls"}, &list)) return false;
            for (const auto& b : list)
                if (b.value("ifname", "") == second_if) return false;
            return true;
        },
        5s))
        << second_if << " still bound after it was removed: " << list.dump(2);
}

TEST_F(AutoBinding, ContainerInItsOwnNetnsBoundByRuleAsItStarts) {
    const auto& v = *veth_;
    EchoServer host_server(Where{},
                           {{Proto::kTcp, v.host4, kPortA}, {Proto::kTcp, v.host4, kPortB}});
    ASSERT_TRUE(host_server.ok()) << host_server.error();
    // As podman names them: machine.slice/libpod-<id>.scope.
    apply(*agent_, persona_pdl("it-ctr", {"default ingress deny", "default egress deny",
                                          "allow egress tcp port 8080 to " + v.host4}) +
                       "\nbind it-ctr {\n  cgroup \"" + cg_->rel() +
                       "/machine.slice/libpod-*.scope\"\n}\n");
    const std::string scope = "machine.slice/libpod-4f1c2a.scope";
    const Where ctr{cg_->create(scope), net_->path()};
    ASSERT_TRUE(wait_bound(cg_->rel(scope), "it-ctr"));
    Probe p = tcp_probe(ctr, v.host4, kPortA);
    EXPECT_TRUE(p.ok()) << "container -> host tcp 8080: " << p;
    p = tcp_probe(ctr, v.host4, kPortB);
    EXPECT_TRUE(p.blocked()) << "container -> host tcp 9090: " << p;
    p = tcp_probe(from_netns(), v.host4, kPortB);
    EXPECT_TRUE(p.ok()) << "control: another process of that netns -> host tcp 9090: " << p;
    // The slice itself matches nothing: not bound.
    EXPECT_EQ(bound_to(cg_->rel("machine.slice")), "");
}

// UDP datagrams the netns received (its UDP stack's InDatagrams + NoPorts), read through
// the echo server's /proc/PID/net (the netns's counters).
uint64_t netns_udp_in(pid_t pid_in_netns) {
    std::ifstream in("/proc/" + std::to_string(pid_in_netns) + "/net/snmp");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Udp: ", 0) != 0 || line.find("InDatagrams") != std::string::npos) continue;
        std::istringstream fields(line.substr(5));
        uint64_t in_dgrams = 0, no_ports = 0;
        fields >> in_dgrams >> no_ports;
        return in_dgrams + no_ports;
    }
    return UINT64_MAX;
}

TEST_F(AutoBinding, FailClosedSubtreeLetsNothingOutOf1000NewWorkloads) {
    const auto& v = *veth_;
    const std::string fc = cg_->rel() + "/fc";
    cg_->create("fc");
    agent_->stop(SIGTERM);
    agent_->extra_args = {"--config",
                          scratch_.write("fc.toml", "[binding]\nfail_closed = [\"" + fc + "\"]\n")};
    ASSERT_TRUE(agent_->start());
    // The final persona denies UDP to port B and allows the rest; a rule binds every
    // workload of the subtree to it.
    apply(*agent_, deny_port("it-final", v.peer4, kPortB) + "\nbind it-final {\n  cgroup \"" + fc +
                       "/w-*\"\n}\n");
    json st;
    ASSERT_TRUE(cli_json(*agent_, {"status"}, &st));
    ASSERT_EQ(st["binding"]["fail_closed"].size(), 1u) << st.dump(2);
    EXPECT_TRUE(st["binding"]["fail_closed"][0].value("present", false)) << st.dump(2);

    const pid_t server = server_->pid();
    const uint64_t before = netns_udp_in(server);
    ASSERT_NE(before, UINT64_MAX);

    // 1,000 workloads, each starting to send (UDP to port B, every 2 ms for 0.6 s) the
    // moment its cgroup exists: before any binding can have landed.
    constexpr int kWorkloads = 1000;
    std::vector<pid_t> kids;
    const std::string dst = v.peer4;
    for (int i = 0; i < kWorkloads; ++i) {
        const std::string dir = cg_->create("fc/w-" + std::to_string(i));
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            std::ofstream(dir + "/cgroup.procs") << ::getpid() << std::flush;
            int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_port = htons(kPortB);
            ::inet_pton(AF_INET, dst.c_str(), &to.sin_addr);
            for (int k = 0; k < 300; ++k) {
                (void)::sendto(s, "x", 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to),
                               sizeof to);
                ::usleep(2000);
            }
            ::_exit(0);
        }
        kids.push_back(pid);
    }
    for (pid_t pid : kids) ::waitpid(pid, nullptr, 0);

    // Every workload got its binding ...
    json list;
    size_t bound = 0;
    ASSERT_TRUE(wait_until(
        [&] {
            if (!cli_json(*agent_, {"bindings", "ls"}, &list)) return false;
            bound = 0;
            for (const auto& b : list) bound += b.value("persona", "") == "it-final";
            return bound == kWorkloads;
        },
        30s))
        << bound << " of " << kWorkloads << " bound";
    // ... and not one datagram reached the netns, neither before the binding (fail-closed)
    // nor after it (the final persona).
    EXPECT_EQ(netns_udp_in(server), before);
    // The window was real: datagrams were sent before their binding landed and dropped
    // as fail-closed. Counted from the kernel's counters: the events of that window are
    // rate-limited and long pushed out of the agent's history by the later rule drops.
    json stats;
    ASSERT_TRUE(cli_json(*agent_, {"stats"}, &stats));
    uint64_t fail_closed_drops = 0;
    for (const auto& row : stats)
        if (row.value("persona", "") == "(fail-closed)")
            fail_closed_drops = row["egress"].value("denied_packets", uint64_t{0});
    EXPECT_GT(fail_closed_drops, 0u) << stats.dump(2);
    // The final persona, not deny-all, is what they have now.
    const Where w0{cg_->abs("fc/w-0"), ""};
    EXPECT_TRUE(udp_probe(w0, v.peer4, kPortA).ok());
    EXPECT_TRUE(udp_probe(w0, v.peer4, kPortB).blocked());
    // A cgroup no rule matches stays closed.
    const Where stray{cg_->create("fc/stray"), ""};
    EXPECT_TRUE(udp_probe(stray, v.peer4, kPortA).blocked());
    // Its drops are events with reason fail-closed (probing again until the event
    // budget the flood spent has refilled).
    const std::string stray_rel = cg_->rel("fc/stray");
    bool stray_event = false;
    EXPECT_TRUE(wait_until(
        [&] {
            (void)udp_probe(stray, v.peer4, kPortA, 100);
            CommandResult ev = agent_->cli({"-j", "events", "-n", "200"});
            std::istringstream lines(ev.out);
            for (std::string line; std::getline(lines, line);) {
                if (line.empty()) continue;
                json e = json::parse(line, nullptr, false);
                stray_event = stray_event || (e.value("reason", "") == "fail-closed" &&
                                              e.value("workload", "").ends_with("/fc/stray"));
            }
            return stray_event;
        },
        10s))
        << "no fail-closed drop event for " << stray_rel;

    // The root bound explicitly, then its persona removed by force: the root is closed
    // again, not open.
    apply(*agent_, persona_pdl("it-open", {"default egress allow"}), "open.pdl");
    CommandResult r = agent_->cli({"bind", "--persona", "it-open", "--cgroup", fc});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(udp_probe(stray, v.peer4, kPortA).ok());
    r = agent_->cli({"persona", "rm", "--force", "it-open"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(udp_probe(stray, v.peer4, kPortA).blocked());
    CommandResult ev = agent_->cli({"events", "-n", "20"});
    EXPECT_NE(ev.out.find("it-open (" + fc + ")  UNBOUND (persona-removed)"), std::string::npos)
        << ev.out;

    // While the agent is down the kernel keeps the subtree closed; the next agent binds
    // what appeared meanwhile.
    agent_->stop(SIGKILL);
    const Where late{cg_->create("fc/w-late"), ""};
    EXPECT_TRUE(udp_probe(late, v.peer4, kPortA).blocked());
    ASSERT_TRUE(agent_->start());
    ASSERT_TRUE(wait_bound(cg_->rel("fc/w-late"), "it-final"));
    EXPECT_TRUE(udp_probe(late, v.peer4, kPortA).ok());
    EXPECT_TRUE(udp_probe(stray, v.peer4, kPortA).blocked());
}

TEST_F(AutoBinding, RulesDoNotReachBelowAnExplicitBinding) {
    const auto& v = *veth_;
    apply(*agent_, deny_port("it-rule", v.peer4, kPortB));
    apply(*agent_, persona_pdl("it-hand", {"default egress allow"}), "hand.pdl");
    CommandResult r = agent_->cli({"bind", "--persona", "it-hand", "--cgroup", cg_->create("ctr")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    // A rule for every second-level cgroup: the container's inner cgroup matches it, but
    // the explicit binding of the container covers it.
    r = agent_->cli({"rules", "add", "--persona", "it-rule", "--cgroup", cg_->rel() + "/*/*"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const Where inner{cg_->create("ctr/inner"), ""};
    const Where other{cg_->create("svc/inner"), ""};
    ASSERT_TRUE(wait_bound(cg_->rel("svc/inner"), "it-rule"));
    EXPECT_EQ(bound_to(cg_->rel("ctr/inner")), "");
    EXPECT_TRUE(tcp_probe(inner, v.peer4, kPortB).ok());
    EXPECT_TRUE(tcp_probe(other, v.peer4, kPortB).blocked());
    // Unbinding the container hands its inner cgroup to the rule.
    r = agent_->cli({"unbind", "--cgroup", cg_->rel("ctr")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(bound_to(cg_->rel("ctr/inner")), "it-rule");
}

}  // namespace
}  // namespace pbpf::it
