// The QoS model (agent/qos.h): which HTB class and pbpf_qos entry a persona's settings
// give, and the [qos] config table. The kernel side is tested by tests/integration/qos_test.
#include <gtest/gtest.h>

#include "agent/config.h"
#include "agent/qos.h"

namespace pbpf::agent {
namespace {

constexpr uint64_t kLink = 1'000'000'000;

pbpf_persona_settings with(uint64_t rate, uint8_t priority, uint64_t burst = 0) {
    pbpf_persona_settings s{};
    if (rate > 0) {
        s.flags |= PBPF_SETTINGS_F_QOS_EGRESS;
        s.egress.rate_bps = rate;
        s.egress.burst_bytes = burst;
    }
    s.priority = priority;
    return s;
}

TEST(QosModel, NoRateNoPriorityMeansNoClassAndNoEntry) {
    pbpf_persona_settings s{};
    EXPECT_FALSE(htb_class_for(7, s, kLink));
    EXPECT_FALSE(qos_entry_for(7, s, true));
    s.flags = PBPF_SETTINGS_F_QOS_INGRESS;  // ingress only: an entry, but no class
    s.ingress.rate_bps = 5'000'000;
    EXPECT_FALSE(htb_class_for(7, s, kLink));
    ASSERT_TRUE(qos_entry_for(7, s, true));
    EXPECT_EQ(qos_entry_for(7, s, true)->flags, PBPF_QOS_F_INGRESS_LIMIT);
}

TEST(QosModel, RateIsAssuredAndCeilingUnlessPriorityIsLow) {
    auto normal = htb_class_for(7, with(50'000'000, PBPF_PRIORITY_UNSET, 65536), kLink);
    ASSERT_TRUE(normal);
    EXPECT_EQ(normal->minor, PBPF_QOS_CLASS_BASE + 7);
    EXPECT_EQ(normal->rate_bps, 50'000'000u);
    EXPECT_EQ(normal->ceil_bps, 50'000'000u);
    EXPECT_EQ(normal->burst_bytes, 65536u);
    EXPECT_EQ(normal->prio, 2u);

    auto low = htb_class_for(7, with(50'000'000, PBPF_PRIORITY_LOW), kLink);
    ASSERT_TRUE(low);
    EXPECT_EQ(low->ceil_bps, 50'000'000u);
    EXPECT_LT(low->rate_bps, 1'000'000u) << "low only borrows";
    EXPECT_EQ(low->prio, 3u);
}

TEST(QosModel, PriorityWithoutRateBorrowsUpToTheLinkInPriorityOrder) {
    uint32_t prio[5] = {};
    for (uint8_t p :
         {PBPF_PRIORITY_LOW, PBPF_PRIORITY_NORMAL, PBPF_PRIORITY_HIGH, PBPF_PRIORITY_CRITICAL}) {
        auto c = htb_class_for(3, with(0, p), kLink);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->ceil_bps, kLink);
        EXPECT_LT(c->rate_bps, 1'000'000u);
        EXPECT_GE(c->quantum, 1600u);
        prio[p] = c->prio;
    }
    EXPECT_LT(prio[PBPF_PRIORITY_CRITICAL], prio[PBPF_PRIORITY_HIGH]);
    EXPECT_LT(prio[PBPF_PRIORITY_HIGH], prio[PBPF_PRIORITY_NORMAL]);
    EXPECT_LT(prio[PBPF_PRIORITY_NORMAL], prio[PBPF_PRIORITY_LOW]);
}

TEST(QosModel, EntryCarriesClassAndDscpOnlyWhenShaping) {
    auto e = qos_entry_for(9, with(10'000'000, PBPF_PRIORITY_CRITICAL), true);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->flags, PBPF_QOS_F_EGRESS_CLASS | PBPF_QOS_F_DSCP);
    EXPECT_EQ(e->class_minor, PBPF_QOS_CLASS_BASE + 9);
    EXPECT_EQ(e->dscp, PBPF_DSCP_CRITICAL);
    EXPECT_FALSE(qos_entry_for(9, with(10'000'000, PBPF_PRIORITY_CRITICAL), false));

    auto rate_only = qos_entry_for(9, with(10'000'000, PBPF_PRIORITY_UNSET), true);
    ASSERT_TRUE(rate_only);
    EXPECT_EQ(rate_only->flags, PBPF_QOS_F_EGRESS_CLASS) << "no priority: DSCP left alone";
}

TEST(QosModel, IngressLimitHoldsWithoutEgressInterfacesAndGetsADefaultBurst) {
    pbpf_persona_settings s{};
    s.flags = PBPF_SETTINGS_F_QOS_INGRESS;
    s.ingress.rate_bps = 80'000'000;  // 10 MB/s: 250 ms of it is 2.5 MB
    auto e = qos_entry_for(4, s, false);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->flags, PBPF_QOS_F_INGRESS_LIMIT);
    EXPECT_EQ(e->ingress_rate_bps, 80'000'000u);
    EXPECT_EQ(e->ingress_burst_bytes, 2'500'000u);
    s.ingress.burst_bytes = 65536;
    EXPECT_EQ(qos_entry_for(4, s, false)->ingress_burst_bytes, 65536u) << "a given burst is kept";
    EXPECT_EQ(ingress_burst(1'000'000), uint64_t{PBPF_INGRESS_MIN_BURST})
        << "small rates: the floor";
}

TEST(QosModel, LatencyTargetAloneGetsAnRttEntryEvenWithoutShaping) {
    pbpf_persona_settings s{};
    s.latency_target_ns = 5'000'000;
    for (bool shaping : {false, true}) {
        auto e = qos_entry_for(4, s, shaping);
        ASSERT_TRUE(e) << "shaping=" << shaping;
        EXPECT_EQ(e->flags, PBPF_QOS_F_RTT);
        EXPECT_EQ(e->latency_target_ns, 5'000'000u);
        EXPECT_EQ(e->class_minor, 0u);
    }
    // With an egress class as well, the flags add up; without a target there is no RTT.
    auto both = with(10'000'000, PBPF_PRIORITY_UNSET);
    both.latency_target_ns = 1'000;
    auto e = qos_entry_for(4, both, true);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->flags, PBPF_QOS_F_EGRESS_CLASS | PBPF_QOS_F_RTT);
    EXPECT_EQ(e->latency_target_ns, 1'000u);
    auto none = qos_entry_for(4, with(10'000'000, PBPF_PRIORITY_UNSET), true);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->flags & PBPF_QOS_F_RTT, 0u);
    EXPECT_EQ(none->latency_target_ns, 0u);
}

TEST(QosModel, DscpMappingAndQuantum) {
    EXPECT_EQ(dscp_for(PBPF_PRIORITY_LOW), 8);
    EXPECT_EQ(dscp_for(PBPF_PRIORITY_NORMAL), 0);
    EXPECT_EQ(dscp_for(PBPF_PRIORITY_HIGH), 34);
    EXPECT_EQ(dscp_for(PBPF_PRIORITY_CRITICAL), 46);
    EXPECT_EQ(htb_quantum(100'000), 1600u);
    EXPECT_EQ(htb_quantum(4'000'000), 50'000u);
    EXPECT_EQ(htb_quantum(10'000'000'000), 60000u);
}

TEST(QosConfigParse, InterfacesAndLinkRate) {
    auto cfg = parse_config(
        "[qos]\negress_interfaces = [\"up0\", \"up1\"]\nlink_rate = \"200mbit\"\n", "a.toml");
    ASSERT_TRUE(cfg.ok()) << cfg.error().what();
    EXPECT_EQ(cfg->qos.egress_interfaces, (std::vector<std::string>{"up0", "up1"}));
    EXPECT_EQ(cfg->qos.link_rate_bps, 200'000'000u);
    auto defaults = parse_config("", "a.toml");
    ASSERT_TRUE(defaults.ok());
    EXPECT_TRUE(defaults->qos.egress_interfaces.empty());
    EXPECT_EQ(defaults->qos.link_rate_bps, 10'000'000'000u);
}

TEST(QosConfigParse, BadValuesNameTheKey) {
    struct Case {
        const char* text;
        const char* want;
    } cases[] = {
        {"[qos]\nlink_rate = \"fast\"\n", "a.toml:2:"},
        {"[qos]\nlink_rate = 5\n", "link_rate must be a string"},
        {"[qos]\negress_interfaces = [\"a\", \"a\"]\n", "interface 'a' is listed twice"},
        {"[qos]\negress_interfaces = [\"a/b\"]\n", "contains '/'"},
        {"[qos]\negress = [\"a\"]\n", "unknown key 'egress' in [qos]"},
    };
    for (const auto& c : cases) {
        auto cfg = parse_config(c.text, "a.toml");
        ASSERT_FALSE(cfg.ok()) << c.text;
        EXPECT_NE(cfg.error().message.find(c.want), std::string::npos) << cfg.error().message;
    }
}

}  // namespace
}  // namespace pbpf::agent
