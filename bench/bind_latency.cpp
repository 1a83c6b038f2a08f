// bind_latency: how long a running personabpfd takes from a cgroup's mkdir to the binding
// being in the kernel (its pinned pbpf_bindings holds the cgroup id), and from the rmdir to
// the entry being gone; cgroups one at a time and 1,000 at once. See docs/benchmarks.md,
// "Binding: latency from cgroup creation to enforcement, and 10,000 bound cgroups".
//
// Runs a private agent (own socket, state dir, pin dir /sys/fs/bpf/pbbl-<pid>, managed
// cgroup root /pbbl-<pid> created here, embedded default config) with one persona whose
// bind block matches /pbbl-<pid>/w-*. Nothing else is attached anywhere, no packet is sent.
// Every exit path (errors, SIGINT/SIGTERM/SIGHUP) removes the cgroups, stops the agent,
// uninstalls its pins and removes the root cgroup and the run dir.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agent/cgroup.h"
#include "maps/abi/binding.h"

extern char** environ;

namespace pbpf::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};
[[noreturn]] void fail(const std::string& what) { throw Failure(what); }
[[noreturn]] void fail_errno(const std::string& what) {
    throw Failure(what + ": " + std::strerror(errno));
}
void check_stop() {
    if (g_stop) fail("interrupted by a signal");
}

struct Options {
    std::string build;  // build dir holding agent/personabpfd and tools/personabpf
    int count = 1000;
    int warmup = 10;           // sequential cgroups before the measured ones, not counted
    double timeout_ms = 5000;  // per cgroup (sequential) or per phase (burst)
    std::string json_out;
    std::string agent_log_level = "warn";
};

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string load_average() {
    std::istringstream in(read_file("/proc/loadavg"));
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

// Spawns argv with stdout and stderr appended to log; returns the pid.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    const int err = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) {
        errno = err;
        fail_errno("spawn " + argv[0]);
    }
    return pid;
}

// Waits for pid; returns its exit status (128 + signal if killed). Retries on EINTR.
int wait_exit(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run(const std::vector<std::string>& argv, const std::string& log) {
    return wait_exit(spawn(argv, log));
}

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// Everything the benchmark creates, and its removal (destructor: every exit path).
class Instance {
  public:
    explicit Instance(const Options& o) : opts_(o) {
        const std::string id = std::to_string(::getpid());
        agentd_ = o.build + "/agent/personabpfd";
        cli_ = o.build + "/tools/personabpf";
        if (::access(agentd_.c_str(), X_OK) != 0 || ::access(cli_.c_str(), X_OK) != 0)
            fail("build personabpfd and personabpf in " + o.build + " first");
        auto mount = agent::find_cgroup2_mount();
        if (!mount) fail(mount.error().what());
        cg_rel_ = "/pbbl-" + id;
        cg_root_ = *mount + cg_rel_;
        bpffs_ = "/sys/fs/bpf/pbbl-" + id;
        run_dir_ = "/run/pbbl-" + id;
        sock_ = run_dir_ + "/agent.sock";
        state_ = run_dir_ + "/state";
        log_ = run_dir_ + "/agent.log";
    }
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;
    ~Instance() { cleanup(); }

    const std::string& cg_root() const { return cg_root_; }
    const std::string& cg_rel() const { return cg_rel_; }
    std::string map_pin() const { return bpffs_ + "/pbpf_bindings"; }

    void start() {
        if (::mkdir(run_dir_.c_str(), 0700) != 0) fail_errno("mkdir " + run_dir_);
        made_run_dir_ = true;
        if (::mkdir(state_.c_str(), 0700) != 0) fail_errno("mkdir " + state_);
        if (::mkdir(cg_root_.c_str(), 0755) != 0) fail_errno("mkdir " + cg_root_);
        made_cg_root_ = true;
        agent_pid_ = spawn({agentd_, "--config", "/dev/null", "--socket", sock_, "--state-dir",
                            state_, "--bpffs-root", bpffs_, "--cgroup-root", cg_rel_, "--log-level",
                            opts_.agent_log_level},
                           log_);
        for (int i = 0;; ++i) {
            check_stop();
            if (cli({"status"}) == 0) break;
            int st = 0;
            if (::waitpid(agent_pid_, &st, WNOHANG) == agent_pid_) {
                agent_pid_ = 0;
                fail("personabpfd exited at start (log below)");
            }
            if (i == 200) fail("personabpfd did not answer within 20 s");
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        const std::string pdl = run_dir_ + "/pbbl.pdl";
        std::ofstream(pdl) << "persona pbbl {\n  security {\n    mode enforce\n"
                           << "    default ingress allow\n    default egress allow\n  }\n}\n"
                           << "bind pbbl {\n  cgroup \"" << cg_rel_ << "/w-*\"\n}\n";
        if (cli({"persona", "apply", "-m", "bind_latency", pdl}) != 0)
            fail("personabpf persona apply failed (log below)");
    }

    int cli(std::vector<std::string> args) {
        args.insert(args.begin(), {cli_, "--socket", sock_});
        return run(args, log_);
    }

    // A cgroup the benchmark made, removed by cleanup unless removed before.
    void made(const std::string& path) { cgroups_.insert(path); }
    void removed(const std::string& path) { cgroups_.erase(path); }

    void cleanup() noexcept {
        if (done_) return;
        done_ = true;
        for (const auto& p : cgroups_) {
            if (::rmdir(p.c_str()) != 0 && errno != ENOENT)
                std::fprintf(stderr, "bind_latency: rmdir %s: %s\n", p.c_str(),
                             std::strerror(errno));
        }
        cgroups_.clear();
        if (agent_pid_ > 0) {
            ::kill(agent_pid_, SIGTERM);
            bool gone = false;
            for (int i = 0; i < 100 && !gone; ++i) {
                int st = 0;
                gone = ::waitpid(agent_pid_, &st, WNOHANG) == agent_pid_;
                if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            if (!gone) {
                std::fprintf(stderr,
                             "bind_latency: personabpfd ignored SIGTERM for 5 s: SIGKILL\n");
                ::kill(agent_pid_, SIGKILL);
                (void)wait_exit(agent_pid_);
            }
            agent_pid_ = 0;
        }
        if (failed_ && made_run_dir_) {
            std::fprintf(stderr, "bind_latency: agent log:\n%s\n", read_file(log_).c_str());
        }
        std::error_code ec;
        if (fs::exists(bpffs_, ec) || fs::exists(state_, ec)) {
            const std::string ulog = made_run_dir_ ? log_ : "/dev/null";
            if (run({agentd_, "--config", "/dev/null", "--uninstall", "--bpffs-root", bpffs_,
                     "--state-dir", state_, "--purge-state"},
                    ulog) != 0) {
                std::fprintf(stderr, "bind_latency: uninstall failed:\n%s\n",
                             read_file(ulog).c_str());
            }
        }
        if (made_cg_root_ && ::rmdir(cg_root_.c_str()) != 0 && errno != ENOENT)
            std::fprintf(stderr, "bind_latency: rmdir %s: %s\n", cg_root_.c_str(),
                         std::strerror(errno));
        if (made_run_dir_) fs::remove_all(run_dir_, ec);
        if (fs::exists(bpffs_, ec))
            std::fprintf(stderr, "bind_latency: %s still exists\n", bpffs_.c_str());
        if (fs::exists(cg_root_, ec))
            std::fprintf(stderr, "bind_latency: %s still exists\n", cg_root_.c_str());
    }

    void set_failed() { failed_ = true; }

  private:
    Options opts_;
    std::string agentd_, cli_, cg_rel_, cg_root_, bpffs_, run_dir_, sock_, state_, log_;
    pid_t agent_pid_ = 0;
    std::set<std::string> cgroups_;
    bool made_run_dir_ = false, made_cg_root_ = false, done_ = false, failed_ = false;
};

// The binding of cgroup id `id`: true if present, false if absent; fails on other errors.
bool bound(int map_fd, uint64_t id) {
    pbpf_binding b{};
    if (bpf_map_lookup_elem(map_fd, &id, &b) == 0) return true;
    if (errno != ENOENT) fail_errno("lookup in pbpf_bindings");
    return false;
}

uint64_t cgroup_id(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) fail_errno("stat " + path);
    return static_cast<uint64_t>(st.st_ino);  // the cgroup id on 64-bit kernfs
}

struct Stats {
    std::string name;
    std::vector<double> ms;  // per cgroup
    int timeouts = 0;
    double to_last_ms = -1;   // burst: first syscall to last entry changed
    double syscalls_ms = -1;  // burst: first to last mkdir/rmdir returned

    double pct(double p) const {  // nearest rank
        if (ms.empty()) return 0;
        std::vector<double> s = ms;
        std::sort(s.begin(), s.end());
        size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * double(s.size())));
        return s[std::clamp<size_t>(rank, 1, s.size()) - 1];
    }
    // The median of ms[from, from + n): for the sequential modes, where ms is in creation
    // order, it shows whether the latency grows with the number of cgroups already bound.
    double p50_of(size_t from, size_t n) const {
        if (from >= ms.size()) return 0;
        Stats part;
        part.ms.assign(ms.begin() + long(from), ms.begin() + long(std::min(ms.size(), from + n)));
        return part.pct(50);
    }
    double mean() const {
        double sum = 0;
        for (double v : ms) sum += v;
        return ms.empty() ? 0 : sum / double(ms.size());
    }
    double max() const { return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()); }
    double min() const { return ms.empty() ? 0 : *std::min_element(ms.begin(), ms.end()); }
};

// One cgroup at a time: mkdir, then poll until bound; after all of them, rmdir each and poll
// until unbound. The first `warmup` cgroups are not counted.
void sequential(Instance& inst, int map_fd, const Options& o, Stats& bind, Stats& unbind) {
    struct Made {
        std::string path;
        uint64_t id;
    };
    std::vector<Made> made;
    const auto timeout = std::chrono::duration<double, std::milli>(o.timeout_ms);
    for (int i = 0; i < o.warmup + o.count; ++i) {
        const std::string path = inst.cg_root() + "/w-" + std::to_string(i);
        const auto t0 = Clock::now();
        if (::mkdir(path.c_str(), 0755) != 0) fail_errno("mkdir " + path);
        inst.made(path);
        const uint64_t id = cgroup_id(path);
        bool ok = true;
        while (!bound(map_fd, id)) {
            check_stop();
            if (Clock::now() - t0 > timeout) {
                ok = false;
                break;
            }
        }
        const auto t1 = Clock::now();
        made.push_back({path, id});
        if (i < o.warmup) continue;
        if (ok)
            bind.ms.push_back(ms_between(t0, t1));
        else
            ++bind.timeouts;
    }
    for (size_t i = 0; i < made.size(); ++i) {
        const auto t0 = Clock::now();
        if (::rmdir(made[i].path.c_str()) != 0) fail_errno("rmdir " + made[i].path);
        inst.removed(made[i].path);
        bool ok = true;
        while (bound(map_fd, made[i].id)) {
            check_stop();
            if (Clock::now() - t0 > timeout) {
                ok = false;
                break;
            }
        }
        const auto t1 = Clock::now();
        if (int(i) < o.warmup) continue;
        if (ok)
            unbind.ms.push_back(ms_between(t0, t1));
        else
            ++unbind.timeouts;
    }
}

// All at once: every mkdir (each cgroup's t0 its own mkdir), then poll all until bound;
// then every rmdir, and poll until all are unbound.
void burst(Instance& inst, int map_fd, const Options& o, Stats& bind, Stats& unbind) {
    const size_t n = static_cast<size_t>(o.count);
    std::vector<std::string> paths(n);
    std::vector<uint64_t> ids(n);
    std::vector<Clock::time_point> t0(n);
    const auto timeout = std::chrono::duration<double, std::milli>(o.timeout_ms);

    auto phase = [&](Stats& st, bool want_bound) {
        std::vector<size_t> pending(n);
        for (size_t i = 0; i < n; ++i) pending[i] = i;
        Clock::time_point last = t0[0];
        while (!pending.empty()) {
            check_stop();
            size_t keep = 0;
            for (size_t k = 0; k < pending.size(); ++k) {
                const size_t i = pending[k];
                if (bound(map_fd, ids[i]) == want_bound) {
                    last = Clock::now();
                    st.ms.push_back(ms_between(t0[i], last));
                } else {
                    pending[keep++] = i;
                }
            }
            pending.resize(keep);
            if (!pending.empty() && Clock::now() - t0[n - 1] > timeout) {
                st.timeouts = static_cast<int>(pending.size());
                break;
            }
        }
        st.to_last_ms = ms_between(t0[0], last);
        st.syscalls_ms = ms_between(t0[0], t0[n - 1]);
    };

    for (size_t i = 0; i < n; ++i) {
        paths[i] = inst.cg_root() + "/w-b" + std::to_string(i);
        t0[i] = Clock::now();
        if (::mkdir(paths[i].c_str(), 0755) != 0) fail_errno("mkdir " + paths[i]);
        inst.made(paths[i]);
        ids[i] = cgroup_id(paths[i]);
    }
    phase(bind, true);
    for (size_t i = 0; i < n; ++i) {
        t0[i] = Clock::now();
        if (::rmdir(paths[i].c_str()) != 0) fail_errno("rmdir " + paths[i]);
        inst.removed(paths[i]);
    }
    phase(unbind, false);
}

// "memlock:" of a map fd, from /proc/self/fdinfo (the kernel's estimate of its memory).
long long memlock_of(int fd) {
    std::istringstream in(read_file("/proc/self/fdinfo/" + std::to_string(fd)));
    std::string key;
    long long v = -1;
    while (in >> key) {
        if (key == "memlock:") {
            in >> v;
            break;
        }
    }
    return v;
}

std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", v);
    return b;
}

std::string json_of(const Stats& s) {
    std::string j = "{\"n\": " + std::to_string(s.ms.size()) +
                    ", \"timeouts\": " + std::to_string(s.timeouts) +
                    ", \"min_ms\": " + fmt(s.min()) + ", \"p50_ms\": " + fmt(s.pct(50)) +
                    ", \"p99_ms\": " + fmt(s.pct(99)) + ", \"max_ms\": " + fmt(s.max()) +
                    ", \"mean_ms\": " + fmt(s.mean());
    if (s.to_last_ms < 0 && s.ms.size() >= 200)
        j += ", \"first100_p50_ms\": " + fmt(s.p50_of(0, 100)) +
             ", \"last100_p50_ms\": " + fmt(s.p50_of(s.ms.size() - 100, 100));
    if (s.to_last_ms >= 0)
        j += ", \"to_last_ms\": " + fmt(s.to_last_ms) + ", \"syscalls_ms\": " + fmt(s.syscalls_ms);
    return j + "}";
}

int usage() {
    std::fprintf(stderr,
                 "usage: bind_latency [--build DIR] [--count N] [--warmup N] [--timeout-ms MS]\n"
                 "                    [--json FILE] [--agent-log-level LEVEL]\n");
    return 2;
}

int run_main(int argc, char** argv) {
    Options o;
    // Default: the build dir this binary sits in (<build>/bench/bind_latency).
    o.build = fs::canonical("/proc/self/exe").parent_path().parent_path().string();
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return usage();
        const std::string v = argv[++i];
        if (a == "--build")
            o.build = v;
        else if (a == "--count")
            o.count = std::stoi(v);
        else if (a == "--warmup")
            o.warmup = std::stoi(v);
        else if (a == "--timeout-ms")
            o.timeout_ms = std::stod(v);
        else if (a == "--json")
            o.json_out = v;
        else if (a == "--agent-log-level")
            o.agent_log_level = v;
        else
            return usage();
    }
    if (o.count < 1 || o.warmup < 0) return usage();
    if (::geteuid() != 0) {
        std::fprintf(stderr, "bind_latency: needs root (an agent, cgroups, BPF pins)\n");
        return 1;
    }
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
        struct sigaction sa {};
        sa.sa_handler = on_signal;  // no SA_RESTART: loops and waits see the flag
        sigemptyset(&sa.sa_mask);
        ::sigaction(sig, &sa, nullptr);
    }

    Instance inst(o);
    Stats seq_bind{"sequential: mkdir -> bound"}, seq_unbind{"sequential: rmdir -> unbound"};
    Stats burst_bind{"burst: mkdir -> bound"}, burst_unbind{"burst: rmdir -> unbound"};
    const std::string load_before = load_average();
    long long memlock = -1;
    uint32_t max_entries = 0;
    try {
        inst.start();
        const int map_fd = bpf_obj_get(inst.map_pin().c_str());
        if (map_fd < 0) fail_errno("bpf_obj_get " + inst.map_pin());
        bpf_map_info info{};
        uint32_t len = sizeof info;
        if (bpf_obj_get_info_by_fd(map_fd, &info, &len) == 0) max_entries = info.max_entries;
        memlock = memlock_of(map_fd);
        sequential(inst, map_fd, o, seq_bind, seq_unbind);
        burst(inst, map_fd, o, burst_bind, burst_unbind);
        ::close(map_fd);
    } catch (const Failure& e) {
        std::fprintf(stderr, "bind_latency: %s\n", e.what());
        inst.set_failed();
        inst.cleanup();
        return 1;
    }
    inst.cleanup();
    const std::string load_after = load_average();

    std::printf(
        "bind_latency: %d cgroups per mode (sequential after %d warm-up), agent log "
        "level %s\nload average before: %s, after: %s\n",
        o.count, o.warmup, o.agent_log_level.c_str(), load_before.c_str(), load_after.c_str());
    std::printf("pbpf_bindings: max_entries %u, memlock %lld bytes\n\n", max_entries, memlock);
    std::printf("%-30s %6s %8s %8s %8s %8s %8s %8s %10s\n", "ms", "n", "min", "p50", "p99", "max",
                "mean", "timeout", "to last");
    for (const Stats* s : {&seq_bind, &seq_unbind, &burst_bind, &burst_unbind}) {
        std::printf("%-30s %6zu %8.3f %8.3f %8.3f %8.3f %8.3f %8d", s->name.c_str(), s->ms.size(),
                    s->min(), s->pct(50), s->pct(99), s->max(), s->mean(), s->timeouts);
        if (s->to_last_ms >= 0)
            std::printf(" %10.3f  (syscalls took %.3f)", s->to_last_ms, s->syscalls_ms);
        std::printf("\n");
    }
    for (const Stats* s : {&seq_bind, &seq_unbind}) {
        if (s->ms.size() >= 200)
            std::printf("%s: p50 of the first 100 %.3f ms, of the last 100 %.3f ms\n",
                        s->name.c_str(), s->p50_of(0, 100), s->p50_of(s->ms.size() - 100, 100));
    }
    const std::string json = "{\"count\": " + std::to_string(o.count) +
                             ", \"warmup\": " + std::to_string(o.warmup) + ", \"load_before\": \"" +
                             load_before + "\", \"load_after\": \"" + load_after +
                             "\", \"map_max_entries\": " + std::to_string(max_entries) +
                             ", \"map_memlock_bytes\": " + std::to_string(memlock) +
                             ", \"sequential_bind\": " + json_of(seq_bind) +
                             ", \"sequential_unbind\": " + json_of(seq_unbind) +
                             ", \"burst_bind\": " + json_of(burst_bind) +
                             ", \"burst_unbind\": " + json_of(burst_unbind) + "}\n";
    std::printf("\n%s", json.c_str());
    if (!o.json_out.empty()) std::ofstream(o.json_out) << json;
    const bool missed =
        seq_bind.timeouts + seq_unbind.timeouts + burst_bind.timeouts + burst_unbind.timeouts > 0;
    return missed ? 3 : 0;
}

}  // namespace
}  // namespace pbpf::bench

int main(int argc, char** argv) {
    try {
        return pbpf::bench::run_main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bind_latency: %s\n", e.what());
        return 1;
    }
}
