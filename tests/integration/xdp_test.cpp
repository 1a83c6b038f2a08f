// The XDP prefilter on an "uplink": a veth end in the root netns (created by the test, the
// agent attaches there) whose peer in the test's netns plays the internet, with a denied
// source address (.2 / ::2) and an allowed one (.3 / ::3) on it. Traffic goes from the
// netns to the root-side address only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/common/kernel_required.h"
#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

namespace pbpf::it {
namespace {

constexpr uint16_t kPort = 7070;

bool parse_inet(const std::string& addr, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
    *ss = {};
    auto* a4 = reinterpret_cast<sockaddr_in*>(ss);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(ss);
    if (::inet_pton(AF_INET, addr.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof *a4;
        return true;
    }
    if (::inet_pton(AF_INET6, addr.c_str(), &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof *a6;
        return true;
    }
    return false;
}

// One UDP datagram from `source` (inside netns `ns_path`) to dst:port; true when the echo
// came back. Runs in its own thread, which alone enters the netns.
bool udp_echo(const std::string& ns_path, const std::string& source, const std::string& dst,
              uint16_t port, int timeout_ms = 800) {
    bool ok = false;
    std::thread t([&] {
        int nsfd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd < 0) return;
        int rc = ::setns(nsfd, CLONE_NEWNET);
        ::close(nsfd);
        if (rc != 0) return;
        sockaddr_storage src{}, to{};
        socklen_t src_len = 0, to_len = 0;
        if (!parse_inet(source, 0, &src, &src_len) || !parse_inet(dst, port, &to, &to_len)) return;
        int fd = ::socket(src.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return;
        const char msg[] = "xdp-probe";
        char buf[64];
        if (::bind(fd, reinterpret_cast<sockaddr*>(&src), src_len) == 0 &&
            ::sendto(fd, msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&to), to_len) > 0) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, timeout_ms) == 1 && ::recv(fd, buf, sizeof buf, 0) > 0) ok = true;
        }
        ::close(fd);
    });
    t.join();
    return ok;
}

class XdpPrefilterTest : public ::testing::Test {
  protected:
    void SetUp() override {
        PBPF_REQUIRE_ROOT();
        if (cgroup2_mount().empty()) PBPF_KERNEL_UNAVAILABLE("no cgroup2 mount");
        if (bpffs_mount().empty()) PBPF_KERNEL_UNAVAILABLE("no bpffs mount");
        if (!path_exists("/sys/kernel/btf/vmlinux")) PBPF_KERNEL_UNAVAILABLE("no kernel BTF");
        if (run_command({"ip", "-V"}, 5s).exit_code != 0) PBPF_KERNEL_UNAVAILABLE("no ip(8)");
        if (run_command({"ping", "-V"}, 5s).exit_code != 0) PBPF_KERNEL_UNAVAILABLE("no ping(8)");
        ASSERT_EQ(::access(agent_binary().c_str(), X_OK), 0) << "missing " << agent_binary();
        ASSERT_EQ(::access(cli_binary().c_str(), X_OK), 0) << "missing " << cli_binary();

        net_ = std::make_unique<Netns>();
        ASSERT_TRUE(net_->ok()) << net_->error();
        veth_ = std::make_unique<Veth>(*net_);
        ASSERT_TRUE(veth_->ok()) << veth_->error();
        // The "server" is the root netns end of the uplink: echo on its own addresses only.
        server_ = std::make_unique<EchoServer>(
            Where{"", ""}, std::vector<Endpoint>{{Proto::kTcp, veth_->host4, kPort},
                                                 {Proto::kUdp, veth_->host4, kPort},
                                                 {Proto::kTcp, veth_->host6, kPort},
                                                 {Proto::kUdp, veth_->host6, kPort}});
        ASSERT_TRUE(server_->ok()) << server_->error();
        // Neighbour discovery from a denied IPv6 source is dropped too (as it should be),
        // and would leave the netns without the uplink's MAC for the allowed source's
        // next packets: pin the neighbour entry.
        std::string mac = read_file("/sys/class/net/" + veth_->host_if() + "/address");
        while (!mac.empty() && mac.back() == '\n') mac.pop_back();
        CommandResult neigh = net_->exec({"ip", "-6", "neigh", "replace", veth_->host6, "lladdr",
                                          mac, "dev", veth_->peer_if(), "nud", "permanent"});
        ASSERT_EQ(neigh.exit_code, 0) << neigh.describe();
        cg_ = std::make_unique<CgroupTree>();
        ASSERT_TRUE(cg_->ok()) << cg_->error();
        agent_ = std::make_unique<Agent>(cg_->path());
    }

    void TearDown() override {
        if (HasFailure() && agent_)
            std::cerr << "----- agent log -----\n" << agent_->log() << "----- end -----\n";
        if (agent_ && !IsSkipped()) {
            std::string e = agent_->teardown();
            EXPECT_TRUE(e.empty()) << e << "\nlog:\n" << agent_->log();
            // --uninstall detaches the prefilter from the uplink.
            if (veth_) {
                EXPECT_FALSE(xdp_attached()) << "XDP left on " << veth_->host_if();
            }
        }
        agent_.reset();
        cg_.reset();
        server_.reset();
        veth_.reset();
        net_.reset();
    }

    // Writes the agent's config and points every later start at it.
    void configure(const std::string& xdp_table) {
        std::string path = scratch_.write("agent.toml", "[xdp]\n" + xdp_table);
        agent_->extra_args = {"--config", path};
    }
    std::string uplink_list() const { return "interfaces = [\"" + veth_->host_if() + "\"]\n"; }

    bool ping_from(const std::string& source, const std::string& dst) const {
        return net_->exec({"ping", "-n", "-q", "-c", "1", "-W", "1", "-I", source, dst})
                   .exit_code == 0;
    }
    bool tcp_from(const std::string& source) const {
        return tcp_probe(Where{"", net_->path()}, veth_->host4, kPort, 1000, source).ok();
    }
    bool udp_from(const std::string& source, const std::string& dst) const {
        return udp_echo(net_->path(), source, dst, kPort);
    }

    bool xdp_attached() const {
        CommandResult r = run_command({"ip", "-d", "link", "show", "dev", veth_->host_if()}, 5s);
        return r.out.find("prog/xdp") != std::string::npos;
    }

    nlohmann::json xdp_ls() {
        CommandResult r = agent_->cli_json({"xdp", "ls"});
        EXPECT_EQ(r.exit_code, 0) << r.describe();
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << r.out;
        return j;
    }
    // The uplink's entry of `xdp ls -j` (null when absent).
    nlohmann::json uplink(const nlohmann::json& ls) const {
        for (const auto& i : ls.value("interfaces", nlohmann::json::array()))
            if (i.value("name", "") == veth_->host_if()) return i;
        return nullptr;
    }
    std::string origin_of(const nlohmann::json& ls, const std::string& cidr) const {
        for (const auto& d : ls.value("deny", nlohmann::json::array()))
            if (d.value("cidr", "") == cidr) return d.value("origin", "");
        return "";
    }
    uint64_t dropped() {
        auto i = uplink(xdp_ls());
        return i.is_object() ? i.value("dropped_packets", uint64_t{0}) : 0;
    }
    uint64_t passed() {
        auto i = uplink(xdp_ls());
        return i.is_object() ? i.value("passed_packets", uint64_t{0}) : 0;
    }

    // peer4/peer6 denied, alt4/alt6 allowed: ICMP, UDP, TCP and ICMPv6.
    void expect_denied_and_allowed(const std::string& when) {
        EXPECT_FALSE(ping_from(veth_->peer4, veth_->host4)) << when << ": ping from denied .2";
        EXPECT_TRUE(ping_from(veth_->alt4, veth_->host4)) << when << ": ping from allowed .3";
        EXPECT_FALSE(udp_from(veth_->peer4, veth_->host4)) << when << ": UDP from denied .2";
        EXPECT_TRUE(udp_from(veth_->alt4, veth_->host4)) << when << ": UDP from allowed .3";
        EXPECT_FALSE(tcp_from(veth_->peer4)) << when << ": TCP from denied .2";
        EXPECT_TRUE(tcp_from(veth_->alt4)) << when << ": TCP from allowed .3";
        EXPECT_FALSE(ping_from(veth_->peer6, veth_->host6)) << when << ": ping6 from denied ::2";
        EXPECT_TRUE(ping_from(veth_->alt6, veth_->host6)) << when << ": ping6 from allowed ::3";
    }

    ScratchDir scratch_;
    std::unique_ptr<Netns> net_;
    std::unique_ptr<Veth> veth_;
    std::unique_ptr<EchoServer> server_;
    std::unique_ptr<CgroupTree> cg_;
    std::unique_ptr<Agent> agent_;
};

TEST_F(XdpPrefilterTest, GenericModeDropsDeniedSourcesAndCountsThem) {
    configure(uplink_list() + "mode = \"generic\"\ndeny = [\"" + veth_->peer4 + "/32\", \"" +
              veth_->peer6 + "/128\"]\n");
    ASSERT_TRUE(agent_->start());
    ASSERT_TRUE(xdp_attached());
    auto ls = xdp_ls();
    auto up = uplink(ls);
    ASSERT_TRUE(up.is_object()) << ls.dump(2);
    EXPECT_EQ(up.value("mode", ""), "generic") << ls.dump(2);
    EXPECT_EQ(ls.value("mode", ""), "generic");
    EXPECT_EQ(origin_of(ls, veth_->peer4 + "/32"), "config") << ls.dump(2);
    EXPECT_EQ(origin_of(ls, veth_->peer6 + "/128"), "config") << ls.dump(2);
    EXPECT_TRUE(path_exists(agent_->paths().bpffs_root + "/xdp/link_" + veth_->host_if()));

    const uint64_t d0 = dropped(), p0 = passed();
    expect_denied_and_allowed("config deny list");
    // Exactly what the denied sources sent (ping -c1, one UDP datagram, one TCP connect
    // retried for a second at most, one ping6) was dropped.
    const uint64_t d1 = dropped(), p1 = passed();
    EXPECT_GE(d1 - d0, 4u);
    EXPECT_LE(d1 - d0, 8u);
    EXPECT_GE(p1 - p0, 4u);

    // The human table names the uplink, its mode and the deny list with origins.
    CommandResult human = agent_->cli({"xdp", "ls"});
    EXPECT_EQ(human.exit_code, 0) << human.describe();
    EXPECT_NE(human.out.find(veth_->host_if()), std::string::npos) << human.out;
    EXPECT_NE(human.out.find("generic"), std::string::npos) << human.out;
    EXPECT_NE(human.out.find(veth_->peer4 + "/32"), std::string::npos) << human.out;
}

TEST_F(XdpPrefilterTest, ApiEntriesTakeEffectAndGoAway) {
    configure(uplink_list() + "mode = \"generic\"\nmax_entries = 4\ndeny = [\"" + veth_->peer4 +
              "/32\"]\n");
    ASSERT_TRUE(agent_->start());
    ASSERT_TRUE(ping_from(veth_->alt4, veth_->host4));

    CommandResult add = agent_->cli({"xdp", "deny", "add", veth_->alt4 + "/32"});
    ASSERT_EQ(add.exit_code, 0) << add.describe();
    EXPECT_NE(add.out.find("denied " + veth_->alt4 + "/32"), std::string::npos) << add.out;
    EXPECT_EQ(origin_of(xdp_ls(), veth_->alt4 + "/32"), "api");
    uint64_t d0 = dropped();
    EXPECT_FALSE(ping_from(veth_->alt4, veth_->host4)) << "API entry not enforced";
    EXPECT_FALSE(udp_from(veth_->alt4, veth_->host4));
    EXPECT_GE(dropped() - d0, 2u);

    // Adding it again is not an error; the config's entry keeps its origin.
    CommandResult again =
        agent_->cli_json({"xdp", "deny", "add", veth_->alt4 + "/32", veth_->peer4 + "/32"});
    ASSERT_EQ(again.exit_code, 0) << again.describe();
    auto aj = nlohmann::json::parse(again.out);
    EXPECT_EQ(aj["added"].size(), 0u) << aj.dump();
    EXPECT_EQ(aj["present"].size(), 2u) << aj.dump();
    EXPECT_EQ(origin_of(xdp_ls(), veth_->peer4 + "/32"), "config");

    // All or nothing: one bad CIDR and nothing is added.
    CommandResult bad = agent_->cli({"xdp", "deny", "add", "192.0.2.0/24", "192.0.2.1/24"});
    EXPECT_EQ(bad.exit_code, 1) << bad.describe();
    EXPECT_NE(bad.err.find("host bits set"), std::string::npos) << bad.err;
    EXPECT_EQ(origin_of(xdp_ls(), "192.0.2.0/24"), "");
    CommandResult junk = agent_->cli({"xdp", "deny", "add", "not-an-address"});
    EXPECT_EQ(junk.exit_code, 1) << junk.describe();
    EXPECT_NE(junk.err.find("invalid CIDR 'not-an-address'"), std::string::npos) << junk.err;

    // max_entries 4: 2 present + 3 new is refused with the numbers, and changes nothing.
    CommandResult full =
        agent_->cli({"xdp", "deny", "add", "192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"});
    EXPECT_EQ(full.exit_code, 1) << full.describe();
    EXPECT_NE(full.err.find("2 entries + 3 new would exceed max_entries 4"), std::string::npos)
        << full.err;
    EXPECT_EQ(xdp_ls().value("entries", 0), 2);

    // Raw API: malformed bodies are 400s.
    EXPECT_EQ(http(agent_->paths().socket, "POST", "/v1/xdp/deny", "{\"cidrs\": []}").status, 400);
    EXPECT_EQ(http(agent_->paths().socket, "POST", "/v1/xdp/deny", "{\"cidrs\": [1]}").status, 400);
    EXPECT_EQ(http(agent_->paths().socket, "POST", "/v1/xdp/deny", "nope").status, 400);
    EXPECT_EQ(http(agent_->paths().socket, "DELETE", "/v1/xdp/deny").status, 400);
    EXPECT_EQ(http(agent_->paths().socket, "DELETE", "/v1/xdp/deny?cidr=192.0.2.0/24").status, 404);

    // The config's entry cannot be removed through the API.
    CommandResult rm_cfg = agent_->cli({"xdp", "deny", "rm", veth_->peer4 + "/32"});
    EXPECT_EQ(rm_cfg.exit_code, 1) << rm_cfg.describe();
    EXPECT_NE(rm_cfg.err.find("comes from [xdp] deny in the agent config"), std::string::npos)
        << rm_cfg.err;
    EXPECT_FALSE(ping_from(veth_->peer4, veth_->host4));

    CommandResult rm = agent_->cli({"xdp", "deny", "rm", veth_->alt4 + "/32"});
    ASSERT_EQ(rm.exit_code, 0) << rm.describe();
    EXPECT_NE(rm.out.find("removed " + veth_->alt4 + "/32"), std::string::npos) << rm.out;
    EXPECT_TRUE(ping_from(veth_->alt4, veth_->host4)) << "removed API entry still enforced";
    EXPECT_TRUE(udp_from(veth_->alt4, veth_->host4));
    EXPECT_EQ(origin_of(xdp_ls(), veth_->alt4 + "/32"), "");
}

TEST_F(XdpPrefilterTest, EnforcementSurvivesKillAndRestart) {
    configure(uplink_list() + "mode = \"generic\"\ndeny = [\"" + veth_->peer4 + "/32\", \"" +
              veth_->peer6 + "/128\"]\n");
    ASSERT_TRUE(agent_->start());
    CommandResult add = agent_->cli_json({"xdp", "deny", "add", veth_->net6});
    ASSERT_EQ(add.exit_code, 0) << add.describe();
    // The agent answers with the canonical form ("fd00:1::/64" for "fd00:1:0::/64").
    auto added = nlohmann::json::parse(add.out, nullptr, false);
    ASSERT_TRUE(added.is_object() && added["added"].size() == 1) << add.out;
    const std::string net6 = added["added"][0].get<std::string>();
    EXPECT_FALSE(ping_from(veth_->alt6, veth_->host6));  // the API's /64
    const uint64_t before = dropped();
    EXPECT_GE(before, 1u);

    agent_->stop(SIGKILL);
    // No agent: the pinned link and maps keep dropping.
    EXPECT_FALSE(ping_from(veth_->peer4, veth_->host4)) << "not dropping while the agent is down";
    EXPECT_TRUE(ping_from(veth_->alt4, veth_->host4));
    EXPECT_FALSE(ping_from(veth_->alt6, veth_->host6));

    ASSERT_TRUE(agent_->start());
    EXPECT_NE(agent_->log().find("adopted pinned link"), std::string::npos);
    auto ls = xdp_ls();
    EXPECT_EQ(uplink(ls).value("mode", ""), "generic") << ls.dump(2);
    EXPECT_EQ(origin_of(ls, veth_->peer4 + "/32"), "config") << ls.dump(2);
    EXPECT_EQ(origin_of(ls, net6), "api") << "API entries live in the pinned map";
    // The pinned counters went on counting while the agent was down.
    EXPECT_GE(dropped(), before + 2);
    EXPECT_FALSE(ping_from(veth_->peer4, veth_->host4)) << "not dropping after the restart";
    EXPECT_FALSE(udp_from(veth_->peer4, veth_->host4));
    EXPECT_TRUE(udp_from(veth_->alt4, veth_->host4));
}

TEST_F(XdpPrefilterTest, RestartAppliesConfigChanges) {
    configure(uplink_list() + "mode = \"generic\"\ndeny = [\"" + veth_->peer4 + "/32\"]\n");
    ASSERT_TRUE(agent_->start());
    ASSERT_TRUE(agent_->cli({"xdp", "deny", "add", veth_->alt6 + "/128"}).exit_code == 0);
    EXPECT_FALSE(ping_from(veth_->peer4, veth_->host4));
    agent_->stop(SIGTERM);

    // The config's deny list changes: .2 out, .3 in; the API's entry stays.
    configure(uplink_list() + "mode = \"generic\"\ndeny = [\"" + veth_->alt4 + "/32\"]\n");
    ASSERT_TRUE(agent_->start());
    EXPECT_TRUE(ping_from(veth_->peer4, veth_->host4)) << "entry removed from the config";
    EXPECT_FALSE(ping_from(veth_->alt4, veth_->host4)) << "entry added to the config";
    EXPECT_FALSE(ping_from(veth_->alt6, veth_->host6)) << "API entry lost on restart";
    agent_->stop(SIGTERM);

    // The uplink leaves the config: the next start detaches from it.
    configure("mode = \"generic\"\n");
    ASSERT_TRUE(agent_->start());
    EXPECT_FALSE(xdp_attached()) << "still attached to an interface no longer configured";
    EXPECT_FALSE(path_exists(agent_->paths().bpffs_root + "/xdp/link_" + veth_->host_if()));
    EXPECT_TRUE(ping_from(veth_->alt4, veth_->host4));
    EXPECT_TRUE(uplink(xdp_ls()).is_null());
}

TEST_F(XdpPrefilterTest, AutoModeRecordsWhatTheDriverGave) {
    configure(uplink_list() + "mode = \"auto\"\ndeny = [\"" + veth_->peer4 + "/32\"]\n");
    ASSERT_TRUE(agent_->start());
    auto up = uplink(xdp_ls());
    std::string mode = up.value("mode", "");
    // veth has native XDP (since Linux 4.19); on the reference kernel this is "native".
    EXPECT_TRUE(mode == "native" || mode == "generic") << up.dump(2);
    RecordProperty("xdp_mode_on_veth", mode);
    std::cout << "[xdp] auto mode on veth: " << mode << "\n";
    CommandResult ip = run_command({"ip", "-d", "link", "show", "dev", veth_->host_if()}, 5s);
    if (mode == "native") {
        EXPECT_NE(ip.out.find(" xdp "), std::string::npos) << ip.out;  // not xdpgeneric
    }
    EXPECT_FALSE(ping_from(veth_->peer4, veth_->host4));
    EXPECT_TRUE(ping_from(veth_->alt4, veth_->host4));
    EXPECT_FALSE(udp_from(veth_->peer4, veth_->host4));
    EXPECT_TRUE(tcp_from(veth_->alt4));

    // Switching the config to generic re-attaches in that mode on the next start.
    agent_->stop(SIGTERM);
    configure(uplink_list() + "mode = \"generic\"\ndeny = [\"" + veth_->peer4 + "/32\"]\n");
    ASSERT_TRUE(agent_->start());
    EXPECT_EQ(uplink(xdp_ls()).value("mode", ""), "generic");
    EXPECT_FALSE(ping_from(veth_->peer4, veth_->host4));
}

TEST_F(XdpPrefilterTest, MissingInterfaceIsAClearStartError) {
    std::string name = "pbxno" + std::to_string(::getpid() % 100000);
    configure("interfaces = [\"" + name + "\"]\n");
    ::testing::AssertionResult started = agent_->start(10s);
    ASSERT_FALSE(started) << "agent started with a missing interface";
    EXPECT_NE(
        agent_->log().find("personabpfd: error: [xdp] interface '" + name + "' does not exist"),
        std::string::npos)
        << agent_->log();
}

}  // namespace
}  // namespace pbpf::it
