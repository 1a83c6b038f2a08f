// Binding rules: validation messages, glob semantics, user slices and "the most specific
// rule wins". A map-based UserDb stands in for the name service; the real one is only
// asked about root, numeric ids and a name nobody has.
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/bind_rules.h"

namespace pbpf::agent {
namespace {

// Users, groups and memberships from maps; numeric strings are ids, as the contract says.
class FakeUserDb : public UserDb {
  public:
    std::map<std::string, uint32_t> users;
    std::map<std::string, uint32_t> groups;
    std::map<uint32_t, std::set<uint32_t>> member_of;  // uid -> gids (primary included)

    std::optional<uint32_t> uid_of(const std::string& user) const override {
        return lookup(users, user);
    }
    std::optional<uint32_t> gid_of(const std::string& group) const override {
        return lookup(groups, group);
    }
    bool in_group(uint32_t uid, uint32_t gid) const override {
        auto it = member_of.find(uid);
        return it != member_of.end() && it->second.count(gid) > 0;
    }

  private:
    static std::optional<uint32_t> lookup(const std::map<std::string, uint32_t>& names,
                                          const std::string& name) {
        if (!name.empty() &&
            std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return static_cast<uint32_t>(std::stoul(name));
        auto it = names.find(name);
        if (it == names.end()) return std::nullopt;
        return it->second;
    }
};

// alice (1000) is in dev (50) and her own group (1000); bob (1001) only in his own.
FakeUserDb people() {
    FakeUserDb db;
    db.users = {{"alice", 1000}, {"bob", 1001}};
    db.groups = {{"alice", 1000}, {"bob", 1001}, {"dev", 50}, {"ops", 60}};
    db.member_of = {{1000, {1000, 50}}, {1001, {1001}}};
    return db;
}

BindRule rule(int64_t id, RuleKind kind, std::string pattern, std::string persona = "p") {
    BindRule r;
    r.id = id;
    r.kind = kind;
    r.pattern = std::move(pattern);
    r.persona = std::move(persona);
    r.origin = "api";
    return r;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

// The id of the winning rule, or -1 when none matches.
int64_t winner(const std::optional<RuleMatch>& m) { return m ? m->rule->id : -1; }

// ---- RuleKind ------------------------------------------------------------------------

TEST(BindRulesHint, SaysHowToRemoveWhatARuleBound) {
    BindRule api = rule(3, RuleKind::Cgroup, "/a/*", "web");
    api.origin = "api";
    EXPECT_EQ(removal_hint(api), "remove the rule (personabpf rules rm 3)");
    BindRule pdl = rule(4, RuleKind::Cgroup, "/a/*", "web");
    pdl.origin = "pdl";
    pdl.created_by = "pdl /etc/personabpf/web.pdl";
    EXPECT_EQ(removal_hint(pdl),
              "edit the bind block of persona 'web' (in /etc/personabpf/web.pdl) and apply the "
              "file again");
}

TEST(BindRulesKind, RoundTripsEveryKind) {
    for (RuleKind k : {RuleKind::Cgroup, RuleKind::User, RuleKind::Group, RuleKind::Interface}) {
        auto back = rule_kind_from(to_string(k));
        ASSERT_TRUE(back.has_value()) << to_string(k);
        EXPECT_EQ(*back, k);
    }
    EXPECT_EQ(to_string(RuleKind::Cgroup), "cgroup");
    EXPECT_EQ(to_string(RuleKind::User), "user");
    EXPECT_EQ(to_string(RuleKind::Group), "group");
    EXPECT_EQ(to_string(RuleKind::Interface), "interface");
}

TEST(BindRulesKind, RejectsUnknownText) {
    for (const char* text : {"", "Cgroup", "CGROUP", "iface", "users", "cgroup ", " user"})
        EXPECT_FALSE(rule_kind_from(text).has_value()) << '"' << text << '"';
}

// ---- validate_rule -------------------------------------------------------------------

TEST(BindRulesValidate, AcceptsGoodRules) {
    const std::vector<BindRule> good = {
        rule(1, RuleKind::Cgroup, "/machine.slice/libpod-*.scope"),
        rule(2, RuleKind::Cgroup, "/demo/w1"),
        rule(3, RuleKind::Cgroup, "/user.slice/user-[0-9]*.slice"),
        rule(4, RuleKind::Cgroup, "/a/[]x]/b"),  // ']' first in a class is a member
        rule(5, RuleKind::Cgroup, "/a/[!]]"),
        rule(6, RuleKind::Cgroup, "/a/b?c/..d/.e"),
        rule(7, RuleKind::Cgroup, "/" + std::string(4095, 'x')),  // 4096 bytes
        rule(8, RuleKind::Interface, "tap-web*"),
        rule(9, RuleKind::Interface, "eth0"),
        rule(10, RuleKind::Interface, "e[0-9]"),
        rule(11, RuleKind::Interface, std::string(15, 'i')),
        rule(12, RuleKind::User, "alice"),
        rule(13, RuleKind::User, "1000"),
        rule(14, RuleKind::User, std::string(32, 'u')),
        rule(15, RuleKind::Group, "wheel"),
        rule(16, RuleKind::Group, "50"),
        rule(17, RuleKind::Group, "domain-users"),
    };
    for (const auto& r : good) {
        auto err = validate_rule(r);
        EXPECT_FALSE(err.has_value()) << to_string(r.kind) << " \"" << r.pattern << "\": " << *err;
    }
}

struct BadRule {
    BindRule rule;
    std::string expect;  // part of the message
};

TEST(BindRulesValidate, RejectsBadRulesNamingThePattern) {
    const std::vector<BadRule> bad = {
        {rule(1, RuleKind::Cgroup, "/ok", ""), "persona"},
        {rule(1, RuleKind::Interface, "eth0", ""), "persona"},
        {rule(1, RuleKind::Cgroup, "machine.slice"), "must start with '/'"},
        {rule(1, RuleKind::Cgroup, ""), "must start with '/'"},
        {rule(1, RuleKind::Cgroup, "/"), "segments"},
        {rule(1, RuleKind::Cgroup, "/a//b"), "segments"},
        {rule(1, RuleKind::Cgroup, "/a/"), "segments"},
        {rule(1, RuleKind::Cgroup, "/a/./b"), "segments"},
        {rule(1, RuleKind::Cgroup, "/a/../b"), "segments"},
        {rule(1, RuleKind::Cgroup, "/a/.."), "segments"},
        {rule(1, RuleKind::Cgroup, "/a/[bc"), "']'"},
        {rule(1, RuleKind::Cgroup, "/a/[]"), "']'"},
        {rule(1, RuleKind::Cgroup, "/a/[!]"), "']'"},
        {rule(1, RuleKind::Cgroup, "/a[/]b"), "']'"},  // a class never matches '/'
        {rule(1, RuleKind::Cgroup, "/" + std::string(4096, 'x')), "4096 bytes"},
        {rule(1, RuleKind::Interface, ""), "1..15 bytes"},
        {rule(1, RuleKind::Interface, std::string(16, 'i')), "1..15 bytes"},
        {rule(1, RuleKind::Interface, "a/b"), "'/' or whitespace"},
        {rule(1, RuleKind::Interface, "eth 0"), "'/' or whitespace"},
        {rule(1, RuleKind::Interface, "eth\t0"), "'/' or whitespace"},
        {rule(1, RuleKind::Interface, "tap[0"), "']'"},
        {rule(1, RuleKind::Interface, "tap[]"), "']'"},
        {rule(1, RuleKind::User, ""), "1..32 bytes"},
        {rule(1, RuleKind::User, std::string(33, 'u')), "1..32 bytes"},
        {rule(1, RuleKind::User, "a/b"), "'/', ':' or whitespace"},
        {rule(1, RuleKind::User, "a:b"), "'/', ':' or whitespace"},
        {rule(1, RuleKind::User, "al ice"), "'/', ':' or whitespace"},
        {rule(1, RuleKind::Group, ""), "1..32 bytes"},
        {rule(1, RuleKind::Group, "wheel:x"), "'/', ':' or whitespace"},
        {rule(1, RuleKind::Group, "dev\n"), "'/', ':' or whitespace"},
    };
    for (const auto& b : bad) {
        SCOPED_TRACE(std::string(to_string(b.rule.kind)) + " \"" + b.rule.pattern + "\"");
        auto err = validate_rule(b.rule);
        ASSERT_TRUE(err.has_value());
        EXPECT_TRUE(contains(
            *err, std::string(to_string(b.rule.kind)) + " pattern \"" + b.rule.pattern + "\""))
            << *err;
        EXPECT_TRUE(contains(*err, b.expect)) << *err;
    }
}

TEST(BindRulesValidate, MessageSaysWhatIsExpected) {
    EXPECT_EQ(validate_rule(rule(1, RuleKind::Cgroup, "machine.slice")),
              "cgroup pattern \"machine.slice\" must start with '/'");
}

// ---- globs and literals --------------------------------------------------------------

struct GlobCase {
    const char* pattern;
    const char* subject;
    bool match;
};

TEST(BindRulesGlob, PathGlobsKeepToOneSegment) {
    const std::vector<GlobCase> cases = {
        {"/a", "/a", true},
        {"/a", "/ab", false},
        {"/a/*", "/a/b", true},
        {"/a/*", "/a/b/c", false},  // '*' does not cross '/'
        {"/*", "/a/b", false},
        {"/a/*/c", "/a/b/c", true},
        {"/a/?", "/a/b", true},
        {"/a/?", "/a/bc", false},
        {"/a?b", "/a/b", false},  // nor does '?'
        {"/a/[bc]", "/a/c", true},
        {"/a/[bc]", "/a/d", false},
        {"/a/[!bc]", "/a/d", true},
        {"/a/[!bc]", "/a/b", false},
        {"/a/[]x]", "/a/]", true},
        {"/a/[[:digit:]]", "/a/7", true},
        {"/a/[[:digit:]]", "/a/x", false},
        {"/m/libpod-*.scope", "/m/libpod-abc.scope", true},
        {"/m/libpod-*.scope", "/m/libpod-abc.scope/x", false},
    };
    for (const auto& c : cases)
        EXPECT_EQ(glob_match_path(c.pattern, c.subject), c.match)
            << c.pattern << " ~ " << c.subject;
}

TEST(BindRulesGlob, NameGlobs) {
    const std::vector<GlobCase> cases = {
        {"tap-*", "tap-web0", true}, {"tap-*", "tap-", true},    {"tap-*", "eth0", false},
        {"tap-?", "tap-1", true},    {"tap-?", "tap-10", false}, {"e[0-9]", "e5", true},
        {"e[0-9]", "ex", false},     {"eth0", "eth0", true},     {"eth0", "eth01", false},
    };
    for (const auto& c : cases)
        EXPECT_EQ(glob_match_name(c.pattern, c.subject), c.match)
            << c.pattern << " ~ " << c.subject;
}

TEST(BindRulesGlob, LiteralPatterns) {
    EXPECT_TRUE(is_literal_pattern("/a/b"));
    EXPECT_TRUE(is_literal_pattern("eth0"));
    EXPECT_TRUE(is_literal_pattern(""));
    EXPECT_FALSE(is_literal_pattern("/a/*"));
    EXPECT_FALSE(is_literal_pattern("/a/?"));
    EXPECT_FALSE(is_literal_pattern("/a/[b]"));
}

TEST(BindRulesGlob, LiteralCharsSkipWildcardsAndClasses) {
    const std::vector<std::pair<const char*, int>> cases = {
        {"/a/b", 4},     {"/a/*", 3},     {"/a/?x", 4},         {"/a/[bc]d", 4},
        {"/a/[]x]d", 4}, {"/a/[!]]d", 4}, {"/[[:digit:]]x", 2}, {"tap-web*", 7},
        {"***", 0},      {"", 0},         {"a\\*", 2},          {"/m/libpod-*.scope", 16},
    };
    for (const auto& [pattern, n] : cases) EXPECT_EQ(literal_chars(pattern), n) << pattern;
}

// ---- user slices ---------------------------------------------------------------------

TEST(BindRulesSlice, UidOfLogindUserSlices) {
    const std::vector<std::pair<const char*, std::optional<uint32_t>>> cases = {
        {"/user.slice/user-1000.slice", 1000},
        {"/user.slice/user-0.slice", 0},
        {"user-42.slice", 42},
        {"/other/user-7.slice", 7},  // only the last component counts
        {"/user.slice/user-4294967295.slice", 4294967295u},
        {"/user.slice/user-4294967296.slice", std::nullopt},
        {"/user.slice/user-.slice", std::nullopt},
        {"/user.slice/user-+1000.slice", std::nullopt},
        {"/user.slice/user--1.slice", std::nullopt},
        {"/user.slice/user- 1000.slice", std::nullopt},
        {"/user.slice/user-10a0.slice", std::nullopt},
        {"/user.slice/user-01000.slice", std::nullopt},
        {"/user.slice/user-1000.slice/session-1.scope", std::nullopt},
        {"/user.slice/user-1000.slice/", std::nullopt},
        {"/user.slice/user-1000.slicex", std::nullopt},
        {"/user.slice/xuser-1000.slice", std::nullopt},
        {"/user.slice", std::nullopt},
        {"/", std::nullopt},
        {"", std::nullopt},
    };
    for (const auto& [path, uid] : cases) EXPECT_EQ(user_slice_uid(path), uid) << path;
}

// ---- best_cgroup_rule ----------------------------------------------------------------

constexpr const char* kAliceSlice = "/user.slice/user-1000.slice";

TEST(BindRulesCgroup, ExactBeatsUserBeatsGroupBeatsGlob) {
    const FakeUserDb db = people();
    // Ids run against the precedence, so the older rule never wins by age alone.
    std::vector<BindRule> rules = {
        rule(1, RuleKind::Cgroup, "/user.slice/*"),
        rule(2, RuleKind::Group, "dev"),
        rule(3, RuleKind::User, "alice"),
        rule(4, RuleKind::Cgroup, kAliceSlice),
    };
    const std::vector<std::pair<int64_t, int>> expected = {{4, 4}, {3, 3}, {2, 2}, {1, 1}};
    for (const auto& [id, rank] : expected) {
        auto m = best_cgroup_rule(rules, kAliceSlice, db);
        ASSERT_TRUE(m.has_value());
        EXPECT_EQ(m->rule->id, id);
        EXPECT_EQ(m->rank, rank);
        EXPECT_EQ(m->rule, &rules.back());  // points into the vector
        rules.pop_back();
    }
    EXPECT_FALSE(best_cgroup_rule(rules, kAliceSlice, db).has_value());
}

TEST(BindRulesCgroup, LiteralCounts) {
    const FakeUserDb db = people();
    const std::vector<BindRule> rules = {
        rule(1, RuleKind::Cgroup, "/demo/w1"),
        rule(2, RuleKind::Cgroup, "/demo/*"),
        rule(3, RuleKind::User, "alice"),
    };
    auto exact = best_cgroup_rule(rules, "/demo/w1", db);
    ASSERT_TRUE(exact.has_value());
    EXPECT_EQ(exact->literal, 8);
    auto glob = best_cgroup_rule(rules, "/demo/w2", db);
    ASSERT_TRUE(glob.has_value());
    EXPECT_EQ(glob->literal, 6);
    auto user = best_cgroup_rule(rules, kAliceSlice, db);
    ASSERT_TRUE(user.has_value());
    EXPECT_EQ(user->literal, 0);
}

// systemd escapes unit names with backslashes; an exact path is compared as it is, not
// as an fnmatch pattern (where "\\x2d" would mean "x2d").
TEST(BindRulesCgroup, ExactPathsWithBackslashesMatchThemselves) {
    const std::string path = "/system.slice/system-openvpn\\x2dclient.slice";
    const std::vector<BindRule> rules = {rule(1, RuleKind::Cgroup, path)};
    auto m = best_cgroup_rule(rules, path, people());
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->rank, 4);
    EXPECT_FALSE(best_cgroup_rule(rules, "/system.slice/system-openvpnx2dclient.slice", people())
                     .has_value());
}

TEST(BindRulesCgroup, LongerLiteralGlobBeatsShorter) {
    const std::vector<BindRule> rules = {
        rule(1, RuleKind::Cgroup, "/machine.slice/*"),
        rule(2, RuleKind::Cgroup, "/machine.slice/libpod-*.scope"),
        rule(3, RuleKind::Cgroup, "/*/libpod-*"),
    };
    auto m = best_cgroup_rule(rules, "/machine.slice/libpod-abc.scope", people());
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->rule->id, 2);
    EXPECT_EQ(m->rank, 1);
    EXPECT_EQ(m->literal, literal_chars("/machine.slice/libpod-*.scope"));
    EXPECT_EQ(winner(best_cgroup_rule(rules, "/machine.slice/other.scope", people())), 1);
}

TEST(BindRulesCgroup, TieGoesToLowerIdInEitherOrder) {
    const FakeUserDb db = people();
    // Same rank and literal count: "/a/x*" and "/a/*y" both have 4 literal characters.
    std::vector<BindRule> globs = {rule(7, RuleKind::Cgroup, "/a/x*"),
                                   rule(3, RuleKind::Cgroup, "/a/*y")};
    // Two user rules naming the same uid.
    std::vector<BindRule> users = {rule(9, RuleKind::User, "alice"),
                                   rule(5, RuleKind::User, "1000")};
    for (int pass = 0; pass < 2; ++pass) {
        EXPECT_EQ(winner(best_cgroup_rule(globs, "/a/xy", db)), 3) << "pass " << pass;
        EXPECT_EQ(winner(best_cgroup_rule(users, kAliceSlice, db)), 5) << "pass " << pass;
        std::reverse(globs.begin(), globs.end());
        std::reverse(users.begin(), users.end());
    }
}

TEST(BindRulesCgroup, UserRulesByNameOrNumericUid) {
    const FakeUserDb db = people();
    EXPECT_EQ(winner(best_cgroup_rule({rule(1, RuleKind::User, "1000")}, kAliceSlice, db)), 1);
    EXPECT_EQ(winner(best_cgroup_rule({rule(1, RuleKind::User, "alice")}, kAliceSlice, db)), 1);
    EXPECT_EQ(winner(best_cgroup_rule({rule(1, RuleKind::User, "bob")}, kAliceSlice, db)), -1);
    EXPECT_EQ(winner(best_cgroup_rule({rule(1, RuleKind::User, "carol")}, kAliceSlice, db)), -1);
    EXPECT_EQ(winner(best_cgroup_rule({rule(1, RuleKind::User, "1001")},
                                      "/user.slice/user-1001.slice", db)),
              1);
}

TEST(BindRulesCgroup, GroupRulesFollowMembership) {
    const FakeUserDb db = people();
    const std::vector<BindRule> rules = {rule(1, RuleKind::Group, "dev")};
    EXPECT_EQ(winner(best_cgroup_rule(rules, kAliceSlice, db)), 1);
    EXPECT_EQ(winner(best_cgroup_rule(rules, "/user.slice/user-1001.slice", db)), -1);
    EXPECT_EQ(winner(best_cgroup_rule({rule(2, RuleKind::Group, "50")}, kAliceSlice, db)), 2);
    EXPECT_EQ(winner(best_cgroup_rule({rule(3, RuleKind::Group, "ops")}, kAliceSlice, db)), -1);
    EXPECT_EQ(winner(best_cgroup_rule({rule(4, RuleKind::Group, "nogroup")}, kAliceSlice, db)), -1);
    // A uid nobody knows is in no group.
    EXPECT_EQ(winner(best_cgroup_rule(rules, "/user.slice/user-4242.slice", db)), -1);
}

TEST(BindRulesCgroup, NonSliceCgroupsNeverMatchUserOrGroupRules) {
    const FakeUserDb db = people();
    const std::vector<BindRule> rules = {rule(1, RuleKind::User, "alice"),
                                         rule(2, RuleKind::User, "1000"),
                                         rule(3, RuleKind::Group, "dev")};
    for (const char* path : {"/user.slice/user-1000.slice/session-1.scope", "/user.slice",
                             "/demo/w1", "/user.slice/user-01000.slice", "/"})
        EXPECT_FALSE(best_cgroup_rule(rules, path, db).has_value()) << path;
}

TEST(BindRulesCgroup, InterfaceRulesNeverMatchCgroups) {
    const std::vector<BindRule> rules = {rule(1, RuleKind::Interface, "*"),
                                         rule(2, RuleKind::Interface, "w1")};
    EXPECT_FALSE(best_cgroup_rule(rules, "/w1", people()).has_value());
    EXPECT_FALSE(best_cgroup_rule(rules, "w1", people()).has_value());
}

// ---- best_interface_rule -------------------------------------------------------------

TEST(BindRulesInterface, ExactBeatsLongerGlobBeatsShorterGlob) {
    std::vector<BindRule> rules = {
        rule(1, RuleKind::Interface, "tap-*"),
        rule(2, RuleKind::Interface, "tap-web*"),
        rule(3, RuleKind::Interface, "tap-web0"),
    };
    const std::vector<std::pair<int64_t, int>> expected = {{3, 2}, {2, 1}, {1, 1}};
    for (const auto& [id, rank] : expected) {
        auto m = best_interface_rule(rules, "tap-web0");
        ASSERT_TRUE(m.has_value());
        EXPECT_EQ(m->rule->id, id);
        EXPECT_EQ(m->rank, rank);
        EXPECT_EQ(m->literal, literal_chars(m->rule->pattern));
        rules.pop_back();
    }
}

TEST(BindRulesInterface, TieGoesToLowerIdInEitherOrder) {
    std::vector<BindRule> rules = {rule(8, RuleKind::Interface, "tap?"),
                                   rule(4, RuleKind::Interface, "t?p0")};
    EXPECT_EQ(winner(best_interface_rule(rules, "tap0")), 4);
    std::reverse(rules.begin(), rules.end());
    EXPECT_EQ(winner(best_interface_rule(rules, "tap0")), 4);
}

TEST(BindRulesInterface, OnlyInterfaceRulesTakePart) {
    const std::vector<BindRule> rules = {
        rule(1, RuleKind::Cgroup, "eth0"),
        rule(2, RuleKind::Cgroup, "*"),
        rule(3, RuleKind::User, "eth0"),
        rule(4, RuleKind::Group, "eth0"),
    };
    EXPECT_FALSE(best_interface_rule(rules, "eth0").has_value());
    EXPECT_FALSE(best_interface_rule({rule(5, RuleKind::Interface, "tap*")}, "eth0").has_value());
}

// ---- the system name service ---------------------------------------------------------

TEST(BindRulesSystemUserDb, KnowsRoot) {
    const UserDb& db = system_user_db();
    EXPECT_EQ(db.uid_of("root"), 0u);
    EXPECT_EQ(db.gid_of("root"), 0u);
    EXPECT_TRUE(db.in_group(0, 0));
}

TEST(BindRulesSystemUserDb, UnknownNamesAreNullopt) {
    const UserDb& db = system_user_db();
    EXPECT_EQ(db.uid_of("pbpf-no-such-user-7f3a9c"), std::nullopt);
    EXPECT_EQ(db.gid_of("pbpf-no-such-group-7f3a9c"), std::nullopt);
    EXPECT_EQ(db.uid_of(std::string("root\0x", 6)), std::nullopt);  // not silently "root"
}

TEST(BindRulesSystemUserDb, NumericStringsAreIds) {
    const UserDb& db = system_user_db();
    EXPECT_EQ(db.uid_of("12345"), 12345u);
    EXPECT_EQ(db.uid_of("0"), 0u);
    EXPECT_EQ(db.gid_of("54321"), 54321u);
    EXPECT_EQ(db.uid_of("4294967296"), std::nullopt);  // does not fit a uid
}

}  // namespace
}  // namespace pbpf::agent
