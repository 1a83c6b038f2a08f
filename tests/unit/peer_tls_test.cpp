// The agent-to-agent TLS transport (agent/peer_tls.h) on 127.0.0.1 and ::1, with CAs and
// host certificates made per test: mutual authentication and who is refused (with why),
// framing and its limits, clients that are not peers at all, timeouts, stop.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/peer_tls.h"
#include "maps/fd.h"
#include "tests/unit/temp_dir.h"
#include "tests/unit/test_pki.h"

namespace pbpf::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Long enough never to fire on a loaded machine, short enough to fail rather than hang.
constexpr auto kWait = 20s;

// A queue one thread fills and the test drains, waiting with a timeout (no sleeps).
template <class T>
class Mailbox {
  public:
    void push(T v) {
        {
            std::lock_guard lock(mu_);
            q_.push_back(std::move(v));
        }
        cv_.notify_all();
    }
    std::optional<T> pop(std::chrono::milliseconds timeout = kWait) {
        std::unique_lock lock(mu_);
        if (!cv_.wait_for(lock, timeout, [&] { return !q_.empty(); })) return std::nullopt;
        T v = std::move(q_.front());
        q_.pop_front();
        return v;
    }
    std::size_t size() {
        std::lock_guard lock(mu_);
        return q_.size();
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<T> q_;
};

struct Refusal {
    std::string peer;
    Error why;
};

struct HandlerEnd {
    Error error;
    bool peer_closed = false;
};

std::string bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

// A plain TCP client with blocking I/O bounded by kWait.
class RawTcp {
  public:
    RawTcp(const std::string& ip, uint16_t port) {
        const bool v6 = ip.find(':') != std::string::npos;
        fd_.reset(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        timeval tv{std::chrono::duration_cast<std::chrono::seconds>(kWait).count(), 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_storage ss{};
        socklen_t len;
        if (v6) {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            a->sin6_port = htons(port);
            inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
            len = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            a->sin_port = htons(port);
            inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
            len = sizeof *a;
        }
        connected_ = ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0;
    }
    bool connected() const { return connected_; }
    int fd() const { return fd_.get(); }
    bool send(std::string_view data) {
        return ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(data.size());
    }
    // True when the server closed the connection (EOF or reset) before kWait.
    bool closed_by_server() {
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
            if (n == 0) return true;
            if (n < 0) return errno == ECONNRESET;
        }
    }
    void close() { fd_.reset(); }

  private:
    Fd fd_;
    bool connected_ = false;
};

// A TLS client written against OpenSSL directly, to behave as PeerConnection never would:
// no certificate, an old protocol, a frame cut short.
class RawTls {
  public:
    RawTls(uint16_t port, const std::string& ca, const std::string& cert = "",
           const std::string& key = "", int max_version = 0)
        : tcp_("127.0.0.1", port) {
        ctx_ = SSL_CTX_new(TLS_client_method());
        SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
        if (!cert.empty()) {
            SSL_CTX_use_certificate_file(ctx_, cert.c_str(), SSL_FILETYPE_PEM);
            SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM);
        }
        if (max_version != 0) SSL_CTX_set_max_proto_version(ctx_, max_version);
        ssl_ = SSL_new(ctx_);
        SSL_set_fd(ssl_, tcp_.fd());
    }
    ~RawTls() {
        SSL_free(ssl_);
        SSL_CTX_free(ctx_);
    }
    bool handshake() { return tcp_.connected() && SSL_connect(ssl_) == 1; }
    bool write(std::string_view data) {
        return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
               static_cast<int>(data.size());
    }
    bool write_frame(std::string_view payload) {
        return write(header(static_cast<uint32_t>(payload.size())) + std::string(payload));
    }
    static std::string header(uint32_t n) {
        const char h[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                           static_cast<char>(n >> 8), static_cast<char>(n)};
        return std::string(h, 4);
    }
    // One frame, or nullopt (then errors() says why).
    std::optional<std::string> read_frame() {
        std::string h = read_exact(4);
        if (h.size() != 4) return std::nullopt;
        const auto* u = reinterpret_cast<const unsigned char*>(h.data());
        const uint32_t n =
            (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
        std::string body = read_exact(n);
        if (body.size() != n) return std::nullopt;
        return body;
    }
    std::string errors() {
        std::string out;
        while (unsigned long e = ERR_get_error()) {
            const char* r = ERR_reason_error_string(e);
            out += std::string(r != nullptr ? r : "?") + ";";
        }
        return out;
    }
    void shutdown() {
        SSL_shutdown(ssl_);
        tcp_.close();
    }

  private:
    std::string read_exact(std::size_t n) {
        std::string out(n, '\0');
        std::size_t got = 0;
        while (got < n) {
            int r = SSL_read(ssl_, out.data() + got, static_cast<int>(n - got));
            if (r <= 0) break;
            got += static_cast<std::size_t>(r);
        }
        out.resize(got);
        return out;
    }
    RawTcp tcp_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
};

// What a server sends first and a client answers (agent/peer_tls.cpp kAccepted).
constexpr std::string_view kAccepted = "personabpf-peer/1 accepted";

class PeerTlsTest : public test::TempDirTest {
  protected:
    void SetUp() override {
        TempDirTest::SetUp();
        pki_ = std::make_unique<test::TestPki>(dir_);
        ca_ = pki_->make_ca("ca");
        other_ca_ = pki_->make_ca("other-ca");
        host_a_ = pki_->issue("ca", "host-a", "host-a");
        host_b_ = pki_->issue("ca", "host-b", "host-b");
    }

    static TlsIdentity identity(const test::TestPki::Leaf& leaf, const std::string& ca,
                                std::vector<std::string> allowed = {}) {
        return TlsIdentity{leaf.cert, leaf.key, ca, std::move(allowed)};
    }

    static TlsLimits limits() {
        TlsLimits l;
        l.connect_timeout = 10s;
        l.handshake_timeout = 10s;
        l.io_timeout = 10s;
        return l;
    }

    // Echoes every message back; reports the peer's name when it starts and why it ended.
    PeerServer::Handler echo() {
        return [this](PeerConnection& c) {
            served_.push(c.peer_name());
            for (;;) {
                auto m = c.receive();
                if (!m) {
                    ended_.push(HandlerEnd{m.error(), c.peer_closed()});
                    return;
                }
                if (auto r = c.send(m.value()); !r) {
                    ended_.push(HandlerEnd{r.error(), false});
                    return;
                }
            }
        };
    }

    std::unique_ptr<PeerServer> start(const TlsIdentity& id, PeerServer::Handler handler,
                                      const TlsLimits& l,
                                      const std::string& listen = "127.0.0.1:0") {
        auto s = PeerServer::start(listen, id, std::move(handler), l,
                                   [this](const std::string& peer, const Error& why) {
                                       refused_.push(Refusal{peer, why});
                                   });
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().what());
        return s.ok() ? std::move(s.value()) : nullptr;
    }
    std::unique_ptr<PeerServer> start(const TlsIdentity& id) { return start(id, echo(), limits()); }

    static std::string addr(const PeerServer& s) { return "127.0.0.1:" + std::to_string(s.port()); }

    // One echo round trip through `c`.
    static void round_trip(PeerConnection& c, const std::string& msg) {
        auto s = c.send(msg);
        ASSERT_TRUE(s.ok()) << s.error().what();
        auto r = c.receive();
        ASSERT_TRUE(r.ok()) << r.error().what();
        EXPECT_EQ(r.value().size(), msg.size());
        EXPECT_TRUE(r.value() == msg);
    }

    std::unique_ptr<test::TestPki> pki_;
    std::string ca_, other_ca_;
    test::TestPki::Leaf host_a_, host_b_;
    Mailbox<std::string> served_;
    Mailbox<HandlerEnd> ended_;
    Mailbox<Refusal> refused_;
};

TEST(PeerTlsAddress, Parse) {
    auto a = parse_host_port("127.0.0.1:7946");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 7946);
    auto b = parse_host_port("[::1]:0");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->host, "::1");
    EXPECT_EQ(b->port, 0);
    EXPECT_EQ(b->text(), "[::1]:0");
    EXPECT_EQ(parse_host_port("host-b.example:65535")->text(), "host-b.example:65535");
    EXPECT_THAT(parse_host_port("::1:7946").error().message, HasSubstr("in brackets"));
    EXPECT_THAT(parse_host_port("host").error().message, HasSubstr("is not HOST:PORT"));
    EXPECT_THAT(parse_host_port(":7946").error().message, HasSubstr("is not HOST:PORT"));
    EXPECT_THAT(parse_host_port("h:").error().message, HasSubstr("not a number"));
    EXPECT_THAT(parse_host_port("h:65536").error().message, HasSubstr("out of range"));
    EXPECT_THAT(parse_host_port("[zz]:1").error().message, HasSubstr("not an IPv6 address"));
    EXPECT_THAT(parse_host_port("a b:1").error().message, HasSubstr("not a host name"));
}

TEST_F(PeerTlsTest, MutualAuthRoundTripSmallAndLargeMessages) {
    auto server = start(identity(host_a_, ca_, {"host-b"}));
    ASSERT_TRUE(server);
    ASSERT_NE(server->port(), 0);
    EXPECT_EQ(server->address(), addr(*server));

    auto c = connect_peer(addr(*server), identity(host_b_, ca_, {"host-a"}), "host-a", limits());
    ASSERT_TRUE(c.ok()) << c.error().what();
    EXPECT_EQ(c->peer_name(), "host-a");
    EXPECT_EQ(c->peer_address(), addr(*server));
    EXPECT_EQ(served_.pop(), "host-b");

    round_trip(c.value(), "hello");
    round_trip(c.value(), "");
    round_trip(c.value(), bytes(3 << 20, 1));
    round_trip(c.value(), bytes((8 << 20) + 7, 2));

    c->close();
    auto end = ended_.pop();
    ASSERT_TRUE(end);
    EXPECT_TRUE(end->peer_closed) << end->error.what();
    EXPECT_THAT(end->error.message, HasSubstr("closed the connection"));
    EXPECT_EQ(refused_.size(), 0u);
}

TEST_F(PeerTlsTest, RoundTripOverIpv6) {
    auto s = PeerServer::start("[::1]:0", identity(host_a_, ca_), echo(), limits());
    if (!s.ok()) {
        GTEST_SKIP() << "no IPv6 loopback: " << s.error().what();
    }
    auto& server = s.value();
    EXPECT_EQ(server->address(), "[::1]:" + std::to_string(server->port()));
    auto c = connect_peer(server->address(), identity(host_b_, ca_), "host-a", limits());
    ASSERT_TRUE(c.ok()) << c.error().what();
    EXPECT_EQ(served_.pop(), "host-b");
    round_trip(c.value(), bytes(100000, 3));
}

TEST_F(PeerTlsTest, ClientCertificateFromAnotherCaIsRefused) {
    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    auto rogue = pki_->issue("other-ca", "rogue", "rogue");
    auto c = connect_peer(addr(*server), identity(rogue, ca_), "", limits());
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(c.error().message, HasSubstr("peer " + addr(*server) + ": "));
    EXPECT_THAT(
        c.error().message,
        HasSubstr("unknown ca (the peer does not trust the CA that signed our certificate)"));

    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->why.message, "peer " + r->peer +
                                  ": certificate verify failed: unable to get local issuer "
                                  "certificate (subject CN=rogue, issuer CN=other-ca)");
    EXPECT_EQ(served_.size(), 0u);
}

TEST_F(PeerTlsTest, ExpiredClientCertificateIsRefused) {
    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    auto old = pki_->issue("ca", "old", "old", {.expired = true});
    auto c = connect_peer(addr(*server), identity(old, ca_), "", limits());
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(c.error().message, HasSubstr("certificate expired"));
    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_THAT(r->why.message,
                HasSubstr("certificate verify failed: certificate has expired (subject CN=old"));
}

TEST_F(PeerTlsTest, ClientWithoutCertificateIsRefused) {
    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    RawTls raw(server->port(), ca_);
    // TLS 1.3: the client's side of the handshake may complete; the refusal comes after.
    if (raw.handshake()) {
        EXPECT_FALSE(raw.read_frame());
    }
    EXPECT_THAT(raw.errors(), HasSubstr("certificate required"));
    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->why.message,
              "peer " + r->peer + ": presented no certificate (one signed by the CA is required)");
}

TEST_F(PeerTlsTest, Tls12ClientIsRefused) {
    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    RawTls raw(server->port(), ca_, host_b_.cert, host_b_.key, TLS1_2_VERSION);
    EXPECT_FALSE(raw.handshake());
    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_THAT(r->why.message, HasSubstr("(the peer does not speak TLS 1.3)"));
}

TEST_F(PeerTlsTest, ServerWithUntrustedCertificateIsRefusedByClient) {
    auto rogue = pki_->issue("other-ca", "rogue", "rogue");
    auto server = start(identity(rogue, ca_));
    ASSERT_TRUE(server);
    auto c = connect_peer(addr(*server), identity(host_b_, ca_), "", limits());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().message, "peer " + addr(*server) +
                                     ": certificate verify failed: unable to get local issuer "
                                     "certificate (subject CN=rogue, issuer CN=other-ca)");
    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_THAT(r->why.message, HasSubstr("unknown ca"));
}

TEST_F(PeerTlsTest, PeerNotInAllowedPeersIsRefused) {
    auto server = start(identity(host_a_, ca_, {"host-b", "host-d"}));
    ASSERT_TRUE(server);
    auto host_c = pki_->issue("ca", "host-c", "host-c", {.dns = {"c.peers.example"}});
    auto c = connect_peer(addr(*server), identity(host_c, ca_), "host-a", limits());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().message,
              "peer " + addr(*server) +
                  ": refused us: certificate names (CN=host-c, DNS:c.peers.example) are not among "
                  "its allowed peers");
    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->why.message, "peer " + r->peer +
                                  ": certificate names (CN=host-c, DNS:c.peers.example) are not "
                                  "among the allowed peers (host-b, host-d)");
    server->stop();
    EXPECT_EQ(served_.size(), 0u);
}

TEST_F(PeerTlsTest, AllowedPeerMatchesDnsSanCaseInsensitively) {
    auto server = start(identity(host_a_, ca_, {"B.Peers.Example"}));
    ASSERT_TRUE(server);
    auto node = pki_->issue("ca", "node", "node-7", {.dns = {"b.peers.example"}});
    auto c = connect_peer(addr(*server), identity(node, ca_), "", limits());
    ASSERT_TRUE(c.ok()) << c.error().what();
    EXPECT_EQ(served_.pop(), "b.peers.example");
    EXPECT_EQ(c->peer_name(), "host-a");  // no constraint: the server's CN
    round_trip(c.value(), "x");
}

TEST_F(PeerTlsTest, ExpectedNameMismatchIsRefused) {
    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    auto c = connect_peer(addr(*server), identity(host_b_, ca_), "host-z", limits());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().message, "peer " + addr(*server) +
                                     ": certificate names (CN=host-a) do not include the "
                                     "expected name host-z");
    // The server learns why from the client, and never runs its handler.
    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->why.message, "peer " + r->peer +
                                  ": refused us: certificate names (CN=host-a) do not include "
                                  "the name dialled");
    server->stop();
    EXPECT_EQ(served_.size(), 0u);
}

TEST_F(PeerTlsTest, ClientAllowedPeersApplyToTheServer) {
    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    auto c = connect_peer(addr(*server), identity(host_b_, ca_, {"host-x"}), "", limits());
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(c.error().message, HasSubstr("are not among the allowed peers (host-x)"));
}

TEST_F(PeerTlsTest, GarbageAndPlainTcpClientsDoNotStopTheServer) {
    TlsLimits l = limits();
    l.handshake_timeout = 3s;  // in case some garbage looks like the start of a record
    auto server = start(identity(host_a_, ca_), echo(), l);
    ASSERT_TRUE(server);

    RawTcp http("127.0.0.1", server->port());
    ASSERT_TRUE(http.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_TRUE(http.closed_by_server());
    RawTcp junk("127.0.0.1", server->port());
    ASSERT_TRUE(junk.send(bytes(4096, 4)));
    EXPECT_TRUE(junk.closed_by_server());
    RawTcp hangup("127.0.0.1", server->port());
    hangup.close();

    std::vector<std::string> reasons;
    for (int i = 0; i < 3; ++i) {
        auto r = refused_.pop();
        ASSERT_TRUE(r) << "refusal " << i;
        reasons.push_back(r->why.message);
    }
    bool http_seen = false, closed_seen = false;
    for (const auto& m : reasons) {
        http_seen |= m.find("http request (the peer does not speak TLS)") != std::string::npos;
        closed_seen |= m.find("TLS handshake: the peer closed the connection") != std::string::npos;
    }
    EXPECT_TRUE(http_seen) << ::testing::PrintToString(reasons);
    EXPECT_TRUE(closed_seen) << ::testing::PrintToString(reasons);

    auto c = connect_peer(addr(*server), identity(host_b_, ca_), "host-a", limits());
    ASSERT_TRUE(c.ok()) << c.error().what();
    round_trip(c.value(), "still serving");
}

TEST_F(PeerTlsTest, SlowHandshakeTimesOutWithoutHoldingUpOthers) {
    TlsLimits l = limits();
    l.handshake_timeout = 1500ms;
    auto server = start(identity(host_a_, ca_), echo(), l);
    ASSERT_TRUE(server);
    RawTcp slow("127.0.0.1", server->port());
    ASSERT_TRUE(slow.send(std::string("\x16\x03\x01\x02", 4)));  // half a record header

    // Served while the slow one is pending.
    auto c = connect_peer(addr(*server), identity(host_b_, ca_), "host-a", limits());
    ASSERT_TRUE(c.ok()) << c.error().what();
    round_trip(c.value(), "not blocked");

    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->why.err, ETIMEDOUT);
    EXPECT_EQ(r->why.message, "peer " + r->peer + ": TLS handshake (1500 ms limit)");
    EXPECT_TRUE(slow.closed_by_server());
}

TEST_F(PeerTlsTest, OversizeMessageIsRefused) {
    TlsLimits small = limits();
    small.max_message = 1024;
    auto server = start(identity(host_a_, ca_), echo(), small);
    ASSERT_TRUE(server);

    // The sender refuses to send what is over its own limit, and stays usable.
    auto c1 = connect_peer(addr(*server), identity(host_b_, ca_), "", small);
    ASSERT_TRUE(c1.ok()) << c1.error().what();
    auto s = c1->send(std::string(1025, 'x'));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().err, EMSGSIZE);
    EXPECT_EQ(s.error().message, "peer " + addr(*server) +
                                     ": sending a message of 1025 bytes: over the limit of 1024 "
                                     "bytes");
    round_trip(c1.value(), std::string(1024, 'y'));
    c1->close();
    ASSERT_TRUE(ended_.pop());

    // The receiver refuses a frame over its limit on the header's word, before reading it.
    auto c2 = connect_peer(addr(*server), identity(host_b_, ca_), "", limits());
    ASSERT_TRUE(c2.ok()) << c2.error().what();
    ASSERT_TRUE(c2->send(std::string(2048, 'z')).ok());
    auto end = ended_.pop();
    ASSERT_TRUE(end);
    EXPECT_EQ(end->error.err, EMSGSIZE);
    EXPECT_THAT(end->error.message,
                HasSubstr(": receiving a message: message of 2048 bytes exceeds the limit of "
                          "1024 bytes"));
    EXPECT_FALSE(c2->receive().ok());
}

TEST_F(PeerTlsTest, PeerClosingMidMessageIsAClearError) {
    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    RawTls raw(server->port(), ca_, host_b_.cert, host_b_.key);
    ASSERT_TRUE(raw.handshake()) << raw.errors();
    EXPECT_EQ(raw.read_frame(), std::string(kAccepted));
    ASSERT_TRUE(raw.write_frame(kAccepted));
    ASSERT_TRUE(raw.write(RawTls::header(1000) + std::string(10, 'a')));
    raw.shutdown();

    auto end = ended_.pop();
    ASSERT_TRUE(end);
    EXPECT_FALSE(end->peer_closed);
    EXPECT_THAT(end->error.message,
                HasSubstr(": receiving a message: the peer closed the connection (10 of 1000 "
                          "bytes received)"));
}

TEST_F(PeerTlsTest, ReceiveTimeoutBeforeAMessageKeepsTheConnection) {
    TlsLimits l = limits();
    l.io_timeout = 300ms;
    Mailbox<std::string> events;
    auto server = start(
        identity(host_a_, ca_),
        [&](PeerConnection& c) {
            auto first = c.receive();
            events.push(first ? "message" : first.error().what());
            auto second = c.receive();
            events.push(second ? second.value() : "error: " + second.error().what());
        },
        l);
    ASSERT_TRUE(server);
    auto c = connect_peer(addr(*server), identity(host_b_, ca_), "", limits());
    ASSERT_TRUE(c.ok()) << c.error().what();
    auto first = events.pop();
    ASSERT_TRUE(first);
    EXPECT_THAT(*first, HasSubstr(": receiving a message (300 ms limit): Connection timed out"));
    ASSERT_TRUE(c->send("late").ok());
    EXPECT_EQ(events.pop(), "late");
}

TEST_F(PeerTlsTest, StopCancelsAWaitingHandler) {
    TlsLimits l = limits();
    l.io_timeout = 600s;
    auto server = start(identity(host_a_, ca_), echo(), l);
    ASSERT_TRUE(server);
    auto c = connect_peer(addr(*server), identity(host_b_, ca_), "", limits());
    ASSERT_TRUE(c.ok()) << c.error().what();
    ASSERT_TRUE(served_.pop());
    const auto t0 = std::chrono::steady_clock::now();
    server->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    auto end = ended_.pop(0ms);  // stop() joined the handler
    ASSERT_TRUE(end);
    EXPECT_EQ(end->error.err, ECANCELED);
    EXPECT_THAT(end->error.message, HasSubstr("the transport is stopping"));
    server->stop();  // idempotent
}

TEST_F(PeerTlsTest, BusyServerRefusesOverMaxConnections) {
    TlsLimits l = limits();
    l.max_connections = 1;
    auto server = start(identity(host_a_, ca_), echo(), l);
    ASSERT_TRUE(server);
    auto c1 = connect_peer(addr(*server), identity(host_b_, ca_), "", limits());
    ASSERT_TRUE(c1.ok()) << c1.error().what();
    ASSERT_TRUE(served_.pop());
    auto c2 = connect_peer(addr(*server), identity(host_b_, ca_), "", limits());
    EXPECT_FALSE(c2.ok());
    auto r = refused_.pop();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->why.message, "peer " + r->peer + ": max_connections (1) reached");
    round_trip(c1.value(), "first still served");
}

TEST_F(PeerTlsTest, IdentityErrorsNameTheFile) {
    auto missing = identity(host_a_, ca_);
    missing.cert_file = dir_ + "/nope.crt";
    auto e1 = PeerServer::start("127.0.0.1:0", missing, echo(), limits());
    ASSERT_FALSE(e1.ok());
    EXPECT_EQ(e1.error().what(),
              "certificate file " + dir_ + "/nope.crt: No such file or directory");

    auto mismatched = identity(host_a_, ca_);
    mismatched.key_file = host_b_.key;
    auto e2 = connect_peer("127.0.0.1:1", mismatched, "", limits());
    ASSERT_FALSE(e2.ok());
    EXPECT_EQ(e2.error().message,
              "key file " + host_b_.key + " does not match certificate " + host_a_.cert);

    auto no_ca = identity(host_a_, write("empty.pem", ""));
    auto e3 = PeerServer::start("127.0.0.1:0", no_ca, echo(), limits());
    ASSERT_FALSE(e3.ok());
    EXPECT_THAT(e3.error().message, HasSubstr("CA file " + dir_ + "/empty.pem: "));

    auto garbage = identity(host_a_, ca_);
    garbage.cert_file = write("garbage.crt", "not a certificate\n");
    auto e4 = PeerServer::start("127.0.0.1:0", garbage, echo(), limits());
    ASSERT_FALSE(e4.ok());
    EXPECT_THAT(e4.error().message, HasSubstr("certificate file " + dir_ + "/garbage.crt: "));

    auto no_key = identity(host_a_, ca_);
    no_key.key_file.clear();
    EXPECT_EQ(PeerServer::start("127.0.0.1:0", no_key, echo(), limits()).error().message,
              "no key file configured");
}

TEST_F(PeerTlsTest, ListenAndConnectErrors) {
    auto bad = PeerServer::start("nonsense", identity(host_a_, ca_), echo(), limits());
    ASSERT_FALSE(bad.ok());
    EXPECT_THAT(bad.error().message, HasSubstr("listen address 'nonsense' is not HOST:PORT"));

    auto server = start(identity(host_a_, ca_));
    ASSERT_TRUE(server);
    auto taken = PeerServer::start(addr(*server), identity(host_a_, ca_), echo(), limits());
    ASSERT_FALSE(taken.ok());
    EXPECT_EQ(taken.error().err, EADDRINUSE);
    EXPECT_EQ(taken.error().message, "listen on " + addr(*server));

    // A bound socket that does not listen answers with a reset.
    Fd closed(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(closed.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ASSERT_EQ(::getsockname(closed.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
    const std::string where = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
    auto refused = connect_peer(where, identity(host_b_, ca_), "", limits());
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().err, ECONNREFUSED);
    EXPECT_EQ(refused.error().what(), "peer " + where + ": connect: Connection refused");

    EXPECT_THAT(connect_peer("127.0.0.1:0", identity(host_b_, ca_)).error().message,
                HasSubstr("port 0"));
    TlsLimits no_time = limits();
    no_time.io_timeout = 0ms;
    EXPECT_EQ(connect_peer(where, identity(host_b_, ca_), "", no_time).error().message,
              "peer TLS limits: every timeout must be positive");
    TlsLimits no_conns = limits();
    no_conns.max_connections = 0;
    EXPECT_EQ(
        PeerServer::start("127.0.0.1:0", identity(host_a_, ca_), echo(), no_conns).error().message,
        "peer TLS limits: max_connections must be >= 1");
}

}  // namespace
}  // namespace pbpf::agent
