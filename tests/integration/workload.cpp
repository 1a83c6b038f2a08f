// Forked workload children: each joins its cgroup and netns first, then opens sockets,
// so the kernel attributes its packets to that cgroup. Results come back over a pipe.
#include "tests/integration/workload.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/errqueue.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

namespace pbpf::it {

namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

std::string errstr(const char* what, int e) { return std::string(what) + ": " + std::strerror(e); }

// Enters the cgroup and netns of `where`; "" on success, else what failed.
std::string enter(const Where& where) {
    if (!where.cgroup.empty()) {
        std::string procs = where.cgroup + "/cgroup.procs";
        int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return errstr(("open " + procs).c_str(), errno);
        std::string pid = std::to_string(::getpid());
        ssize_t n = ::write(fd, pid.data(), pid.size());
        int e = errno;
        ::close(fd);
        if (n < 0) return errstr(("write " + procs).c_str(), e);
    }
    if (!where.netns.empty()) {
        int fd = ::open(where.netns.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return errstr(("open " + where.netns).c_str(), errno);
        int r = ::setns(fd, CLONE_NEWNET);
        int e = errno;
        ::close(fd);
        if (r != 0) return errstr("setns", e);
    }
    if (where.uid != 0) {
        if (::setgroups(0, nullptr) != 0) return errstr("setgroups", errno);
        if (::setresgid(where.gid, where.gid, where.gid) != 0) return errstr("setresgid", errno);
        if (::setresuid(where.uid, where.uid, where.uid) != 0) return errstr("setresuid", errno);
    }
    return "";
}

struct Addr {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_UNSPEC;
};

bool parse_addr(const std::string& s, uint16_t port, Addr* out) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out->ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->ss);
    if (::inet_pton(AF_INET, s.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        out->len = sizeof(sockaddr_in);
        out->family = AF_INET;
        return true;
    }
    if (::inet_pton(AF_INET6, s.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        out->len = sizeof(sockaddr_in6);
        out->family = AF_INET6;
        return true;
    }
    return false;
}

Probe make(Outcome o, int err, std::string detail) { return Probe{o, err, std::move(detail)}; }

Probe from_errno(const char* what, int e) {
    Outcome o = Outcome::kError;
    if (e == EPERM) o = Outcome::kEperm;
    if (e == ECONNREFUSED) o = Outcome::kRefused;
    if (e == ETIMEDOUT || e == EAGAIN) o = Outcome::kTimeout;
    return make(o, e, errstr(what, e));
}

// Wire form of a Probe on the result pipe.
struct WireProbe {
    int outcome;
    int err;
    char detail[240];
};

// Forks a child that enters `where` and runs fn; the parent waits up to wait_ms for the
// result and kills the child if it does not report.
Probe run_in_child(const Where& where, int wait_ms, const std::function<Probe()>& fn) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return make(Outcome::kError, errno, "pipe");
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(p[0]);
        ::close(p[1]);
        return make(Outcome::kError, errno, "fork");
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(p[0]);
        Probe r;
        if (std::string e = enter(where); !e.empty())
            r = make(Outcome::kError, 0, "entering workload: " + e);
        else
            r = fn();
        WireProbe w{};
        w.outcome = static_cast<int>(r.outcome);
        w.err = r.err;
        std::snprintf(w.detail, sizeof w.detail, "%s", r.detail.c_str());
        [[maybe_unused]] ssize_t n = ::write(p[1], &w, sizeof w);
        ::_exit(0);
    }
    ::close(p[1]);
    WireProbe w{};
    pollfd pf{p[0], POLLIN, 0};
    bool got = false;
    if (::poll(&pf, 1, wait_ms + 3000) > 0) got = ::read(p[0], &w, sizeof w) == sizeof w;
    ::close(p[0]);
    if (!got) ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (!got) return make(Outcome::kError, 0, "workload child did not report");
    w.detail[sizeof w.detail - 1] = 0;
    return make(static_cast<Outcome>(w.outcome), w.err, w.detail);
}

const char kPayload[] = "pbpf-it echo\n";

// The socket's local address, for failure messages.
std::string local_addr(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
    char buf[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        port = ntohs(a->sin6_port);
    }
    return std::string(buf) + ":" + std::to_string(port);
}

// Waits for readable data within the deadline and checks it echoes `expected`.
Probe await_echo(int fd, Clock::time_point deadline, const std::string& what,
                 const std::string& expected = kPayload) {
    std::string buf(expected.size() + 256, '\0');
    size_t got = 0;
    while (got < expected.size()) {
        pollfd pf{fd, POLLIN, 0};
        int r = ::poll(&pf, 1, ms_left(deadline));
        if (r == 0) return make(Outcome::kTimeout, 0, what + ": no echo in time");
        if (r < 0) {
            if (errno == EINTR) continue;
            return from_errno("poll", errno);
        }
        ssize_t n = ::recv(fd, buf.data() + got, buf.size() - got, 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return from_errno("recv", errno);
        }
        if (n == 0) return make(Outcome::kError, 0, what + ": closed before echo");
        got += static_cast<size_t>(n);
    }
    if (buf.compare(0, expected.size(), expected) != 0)
        return make(Outcome::kError, 0, what + ": wrong echo");
    return make(Outcome::kOk, 0, what + ": echoed " + std::to_string(got) + " bytes");
}

uint16_t inet_checksum(const void* data, size_t len) {
    const auto* b = static_cast<const uint8_t*>(data);
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(b[i] << 8 | b[i + 1]);
    if (len & 1) sum += static_cast<uint32_t>(b[len - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons(static_cast<uint16_t>(~sum));
}

}  // namespace

std::ostream& operator<<(std::ostream& o, Outcome v) {
    switch (v) {
        case Outcome::kOk:
            return o << "ok";
        case Outcome::kRefused:
            return o << "refused";
        case Outcome::kTimeout:
            return o << "timeout";
        case Outcome::kEperm:
            return o << "EPERM";
        case Outcome::kError:
            return o << "error";
        case Outcome::kTimeExceeded:
            return o << "time-exceeded";
        case Outcome::kUnreachable:
            return o << "unreachable";
    }
    return o << "?";
}

std::ostream& operator<<(std::ostream& o, const Probe& p) {
    return o << p.outcome << " (" << p.detail << ")";
}

Probe tcp_probe(const Where& where, const std::string& addr, uint16_t port, int timeout_ms,
                const std::string& source) {
    return run_in_child(where, timeout_ms, [&]() -> Probe {
        Addr a;
        if (!parse_addr(addr, port, &a)) return make(Outcome::kError, 0, "bad address " + addr);
        auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        int fd = ::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return from_errno("socket", errno);
        if (!source.empty()) {
            Addr src;
            if (!parse_addr(source, 0, &src) || src.family != a.family)
                return make(Outcome::kError, 0, "bad source address " + source);
            if (::bind(fd, reinterpret_cast<sockaddr*>(&src.ss), src.len) != 0)
                return from_errno("bind source", errno);
        }
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a.ss), a.len) != 0 && errno != EINPROGRESS)
            return from_errno("connect", errno);
        pollfd pf{fd, POLLOUT, 0};
        int r = ::poll(&pf, 1, ms_left(deadline));
        if (r == 0) return make(Outcome::kTimeout, 0, "connect timed out");
        if (r < 0) return from_errno("poll", errno);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) return from_errno("connect", soerr);
        if (::send(fd, kPayload, sizeof kPayload - 1, MSG_NOSIGNAL) < 0)
            return from_errno("send", errno);
        return await_echo(fd, deadline, "tcp from " + local_addr(fd));
    });
}

Probe udp_probe(const Where& where, const std::string& addr, uint16_t port, int timeout_ms,
                UdpShape shape) {
    return run_in_child(where, timeout_ms, [&]() -> Probe {
        Addr a;
        if (!parse_addr(addr, port, &a)) return make(Outcome::kError, 0, "bad address " + addr);
        auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        int fd = ::socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return from_errno("socket", errno);
        std::string payload = kPayload;
        std::string shape_note;
        const bool v6 = a.family == AF_INET6;
        if (shape == UdpShape::kFragmented) {
            // Three times the veth MTU: the kernel fragments it after cgroup egress and
            // reassembles it before cgroup ingress.
            payload.resize(4500, 'f');
            shape_note = ", 4500 bytes";
        } else if (shape == UdpShape::kHeaderOptions && !v6) {
            const uint8_t opts[4] = {1, 1, 1, 0};  // NOP, NOP, NOP, EOL: IHL becomes 6
            if (::setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opts, sizeof opts) != 0)
                return from_errno("IP_OPTIONS", errno);
            shape_note = ", IPv4 options";
        } else if (shape == UdpShape::kHeaderOptions && v6) {
            // Hop-by-hop and destination options headers, 8 bytes each (one PadN option).
            const uint8_t ext[8] = {0, 0, 1, 4, 0, 0, 0, 0};
            if (::setsockopt(fd, IPPROTO_IPV6, IPV6_HOPOPTS, ext, sizeof ext) != 0)
                return from_errno("IPV6_HOPOPTS", errno);
            if (::setsockopt(fd, IPPROTO_IPV6, IPV6_DSTOPTS, ext, sizeof ext) != 0)
                return from_errno("IPV6_DSTOPTS", errno);
            shape_note = ", IPv6 extension headers";
        }
        if (::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&a.ss),
                     a.len) < 0)
            return from_errno(("sendto" + shape_note).c_str(), errno);
        return await_echo(fd, deadline, "udp from " + local_addr(fd) + shape_note, payload);
    });
}

Probe trace_probe(const Where& where, const std::string& addr, uint16_t port, int ttl,
                  int timeout_ms) {
    return run_in_child(where, timeout_ms, [&]() -> Probe {
        Addr a;
        if (!parse_addr(addr, port, &a)) return make(Outcome::kError, 0, "bad address " + addr);
        auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        const bool v6 = a.family == AF_INET6;
        int fd = ::socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return from_errno("socket", errno);
        int on = 1;
        if (::setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RECVERR : IP_RECVERR, &on,
                         sizeof on) != 0)
            return from_errno("RECVERR", errno);
        if (ttl > 0 && ::setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                                    v6 ? IPV6_UNICAST_HOPS : IP_TTL, &ttl, sizeof ttl) != 0)
            return from_errno("TTL", errno);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a.ss), a.len) != 0) {
            int e = errno;
            if (e == ENETUNREACH || e == EHOSTUNREACH)
                return make(Outcome::kUnreachable, e, errstr("connect", e));
            return from_errno("connect", e);
        }
        if (::send(fd, kPayload, sizeof kPayload - 1, 0) < 0) {
            int e = errno;
            if (e == EPERM) return make(Outcome::kEperm, e, "send");
            return make(Outcome::kError, e, errstr("send", e));
        }
        for (;;) {
            pollfd pf{fd, POLLIN, 0};
            int n = ::poll(&pf, 1, ms_left(deadline));
            if (n == 0) return make(Outcome::kTimeout, 0, "no echo, no ICMP error");
            if (n < 0) return from_errno("poll", errno);
            if (pf.revents & POLLERR) {
                char data[256], control[512];
                iovec iov{data, sizeof data};
                msghdr mh{};
                mh.msg_iov = &iov;
                mh.msg_iovlen = 1;
                mh.msg_control = control;
                mh.msg_controllen = sizeof control;
                if (::recvmsg(fd, &mh, MSG_ERRQUEUE) < 0) return from_errno("MSG_ERRQUEUE", errno);
                for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
                    if (!((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
                          (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)))
                        continue;
                    auto* ee = reinterpret_cast<sock_extended_err*>(CMSG_DATA(c));
                    auto* off = reinterpret_cast<sockaddr*>(ee + 1);  // SO_EE_OFFENDER
                    char from[INET6_ADDRSTRLEN] = "?";
                    if (off->sa_family == AF_INET)
                        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(off)->sin_addr, from,
                                    sizeof from);
                    else if (off->sa_family == AF_INET6)
                        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(off)->sin6_addr,
                                    from, sizeof from);
                    const bool exceeded =
                        (ee->ee_origin == SO_EE_ORIGIN_ICMP && ee->ee_type == 11) ||
                        (ee->ee_origin == SO_EE_ORIGIN_ICMP6 && ee->ee_type == 3);
                    if (exceeded) return make(Outcome::kTimeExceeded, 0, from);
                    return make(Outcome::kUnreachable, static_cast<int>(ee->ee_errno),
                                std::to_string(ee->ee_type) + "/" + std::to_string(ee->ee_code) +
                                    " from " + from);
                }
                continue;
            }
            char buf[256];
            ssize_t got = ::recv(fd, buf, sizeof buf, 0);
            if (got < 0) {
                if (errno == EHOSTUNREACH || errno == ENETUNREACH || errno == ECONNREFUSED)
                    continue;  // the error queue holds the details
                return from_errno("recv", errno);
            }
            if (std::string(buf, static_cast<size_t>(got)) == kPayload)
                return make(Outcome::kOk, 0, "echo from " + addr);
        }
    });
}

Probe ping_probe(const Where& where, const std::string& addr, int timeout_ms) {
    return run_in_child(where, timeout_ms, [&]() -> Probe {
        Addr a;
        if (!parse_addr(addr, 0, &a)) return make(Outcome::kError, 0, "bad address " + addr);
        auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        const bool v6 = a.family == AF_INET6;
        int fd = ::socket(a.family, SOCK_RAW | SOCK_CLOEXEC,
                          v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP});
        if (fd < 0) return from_errno("raw socket", errno);
        const uint16_t id = static_cast<uint16_t>(::getpid());
        const uint16_t seq = 1;
        uint8_t pkt[64] = {};
        if (v6) {
            auto* h = reinterpret_cast<icmp6_hdr*>(pkt);
            h->icmp6_type = ICMP6_ECHO_REQUEST;
            h->icmp6_id = htons(id);
            h->icmp6_seq = htons(seq);  // the kernel fills the ICMPv6 checksum
        } else {
            auto* h = reinterpret_cast<icmphdr*>(pkt);
            h->type = ICMP_ECHO;
            h->un.echo.id = htons(id);
            h->un.echo.sequence = htons(seq);
            h->checksum = inet_checksum(pkt, sizeof pkt);
        }
        if (::sendto(fd, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&a.ss), a.len) < 0)
            return from_errno("sendto", errno);
        uint8_t buf[2048];
        while (true) {
            pollfd pf{fd, POLLIN, 0};
            int r = ::poll(&pf, 1, ms_left(deadline));
            if (r == 0) return make(Outcome::kTimeout, 0, "no echo reply in time");
            if (r < 0) {
                if (errno == EINTR) continue;
                return from_errno("poll", errno);
            }
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0) return from_errno("recv", errno);
            // Raw sockets see every ICMP message: keep only our echo reply.
            if (v6) {
                if (n < static_cast<ssize_t>(sizeof(icmp6_hdr))) continue;
                auto* h = reinterpret_cast<icmp6_hdr*>(buf);
                if (h->icmp6_type == ICMP6_ECHO_REPLY && ntohs(h->icmp6_id) == id &&
                    ntohs(h->icmp6_seq) == seq)
                    return make(Outcome::kOk, 0, "icmpv6 echo reply");
            } else {
                auto* ip = reinterpret_cast<iphdr*>(buf);
                size_t ihl = static_cast<size_t>(ip->ihl) * 4;
                if (static_cast<size_t>(n) < ihl + sizeof(icmphdr)) continue;
                auto* h = reinterpret_cast<icmphdr*>(buf + ihl);
                if (h->type == ICMP_ECHOREPLY && ntohs(h->un.echo.id) == id &&
                    ntohs(h->un.echo.sequence) == seq)
                    return make(Outcome::kOk, 0, "icmp echo reply");
            }
        }
    });
}

// ---------------------------------------------------------------- servers

namespace {

// Forks a long-lived child: enters `where`, runs setup (which returns "" when ready),
// reports readiness over a pipe, then runs loop forever. Returns the pid (-1 on failure).
pid_t spawn_service(const Where& where, const std::function<std::string()>& setup,
                    const std::function<void()>& loop, std::string* error) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        *error = errstr("pipe", errno);
        return -1;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        *error = errstr("fork", errno);
        ::close(p[0]);
        ::close(p[1]);
        return -1;
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(p[0]);
        std::string e = enter(where);
        if (e.empty()) e = setup();
        std::string msg = e.empty() ? "OK" : e;
        [[maybe_unused]] ssize_t n = ::write(p[1], msg.data(), msg.size());
        ::close(p[1]);
        if (!e.empty()) ::_exit(1);
        loop();
        ::_exit(0);
    }
    ::close(p[1]);
    char buf[512];
    ssize_t n = 0;
    pollfd pf{p[0], POLLIN, 0};
    if (::poll(&pf, 1, 10000) > 0) n = ::read(p[0], buf, sizeof buf);
    ::close(p[0]);
    std::string msg = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "no readiness report";
    if (msg != "OK") {
        *error = msg;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return -1;
    }
    return pid;
}

void stop_service(pid_t pid) {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
}

}  // namespace

std::vector<Endpoint> EchoServer::any_addr(const std::vector<uint16_t>& ports) {
    std::vector<Endpoint> eps;
    for (uint16_t p : ports) {
        eps.push_back({Proto::kTcp, "::", p});
        eps.push_back({Proto::kUdp, "::", p});
    }
    return eps;
}

EchoServer::EchoServer(const Where& where, const std::vector<Endpoint>& endpoints) {
    struct Sock {
        int fd;
        Proto proto;
    };
    auto socks = std::make_shared<std::vector<Sock>>();
    auto setup = [&]() -> std::string {
        for (const auto& ep : endpoints) {
            Addr a;
            if (!parse_addr(ep.addr, ep.port, &a)) return "bad address " + ep.addr;
            int type = ep.proto == Proto::kTcp ? SOCK_STREAM : SOCK_DGRAM;
            int fd = ::socket(a.family, type | SOCK_CLOEXEC, 0);
            if (fd < 0) return errstr("socket", errno);
            int one = 1, zero = 0;
            ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (a.family == AF_INET6)
                ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
            if (::bind(fd, reinterpret_cast<sockaddr*>(&a.ss), a.len) != 0)
                return errstr(("bind " + ep.addr + ":" + std::to_string(ep.port)).c_str(), errno);
            if (ep.proto == Proto::kTcp && ::listen(fd, 64) != 0) return errstr("listen", errno);
            socks->push_back({fd, ep.proto});
        }
        return "";
    };
    auto loop = [socks]() {
        std::vector<pollfd> pfs;
        for (const auto& s : *socks) pfs.push_back({s.fd, POLLIN, 0});
        static char buf[65536];
        while (true) {
            if (::poll(pfs.data(), pfs.size(), -1) < 0) continue;
            for (size_t i = 0; i < pfs.size(); ++i) {
                if (!(pfs[i].revents & POLLIN)) continue;
                if ((*socks)[i].proto == Proto::kUdp) {
                    sockaddr_storage from{};
                    socklen_t fl = sizeof from;
                    ssize_t n = ::recvfrom(pfs[i].fd, buf, sizeof buf, MSG_DONTWAIT,
                                           reinterpret_cast<sockaddr*>(&from), &fl);
                    if (n > 0)
                        ::sendto(pfs[i].fd, buf, static_cast<size_t>(n), 0,
                                 reinterpret_cast<sockaddr*>(&from), fl);
                    continue;
                }
                int c = ::accept4(pfs[i].fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0) continue;
                // One line per connection; a client that never sends is given up on.
                pollfd cp{c, POLLIN, 0};
                if (::poll(&cp, 1, 2000) > 0) {
                    ssize_t n = ::recv(c, buf, sizeof buf, 0);
                    if (n > 0) ::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
                }
                ::close(c);
            }
        }
    };
    pid_ = spawn_service(where, setup, loop, &error_);
    ok_ = pid_ > 0;
}

EchoServer::~EchoServer() { stop_service(pid_); }

TcpSink::TcpSink(const Where& where, uint16_t port) {
    auto listener = std::make_shared<int>(-1);
    auto setup = [&]() -> std::string {
        Addr a;
        parse_addr("::", port, &a);
        int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return errstr("socket", errno);
        int one = 1, zero = 0;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a.ss), a.len) != 0)
            return errstr(("bind [::]:" + std::to_string(port)).c_str(), errno);
        if (::listen(fd, 64) != 0) return errstr("listen", errno);
        *listener = fd;
        return "";
    };
    auto loop = [listener]() {
        std::vector<pollfd> pfs{{*listener, POLLIN, 0}};
        static char buf[65536];
        while (true) {
            if (::poll(pfs.data(), pfs.size(), -1) < 0) continue;
            if (pfs[0].revents & POLLIN) {
                int c = ::accept4(*listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c >= 0) pfs.push_back({c, POLLIN, 0});
            }
            for (size_t i = 1; i < pfs.size(); ++i) {
                if (!(pfs[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t n = ::recv(pfs[i].fd, buf, sizeof buf, 0);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    ::close(pfs[i].fd);
                    pfs[i].fd = -1;
                }
            }
            std::erase_if(pfs, [](const pollfd& p) { return p.fd < 0; });
        }
    };
    pid_ = spawn_service(where, setup, loop, &error_);
    ok_ = pid_ > 0;
}

TcpSink::~TcpSink() { stop_service(pid_); }

TcpBulk::TcpBulk(const Where& where, const std::string& addr, uint16_t port, int sndbuf) {
    Addr to;
    if (!parse_addr(addr, port, &to)) {
        error_ = "bad address " + addr;
        return;
    }
    auto fd = std::make_shared<int>(-1);
    auto connect_once = [to, sndbuf]() -> int {
        int s = ::socket(to.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) return -errno;
        if (sndbuf > 0) ::setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (::connect(s, reinterpret_cast<const sockaddr*>(&to.ss), to.len) != 0) {
            int e = errno;
            ::close(s);
            return -e;
        }
        return s;
    };
    auto setup = [&]() -> std::string {
        *fd = connect_once();
        if (*fd < 0) return errstr(("connect " + addr).c_str(), -*fd);
        return "";
    };
    auto loop = [fd, connect_once]() {
        static char buf[65536];
        int s = *fd;
        while (true) {
            if (s >= 0 && ::send(s, buf, sizeof buf, MSG_NOSIGNAL) >= 0) continue;
            if (s >= 0) ::close(s);
            ::usleep(100 * 1000);
            s = connect_once();
        }
    };
    pid_ = spawn_service(where, setup, loop, &error_);
    ok_ = pid_ > 0;
}

TcpBulk::~TcpBulk() { stop_service(pid_); }

Sleeper::Sleeper(const Where& where) {
    pid_ = spawn_service(
        where, [] { return std::string(); },
        [] {
            while (true) ::pause();
        },
        &error_);
    ok_ = pid_ > 0;
}

Sleeper::~Sleeper() { stop_service(pid_); }

std::ostream& operator<<(std::ostream& o, const HammerCounts& c) {
    return o << "{allowed port: " << c.allowed_passed << " passed, " << c.allowed_dropped
             << " dropped; denied port: " << c.denied_passed << " passed, " << c.denied_dropped
             << " dropped; other errors: " << c.errors << "}";
}

UdpHammer::UdpHammer(const Where& where, const std::string& addr, uint16_t allowed_port,
                     uint16_t denied_port) {
    int ctl[2], res[2], ready[2];
    if (::pipe2(ctl, O_CLOEXEC) != 0 || ::pipe2(res, O_CLOEXEC) != 0 ||
        ::pipe2(ready, O_CLOEXEC) != 0) {
        error_ = errstr("pipe", errno);
        return;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        error_ = errstr("fork", errno);
        for (int fd : {ctl[0], ctl[1], res[0], res[1], ready[0], ready[1]}) ::close(fd);
        return;
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(ctl[1]);
        ::close(res[0]);
        ::close(ready[0]);
        Addr allowed, denied;
        std::string e = enter(where);
        if (e.empty() &&
            (!parse_addr(addr, allowed_port, &allowed) || !parse_addr(addr, denied_port, &denied)))
            e = "bad address " + addr;
        int fd = -1;
        if (e.empty()) {
            fd = ::socket(allowed.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (fd < 0) e = errstr("socket", errno);
        }
        std::string msg = e.empty() ? "OK" : e;
        [[maybe_unused]] ssize_t n = ::write(ready[1], msg.data(), msg.size());
        ::close(ready[1]);
        if (!e.empty()) ::_exit(1);
        HammerCounts c;
        auto send = [&](const Addr& to, uint64_t& passed, uint64_t& dropped) {
            if (::sendto(fd, kPayload, sizeof kPayload - 1, 0,
                         reinterpret_cast<const sockaddr*>(&to.ss), to.len) >= 0)
                ++passed;
            else if (errno == EPERM)
                ++dropped;
            else
                ++c.errors;
        };
        while (true) {
            pollfd pf{ctl[0], POLLIN, 0};
            if (::poll(&pf, 1, 0) != 0) break;  // the parent closed the control pipe
            send(allowed, c.allowed_passed, c.allowed_dropped);
            send(denied, c.denied_passed, c.denied_dropped);
            // Drain echoes so the receive queue never matters.
            char buf[256];
            while (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
            }
            ::usleep(200);
        }
        n = ::write(res[1], &c, sizeof c);
        ::_exit(0);
    }
    ::close(ctl[0]);
    ::close(res[1]);
    ::close(ready[1]);
    pid_ = pid;
    ctl_fd_ = ctl[1];
    result_fd_ = res[0];
    char buf[512];
    ssize_t n = 0;
    pollfd pf{ready[0], POLLIN, 0};
    if (::poll(&pf, 1, 10000) > 0) n = ::read(ready[0], buf, sizeof buf);
    ::close(ready[0]);
    std::string msg = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "no readiness report";
    if (msg != "OK") {
        error_ = msg;
        return;
    }
    ok_ = true;
}

HammerCounts UdpHammer::stop() {
    HammerCounts c;
    if (pid_ <= 0) return c;
    ::close(ctl_fd_);
    ctl_fd_ = -1;
    pollfd pf{result_fd_, POLLIN, 0};
    if (::poll(&pf, 1, 5000) > 0 && ::read(result_fd_, &c, sizeof c) != sizeof c) c = {};
    ::close(result_fd_);
    result_fd_ = -1;
    stop_service(pid_);
    pid_ = -1;
    return c;
}

UdpHammer::~UdpHammer() {
    if (ctl_fd_ >= 0) ::close(ctl_fd_);
    if (result_fd_ >= 0) ::close(result_fd_);
    stop_service(pid_);
}

pid_t dead_pid() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
    return pid;
}

}  // namespace pbpf::it
