// Workloads for integration tests: forked children that join a cgroup (so their sockets are
// created there) and optionally a netns, then probe with TCP, UDP or ICMP, or serve echoes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace pbpf::it {

// Where a child runs: the cgroup directory it joins before opening sockets ("" = stay
// in the test's cgroup) and the netns it enters ("" = stay in the root netns).
struct Where {
    std::string cgroup;
    std::string netns;
    uid_t uid = 0;  // not 0: drop to this uid (and gid) after joining cgroup and netns
    gid_t gid = 0;
};

enum class Outcome { kOk, kRefused, kTimeout, kEperm, kError, kTimeExceeded, kUnreachable };

struct Probe {
    Outcome outcome = Outcome::kError;
    int err = 0;
    std::string detail;
    bool ok() const { return outcome == Outcome::kOk; }
    // Dropped by policy: a cgroup egress drop surfaces as EPERM, a dropped SYN or echo
    // as a timeout.
    bool blocked() const { return outcome == Outcome::kTimeout || outcome == Outcome::kEperm; }
};

std::ostream& operator<<(std::ostream& o, Outcome v);
std::ostream& operator<<(std::ostream& o, const Probe& p);

// Connects (IPv4 or IPv6 by address syntax), sends a line and expects it echoed back,
// all within timeout_ms. `source` binds the client to one of its addresses first.
Probe tcp_probe(const Where& where, const std::string& addr, uint16_t port, int timeout_ms = 1000,
                const std::string& source = "");
enum class UdpShape {
    kPlain,          // one small datagram
    kHeaderOptions,  // IPv4 options (IHL 6) or IPv6 hop-by-hop + destination options headers
    kFragmented,     // larger than the MTU: sent as IP fragments
};
// Sends one datagram and waits for its echo.
Probe udp_probe(const Where& where, const std::string& addr, uint16_t port, int timeout_ms = 1000,
                UdpShape shape = UdpShape::kPlain);
// Traceroute-style: one UDP datagram with the given TTL / hop limit (0: the system's),
// then either its echo (kOk), an ICMP time exceeded (kTimeExceeded, detail = the address
// of the router that sent it), another ICMP error (kUnreachable, detail "type/code from
// ADDR"), a send error (kEperm for EPERM, else kError with err) or nothing (kTimeout).
Probe trace_probe(const Where& where, const std::string& addr, uint16_t port, int ttl,
                  int timeout_ms = 1000);
// ICMP or ICMPv6 echo request over a raw socket; waits for the matching reply.
Probe ping_probe(const Where& where, const std::string& addr, int timeout_ms = 1000);

enum class Proto { kTcp, kUdp };
struct Endpoint {
    Proto proto;
    std::string addr;  // "::" listens dual-stack on every address
    uint16_t port;
};

// A forked echo server (TCP: one line per connection; UDP: every datagram), killed in the
// destructor. Construction returns once every socket listens, or with ok() == false.
class EchoServer {
  public:
    EchoServer(const Where& where, const std::vector<Endpoint>& endpoints);
    ~EchoServer();
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    pid_t pid() const { return pid_; }

    // TCP and UDP on [::] (dual-stack) for each port.
    static std::vector<Endpoint> any_addr(const std::vector<uint16_t>& ports);

  private:
    pid_t pid_ = -1;
    bool ok_ = false;
    std::string error_;
};

// A forked TCP server on [::]:port (dual-stack) that reads and discards whatever its
// clients send, any number at a time; killed in the destructor.
class TcpSink {
  public:
    TcpSink(const Where& where, uint16_t port);
    ~TcpSink();
    TcpSink(const TcpSink&) = delete;
    TcpSink& operator=(const TcpSink&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }

  private:
    pid_t pid_ = -1;
    bool ok_ = false;
    std::string error_;
};

// A workload that keeps one TCP connection to addr:port (a TcpSink) sending as fast as
// the path takes it, until destroyed; it connects again if the connection breaks.
// `sndbuf` sets SO_SNDBUF (0: the system's default): a small one bounds what the
// connection has in flight, so a slow path queues it without dropping. Construction
// returns once the first connection is up, or with ok() == false.
class TcpBulk {
  public:
    TcpBulk(const Where& where, const std::string& addr, uint16_t port, int sndbuf = 0);
    ~TcpBulk();
    TcpBulk(const TcpBulk&) = delete;
    TcpBulk& operator=(const TcpBulk&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }

  private:
    pid_t pid_ = -1;
    bool ok_ = false;
    std::string error_;
};

// A process that joins a cgroup and sleeps until killed (a workload to bind by pid).
class Sleeper {
  public:
    explicit Sleeper(const Where& where);
    ~Sleeper();
    Sleeper(const Sleeper&) = delete;
    Sleeper& operator=(const Sleeper&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    pid_t pid() const { return pid_; }
    // Stops owning the process (it keeps running); returns its pid.
    pid_t release() {
        pid_t p = pid_;
        pid_ = -1;
        return p;
    }

  private:
    pid_t pid_ = -1;
    bool ok_ = false;
    std::string error_;
};

struct HammerCounts {
    uint64_t allowed_passed = 0, allowed_dropped = 0;  // datagrams to the allowed port
    uint64_t denied_passed = 0, denied_dropped = 0;    // datagrams to the denied port
    uint64_t errors = 0;                               // any other sendto failure
};
std::ostream& operator<<(std::ostream& o, const HammerCounts& c);

// A workload that keeps sending UDP datagrams to an allowed and a denied port (about
// 5000 pairs a second) until stopped, counting which ones the cgroup egress program
// passed (sendto succeeded) or dropped (EPERM): any gap in enforcement shows up in the
// counts, without waiting on timeouts.
class UdpHammer {
  public:
    UdpHammer(const Where& where, const std::string& addr, uint16_t allowed_port,
              uint16_t denied_port);
    ~UdpHammer();
    UdpHammer(const UdpHammer&) = delete;
    UdpHammer& operator=(const UdpHammer&) = delete;
    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    // Tells the child to stop and returns its counts (all zero if it does not answer).
    HammerCounts stop();

  private:
    pid_t pid_ = -1;
    int ctl_fd_ = -1;     // closing it tells the child to stop
    int result_fd_ = -1;  // the child's counts
    bool ok_ = false;
    std::string error_;
};

// A pid that belonged to a child which has exited and been reaped.
pid_t dead_pid();

}  // namespace pbpf::it
