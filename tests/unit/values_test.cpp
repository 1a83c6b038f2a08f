// Values with units and endpoints (values.h): what they parse to, and their canonical text.
#include <gtest/gtest.h>

#include "pdl-compiler/values.h"

namespace pdl {
namespace {

TEST(Values, Rates) {
    EXPECT_EQ(parse_rate("500bit").value, 500u);
    EXPECT_EQ(parse_rate("10kbit").value, 10'000u);
    EXPECT_EQ(parse_rate("200mbit").value, 200'000'000u);
    EXPECT_EQ(parse_rate("1gbit").value, 1'000'000'000u);
    EXPECT_EQ(parse_rate("2tbit").value, 2'000'000'000'000u);
    EXPECT_FALSE(parse_rate("1.5gbit").ok());
    EXPECT_FALSE(parse_rate("mbit").ok());
    EXPECT_EQ(format_rate(200'000'000), "200mbit");
    EXPECT_EQ(format_rate(1'500'000), "1500kbit");
}

TEST(Values, Sizes) {
    EXPECT_EQ(parse_size("1500b").value, 1500u);
    EXPECT_EQ(parse_size("64kb").value, 65536u);
    EXPECT_EQ(parse_size("1mb").value, 1u << 20);
    EXPECT_EQ(parse_size("2gb").value, 2ull << 30);
    EXPECT_EQ(format_size(256 * 1024), "256kb");
    EXPECT_EQ(format_size(1500), "1500b");
}

TEST(Values, Durations) {
    EXPECT_EQ(parse_duration("100ns").value, 100u);
    EXPECT_EQ(parse_duration("500us").value, 500'000u);
    EXPECT_EQ(parse_duration("5ms").value, 5'000'000u);
    EXPECT_EQ(parse_duration("2s").value, 2'000'000'000u);
    EXPECT_EQ(parse_duration("1m").value, 60'000'000'000u);
    EXPECT_EQ(parse_duration("1h").value, 3'600'000'000'000u);
    EXPECT_FALSE(parse_duration("0s").ok());
    EXPECT_FALSE(parse_duration("99999999999999999h").ok());
    EXPECT_EQ(format_duration(90'000'000'000), "90s");
    EXPECT_EQ(format_duration(300'000'000'000), "5m");
}

TEST(Values, EventRates) {
    auto r = parse_event_rate("2000/s");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value.count, 2000u);
    EXPECT_EQ(r.value.window_ns, 1'000'000'000u);
    r = parse_event_rate("50/10s");
    EXPECT_EQ(r.value.count, 50u);
    EXPECT_EQ(r.value.window_ns, 10'000'000'000u);
    EXPECT_EQ(parse_event_rate("100/m").value.window_ns, 60'000'000'000u);
    EXPECT_FALSE(parse_event_rate("4294967296/s").ok());
    EXPECT_FALSE(parse_event_rate("10/").ok());
    EXPECT_FALSE(parse_event_rate("/s").ok());
}

TEST(Values, Endpoints) {
    auto e = parse_endpoint("10.0.0.1:53");
    ASSERT_TRUE(e.ok()) << e.error;
    EXPECT_EQ(e.value.port, 53);
    EXPECT_EQ(format_endpoint(e.value.addr, e.value.port), "10.0.0.1:53");
    e = parse_endpoint("[fd00::1]:5353");
    ASSERT_TRUE(e.ok()) << e.error;
    EXPECT_EQ(format_endpoint(e.value.addr, e.value.port), "[fd00::1]:5353");
    e = parse_endpoint("8443");
    ASSERT_TRUE(e.ok());
    EXPECT_FALSE(e.value.addr.has_value());
    EXPECT_FALSE(parse_endpoint("0").ok());
    EXPECT_FALSE(parse_endpoint("[10.0.0.1]:53").ok());
    EXPECT_FALSE(parse_endpoint("[fd00::1]53").ok());
    EXPECT_FALSE(parse_endpoint("10.0.0.0/8:53").ok());
}

}  // namespace
}  // namespace pdl
