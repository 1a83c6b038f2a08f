// Values with units and endpoints (values.h): what they parse to, and their canonical text.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>

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

TEST(Values, Numbers) {
    EXPECT_EQ(parse_number("255", 1, 255), 255u);
    EXPECT_FALSE(parse_number("256", 1, 255));
    EXPECT_FALSE(parse_number("0", 1, 255));
    EXPECT_EQ(parse_number("4294967295", 1, UINT32_MAX), 4294967295u);
    EXPECT_FALSE(parse_number("99999999999999999999999", 0, UINT64_MAX));
    EXPECT_FALSE(parse_number("", 0, 10));
    EXPECT_FALSE(parse_number("-1", 0, 10));
    EXPECT_FALSE(parse_number("1e3", 0, 10000));
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

// Addresses are formatted without inet_ntop (every rule's text holds them), to the same
// text: RFC 5952 compression, the first of equally long zero runs, IPv4-mapped and
// -compatible forms.
TEST(Values, AddressesFormatLikeInetNtop) {
    auto ntop = [](int af, const uint8_t* addr) {
        char buf[INET6_ADDRSTRLEN] = {};
        inet_ntop(af, addr, buf, sizeof buf);
        return std::string(buf);
    };
    for (const char* text :
         {"::", "::1", "::2", "1::", "fd00::", "fd00::1", "2001:db8::1:0:0:1", "2001:0:0:1::1",
          "1:0:0:2:0:0:0:3", "1:2:3:4:5:6:7:8", "::ffff:10.1.2.3", "::10.1.2.3", "::fffe:a01:203",
          "1::2:0:0", "fe80::1:0:0:0", "::1:0:0:0:0:0", "0:0:1::", "abcd:ef01::ffff"}) {
        uint8_t addr[16] = {};
        ASSERT_EQ(inet_pton(AF_INET6, text, addr), 1) << text;
        EXPECT_EQ(format_address(ir::Family::V6, addr), ntop(AF_INET6, addr)) << text;
    }
    // Every pattern of zero and non-zero groups.
    std::mt19937 rng(5);
    for (unsigned mask = 0; mask < 256; ++mask) {
        uint8_t addr[16] = {};
        for (unsigned w = 0; w < 8; ++w) {
            if (!(mask & (1u << w))) continue;
            unsigned value = 1 + rng() % 0xffff;
            addr[2 * w] = static_cast<uint8_t>(value >> 8);
            addr[2 * w + 1] = static_cast<uint8_t>(value);
        }
        EXPECT_EQ(format_address(ir::Family::V6, addr), ntop(AF_INET6, addr)) << mask;
    }
    for (const char* text : {"0.0.0.0", "10.1.2.3", "255.255.255.255", "192.168.100.9"}) {
        uint8_t addr[16] = {};
        ASSERT_EQ(inet_pton(AF_INET, text, addr), 1);
        EXPECT_EQ(format_address(ir::Family::V4, addr), text);
    }
    EXPECT_EQ(format_cidr(parse_cidr("10.1.2.0/24")->cidr), "10.1.2.0/24");
    EXPECT_EQ(format_cidr(parse_cidr("10.1.2.3")->cidr), "10.1.2.3");
    EXPECT_EQ(format_cidr(parse_cidr("fd00:1::/56")->cidr), "fd00:1::/56");
    EXPECT_EQ(format_cidr(parse_cidr("::ffff:10.0.0.0/104")->cidr), "::ffff:10.0.0.0/104");
    EXPECT_EQ(format_port_range({80, 80}), "80");
    EXPECT_EQ(format_port_range({0, 65535}), "0-65535");
}

// Host bits are found in a partial byte and in whole bytes alike.
TEST(Values, HostBitsAreReported) {
    EXPECT_TRUE(parse_cidr("10.1.3.0/23")->error.find("host bits") != std::string::npos);
    EXPECT_TRUE(parse_cidr("10.1.2.0/23")->error.empty());
    EXPECT_TRUE(parse_cidr("10.1.0.0/16")->error.empty());
    EXPECT_TRUE(parse_cidr("10.1.0.1/16")->error.find("did you mean 10.1.0.0/16?") !=
                std::string::npos);
    EXPECT_TRUE(parse_cidr("fd00::1/64")->error.find("did you mean fd00::/64?") !=
                std::string::npos);
    EXPECT_TRUE(parse_cidr("fd00:0:0:80::/57")->error.empty());
    EXPECT_TRUE(parse_cidr("fd00:0:0:40::/57")->error.find("host bits") != std::string::npos);
}

}  // namespace
}  // namespace pdl
