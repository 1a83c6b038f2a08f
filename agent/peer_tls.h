// The agent-to-agent transport of workload migration: TCP + TLS 1.3 with mutual certificate
// authentication against one CA and an allow-list of peer names, and length-prefixed messages.
// Wire format, limits and certificates: docs/migration.md ("Agent-to-agent transport").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "maps/result.h"

namespace pbpf::agent {

// Who this host is and whom it trusts: the [migration] cert, key, ca and peers keys.
struct TlsIdentity {
    std::string cert_file;  // PEM: this host's certificate, leaf first (intermediates may follow)
    std::string key_file;   // PEM: its private key
    std::string ca_file;    // PEM: the CA(s) a peer's certificate must chain to (nothing else)
    // Names a peer must present as its subject CN or one of its DNS SANs (exact match, ASCII
    // case-insensitive, no wildcards). Empty: any certificate the CA signed.
    std::vector<std::string> allowed_peers;
};

struct TlsLimits {
    std::chrono::milliseconds connect_timeout{5000};     // TCP connect (name lookup excluded)
    std::chrono::milliseconds handshake_timeout{10000};  // TLS handshake + peer check, in total
    std::chrono::milliseconds io_timeout{30000};  // the longest a send/receive may make no progress
    std::size_t max_message = std::size_t{256} << 20;  // largest payload sent or accepted
    int max_connections = 8;                           // server: connections served at once
};

// "HOST:PORT" or "[IPV6]:PORT"; HOST is an address or a name, PORT 0..65535.
struct HostPort {
    std::string host;  // without brackets
    uint16_t port = 0;
    std::string text() const;  // brackets around IPv6 addresses
};
// Errors say what is wrong with `text`; port 0 is left to the caller to refuse or allow.
Result<HostPort> parse_host_port(const std::string& text);

// One authenticated connection: whole messages each way (4-byte big-endian length, payload).
// Not thread-safe: one thread sends and receives at a time. Any error leaves it unusable,
// except a receive that timed out before the first byte of a message arrived.
class PeerConnection {
  public:
    struct State;
    explicit PeerConnection(std::unique_ptr<State> state);
    PeerConnection(PeerConnection&&) noexcept;
    PeerConnection& operator=(PeerConnection&&) noexcept;
    ~PeerConnection();  // close()

    // Errors: EMSGSIZE (over max_message), ETIMEDOUT, ECANCELED (server stopping), a socket
    // errno, or 0 with the TLS reason; every message starts with "peer ADDRESS".
    Result<void> send(std::string_view message);
    // The next whole message. A peer that closed between messages: an error, and
    // peer_closed() is true.
    Result<std::string> receive();
    // Sends the TLS close_notify (best effort, bounded by io_timeout) and closes; idempotent.
    void close();

    const std::string& peer_address() const;  // "127.0.0.1:7946", "[::1]:7946"
    // The certificate name the peer was accepted under: the allowed or expected name it
    // matched, else its subject CN (else its first DNS SAN).
    const std::string& peer_name() const;
    bool peer_closed() const;

  private:
    std::unique_ptr<State> s_;
};

// Dials `host_port`, checks the server's certificate against id.ca_file, then its names:
// they must include `expected_name` when given, and one of id.allowed_peers when that is
// not empty. Presents id's certificate. Errors name the peer and the reason, e.g. "peer
// 10.0.0.2:7946: certificate verify failed: unable to get local issuer certificate".
Result<PeerConnection> connect_peer(const std::string& host_port, const TlsIdentity& id,
                                    const std::string& expected_name = "",
                                    const TlsLimits& limits = {});

// Accepts connections on a TCP address and serves each authenticated one on its own thread.
// A peer whose certificate does not chain to the CA, presents none, or whose names are not
// in allowed_peers is refused: logged (warning) with the reason, reported to on_refused,
// and closed. So are plain-TCP or garbage clients and handshakes slower than
// handshake_timeout, without holding up other peers.
class PeerServer {
  public:
    // Runs on the connection's thread; the connection is closed when it returns. An
    // exception is logged and closes the connection.
    using Handler = std::function<void(PeerConnection&)>;
    // Called with the peer's address and why it was refused, on the connection's thread (on
    // the accepting thread when max_connections were busy). Must not block for long.
    using RefusedHandler = std::function<void(const std::string& peer, const Error& why)>;

    // Loads the identity (errors name the file and what is wrong with it) and listens on
    // `listen` ("HOST:PORT", "[IPV6]:PORT"; port 0 picks a free one, see address()).
    static Result<std::unique_ptr<PeerServer>> start(const std::string& listen,
                                                     const TlsIdentity& id, Handler handler,
                                                     const TlsLimits& limits = {},
                                                     RefusedHandler on_refused = {});
    ~PeerServer();  // stop()
    PeerServer(const PeerServer&) = delete;
    PeerServer& operator=(const PeerServer&) = delete;

    // The bound address, with the real port: "127.0.0.1:41877".
    std::string address() const;
    uint16_t port() const;
    // Stops accepting, cancels every connection's pending send/receive (ECANCELED) and
    // waits for the handlers to return. Idempotent.
    void stop();

    struct Impl;

  private:
    explicit PeerServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace pbpf::agent
