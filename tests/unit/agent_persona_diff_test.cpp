// persona diff: the unified source diff and the readable list of changes.
#include <gtest/gtest.h>

#include "agent/persona_diff.h"

namespace pbpf::agent {
namespace {

TEST(UnifiedDiff, EqualTextsGiveNothing) {
    EXPECT_EQ(unified_diff("a\nb\n", "a\nb\n", "x", "y"), "");
}

TEST(UnifiedDiff, OneChangedLineWithContext) {
    const std::string a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    const std::string b = "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n";
    EXPECT_EQ(unified_diff(a, b, "web v1", "web v2"),
              "--- web v1\n+++ web v2\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n");
}

TEST(UnifiedDiff, FarApartChangesAreTwoHunks) {
    std::string a, b;
    for (int i = 1; i <= 30; ++i) {
        a += std::to_string(i) + "\n";
        b += (i == 3 || i == 25 ? "x" + std::to_string(i) : std::to_string(i)) + "\n";
    }
    const std::string d = unified_diff(a, b, "a", "b");
    EXPECT_NE(d.find("@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+x3\n 4\n 5\n 6\n"), std::string::npos) << d;
    EXPECT_NE(d.find("@@ -22,7 +22,7 @@\n 22\n 23\n 24\n-25\n+x25\n 26\n 27\n 28\n"),
              std::string::npos)
        << d;
}

TEST(UnifiedDiff, InsertionsAndDeletions) {
    const std::string d = unified_diff("a\nb\nc\n", "a\nc\nd\n", "old", "new");
    EXPECT_EQ(d, "--- old\n+++ new\n@@ -1,3 +1,3 @@\n a\n-b\n c\n+d\n");
    EXPECT_EQ(unified_diff("", "x\n", "old", "new"), "--- old\n+++ new\n@@ -0,0 +1,1 @@\n+x\n");
}

PersonaVersion ver(const std::string& rules, const std::string& mode, const std::string& image) {
    PersonaVersion v;
    v.persona = "web";
    v.filename = "web.pdl";
    v.rules_json = rules;
    v.mode = mode;
    v.default_ingress = "allow";
    v.default_egress = "deny";
    v.description = "d";
    v.image_json = image;
    return v;
}

TEST(VersionChanges, RulesModeDefaultsSettings) {
    PersonaVersion a = ver(R"(["allow egress tcp port 443", "deny egress udp"])", "enforce",
                           R"({"settings": {"qos": {"egress_rate_bps": 10}, "hop_limit": 5}})");
    PersonaVersion b = ver(R"(["allow egress tcp port 443", "allow egress tcp port 80"])", "audit",
                           R"({"settings": {"qos": {"egress_rate_bps": 20}, "priority": "high"}})");
    b.default_egress = "allow";
    b.filename = "web2.pdl";
    const std::vector<std::string> want = {
        "rule removed: deny egress udp",
        "rule added: allow egress tcp port 80",
        "mode: enforce -> audit",
        "default egress: deny -> allow",
        "setting removed: hop_limit (was 5)",
        "setting qos.egress_rate_bps: 10 -> 20",
        "setting added: priority = \"high\"",
        "file: web.pdl -> web2.pdl",
    };
    EXPECT_EQ(version_changes(a, b), want);
    EXPECT_TRUE(version_changes(a, a).empty());
}

TEST(VersionChanges, GarbageStoredJsonIsNoCrash) {
    PersonaVersion a = ver("not json", "enforce", "{");
    PersonaVersion b = ver("[1, 2]", "enforce", "[]");
    auto changes = version_changes(a, b);
    EXPECT_EQ(changes.size(), 2u);  // the two rules, shown as JSON
}

}  // namespace
}  // namespace pbpf::agent
