// Tests of the test packet builder itself: a wrong checksum or length here would make the
// program tests prove nothing.
#include <gtest/gtest.h>

#include "tests/bpf/packet_builder.h"

namespace pbpf::test {
namespace {

uint16_t get16(const Bytes& b, size_t off) {
    return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

// Ones-complement sum over pseudo header + segment; a correct checksum makes it 0.
uint16_t verify_l4(const Bytes& b, size_t ip_off, bool v6, size_t l4_off, uint8_t proto) {
    uint32_t s = 0;
    const size_t alen = v6 ? 16 : 4;
    const size_t src = ip_off + (v6 ? 8 : 12);
    for (size_t i = 0; i < 2 * alen; i += 2) s += get16(b, src + i);
    const size_t len = b.size() - l4_off;
    s += proto + static_cast<uint32_t>(len);
    return inet_checksum(b.data() + l4_off, len, s);
}

TEST(PacketBuilder, Ipv4TcpLayoutLengthsAndChecksums) {
    const Bytes b = Packet().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80).payload(10).bytes();
    ASSERT_EQ(b.size(), 14u + 20 + 20 + 10);
    EXPECT_EQ(get16(b, 12), 0x0800);
    EXPECT_EQ(b[14], 0x45);
    EXPECT_EQ(get16(b, 16), 20 + 20 + 10);  // total length
    EXPECT_EQ(b[23], 6);                    // protocol
    EXPECT_EQ(inet_checksum(b.data() + 14, 20), 0) << hexdump(b);
    EXPECT_EQ(get16(b, 34), 1234);
    EXPECT_EQ(get16(b, 36), 80);
    EXPECT_EQ(b[47], kTcpSyn);
    EXPECT_EQ(verify_l4(b, 14, false, 34, 6), 0) << hexdump(b);
}

TEST(PacketBuilder, KnownIpv4HeaderChecksum) {
    // The classic worked example: 45 00 00 73 0000 4000 40 11 -> b861 for these addresses.
    Bytes h = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
               0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    EXPECT_EQ(inet_checksum(h.data(), h.size()), 0xb861);
}

TEST(PacketBuilder, Ipv4UdpAndIcmp) {
    const Bytes u = Packet().ipv4("192.0.2.1", "192.0.2.2").udp(5353, 53).payload(3).bytes();
    ASSERT_EQ(u.size(), 14u + 20 + 8 + 3);
    EXPECT_EQ(get16(u, 38), 8 + 3);  // UDP length
    EXPECT_EQ(verify_l4(u, 14, false, 34, 17), 0) << hexdump(u);

    const Bytes i = Packet().ipv4("192.0.2.1", "192.0.2.2").icmp_echo(7, 9).payload(4).bytes();
    ASSERT_EQ(i.size(), 14u + 20 + 8 + 4);
    EXPECT_EQ(i[34], 8);  // echo request
    EXPECT_EQ(get16(i, 38), 7);
    EXPECT_EQ(inet_checksum(i.data() + 34, i.size() - 34), 0) << hexdump(i);
}

TEST(PacketBuilder, Ipv6ExtensionHeadersChainNextHeader) {
    const Bytes b = Packet()
                        .ipv6("2001:db8::1", "2001:db8::2")
                        .ipv6_ext(kIpv6HopByHop, 8)
                        .ipv6_ext(kIpv6DestOpts, 16)
                        .ipv6_fragment(0, true)
                        .tcp(1, 443)
                        .bytes();
    ASSERT_EQ(b.size(), 14u + 40 + 8 + 16 + 8 + 20);
    EXPECT_EQ(get16(b, 12), 0x86dd);
    EXPECT_EQ(get16(b, 18), 8 + 16 + 8 + 20);  // payload length
    EXPECT_EQ(b[20], kIpv6HopByHop);
    EXPECT_EQ(b[54], kIpv6DestOpts);
    EXPECT_EQ(b[55], 0);  // 8 bytes
    EXPECT_EQ(b[62], kIpv6Fragment);
    EXPECT_EQ(b[63], 1);         // 16 bytes
    EXPECT_EQ(b[78], 6);         // fragment -> tcp
    EXPECT_EQ(get16(b, 80), 1);  // offset 0, M set
    EXPECT_EQ(verify_l4(b, 14, true, 86, 6), 0) << hexdump(b);
}

TEST(PacketBuilder, Icmpv6AndUdpv6Checksums) {
    const Bytes i = Packet().ipv6("fe80::1", "fe80::2").icmpv6_echo(3, 4).bytes();
    ASSERT_EQ(i.size(), 14u + 40 + 8);
    EXPECT_EQ(i[54], 128);
    EXPECT_EQ(verify_l4(i, 14, true, 54, 58), 0) << hexdump(i);
    const Bytes u = Packet().ipv6("fe80::1", "fe80::2").udp(1, 2).payload(5).bytes();
    EXPECT_EQ(verify_l4(u, 14, true, 54, 17), 0) << hexdump(u);
}

TEST(PacketBuilder, MutationsRunAfterChecksums) {
    const Packet p = Packet().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).truncate(14 + 22);
    EXPECT_EQ(p.bytes().size(), 36u);
    const Bytes b = Packet()
                        .ipv4("10.0.0.1", "10.0.0.2")
                        .l4_proto(47)
                        .payload(4)
                        .mutate("ttl 1", [](Bytes& x) { x[22] = 1; })
                        .bytes();
    EXPECT_EQ(b[22], 1);
    EXPECT_EQ(b[23], 47);
}

TEST(PacketBuilder, DescribeIsReadable) {
    const Packet p = Packet().eth().ipv4("10.0.0.1", "10.0.0.2").tcp(1234, 80, kTcpSyn).payload(2);
    EXPECT_EQ(p.summary(),
              "eth / ipv4 10.0.0.1 > 10.0.0.2 / tcp 1234 > 80 [S] / payload 2 (56 bytes)");
    const std::string d = p.describe();
    EXPECT_NE(d.find("0000  02 00 00 00 00 02 02 00  00 00 00 01 08 00 45 00"), std::string::npos)
        << d;
    EXPECT_NE(d.find("0030"), std::string::npos) << d;
}

TEST(PacketBuilder, RejectsBadInput) {
    EXPECT_THROW(Packet().ipv4("10.0.0.300", "10.0.0.1"), std::invalid_argument);
    EXPECT_THROW(Packet().ipv6_ext(kIpv6HopByHop, 12), std::invalid_argument);
    EXPECT_THROW(Packet().ipv4_fragment(1, false), std::logic_error);
}

}  // namespace
}  // namespace pbpf::test
