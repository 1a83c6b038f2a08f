// Who may do what through the API. The caller is the peer of the API connection
// (SO_PEERCRED, SO_PEERGROUPS), never something the request says about itself. Everyone
// may read; admins (root, and members of [agent] admin_group) may change anything;
// the owner of a persona may change, roll back, remove and bind that persona only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "agent/store.h"

namespace pbpf::agent {

struct Caller {
    bool known = false;  // false: no credentials (not a unix socket peer)
    int64_t uid = -1;
    int64_t gid = -1;
    int64_t pid = 0;
    std::vector<gid_t> groups;  // supplementary groups at connect time
};

// Reads the peer credentials of a connected unix socket.
Caller peer_of(int fd);

// The caller of the request this thread serves (the API server sets it per connection).
const Caller& current_caller();
void set_current_caller(const Caller& c);

// "alice (uid 1001)"; "uid 1001" when the uid has no name; "an unknown caller".
std::string describe_uid(int64_t uid);
std::string describe(const Caller& c);

class Access {
  public:
    // `admin_group`: a group name, or "" for root only. A group that does not exist
    // makes nobody but root an admin (logged once at start).
    explicit Access(std::string admin_group = "");

    bool is_admin(const Caller& c) const;
    bool owns(const Caller& c, const PersonaRecord& p) const {
        return c.known && c.uid == p.owner_uid;
    }
    bool may_change(const Caller& c, const PersonaRecord& p) const {
        return is_admin(c) || owns(c, p);
    }

    // Throw ApiError(403): "<who> may not <what>: <missing right>".
    void require_admin(const Caller& c, const std::string& what) const;
    void require_change(const Caller& c, const PersonaRecord& p, const std::string& what) const;

    // "root and members of group personabpf-admin" / "root".
    std::string admins() const;
    const std::string& admin_group() const { return group_; }

  private:
    std::string group_;
    int64_t gid_ = -1;  // -1: no admin group
};

}  // namespace pbpf::agent
