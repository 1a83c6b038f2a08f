// Integration-test harness: namespaces, veths, cgroups, agent processes and CLI runs,
// plus a sweep at start-up that removes what crashed earlier runs left behind.
#include "tests/integration/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

#ifndef PBPF_AGENT_BIN
#define PBPF_AGENT_BIN "personabpfd"
#endif
#ifndef PBPF_CLI_BIN
#define PBPF_CLI_BIN "personabpf"
#endif

namespace pbpf::it {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_counter{0};

int ms_left(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

std::string errno_text(int e) { return std::string(std::strerror(e)); }

// Reaps pid, waiting at most `timeout`; returns the wait status.
std::optional<int> reap(pid_t pid, std::chrono::milliseconds timeout) {
    std::optional<int> status;
    wait_until(
        [&] {
            int st = 0;
            pid_t r = ::waitpid(pid, &st, WNOHANG);
            if (r == pid || (r < 0 && errno == ECHILD)) {
                status = (r == pid) ? st : -1;
                return true;
            }
            return false;
        },
        timeout, 5ms);
    return status;
}

void kill_and_reap(pid_t pid) {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    reap(pid, 10s);
}

bool is_dir(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    return names;
}

std::vector<std::string> mountinfo_points(const std::string& fstype) {
    std::vector<std::string> points;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // id parent maj:min root mountpoint options [optional...] - fstype source superopts
        auto sep = line.find(" - ");
        if (sep == std::string::npos) continue;
        std::istringstream tail(line.substr(sep + 3));
        std::string type;
        tail >> type;
        if (type != fstype) continue;
        std::istringstream head(line.substr(0, sep));
        std::string id, parent, dev, root, mnt;
        head >> id >> parent >> dev >> root >> mnt;
        if (root == "/") points.push_back(mnt);
    }
    return points;
}

// The /29 block and IPv6 /64 of a veth: unique per (pid, counter), probed against the
// addresses already configured in the root netns so parallel test processes do not clash.
constexpr uint32_t kBlocks = (1u << 17) / 8;  // /29 blocks in 198.18.0.0/15

std::string v4_of_block(uint32_t block, uint32_t host) {
    uint32_t a = (198u << 24) | (18u << 16) | (block * 8 + host);
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

std::string v6_of_block(uint32_t block, uint32_t host) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "fd00:%x::%x", block + 1, host);
    return buf;
}

std::string run_ok(const std::vector<std::string>& argv) {
    CommandResult r = run_command(argv, 15s);
    if (r.exit_code == 0) return "";
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    return cmd + "-> " + r.describe();
}

}  // namespace

std::string unique_name() {
    return "pbpf-it-" + std::to_string(::getpid()) + "-" + std::to_string(next_counter());
}

int next_counter() { return ++g_counter; }

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
    auto deadline = Clock::now() + timeout;
    while (true) {
        if (pred()) return true;
        if (Clock::now() >= deadline) return pred();
        std::this_thread::sleep_for(interval);
    }
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool write_file(const std::string& path, const std::string& content, std::string* err) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (err) *err = path + ": " + errno_text(errno);
        return false;
    }
    ssize_t n = ::write(fd, content.data(), content.size());
    int e = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(content.size())) {
        if (err) *err = path + ": " + errno_text(e);
        return false;
    }
    return true;
}

bool path_exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

void remove_tree(const std::string& path) {
    if (path.empty() || path == "/") return;
    if (is_dir(path)) {
        for (const auto& n : list_dir(path)) remove_tree(path + "/" + n);
        ::rmdir(path.c_str());
    } else {
        ::unlink(path.c_str());
    }
}

std::string cgroup2_mount() {
    auto p = mountinfo_points("cgroup2");
    return p.empty() ? "" : p.front();
}

std::string bpffs_mount() {
    auto p = mountinfo_points("bpf");
    // Prefer the conventional location when bpffs is mounted more than once.
    for (const auto& m : p)
        if (m == "/sys/fs/bpf") return m;
    return p.empty() ? "" : p.front();
}

std::string CommandResult::describe() const {
    std::ostringstream o;
    o << "exit=" << exit_code << (timed_out ? " (timed out)" : "") << "\n--- stdout ---\n"
      << out << "\n--- stderr ---\n"
      << err;
    return o.str();
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::vector<std::string>& extra_env) {
    CommandResult res;
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return res;
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return res;
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::dup2(out_pipe[1], 1);
        ::dup2(err_pipe[1], 2);
        int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, 0);
        for (const auto& e : extra_env) ::putenv(const_cast<char*>(e.c_str()));
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (pid < 0) {
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        res.err = "fork: " + errno_text(errno);
        return res;
    }

    auto deadline = Clock::now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
        int left = ms_left(deadline);
        if (left == 0) {
            res.timed_out = true;
            break;
        }
        int r = ::poll(fds, 2, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? res.out : res.err).append(buf, static_cast<size_t>(n));
            } else {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) ::close(f.fd);
    if (res.timed_out) ::kill(pid, SIGKILL);
    auto st = reap(pid, res.timed_out ? 10s : std::chrono::milliseconds(ms_left(deadline) + 5000));
    if (!st) {
        kill_and_reap(pid);
        res.timed_out = true;
    } else if (WIFEXITED(*st) && !res.timed_out) {
        res.exit_code = WEXITSTATUS(*st);
    }
    return res;
}

// ---------------------------------------------------------------- ScratchDir

ScratchDir::ScratchDir() : path_("/tmp/" + unique_name()) { ::mkdir(path_.c_str(), 0755); }

ScratchDir::~ScratchDir() { remove_tree(path_); }

std::string ScratchDir::write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    write_file(p, content);
    return p;
}

// ---------------------------------------------------------------- Netns

Netns::Netns() : name_(unique_name()) {
    if (std::string e = run_ok({"ip", "netns", "add", name_}); !e.empty()) {
        error_ = e;
        return;
    }
    if (std::string e = run_ok({"nsenter", "--net=" + path(), "ip", "link", "set", "lo", "up"});
        !e.empty()) {
        error_ = e;
        return;
    }
    ok_ = true;
}

Netns::~Netns() {
    if (path_exists(path())) run_command({"ip", "netns", "del", name_}, 15s);
}

CommandResult Netns::exec(const std::vector<std::string>& argv) const {
    std::vector<std::string> full = {"nsenter", "--net=" + path()};
    full.insert(full.end(), argv.begin(), argv.end());
    return run_command(full, 15s);
}

// ---------------------------------------------------------------- Veth

Veth::Veth(const Netns& ns) {
    // Interface names are limited to 15 bytes: "pbit<hex pid>-<n>h|p".
    char base[IFNAMSIZ];
    std::snprintf(base, sizeof base, "pbit%x-%d", static_cast<unsigned>(::getpid()),
                  next_counter() % 1000);
    host_if_ = std::string(base) + "h";
    peer_if_ = std::string(base) + "p";

    CommandResult addrs = run_command({"ip", "-o", "addr", "show"}, 10s);
    uint32_t block = (static_cast<uint32_t>(::getpid()) * 64u + g_counter.load()) % kBlocks;
    for (uint32_t i = 0; i < kBlocks; ++i, block = (block + 1) % kBlocks) {
        if (block == 0) continue;
        if (addrs.out.find(" " + v4_of_block(block, 1) + "/") == std::string::npos &&
            addrs.out.find(" " + v4_of_block(block, 2) + "/") == std::string::npos &&
            addrs.out.find(" " + v6_of_block(block, 1) + "/") == std::string::npos)
            break;
    }
    host4 = v4_of_block(block, 1);
    peer4 = v4_of_block(block, 2);
    alt4 = v4_of_block(block, 3);
    unused4 = v4_of_block(block, 4);
    net4 = v4_of_block(block, 0) + "/29";
    net6 = v6_of_block(block, 0) + "/64";
    host6 = v6_of_block(block, 1);
    peer6 = v6_of_block(block, 2);
    alt6 = v6_of_block(block, 3);

    std::vector<std::vector<std::string>> host_cmds = {
        {"ip", "link", "add", host_if_, "type", "veth", "peer", "name", peer_if_, "netns",
         ns.name()},
        {"ip", "addr", "add", host4 + "/29", "dev", host_if_},
        {"ip", "-6", "addr", "add", host6 + "/64", "dev", host_if_, "nodad"},
        {"ip", "link", "set", host_if_, "up"},
    };
    std::vector<std::vector<std::string>> peer_cmds = {
        {"ip", "addr", "add", peer4 + "/29", "dev", peer_if_},
        {"ip", "addr", "add", alt4 + "/29", "dev", peer_if_},
        {"ip", "-6", "addr", "add", peer6 + "/64", "dev", peer_if_, "nodad"},
        {"ip", "-6", "addr", "add", alt6 + "/64", "dev", peer_if_, "nodad"},
        {"ip", "link", "set", peer_if_, "up"},
    };
    for (const auto& c : host_cmds) {
        if (std::string e = run_ok(c); !e.empty()) {
            error_ = e;
            return;
        }
    }
    for (const auto& c : peer_cmds) {
        CommandResult r = ns.exec(c);
        if (r.exit_code != 0) {
            error_ = "in netns " + ns.name() + ": " + c[1] + " " + c[2] + " -> " + r.describe();
            return;
        }
    }
    // A SYN sent before carrier is up would be retransmitted only after 1 s, longer than
    // the probes wait, so wait for the operational state of the host side (veth reports
    // "up" only when both ends are up).
    if (!wait_until(
            [&] {
                std::string s = read_file("/sys/class/net/" + host_if_ + "/operstate");
                return s.rfind("up", 0) == 0;
            },
            5s)) {
        error_ = "veth " + host_if_ + " did not come up";
        return;
    }
    ok_ = true;
}

Veth::~Veth() {
    if (path_exists("/sys/class/net/" + host_if_))
        run_command({"ip", "link", "del", host_if_}, 15s);
}

// ---------------------------------------------------------------- CgroupTree

void destroy_cgroup_tree(const std::string& abs_path) {
    if (!is_dir(abs_path)) return;
    // cgroup.kill takes the whole subtree at once (Linux 5.14+); fall back to SIGKILL of
    // every listed process.
    auto all_pids = [&](auto&& self, const std::string& dir, std::vector<pid_t>& out) -> void {
        std::istringstream procs(read_file(dir + "/cgroup.procs"));
        pid_t p;
        while (procs >> p) out.push_back(p);
        for (const auto& n : list_dir(dir))
            if (is_dir(dir + "/" + n)) self(self, dir + "/" + n, out);
    };
    std::vector<pid_t> pids;
    all_pids(all_pids, abs_path, pids);
    if (!pids.empty()) {
        if (!write_file(abs_path + "/cgroup.kill", "1"))
            for (pid_t p : pids) ::kill(p, SIGKILL);
        // Our own children must be reaped to leave no zombies; others vanish on their own.
        std::vector<pid_t> pending = pids;
        wait_until(
            [&] {
                std::erase_if(pending, [](pid_t p) {
                    pid_t r = ::waitpid(p, nullptr, WNOHANG);
                    return r == p || (r < 0 && errno == ECHILD);
                });
                std::vector<pid_t> left;
                all_pids(all_pids, abs_path, left);
                return left.empty() && pending.empty();
            },
            5s);
    }
    auto rm = [&](auto&& self, const std::string& dir) -> void {
        for (const auto& n : list_dir(dir))
            if (is_dir(dir + "/" + n)) self(self, dir + "/" + n);
        if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
            // A just-killed process can keep the cgroup busy for a moment.
            wait_until([&] { return ::rmdir(dir.c_str()) == 0 || errno == ENOENT; }, 3s);
        }
    };
    rm(rm, abs_path);
}

CgroupTree::CgroupTree() {
    std::string mnt = cgroup2_mount();
    if (mnt.empty()) {
        error_ = "no cgroup2 mount in /proc/self/mountinfo";
        return;
    }
    path_ = mnt + "/" + unique_name();
    if (::mkdir(path_.c_str(), 0755) != 0) {
        error_ = "mkdir " + path_ + ": " + errno_text(errno);
        path_.clear();
        return;
    }
    ok_ = true;
}

CgroupTree::~CgroupTree() {
    if (!path_.empty()) destroy_cgroup_tree(path_);
}

std::string CgroupTree::rel() const { return path_.substr(cgroup2_mount().size()); }

std::string CgroupTree::create(const std::string& sub) {
    std::string p = path_;
    std::istringstream parts(sub);
    std::string part;
    while (std::getline(parts, part, '/')) {
        if (part.empty()) continue;
        p += "/" + part;
        ::mkdir(p.c_str(), 0755);
    }
    return p;
}

// ---------------------------------------------------------------- HTTP on the unix socket

HttpResponse raw_http(const std::string& socket_path, const std::string& request,
                      std::chrono::milliseconds timeout, bool half_close) {
    HttpResponse resp;
    auto deadline = Clock::now() + timeout;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return resp;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", socket_path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return resp;
    }
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t sent = 0;
    while (sent < request.size() && ms_left(deadline) > 0) {
        ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;  // the server may close early (e.g. on an oversized body)
        }
        sent += static_cast<size_t>(n);
    }
    if (half_close) ::shutdown(fd, SHUT_WR);
    char buf[65536];
    while (true) {
        pollfd p{fd, POLLIN, 0};
        int left = ms_left(deadline);
        if (left == 0) break;
        int r = ::poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        resp.raw.append(buf, static_cast<size_t>(n));
        // Stop once a complete response with Content-Length has arrived.
        auto hdr_end = resp.raw.find("\r\n\r\n");
        if (hdr_end != std::string::npos) {
            std::string head = resp.raw.substr(0, hdr_end);
            std::transform(head.begin(), head.end(), head.begin(), ::tolower);
            auto cl = head.find("content-length:");
            if (cl != std::string::npos) {
                size_t len = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
                if (resp.raw.size() >= hdr_end + 4 + len) break;
            }
        }
    }
    ::close(fd);
    static const std::regex status_line(R"(^HTTP/1\.[01] (\d{3}))");
    std::smatch m;
    if (std::regex_search(resp.raw, m, status_line)) resp.status = std::stoi(m[1]);
    auto hdr_end = resp.raw.find("\r\n\r\n");
    if (hdr_end != std::string::npos) resp.body = resp.raw.substr(hdr_end + 4);
    return resp;
}

HttpResponse http(const std::string& socket_path, const std::string& method,
                  const std::string& path, const std::string& body,
                  std::chrono::milliseconds timeout) {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    if (!body.empty() || method == "POST" || method == "PUT")
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n";
    req += "\r\n" + body;
    return raw_http(socket_path, req, timeout);
}

// ---------------------------------------------------------------- Agent

std::string agent_binary() {
    const char* e = std::getenv("PBPF_IT_AGENT");
    return e ? e : PBPF_AGENT_BIN;
}

std::string cli_binary() {
    const char* e = std::getenv("PBPF_IT_CLI");
    return e ? e : PBPF_CLI_BIN;
}

std::vector<std::string> agent_env() { return {"PERSONABPF_TEST_SAFETY=1"}; }

Agent::Agent(const std::string& cgroup_root) {
    std::string name = unique_name();
    scratch_ = "/tmp/" + name;
    ::mkdir(scratch_.c_str(), 0755);
    paths_.socket = scratch_ + "/agent.sock";
    paths_.state_dir = scratch_ + "/state";
    paths_.log_file = scratch_ + "/agent.log";
    paths_.bpffs_root = bpffs_mount() + "/" + name;
    paths_.cgroup_root = cgroup_root;
}

Agent::Agent(AgentPaths paths, Owns owns) : paths_(std::move(paths)), owns_(owns) {}

Agent::~Agent() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        reap(pid_, 10s);
        pid_ = -1;
    }
    if (owns_ == Owns::kPins) remove_tree(paths_.bpffs_root);
    if (owns_ == Owns::kInstance &&
        (path_exists(paths_.bpffs_root) || path_exists(paths_.state_dir))) {
        CommandResult r = uninstall(true);
        if (r.exit_code != 0)
            std::cerr << "[harness] personabpfd --uninstall for " << paths_.bpffs_root
                      << " failed: " << r.describe() << "\n";
        // Whatever uninstall left: unlinking the last pin of a link detaches it.
        remove_tree(paths_.bpffs_root);
        remove_tree(paths_.state_dir);
    }
    if (!scratch_.empty()) remove_tree(scratch_);
}

void Agent::log_note(const std::string& note) const {
    int fd = ::open(paths_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::string line = "=== harness: " + note + " ===\n";
    [[maybe_unused]] ssize_t n = ::write(fd, line.data(), line.size());
    ::close(fd);
}

void Agent::spawn() {
    std::vector<std::string> argv = {binary.empty() ? agent_binary() : binary,
                                     "--socket",
                                     paths_.socket,
                                     "--state-dir",
                                     paths_.state_dir,
                                     "--bpffs-root",
                                     paths_.bpffs_root,
                                     "--cgroup-root",
                                     paths_.cgroup_root,
                                     "--log-level",
                                     "debug"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    // nsenter execs the agent in place: pid_ stays the agent's.
    if (!netns.empty()) argv.insert(argv.begin(), {"nsenter", "--net=" + netns});
    log_note("starting personabpfd");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    std::vector<std::string> env = agent_env();
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        int log = ::open(paths_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) {
            ::dup2(log, 1);
            ::dup2(log, 2);
        }
        int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, 0);
        for (auto& e : env) ::putenv(e.data());
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    pid_ = pid;
}

::testing::AssertionResult Agent::start(std::chrono::milliseconds timeout) {
    if (::access(agent_binary().c_str(), X_OK) != 0)
        return ::testing::AssertionFailure() << "agent binary missing: " << agent_binary();
    spawn();
    bool exited = false;
    bool ready = wait_until(
        [&] {
            if (!running()) {
                exited = true;
                return true;
            }
            return api_ready();
        },
        timeout, 20ms);
    if (exited)
        return ::testing::AssertionFailure() << "personabpfd exited during start-up; log:\n"
                                             << log();
    if (!ready)
        return ::testing::AssertionFailure() << "personabpfd did not answer GET /v1/status within "
                                             << timeout.count() << " ms; log:\n"
                                             << log();
    return ::testing::AssertionSuccess();
}

bool Agent::running() {
    if (pid_ <= 0) return false;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == 0) return true;
    log_note("personabpfd pid " + std::to_string(pid_) + " exited, wait status " +
             std::to_string(st));
    pid_ = -1;
    return false;
}

std::optional<int> Agent::wait_exit(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    auto st = reap(pid_, timeout);
    if (st) pid_ = -1;
    return st;
}

void Agent::stop(int sig) {
    if (pid_ <= 0) return;
    log_note("sending signal " + std::to_string(sig) + " to personabpfd");
    ::kill(pid_, sig);
    if (!reap(pid_, 5s)) {
        ::kill(pid_, SIGKILL);
        reap(pid_, 10s);
    }
    pid_ = -1;
}

CommandResult Agent::uninstall(bool purge_state) const {
    std::vector<std::string> argv = {agent_binary(),    "--uninstall", "--bpffs-root",
                                     paths_.bpffs_root, "--state-dir", paths_.state_dir};
    if (purge_state) argv.push_back("--purge-state");
    // The config too: it names what the agent set up beyond its pins ([qos] interfaces).
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    if (!netns.empty()) argv.insert(argv.begin(), {"nsenter", "--net=" + netns});
    return run_command(argv, 20s, agent_env());
}

std::string Agent::teardown() {
    if (pid_ > 0) stop(SIGTERM);
    if (owns_ != Owns::kInstance) return "";
    CommandResult r = uninstall(true);
    if (r.exit_code != 0) return "personabpfd --uninstall --purge-state: " + r.describe();
    CommandResult left =
        run_command({"find", paths_.bpffs_root, "-mindepth", "1", "-not", "-type", "d"}, 5s);
    if (!left.out.empty()) return "pins left after --uninstall:\n" + left.out;
    for (const char* f : {"/state.db", "/agent.lock", "/agent.pid"})
        if (path_exists(paths_.state_dir + f))
            return std::string("--purge-state left ") + paths_.state_dir + f;
    return "";
}

bool Agent::api_ready() const {
    return http(paths_.socket, "GET", "/v1/status", "", 2s).status == 200;
}

CommandResult Agent::cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {cli_binary(), "--socket", paths_.socket};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 20s);
}

CommandResult Agent::cli_json(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {cli_binary(), "--socket", paths_.socket, "-j"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 20s);
}

// ---------------------------------------------------------------- leftover sweep

namespace {

bool pid_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Names "pbpf-it-<pid>-<n>" whose pid is gone: leftovers of a crashed or killed run.
bool dead_owner(const std::string& name, std::string* prefix) {
    static const std::regex re(R"(^pbpf-it-(\d+)-\d+$)");
    std::smatch m;
    if (!std::regex_match(name, m, re)) return false;
    pid_t pid = static_cast<pid_t>(std::stol(m[1]));
    if (pid == ::getpid() || pid_alive(pid)) return false;
    if (prefix) *prefix = "pbpf-it-" + std::string(m[1]) + "-";
    return true;
}

void sweep_leftovers() {
    if (::geteuid() != 0) return;
    std::vector<std::string> dead_prefixes;
    auto note = [&](const std::string& dir, const std::string& name) {
        std::string prefix;
        if (!dead_owner(name, &prefix)) return false;
        std::cerr << "[harness] removing leftover " << dir << "/" << name << "\n";
        if (std::find(dead_prefixes.begin(), dead_prefixes.end(), prefix) == dead_prefixes.end())
            dead_prefixes.push_back(prefix);
        return true;
    };
    std::vector<std::string> tmp_dirs, pin_dirs, cgroups, netns;
    for (const auto& n : list_dir("/tmp"))
        if (note("/tmp", n)) tmp_dirs.push_back("/tmp/" + n);
    if (std::string b = bpffs_mount(); !b.empty())
        for (const auto& n : list_dir(b))
            if (note(b, n)) pin_dirs.push_back(b + "/" + n);
    if (std::string c = cgroup2_mount(); !c.empty())
        for (const auto& n : list_dir(c))
            if (note(c, n)) cgroups.push_back(c + "/" + n);
    for (const auto& n : list_dir("/run/netns"))
        if (note("/run/netns", n)) netns.push_back(n);
    if (dead_prefixes.empty()) return;

    // Agents of dead test processes still hold their pin dirs: kill them first.
    for (const auto& n : list_dir("/proc")) {
        if (n.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string cmd = read_file("/proc/" + n + "/cmdline");
        if (cmd.find("personabpfd") == std::string::npos) continue;
        for (const auto& prefix : dead_prefixes) {
            if (cmd.find(prefix) != std::string::npos) {
                std::cerr << "[harness] killing leftover agent pid " << n << "\n";
                ::kill(static_cast<pid_t>(std::stol(n)), SIGKILL);
            }
        }
    }
    for (const auto& p : pin_dirs) {
        // Let the agent binary detach what it knows; then drop the pins regardless.
        std::string state;
        for (const auto& t : tmp_dirs)
            if (t.substr(5) == p.substr(p.rfind('/') + 1)) state = t + "/state";
        if (!state.empty())
            run_command({agent_binary(), "--uninstall", "--bpffs-root", p, "--state-dir", state,
                         "--purge-state"},
                        20s, agent_env());
        remove_tree(p);
    }
    for (const auto& c : cgroups) destroy_cgroup_tree(c);
    for (const auto& n : netns) run_command({"ip", "netns", "del", n}, 15s);
    for (const auto& t : tmp_dirs) remove_tree(t);
}

class LeftoverSweep : public ::testing::Environment {
  public:
    void SetUp() override { sweep_leftovers(); }
};

[[maybe_unused]] ::testing::Environment* const g_sweep =
    ::testing::AddGlobalTestEnvironment(new LeftoverSweep);

}  // namespace

TestUser::TestUser(std::string name, const std::string& extra_group) : name_(std::move(name)) {
    std::string cmd = "useradd --system --no-create-home --shell /usr/sbin/nologin " +
                      (extra_group.empty() ? "" : "-G " + extra_group + " ") + name_ +
                      " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) return;
    if (passwd* pw = ::getpwnam(name_.c_str())) {
        uid_ = pw->pw_uid;
        gid_ = pw->pw_gid;
        ok_ = true;
    }
}

TestUser::~TestUser() {
    std::string cmd = "userdel " + name_ + " >/dev/null 2>&1";
    if (ok_ && std::system(cmd.c_str()) != 0)
        std::fprintf(stderr, "cannot remove user %s\n", name_.c_str());
}

TestGroup::TestGroup(std::string name) : name_(std::move(name)) {
    ok_ = std::system(("groupadd --system " + name_ + " >/dev/null 2>&1").c_str()) == 0;
}

TestGroup::~TestGroup() {
    if (ok_ && std::system(("groupdel " + name_ + " >/dev/null 2>&1").c_str()) != 0)
        std::fprintf(stderr, "cannot remove group %s\n", name_.c_str());
}

}  // namespace pbpf::it
