// The topology model (agent/topology.h): which pbpf_topology entry, policy-routing rules
// and agent-owned routes the personas' settings give, the [topology] config table and
// what `persona apply` reports as not enforced. The kernel side is tested by
// tests/integration/topology_test.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "agent/persona_manager.h"
#include "agent/topology.h"
#include "maps/abi/qos.h"
#include "pdl-compiler/compiler.h"

namespace pbpf::agent {
namespace {

pbpf_addr v4(const char* text) {
    pbpf_addr a{};
    a.family = PBPF_FAMILY_IPV4;
    inet_pton(AF_INET, text, a.addr);
    return a;
}

pbpf_addr v6(const char* text) {
    pbpf_addr a{};
    a.family = PBPF_FAMILY_IPV6;
    inet_pton(AF_INET6, text, a.addr);
    return a;
}

PersonaQosInput persona(uint32_t id, pbpf_persona_settings s) {
    return PersonaQosInput{id, "p" + std::to_string(id), s};
}

TEST(TopologyModel, NoTopologyNoEntry) {
    pbpf_persona_settings s{};
    s.priority = PBPF_PRIORITY_HIGH;
    EXPECT_FALSE(topology_entry_for(s));
    auto plan = plan_topology({persona(3, s)}, TopologyConfig{});
    EXPECT_TRUE(plan.entries.empty());
    EXPECT_TRUE(plan.rules.empty());
    EXPECT_TRUE(plan.routes.empty());
}

TEST(TopologyModel, EntryCarriesHopsAndNextHops) {
    pbpf_persona_settings s{};
    s.max_hops = 2;
    s.next_hop_count = 2;
    s.next_hops[0] = v4("10.0.0.1");
    s.next_hops[1] = v6("fd00::1");
    auto t = topology_entry_for(s);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->flags, PBPF_TOPO_F_MAX_HOPS | PBPF_TOPO_F_NEXT_HOPS);
    EXPECT_EQ(t->max_hops, 2);
    EXPECT_EQ(t->next_hop_count, 2);
    EXPECT_EQ(t->next_hops[1].family, PBPF_FAMILY_IPV6);
    EXPECT_EQ(t->next_hops[1].addr[15], 1);
}

TEST(TopologyModel, RouteTableRulesInBothFamiliesWithUnreachableFallback) {
    pbpf_persona_settings s{};
    s.flags = PBPF_SETTINGS_F_ROUTE_TABLE;
    s.route_table = 100;
    TopologyConfig cfg;
    cfg.rule_priority = 500;
    auto plan = plan_topology({persona(7, s)}, cfg);
    ASSERT_EQ(plan.entries.size(), 1u);
    EXPECT_EQ(plan.entries.at(7).flags, PBPF_TOPO_F_ROUTE);
    EXPECT_TRUE(plan.routes.empty());
    const uint32_t mark = 7u << PBPF_MARK_PERSONA_SHIFT;
    std::vector<TopologyRule> want = {
        {AF_INET, 500, mark, 100, false, 7},
        {AF_INET, 501, mark, 0, true, 7},
        {AF_INET6, 500, mark, 100, false, 7},
        {AF_INET6, 501, mark, 0, true, 7},
    };
    std::sort(want.begin(), want.end());
    EXPECT_EQ(plan.rules, want);
}

TEST(TopologyModel, RouteViaOwnsATablePerPersonaInTheGatewaysFamily) {
    pbpf_persona_settings a{}, b{};
    a.flags = PBPF_SETTINGS_F_ROUTE_VIA;
    a.route_via = v4("192.0.2.1");
    b.flags = PBPF_SETTINGS_F_ROUTE_VIA;
    b.route_via = v6("2001:db8::1");
    TopologyConfig cfg;
    cfg.table_base = 1000;
    auto plan = plan_topology({persona(2, a), persona(4094, b)}, cfg);
    std::vector<TopologyRoute> routes = {{AF_INET, 1002, "192.0.2.1", 2},
                                         {AF_INET6, 5094, "2001:db8::1", 4094}};
    EXPECT_EQ(plan.routes, routes);
    ASSERT_EQ(plan.rules.size(), 4u);
    for (const auto& r : plan.rules) {
        EXPECT_EQ(r.family, r.persona_id == 2 ? AF_INET : AF_INET6);
        EXPECT_EQ(r.mark, r.persona_id << PBPF_MARK_PERSONA_SHIFT);
        EXPECT_EQ(r.mark & ~PBPF_MARK_PERSONA_MASK, 0u);
        if (!r.unreachable) {
            EXPECT_EQ(r.table, cfg.table_base + r.persona_id);
        }
    }
}

TEST(TopologyModel, PlanIsDeterministicWhateverThePersonaOrder) {
    pbpf_persona_settings a{}, b{};
    a.flags = PBPF_SETTINGS_F_ROUTE_TABLE;
    a.route_table = 42;
    b.flags = PBPF_SETTINGS_F_ROUTE_VIA;
    b.route_via = v4("198.51.100.9");
    TopologyConfig cfg;
    auto one = plan_topology({persona(1, a), persona(2, b)}, cfg);
    auto two = plan_topology({persona(2, b), persona(1, a)}, cfg);
    EXPECT_EQ(one.rules, two.rules);
    EXPECT_EQ(one.routes, two.routes);
}

TEST(TopologyConfigParse, KeysAndDefaults) {
    auto cfg = parse_config(
        "[topology]\negress_interfaces = [\"up0\"]\nrule_priority = 300\ntable_base = 5000\n",
        "a.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->topology.egress_interfaces, (std::vector<std::string>{"up0"}));
    EXPECT_EQ(cfg->topology.rule_priority, 300u);
    EXPECT_EQ(cfg->topology.table_base, 5000u);
    auto defaults = parse_config("", "a.toml");
    ASSERT_TRUE(defaults.ok());
    EXPECT_TRUE(defaults->topology.egress_interfaces.empty());
    EXPECT_EQ(defaults->topology.rule_priority, 10000u);
    EXPECT_EQ(defaults->topology.table_base, 70620000u);
}

TEST(TopologyConfigParse, BadValuesNameTheKey) {
    struct Case {
        const char* text;
        const char* want;
    } cases[] = {
        {"[topology]\nrule_priority = 32765\n", "rule_priority"},
        {"[topology]\nrule_priority = 0\n", "rule_priority"},
        {"[topology]\ntable_base = 254\n", "table_base"},
        {"[topology]\negress_interfaces = [\"a\", \"a\"]\n", "interface 'a' is listed twice"},
        {"[topology]\nuplinks = [\"a\"]\n", "unknown key 'uplinks' in [topology]"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_config(c.text, "a.toml");
        ASSERT_FALSE(cfg.ok()) << c.text;
        EXPECT_NE(cfg.error().message.find(c.want), std::string::npos) << cfg.error().message;
    }
}

TEST(TopologyNotEnforced, NextHopsAndCgroupHopLimitNeedUplinks) {
    auto file = PersonaManager::compile_file(
        "persona t {\n  topology {\n    route via 10.0.0.1\n    next-hops { 10.0.0.1 }\n"
        "    max-hops 4\n  }\n}\n",
        "t.pdl");
    ASSERT_EQ(file.personas.size(), 1u);
    const auto& p = file.personas[0];
    EXPECT_EQ(
        unenforced_sections(p, false, false),
        (std::vector<std::string>{"topology next-hops", "topology max-hops (cgroup workloads)"}));
    EXPECT_TRUE(unenforced_sections(p, false, true).empty());
}

}  // namespace
}  // namespace pbpf::agent
