// pbpf_topo_ingress under bpf_prog_test_run: the persona mark and the TTL / hop-limit clamp
// of an interface-bound workload's packets, with the IPv4 header checksum checked on the
// output bytes. (The next-hop check reads the route attached to a packet, which test runs
// do not have; tests/integration/topology_test covers it under real routing.)
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstring>

#include "maps/abi/binding.h"
#include "maps/abi/qos.h"
#include "maps/abi/topology.h"
#include "tests/bpf/persona_fixture.h"
#include "tests/common/kernel_required.h"

namespace pbpf::test {
namespace {

constexpr uint32_t kPersona = 5;
constexpr uint32_t kTcxNext = static_cast<uint32_t>(-1);

uint64_t netns_cookie() {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    uint64_t c = 0;
    socklen_t len = sizeof c;
    (void)::getsockopt(s, SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, &c, &len);
    ::close(s);
    return c;
}

// The one's complement sum of the IPv4 header is 0xffff when its checksum is right.
bool ipv4_checksum_ok(const Bytes& f) {
    uint32_t sum = 0;
    const size_t ihl = (f[14] & 0xf) * 4;
    for (size_t i = 0; i < ihl; i += 2) sum += (f[14 + i] << 8) | f[14 + i + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return sum == 0xffff;
}

class TopologyProg : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) PBPF_KERNEL_UNAVAILABLE("needs root");
        auto skel = load_persona_skeleton();
        if (!skel) PBPF_KERNEL_UNAVAILABLE(skel.error().what());
        skel_ = std::move(*skel);
        // Test runs put the packet on the loopback device of the caller's netns.
        pbpf_if_key k{};
        k.netns_cookie = netns_cookie();
        k.ifindex = 1;
        pbpf_binding b{};
        b.persona_id = kPersona;
        ASSERT_EQ(
            bpf_map__update_elem(skel_->maps.pbpf_if_bindings, &k, sizeof k, &b, sizeof b, BPF_ANY),
            0);
    }

    void set_topology(const pbpf_topology& t) {
        uint32_t id = kPersona;
        ASSERT_EQ(
            bpf_map__update_elem(skel_->maps.pbpf_topology, &id, sizeof id, &t, sizeof t, BPF_ANY),
            0);
    }

    // Runs pbpf_topo_ingress; returns the output frame, *retval and *mark.
    Bytes run(const Bytes& in, uint32_t* retval, uint32_t* mark, uint32_t mark_in = 0) {
        Bytes out(in.size() + 64);
        __sk_buff ctx{};
        ctx.mark = mark_in;
        ctx.ifindex = 1;
        __sk_buff ctx_out{};
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = out.data(),
                    .data_size_in = static_cast<uint32_t>(in.size()),
                    .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
                    .ctx_out = &ctx_out, .ctx_size_in = sizeof ctx, .ctx_size_out = sizeof ctx_out);
        int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.pbpf_topo_ingress), &opts);
        EXPECT_EQ(err, 0) << std::strerror(-err);
        out.resize(opts.data_size_out);
        *retval = opts.retval;
        *mark = ctx_out.mark;
        return out;
    }

    Skeleton skel_;
};

TEST_F(TopologyProg, ClampsIpv4TtlWithACorrectChecksumAndMarks) {
    pbpf_topology t{};
    t.flags = PBPF_TOPO_F_MAX_HOPS;
    t.max_hops = 2;
    set_topology(t);
    Packet p;
    p.ipv4("10.0.0.2", "10.9.9.9", 64).udp(40000, 9090).payload(16);
    const Bytes in = p.bytes();
    ASSERT_TRUE(ipv4_checksum_ok(in));
    uint32_t rc = 0, mark = 0;
    Bytes out = run(in, &rc, &mark, 0x5);
    EXPECT_EQ(rc, kTcxNext);
    EXPECT_EQ(mark, (kPersona << PBPF_MARK_PERSONA_SHIFT) | 0x5) << "other mark bits kept";
    ASSERT_EQ(out.size(), in.size());
    EXPECT_EQ(out[14 + 8], 2) << p.describe();
    EXPECT_TRUE(ipv4_checksum_ok(out)) << p.describe();
    // Only the TTL and the checksum changed.
    for (size_t i = 0; i < in.size(); ++i)
        if (i != 14 + 8 && i != 14 + 10 && i != 14 + 11) {
            EXPECT_EQ(out[i], in[i]) << "byte " << i;
        }
}

TEST_F(TopologyProg, LeavesALowerTtlAlone) {
    pbpf_topology t{};
    t.flags = PBPF_TOPO_F_MAX_HOPS;
    t.max_hops = 8;
    set_topology(t);
    Packet p;
    p.ipv4("10.0.0.2", "10.9.9.9", 3).tcp(40000, 443);
    uint32_t rc = 0, mark = 0;
    Bytes out = run(p.bytes(), &rc, &mark);
    EXPECT_EQ(out, p.bytes());
    EXPECT_EQ(rc, kTcxNext);
}

TEST_F(TopologyProg, ClampsIpv6HopLimit) {
    pbpf_topology t{};
    t.flags = PBPF_TOPO_F_MAX_HOPS;
    t.max_hops = 1;
    set_topology(t);
    Packet p;
    p.ipv6("fd00::2", "fd00:9::9", 255).icmpv6_echo();
    const Bytes in = p.bytes();
    uint32_t rc = 0, mark = 0;
    Bytes out = run(in, &rc, &mark);
    EXPECT_EQ(out[14 + 7], 1);
    // ICMPv6's checksum covers no hop limit: the rest is unchanged.
    for (size_t i = 0; i < in.size(); ++i)
        if (i != 14 + 7) {
            EXPECT_EQ(out[i], in[i]) << "byte " << i;
        }
}

TEST_F(TopologyProg, LeavesNeighbourDiscoveryAtHopLimit255) {
    pbpf_topology t{};
    t.flags = PBPF_TOPO_F_MAX_HOPS;
    t.max_hops = 2;
    set_topology(t);
    Packet p;
    // A neighbour solicitation (type 135): the echo builder, its type byte changed.
    p.ipv6("fe80::2", "ff02::1:ff00:1", 255).icmpv6_echo().mutate("type 135", [](Bytes& b) {
        b[14 + 40] = 135;
    });
    uint32_t rc = 0, mark = 0;
    Bytes out = run(p.bytes(), &rc, &mark);
    EXPECT_EQ(out, p.bytes());
}

TEST_F(TopologyProg, PersonaWithoutTopologyIsUntouched) {
    Packet p;
    p.ipv4("10.0.0.2", "10.9.9.9", 64).udp(1, 2);
    uint32_t rc = 0, mark = 0;
    Bytes out = run(p.bytes(), &rc, &mark, 0x7);
    EXPECT_EQ(out, p.bytes());
    EXPECT_EQ(mark, 0x7u);
    EXPECT_EQ(rc, kTcxNext);
}

}  // namespace
}  // namespace pbpf::test
