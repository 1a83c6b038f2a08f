// Topology under real routing: a chain of routers built in namespaces of the test's own,
//
//   W (VM-like, behind a veth) -- H (host: the agent, its cgroup workloads) -- R1 -- R2 -- R3 -- S
//                                  \---------------- ALT (another gateway) -------------/
//
// with the agent itself running in H (nsenter), so its rules and tables never touch the
// test's own netns. Traceroute-style probes (UDP with a TTL, ICMP errors read from the
// socket's error queue) show which router a packet reached: the hop limit clamp (IPv4
// and IPv6, cgroup- and interface-bound), the gateway `route via` / `route table` send
// traffic through, and next-hop drops.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <sstream>
#include <tuple>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/common/kernel_required.h"
#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

constexpr uint16_t kPort = 9090;
const std::string kServer4 = "10.77.100.1", kServer6 = "fd77:100::1";

// The router addresses: a link's first end gets .1/::1, its second .2/::2.
std::string a4(int net, int host) {
    return "10.77." + std::to_string(net) + "." + std::to_string(host);
}
std::string a6(int net, int host) {
    return "fd77:" + std::to_string(net) + "::" + std::to_string(host);
}

class Topology : public ::testing::Test {
  protected:
    enum Node { W, H, R1, R2, R3, ALT, S, kNodes };

    void SetUp() override {
        PBPF_REQUIRE_ROOT();
        if (cgroup2_mount().empty()) PBPF_KERNEL_UNAVAILABLE("no cgroup2 mount");
        if (bpffs_mount().empty()) PBPF_KERNEL_UNAVAILABLE("no bpffs mount");
        if (run_command({"ip", "-V"}, 5s).exit_code != 0) PBPF_KERNEL_UNAVAILABLE("no ip(8)");
        ASSERT_EQ(::access(agent_binary().c_str(), X_OK), 0) << "missing " << agent_binary();
        for (auto& n : ns_) {
            n = std::make_unique<Netns>();
            ASSERT_TRUE(n->ok()) << n->error();
            for (const char* s :
                 {"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                  "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                  // No DAD on the links' link-local addresses either: neighbour
                  // discovery of the routers must not wait for it.
                  "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"})
                run_ok(*n, {"sysctl", "-qw", s});
        }
        // Links: (net number, first node, second node).
        link(1, H, W);
        link(2, H, R1);
        link(3, H, ALT);
        link(4, R1, R2);
        link(5, R2, R3);
        link(6, R3, S);
        link(7, ALT, S);
        run_ok(*ns_[S], {"ip", "addr", "add", kServer4 + "/32", "dev", "lo"});
        run_ok(*ns_[S], {"ip", "-6", "addr", "add", kServer6 + "/128", "dev", "lo", "nodad"});
        // Towards the server: W and H by default through R1; back: every router's default
        // points at H (ALT's too), S's at R3, plus ALT for H's second uplink.
        route(W, "default", 1, 1);
        route(H, "default", 2, 2);
        route(R1, "default", 2, 1);
        route(R1, "SERVER", 4, 2);
        route(R2, "default", 4, 1);
        route(R2, "SERVER", 5, 2);
        route(R3, "default", 5, 1);
        route(R3, "SERVER", 6, 2);
        route(ALT, "default", 3, 1);
        route(ALT, "SERVER", 7, 2);
        route(S, "default", 6, 1);
        route(S, "NET3", 7, 1);
        if (HasFatalFailure()) return;
        server_ =
            std::make_unique<EchoServer>(Where{"", ns_[S]->path()}, EchoServer::any_addr({kPort}));
        ASSERT_TRUE(server_->ok()) << server_->error();

        cg_ = std::make_unique<CgroupTree>();
        ASSERT_TRUE(cg_->ok()) << cg_->error();
        agent_ = std::make_unique<Agent>(cg_->path());
        agent_->netns = ns_[H]->path();
        const std::string config =
            scratch_.write("agent.toml", "[topology]\negress_interfaces = [\"" + ifname(2, H) +
                                             "\", \"" + ifname(3, H) + "\"]\n");
        agent_->extra_args = {"--config", config};
        ASSERT_TRUE(agent_->start());
    }

    void TearDown() override {
        if (HasFailure() && agent_)
            std::cerr << "----- agent log -----\n" << agent_->log() << "----- end -----\n";
        if (agent_ && !HasFatalFailure() && !IsSkipped()) {
            std::string e = agent_->teardown();
            EXPECT_TRUE(e.empty()) << e;
            // --uninstall removed the agent's rules and tables.
            EXPECT_EQ(agent_rules(), "");
        }
        agent_.reset();
        cg_.reset();
        server_.reset();
        for (auto& n : ns_) n.reset();
    }

    // "pbit<pid>-<n><net><a|b>": unique, at most 15 bytes.
    std::string ifname(int net, Node n) const {
        const auto& l = links_.at(net);
        return l.base + (n == l.first ? "a" : "b");
    }

    void run_ok(const Netns& n, const std::vector<std::string>& argv) {
        CommandResult r = n.exec(argv);
        ASSERT_EQ(r.exit_code, 0) << r.describe();
    }

    void link(int net, Node first, Node second) {
        char base[16];
        std::snprintf(base, sizeof base, "pbit%x-%d", static_cast<unsigned>(::getpid()) & 0xfffff,
                      next_counter() % 100);
        links_[net] = Link{base, first, second};
        CommandResult r = run_command({"ip", "link", "add", std::string(base) + "a", "netns",
                                       ns_[first]->name(), "type", "veth", "peer", "name",
                                       std::string(base) + "b", "netns", ns_[second]->name()});
        ASSERT_EQ(r.exit_code, 0) << r.describe();
        for (auto [node, host, suffix] : {std::tuple{first, 1, "a"}, std::tuple{second, 2, "b"}}) {
            const std::string dev = std::string(base) + suffix;
            run_ok(*ns_[node], {"ip", "addr", "add", a4(net, host) + "/24", "dev", dev});
            run_ok(*ns_[node],
                   {"ip", "-6", "addr", "add", a6(net, host) + "/64", "dev", dev, "nodad"});
            run_ok(*ns_[node], {"ip", "link", "set", dev, "up"});
        }
    }

    // A route in `node` to `what` via the end `host` of link `net`, IPv4 and IPv6. The
    // server's routes prefer its service address as the source, so that its echoes come
    // from the address the probes' connected sockets expect.
    void route(Node node, const std::string& what, int net, int host) {
        std::string to4 = what, to6 = what;
        if (what == "SERVER") to4 = "10.77.100.0/24", to6 = "fd77:100::/64";
        if (what == "NET3") to4 = "10.77.3.0/24", to6 = "fd77:3::/64";
        std::vector<std::string> v4 = {"ip", "route", "add", to4, "via", a4(net, host)};
        std::vector<std::string> v6 = {"ip", "-6", "route", "add", to6, "via", a6(net, host)};
        if (node == S) {
            v4.insert(v4.end(), {"src", kServer4});
            v6.insert(v6.end(), {"src", kServer6});
        }
        run_ok(*ns_[node], v4);
        run_ok(*ns_[node], v6);
    }

    void apply(const std::string& pdl) {
        CommandResult r = agent_->cli({"persona", "apply", scratch_.write("t.pdl", pdl)});
        ASSERT_EQ(r.exit_code, 0) << pdl << r.describe();
    }

    // A cgroup workload in the host netns, bound to `persona` ("" = unbound).
    Where host_workload(const std::string& sub, const std::string& persona) {
        std::string path = cg_->create(sub);
        if (!persona.empty()) {
            CommandResult r =
                agent_->cli({"bind", "--persona", persona, "--cgroup", cg_->rel(sub)});
            EXPECT_EQ(r.exit_code, 0) << r.describe();
        }
        return Where{path, ns_[H]->path()};
    }

    // The agent's rules in H (its priorities), as `ip rule` prints them.
    std::string agent_rules() {
        std::string out;
        for (const char* fam : {"-4", "-6"}) {
            CommandResult r = ns_[H]->exec({"ip", fam, "rule", "show"});
            std::istringstream in(r.out);
            for (std::string line; std::getline(in, line);)
                if (line.rfind("10000:", 0) == 0 || line.rfind("10001:", 0) == 0)
                    out += std::string(fam) + " " + line + "\n";
        }
        return out;
    }

    json topology() {
        HttpResponse r = http(agent_->paths().socket, "GET", "/v1/topology");
        EXPECT_EQ(r.status, 200) << r.raw;
        return json::parse(r.body, nullptr, false);
    }

    uint64_t next_hop_drops(const std::string& persona) {
        CommandResult r = agent_->cli_json({"stats", persona});
        json j = json::parse(r.out, nullptr, false);
        if (j.is_array() && !j.empty()) j = j[0];
        if (!j.is_object() || !j.contains("egress")) return 0;
        return j["egress"].value("dropped_by_reason", json::object()).value("next-hop", 0ull);
    }

    struct Link {
        std::string base;
        Node first, second;
    };
    ScratchDir scratch_;
    std::unique_ptr<Netns> ns_[kNodes];
    std::map<int, Link> links_;
    std::unique_ptr<EchoServer> server_;
    std::unique_ptr<CgroupTree> cg_;
    std::unique_ptr<Agent> agent_;
};

std::string persona(const std::string& name, const std::string& topology) {
    return "persona " + name +
           " {\n  security {\n    mode enforce\n    default ingress allow\n"
           "    default egress allow\n  }\n  topology {\n" +
           topology + "  }\n}\n";
}

TEST_F(Topology, MaxHopsClampsTheTtlOfACgroupWorkload) {
    apply(persona("it-hops", "    max-hops 2\n"));
    const Where bound = host_workload("hops", "it-hops");
    const Where free = host_workload("free", "");
    for (const auto& [server, r2] :
         {std::pair{kServer4, std::set<std::string>{a4(4, 2), a4(5, 1)}},
          std::pair{kServer6, std::set<std::string>{a6(4, 2), a6(5, 1)}}}) {
        // Sent with TTL 64, clamped to 2 as it leaves the host: R1 forwards it, R2 answers.
        Probe p = trace_probe(bound, server, kPort, 64);
        EXPECT_EQ(p.outcome, Outcome::kTimeExceeded) << server << ": " << p;
        EXPECT_TRUE(r2.count(p.detail)) << server << ": time exceeded from " << p.detail;
        // Without the persona the server, four routers away, answers.
        Probe ok = trace_probe(free, server, kPort, 64);
        EXPECT_TRUE(ok.ok()) << server << ": " << ok;
    }
}

TEST_F(Topology, MaxHopsOfAnInterfaceWorkloadCountsTheHostAsTheFirstHop) {
    apply(persona("it-vmhops", "    max-hops 2\n"));
    CommandResult r = agent_->cli({"bind", "--persona", "it-vmhops", "--ifname", ifname(1, H)});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const Where vm{"", ns_[W]->path()};
    Probe p4 = trace_probe(vm, kServer4, kPort, 64);
    EXPECT_EQ(p4.outcome, Outcome::kTimeExceeded) << p4;
    EXPECT_EQ(p4.detail, a4(2, 2)) << "H forwards (hop 1), R1 (hop 2) answers";
    Probe p6 = trace_probe(vm, kServer6, kPort, 64);
    EXPECT_EQ(p6.outcome, Outcome::kTimeExceeded) << p6;
    EXPECT_EQ(p6.detail, a6(2, 2));
    // A TTL below the limit is left alone.
    Probe low = trace_probe(vm, kServer4, kPort, 1);
    EXPECT_EQ(low.outcome, Outcome::kTimeExceeded) << low;
    EXPECT_EQ(low.detail, a4(1, 1));
    r = agent_->cli({"unbind", "--ifname", ifname(1, H)});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    Probe ok = trace_probe(vm, kServer4, kPort, 64);
    EXPECT_TRUE(ok.ok()) << ok;
}

TEST_F(Topology, RouteViaAndRouteTableSendTrafficThroughTheOtherGateway) {
    // A first hop probe (TTL 1) names the gateway a packet took.
    const Where free = host_workload("free", "");
    Probe main = trace_probe(free, kServer4, kPort, 1);
    EXPECT_EQ(main.outcome, Outcome::kTimeExceeded) << main;
    EXPECT_EQ(main.detail, a4(2, 2)) << "the main table's gateway is R1";

    apply(persona("it-via", "    route via " + a4(3, 2) + "\n"));
    const Where via = host_workload("via", "it-via");
    Probe p = trace_probe(via, kServer4, kPort, 1);
    EXPECT_EQ(p.outcome, Outcome::kTimeExceeded) << p;
    EXPECT_EQ(p.detail, a4(3, 2)) << "route via ALT";
    Probe echo = trace_probe(via, kServer4, kPort, 0);
    EXPECT_TRUE(echo.ok()) << echo;
    // The persona's IPv6 is left to the main table (the gateway is IPv4).
    Probe v6 = trace_probe(via, kServer6, kPort, 1);
    EXPECT_EQ(v6.detail, a6(2, 2)) << v6;

    // A table of the test's own, named by the persona.
    run_ok(*ns_[H], {"ip", "route", "add", "default", "via", a4(3, 2), "table", "4242"});
    run_ok(*ns_[H], {"ip", "-6", "route", "add", "default", "via", a6(3, 2), "table", "4242"});
    apply(persona("it-table", "    route table 4242\n"));
    const Where tbl = host_workload("tbl", "it-table");
    for (const auto& [server, alt] :
         {std::pair{kServer4, a4(3, 2)}, std::pair{kServer6, a6(3, 2)}}) {
        Probe t = trace_probe(tbl, server, kPort, 1);
        EXPECT_EQ(t.outcome, Outcome::kTimeExceeded) << t;
        EXPECT_EQ(t.detail, alt) << "route table 4242";
        EXPECT_TRUE(trace_probe(tbl, server, kPort, 0).ok());
    }

    // An interface-bound workload: marked at its interface, routed by the host (hop 1).
    apply(persona("it-vmvia", "    route via " + a4(3, 2) + "\n"));
    CommandResult r = agent_->cli({"bind", "--persona", "it-vmvia", "--ifname", ifname(1, H)});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    Probe vm = trace_probe(Where{"", ns_[W]->path()}, kServer4, kPort, 2);
    EXPECT_EQ(vm.outcome, Outcome::kTimeExceeded) << vm;
    EXPECT_EQ(vm.detail, a4(3, 2));

    // Rules: two per family and route persona, kept once across a restart.
    const std::string rules = agent_rules();
    EXPECT_EQ(std::count(rules.begin(), rules.end(), '\n'), 2 + 2 + 4) << rules;
    json t = topology();
    EXPECT_EQ(t["routes"].size(), 2u) << t.dump(2);
    agent_->stop(SIGKILL);
    ASSERT_TRUE(agent_->start());
    EXPECT_EQ(agent_rules(), rules);
    EXPECT_EQ(trace_probe(via, kServer4, kPort, 1).detail, a4(3, 2));

    // Removal takes the persona's rules and table with it.
    r = agent_->cli({"unbind", "--cgroup", cg_->rel("via")});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = agent_->cli({"persona", "rm", "it-via"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const std::string after = agent_rules();
    EXPECT_EQ(std::count(after.begin(), after.end(), '\n'), 2 + 4) << after;
    EXPECT_EQ(topology()["routes"].size(), 1u);
}

TEST_F(Topology, NextHopsDropTrafficThroughAnotherGateway) {
    // Only ALT allowed, but the main table routes the server through R1: dropped on H's
    // uplink, counted and reported; an on-link destination (R1 itself) passes.
    apply(persona("it-nh", "    next-hops { " + a4(3, 2) + " }\n"));
    const Where w = host_workload("nh", "it-nh");
    Probe p = udp_probe(w, kServer4, kPort, 500);
    EXPECT_TRUE(p.blocked()) << p;
    EXPECT_GE(next_hop_drops("it-nh"), 1u);
    EXPECT_TRUE(ping_probe(w, a4(2, 2)).ok()) << "on-link: no gateway";
    CommandResult ev = agent_->cli({"events", "--persona", "it-nh"});
    EXPECT_NE(ev.out.find("next-hop"), std::string::npos) << ev.out;

    // Routed through an allowed gateway: passes.
    apply(
        persona("it-nhok", "    route via " + a4(3, 2) + "\n    next-hops { " + a4(3, 2) + " }\n"));
    const Where ok = host_workload("nhok", "it-nhok");
    Probe q = udp_probe(ok, kServer4, kPort);
    EXPECT_TRUE(q.ok()) << q;

    // An interface-bound workload, recognised on the uplink by its mark.
    CommandResult r = agent_->cli({"bind", "--persona", "it-nh", "--ifname", ifname(1, H)});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const uint64_t before = next_hop_drops("it-nh");
    Probe vm = udp_probe(Where{"", ns_[W]->path()}, kServer4, kPort, 500);
    EXPECT_TRUE(vm.blocked()) << vm;
    EXPECT_GT(next_hop_drops("it-nh"), before);
}

}  // namespace
}  // namespace pbpf::it
