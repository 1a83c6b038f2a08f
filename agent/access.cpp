// Caller credentials and the API's access rules.
#include "agent/access.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "agent/api_error.h"

namespace pbpf::agent {
namespace {

thread_local Caller t_caller;

}  // namespace

Caller peer_of(int fd) {
    Caller c;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) return c;
    c.known = true;
    c.uid = cred.uid;
    c.gid = cred.gid;
    c.pid = cred.pid;
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 4; ++attempt) {
        socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
            groups.resize(glen / sizeof(gid_t));
            c.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE) break;
        groups.resize(glen / sizeof(gid_t) + 1);
    }
    return c;
}

const Caller& current_caller() { return t_caller; }
void set_current_caller(const Caller& c) { t_caller = c; }

std::string describe_uid(int64_t uid) {
    if (uid < 0) return "an unknown caller";
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* out = nullptr;
    if (::getpwuid_r(static_cast<uid_t>(uid), &pw, buf.data(), buf.size(), &out) == 0 && out)
        return std::string(out->pw_name) + " (uid " + std::to_string(uid) + ")";
    return "uid " + std::to_string(uid);
}

std::string describe(const Caller& c) { return c.known ? describe_uid(c.uid) : describe_uid(-1); }

Access::Access(std::string admin_group) : group_(std::move(admin_group)) {
    if (group_.empty()) return;
    std::vector<char> buf(16384);
    group gr{};
    group* out = nullptr;
    if (::getgrnam_r(group_.c_str(), &gr, buf.data(), buf.size(), &out) == 0 && out) {
        gid_ = out->gr_gid;
    } else {
        spdlog::warn("[agent] admin_group '{}' does not exist: only root is an admin", group_);
    }
}

bool Access::is_admin(const Caller& c) const {
    if (!c.known) return false;
    if (c.uid == 0) return true;
    if (gid_ < 0) return false;
    return c.gid == gid_ ||
           std::find(c.groups.begin(), c.groups.end(), static_cast<gid_t>(gid_)) != c.groups.end();
}

std::string Access::admins() const {
    return gid_ < 0 ? "root" : "root and members of group " + group_;
}

void Access::require_admin(const Caller& c, const std::string& what) const {
    if (is_admin(c)) return;
    throw ApiError(403, describe(c) + " may not " + what + ": only admins may (" + admins() + ")");
}

void Access::require_change(const Caller& c, const PersonaRecord& p,
                            const std::string& what) const {
    if (may_change(c, p)) return;
    throw ApiError(403, describe(c) + " may not " + what + ": persona '" + p.name +
                            "' is owned by " + describe_uid(p.owner_uid) + "; only its owner and " +
                            "admins (" + admins() + ") may change it");
}

}  // namespace pbpf::agent
