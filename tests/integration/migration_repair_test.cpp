// The proof for a cgroup-bound workload (issue 9): a live TCP connection of a workload on
// host A, under `default ingress deny`, moves to host B as CRIU moves it. The workload's
// state goes A -> B with `migrate export` / `migrate import`, and its socket is recreated
// in B's cgroup with TCP_REPAIR (a socket keeps the cgroup it was created in, KERNEL.md).
// With the conntrack import the connection flows on under B's enforcement; without it
// B's `default ingress deny` drops the server's data.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "tests/integration/fixture.h"

namespace pbpf::it {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kServerPort = 7072;

std::string errno_text(const std::string& what, int e = errno) {
    return what + ": " + std::strerror(e) + " (errno " + std::to_string(e) + ")";
}

class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_ = -1;
};

// A socket that belongs to `where`: the kernel fixes a socket's cgroup (and netns) when
// socket() is called, so a forked child joins the cgroup and netns first, creates the
// socket and hands it over with SCM_RIGHTS. The test then drives it like its own.
Fd socket_in(const Where& where, std::string* err) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        *err = errno_text("socketpair");
        return Fd();
    }
    Fd parent_end(sp[0]), child_end(sp[1]);
    const pid_t pid = ::fork();
    if (pid < 0) {
        *err = errno_text("fork");
        return Fd();
    }
    if (pid == 0) {
        // Only system calls from here on: the parent may have threads.
        auto fail = [&](const char* what) {
            char msg[160];
            const int n = std::snprintf(msg, sizeof msg, "%s: %s", what, std::strerror(errno));
            if (n > 0) (void)!::write(child_end.get(), msg, static_cast<size_t>(n));
            ::_exit(1);
        };
        if (!where.cgroup.empty()) {
            const std::string procs = where.cgroup + "/cgroup.procs";
            const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
            if (fd < 0 || ::write(fd, "0", 1) != 1) fail("joining the cgroup");
            ::close(fd);
        }
        if (!where.netns.empty()) {
            const int fd = ::open(where.netns.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) fail("entering the netns");
            ::close(fd);
        }
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) fail("socket");
        char byte = 0;
        iovec iov{&byte, 1};
        alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl;
        msg.msg_controllen = sizeof ctl;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &s, sizeof(int));
        if (::sendmsg(child_end.get(), &msg, 0) != 1) fail("sendmsg");
        ::_exit(0);
    }
    child_end.reset();
    Fd got;
    pollfd pfd{parent_end.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 5000) == 1) {
        char buf[160] = {};
        iovec iov{buf, sizeof buf - 1};
        alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl;
        msg.msg_controllen = sizeof ctl;
        const ssize_t n = ::recvmsg(parent_end.get(), &msg, MSG_CMSG_CLOEXEC);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        if (n > 0 && c && c->cmsg_type == SCM_RIGHTS) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
            got = Fd(fd);
        } else {
            *err = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "the child sent nothing";
        }
    } else {
        *err = "no socket from the child within 5 s";
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return got;
}

sockaddr_in inet(const std::string& addr, uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    return sa;
}

std::string text(const sockaddr_in& sa) {
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(sa.sin_port));
}

bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return false;
        off += static_cast<size_t>(n);
    }
    return true;
}

// Reads until `want` bytes arrived, the peer closed or the timeout passed.
std::string receive(int fd, size_t want, std::chrono::milliseconds timeout) {
    std::string got;
    const auto deadline = Clock::now() + timeout;
    while (got.size() < want) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd pfd{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) != 1) break;
        char buf[512];
        const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - got.size()), MSG_DONTWAIT);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
    }
    return got;
}

int queued(int fd, unsigned long request) {
    int n = -1;
    return ::ioctl(fd, request, &n) == 0 ? n : -1;
}

// What a restore needs of an established connection whose queues are empty, read with the
// socket in repair mode as CRIU's sk-tcp.c (libsoccr) does.
struct TcpDump {
    sockaddr_in local{}, remote{};
    uint32_t send_seq = 0, recv_seq = 0;  // TCP_QUEUE_SEQ of each queue
    uint32_t mss = 0;                     // TCP_MAXSEG in repair mode: the mss_clamp
    uint32_t timestamp = 0;               // TCP_TIMESTAMP: the socket's current TSval
    tcp_info info{};                      // negotiated options and window scales
    tcp_repair_window window{};
};

// Puts the socket into repair mode (so that closing it later sends neither FIN nor RST)
// and reads its state.
::testing::AssertionResult dump_tcp(int fd, TcpDump* d) {
    auto fail = [](const std::string& what) {
        return ::testing::AssertionFailure() << errno_text(what);
    };
    const int on = TCP_REPAIR_ON;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on) != 0)
        return fail("setsockopt(TCP_REPAIR, 1) on the original");
    socklen_t len = sizeof d->local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&d->local), &len) != 0)
        return fail("getsockname");
    len = sizeof d->remote;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&d->remote), &len) != 0)
        return fail("getpeername");
    // The queues' contents are not dumped: the test drained them before.
    if (const int in = queued(fd, SIOCINQ), out = queued(fd, SIOCOUTQ); in != 0 || out != 0)
        return ::testing::AssertionFailure()
               << "queues not empty at the dump: " << in << " bytes in, " << out << " out";
    for (const auto& [queue, seq] :
         {std::pair{TCP_SEND_QUEUE, &d->send_seq}, std::pair{TCP_RECV_QUEUE, &d->recv_seq}}) {
        if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof queue) != 0)
            return fail("setsockopt(TCP_REPAIR_QUEUE)");
        len = sizeof *seq;
        if (::getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, seq, &len) != 0)
            return fail("getsockopt(TCP_QUEUE_SEQ)");
    }
    len = sizeof d->mss;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &d->mss, &len) != 0)
        return fail("getsockopt(TCP_MAXSEG)");
    len = sizeof d->timestamp;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &d->timestamp, &len) != 0)
        return fail("getsockopt(TCP_TIMESTAMP)");
    len = sizeof d->info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &d->info, &len) != 0)
        return fail("getsockopt(TCP_INFO)");
    len = sizeof d->window;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &d->window, &len) != 0)
        return fail("getsockopt(TCP_REPAIR_WINDOW)");
    return ::testing::AssertionSuccess();
}

// Recreates the connection on a fresh socket (in repair mode nothing goes on the wire:
// connect() sends no SYN) and leaves repair mode without the window probe, so the
// restored socket sends nothing until the test makes it.
::testing::AssertionResult restore_tcp(int fd, const TcpDump& d) {
    auto fail = [](const std::string& what) {
        return ::testing::AssertionFailure() << errno_text(what);
    };
    const int on = TCP_REPAIR_ON, one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on) != 0)
        return fail("setsockopt(TCP_REPAIR, 1) on the new socket");
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        return fail("setsockopt(SO_REUSEADDR)");
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&d.local), sizeof d.local) != 0)
        return fail("bind to " + text(d.local));
    for (const auto& [queue, seq] :
         {std::pair{TCP_SEND_QUEUE, d.send_seq}, std::pair{TCP_RECV_QUEUE, d.recv_seq}}) {
        if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &queue, sizeof queue) != 0)
            return fail("setsockopt(TCP_REPAIR_QUEUE)");
        if (::setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, sizeof seq) != 0)
            return fail("setsockopt(TCP_QUEUE_SEQ)");
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&d.remote), sizeof d.remote) != 0)
        return fail("connect to " + text(d.remote) + " in repair mode");
    std::vector<tcp_repair_opt> opts = {{TCPOPT_MAXSEG, d.mss}};
    if (d.info.tcpi_options & TCPI_OPT_WSCALE)
        opts.push_back({TCPOPT_WINDOW, static_cast<uint32_t>(d.info.tcpi_snd_wscale) |
                                           (static_cast<uint32_t>(d.info.tcpi_rcv_wscale) << 16)});
    if (d.info.tcpi_options & TCPI_OPT_SACK) opts.push_back({TCPOPT_SACK_PERMITTED, 0});
    if (d.info.tcpi_options & TCPI_OPT_TIMESTAMPS) opts.push_back({TCPOPT_TIMESTAMP, 0});
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts.data(),
                     static_cast<socklen_t>(opts.size() * sizeof(tcp_repair_opt))) != 0)
        return fail("setsockopt(TCP_REPAIR_OPTIONS)");
    // The peer checks our TSvals against the last one it saw (PAWS): continue the clock.
    if (d.info.tcpi_options & TCPI_OPT_TIMESTAMPS &&
        ::setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &d.timestamp, sizeof d.timestamp) != 0)
        return fail("setsockopt(TCP_TIMESTAMP)");
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &d.window, sizeof d.window) != 0)
        return fail("setsockopt(TCP_REPAIR_WINDOW)");
    const int off = TCP_REPAIR_OFF_NO_WP;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off) != 0)
        return fail("setsockopt(TCP_REPAIR, TCP_REPAIR_OFF_NO_WP)");
    return ::testing::AssertionSuccess();
}

class MigrationRepair : public IntegrationTest {
  protected:
    // The sockets go before the netns, cgroups and agents they belong to.
    void TearDown() override {
        for (Fd* fd : {&restored_, &original_, &server_conn_, &listener_}) fd->reset();
        IntegrationTest::TearDown();
    }

    // Ingress denied by default; egress allows the connection to the server, so only
    // conntrack lets the server's replies in.
    std::string pdl() const {
        return persona_pdl("it-repair", {"default ingress deny", "default egress deny",
                                         "allow egress tcp port " + std::to_string(kServerPort) +
                                             " to " + veth_->peer4});
    }

    // A: the workload in A's cgroup `w` holds a connection to a server in the test's netns,
    // and data passes both ways under A's enforcement.
    void connect_on_a() {
        const auto& v = *veth_;
        apply(*agent_, pdl());
        bind("it-repair", "w");
        std::string err;
        listener_ = socket_in(from_netns(), &err);
        ASSERT_TRUE(listener_) << err;
        const sockaddr_in srv = inet(v.peer4, kServerPort);
        ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&srv), sizeof srv), 0)
            << errno_text("bind " + text(srv));
        ASSERT_EQ(::listen(listener_.get(), 4), 0) << errno_text("listen");

        original_ = socket_in(in("w"), &err);
        ASSERT_TRUE(original_) << err;
        ASSERT_EQ(::fcntl(original_.get(), F_SETFL, O_NONBLOCK), 0);
        const int rc =
            ::connect(original_.get(), reinterpret_cast<const sockaddr*>(&srv), sizeof srv);
        ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << errno_text("connect");
        pollfd pfd{listener_.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&pfd, 1, 5000), 1) << "the server saw no connection within 5 s";
        server_conn_ = Fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        ASSERT_TRUE(server_conn_) << errno_text("accept");
        ASSERT_EQ(::fcntl(original_.get(), F_SETFL, 0), 0);

        ASSERT_TRUE(send_all(server_conn_.get(), "hello from the server\n"));
        EXPECT_EQ(receive(original_.get(), 22, 5s), "hello from the server\n")
            << "A passes the server's data (a tracked flow)";
        ASSERT_TRUE(send_all(original_.get(), "hello from the workload\n"));
        EXPECT_EQ(receive(server_conn_.get(), 24, 5s), "hello from the workload\n");
        PersonaStats st;
        ASSERT_TRUE(wait_stats(
            *agent_, "it-repair",
            [](const PersonaStats& s) {
                return s.ingress.allowed_packets > 0 && s.egress.allowed_packets > 0;
            },
            &st))
            << st.ingress << " / " << st.egress;
        // Both queues drained and acknowledged: nothing in flight to dump.
        ASSERT_TRUE(wait_until(
            [&] {
                return queued(original_.get(), SIOCOUTQ) == 0 &&
                       queued(server_conn_.get(), SIOCOUTQ) == 0 &&
                       queued(original_.get(), SIOCINQ) == 0 &&
                       queued(server_conn_.get(), SIOCINQ) == 0;
            },
            5s))
            << "the connection's queues did not drain";
    }

    // The move as CRIU makes it: dump the socket in repair mode, export the workload from
    // A, close the original silently, import on B (the bundle's flows kept or removed),
    // recreate the socket in B's cgroup with TCP_REPAIR.
    void move_to_b(bool with_flows) {
        ASSERT_TRUE(dump_tcp(original_.get(), &dump_));
        const std::string file = scratch_.path() + "/bundle.json";
        CommandResult r = agent_->cli({"migrate", "export", "--cgroup", cg_->rel("w"), "-o", file});
        ASSERT_EQ(r.exit_code, 0) << r.describe();
        json bundle = json::parse(read_file(file));
        const uint16_t local_port = ntohs(dump_.local.sin_port);
        // The flows as rows under named columns (bundle version 2).
        json& ct = bundle["conntrack"];
        auto col = [&](const char* name) {
            const auto& cols = ct["columns"];
            return static_cast<size_t>(std::find(cols.begin(), cols.end(), name) - cols.begin());
        };
        bool exported = false;
        for (const auto& f : ct["rows"])
            exported = exported ||
                       (f[col("local_port")] == local_port &&
                        f[col("remote_port")] == kServerPort && f[col("state")] == "established");
        ASSERT_TRUE(exported) << "A's flow " << text(dump_.local)
                              << " in the bundle: " << ct.dump(2);
        std::string import_file = file;
        if (!with_flows) {
            ct["rows"] = json::array();
            import_file = scratch_.write("bundle-without-flows.json", bundle.dump());
        }
        // In repair mode the close sends neither FIN nor RST: the server sees nothing.
        original_.reset();

        CgroupTree& tree_b = add_cgroup_tree();
        ASSERT_TRUE(tree_b.ok()) << tree_b.error();
        const std::string w2 = tree_b.create("w2");
        b_ = &add_agent(tree_b.path());
        ASSERT_TRUE(b_->start());
        json res;
        ASSERT_TRUE(
            cli_json(*b_, {"migrate", "import", import_file, "--cgroup", tree_b.rel("w2")}, &res));
        EXPECT_EQ(res["persona_created"], true) << res.dump();
        target_ = tree_b.rel("w2");

        ASSERT_TRUE(stats(*agent_, "it-repair", &a_at_move_));
        ASSERT_TRUE(stats(*b_, "it-repair", &b_at_move_));
        std::string err;
        restored_ = socket_in(Where{w2, ""}, &err);
        ASSERT_TRUE(restored_) << err;
        ASSERT_TRUE(restore_tcp(restored_.get(), dump_));
        sockaddr_in local{};
        socklen_t len = sizeof local;
        ASSERT_EQ(::getsockname(restored_.get(), reinterpret_cast<sockaddr*>(&local), &len), 0);
        EXPECT_EQ(text(local), text(dump_.local));
    }

    // The flow's entry in B's `conntrack ls`, or null.
    json flow_on_b() {
        json ls;
        EXPECT_TRUE(cli_json(*b_, {"conntrack", "ls"}, &ls));
        for (const auto& f : ls["flows"])
            if (f["local_port"] == ntohs(dump_.local.sin_port) && f["remote_port"] == kServerPort)
                return f;
        return nullptr;
    }

    // A counts nothing more once the connection left it.
    void expect_a_stopped_counting() {
        PersonaStats now;
        ASSERT_TRUE(stats(*agent_, "it-repair", &now));
        EXPECT_EQ(now.ingress.allowed_packets, a_at_move_.ingress.allowed_packets) << now.ingress;
        EXPECT_EQ(now.ingress.denied_packets, a_at_move_.ingress.denied_packets) << now.ingress;
        EXPECT_EQ(now.egress.allowed_packets, a_at_move_.egress.allowed_packets) << now.egress;
        EXPECT_EQ(now.egress.denied_packets, a_at_move_.egress.denied_packets) << now.egress;
    }

    Fd listener_, server_conn_, original_, restored_;
    TcpDump dump_;
    Agent* b_ = nullptr;
    std::string target_;
    PersonaStats a_at_move_, b_at_move_;
};

TEST_F(MigrationRepair, ConnectionKeepsFlowingWithTheConntrackImport) {
    ASSERT_NO_FATAL_FAILURE(connect_on_a());
    ASSERT_NO_FATAL_FAILURE(move_to_b(true));
    const json imported = flow_on_b();
    ASSERT_TRUE(imported.is_object()) << "the imported flow on B";
    EXPECT_EQ(imported["workload"], target_) << imported.dump();

    // The server speaks first: its data gets in through B's `default ingress deny` only
    // because B tracks the flow.
    ASSERT_TRUE(send_all(server_conn_.get(), "server after the move\n"));
    EXPECT_EQ(receive(restored_.get(), 22, 5s), "server after the move\n");
    ASSERT_TRUE(send_all(restored_.get(), "workload after the move\n"));
    EXPECT_EQ(receive(server_conn_.get(), 24, 5s), "workload after the move\n");

    PersonaStats b;
    EXPECT_TRUE(wait_stats(
        *b_, "it-repair",
        [&](const PersonaStats& s) {
            return s.ingress.allowed_packets > b_at_move_.ingress.allowed_packets &&
                   s.egress.allowed_packets > b_at_move_.egress.allowed_packets;
        },
        &b))
        << "B counts the flow: " << b.ingress << " / " << b.egress;
    EXPECT_EQ(b.ingress.denied_packets, b_at_move_.ingress.denied_packets) << b.ingress;
    const json after = flow_on_b();
    ASSERT_TRUE(after.is_object());
    EXPECT_EQ(after["state"], "established") << after.dump();
    expect_a_stopped_counting();
}

TEST_F(MigrationRepair, ConnectionBreaksWithoutTheConntrackImport) {
    ASSERT_NO_FATAL_FAILURE(connect_on_a());
    ASSERT_NO_FATAL_FAILURE(move_to_b(false));
    EXPECT_TRUE(flow_on_b().is_null()) << "B tracks no flow: the bundle carried none";

    // The server speaks first (the restored socket has sent nothing since the move): B
    // has no flow for its data, and `default ingress deny` drops it, retransmissions too.
    ASSERT_TRUE(send_all(server_conn_.get(), "server after the move\n"));
    PersonaStats b;
    ASSERT_TRUE(wait_stats(
        *b_, "it-repair",
        [&](const PersonaStats& s) {
            return s.ingress.denied_packets > b_at_move_.ingress.denied_packets;
        },
        &b))
        << "B drops the server's data: " << b.ingress;
    EXPECT_EQ(receive(restored_.get(), 22, 2s), "") << "the restored socket received nothing";
    EXPECT_GT(queued(server_conn_.get(), SIOCOUTQ), 0) << "the server's data stays unacknowledged";
    json st;
    ASSERT_TRUE(cli_json(*b_, {"stats", "it-repair"}, &st));
    ASSERT_TRUE(st.is_array() && st.size() == 1) << st.dump(2);
    EXPECT_GT(st[0]["ingress"]["dropped_by_reason"].value("default", uint64_t{0}), 0u)
        << "dropped by the default ingress deny: " << st[0]["ingress"].dump(2);
    EXPECT_EQ(b.ingress.allowed_packets, b_at_move_.ingress.allowed_packets) << b.ingress;
    EXPECT_TRUE(flow_on_b().is_null()) << "nothing picked the flow up on B";
    expect_a_stopped_counting();

    // What the break depends on: the workload's own next packet out is allowed by `allow
    // egress` and picks the flow up mid-stream, and the server's next retransmission gets
    // in. The connection is broken for as long as only the server talks.
    ASSERT_TRUE(send_all(restored_.get(), "workload after the move\n"));
    EXPECT_EQ(receive(server_conn_.get(), 24, 5s), "workload after the move\n");
    EXPECT_EQ(receive(restored_.get(), 22, 10s), "server after the move\n")
        << "the server's retransmission, once B tracks the flow";
    const json picked = flow_on_b();
    ASSERT_TRUE(picked.is_object()) << "picked up by B's egress";
    EXPECT_EQ(picked["origin"], "egress") << picked.dump();
}

}  // namespace
}  // namespace pbpf::it
