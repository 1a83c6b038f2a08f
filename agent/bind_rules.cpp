// Binding rules: validation, fnmatch-based globs, the name service behind UserDb, and the
// choice of the most specific matching rule.
#include "agent/bind_rules.h"

#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <utility>

namespace pbpf::agent {
namespace {

constexpr size_t kMaxCgroupPattern = 4096;
constexpr size_t kMaxInterfacePattern = 15;  // IFNAMSIZ - 1
constexpr size_t kMaxUserName = 32;

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool has_any(std::string_view s, std::string_view chars) {
    return s.find_first_of(chars) != std::string_view::npos;
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

bool has_blank_or_nul(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return is_blank(c) || c == '\0'; });
}

bool is_numeric(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A non-empty all-digit string that fits uint32; nullopt otherwise.
std::optional<uint32_t> parse_u32(std::string_view s) {
    if (!is_numeric(s)) return std::nullopt;
    uint32_t v = 0;
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, v);
    if (ec != std::errc() || ptr != end) return std::nullopt;
    return v;
}

// The index just past the ']' that closes the bracket expression opening at p[open], or
// npos when it does not close. Follows glibc fnmatch: a ']' first (after an optional '!'
// or '^') is a member, '\' escapes, and [:class:], [=e=], [.c.] are single members.
size_t bracket_end(std::string_view p, size_t open) {
    size_t i = open + 1;
    if (i < p.size() && (p[i] == '!' || p[i] == '^')) ++i;
    if (i < p.size() && p[i] == ']') ++i;
    while (i < p.size()) {
        const char c = p[i];
        if (c == ']') return i + 1;
        if (c == '\\' && i + 1 < p.size()) {
            i += 2;
            continue;
        }
        const char next = i + 1 < p.size() ? p[i + 1] : '\0';
        if (c == '[' && (next == ':' || next == '=' || next == '.')) {
            const char closer[] = {next, ']'};
            const size_t end = p.find(std::string_view(closer, 2), i + 2);
            if (end != std::string_view::npos) {
                i = end + 2;
                continue;
            }
        }
        ++i;
    }
    return std::string_view::npos;
}

bool brackets_close(std::string_view p) {
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '\\') {
            ++i;
        } else if (p[i] == '[') {
            const size_t end = bracket_end(p, i);
            if (end == std::string_view::npos) return false;
            i = end - 1;
        }
    }
    return true;
}

std::string quoted(std::string_view kind, std::string_view pattern) {
    return std::string(kind) + " pattern \"" + std::string(pattern) + "\"";
}

// Each '/'-separated segment is checked on its own: under FNM_PATHNAME a bracket
// expression never matches '/', so one spanning segments is as good as unclosed.
std::optional<std::string> validate_cgroup_pattern(std::string_view p) {
    const std::string what = quoted("cgroup", p);
    if (p.size() > kMaxCgroupPattern) return what + " is longer than 4096 bytes";
    if (p.empty() || p[0] != '/') return what + " must start with '/'";
    if (has_nul(p)) return what + " must not contain a NUL byte";
    std::string_view rest = p.substr(1);
    for (;;) {
        const size_t slash = rest.find('/');
        const std::string_view seg = rest.substr(0, slash);
        if (seg.empty() || seg == "." || seg == "..")
            return what + " must not have empty, \".\" or \"..\" segments";
        if (!brackets_close(seg)) return what + " has a '[' without a closing ']' in its segment";
        if (slash == std::string_view::npos) return std::nullopt;
        rest = rest.substr(slash + 1);
    }
}

std::optional<std::string> validate_interface_pattern(std::string_view p) {
    const std::string what = quoted("interface", p);
    if (p.empty() || p.size() > kMaxInterfacePattern) return what + " must be 1..15 bytes";
    if (p.find('/') != std::string_view::npos || has_blank_or_nul(p))
        return what + " must not contain '/' or whitespace";
    if (!brackets_close(p)) return what + " has a '[' without a closing ']'";
    return std::nullopt;
}

std::optional<std::string> validate_account_pattern(std::string_view kind, std::string_view p) {
    const std::string what = quoted(kind, p);
    if (p.empty() || p.size() > kMaxUserName)
        return what + " must be a name or a numeric id of 1..32 bytes";
    if (has_any(p, "/:") || has_blank_or_nul(p))
        return what + " must not contain '/', ':' or whitespace";
    return std::nullopt;
}

std::optional<RuleMatch> cgroup_match(const BindRule& rule, const std::string& rel_path,
                                      std::optional<uint32_t> slice_uid, const UserDb& users) {
    switch (rule.kind) {
        case RuleKind::Cgroup:
            // A path without wildcards is compared as it is: systemd's unit names carry
            // backslashes ("system-openvpn\\x2dclient.slice") that fnmatch would take as
            // escapes.
            if (is_literal_pattern(rule.pattern)) {
                if (rule.pattern != rel_path) return std::nullopt;
                return RuleMatch{&rule, 4, static_cast<int>(rule.pattern.size())};
            }
            if (!glob_match_path(rule.pattern, rel_path)) return std::nullopt;
            return RuleMatch{&rule, 1, literal_chars(rule.pattern)};
        case RuleKind::User: {
            if (!slice_uid) return std::nullopt;
            const auto uid = users.uid_of(rule.pattern);
            if (!uid || *uid != *slice_uid) return std::nullopt;
            return RuleMatch{&rule, 3, 0};
        }
        case RuleKind::Group: {
            if (!slice_uid) return std::nullopt;
            const auto gid = users.gid_of(rule.pattern);
            if (!gid || !users.in_group(*slice_uid, *gid)) return std::nullopt;
            return RuleMatch{&rule, 2, 0};
        }
        case RuleKind::Interface:
            return std::nullopt;
    }
    return std::nullopt;
}

std::optional<RuleMatch> interface_match(const BindRule& rule, const std::string& ifname) {
    if (rule.kind != RuleKind::Interface) return std::nullopt;
    const int literal = literal_chars(rule.pattern);
    if (is_literal_pattern(rule.pattern) && rule.pattern == ifname)
        return RuleMatch{&rule, 2, literal};
    if (glob_match_name(rule.pattern, ifname)) return RuleMatch{&rule, 1, literal};
    return std::nullopt;
}

// Higher rank, then more literal characters, then the older (lower id) rule.
bool beats(const RuleMatch& a, const RuleMatch& b) {
    if (a.rank != b.rank) return a.rank > b.rank;
    if (a.literal != b.literal) return a.literal > b.literal;
    return a.rule->id < b.rule->id;
}

template <typename Match>
std::optional<RuleMatch> best_of(const std::vector<BindRule>& rules, Match match) {
    std::optional<RuleMatch> best;
    for (const BindRule& rule : rules) {
        auto m = match(rule);
        if (m && (!best || beats(*m, *best))) best = m;
    }
    return best;
}

// ---- the system name service ---------------------------------------------------------

constexpr size_t kMaxNssBuffer = size_t{1} << 20;

// Runs a reentrant lookup (getpwnam_r and friends) with a buffer that grows while the
// lookup answers ERANGE; `read` takes what it needs from the entry while its strings
// still live in the buffer. nullopt when the entry is not found or the lookup fails.
template <typename Entry, typename Lookup, typename Read>
auto nss_lookup(Lookup lookup, Read read) -> std::optional<decltype(read(Entry{}))> {
    std::vector<char> buf(1024);
    for (;;) {
        Entry entry{};
        Entry* found = nullptr;
        const int err = lookup(&entry, buf.data(), buf.size(), &found);
        if (err == ERANGE && buf.size() < kMaxNssBuffer) {
            buf.resize(buf.size() * 2);
            continue;
        }
        if (err != 0 || found == nullptr) return std::nullopt;
        return read(*found);
    }
}

// Every group of a user (primary and supplementary), growing the list as getgrouplist
// asks.
std::vector<gid_t> groups_of(const std::string& user, gid_t primary) {
    std::vector<gid_t> groups(32);
    for (;;) {
        int n = static_cast<int>(groups.size());
        if (getgrouplist(user.c_str(), primary, groups.data(), &n) != -1) {
            groups.resize(static_cast<size_t>(std::max(n, 0)));
            return groups;
        }
        const size_t want = std::max(static_cast<size_t>(n), groups.size() * 2);
        if (want > kMaxNssBuffer) return {};
        groups.resize(want);
    }
}

// A name the C lookups can take: an embedded NUL would silently shorten it.
bool usable_name(const std::string& name) { return !name.empty() && !has_nul(name); }

class SystemUserDb final : public UserDb {
  public:
    std::optional<uint32_t> uid_of(const std::string& user) const override {
        if (is_numeric(user)) return parse_u32(user);
        if (!usable_name(user)) return std::nullopt;
        return nss_lookup<passwd>([&](passwd* e, char* b, size_t n,
                                      passwd** r) { return getpwnam_r(user.c_str(), e, b, n, r); },
                                  [](const passwd& p) { return static_cast<uint32_t>(p.pw_uid); });
    }

    std::optional<uint32_t> gid_of(const std::string& group) const override {
        if (is_numeric(group)) return parse_u32(group);
        if (!usable_name(group)) return std::nullopt;
        return nss_lookup<struct group>(
            [&](struct group* e, char* b, size_t n, struct group** r) {
                return getgrnam_r(group.c_str(), e, b, n, r);
            },
            [](const struct group& g) { return static_cast<uint32_t>(g.gr_gid); });
    }

    bool in_group(uint32_t uid, uint32_t gid) const override {
        auto user = nss_lookup<passwd>(
            [&](passwd* e, char* b, size_t n, passwd** r) { return getpwuid_r(uid, e, b, n, r); },
            [](const passwd& p) { return std::make_pair(std::string(p.pw_name), p.pw_gid); });
        if (!user) return false;
        if (user->second == gid) return true;
        const auto groups = groups_of(user->first, user->second);
        return std::find(groups.begin(), groups.end(), static_cast<gid_t>(gid)) != groups.end();
    }
};

}  // namespace

std::string_view to_string(RuleKind kind) {
    switch (kind) {
        case RuleKind::Cgroup:
            return "cgroup";
        case RuleKind::User:
            return "user";
        case RuleKind::Group:
            return "group";
        case RuleKind::Interface:
            return "interface";
    }
    return "unknown";
}

std::optional<RuleKind> rule_kind_from(std::string_view text) {
    for (RuleKind k : {RuleKind::Cgroup, RuleKind::User, RuleKind::Group, RuleKind::Interface})
        if (to_string(k) == text) return k;
    return std::nullopt;
}

std::optional<std::string> validate_rule(const BindRule& rule) {
    if (rule.persona.empty())
        return "rule for " + quoted(to_string(rule.kind), rule.pattern) + " needs a persona name";
    switch (rule.kind) {
        case RuleKind::Cgroup:
            return validate_cgroup_pattern(rule.pattern);
        case RuleKind::Interface:
            return validate_interface_pattern(rule.pattern);
        case RuleKind::User:
        case RuleKind::Group:
            return validate_account_pattern(to_string(rule.kind), rule.pattern);
    }
    return "rule for " + quoted("unknown", rule.pattern) + " has an unknown kind";
}

bool is_literal_pattern(std::string_view pattern) { return !has_any(pattern, "*?["); }

int literal_chars(std::string_view pattern) {
    int n = 0;
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '*' || c == '?') continue;
        if (c == '[') {
            const size_t end = bracket_end(pattern, i);
            if (end != std::string_view::npos) {
                i = end - 1;
                continue;
            }
        }
        if (c == '\\' && i + 1 < pattern.size()) ++i;  // "\*" is one literal '*'
        ++n;
    }
    return n;
}

// A string_view holding a NUL could not be passed to fnmatch whole: never a match.
bool glob_match_path(std::string_view pattern, std::string_view path) {
    if (has_nul(pattern) || has_nul(path)) return false;
    return fnmatch(std::string(pattern).c_str(), std::string(path).c_str(), FNM_PATHNAME) == 0;
}

bool glob_match_name(std::string_view pattern, std::string_view name) {
    if (has_nul(pattern) || has_nul(name)) return false;
    return fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), 0) == 0;
}

// logind names the slice "user-UID.slice" with UID in plain decimal: no sign, no leading
// zero, so one uid has exactly one slice name.
std::optional<uint32_t> user_slice_uid(std::string_view rel_path) {
    const size_t slash = rel_path.rfind('/');
    const std::string_view last =
        slash == std::string_view::npos ? rel_path : rel_path.substr(slash + 1);
    constexpr std::string_view prefix = "user-", suffix = ".slice";
    if (last.size() <= prefix.size() + suffix.size() || !last.starts_with(prefix) ||
        !last.ends_with(suffix))
        return std::nullopt;
    const std::string_view digits =
        last.substr(prefix.size(), last.size() - prefix.size() - suffix.size());
    if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
    return parse_u32(digits);
}

const UserDb& system_user_db() {
    static const SystemUserDb db;
    return db;
}

std::optional<RuleMatch> best_cgroup_rule(const std::vector<BindRule>& rules,
                                          const std::string& rel_path, const UserDb& users) {
    const auto slice_uid = user_slice_uid(rel_path);
    return best_of(rules,
                   [&](const BindRule& r) { return cgroup_match(r, rel_path, slice_uid, users); });
}

std::optional<RuleMatch> best_interface_rule(const std::vector<BindRule>& rules,
                                             const std::string& ifname) {
    return best_of(rules, [&](const BindRule& r) { return interface_match(r, ifname); });
}

std::string removal_hint(const BindRule& rule) {
    if (rule.origin == "pdl") {
        const std::string file =
            rule.created_by.rfind("pdl ", 0) == 0 ? rule.created_by.substr(4) : std::string();
        return "edit the bind block of persona '" + rule.persona + "'" +
               (file.empty() ? "" : " (in " + file + ")") + " and apply the file again";
    }
    return "remove the rule (personabpf rules rm " + std::to_string(rule.id) + ")";
}

}  // namespace pbpf::agent
