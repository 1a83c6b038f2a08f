// Declarative binding rules: which persona a workload gets when it appears. Rules come
// from PDL `bind` blocks (stored at `persona apply`) and from the API (`personabpf rules
// add`). This file is the pure part: validation, glob matching and "the most specific
// rule wins". No kernel, no store, no I/O except the name service (behind UserDb).
//
// Precedence (docs/architecture.md, "Binding rules"), highest first:
//   an explicit binding (`personabpf bind`) always beats every rule (not decided here);
//   cgroups:    rank 4  cgroup rule without wildcards (the exact path)
//               rank 3  user rule (the cgroup is that user's logind slice user-UID.slice)
//               rank 2  group rule (the slice's user is a member of the group)
//               rank 1  cgroup glob; among globs, more literal (non-wildcard) characters
//   interfaces: rank 2  exact name
//               rank 1  name glob; among globs, more literal characters
//   then, at equal rank and literal count, the lower rule id (the older rule).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pbpf::agent {

enum class RuleKind { Cgroup, User, Group, Interface };

// "cgroup", "user", "group", "interface".
std::string_view to_string(RuleKind kind);
std::optional<RuleKind> rule_kind_from(std::string_view text);

struct BindRule {
    int64_t id = 0;  // store id (ties between equally specific rules: lower id wins)
    std::string persona;
    RuleKind kind = RuleKind::Cgroup;
    // cgroup:    a path glob relative to the cgroup2 mount, "/machine.slice/libpod-*.scope"
    //            (fnmatch with FNM_PATHNAME: '*' and '?' never match '/'; [...] classes)
    // user:      a user name or a numeric uid
    // group:     a group name or a numeric gid
    // interface: an interface name glob in the agent's netns ("tap-web*"), at most 15 bytes
    std::string pattern;
    std::string origin;      // "pdl" (a `bind` block, stored by persona apply) | "api"
    std::string created_by;  // who stored it, for `rules ls` ("uid 0")
    int64_t created_at = 0;  // unix seconds
};

// What is wrong with a rule before it is stored, or nullopt when it is fine. Checks the
// persona name is non-empty and the pattern: cgroup patterns start with '/', have no
// empty, "." or ".." segments, brackets that close, and at most 4096 bytes; interface
// patterns are 1..15 bytes without '/' or whitespace, brackets that close; user and group
// names are 1..32 bytes without '/', ':', or whitespace. The message names the pattern
// and says what is expected, e.g. `cgroup pattern "machine.slice" must start with '/'`.
std::optional<std::string> validate_rule(const BindRule& rule);

// How an operator removes what `rule` bound, for error messages: "remove the rule
// (personabpf rules rm 3)", or for a bind block "edit the bind block of persona 'web' (in
// web.pdl) and apply the file again".
std::string removal_hint(const BindRule& rule);

// True when the pattern has no wildcard ('*', '?', '[').
bool is_literal_pattern(std::string_view pattern);
// Number of characters of the pattern that are not wildcards (a [...] class counts 0).
int literal_chars(std::string_view pattern);
// fnmatch(pattern, path, FNM_PATHNAME): '*' and '?' do not match '/'.
bool glob_match_path(std::string_view pattern, std::string_view path);
// fnmatch(pattern, name, 0).
bool glob_match_name(std::string_view pattern, std::string_view name);

// The uid of a logind user slice: the last path component "user-1000.slice" -> 1000;
// nullopt for anything else ("user-.slice", "user-1000.slice/session-1.scope", ...).
std::optional<uint32_t> user_slice_uid(std::string_view rel_path);

// Name service lookups, injectable for tests. Lookups happen at match time, so a rule
// may name a user that does not exist yet.
class UserDb {
  public:
    virtual ~UserDb() = default;
    // The uid of a user name, or the value of a numeric string; nullopt when unknown.
    virtual std::optional<uint32_t> uid_of(const std::string& user) const = 0;
    // The gid of a group name, or the value of a numeric string; nullopt when unknown.
    virtual std::optional<uint32_t> gid_of(const std::string& group) const = 0;
    // Whether the user `uid` is in group `gid` (primary or supplementary); false for an
    // unknown uid.
    virtual bool in_group(uint32_t uid, uint32_t gid) const = 0;
};
// getpwnam_r / getgrnam_r / getpwuid_r + getgrouplist.
const UserDb& system_user_db();

struct RuleMatch {
    const BindRule* rule = nullptr;  // points into the vector passed in
    int rank = 0;
    int literal = 0;
};

// The winning rule for the cgroup `rel_path` ("/a/b", relative to the cgroup2 mount),
// or nullopt when none matches. Only Cgroup, User and Group rules take part.
std::optional<RuleMatch> best_cgroup_rule(const std::vector<BindRule>& rules,
                                          const std::string& rel_path, const UserDb& users);
// The winning rule for an interface of the agent's netns, or nullopt. Only Interface
// rules take part.
std::optional<RuleMatch> best_interface_rule(const std::vector<BindRule>& rules,
                                             const std::string& ifname);

}  // namespace pbpf::agent
