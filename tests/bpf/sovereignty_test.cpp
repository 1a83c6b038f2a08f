// Sovereignty on the real program (bpf_prog_test_run on crafted packets): the remote's
// country from the geo trie against the persona's list, `unknown`, `exempt`, deny lists
// and `on-violation log`, for IPv4 and IPv6 and both directions; the verdict cached in the
// flow (a new trie changes nothing for a tracked flow until the policy epoch moves); and
// the default dataset (the real MMDB) behind the same program. No packet is ever sent.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/geo.h"
#include "agent/geo_db.h"
#include "maps/abi/events.h"
#include "maps/abi/geo.h"
#include "maps/policy_map.h"
#include "tests/bpf/cgroup_util.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

constexpr uint32_t kSov = 11;
constexpr const char* kMe4 = "192.168.1.10";
constexpr const char* kMe6 = "fd00::10";

uint16_t cc(const char* code) { return *agent::geo::country_index(code); }

agent::geo::GeoPrefix prefix(const char* addr, uint8_t len, const char* code) {
    agent::geo::GeoPrefix p;
    p.addr = std::string(addr).find(':') == std::string::npos ? v4(addr) : v6(addr);
    p.len = len;
    p.country = cc(code);
    return p;
}

class SovereigntyProg : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) PBPF_KERNEL_UNAVAILABLE("needs root");
        auto skel = load_persona_skeleton();
        if (!skel) PBPF_KERNEL_UNAVAILABLE(skel.error().what());
        skel_ = std::move(*skel);
        auto self = self_cgroup_path();
        auto mount = cgroup2_mount();
        ASSERT_TRUE(self && mount);
        auto id = cgroup_id(*mount + (*self == "/" ? "" : *self));
        ASSERT_TRUE(id) << id.error().what();
        ASSERT_TRUE(bind_cgroup(skel_.get(), *id, kSov));
    }

    // Every flow allowed by the rules; sovereignty decides. `flags`: PBPF_SETTINGS_F_SOV_*.
    void install(std::initializer_list<const char*> countries, uint32_t flags = 0,
                 std::initializer_list<std::pair<const char*, unsigned>> exempt = {}) {
        PersonaImage image;
        image.name = "sov";
        image.entries = uniform_policy(PBPF_VERDICT_ALLOW, 1);
        image.settings.flags = PBPF_SETTINGS_F_SOVEREIGNTY | flags;
        for (const char* c : countries) {
            const unsigned bit = cc(c);
            image.settings.countries[bit / 64] |= uint64_t{1} << (bit % 64);
        }
        for (const auto& [addr, len] : exempt) {
            const bool is4 = std::string(addr).find(':') == std::string::npos;
            image.entries.push_back(make_sov_exempt_entry(is4 ? PBPF_FAMILY_IPV4 : PBPF_FAMILY_IPV6,
                                                          (is4 ? v4(addr) : v6(addr)).data(), len));
        }
        image.canonicalize();
        auto map = build_policy_map(image);
        ASSERT_TRUE(map) << map.error().what();
        const uint32_t fd = static_cast<uint32_t>(map->get());
        ASSERT_EQ(bpf_map__update_elem(skel_->maps.pbpf_policies, &kSov, sizeof kSov, &fd,
                                       sizeof fd, BPF_ANY),
                  0);
        ASSERT_TRUE(bump_policy_epoch(skel_.get()));
    }

    void set_geo(const agent::geo::GeoDataset& ds) {
        auto maps = agent::build_geo_maps(ds);
        ASSERT_TRUE(maps) << maps.error().what();
        auto r = agent::install_geo_maps(bpf_map__fd(skel_->maps.pbpf_geo4),
                                         bpf_map__fd(skel_->maps.pbpf_geo), *maps);
        ASSERT_TRUE(r) << r.error().what();
    }
    void test_geo() {
        agent::geo::GeoDataset ds;
        ds.v4 = {prefix("10.49.0.0", 16, "DE"), prefix("10.49.7.0", 24, "US"),
                 prefix("10.50.0.0", 16, "US")};
        ds.v6 = {prefix("2001:db8:de::", 48, "DE"), prefix("2001:db8:5::", 48, "US")};
        set_geo(ds);
    }

    uint32_t run(Prog prog, const Packet& packet) {
        auto r = run_prog(skel_.get(), prog, packet.bytes());
        EXPECT_TRUE(r) << r.error().what();
        return r ? r->retval : 99;
    }
    uint64_t sov_drops(pbpf_direction dir) {
        auto c = counters_of(skel_.get(), kSov);
        EXPECT_TRUE(c) << c.error().what();
        return c ? c->dir[dir].dropped_by_reason[PBPF_REASON_SOVEREIGNTY] : 0;
    }

    Skeleton skel_;
};

Packet syn4(const char* dst, uint16_t sport = 40000) {
    return Packet().eth().ipv4(kMe4, dst).tcp(sport, 443, 0x02).payload(0);
}
Packet syn6(const char* dst) {
    return Packet().eth().ipv6(kMe6, dst).tcp(40000, 443, 0x02).payload(0);
}

TEST_F(SovereigntyProg, AllowListIPv4AndIPv6LongestPrefixWins) {
    test_geo();
    install({"DE"});
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.1.1")), 1u) << "DE";
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.7.1")), 0u) << "a US /24 inside the DE /16";
    EXPECT_EQ(run(Prog::Egress, syn4("10.50.1.1")), 0u) << "US";
    EXPECT_EQ(run(Prog::Egress, syn4("10.51.1.1")), 0u) << "unknown, `unknown deny`";
    EXPECT_EQ(run(Prog::Egress, syn6("2001:db8:de::1")), 1u) << "DE";
    EXPECT_EQ(run(Prog::Egress, syn6("2001:db8:5::1")), 0u) << "US";
    EXPECT_EQ(sov_drops(PBPF_DIR_EGRESS), 4u);
}

// The IPv4 table's second level: /24s split by longer prefixes, with and without a
// covering prefix.
TEST_F(SovereigntyProg, SplitSlash24sIPv4) {
    agent::geo::GeoDataset ds;
    ds.v4 = {prefix("10.49.0.0", 16, "DE"), prefix("10.49.7.4", 30, "US"),
             prefix("10.49.7.128", 25, "US"), prefix("10.60.0.8", 29, "DE")};
    set_geo(ds);
    install({"DE"});
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.7.3")), 1u) << "DE, beside a US /30";
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.7.4")), 0u) << "the US /30";
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.7.8")), 1u) << "DE again";
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.7.200")), 0u) << "the US /25";
    EXPECT_EQ(run(Prog::Egress, syn4("10.60.0.9")), 1u) << "a DE /29 with nothing around it";
    EXPECT_EQ(run(Prog::Egress, syn4("10.60.0.16")), 0u) << "unknown, next to it";
    EXPECT_EQ(sov_drops(PBPF_DIR_EGRESS), 3u);
}

// A trie of both families in pbpf_geo and no IPv4 table, as an agent before the table left
// them pinned: IPv4 is looked up in the trie until the new agent has loaded its table.
TEST_F(SovereigntyProg, ATrieOfBothFamiliesAnswersIPv4WhileNoTableIsInstalled) {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    Fd trie(bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "old_geo_trie", sizeof(pbpf_geo_key),
                           sizeof(pbpf_geo_value), 4, &opts));
    ASSERT_TRUE(trie.valid()) << std::strerror(errno);
    auto put = [&](const char* addr, uint8_t len, const char* code) {
        pbpf_geo_key k{};
        k.prefixlen = PBPF_GEO_FAMILY_BITS + len;
        k.family = PBPF_FAMILY_IPV4;
        const auto a = v4(addr);
        std::memcpy(k.addr, a.data(), 4);
        pbpf_geo_value v{cc(code), {static_cast<uint8_t>(code[0]), static_cast<uint8_t>(code[1])}};
        ASSERT_EQ(bpf_map_update_elem(trie.get(), &k, &v, BPF_ANY), 0) << std::strerror(errno);
    };
    put("10.49.0.0", 16, "DE");
    put("10.50.0.0", 16, "US");
    const uint32_t zero = 0;
    const uint32_t fd = static_cast<uint32_t>(trie.get());
    ASSERT_EQ(
        bpf_map__update_elem(skel_->maps.pbpf_geo, &zero, sizeof zero, &fd, sizeof fd, BPF_ANY), 0);
    install({"DE"});
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.1.1")), 1u) << "DE, from the trie";
    EXPECT_EQ(run(Prog::Egress, syn4("10.50.1.1")), 0u) << "US, from the trie";
    // The new agent's table takes over IPv4 (here: it puts 10.49/16 in the US).
    agent::geo::GeoDataset us;
    us.v4 = {prefix("10.49.0.0", 16, "US")};
    set_geo(us);
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.1.1", 40001)), 0u) << "US, from the table";
}

TEST_F(SovereigntyProg, DenyListUnknownAllowExemptAndLogOnly) {
    test_geo();
    install({"US"}, PBPF_SETTINGS_F_SOV_DENY_LIST | PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW,
            {{"10.50.9.0", 24}});
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.1.1")), 1u) << "DE is not denied";
    EXPECT_EQ(run(Prog::Egress, syn4("10.50.1.1")), 0u) << "US is";
    EXPECT_EQ(run(Prog::Egress, syn4("10.50.9.9")), 1u) << "exempt";
    EXPECT_EQ(run(Prog::Egress, syn4("10.51.1.1")), 1u) << "unknown allow";
    install({"DE"}, PBPF_SETTINGS_F_SOV_LOG_ONLY);
    EXPECT_EQ(run(Prog::Egress, syn4("10.50.1.1", 40001)), 1u) << "log only never drops";
    EXPECT_EQ(sov_drops(PBPF_DIR_EGRESS), 1u);
}

TEST_F(SovereigntyProg, InboundFlowsAreJudgedByTheirSource) {
    test_geo();
    install({"DE"});
    EXPECT_EQ(
        run(Prog::Ingress, Packet().eth().ipv4("10.50.1.1", kMe4).tcp(5000, 80, 0x02).payload(0)),
        0u);
    EXPECT_EQ(
        run(Prog::Ingress, Packet().eth().ipv4("10.49.1.1", kMe4).tcp(5000, 80, 0x02).payload(0)),
        1u);
    EXPECT_EQ(sov_drops(PBPF_DIR_INGRESS), 1u);
}

TEST_F(SovereigntyProg, TrackedFlowKeepsItsVerdictUntilThePolicyEpochMoves) {
    test_geo();
    install({"DE"});
    const Packet first = syn4("10.49.1.1", 41000);
    const Packet next = Packet().eth().ipv4(kMe4, "10.49.1.1").tcp(41000, 443, 0x10).payload(10);
    ASSERT_EQ(run(Prog::Egress, first), 1u);
    // New data puts the address in the US: the tracked flow pays no geo lookup and passes.
    agent::geo::GeoDataset us;
    us.v4 = {prefix("10.49.0.0", 16, "US")};
    set_geo(us);
    EXPECT_EQ(run(Prog::Egress, next), 1u);
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.1.1", 41001)), 0u) << "a new flow sees the new data";
    // The agent bumps the epoch after a swap: the tracked flow is judged again, and cut.
    ASSERT_TRUE(bump_policy_epoch(skel_.get()));
    EXPECT_EQ(run(Prog::Egress, next), 0u);
}

TEST_F(SovereigntyProg, NoDatasetMeansEveryRemoteIsUnknownButLoopbackAndLinkLocalPass) {
    install({"DE"});
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.1.1")), 0u);
    EXPECT_EQ(run(Prog::Egress, syn4("127.0.0.53")), 1u) << "loopback has no country";
    EXPECT_EQ(run(Prog::Egress, syn4("169.254.169.254")), 1u) << "link-local";
    EXPECT_EQ(run(Prog::Egress, syn6("::1")), 1u);
    EXPECT_EQ(run(Prog::Egress, syn6("fe80::1")), 1u);
    EXPECT_EQ(run(Prog::Egress, syn6("::2")), 0u) << "not loopback";
    install({"DE"}, PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW);
    EXPECT_EQ(run(Prog::Egress, syn4("10.49.1.1", 40002)), 1u);
}

// The default dataset (scripts/setup.sh installs it): real countries behind the same
// program, with crafted packets only.
TEST_F(SovereigntyProg, DefaultDatasetWithCraftedPackets) {
    const std::string path = agent::kDefaultGeoDatabase;
    if (::access(path.c_str(), R_OK) != 0) {
        if (std::getenv("CI") != nullptr && std::string(std::getenv("CI")) == "true")
            FAIL() << path << " is missing: scripts/setup.sh installs it";
        GTEST_SKIP() << path << " is missing (scripts/setup.sh installs it)";
    }
    auto ds = agent::geo::load_geo_dataset(path);
    ASSERT_TRUE(ds) << ds.error().what();
    set_geo(*ds);
    install({"DE"});
    EXPECT_EQ(run(Prog::Egress, syn4("8.8.8.8")), 0u) << "8.8.8.8 is in the US";
    EXPECT_EQ(run(Prog::Egress, syn6("2001:4860:4860::8888")), 0u) << "so is its IPv6";
    // An address the dataset itself puts in DE: the first DE prefix it lists.
    const agent::geo::GeoPrefix* de = nullptr;
    for (const auto& p : ds->v4)
        if (p.country == cc("DE")) {
            de = &p;
            break;
        }
    ASSERT_NE(de, nullptr);
    char text[INET_ADDRSTRLEN];
    ASSERT_NE(inet_ntop(AF_INET, de->addr.data(), text, sizeof text), nullptr);
    EXPECT_EQ(run(Prog::Egress, syn4(text)), 1u) << text << " is in DE";
    // The program's verdict agrees with the dataset's longest-prefix match over addresses
    // spread across the IPv4 space, and the last address of every 97th DE prefix (many of
    // them in split /24s).
    std::vector<uint32_t> addrs;
    for (uint64_t a = 0x01000000; a < 0xe0000000; a += 0x00c0ffee) addrs.push_back(uint32_t(a));
    size_t n_de = 0;
    for (const auto& p : ds->v4)
        if (p.country == cc("DE") && n_de++ % 97 == 0) {
            const uint32_t first = uint32_t{p.addr[0]} << 24 | uint32_t{p.addr[1]} << 16 |
                                   uint32_t{p.addr[2]} << 8 | p.addr[3];
            addrs.push_back(first | (0xffffffffu >> p.len));
        }
    size_t allowed = 0;
    for (size_t i = 0; i < addrs.size(); ++i) {
        const uint8_t b[4] = {uint8_t(addrs[i] >> 24), uint8_t(addrs[i] >> 16),
                              uint8_t(addrs[i] >> 8), uint8_t(addrs[i])};
        ASSERT_NE(inet_ntop(AF_INET, b, text, sizeof text), nullptr);
        if (std::string(text).rfind("127.", 0) == 0 || std::string(text).rfind("169.254.", 0) == 0)
            continue;  // no country to check
        const auto c = agent::geo::lookup(*ds, AF_INET, b);
        const uint32_t want = c && *c == cc("DE") ? 1u : 0u;
        allowed += want;
        ASSERT_EQ(run(Prog::Egress, syn4(text, static_cast<uint16_t>(20000 + i))), want)
            << text << " is " << (c ? agent::geo::country_code(*c) : "of no country");
    }
    EXPECT_GT(allowed, 10u) << "the sample holds DE addresses";
}

}  // namespace
}  // namespace pbpf::test
