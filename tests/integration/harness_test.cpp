// The harness on its own, without an agent: probes reach the netns over the veth, report
// refusals and drops distinctly, and every object is gone after teardown.
#include <unistd.h>

#include "tests/common/kernel_required.h"
#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

namespace pbpf::it {
namespace {

class Harness : public ::testing::Test {
  protected:
    void SetUp() override {
        PBPF_REQUIRE_ROOT();
        if (cgroup2_mount().empty()) PBPF_KERNEL_UNAVAILABLE("no cgroup2 mount");
    }
};

TEST_F(Harness, ProbesReachTheNetnsFromACgroup) {
    Netns ns;
    ASSERT_TRUE(ns.ok()) << ns.error();
    Veth v(ns);
    ASSERT_TRUE(v.ok()) << v.error();
    EchoServer server(Where{"", ns.path()}, EchoServer::any_addr({8080}));
    ASSERT_TRUE(server.ok()) << server.error();
    CgroupTree tree;
    ASSERT_TRUE(tree.ok()) << tree.error();
    const Where w{tree.create("w"), ""};

    for (const std::string& addr : {v.peer4, v.alt4, v.peer6, v.alt6}) {
        Probe p = tcp_probe(w, addr, 8080);
        EXPECT_TRUE(p.ok()) << "tcp " << addr << ": " << p;
        p = udp_probe(w, addr, 8080);
        EXPECT_TRUE(p.ok()) << "udp " << addr << ": " << p;
        p = ping_probe(w, addr);
        EXPECT_TRUE(p.ok()) << "ping " << addr << ": " << p;
    }
    Probe closed = tcp_probe(w, v.peer4, 8081);
    EXPECT_EQ(closed.outcome, Outcome::kRefused) << closed;
    // An address on the link that nobody has: no answer, reported as a timeout.
    Probe nobody = tcp_probe(w, v.unused4, 8080, 300);
    EXPECT_TRUE(nobody.blocked()) << nobody;

    // A listener in the cgroup on the host side, reached from inside the netns.
    EchoServer listener(
        w,
        {{Proto::kTcp, v.host4, 8080}, {Proto::kTcp, v.host6, 8080}, {Proto::kUdp, v.host4, 8080}});
    ASSERT_TRUE(listener.ok()) << listener.error();
    Probe in = tcp_probe(Where{"", ns.path()}, v.host4, 8080, 1000, v.alt4);
    EXPECT_TRUE(in.ok()) << in;
    in = tcp_probe(Where{"", ns.path()}, v.host6, 8080, 1000, v.peer6);
    EXPECT_TRUE(in.ok()) << in;
    in = udp_probe(Where{"", ns.path()}, v.host4, 8080);
    EXPECT_TRUE(in.ok()) << in;

    // The workload really ran in the cgroup.
    Sleeper sleeper(w);
    ASSERT_TRUE(sleeper.ok()) << sleeper.error();
    EXPECT_NE(read_file(w.cgroup + "/cgroup.procs").find(std::to_string(sleeper.pid())),
              std::string::npos);
}

TEST_F(Harness, TeardownRemovesEverything) {
    std::string ns_path, host_if, cg_path;
    pid_t sleeper_pid = -1;
    {
        Netns ns;
        ASSERT_TRUE(ns.ok()) << ns.error();
        Veth v(ns);
        ASSERT_TRUE(v.ok()) << v.error();
        CgroupTree tree;
        ASSERT_TRUE(tree.ok()) << tree.error();
        // A process left behind in a nested cgroup must not keep the tree alive.
        Sleeper leak(Where{tree.create("x/y"), ""});
        ASSERT_TRUE(leak.ok()) << leak.error();
        // Forgotten by its owner: the cgroup teardown has to kill and reap it.
        sleeper_pid = leak.release();
        ns_path = ns.path();
        host_if = v.host_if();
        cg_path = tree.path();
    }
    EXPECT_FALSE(path_exists(ns_path));
    EXPECT_FALSE(path_exists("/sys/class/net/" + host_if));
    EXPECT_FALSE(path_exists(cg_path));
    EXPECT_NE(::kill(sleeper_pid, 0), 0) << "the leaked sleeper still runs";
}

TEST_F(Harness, UniqueNamesAndAddresses) {
    EXPECT_NE(unique_name(), unique_name());
    Netns a, b;
    ASSERT_TRUE(a.ok() && b.ok());
    Veth va(a), vb(b);
    ASSERT_TRUE(va.ok()) << va.error();
    ASSERT_TRUE(vb.ok()) << vb.error();
    EXPECT_NE(va.host4, vb.host4);
    EXPECT_NE(va.host6, vb.host6);
    EXPECT_NE(va.host_if(), vb.host_if());
    EXPECT_EQ(unique_name().rfind("pbpf-it-" + std::to_string(::getpid()) + "-", 0), 0u);
}

}  // namespace
}  // namespace pbpf::it
