// Migration of an interface-bound, VM-like workload between two agents on one kernel, as two
// hosts: the workload keeps its netns, its address and its UDP socket; its veth is unplugged
// from host A's side and a new one plugged in on host B's side. `migrate export --ifname`
// on A, `migrate import --ifname` onto B's new interface: B binds it with the persona at
// A's version and tracks the flow re-keyed to it, so the flow's inbound traffic passes B's
// `default ingress deny`. A bad target, a failure in the middle and a kill -9 of B in the
// middle (undone at its next start) leave B as it was; a retried import changes nothing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;

constexpr uint16_t kWorkloadPort = 7171;  // the workload's UDP socket, in its netns
constexpr uint16_t kHostPort = 7172;      // the host-side peer of the tracked flow
constexpr uint16_t kOtherPort = 7173;     // a host-side port with no flow (denied)
constexpr uint16_t kTcpPort = 7174;       // the host's TCP server of the long-lived connection

// Runs fn on a thread of its own inside `netns` (a path; "" = the test's own): a socket
// keeps the netns it was made in, whatever thread uses it afterwards.
void in_netns_thread(const std::string& netns, std::string* err, const std::function<void()>& fn) {
    std::thread t([&] {
        if (!netns.empty()) {
            const int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
            const bool in = ns >= 0 && ::setns(ns, CLONE_NEWNET) == 0;
            if (ns >= 0) ::close(ns);
            if (!in) {
                *err = "enter netns " + netns + ": " + std::strerror(errno);
                return;
            }
        }
        fn();
    });
    t.join();
}

sockaddr_in ipv4(const std::string& addr, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, addr.c_str(), &a.sin_addr);
    return a;
}

// A socket of `type` made in `netns`, then bound (`connect` false) or connected to
// addr:port; -1 and *err on failure.
int socket_in(const std::string& netns, int type, const std::string& addr, uint16_t port,
              bool connect, std::string* err) {
    int fd = -1;
    in_netns_thread(netns, err, [&] {
        fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
        const sockaddr_in a = ipv4(addr, port);
        const auto* sa = reinterpret_cast<const sockaddr*>(&a);
        if (fd < 0 || (connect ? ::connect(fd, sa, sizeof a) : ::bind(fd, sa, sizeof a)) != 0) {
            *err = std::string(connect ? "connect to " : "bind ") + addr + ":" +
                   std::to_string(port) + ": " + std::strerror(errno);
            if (fd >= 0) ::close(fd);
            fd = -1;
        }
    });
    return fd;
}

struct UdpSocket {
    int fd = -1;
    std::string error;
    UdpSocket(const std::string& netns, const std::string& addr, uint16_t port)
        : fd(socket_in(netns, SOCK_DGRAM, addr, port, /*connect=*/false, &error)) {}
    ~UdpSocket() {
        if (fd >= 0) ::close(fd);
    }
    UdpSocket(const UdpSocket&) = delete;
    UdpSocket& operator=(const UdpSocket&) = delete;
    bool send_to(const std::string& addr, uint16_t port, const std::string& text) const {
        const sockaddr_in a = ipv4(addr, port);
        return ::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<const sockaddr*>(&a),
                        sizeof a) == static_cast<ssize_t>(text.size());
    }
    // The next datagram within the timeout ("" when none came).
    std::string receive(std::chrono::milliseconds timeout = 1000ms) const {
        timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[256];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    }
};

// What arrives on a stream socket within the timeout ("" when nothing did).
std::string read_some(int fd, std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

bool write_all(int fd, const std::string& text) {
    return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// A veth pair plugged into an existing netns with given addresses (the workload's own: it
// keeps them across the move), host side in the root netns. Removed in the destructor.
class PluggedVeth {
  public:
    PluggedVeth(const Netns& ns, const std::string& host4, const std::string& peer4) {
        char base[IFNAMSIZ];
        std::snprintf(base, sizeof base, "pbim%x-%d", static_cast<unsigned>(::getpid()),
                      next_counter() % 1000);
        host_if_ = std::string(base) + "h";
        const std::string peer_if = std::string(base) + "p";
        for (const auto& c : std::vector<std::vector<std::string>>{
                 {"ip", "link", "add", host_if_, "type", "veth", "peer", "name", peer_if, "netns",
                  ns.name()},
                 // IPv4 only: no IPv6 autoconfiguration or MLD traffic of its own that the
                 // bindings would track between two snapshots of B.
                 {"sysctl", "-qw", "net.ipv6.conf." + host_if_ + ".disable_ipv6=1"},
                 {"ip", "addr", "add", host4 + "/29", "dev", host_if_},
                 {"ip", "link", "set", host_if_, "up"}}) {
            CommandResult r = run_command(c, 10s);
            if (r.exit_code != 0) {
                error_ = c[1] + " " + c[2] + ": " + r.describe();
                return;
            }
        }
        for (const auto& c : std::vector<std::vector<std::string>>{
                 {"sysctl", "-qw", "net.ipv6.conf." + peer_if + ".disable_ipv6=1"},
                 {"ip", "addr", "add", peer4 + "/29", "dev", peer_if},
                 {"ip", "link", "set", peer_if, "up"}}) {
            CommandResult r = ns.exec(c);
            if (r.exit_code != 0) {
                error_ = "in netns " + ns.name() + ": " + c[1] + " " + c[2] + ": " + r.describe();
                return;
            }
        }
        if (!wait_until(
                [&] {
                    return read_file("/sys/class/net/" + host_if_ + "/operstate").rfind("up", 0) ==
                           0;
                },
                5s)) {
            error_ = "veth " + host_if_ + " did not come up";
            return;
        }
        ok_ = true;
    }
    ~PluggedVeth() {
        if (path_exists("/sys/class/net/" + host_if_))
            run_command({"ip", "link", "del", host_if_}, 15s);
    }
    PluggedVeth(const PluggedVeth&) = delete;
    PluggedVeth& operator=(const PluggedVeth&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    const std::string& host_if() const { return host_if_; }
    uint32_t ifindex() const { return if_nametoindex(host_if_.c_str()); }

  private:
    std::string host_if_;
    bool ok_ = false;
    std::string error_;
};

class MigrationIface : public IntegrationTest {
  protected:
    // Inbound traffic only as replies to the workload's own flows; out, UDP to the host's
    // kHostPort only. B at CH is accepted.
    std::string pdl(const std::string& description) const {
        return "persona it-migif {\n  description \"" + description +
               "\"\n  security {\n    default ingress deny\n    default egress deny\n"
               "    allow egress udp port " +
               std::to_string(kHostPort) + " to " + veth_->host4 + "\n    allow egress tcp port " +
               std::to_string(kTcpPort) + " to " + veth_->host4 +
               "\n  }\n  sovereignty {\n    allow countries { CH }\n    unknown allow\n  }\n}\n";
    }

    void start_b(const std::string& failpoint = "") {
        if (b_->running()) b_->stop();
        b_->extra_args = {"--config", scratch_.write("b.toml", "[geo]\nhost_country = \"CH\"\n")};
        b_->extra_env.clear();
        if (!failpoint.empty()) b_->extra_env.push_back("PERSONABPF_FAILPOINT=" + failpoint);
        ASSERT_TRUE(b_->start());
    }

    // What an import may change on B.
    json snapshot() { return migration_snapshot(*b_, "it-migif"); }

    Agent* b_ = nullptr;
};

TEST_F(MigrationIface, VmMovesWithItsFlowToAnotherHostsInterface) {
    const std::string host4 = veth_->host4, peer4 = veth_->peer4;
    const std::string a_if = veth_->host_if();
    // A: version 2 of the persona (B, which has none, must create it as 2), bound by the
    // host side of the VM's veth.
    apply(*agent_, pdl("first"));
    apply(*agent_, pdl("second"));
    CommandResult r = agent_->cli({"bind", "--persona", "it-migif", "--ifname", a_if});
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    UdpSocket vm(net_->path(), peer4, kWorkloadPort);  // inside the VM
    ASSERT_GE(vm.fd, 0) << vm.error;
    UdpSocket host(std::string(), host4, kHostPort);
    ASSERT_GE(host.fd, 0) << host.error;
    UdpSocket other(std::string(), host4, kOtherPort);
    ASSERT_GE(other.fd, 0) << other.error;

    // On A: the VM's datagram out creates the flow, the host's reply comes in through it;
    // a datagram from a port the VM never talked to is dropped by `default ingress deny`.
    ASSERT_TRUE(vm.send_to(host4, kHostPort, "hello"));
    ASSERT_EQ(host.receive(), "hello") << "the VM's datagram out (allow egress udp)";
    ASSERT_TRUE(host.send_to(peer4, kWorkloadPort, "reply-a"));
    ASSERT_EQ(vm.receive(), "reply-a") << "the reply on A (tracked flow)";
    ASSERT_TRUE(other.send_to(peer4, kWorkloadPort, "stranger-a"));
    EXPECT_EQ(vm.receive(300ms), "") << "A: no flow from kOtherPort, default ingress deny";

    // Export from A.
    const std::string file = scratch_.path() + "/vm.bundle";
    r = agent_->cli({"migrate", "export", "--ifname", a_if, "-o", file});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("exported interface " + a_if), std::string::npos) << r.out;
    const json bundle = json::parse(read_file(file));
    EXPECT_EQ(bundle["binding"], (json{{"kind", "interface"}, {"ifname", a_if}, {"netns", ""}}));
    EXPECT_EQ(bundle["persona"]["version"], 2);
    const json& ct = bundle["conntrack"];
    auto col = [&](const char* name) {
        const auto& cols = ct["columns"];
        return static_cast<size_t>(std::find(cols.begin(), cols.end(), name) - cols.begin());
    };
    bool exported = false;
    for (const auto& f : ct["rows"])
        exported =
            exported || (f[col("proto")] == 17 && f[col("local")] == peer4 &&
                         f[col("local_port")] == kWorkloadPort && f[col("remote")] == host4 &&
                         f[col("remote_port")] == kHostPort && f[col("origin")] == "egress");
    ASSERT_TRUE(exported) << ct.dump(2);
    EXPECT_GT(bundle["counters"]["egress"]["passed_packets"].get<uint64_t>(), 0u)
        << bundle["counters"].dump(2);
    // An interface nobody bound has nothing to export.
    r = agent_->cli({"migrate", "export", "--ifname", "lo"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("interface lo has no binding"), std::string::npos) << r.describe();

    // The move: A releases the VM and its veth is unplugged; B's side gets a new veth into
    // the same netns with the same addresses. The VM's socket stays as it is.
    r = agent_->cli({"unbind", "--ifname", a_if});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    veth_.reset();
    PluggedVeth b_veth(*net_, host4, peer4);
    ASSERT_TRUE(b_veth.ok()) << b_veth.error();
    const std::string b_if = b_veth.host_if();

    // B: another "host" (its own subtree, pins and state), the new interface bound to one
    // of its own personas (allow all): an undone import restores that binding.
    CgroupTree& tree_b = add_cgroup_tree();
    ASSERT_TRUE(tree_b.ok()) << tree_b.error();
    b_ = &add_agent(tree_b.path());
    start_b();
    apply(*b_, persona_pdl("it-other", {"default ingress allow", "default egress allow"}));
    r = b_->cli({"bind", "--persona", "it-other", "--ifname", b_if});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const json before = snapshot();
    EXPECT_NE(before["history_exit"], 0) << "B has no version of it-migif yet";

    {
        SCOPED_TRACE("an unknown target interface is refused, naming it");
        r = b_->cli({"migrate", "import", file, "--ifname", "pbpf-nosuch0"});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("pbpf-nosuch0"), std::string::npos) << r.describe();
        EXPECT_NE(r.err.find("no interface"), std::string::npos) << r.describe();
        EXPECT_EQ(snapshot(), before);
        // The bundle's own interface (the default target) is gone with A's veth.
        r = b_->cli({"migrate", "import", file});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find(a_if), std::string::npos) << r.describe();
        EXPECT_EQ(snapshot(), before);
    }
    {
        SCOPED_TRACE("an unknown netns is refused, naming it");
        r = b_->cli({"migrate", "import", file, "--ifname", b_if, "--netns", "pbpf-nosuch-ns"});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("pbpf-nosuch-ns"), std::string::npos) << r.describe();
        EXPECT_EQ(snapshot(), before);
    }
    {
        SCOPED_TRACE("an interface workload's bundle does not go into a cgroup");
        tree_b.create("w");
        r = b_->cli({"migrate", "import", file, "--cgroup", tree_b.rel("w")});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("import it onto an interface"), std::string::npos) << r.describe();
        EXPECT_EQ(snapshot(), before);
    }
    {
        SCOPED_TRACE("a failure after the first flow is written is undone in full");
        start_b("migrate-import-flows");
        r = b_->cli({"migrate", "import", file, "--ifname", b_if});
        EXPECT_NE(r.exit_code, 0) << r.describe();
        EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.describe();
        EXPECT_EQ(snapshot(), before);
    }
    // kill -9 of B once the interface is bound and once a flow is written: undone at start.
    for (const char* point : {"migrate-import-crash-binding", "migrate-import-crash-flows"}) {
        kill_during_import(
            *b_, [&](const std::string& fp) { start_b(fp); },
            {"migrate", "import", file, "--ifname", b_if}, point);
        EXPECT_EQ(snapshot(), before) << "after kill -9 at " << point << " and a restart";
    }

    json res;
    ASSERT_TRUE(cli_json(*b_, {"migrate", "import", file, "--ifname", b_if}, &res));
    EXPECT_EQ(res["version"], 2) << res.dump();
    EXPECT_EQ(res["persona_created"], true) << res.dump();
    EXPECT_EQ(res["replaced"], "it-other") << res.dump();
    EXPECT_EQ(res["ifname"], b_if) << res.dump();
    EXPECT_EQ(res["ifindex"], b_veth.ifindex()) << res.dump();

    auto check_b = [&](const char* when) {
        SCOPED_TRACE(when);
        json personas, bindings, flows, history;
        ASSERT_TRUE(cli_json(*b_, {"persona", "ls"}, &personas));
        json mig;
        for (const auto& p : personas)
            if (p["name"] == "it-migif") mig = p;
        ASSERT_TRUE(mig.is_object()) << personas.dump(2);
        EXPECT_EQ(mig["version"], 2) << "the source's version number";
        ASSERT_TRUE(cli_json(*b_, {"persona", "history", "it-migif"}, &history));
        EXPECT_EQ(history.size(), 1u) << history.dump(2);
        ASSERT_TRUE(cli_json(*b_, {"bindings", "ls"}, &bindings));
        ASSERT_EQ(bindings.size(), 1u) << bindings.dump(2);
        EXPECT_EQ(bindings[0]["ifname"], b_if);
        EXPECT_EQ(bindings[0]["persona"], "it-migif");
        ASSERT_TRUE(cli_json(*b_, {"conntrack", "ls"}, &flows));
        EXPECT_EQ(flows["flows"].size(), ct["rows"].size()) << flows.dump(2);
        bool moved = false;
        for (const auto& f : flows["flows"]) {
            EXPECT_EQ(f["persona"], "it-migif") << f.dump();
            EXPECT_EQ(f["ifindex"], b_veth.ifindex()) << "re-keyed to B's interface: " << f.dump();
            EXPECT_NE(f["workload"].get<std::string>().find(b_if), std::string::npos) << f.dump();
            moved = moved || (f["proto"] == "udp" && f["local"] == peer4 &&
                              f["local_port"] == kWorkloadPort && f["remote"] == host4 &&
                              f["remote_port"] == kHostPort && f["origin"] == "egress");
        }
        EXPECT_TRUE(moved) << flows.dump(2);
    };
    check_b("after the import");

    // On B: the flow's inbound datagram passes B's `default ingress deny` (the flow is
    // tracked there), one from a port without a flow does not.
    ASSERT_TRUE(host.send_to(peer4, kWorkloadPort, "reply-b"));
    EXPECT_EQ(vm.receive(), "reply-b") << "B: the imported flow lets the host's datagram in";
    ASSERT_TRUE(other.send_to(peer4, kWorkloadPort, "stranger-b"));
    EXPECT_EQ(vm.receive(300ms), "") << "B: no flow from kOtherPort, default ingress deny";
    PersonaStats s;
    EXPECT_TRUE(wait_stats(
        *b_, "it-migif",
        [](const PersonaStats& st) {
            return st.ingress.allowed_packets > 0 && st.ingress.denied_packets > 0;
        },
        &s))
        << "B enforces on its interface: ingress " << s.ingress;

    // A retried import of the same bundle: the same result, no duplicates.
    ASSERT_TRUE(cli_json(*b_, {"migrate", "import", file, "--ifname", b_if}, &res));
    EXPECT_EQ(res["persona_created"], false) << res.dump();
    EXPECT_TRUE(res["replaced"].is_null()) << res.dump();
    check_b("after a retried import");

    // B's veth goes with this test's body, before the agents' teardown: unbind it first.
    r = b_->cli({"unbind", "--ifname", b_if});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// Issue 9, item 3, for a VM-like workload: a long-lived TCP connection from the VM to the
// host survives the unplug from A and the re-plug on B, the VM's TCP stack untouched: with
// the conntrack import the host's data reaches the VM through B's `default ingress deny`;
// without it (the same bundle, its flows removed) B drops it.
class MigrationIfaceTcp : public MigrationIface, public ::testing::WithParamInterface<bool> {};

TEST_P(MigrationIfaceTcp, ConnectionAcrossTheReplug) {
    const bool with_flows = GetParam();
    const std::string host4 = veth_->host4, peer4 = veth_->peer4;
    const std::string a_if = veth_->host_if();
    apply(*agent_, pdl("tcp"));
    CommandResult r = agent_->cli({"bind", "--persona", "it-migif", "--ifname", a_if});
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    // The host's server (root netns, on the host side's address) and the VM's client.
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    struct Closer {
        std::vector<int> fds;
        ~Closer() {
            for (int fd : fds)
                if (fd >= 0) ::close(fd);
        }
    } closer{{listener}};
    const int one = 1;
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in a = ipv4(host4, kTcpPort);
    ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&a), sizeof a), 0)
        << std::strerror(errno);
    ASSERT_EQ(::listen(listener, 1), 0);
    std::string err;
    const int vm = socket_in(net_->path(), SOCK_STREAM, host4, kTcpPort, /*connect=*/true, &err);
    ASSERT_GE(vm, 0) << err;
    closer.fds.push_back(vm);
    const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(server, 0) << std::strerror(errno);
    closer.fds.push_back(server);

    // On A, both ways: the host's data comes in only as part of the tracked connection.
    ASSERT_TRUE(write_all(vm, "ping-a"));
    ASSERT_EQ(read_some(server, 2000ms), "ping-a");
    ASSERT_TRUE(write_all(server, "pong-a"));
    ASSERT_EQ(read_some(vm, 2000ms), "pong-a") << "A: the connection is tracked";

    // Export from A (without its flows for the second case).
    const std::string file = scratch_.path() + "/vm-tcp.bundle";
    r = agent_->cli({"migrate", "export", "--ifname", a_if, "-o", file});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json bundle = json::parse(read_file(file));
    const json& ct = bundle["conntrack"];
    auto col = [&](const char* name) {
        const auto& cols = ct["columns"];
        return static_cast<size_t>(std::find(cols.begin(), cols.end(), name) - cols.begin());
    };
    bool exported = false;
    for (const auto& f : ct["rows"])
        exported = exported || (f[col("proto")] == 6 && f[col("remote_port")] == kTcpPort &&
                                f[col("state")] == "established");
    ASSERT_TRUE(exported) << ct.dump(2);
    std::string import_file = file;
    if (!with_flows) {
        bundle["conntrack"]["rows"] = json::array();
        import_file = scratch_.write("vm-tcp-without-flows.bundle", bundle.dump());
    }

    // The move: A lets go, the VM's veth is unplugged, a new one is plugged in on B.
    r = agent_->cli({"unbind", "--ifname", a_if});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    veth_.reset();
    PluggedVeth b_veth(*net_, host4, peer4);
    ASSERT_TRUE(b_veth.ok()) << b_veth.error();
    const std::string b_if = b_veth.host_if();
    CgroupTree& tree_b = add_cgroup_tree();
    ASSERT_TRUE(tree_b.ok()) << tree_b.error();
    b_ = &add_agent(tree_b.path());
    start_b();
    json res;
    ASSERT_TRUE(cli_json(*b_, {"migrate", "import", import_file, "--ifname", b_if}, &res));
    EXPECT_EQ(res["flows"], with_flows ? ct["rows"].size() : 0u) << res.dump();

    PersonaStats st;
    if (with_flows) {
        // The connection keeps flowing under B's enforcement, both ways.
        ASSERT_TRUE(write_all(server, "pong-b"));
        EXPECT_EQ(read_some(vm, 5000ms), "pong-b")
            << "B: the imported flow lets the host's data in";
        ASSERT_TRUE(write_all(vm, "ping-b"));
        EXPECT_EQ(read_some(server, 5000ms), "ping-b");
        EXPECT_TRUE(wait_stats(
            *b_, "it-migif",
            [](const PersonaStats& s) {
                return s.ingress.allowed_packets > 0 && s.egress.allowed_packets > 0;
            },
            &st))
            << "B counts the connection: ingress " << st.ingress << ", egress " << st.egress;
        EXPECT_EQ(st.ingress.denied_packets, 0u) << st.ingress;
    } else {
        // The host's data is dropped by B's `default ingress deny`: the VM gets nothing.
        ASSERT_TRUE(write_all(server, "pong-b"));
        EXPECT_TRUE(wait_stats(
            *b_, "it-migif", [](const PersonaStats& s) { return s.ingress.denied_packets > 0; },
            &st))
            << "B drops the host's data: ingress " << st.ingress;
        EXPECT_EQ(read_some(vm, 2000ms), "") << "without the conntrack import the move breaks it";
    }
    r = b_->cli({"unbind", "--ifname", b_if});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Import, MigrationIfaceTcp, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                             return i.param ? std::string("WithConntrack")
                                            : std::string("WithoutConntrack");
                         });

}  // namespace
}  // namespace pbpf::it
