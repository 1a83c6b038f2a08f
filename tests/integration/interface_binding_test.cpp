// Interface-bound workloads with real traffic: a VM-like workload (the fixture's netns
// behind its veth) bound by the host side of the veth, enforced by tc both ways with
// connection tracking; the same through an interface inside a named netns (--netns);
// a container-like workload (own netns and cgroup) bound by cgroup; unbinding, persona
// removal and an agent restart.
#include <filesystem>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

class InterfaceBinding : public IntegrationTest {
  protected:
    size_t pinned_if_links() const {
        std::error_code ec;
        size_t n = 0;
        for (const auto& e :
             std::filesystem::directory_iterator(agent_->paths().bpffs_root + "/if", ec)) {
            (void)e;
            ++n;
        }
        return n;
    }
};

TEST_F(InterfaceBinding, VmBehindVethEnforcedBothWays) {
    const auto& v = *veth_;
    const Where host{};             // the host side: root netns, no managed cgroup
    const Where vm = from_netns();  // inside the "VM"
    EchoServer host_server(host, {{Proto::kUdp, v.host4, kPortA},
                                  {Proto::kUdp, v.host4, kPortB},
                                  {Proto::kTcp, v.host4, kPortA}});
    ASSERT_TRUE(host_server.ok()) << host_server.error();
    ASSERT_TRUE(tcp_probe(host, v.peer4, kPortB).ok()) << "control: VM unreachable";

    apply(*agent_, persona_pdl("it-vm", {"default ingress deny", "default egress deny",
                                         "allow ingress tcp port 8080 from " + v.host4,
                                         "allow egress udp port 9090 to " + v.host4}));
    CommandResult r = agent_->cli({"bind", "--persona", "it-vm", "--ifname", v.host_if()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("bound interface " + v.host_if()), std::string::npos) << r.out;
    // ingress, egress and the topology program ahead of ingress.
    EXPECT_EQ(pinned_if_links(), 3u);

    // Into the VM: tcp 8080 allowed (its replies leave the VM as tracked flow), the rest
    // denied by the ingress default.
    Probe p = tcp_probe(host, v.peer4, kPortA);
    EXPECT_TRUE(p.ok()) << "host -> vm tcp 8080: " << p;
    p = tcp_probe(host, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "host -> vm tcp 9090: " << p;
    p = ping_probe(host, v.peer4);
    EXPECT_TRUE(p.blocked()) << "host -> vm ping: " << p;
    // Out of the VM: udp 9090 allowed with its reply, the rest denied by the egress default.
    p = udp_probe(vm, v.host4, kPortB);
    EXPECT_TRUE(p.ok()) << "vm -> host udp 9090: " << p;
    p = udp_probe(vm, v.host4, kPortA);
    EXPECT_TRUE(p.blocked()) << "vm -> host udp 8080: " << p;
    p = tcp_probe(vm, v.host4, kPortA);
    EXPECT_TRUE(p.blocked()) << "vm -> host tcp 8080: " << p;

    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *agent_, "it-vm",
        [](const PersonaStats& st) {
            return st.ingress.allowed_packets > 0 && st.ingress.denied_packets > 0 &&
                   st.egress.allowed_packets > 0 && st.egress.denied_packets > 0;
        },
        &s));

    json flows;
    ASSERT_TRUE(cli_json(*agent_, {"conntrack", "ls", "--persona", "it-vm"}, &flows));
    bool tcp_in = false, udp_out = false;
    for (const auto& f : flows["flows"]) {
        EXPECT_TRUE(f.contains("ifindex")) << f.dump();
        EXPECT_NE(f["workload"].get<std::string>().find(v.host_if()), std::string::npos)
            << f.dump();
        if (f["proto"] == "tcp" && f["origin"] == "ingress" && f["local_port"] == kPortA)
            tcp_in = true;
        if (f["proto"] == "udp" && f["origin"] == "egress" && f["remote_port"] == kPortB)
            udp_out = true;
    }
    EXPECT_TRUE(tcp_in && udp_out) << flows.dump(2);

    json list;
    ASSERT_TRUE(cli_json(*agent_, {"bindings", "ls"}, &list));
    ASSERT_EQ(list.size(), 1u) << list.dump();
    EXPECT_EQ(list[0]["ifname"], v.host_if());
    EXPECT_EQ(list[0]["persona"], "it-vm");

    // Removal is refused while bound, naming the interface.
    r = agent_->cli({"persona", "rm", "it-vm"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(v.host_if()), std::string::npos) << r.describe();

    // Enforcement outlives the agent, and a restarted agent keeps the binding.
    agent_->stop(SIGKILL);
    p = tcp_probe(host, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "agent down: host -> vm tcp 9090: " << p;
    ASSERT_TRUE(agent_->start());
    p = tcp_probe(host, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "after restart: host -> vm tcp 9090: " << p;
    p = tcp_probe(host, v.peer4, kPortA);
    EXPECT_TRUE(p.ok()) << "after restart: host -> vm tcp 8080: " << p;
    EXPECT_EQ(pinned_if_links(), 3u);

    // Unbinding detaches: everything passes again.
    r = agent_->cli({"unbind", "--ifname", v.host_if()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(pinned_if_links(), 0u);
    p = tcp_probe(host, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "unbound: host -> vm tcp 9090: " << p;
    p = udp_probe(vm, v.host4, kPortA);
    EXPECT_TRUE(p.ok()) << "unbound: vm -> host udp 8080: " << p;
}

TEST_F(InterfaceBinding, InterfaceInANamedNetns) {
    const auto& v = *veth_;
    // The netns side of the veth faces the root netns: seen from it, the root netns is the
    // workload, and what arrives on it is that workload's egress.
    apply(*agent_, persona_pdl("it-nsif", {"default egress deny",
                                           "allow egress tcp port 8080 to " + v.peer4}));
    CommandResult r = agent_->cli(
        {"bind", "--persona", "it-nsif", "--ifname", v.peer_if(), "--netns", net_->name()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    Probe p = tcp_probe(Where{}, v.peer4, kPortA);
    EXPECT_TRUE(p.ok()) << "tcp 8080: " << p;
    p = tcp_probe(Where{}, v.peer4, kPortB);
    EXPECT_TRUE(p.blocked()) << "tcp 9090: " << p;

    // The same interface under another spelling of its netns is the same binding.
    r = agent_->cli(
        {"bind", "--persona", "it-nsif", "--ifname", v.peer_if(), "--netns", net_->path()});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("already bound"), std::string::npos) << r.describe();

    // Wrong names are clear errors.
    r = agent_->cli({"bind", "--persona", "it-nsif", "--ifname", "pbpf-nosuch0"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("no interface pbpf-nosuch0"), std::string::npos) << r.describe();
    r = agent_->cli({"bind", "--persona", "it-nsif", "--ifname", "lo"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("loopback"), std::string::npos) << r.describe();
    r = agent_->cli(
        {"bind", "--persona", "it-nsif", "--ifname", v.peer_if(), "--netns", "pbpf-nosuch-ns"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("pbpf-nosuch-ns"), std::string::npos) << r.describe();

    // Removing the persona with --force releases the interface.
    r = agent_->cli({"persona", "rm", "it-nsif", "--force"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(pinned_if_links(), 0u);
    p = tcp_probe(Where{}, v.peer4, kPortB);
    EXPECT_TRUE(p.ok()) << "released: tcp 9090: " << p;
}

TEST_F(InterfaceBinding, ContainerInItsOwnNetnsBoundByCgroup) {
    const auto& v = *veth_;
    EchoServer host_server(Where{},
                           {{Proto::kTcp, v.host4, kPortA}, {Proto::kTcp, v.host4, kPortB}});
    ASSERT_TRUE(host_server.ok()) << host_server.error();
    apply(*agent_, persona_pdl("it-ctr", {"default ingress deny", "default egress deny",
                                          "allow egress tcp port 8080 to " + v.host4}));
    bind("it-ctr", "ctr");
    // Its own cgroup and its own netns: the cgroup programs see its sockets wherever they
    // live.
    const Where ctr{in("ctr").cgroup, net_->path()};
    Probe p = tcp_probe(ctr, v.host4, kPortA);
    EXPECT_TRUE(p.ok()) << "container -> host tcp 8080: " << p;
    p = tcp_probe(ctr, v.host4, kPortB);
    EXPECT_TRUE(p.blocked()) << "container -> host tcp 9090: " << p;
    p = tcp_probe(from_netns(), v.host4, kPortB);
    EXPECT_TRUE(p.ok()) << "control: another process of that netns -> host tcp 9090: " << p;
}

}  // namespace
}  // namespace pbpf::it
