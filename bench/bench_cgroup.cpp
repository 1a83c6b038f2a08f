// The benchmark's private cgroup tree (see bench_cgroup.h).
#include "bench/bench_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/cgroup.h"

namespace pbpf::bench {

namespace {

Result<std::string> self_cgroup_path() {
    std::ifstream in("/proc/self/cgroup");
    if (!in) return sys_error("open /proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    }
    return Error{ENOENT, "no cgroup v2 line (0::) in /proc/self/cgroup"};
}

// Async-signal-safe: open, write, close only.
int write_pid(const char* procs_file, const char* pid, size_t len) {
    const int fd = ::open(procs_file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    const ssize_t n = ::write(fd, pid, len);
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(len)) {
        errno = err;
        return -1;
    }
    return 0;
}

// What the signal handlers need, prepared before the tree exists (no allocation later).
struct SignalCleanup {
    char original_procs[4096] = {0};
    char dirs[3][4096] = {{0}};
    int created = 0;
    bool entered = false;
    char pid[32] = {0};
    size_t pid_len = 0;
};
SignalCleanup g_cleanup;
volatile sig_atomic_t g_armed = 0;

void on_signal(int sig) {
    if (g_armed) {
        g_armed = 0;
        if (g_cleanup.entered)
            (void)write_pid(g_cleanup.original_procs, g_cleanup.pid, g_cleanup.pid_len);
        for (int i = g_cleanup.created - 1; i >= 0; --i) (void)::rmdir(g_cleanup.dirs[i]);
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void install_handlers() {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
        struct sigaction sa {};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        ::sigaction(sig, &sa, nullptr);
    }
}

void copy_path(char* dst, const std::string& src) { std::snprintf(dst, 4096, "%s", src.c_str()); }

}  // namespace

// The agent's parser (tested in tests/unit), so every part reads mountinfo alike.
Result<std::string> cgroup2_mount() { return agent::find_cgroup2_mount(); }

Result<std::unique_ptr<CgroupTree>> CgroupTree::create_and_enter() {
    auto mount = cgroup2_mount();
    if (!mount) return mount.error();
    auto self = self_cgroup_path();
    if (!self) return self.error();

    std::unique_ptr<CgroupTree> t(new CgroupTree());
    t->original_ = *mount + (*self == "/" ? "" : *self);
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    t->dirs_[0] = *mount + "/pbpf-bench-" + std::to_string(::getpid()) + "-" +
                  std::to_string(now.tv_sec * 1000000000LL + now.tv_nsec);
    t->dirs_[1] = t->dirs_[0] + "/a";
    t->dirs_[2] = t->dirs_[1] + "/b";

    copy_path(g_cleanup.original_procs, t->original_ + "/cgroup.procs");
    for (int i = 0; i < 3; ++i) copy_path(g_cleanup.dirs[i], t->dirs_[i]);
    g_cleanup.pid_len = static_cast<size_t>(
        std::snprintf(g_cleanup.pid, sizeof g_cleanup.pid, "%d", static_cast<int>(::getpid())));
    g_cleanup.created = 0;
    g_cleanup.entered = false;
    install_handlers();
    g_armed = 1;

    for (int i = 0; i < 3; ++i) {
        if (::mkdir(t->dirs_[i].c_str(), 0755) != 0) return sys_error("mkdir " + t->dirs_[i]);
        t->created_ = g_cleanup.created = i + 1;
        struct stat st {};
        if (::stat(t->dirs_[i].c_str(), &st) != 0) return sys_error("stat " + t->dirs_[i]);
        t->ids_[i] = static_cast<uint64_t>(st.st_ino);  // what bpf_skb_cgroup_id returns
    }
    const std::string procs = t->dirs_[2] + "/cgroup.procs";
    if (write_pid(procs.c_str(), g_cleanup.pid, g_cleanup.pid_len) != 0) {
        return sys_error("move pid into " + t->dirs_[2]);
    }
    t->entered_ = g_cleanup.entered = true;
    return t;
}

void CgroupTree::cleanup() noexcept {
    g_armed = 0;
    if (entered_) {
        const std::string procs = original_ + "/cgroup.procs";
        if (write_pid(procs.c_str(), g_cleanup.pid, g_cleanup.pid_len) != 0) {
            std::fprintf(stderr, "persona_bench: cannot move back to %s: %s\n", original_.c_str(),
                         std::strerror(errno));
        }
        entered_ = false;
    }
    for (int i = created_ - 1; i >= 0; --i) {
        if (::rmdir(dirs_[i].c_str()) != 0) {
            std::fprintf(stderr, "persona_bench: cannot remove %s: %s\n", dirs_[i].c_str(),
                         std::strerror(errno));
        }
    }
    created_ = 0;
}

CgroupTree::~CgroupTree() { cleanup(); }

}  // namespace pbpf::bench
