// Lowering: golden MapImage JSON for the fixtures in golden/, plus focused checks of the
// algorithm (port blocks, classes, defaults, audit). Regenerate the golden files with
// PERSONABPF_UPDATE_GOLDEN=1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/unit/test_util.h"

namespace pdl {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

TEST(LowerGolden, MatchesGoldenJson) {
    const bool update = std::getenv("PERSONABPF_UPDATE_GOLDEN") &&
                        std::string(std::getenv("PERSONABPF_UPDATE_GOLDEN")) == "1";
    size_t checked = 0;
    for (const auto& entry : fs::directory_iterator(PERSONABPF_GOLDEN_DIR)) {
        if (entry.path().extension() != ".pdl") continue;
        SCOPED_TRACE(entry.path().string());
        auto out = compile(Source{entry.path().filename().string(), read(entry.path())});
        ASSERT_TRUE(out.ok()) << out.diagnostics;
        std::string json = to_json(lower(out.personas)).dump(2) + "\n";
        fs::path golden = entry.path();
        golden.replace_extension(".json");
        if (update) {
            std::ofstream(golden) << json;
        } else {
            ASSERT_TRUE(fs::exists(golden))
                << golden << " is missing; run with PERSONABPF_UPDATE_GOLDEN=1";
            EXPECT_EQ(json, read(golden))
                << "lowering changed; if intended, regenerate with PERSONABPF_UPDATE_GOLDEN=1";
        }
        ++checked;
    }
    EXPECT_GE(checked, 3u);
}

std::vector<std::string> port_lines(const pbpf::PersonaImage& img, const std::string& proto,
                                    uint32_t cls) {
    std::vector<std::string> out;
    for (const auto& e : img.entries) {
        auto j = to_json(e);
        if (j["kind"] == "port" && j["proto"] == proto && j["class"] == cls)
            out.push_back(j["ports"].get<std::string>() + " " + j["verdict"].get<std::string>() +
                          " " + std::to_string(j["rule"].get<uint32_t>()));
    }
    return out;
}

pbpf::PersonaImage lower_one(const std::string& text) {
    auto out = test::compile_text(text);
    EXPECT_TRUE(out.ok()) << out.diagnostics;
    EXPECT_EQ(out.personas.size(), 1u);
    return out.personas.empty() ? pbpf::PersonaImage{} : lower(out.personas[0]);
}

TEST(Lower, EmptyPersonaIsDefaultsOnly) {
    auto img = lower_one("persona p {\n  security {\n    default egress deny\n  }\n}\n");
    EXPECT_EQ(img.name, "p");
    EXPECT_FALSE(img.audit);
    EXPECT_EQ(img.default_ingress, PBPF_VERDICT_ALLOW);
    EXPECT_EQ(img.default_egress, PBPF_VERDICT_DENY);
    EXPECT_EQ(img.rule_count, 0u);
    // One class per (direction, family): its /0 address and four protocol buckets.
    EXPECT_EQ(img.class_count, 4u);
    EXPECT_EQ(img.entries.size(), 4u * 5u);
    EXPECT_EQ(port_lines(img, "tcp", 3), std::vector<std::string>{"any deny 0"});
}

TEST(Lower, PortRangesBecomeAlignedBlocks) {
    auto img = lower_one(
        "persona p {\n  security {\n    default egress deny\n"
        "    allow egress tcp port 8000-8099 to any\n  }\n}\n");
    // Egress IPv4 is class 3 (ingress v4, ingress v6 come first).
    EXPECT_EQ(
        port_lines(img, "tcp", 3),
        (std::vector<std::string>{
            "0-4095 deny 0", "4096-6143 deny 0", "6144-7167 deny 0", "7168-7679 deny 0",
            "7680-7935 deny 0", "7936-7999 deny 0", "8000-8063 allow 1", "8064-8095 allow 1",
            "8096-8099 allow 1", "8100-8103 deny 0", "8104-8111 deny 0", "8112-8127 deny 0",
            "8128-8191 deny 0", "8192-16383 deny 0", "16384-32767 deny 0", "32768-65535 deny 0"}));
    EXPECT_EQ(port_lines(img, "udp", 3), std::vector<std::string>{"any deny 0"});
}

TEST(Lower, DenyBeatsAllowAndLowestRuleIsReported) {
    auto img = lower_one(
        "persona p {\n  security {\n"
        "    allow egress tcp port 10-20 to any\n"
        "    deny egress tcp port 15 to any\n"
        "    allow egress tcp port 10-11 to any\n"
        "    deny egress tcp port 15 to any\n  }\n}\n");
    EXPECT_EQ(
        port_lines(img, "tcp", 3),
        (std::vector<std::string>{
            "0-7 allow 0",         "8-9 allow 0",        "10-11 allow 1",     "12-13 allow 1",
            "14 allow 1",          "15 deny 2",          "16-19 allow 1",     "20 allow 1",
            "21 allow 0",          "22-23 allow 0",      "24-31 allow 0",     "32-63 allow 0",
            "64-127 allow 0",      "128-255 allow 0",    "256-511 allow 0",   "512-1023 allow 0",
            "1024-2047 allow 0",   "2048-4095 allow 0",  "4096-8191 allow 0", "8192-16383 allow 0",
            "16384-32767 allow 0", "32768-65535 allow 0"}));
}

TEST(Lower, ClassesFollowPrefixes) {
    auto img = lower_one(
        "persona p {\n  security {\n"
        "    allow egress tcp to 10.0.0.0/8\n"
        "    deny egress tcp to 10.1.0.0/16\n"
        "    allow egress udp to { 10.1.0.0/16, 10.2.0.0/16 }\n  }\n}\n");
    std::map<std::string, uint32_t> cls;
    for (const auto& e : img.entries) {
        auto j = to_json(e);
        if (j["kind"] == "addr" && j["dir"] == "egress")
            cls[j["prefix"].get<std::string>()] = j["class"].get<uint32_t>();
    }
    ASSERT_EQ(cls.size(), 5u);
    // 10.2/16 matches rules 1 and 3, just like 10.1/16 minus the deny: distinct classes.
    EXPECT_EQ(cls["0.0.0.0/0"], 3u);
    EXPECT_EQ(cls["10.0.0.0/8"], 4u);
    EXPECT_EQ(cls["10.1.0.0/16"], 5u);
    EXPECT_EQ(cls["10.2.0.0/16"], 6u);
    EXPECT_EQ(cls["::/0"], 7u);
    EXPECT_EQ(img.class_count, 7u);
    EXPECT_EQ(port_lines(img, "tcp", 5), std::vector<std::string>{"any deny 2"});
    EXPECT_EQ(port_lines(img, "udp", 5), std::vector<std::string>{"any allow 3"});
    EXPECT_EQ(port_lines(img, "tcp", 6), std::vector<std::string>{"any allow 1"});
}

TEST(Lower, SamePeersShareAClass) {
    auto img = lower_one(
        "persona p {\n  security {\n"
        "    allow egress tcp to { 10.0.0.1, 10.0.0.2 }\n  }\n}\n");
    EXPECT_EQ(img.class_count, 5u);  // v4 /0 ingress, v6 ingress, v4 /0, the pair, v6
}

TEST(Lower, AuditFlagsEveryPortEntry) {
    auto img = lower_one(
        "persona p {\n  security {\n    mode audit\n"
        "    deny egress tcp port 22 to any\n  }\n}\n");
    EXPECT_TRUE(img.audit);
    size_t ports = 0;
    for (const auto& e : img.entries) {
        if (e.key.kind != PBPF_ENTRY_PORT) continue;
        ++ports;
        EXPECT_EQ(e.value.flags, PBPF_POLICY_F_AUDIT);
    }
    EXPECT_GT(ports, 0u);
}

TEST(Lower, IcmpRulesOnlyReachTheirFamily) {
    auto img = lower_one(
        "persona p {\n  security {\n    default egress deny\n"
        "    allow egress icmp to any\n    allow egress icmpv6 to any\n  }\n}\n");
    EXPECT_EQ(port_lines(img, "icmp", 3), std::vector<std::string>{"any allow 1"});
    EXPECT_EQ(port_lines(img, "icmpv6", 4), std::vector<std::string>{"any allow 2"});
    EXPECT_EQ(port_lines(img, "other", 3), std::vector<std::string>{"any deny 0"});
}

TEST(Lower, MapImageIsSortedByName) {
    auto out = test::compile_text("persona b {\n}\npersona a {\n}\n");
    ASSERT_TRUE(out.ok());
    auto m = lower(out.personas);
    ASSERT_EQ(m.personas.size(), 2u);
    EXPECT_EQ(m.personas[0].name, "a");
    EXPECT_EQ(m.personas[1].name, "b");
}

TEST(Compile, FileWithErrorsCompilesToNothing) {
    auto out = test::compile_text("persona good {\n}\npersona bad {\n  mode audit\n}\n");
    EXPECT_EQ(out.errors, 1u);
    EXPECT_FALSE(out.ok());
    EXPECT_TRUE(out.personas.empty());
}

TEST(Compile, DefaultsWhenNotWritten) {
    auto out = test::compile_text("persona p {\n}\n");
    ASSERT_TRUE(out.ok());
    const auto& p = out.personas.at(0);
    EXPECT_EQ(p.mode, ir::Mode::Enforce);
    EXPECT_EQ(p.default_ingress, ir::Action::Allow);
    EXPECT_EQ(p.default_egress, ir::Action::Allow);
}

TEST(Compile, RulesCarryIdsTextAndLocation) {
    auto out = test::compile_text(
        "set dns = { 10.0.0.53, 10.0.0.54 }\n"
        "persona p {\n  security {\n"
        "    allow egress tcp port 443 to 10.0.0.0/8\n"
        "    allow egress udp port { 53, 5353 } to $dns\n"
        "    deny ingress any from any\n"
        "    allow ingress icmpv6 from 2001:db8::1\n  }\n}\n",
        "x.pdl");
    ASSERT_TRUE(out.ok()) << out.diagnostics;
    const auto& r = out.personas.at(0).rules;
    ASSERT_EQ(r.size(), 4u);
    EXPECT_EQ(r[0].id, 1u);
    EXPECT_EQ(r[0].text, "allow egress tcp port 443 to 10.0.0.0/8");
    EXPECT_EQ(r[1].text, "allow egress udp port { 53, 5353 } to { 10.0.0.53, 10.0.0.54 }");
    EXPECT_EQ(r[2].text, "deny ingress any from any");
    EXPECT_EQ(r[3].text, "allow ingress icmpv6 from 2001:db8::1");
    EXPECT_EQ(r[3].id, 4u);
    EXPECT_EQ(r[3].loc.file, "x.pdl");
    EXPECT_EQ(r[3].loc.line, 7u);
    EXPECT_EQ(r[3].loc.col, 5u);
    EXPECT_EQ(describe_rule(r[1]), r[1].text);
}

}  // namespace
}  // namespace pdl
