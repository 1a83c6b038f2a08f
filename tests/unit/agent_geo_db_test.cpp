// The geo dataset reader (agent/geo_db.h): CSV in both forms and its errors, merging,
// longest-prefix lookup, and MMDB files of both schemas written by tests/unit/mmdb_writer.h;
// plus the installed default dataset when there is one (required under CI=true).
#include "agent/geo_db.h"

#include <arpa/inet.h>
#include <maxminddb.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "maps/abi/geo.h"
#include "tests/unit/mmdb_writer.h"
#include "tests/unit/temp_dir.h"

namespace pbpf::agent::geo {
namespace {

using test::MmdbValue;
using test::MmdbWriter;

// "10.0.0.0/8 DE" lines, for comparing whole lists.
std::vector<std::string> texts(const std::vector<GeoPrefix>& list, int family) {
    std::vector<std::string> out;
    for (const auto& p : list) {
        char buf[INET6_ADDRSTRLEN] = {};
        ::inet_ntop(family, p.addr.data(), buf, sizeof buf);
        out.push_back(std::string(buf) + "/" + std::to_string(p.len) + " " +
                      country_code(p.country));
    }
    return out;
}

// lookup() of an address in text form, as the country's code ("-" for none).
std::string where(const GeoDataset& ds, const std::string& addr) {
    uint8_t buf[16] = {};
    int family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    EXPECT_EQ(::inet_pton(family, addr.c_str(), buf), 1) << addr;
    auto c = lookup(ds, family, buf);
    return c ? country_code(*c) : "-";
}

GeoDataset csv(const std::string& text) {
    auto ds = parse_geo_csv(text, "t.csv");
    EXPECT_TRUE(ds.ok()) << ds.error().what();
    return ds.ok() ? std::move(ds).value() : GeoDataset{};
}

std::string csv_error(const std::string& text) {
    auto ds = parse_geo_csv(text, "t.csv");
    EXPECT_FALSE(ds.ok());
    return ds.ok() ? "" : ds.error().message;
}

MmdbValue flat(const std::string& cc) {
    return MmdbValue::object({{"country_code", MmdbValue::string(cc)}});
}

// --------------------------------------------------------------------------- countries

TEST(GeoCountry, IndexIsTheSettingsBit) {
    EXPECT_EQ(country_index("DE"), (3 * 26) + 4);
    EXPECT_EQ(country_index("de"), country_index("DE"));
    EXPECT_EQ(country_index("AD"), 3);
    EXPECT_EQ(country_index("XK"), (23 * 26) + 10);  // Kosovo: not ISO, in every dataset
    EXPECT_EQ(country_code(*country_index("DE")), "DE");
    EXPECT_EQ(country_code(*country_index("zw")), "ZW");
}

TEST(GeoCountry, DataCodesAreNoCountry) {
    for (const char* code : {"EU", "AP", "ZZ", "A1", "A2", "O1", "UK", "", "D", "DEU", "1A"})
        EXPECT_EQ(country_index(code), std::nullopt) << code;
}

// --------------------------------------------------------------------------------- CSV

TEST(GeoCsv, CidrForm) {
    auto ds =
        csv("# ip-location-db style\n"
            "network,country_code\n"
            "\n"
            "192.0.2.0/24,DE\n"
            "  198.51.100.0/24 , \"fr\"  \r\n"
            "\"203.0.113.7\",NL\n"
            "2001:db8::/32,US\n");
    EXPECT_EQ(ds.format, "csv");
    EXPECT_EQ(ds.database_type, "csv");
    EXPECT_EQ(
        texts(ds.v4, AF_INET),
        (std::vector<std::string>{"192.0.2.0/24 DE", "198.51.100.0/24 FR", "203.0.113.7/32 NL"}));
    EXPECT_EQ(texts(ds.v6, AF_INET6), (std::vector<std::string>{"2001:db8::/32 US"}));
    EXPECT_EQ(ds.skipped, 0u);
}

TEST(GeoCsv, RangeFormIsSplitIntoTheFewestPrefixes) {
    auto ds =
        csv("start,end,country\n"
            "10.0.0.1,10.0.0.6,DE\n"
            "11.0.0.0,11.255.255.255,FR\n"
            "2001:db8::,2001:db8::ffff,US\n"
            "2001:db8:1::1,2001:db8:1::2,IT\n");
    EXPECT_EQ(texts(ds.v4, AF_INET),
              (std::vector<std::string>{"10.0.0.1/32 DE", "10.0.0.2/31 DE", "10.0.0.4/31 DE",
                                        "10.0.0.6/32 DE", "11.0.0.0/8 FR"}));
    EXPECT_EQ(texts(ds.v6, AF_INET6),
              (std::vector<std::string>{"2001:db8::/112 US", "2001:db8:1::1/128 IT",
                                        "2001:db8:1::2/128 IT"}));
}

TEST(GeoCsv, WholeAddressSpaceRanges) {
    auto ds =
        csv("0.0.0.0,255.255.255.255,DE\n"
            "::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,FR\n");
    EXPECT_EQ(texts(ds.v4, AF_INET), (std::vector<std::string>{"0.0.0.0/0 DE"}));
    EXPECT_EQ(texts(ds.v6, AF_INET6), (std::vector<std::string>{"::/0 FR"}));
    EXPECT_EQ(where(ds, "203.0.113.1"), "DE");
    EXPECT_EQ(where(ds, "2001:db8::1"), "FR");
}

TEST(GeoCsv, UnusableCountriesAreCountedNotFatal) {
    auto ds =
        csv("10.0.0.0/8,EU\n"
            "11.0.0.0/8,ZZ\n"
            "12.0.0.0/8,\n"
            "13.0.0.0,13.0.0.2,AP\n"
            "14.0.0.0/8,de\n");
    EXPECT_EQ(ds.skipped, 4u);
    EXPECT_EQ(texts(ds.v4, AF_INET), (std::vector<std::string>{"14.0.0.0/8 DE"}));
}

TEST(GeoCsv, ErrorsNameTheLine) {
    EXPECT_EQ(csv_error("# c\n10.0.0.0/8,DE\n10.0.0.300/8,DE\n"),
              "t.csv:3: '10.0.0.300/8': not an IPv4 address (a.b.c.d)");
    EXPECT_EQ(csv_error("10.0.0.0/8,DE\n2001:db8::g/32,US\n"),
              "t.csv:2: '2001:db8::g/32': not an IPv6 address");
    EXPECT_EQ(csv_error("10.1.2.3/8,DE\n"),
              "t.csv:1: '10.1.2.3/8': host bits set beyond /8 (the network is 10.0.0.0/8)");
    EXPECT_EQ(csv_error("2001:db8::1/32,DE\n"),
              "t.csv:1: '2001:db8::1/32': host bits set beyond /32 (the network is "
              "2001:db8::/32)");
    EXPECT_EQ(csv_error("10.0.0.0/33,DE\n"), "t.csv:1: '10.0.0.0/33': prefix length must be 0..32");
    EXPECT_EQ(csv_error("\n\n10.0.0.9,10.0.0.1,DE\n"),
              "t.csv:3: range end 10.0.0.1 is before its start 10.0.0.9");
    EXPECT_EQ(csv_error("10.0.0.1,::1,DE\n"), "t.csv:1: range 10.0.0.1 to ::1 mixes IPv4 and IPv6");
    EXPECT_EQ(csv_error("10.0.0.1,10.0.0.x,DE\n"),
              "t.csv:1: range end '10.0.0.x': not an IPv4 address (a.b.c.d)");
    EXPECT_EQ(csv_error("10.0.0.0/24,10.0.1.0/24,DE\n"),
              "t.csv:1: a range is START,END,CC with two addresses, not prefixes");
    EXPECT_EQ(csv_error("10.0.0.0/8\n"), "t.csv:1: expected CIDR,CC or START,END,CC, got 1 field");
    EXPECT_EQ(csv_error("10.0.0.0,10.0.0.9,DE,extra\n"),
              "t.csv:1: expected CIDR,CC or START,END,CC, got 4 fields");
    // A header is only the first line: a word later is a bad address.
    EXPECT_EQ(csv_error("10.0.0.0/8,DE\nnetwork,country\n"),
              "t.csv:2: 'network': not an IPv4 address (a.b.c.d)");
    EXPECT_EQ(csv_error("10.0.0.0/8,DE\n11.0.0.0/8,FR\n10.0.0.0/8,NL\n"),
              "t.csv:3: 10.0.0.0/8 is NL here but DE on line 1");
}

TEST(GeoCsv, TheSamePrefixTwiceWithOneCountryIsFine) {
    auto ds = csv("10.0.0.0/8,DE\n10.0.0.0,10.255.255.255,de\n");
    EXPECT_EQ(texts(ds.v4, AF_INET), (std::vector<std::string>{"10.0.0.0/8 DE"}));
}

TEST(GeoCsv, SiblingsOfOneCountryMerge) {
    auto ds =
        csv("10.0.0.0/25,DE\n"
            "10.0.0.128/25,DE\n"
            "10.0.1.0/24,DE\n"  // with the two above: 10.0.0.0/23
            "10.0.2.0/24,DE\n"  // 10.0.2.0/23's half, not 10.0.0.0/23's sibling
            "10.0.4.0/24,DE\n"
            "10.0.5.0/24,FR\n"  // another country: stays
            "2001:db8::/33,US\n"
            "2001:db8:8000::/33,US\n");
    EXPECT_EQ(texts(ds.v4, AF_INET),
              (std::vector<std::string>{"10.0.0.0/23 DE", "10.0.2.0/24 DE", "10.0.4.0/24 DE",
                                        "10.0.5.0/24 FR"}));
    EXPECT_EQ(texts(ds.v6, AF_INET6), (std::vector<std::string>{"2001:db8::/32 US"}));
}

TEST(GeoCsv, AMergedParentReplacesTheParentItCovers) {
    // Both halves say DE: the /24's FR is visible nowhere, so it goes.
    auto ds = csv("10.0.0.0/24,FR\n10.0.0.0/25,DE\n10.0.0.128/25,DE\n");
    EXPECT_EQ(texts(ds.v4, AF_INET), (std::vector<std::string>{"10.0.0.0/24 DE"}));
}

TEST(GeoCsv, NestedPrefixesStayAndTheLongestWins) {
    auto ds =
        csv("10.0.0.0/8,DE\n"
            "10.1.0.0/16,FR\n"
            "10.1.2.0/24,IT\n"
            "10.200.0.0/16,NL\n"
            "2001:db8::/32,US\n"
            "2001:db8:0:1::/64,CA\n");
    EXPECT_EQ(texts(ds.v4, AF_INET),
              (std::vector<std::string>{"10.0.0.0/8 DE", "10.1.0.0/16 FR", "10.1.2.0/24 IT",
                                        "10.200.0.0/16 NL"}));
    EXPECT_EQ(where(ds, "10.0.0.1"), "DE");
    EXPECT_EQ(where(ds, "10.1.5.5"), "FR");
    EXPECT_EQ(where(ds, "10.1.2.3"), "IT");
    EXPECT_EQ(where(ds, "10.1.3.0"), "FR");
    EXPECT_EQ(where(ds, "10.2.0.0"), "DE");  // after a nested pair: back to the /8
    EXPECT_EQ(where(ds, "10.199.255.255"), "DE");
    EXPECT_EQ(where(ds, "10.200.1.1"), "NL");
    EXPECT_EQ(where(ds, "10.255.255.255"), "DE");
    EXPECT_EQ(where(ds, "9.255.255.255"), "-");
    EXPECT_EQ(where(ds, "11.0.0.0"), "-");
    EXPECT_EQ(where(ds, "2001:db8::1"), "US");
    EXPECT_EQ(where(ds, "2001:db8:0:1::1"), "CA");
    EXPECT_EQ(where(ds, "2001:db8:0:2::1"), "US");
    EXPECT_EQ(where(ds, "2001:db9::"), "-");
    EXPECT_EQ(lookup(ds, AF_UNIX, nullptr), std::nullopt);
}

// Random nested CSVs: lookup() over the merged lists agrees with a longest-prefix match
// over the lines as written.
TEST(GeoCsv, MergeAndLookupAgreeWithTheInput) {
    std::mt19937 rng(20240601);
    const char* countries[] = {"DE", "FR", "NL"};
    for (int round = 0; round < 20; ++round) {
        std::map<std::pair<uint32_t, int>, int> input;  // (net, len) -> country
        std::string text;
        for (int i = 0; i < 60; ++i) {
            int len = 20 + static_cast<int>(rng() % 13);  // /20../32 inside 10.0.0.0/16
            uint32_t net =
                (0x0a000000u | (rng() & 0xffffu)) & ~((len == 32) ? 0u : (0xffffffffu >> len));
            if (input.count({net, len})) continue;
            int c = static_cast<int>(rng() % 3);
            input[{net, len}] = c;
            char line[64];
            std::snprintf(line, sizeof line, "%u.%u.%u.%u/%d,%s\n", net >> 24, (net >> 16) & 255,
                          (net >> 8) & 255, net & 255, len, countries[c]);
            text += line;
        }
        auto ds = csv(text);
        for (size_t i = 1; i < ds.v4.size(); ++i) ASSERT_LT(ds.v4[i - 1], ds.v4[i]);
        for (uint32_t host = 0; host < 0x10000; host += 11) {
            uint32_t a = 0x0a000000u | host;
            int best_len = -1, best = -1;
            for (const auto& [key, c] : input) {
                uint32_t mask = key.second == 0 ? 0 : 0xffffffffu << (32 - key.second);
                if ((a & mask) == key.first && key.second > best_len)
                    best_len = key.second, best = c;
            }
            uint8_t bytes[4] = {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16),
                                static_cast<uint8_t>(a >> 8), static_cast<uint8_t>(a)};
            auto got = lookup(ds, AF_INET, bytes);
            std::string want = best < 0 ? "-" : countries[best];
            ASSERT_EQ(got ? country_code(*got) : "-", want)
                << "round " << round << " host " << host;
        }
    }
}

// ------------------------------------------------------------------ IPv4 table

std::string where4(const Geo4Table& t, const char* text) {
    uint8_t a[4];
    EXPECT_EQ(::inet_pton(AF_INET, text, a), 1) << text;
    auto c = lookup(t, a);
    return c ? country_code(*c) : "-";
}

TEST(Geo4Table, ShortAndLongPrefixesAndTheirEdges) {
    auto ds =
        csv("0.0.0.0/8,FR\n"           // the first /8
            "10.49.0.0/16,DE\n"        // split by two longer prefixes below
            "10.49.7.128/25,US\n"      // inside DE: a group whose other half stays DE
            "10.49.7.4/30,NL\n"        // the same /24's group
            "10.60.0.8/29,CH\n"        // a group in a /24 without any covering prefix
            "255.255.255.255/32,IT\n"  // the last address
            "2001:db8::/32,DE\n");     // IPv6: not in the table
    auto t = build_geo4_table(ds.v4);
    ASSERT_TRUE(t) << t.error().what();
    EXPECT_EQ(t->top.size(), size_t{1} << 24);
    EXPECT_EQ(t->groups.size(), 3u) << "10.49.7/24, 10.60.0/24 and 255.255.255/24";
    EXPECT_EQ(where4(*t, "0.0.0.0"), "FR");
    EXPECT_EQ(where4(*t, "0.255.255.255"), "FR");
    EXPECT_EQ(where4(*t, "1.0.0.0"), "-");
    EXPECT_EQ(where4(*t, "10.49.0.0"), "DE");
    EXPECT_EQ(where4(*t, "10.49.7.3"), "DE");
    EXPECT_EQ(where4(*t, "10.49.7.4"), "NL");
    EXPECT_EQ(where4(*t, "10.49.7.7"), "NL");
    EXPECT_EQ(where4(*t, "10.49.7.8"), "DE");
    EXPECT_EQ(where4(*t, "10.49.7.127"), "DE");
    EXPECT_EQ(where4(*t, "10.49.7.128"), "US");
    EXPECT_EQ(where4(*t, "10.49.7.255"), "US");
    EXPECT_EQ(where4(*t, "10.49.255.255"), "DE");
    EXPECT_EQ(where4(*t, "10.60.0.7"), "-");
    EXPECT_EQ(where4(*t, "10.60.0.8"), "CH");
    EXPECT_EQ(where4(*t, "10.60.0.15"), "CH");
    EXPECT_EQ(where4(*t, "10.60.0.16"), "-");
    EXPECT_EQ(where4(*t, "255.255.255.254"), "-");
    EXPECT_EQ(where4(*t, "255.255.255.255"), "IT");
}

TEST(Geo4Table, EmptyDatasetHasNoCountries) {
    auto t = build_geo4_table({});
    ASSERT_TRUE(t) << t.error().what();
    EXPECT_TRUE(t->groups.empty());
    EXPECT_EQ(where4(*t, "8.8.8.8"), "-");
}

TEST(Geo4Table, TooManySplitSlash24sIsAnError) {
    std::vector<GeoPrefix> v4;
    for (uint32_t i = 0; i <= PBPF_GEO4_MAX_GROUPS; ++i) {
        GeoPrefix p;
        const uint32_t a = 0x0a000000u | i << 8;  // 10.x.y.0/25: one group each
        p.addr = {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16),
                  static_cast<uint8_t>(a >> 8), 0};
        p.len = 25;
        p.country = *country_index("DE");
        v4.push_back(p);
    }
    auto t = build_geo4_table(v4);
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message.find("split by longer prefixes"), std::string::npos)
        << t.error().message;
    v4.pop_back();
    EXPECT_TRUE(build_geo4_table(v4)) << "exactly the maximum fits";
}

// Random nested CSVs: the table agrees with lookup() (the longest-prefix match) on every
// address of the region they cover.
TEST(Geo4Table, AgreesWithLongestPrefixMatch) {
    std::mt19937 rng(20261130);
    const char* countries[] = {"DE", "FR", "NL", "US"};
    for (int round = 0; round < 6; ++round) {
        std::string text;
        for (int i = 0; i < 80; ++i) {
            const int len = 14 + static_cast<int>(rng() % 19);  // /14../32 inside 10/8
            const uint32_t net =
                (0x0a000000u | (rng() & 0xffffffu)) & ~((len == 32) ? 0u : (0xffffffffu >> len));
            char line[64];
            std::snprintf(line, sizeof line, "%u.%u.%u.%u/%d,%s\n", net >> 24, (net >> 16) & 255,
                          (net >> 8) & 255, net & 255, len, countries[rng() % 4]);
            text += line;
        }
        auto ds = parse_geo_csv(text, "random");
        if (!ds) continue;  // the same prefix with two countries: not this test's subject
        auto t = build_geo4_table(ds->v4);
        ASSERT_TRUE(t) << t.error().what();
        for (uint32_t host = 0; host < 0x1000000; host += 257) {
            const uint32_t a = 0x0a000000u | host;
            const uint8_t bytes[4] = {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16),
                                      static_cast<uint8_t>(a >> 8), static_cast<uint8_t>(a)};
            ASSERT_EQ(lookup(*t, bytes), lookup(*ds, AF_INET, bytes))
                << "round " << round << " address " << (a >> 24) << "." << ((a >> 16) & 255) << "."
                << ((a >> 8) & 255) << "." << (a & 255);
        }
    }
}

// ------------------------------------------------------------------------- files

class GeoFile : public test::TempDirTest {};

TEST_F(GeoFile, CsvFileErrorsNameThePath) {
    std::string p = write("geo.csv", "10.0.0.0/8,DE\nbad\n");
    auto ds = load_geo_dataset(p);
    ASSERT_FALSE(ds.ok());
    EXPECT_EQ(ds.error().message, p + ":2: expected CIDR,CC or START,END,CC, got 1 field");

    p = write("ok.csv", "10.0.0.0/8,DE\n");
    auto ok = load_geo_dataset(p);
    ASSERT_TRUE(ok.ok()) << ok.error().what();
    EXPECT_EQ(ok->path, p);
    EXPECT_EQ(ok->format, "csv");
    EXPECT_GT(ok->build_epoch, 1600000000u);  // the file's mtime
}

TEST_F(GeoFile, MissingAndBinaryFiles) {
    auto missing = load_geo_dataset(dir_ + "/nope.mmdb");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().err, ENOENT);
    EXPECT_NE(missing.error().message.find(dir_ + "/nope.mmdb"), std::string::npos);

    std::string bin = write("bin", std::string("\x01\x02\0\x03", 4));
    auto b = load_geo_dataset(bin);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error().message, bin + ": neither an MMDB file (no metadata section) nor CSV text");
}

TEST_F(GeoFile, MmdbIpv4Database) {
    MmdbWriter w(4);
    w.database_type = "ipinfo-lite";
    w.build_epoch = 1700000001;
    w.insert("1.0.0.0/24", flat("AU"));
    w.insert("1.0.1.0/24", flat("AU"));  // sibling: merged into 1.0.0.0/23
    w.insert("8.8.8.0/24", flat("US"));
    w.insert("193.0.0.0/8", flat("DE"));
    w.insert("193.1.0.0/16", flat("ZZ"));  // splits the /8; no country: skipped
    const std::string path = dir_ + "/v4.mmdb";
    w.write(path);

    auto ds = load_geo_dataset(path);
    ASSERT_TRUE(ds.ok()) << ds.error().what();
    EXPECT_EQ(ds->format, "mmdb");
    EXPECT_EQ(ds->database_type, "ipinfo-lite");
    EXPECT_EQ(ds->build_epoch, 1700000001u);
    EXPECT_EQ(ds->skipped, 1u);
    EXPECT_EQ(texts(ds->v4, AF_INET),
              (std::vector<std::string>{"1.0.0.0/23 AU", "8.8.8.0/24 US", "193.0.0.0/16 DE",
                                        "193.2.0.0/15 DE", "193.4.0.0/14 DE", "193.8.0.0/13 DE",
                                        "193.16.0.0/12 DE", "193.32.0.0/11 DE", "193.64.0.0/10 DE",
                                        "193.128.0.0/9 DE"}));
    EXPECT_TRUE(ds->v6.empty());
    EXPECT_EQ(where(*ds, "8.8.8.8"), "US");
    EXPECT_EQ(where(*ds, "193.1.2.3"), "-");
    EXPECT_EQ(where(*ds, "193.200.0.1"), "DE");
    EXPECT_EQ(where(*ds, "2.0.0.1"), "-");
}

// Every record size decodes to the same lists.
class GeoMmdbRecordSize : public test::TempDirTest, public ::testing::WithParamInterface<int> {};

TEST_P(GeoMmdbRecordSize, SameListsForEveryRecordSize) {
    MmdbWriter w(6, GetParam());
    for (int i = 0; i < 200; ++i)
        w.insert("10." + std::to_string(i) + ".0.0/16", flat(i % 2 ? "DE" : "FR"));
    w.insert("2001:db8::/48", flat("NL"));
    w.alias_ipv4();
    const std::string path = dir_ + "/r.mmdb";
    w.write(path);
    auto ds = load_geo_dataset(path);
    ASSERT_TRUE(ds.ok()) << ds.error().what();
    EXPECT_EQ(ds->v4.size(), 200u);  // alternating countries: nothing merges
    EXPECT_EQ(texts(ds->v6, AF_INET6), (std::vector<std::string>{"2001:db8::/48 NL"}));
    EXPECT_EQ(where(*ds, "10.199.1.1"), "DE");
    EXPECT_EQ(where(*ds, "10.198.1.1"), "FR");
}

INSTANTIATE_TEST_SUITE_P(Sizes, GeoMmdbRecordSize, ::testing::Values(24, 28, 32));

TEST_F(GeoFile, MmdbIpv6DatabaseListsIpv4OnceAndSkipsTheAliases) {
    MmdbWriter w(6, 28);
    w.insert("8.8.8.0/24", flat("US"));
    w.insert("193.99.144.0/24", flat("DE"));
    w.insert("2001:db8::/32", flat("JP"));
    w.insert("2a00:1450::/32", flat("IE"));
    w.insert("2a00:1451::/32", flat("IE"));  // four siblings: one /30
    w.insert("2a00:1452::/32", flat("IE"));
    w.insert("2a00:1453::/32", flat("IE"));
    w.insert("2a00:1454::/32", flat("IE"));  // the next /30's half: stays
    w.alias_ipv4();
    const std::string path = dir_ + "/v6.mmdb";
    w.write(path);

    // The file really has the aliases: libmaxminddb finds IPv4 data through them.
    MMDB_s db;
    ASSERT_EQ(MMDB_open(path.c_str(), MMDB_MODE_MMAP, &db), MMDB_SUCCESS);
    for (const char* ip : {"2002:808:808::1", "::ffff:8.8.8.8", "8.8.8.8"}) {
        int gai = 0, err = 0;
        MMDB_lookup_result_s r = MMDB_lookup_string(&db, ip, &gai, &err);
        EXPECT_TRUE(gai == 0 && err == MMDB_SUCCESS && r.found_entry) << ip;
    }
    MMDB_close(&db);

    auto ds = load_geo_dataset(path);
    ASSERT_TRUE(ds.ok()) << ds.error().what();
    EXPECT_EQ(texts(ds->v4, AF_INET),
              (std::vector<std::string>{"8.8.8.0/24 US", "193.99.144.0/24 DE"}));
    EXPECT_EQ(
        texts(ds->v6, AF_INET6),
        (std::vector<std::string>{"2001:db8::/32 JP", "2a00:1450::/30 IE", "2a00:1454::/32 IE"}));
    EXPECT_EQ(ds->skipped, 0u);
    EXPECT_EQ(where(*ds, "193.99.144.80"), "DE");
    EXPECT_EQ(where(*ds, "2a00:1453::1"), "IE");
    EXPECT_EQ(where(*ds, "2002:808:808::1"), "-");
    EXPECT_EQ(where(*ds, "::ffff:8.8.8.8"), "-");
    EXPECT_EQ(where(*ds, "::8.8.8.8"), "-");  // IPv4 is in v4, not in v6
}

TEST_F(GeoFile, MmdbGeoLite2Schema) {
    using V = MmdbValue;
    auto country = [](const char* cc, const char* name) {
        return V::object({{"geoname_id", V::u32(2921044)},
                          {"iso_code", V::string(cc)},
                          {"names", V::object({{"en", V::string(name)}})}});
    };
    MmdbWriter w(6, 24);
    w.database_type = "GeoLite2-Country";
    // The usual record: country and registered_country.
    w.insert("193.99.144.0/24", V::object({{"continent", V::object({{"code", V::string("EU")}})},
                                           {"country", country("DE", "Germany")},
                                           {"registered_country", country("DE", "Germany")}}));
    // No country (as for some anycast and satellite networks): registered_country.
    w.insert("198.51.100.0/24", V::object({{"continent", V::object({{"code", V::string("EU")}})},
                                           {"registered_country", country("FR", "France")}}));
    // Neither: skipped.
    w.insert("203.0.113.0/24", V::object({{"continent", V::object({{"code", V::string("AS")}})}}));
    // A country without a usable code decides: no fallback to registered_country.
    w.insert("192.0.2.0/24", V::object({{"country", country("EU", "Europe")},
                                        {"registered_country", country("NL", "Netherlands")}}));
    // Not a map at all, and a code that is not a string: skipped.
    w.insert("100.64.0.0/24", V::string("DE"));
    w.insert("100.64.1.0/24", V::object({{"country_code", V::u16(49)}}));
    w.insert("2a01:4f8::/32", V::object({{"country", country("DE", "Germany")}}));
    w.alias_ipv4();
    const std::string path = dir_ + "/geolite2.mmdb";
    w.write(path);

    auto ds = load_geo_dataset(path);
    ASSERT_TRUE(ds.ok()) << ds.error().what();
    EXPECT_EQ(ds->database_type, "GeoLite2-Country");
    EXPECT_EQ(texts(ds->v4, AF_INET),
              (std::vector<std::string>{"193.99.144.0/24 DE", "198.51.100.0/24 FR"}));
    EXPECT_EQ(texts(ds->v6, AF_INET6), (std::vector<std::string>{"2a01:4f8::/32 DE"}));
    EXPECT_EQ(ds->skipped, 4u);
}

TEST_F(GeoFile, MmdbCorruptFilesAreErrors) {
    MmdbWriter w(4);
    w.insert("8.8.8.0/24", flat("US"));
    std::string good = w.bytes();

    // Metadata that is not a map.
    std::string bad_meta = good.substr(0, good.find("\xAB\xCD\xEFMaxMind.com") + 14) + "\x01";
    std::string p = write("meta.mmdb", bad_meta);
    auto ds = load_geo_dataset(p);
    ASSERT_FALSE(ds.ok());
    EXPECT_EQ(ds.error().message.rfind(p + ": ", 0), 0u) << ds.error().message;

    // A record pointing past the data section.
    std::string bad_record = good;
    bad_record[0] = '\x7f';
    p = write("record.mmdb", bad_record);
    ds = load_geo_dataset(p);
    ASSERT_FALSE(ds.ok());
    EXPECT_NE(ds.error().message.find("invalid record"), std::string::npos) << ds.error().message;
}

// ------------------------------------------------------------------ default dataset

TEST(GeoDefaultDataset, LoadsWithPlausibleCountsAndLookups) {
    const std::string path = "/var/lib/personabpf/geo/country.mmdb";
    if (!std::filesystem::exists(path)) {
        const char* ci = std::getenv("CI");
        if (ci && std::string(ci) == "true")
            FAIL() << path << " is missing: scripts/setup.sh installs it";
        GTEST_SKIP() << path << " is not installed (scripts/setup.sh installs it)";
    }
    auto t0 = std::chrono::steady_clock::now();
    auto ds = load_geo_dataset(path);
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_TRUE(ds.ok()) << ds.error().what();
    const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    std::printf("[ geo      ] %s: %s, %zu v4 + %zu v6 prefixes, %zu skipped, %.0f ms\n",
                path.c_str(), ds->database_type.c_str(), ds->v4.size(), ds->v6.size(), ds->skipped,
                ms);
    EXPECT_EQ(ds->format, "mmdb");
    EXPECT_GT(ds->v4.size(), 100000u);
    EXPECT_GT(ds->v6.size(), 10000u);
    EXPECT_EQ(where(*ds, "8.8.8.8"), "US");               // Google Public DNS
    EXPECT_EQ(where(*ds, "2001:4860:4860::8888"), "US");  // the same, IPv6
    EXPECT_EQ(where(*ds, "193.99.144.80"), "DE");         // heise.de
    EXPECT_EQ(where(*ds, "2a01:4f8::1"), "DE");           // Hetzner
    EXPECT_EQ(where(*ds, "10.0.0.1"), "-");               // private: no country
    EXPECT_EQ(where(*ds, "127.0.0.1"), "-");
    for (size_t i = 1; i < ds->v4.size(); ++i) ASSERT_LT(ds->v4[i - 1].addr, ds->v4[i].addr);
    for (size_t i = 1; i < ds->v6.size(); ++i) ASSERT_LT(ds->v6[i - 1].addr, ds->v6[i].addr);

    // The kernel's IPv4 table agrees with the lists: every prefix's first and last address,
    // and addresses spread over the whole space.
    auto t = build_geo4_table(ds->v4);
    ASSERT_TRUE(t) << t.error().what();
    std::printf("[ geo      ] IPv4 table: %zu /24s split by longer prefixes\n", t->groups.size());
    auto same = [&](uint32_t a) {
        const uint8_t bytes[4] = {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16),
                                  static_cast<uint8_t>(a >> 8), static_cast<uint8_t>(a)};
        return lookup(*t, bytes) == lookup(*ds, AF_INET, bytes);
    };
    for (const auto& p : ds->v4) {
        const uint32_t first = uint32_t{p.addr[0]} << 24 | uint32_t{p.addr[1]} << 16 |
                               uint32_t{p.addr[2]} << 8 | p.addr[3];
        const uint32_t last = first | (p.len == 0 ? 0xffffffffu : 0xffffffffu >> p.len);
        ASSERT_TRUE(same(first)) << texts({p}, AF_INET)[0];
        ASSERT_TRUE(same(last)) << texts({p}, AF_INET)[0];
    }
    for (uint64_t a = 0; a <= 0xffffffffu; a += 4099) ASSERT_TRUE(same(static_cast<uint32_t>(a)));
}

}  // namespace
}  // namespace pbpf::agent::geo
