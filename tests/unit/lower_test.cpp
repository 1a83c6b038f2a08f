// Lowering: golden MapImage JSON for the fixtures in golden/, plus focused checks of the
// algorithm (port blocks, classes, defaults, audit) and of every other section (settings,
// encryption exceptions, sovereignty exemptions, forwards). Regenerate the golden files
// with PERSONABPF_UPDATE_GOLDEN=1.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/unit/ir_fixtures.h"
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
        // As `pdl compile -j` prints it: bind blocks only when the file has some.
        nlohmann::json j = to_json(lower(out.personas));
        for (const auto& bind : out.binds) j["binds"].push_back(to_json(bind));
        std::string json = j.dump(2) + "\n";
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
    // Egress IPv4 is class 3 (ingress v4, ingress v6 come first). The lookup is
    // longest-prefix: the default is one catch-all, the allowed range its aligned blocks.
    EXPECT_EQ(port_lines(img, "tcp", 3),
              (std::vector<std::string>{"any deny 0", "8000-8063 allow 1", "8064-8095 allow 1",
                                        "8096-8099 allow 1"}));
    EXPECT_EQ(port_lines(img, "udp", 3), std::vector<std::string>{"any deny 0"});
}

TEST(Lower, DenyBeatsAllowAndLowestRuleIsReported) {
    auto img = lower_one(
        "persona p {\n  security {\n"
        "    allow egress tcp port 10-20 to any\n"
        "    deny egress tcp port 15 to any\n"
        "    allow egress tcp port 10-11 to any\n"
        "    deny egress tcp port 15 to any\n  }\n}\n");
    EXPECT_EQ(port_lines(img, "tcp", 3),
              (std::vector<std::string>{"any allow 0", "10-11 allow 1", "12-13 allow 1",
                                        "14 allow 1", "15 deny 2", "16-19 allow 1", "20 allow 1"}));
}

// The catch-all takes whichever decision would otherwise cost the most blocks: here the
// allow of every port, with the one denied port carved out of it.
TEST(Lower, CatchAllTakesTheWidestDecision) {
    auto img = lower_one(
        "persona p {\n  security {\n    default egress deny\n"
        "    allow egress tcp to any\n"
        "    deny egress tcp port 22 to any\n"
        "    allow egress udp port 0-65534 to any\n  }\n}\n");
    EXPECT_EQ(port_lines(img, "tcp", 3), (std::vector<std::string>{"any allow 1", "22 deny 2"}));
    EXPECT_EQ(port_lines(img, "udp", 3), (std::vector<std::string>{"any allow 3", "65535 deny 0"}));
    EXPECT_EQ(port_lines(img, "other", 3), std::vector<std::string>{"any deny 0"});
}

// Equal costs: the default keeps the catch-all.
TEST(Lower, CatchAllPrefersTheDefaultOnATie) {
    auto img = lower_one(
        "persona p {\n  security {\n    default egress deny\n"
        "    allow egress tcp port 32768-65535 to any\n  }\n}\n");
    EXPECT_EQ(port_lines(img, "tcp", 3),
              (std::vector<std::string>{"any deny 0", "32768-65535 allow 1"}));
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

// ---- sections beyond security, from IR built by hand ----

using D = ir::Direction;
using P = ir::Proto;

bool settings_zero_but(const pbpf_persona_settings& s, uint32_t flags) {
    pbpf_persona_settings want;
    std::memset(&want, 0, sizeof want);
    want.flags = flags;
    return std::memcmp(&s, &want, sizeof s) == 0;
}

size_t count_kind(const pbpf::PersonaImage& img, uint8_t kind) {
    size_t n = 0;
    for (const auto& e : img.entries) n += e.key.kind == kind;
    return n;
}

std::string addr_text(const pbpf_addr& a) {
    return a.family == 0
               ? "-"
               : format_address(a.family == PBPF_FAMILY_IPV4 ? ir::Family::V4 : ir::Family::V6,
                                a.addr);
}

bool has_country(const pbpf_persona_settings& s, const char* code) {
    unsigned bit = static_cast<unsigned>(code[0] - 'A') * 26 + (code[1] - 'A');
    return (s.countries[bit / 64] >> (bit % 64)) & 1;
}

size_t country_count(const pbpf_persona_settings& s) {
    size_t n = 0;
    for (uint64_t w : s.countries) n += static_cast<size_t>(std::popcount(w));
    return n;
}

TEST(LowerSettings, SecurityOnlyPersonaHasNoSettings) {
    ir::Persona p;
    p.name = "sec";
    p.rules = {test::rule(1, ir::Action::Allow, D::Egress, P::Tcp, {{443, 443}}, {})};
    auto img = lower(p);
    EXPECT_TRUE(settings_zero_but(img.settings, 0));
    EXPECT_TRUE(img.forwards.empty());
    EXPECT_TRUE(img.dns_search.empty());
    EXPECT_EQ(count_kind(img, PBPF_ENTRY_ADDR) + count_kind(img, PBPF_ENTRY_PORT),
              img.entries.size());
    auto j = to_json(img);
    EXPECT_FALSE(j.contains("settings"));
    EXPECT_FALSE(j.contains("forwards"));

    // Audit mode is mirrored into the settings, but the JSON says it once, at the top.
    p.mode = ir::Mode::Audit;
    img = lower(p);
    EXPECT_TRUE(settings_zero_but(img.settings, PBPF_SETTINGS_F_AUDIT));
    j = to_json(img);
    EXPECT_FALSE(j.contains("settings"));
    EXPECT_EQ(j["audit"], true);
}

TEST(LowerSettings, EverySectionFillsItsFields) {
    auto img = lower(test::full_persona());
    const auto& s = img.settings;
    EXPECT_EQ(s.flags, PBPF_SETTINGS_F_ENCRYPTION_REQUIRED | PBPF_SETTINGS_F_IDS_SYN_FLOOD |
                           PBPF_SETTINGS_F_IDS_PORT_SCAN | PBPF_SETTINGS_F_QOS_EGRESS |
                           PBPF_SETTINGS_F_QOS_INGRESS | PBPF_SETTINGS_F_ROUTE_TABLE |
                           PBPF_SETTINGS_F_SOVEREIGNTY | PBPF_SETTINGS_F_SOV_LOG_ONLY);
    EXPECT_EQ(s.min_tls, 0x0304);
    EXPECT_EQ(s.syn_flood.count, 2000u);
    EXPECT_EQ(s.syn_flood.window_ns, 1'000'000'000u);
    EXPECT_EQ(s.syn_flood.block_ns, 60'000'000'000u);
    EXPECT_EQ(s.port_scan.count, 50u);
    EXPECT_EQ(s.port_scan.window_ns, 10'000'000'000u);
    EXPECT_EQ(s.port_scan.block_ns, 300'000'000'000u);
    EXPECT_EQ(s.egress.rate_bps, 200'000'000u);
    EXPECT_EQ(s.egress.burst_bytes, 262'144u);
    EXPECT_EQ(s.ingress.rate_bps, 500'000'000u);
    EXPECT_EQ(s.ingress.burst_bytes, 0u);
    EXPECT_EQ(s.priority, PBPF_PRIORITY_HIGH);
    EXPECT_EQ(s.latency_target_ns, 5'000'000u);
    EXPECT_EQ(s.route_table, 100u);
    EXPECT_EQ(s.route_via.family, 0);
    EXPECT_EQ(s.max_hops, 8);
    // Next hops are a set: sorted (IPv4 first), whatever the order written.
    ASSERT_EQ(s.next_hop_count, 3);
    EXPECT_EQ(addr_text(s.next_hops[0]), "10.0.0.1");
    EXPECT_EQ(addr_text(s.next_hops[1]), "10.0.0.2");
    EXPECT_EQ(addr_text(s.next_hops[2]), "2001:db8::1");
    EXPECT_EQ(s.next_hops[3].family, 0);
    // DNS servers keep their order of preference.
    ASSERT_EQ(s.dns_count, 2);
    EXPECT_EQ(addr_text(s.dns_servers[0]), "10.0.0.53");
    EXPECT_EQ(addr_text(s.dns_servers[1]), "fd00::53");
    EXPECT_EQ(img.dns_search, (std::vector<std::string>{"corp.example", "example.org"}));
    // CH = 2*26+7 = 59, DE = 3*26+4 = 82, NO = 13*26+14 = 352.
    EXPECT_EQ(s.countries[0], uint64_t{1} << 59);
    EXPECT_EQ(s.countries[1], uint64_t{1} << (82 - 64));
    EXPECT_EQ(s.countries[5], uint64_t{1} << (352 - 320));
    EXPECT_EQ(country_count(s), 3u);
    EXPECT_TRUE(has_country(s, "DE"));
    EXPECT_FALSE(has_country(s, "FR"));
}

TEST(LowerSettings, RouteViaDenyListAndTheBitmapEdges) {
    ir::Persona p;
    p.name = "p";
    p.topology.route = ir::Route{ir::Route::Kind::Via, 0, test::cidr("fd00::1")};
    p.sovereignty.list = ir::Action::Deny;
    p.sovereignty.countries = {"AA", "ZZ"};
    p.sovereignty.unknown = ir::Action::Allow;
    p.sovereignty.on_violation = ir::OnViolation::Drop;
    auto img = lower(p);
    const auto& s = img.settings;
    EXPECT_EQ(s.flags, PBPF_SETTINGS_F_ROUTE_VIA | PBPF_SETTINGS_F_SOVEREIGNTY |
                           PBPF_SETTINGS_F_SOV_DENY_LIST | PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW);
    EXPECT_EQ(s.route_table, 0u);
    EXPECT_EQ(s.route_via.family, PBPF_FAMILY_IPV6);
    EXPECT_EQ(addr_text(s.route_via), "fd00::1");
    // AA is bit 0, ZZ bit 675, the last one: word 10, bit 35.
    EXPECT_EQ(s.countries[0], 1u);
    EXPECT_EQ(s.countries[PBPF_COUNTRY_WORDS - 1], uint64_t{1} << 35);
    EXPECT_EQ(country_count(s), 2u);
}

TEST(LowerSettings, UnsetValuesStayZero) {
    ir::Persona p;
    p.name = "p";
    p.qos.priority = ir::Priority::Low;
    p.topology.max_hops = 1;
    p.sovereignty.list = ir::Action::Allow;  // nothing allowed but what is exempt
    auto img = lower(p);
    EXPECT_EQ(img.settings.flags, PBPF_SETTINGS_F_SOVEREIGNTY);
    EXPECT_EQ(img.settings.priority, PBPF_PRIORITY_LOW);
    EXPECT_EQ(img.settings.max_hops, 1);
    EXPECT_EQ(country_count(img.settings), 0u);
    EXPECT_EQ(img.settings.latency_target_ns, 0u);
    EXPECT_EQ(img.settings.next_hop_count, 0);
    EXPECT_EQ(img.settings.dns_count, 0);
    EXPECT_EQ(img.settings.min_tls, 0);
}

TEST(LowerSettings, SovereigntyWithoutACountryListIsOff) {
    ir::Persona p;
    p.name = "p";
    p.sovereignty.unknown = ir::Action::Allow;
    p.sovereignty.on_violation = ir::OnViolation::Log;
    p.sovereignty.exempt = {test::cidr("10.0.0.0/8")};
    auto img = lower(p);
    EXPECT_TRUE(settings_zero_but(img.settings, 0));
    EXPECT_EQ(count_kind(img, PBPF_ENTRY_SOV_EXEMPT), 0u);
}

TEST(LowerSettings, SovereigntyExemptEntries) {
    auto img = lower(test::full_persona());
    std::vector<std::string> exempt;
    for (const auto& e : img.entries) {
        if (e.key.kind != PBPF_ENTRY_SOV_EXEMPT) continue;
        EXPECT_EQ(e.key.dir, 0);
        EXPECT_EQ(e.key.table, 0);
        EXPECT_EQ(e.value.verdict, PBPF_VERDICT_ALLOW);
        EXPECT_EQ(e.value.class_id, 0u);
        EXPECT_EQ(e.value.rule_id, 0u);
        EXPECT_EQ(e.value.flags, 0);
        exempt.push_back(to_json(e).dump());
    }
    EXPECT_EQ(exempt, (std::vector<std::string>{
                          R"({"family":"ipv4","kind":"sov-exempt","prefix":"10.0.0.0/8"})",
                          R"({"family":"ipv4","kind":"sov-exempt","prefix":"192.168.0.0/16"})",
                          R"({"family":"ipv6","kind":"sov-exempt","prefix":"fd00::/8"})"}));
    const pbpf::PolicyEntry* v4 = nullptr;
    for (const auto& e : img.entries)
        if (e.key.kind == PBPF_ENTRY_SOV_EXEMPT && e.key.data[0] == 192) v4 = &e;
    ASSERT_NE(v4, nullptr);
    EXPECT_EQ(v4->key.prefixlen, 32u + 16);
    EXPECT_EQ(v4->key.family_or_proto, PBPF_FAMILY_IPV4);
    const uint8_t want[16] = {192, 168};
    EXPECT_EQ(std::memcmp(v4->key.data, want, 16), 0);
}

// An LPM lookup over the entries, as the kernel's trie does it (bits from `kind` on).
const pbpf::PolicyEntry* lpm(const std::vector<pbpf::PolicyEntry>& entries,
                             const pbpf_policy_key& key) {
    const auto* kb = reinterpret_cast<const uint8_t*>(&key) + offsetof(pbpf_policy_key, kind);
    const pbpf::PolicyEntry* best = nullptr;
    for (const auto& e : entries) {
        if (e.key.prefixlen > key.prefixlen) continue;
        const auto* eb = reinterpret_cast<const uint8_t*>(&e.key) + offsetof(pbpf_policy_key, kind);
        bool match = true;
        for (uint32_t bit = 0; bit < e.key.prefixlen && match; ++bit) {
            const auto m = static_cast<uint8_t>(0x80u >> (bit % 8));
            match = (eb[bit / 8] & m) == (kb[bit / 8] & m);
        }
        if (match && (!best || e.key.prefixlen > best->key.prefixlen)) best = &e;
    }
    return best;
}

// The ENC_ADDR then ENC_PORT lookup a later enforcement does: "allow N" (exempt by
// exception N), "deny 0" (must be encrypted), or "miss".
std::string enc_lookup(const pbpf::PersonaImage& img, D dir, const std::string& peer, uint8_t proto,
                       uint16_t port) {
    const ir::Cidr host = test::cidr(peer);
    const bool v4 = host.family == ir::Family::V4;
    pbpf_policy_key k;
    std::memset(&k, 0, sizeof k);
    k.kind = PBPF_ENTRY_ENC_ADDR;
    k.dir = dir == D::Egress ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS;
    k.family_or_proto = v4 ? PBPF_FAMILY_IPV4 : PBPF_FAMILY_IPV6;
    std::memcpy(k.data, host.addr.data(), v4 ? 4 : 16);
    k.prefixlen = PBPF_POLICY_HEADER_BITS + (v4 ? 32 : 128);
    const auto* addr = lpm(img.entries, k);
    if (!addr || addr->key.kind != PBPF_ENTRY_ENC_ADDR) return "miss";
    const uint32_t cls = addr->value.class_id;
    std::memset(&k, 0, sizeof k);
    k.kind = PBPF_ENTRY_ENC_PORT;
    k.family_or_proto = proto;
    k.data[0] = static_cast<uint8_t>(cls >> 24);
    k.data[1] = static_cast<uint8_t>(cls >> 16);
    k.data[2] = static_cast<uint8_t>(cls >> 8);
    k.data[3] = static_cast<uint8_t>(cls);
    k.data[4] = static_cast<uint8_t>(port >> 8);
    k.data[5] = static_cast<uint8_t>(port);
    k.prefixlen = PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS + 16;
    const auto* verdict = lpm(img.entries, k);
    if (!verdict || verdict->key.kind != PBPF_ENTRY_ENC_PORT) return "miss";
    return std::string(verdict->value.verdict == PBPF_VERDICT_ALLOW ? "allow " : "deny ") +
           std::to_string(verdict->value.rule_id);
}

TEST(LowerEncryption, ExemptFlowsAllowEverythingElseDeny) {
    auto img = lower(test::full_persona());
    // Exception 1: egress udp port 53, any address of either family.
    EXPECT_EQ(enc_lookup(img, D::Egress, "10.0.0.53", PBPF_PROTO_UDP, 53), "allow 1");
    EXPECT_EQ(enc_lookup(img, D::Egress, "fd00::53", PBPF_PROTO_UDP, 53), "allow 1");
    EXPECT_EQ(enc_lookup(img, D::Egress, "10.0.0.53", PBPF_PROTO_UDP, 54), "deny 0");
    EXPECT_EQ(enc_lookup(img, D::Egress, "10.0.0.53", PBPF_PROTO_TCP, 53), "deny 0");
    EXPECT_EQ(enc_lookup(img, D::Ingress, "10.0.0.53", PBPF_PROTO_UDP, 53), "deny 0");
    // Exception 2: tcp port 22 with 192.168.0.0/16, in both directions.
    EXPECT_EQ(enc_lookup(img, D::Egress, "192.168.4.5", PBPF_PROTO_TCP, 22), "allow 2");
    EXPECT_EQ(enc_lookup(img, D::Ingress, "192.168.4.5", PBPF_PROTO_TCP, 22), "allow 2");
    EXPECT_EQ(enc_lookup(img, D::Ingress, "192.169.4.5", PBPF_PROTO_TCP, 22), "deny 0");
    EXPECT_EQ(enc_lookup(img, D::Egress, "2001:db8::1", PBPF_PROTO_TCP, 22), "deny 0");
    EXPECT_EQ(enc_lookup(img, D::Egress, "192.168.4.5", PBPF_PROTO_TCP, 443), "deny 0");
    EXPECT_EQ(enc_lookup(img, D::Egress, "192.168.4.5", PBPF_PROTO_OTHER, 0), "deny 0");
}

// Random exceptions and flows: the ENC lookup says "allow N" exactly when exception N is
// the first one matching the flow, "deny 0" when none does. Seeded, so failures reproduce.
TEST(LowerEncryption, LookupAgreesWithTheExceptions) {
    std::mt19937 rng(0xe5c);
    auto below = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng); };
    const char* v4_peers[] = {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "192.168.0.0/16"};
    const char* v6_peers[] = {"fd00::/8", "fd00:1::/32", "2001:db8::1"};
    const char* v4_hosts[] = {"10.1.2.3", "10.1.9.9", "10.9.9.9", "192.168.1.1", "8.8.8.8"};
    const char* v6_hosts[] = {"fd00:1::5", "fd00:2::5", "2001:db8::1", "2001:db8::2"};
    const uint16_t ports[] = {22, 53, 80, 443, 8000, 8099, 65535};
    for (int round = 0; round < 200; ++round) {
        ir::Persona p;
        p.name = "p";
        p.mode = below(2) ? ir::Mode::Audit : ir::Mode::Enforce;
        p.encryption.required = true;
        const uint32_t n = 1 + below(5);
        for (uint32_t i = 0; i < n; ++i) {
            ir::Match m;
            const uint32_t d = below(3);
            if (d < 2) m.direction = d == 0 ? D::Ingress : D::Egress;
            const P protos[] = {P::Tcp, P::Udp, P::Any, P::Icmp, P::Icmpv6};
            m.proto = protos[below(5)];
            if ((m.proto == P::Tcp || m.proto == P::Udp) && below(3) != 0) {
                const uint32_t lo = ports[below(7)];
                const uint32_t hi = std::min<uint32_t>(65535, lo + 99 * below(2));
                m.ports.push_back({static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)});
            }
            if (below(2)) {
                if (m.proto != P::Icmpv6) m.peers.push_back(test::cidr(v4_peers[below(4)]));
                if (m.proto != P::Icmp && below(2))
                    m.peers.push_back(test::cidr(v6_peers[below(3)]));
            }
            p.encryption.exceptions.push_back(m);
        }
        const auto img = lower(p);
        for (int flow = 0; flow < 100; ++flow) {
            const D dir = below(2) ? D::Ingress : D::Egress;
            const bool v4 = below(2);
            const std::string peer = v4 ? v4_hosts[below(5)] : v6_hosts[below(4)];
            const uint8_t protos[] = {
                PBPF_PROTO_TCP, PBPF_PROTO_UDP, PBPF_PROTO_OTHER,
                static_cast<uint8_t>(v4 ? PBPF_PROTO_ICMP : PBPF_PROTO_ICMPV6)};
            const uint8_t proto = protos[below(4)];
            const bool ported = proto == PBPF_PROTO_TCP || proto == PBPF_PROTO_UDP;
            const uint16_t port =
                ported ? static_cast<uint16_t>(ports[below(7)] + below(3) - 1) : 0;
            std::string want = "deny 0";
            for (uint32_t i = 0; i < n && want == "deny 0"; ++i) {
                const ir::Match& m = p.encryption.exceptions[i];
                if (m.direction && *m.direction != dir) continue;
                const bool proto_ok = m.proto == P::Any ||
                                      (m.proto == P::Tcp && proto == PBPF_PROTO_TCP) ||
                                      (m.proto == P::Udp && proto == PBPF_PROTO_UDP) ||
                                      (m.proto == P::Icmp && v4 && proto == PBPF_PROTO_ICMP) ||
                                      (m.proto == P::Icmpv6 && !v4 && proto == PBPF_PROTO_ICMPV6);
                if (!proto_ok) continue;
                bool port_ok = m.ports.empty();
                for (const auto& r : m.ports) port_ok = port_ok || (port >= r.lo && port <= r.hi);
                if (!port_ok) continue;
                bool peer_ok = m.peers.empty();
                for (const auto& c : m.peers)
                    peer_ok = peer_ok || (c.family == test::cidr(peer).family &&
                                          cidr_contains(c, test::cidr(peer)));
                if (peer_ok) want = "allow " + std::to_string(i + 1);
            }
            std::string exceptions;
            for (const auto& m : p.encryption.exceptions)
                exceptions += "\n  " +
                              std::string(!m.direction                ? "both"
                                          : *m.direction == D::Egress ? "egress"
                                                                      : "ingress") +
                              " proto " + std::to_string(static_cast<int>(m.proto)) + " ports " +
                              std::to_string(m.ports.size()) + " peers " +
                              std::to_string(m.peers.size());
            ASSERT_EQ(enc_lookup(img, dir, peer, proto, port), want)
                << (dir == D::Egress ? "egress " : "ingress ") << peer << " proto " << int{proto}
                << " port " << port << exceptions;
        }
    }
}

TEST(LowerEncryption, ExceptionsDoNotDisturbTheRules) {
    ir::Persona p = test::full_persona();
    auto with = lower(p);
    p.encryption = {};
    auto without = lower(p);
    EXPECT_EQ(count_kind(without, PBPF_ENTRY_ENC_ADDR) + count_kind(without, PBPF_ENTRY_ENC_PORT),
              0u);
    std::vector<pbpf::PolicyEntry> rules_with;
    for (const auto& e : with.entries)
        if (e.key.kind == PBPF_ENTRY_ADDR || e.key.kind == PBPF_ENTRY_PORT) rules_with.push_back(e);
    std::vector<pbpf::PolicyEntry> rules_without;
    for (const auto& e : without.entries)
        if (e.key.kind == PBPF_ENTRY_ADDR || e.key.kind == PBPF_ENTRY_PORT)
            rules_without.push_back(e);
    EXPECT_EQ(rules_with, rules_without);
    // The exceptions' classes are numbered after the rules' ones: one id, one class.
    uint32_t first_enc = UINT32_MAX, last_enc = 0;
    for (const auto& e : with.entries) {
        if (e.key.kind != PBPF_ENTRY_ENC_ADDR) continue;
        first_enc = std::min(first_enc, e.value.class_id);
        last_enc = std::max(last_enc, e.value.class_id);
    }
    EXPECT_EQ(first_enc, without.class_count + 1);
    EXPECT_EQ(last_enc, with.class_count);
}

TEST(LowerEncryption, EntriesOnlyWhenRequiredWithExceptions) {
    ir::Persona p;
    p.name = "p";
    p.encryption.required = true;
    p.encryption.min_tls = ir::TlsVersion::V1_0;
    auto img = lower(p);
    EXPECT_EQ(img.settings.flags, PBPF_SETTINGS_F_ENCRYPTION_REQUIRED);
    EXPECT_EQ(img.settings.min_tls, 0x0301);
    EXPECT_EQ(count_kind(img, PBPF_ENTRY_ENC_ADDR) + count_kind(img, PBPF_ENTRY_ENC_PORT), 0u);
    EXPECT_EQ(img.class_count, 4u);

    // Exceptions without the requirement are meaningless: nothing at all.
    p.encryption.required = false;
    p.encryption.exceptions = {test::match(std::nullopt, P::Udp, {{53, 53}}, {})};
    img = lower(p);
    EXPECT_TRUE(settings_zero_but(img.settings, 0));
    EXPECT_EQ(count_kind(img, PBPF_ENTRY_ENC_ADDR) + count_kind(img, PBPF_ENTRY_ENC_PORT), 0u);
}

TEST(LowerEncryption, AuditModeFlagsTheExceptionEntries) {
    ir::Persona p = test::full_persona();
    p.mode = ir::Mode::Audit;
    auto img = lower(p);
    EXPECT_TRUE(img.settings.flags & PBPF_SETTINGS_F_AUDIT);
    size_t enc_ports = 0;
    for (const auto& e : img.entries) {
        if (e.key.kind != PBPF_ENTRY_ENC_PORT) continue;
        ++enc_ports;
        EXPECT_EQ(e.value.flags, PBPF_POLICY_F_AUDIT);
    }
    EXPECT_GT(enc_ports, 0u);
}

TEST(LowerForwards, KeysValuesAndOrder) {
    auto img = lower(test::full_persona());
    std::vector<std::string> shown;
    for (const auto& f : img.forwards) shown.push_back(to_json(f).dump());
    // Sorted by key: egress (1) after ingress (0), then protocol, family, address, port.
    EXPECT_EQ(
        shown,
        (std::vector<std::string>{
            R"({"dir":"ingress","match":"8443","proto":"tcp","target":"443"})",
            R"({"dir":"egress","match":"127.0.0.1:5432","proto":"tcp","target":"10.1.2.3:5432"})",
            R"({"dir":"egress","match":"53","proto":"udp","target":"[fd00::53]:53"})"}));
    ASSERT_EQ(img.forwards.size(), 3u);
    const auto& in = img.forwards[0];
    EXPECT_EQ(in.key.dir, PBPF_DIR_INGRESS);
    EXPECT_EQ(in.key.proto, PBPF_PROTO_TCP);
    EXPECT_EQ(in.key.family, 0);
    EXPECT_EQ(in.key.port, htons(8443));
    EXPECT_EQ(in.value.family, 0);
    EXPECT_EQ(in.value.port, htons(443));
    const auto& out = img.forwards[1];
    EXPECT_EQ(out.key.family, PBPF_FAMILY_IPV4);
    const uint8_t loopback[16] = {127, 0, 0, 1};
    EXPECT_EQ(std::memcmp(out.key.addr, loopback, 16), 0);
    EXPECT_EQ(out.key.port, htons(5432));
    EXPECT_EQ(out.value.family, PBPF_FAMILY_IPV4);
    const uint8_t target[16] = {10, 1, 2, 3};
    EXPECT_EQ(std::memcmp(out.value.addr, target, 16), 0);
    const auto& any = img.forwards[2];
    EXPECT_EQ(any.key.family, 0);
    const uint8_t zero[16] = {};
    EXPECT_EQ(std::memcmp(any.key.addr, zero, 16), 0);
    EXPECT_EQ(any.value.family, PBPF_FAMILY_IPV6);
}

TEST(LowerForwards, FirstOfTwoForwardsWithOneKeyWins) {
    ir::Persona p;
    p.name = "p";
    p.forwards = {test::forward(D::Ingress, P::Tcp, std::nullopt, 80, std::nullopt, 8080),
                  test::forward(D::Ingress, P::Tcp, std::nullopt, 80, std::nullopt, 9090)};
    auto img = lower(p);
    ASSERT_EQ(img.forwards.size(), 1u);
    EXPECT_EQ(img.forwards[0].value.port, htons(8080));
}

TEST(LowerSettings, DeterministicWhateverTheOrderOfSets) {
    ir::Persona a = test::full_persona();
    ir::Persona b = a;
    std::reverse(b.topology.next_hops.begin(), b.topology.next_hops.end());
    std::reverse(b.sovereignty.countries.begin(), b.sovereignty.countries.end());
    std::reverse(b.sovereignty.exempt.begin(), b.sovereignty.exempt.end());
    std::reverse(b.forwards.begin(), b.forwards.end());
    auto la = lower(a), lb = lower(b);
    EXPECT_EQ(std::memcmp(&la.settings, &lb.settings, sizeof la.settings), 0);
    EXPECT_EQ(la.entries, lb.entries);
    EXPECT_EQ(la.forwards, lb.forwards);
    EXPECT_EQ(to_json(la), to_json(lb));
}

}  // namespace
}  // namespace pdl
