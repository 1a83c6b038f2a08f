// cgroup v2 mount discovery and path resolution.
#include "agent/cgroup.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace pbpf::agent {
namespace {

// mountinfo escapes blanks and backslashes as \ooo.
std::string unescape_mountinfo(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size()) {
            int v = 0;
            bool octal = true;
            for (size_t j = 1; j <= 3; ++j) {
                if (i + j >= s.size() || s[i + j] < '0' || s[i + j] > '7') {
                    octal = false;
                    break;
                }
                v = v * 8 + (s[i + j] - '0');
            }
            if (octal) {
                out.push_back(static_cast<char>(v));
                i += 3;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

// "/a//b/./c/../d/" -> "/a/b/d"; returns false if ".." climbs above "/".
bool normalize_abs(const std::string& path, std::string& out) {
    std::vector<std::string> parts;
    std::stringstream ss(path);
    std::string part;
    while (std::getline(ss, part, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            if (parts.empty()) return false;
            parts.pop_back();
            continue;
        }
        parts.push_back(part);
    }
    out.clear();
    for (const auto& p : parts) out += "/" + p;
    if (out.empty()) out = "/";
    return true;
}

bool is_dir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Result<std::string> find_cgroup2_mount(const std::string& mountinfo) {
    std::ifstream in(mountinfo);
    if (!in) return sys_error("read " + mountinfo);
    std::string line;
    while (std::getline(in, line)) {
        // id parent major:minor root mountpoint options [optional...] - fstype source super
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype;
        tail >> fstype;
        if (fstype != "cgroup2") continue;
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, dev, root, mountpoint;
        head >> id >> parent >> dev >> root >> mountpoint;
        if (!mountpoint.empty()) return unescape_mountinfo(mountpoint);
    }
    return Error{ENOENT, "no cgroup2 mount in " + mountinfo};
}

Result<uint64_t> cgroup_id_of(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return sys_error("stat cgroup " + dir);
    if (!S_ISDIR(st.st_mode)) return Error{ENOTDIR, "cgroup " + dir + " is not a directory"};
    return static_cast<uint64_t>(st.st_ino);
}

Result<CgroupTree> CgroupTree::open(const std::string& mount, const std::string& root) {
    std::string m;
    if (!normalize_abs(mount, m)) return Error{EINVAL, "bad cgroup2 mount " + mount};
    CgroupTree probe(m, CgroupRef{m, "/"});
    auto ref = probe.resolve(root.empty() ? "/" : root);
    if (!ref) return Error{ref.error().err, "cgroup root: " + ref.error().message};
    if (!is_dir(ref->fs_path))
        return Error{ENOENT, "cgroup root " + ref->fs_path + " does not exist (create it first)"};
    return CgroupTree(m, *ref);
}

Result<CgroupRef> CgroupTree::resolve(const std::string& path) const {
    if (path.empty()) return Error{EINVAL, "empty cgroup path"};
    std::string rel;
    // A path that names the mount itself (or something below it) is a filesystem path;
    // anything else is relative to the mount ("/system.slice/x.service").
    std::string full;
    if (path == mount_ || path.rfind(mount_ + "/", 0) == 0)
        full = path;
    else
        full = (mount_ == "/" ? "" : mount_) + "/" + path;
    std::string norm;
    if (!normalize_abs(full, norm) ||
        !(norm == mount_ || norm.rfind(mount_ == "/" ? "/" : mount_ + "/", 0) == 0))
        return Error{EINVAL, "cgroup path '" + path + "' leaves the cgroup2 mount " + mount_};
    rel = norm.substr(mount_ == "/" ? 0 : mount_.size());
    if (rel.empty()) rel = "/";
    CgroupRef ref{norm, rel};
    const std::string& r = root_.rel_path;
    bool inside = r == "/" || rel == r || rel.rfind(r + "/", 0) == 0;
    if (!inside) return Error{EINVAL, "cgroup " + rel + " is outside the managed subtree " + r};
    return ref;
}

Result<CgroupRef> CgroupTree::resolve_existing(const std::string& path) const {
    auto ref = resolve(path);
    if (!ref) return ref;
    if (!is_dir(ref->fs_path)) return Error{ENOENT, "cgroup " + ref->rel_path + " does not exist"};
    return ref;
}

Result<CgroupRef> CgroupTree::of_pid(pid_t pid) const {
    if (pid <= 0) return Error{ESRCH, "no process with pid " + std::to_string(pid)};
    std::string file = "/proc/" + std::to_string(pid) + "/cgroup";
    std::ifstream in(file);
    if (!in) return Error{ESRCH, "no process with pid " + std::to_string(pid)};
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) != 0) continue;
        std::string rel = line.substr(3);
        if (rel.empty()) break;
        // The path is relative to the mount (resolve() treats a leading "/" that way).
        auto ref = resolve(mount_ == "/" ? rel : rel == "/" ? mount_ : mount_ + rel);
        if (!ref)
            return Error{ref.error().err,
                         "pid " + std::to_string(pid) + ": " + ref.error().message};
        return ref;
    }
    // A process that exited between open and read leaves an empty file.
    return Error{ESRCH,
                 "no process with pid " + std::to_string(pid) + " (or it has no cgroup2 path)"};
}

}  // namespace pbpf::agent
