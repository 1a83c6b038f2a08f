// cgroup v2 helpers for the BPF tests (see cgroup_util.h).
#include "tests/bpf/cgroup_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "agent/cgroup.h"

namespace pbpf::test {

namespace {

Result<void> write_pid(const std::string& dir) {
    const std::string file = dir + "/cgroup.procs";
    const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return sys_error("open " + file);
    const std::string pid = std::to_string(::getpid());
    const ssize_t n = ::write(fd, pid.data(), pid.size());
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(pid.size())) return sys_error("move pid into " + dir, err);
    return {};
}

}  // namespace

// The agent's parser (tested in tests/unit), so every part reads mountinfo alike.
Result<std::string> cgroup2_mount() { return agent::find_cgroup2_mount(); }

Result<std::string> self_cgroup_path() {
    std::ifstream in("/proc/self/cgroup");
    if (!in) return sys_error("open /proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    }
    return Error{ENOENT, "no cgroup v2 line (0::) in /proc/self/cgroup"};
}

Result<uint64_t> cgroup_id(const std::string& abs_dir) {
    struct stat st {};
    if (::stat(abs_dir.c_str(), &st) != 0) return sys_error("stat " + abs_dir);
    return static_cast<uint64_t>(st.st_ino);
}

Result<void> TestCgroupTree::create(const std::vector<std::string>& chain) {
    static std::atomic<int> counter{0};
    auto mount = cgroup2_mount();
    if (!mount) return mount.error();
    mount_ = *mount;
    std::string dir =
        mount_ + "/pbpf-bpftest-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    if (::mkdir(dir.c_str(), 0755) != 0) return sys_error("mkdir " + dir);
    dirs_.push_back(dir);
    for (const auto& name : chain) {
        dir += "/" + name;
        if (::mkdir(dir.c_str(), 0755) != 0) return sys_error("mkdir " + dir);
        dirs_.push_back(dir);
    }
    return {};
}

Result<void> TestCgroupTree::enter(const std::string& abs_dir) {
    if (original_.empty()) {
        auto self = self_cgroup_path();
        if (!self) return self.error();
        original_ = mount_ + (*self == "/" ? "" : *self);
    }
    return write_pid(abs_dir);
}

Result<void> TestCgroupTree::leave() {
    if (original_.empty()) return {};
    auto r = write_pid(original_);
    if (r) original_.clear();
    return r;
}

TestCgroupTree::~TestCgroupTree() {
    // Back out first: a cgroup with a member process cannot be removed.
    (void)leave();
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) ::rmdir(it->c_str());
}

}  // namespace pbpf::test
