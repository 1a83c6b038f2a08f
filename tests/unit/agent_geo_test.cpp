// The [geo] config table and the migration gate's decision (agent/geo.h). No root, no
// kernel object.
#include <gtest/gtest.h>

#include <string>

#include "agent/config.h"
#include "agent/geo.h"
#include "maps/abi/settings.h"

namespace pbpf::agent {
namespace {

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

TEST(GeoConfig, DefaultsAndKeys) {
    auto d = parse_config("", "agent.toml");
    ASSERT_TRUE(d.ok()) << d.error().what();
    EXPECT_EQ(d->geo.database, "/var/lib/personabpf/geo/country.mmdb");
    EXPECT_EQ(d->geo.host_country, "");

    auto c =
        parse_config("[geo]\ndatabase = \"/srv/geo.csv\"\nhost_country = \"ch\"\n", "agent.toml");
    ASSERT_TRUE(c.ok()) << c.error().what();
    EXPECT_EQ(c->geo.database, "/srv/geo.csv");
    EXPECT_EQ(c->geo.host_country, "CH");  // codes are case-insensitive here, stored upper
}

TEST(GeoConfig, BadValuesNameTheKeyAndLine) {
    auto rel = parse_config("[geo]\ndatabase = \"geo.csv\"\n", "agent.toml");
    ASSERT_FALSE(rel.ok());
    EXPECT_TRUE(contains(rel.error().message, "agent.toml:2")) << rel.error().message;
    EXPECT_TRUE(contains(rel.error().message, "absolute path")) << rel.error().message;

    auto uk = parse_config("[geo]\nhost_country = \"UK\"\n", "agent.toml");
    ASSERT_FALSE(uk.ok());
    EXPECT_TRUE(contains(uk.error().message, "agent.toml:2")) << uk.error().message;
    EXPECT_TRUE(contains(uk.error().message, "GB")) << uk.error().message;

    auto unknown = parse_config("[geo]\ndatabse = \"/x\"\n", "agent.toml");
    EXPECT_FALSE(unknown.ok());
}

pbpf_persona_settings sov(std::initializer_list<const char*> codes, uint32_t flags = 0) {
    pbpf_persona_settings s{};
    s.flags = PBPF_SETTINGS_F_SOVEREIGNTY | flags;
    for (const char* c : codes) {
        const unsigned bit = static_cast<unsigned>(c[0] - 'A') * 26 + (c[1] - 'A');
        s.countries[bit / 64] |= uint64_t{1} << (bit % 64);
    }
    return s;
}

TEST(MigrationGate, NoCountryListAllowsEveryHost) {
    pbpf_persona_settings none{};
    auto a = migration_gate(none, "US");
    EXPECT_TRUE(a.allowed);
    EXPECT_FALSE(a.violation);
    EXPECT_TRUE(contains(a.reason, "no country list")) << a.reason;
}

TEST(MigrationGate, AllowList) {
    auto s = sov({"DE", "CH"});
    EXPECT_TRUE(migration_gate(s, "DE").allowed);
    EXPECT_TRUE(migration_gate(s, "CH").allowed);
    auto us = migration_gate(s, "US");
    EXPECT_FALSE(us.allowed);
    EXPECT_TRUE(us.violation);
    EXPECT_TRUE(contains(us.reason, "US is not among the persona's allowed countries"))
        << us.reason;
}

TEST(MigrationGate, DenyList) {
    auto s = sov({"US"}, PBPF_SETTINGS_F_SOV_DENY_LIST);
    EXPECT_FALSE(migration_gate(s, "US").allowed);
    EXPECT_TRUE(migration_gate(s, "DE").allowed);
}

TEST(MigrationGate, UnknownHostCountryFollowsTheUnknownSetting) {
    auto deny = sov({"DE"});
    auto a = migration_gate(deny, "");
    EXPECT_FALSE(a.allowed);
    EXPECT_TRUE(contains(a.reason, "unknown deny")) << a.reason;
    auto allow = sov({"DE"}, PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW);
    EXPECT_TRUE(migration_gate(allow, "").allowed);
}

TEST(MigrationGate, LogOnlyAllowsButReportsTheViolation) {
    auto s = sov({"DE"}, PBPF_SETTINGS_F_SOV_LOG_ONLY);
    auto a = migration_gate(s, "US");
    EXPECT_TRUE(a.allowed);
    EXPECT_TRUE(a.violation);
    EXPECT_TRUE(contains(a.reason, "on-violation log")) << a.reason;
}

}  // namespace
}  // namespace pbpf::agent
