// Fluent builder of test frames for bpf_prog_test_run: Ethernet, IPv4/IPv6 (+ extension
// headers), TCP/UDP/ICMP/ICMPv6, payload; lengths and checksums filled in by bytes().
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pbpf::test {

using Bytes = std::vector<uint8_t>;

// TCP flag bits.
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

// IPv6 extension header types the builder can emit.
inline constexpr uint8_t kIpv6HopByHop = 0;
inline constexpr uint8_t kIpv6Routing = 43;
inline constexpr uint8_t kIpv6Fragment = 44;
inline constexpr uint8_t kIpv6Ah = 51;
inline constexpr uint8_t kIpv6DestOpts = 60;

// Internet checksum (RFC 1071) of `data`, folded and complemented. Summing a correctly
// checksummed header (checksum field included) gives 0.
uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t initial = 0);

class Packet {
  public:
    // Layers in wire order. eth() is implied if the first layer is not eth().
    Packet& eth(const std::string& src_mac = "02:00:00:00:00:01",
                const std::string& dst_mac = "02:00:00:00:00:02");
    // Overrides the EtherType that would follow from the next layer (e.g. ARP 0x0806).
    Packet& ethertype(uint16_t type);
    Packet& ipv4(const std::string& src, const std::string& dst, uint8_t ttl = 64);
    // Sets the IPv4 fragment offset (in 8-byte units) and MF flag of the last ipv4().
    Packet& ipv4_fragment(uint16_t offset_units, bool more_fragments);
    Packet& ipv6(const std::string& src, const std::string& dst, uint8_t hop_limit = 64);
    // Hop-by-hop, routing, destination options (len_bytes: multiple of 8, >= 8) or AH
    // (multiple of 4, >= 12); fragment headers are always 8 bytes (use ipv6_fragment).
    Packet& ipv6_ext(uint8_t type, size_t len_bytes = 8);
    Packet& ipv6_fragment(uint16_t offset_units, bool more_fragments, uint32_t id = 0x1234);
    Packet& tcp(uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn);
    Packet& udp(uint16_t sport, uint16_t dport);
    Packet& icmp_echo(uint16_t id = 1, uint16_t seq = 1);
    Packet& icmpv6_echo(uint16_t id = 1, uint16_t seq = 1);
    // An L4 protocol the builder has no header for (e.g. GRE 47): only the IP protocol
    // number is set; add payload() for its bytes.
    Packet& l4_proto(uint8_t proto);
    Packet& payload(size_t n, uint8_t fill = 0xab);
    // Applied to the finished bytes (after lengths and checksums), in order: truncation,
    // corrupting a field, and so on. `what` goes into describe().
    Packet& mutate(std::string what, std::function<void(Bytes&)> fn);
    // Shorthand: keep only the first n bytes of the frame.
    Packet& truncate(size_t n);

    Bytes bytes() const;
    size_t size() const { return bytes().size(); }
    // "eth / ipv4 10.0.0.1 > 10.0.0.2 / tcp 1234 > 80 [S] / payload 10 (74 bytes)".
    std::string summary() const;
    // summary() plus a hexdump of bytes(), for failure messages.
    std::string describe() const;

  private:
    enum class Kind { Eth, Ipv4, Ipv6, Ipv6Ext, Tcp, Udp, Icmp, Icmpv6, L4Proto, Payload };
    struct Layer {
        Kind kind;
        std::array<uint8_t, 16> src{};
        std::array<uint8_t, 16> dst{};
        uint32_t a = 0;  // ttl / ext type / sport / echo id / proto / payload length
        uint32_t b = 0;  // dport / ext length / echo seq / fill
        uint32_t c = 0;  // tcp flags / fragment field / ipv6 fragment id
        std::string text;
    };
    struct Mutation {
        std::string what;
        std::function<void(Bytes&)> fn;
    };

    Layer& last(Kind kind, const char* call);

    std::vector<Layer> layers_;
    std::vector<Mutation> mutations_;
    int ethertype_override_ = -1;
};

// Classic 16-bytes-a-line hexdump with offsets.
std::string hexdump(const Bytes& bytes);

}  // namespace pbpf::test
