// Packet builder: layers are recorded as called and serialized by bytes(), which then
// fills the length fields and checksums that depend on what follows each layer.
#include "tests/bpf/packet_builder.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace pbpf::test {

namespace {

void put16(Bytes& b, size_t off, uint32_t v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}

void push16(Bytes& b, uint32_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

void push32(Bytes& b, uint32_t v) {
    push16(b, v >> 16);
    push16(b, v & 0xffff);
}

std::array<uint8_t, 16> parse_addr(int family, const std::string& text) {
    std::array<uint8_t, 16> out{};
    if (inet_pton(family, text.c_str(), out.data()) != 1) {
        throw std::invalid_argument("packet builder: bad address '" + text + "'");
    }
    return out;
}

std::array<uint8_t, 16> parse_mac(const std::string& text) {
    std::array<uint8_t, 16> out{};
    unsigned m[6];
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) !=
        6) {
        throw std::invalid_argument("packet builder: bad MAC '" + text + "'");
    }
    for (int i = 0; i < 6; ++i) out[i] = static_cast<uint8_t>(m[i]);
    return out;
}

uint32_t sum16(const uint8_t* data, size_t len, uint32_t sum) {
    for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t{data[i]} << 8 | data[i + 1];
    if (len & 1) sum += uint32_t{data[len - 1]} << 8;
    return sum;
}

std::string tcp_flags_text(uint32_t flags) {
    std::string s;
    if (flags & kTcpSyn) s += 'S';
    if (flags & kTcpAck) s += '.';
    if (flags & kTcpFin) s += 'F';
    if (flags & kTcpRst) s += 'R';
    if (flags & kTcpPsh) s += 'P';
    return s;
}

}  // namespace

uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t initial) {
    uint32_t sum = sum16(data, len, initial);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum & 0xffff);
}

Packet& Packet::eth(const std::string& src_mac, const std::string& dst_mac) {
    Layer l{Kind::Eth};
    l.src = parse_mac(src_mac);
    l.dst = parse_mac(dst_mac);
    l.text = "eth";
    layers_.push_back(l);
    return *this;
}

Packet& Packet::ethertype(uint16_t type) {
    ethertype_override_ = type;
    return *this;
}

Packet& Packet::ipv4(const std::string& src, const std::string& dst, uint8_t ttl) {
    Layer l{Kind::Ipv4};
    l.src = parse_addr(AF_INET, src);
    l.dst = parse_addr(AF_INET, dst);
    l.a = ttl;
    l.text = "ipv4 " + src + " > " + dst;
    layers_.push_back(l);
    return *this;
}

Packet& Packet::ipv4_fragment(uint16_t offset_units, bool more_fragments) {
    Layer& l = last(Kind::Ipv4, "ipv4_fragment");
    l.c = (more_fragments ? 0x2000u : 0u) | (offset_units & 0x1fffu);
    l.text += " frag off " + std::to_string(offset_units * 8) + (more_fragments ? " MF" : "");
    return *this;
}

Packet& Packet::ipv6(const std::string& src, const std::string& dst, uint8_t hop_limit) {
    Layer l{Kind::Ipv6};
    l.src = parse_addr(AF_INET6, src);
    l.dst = parse_addr(AF_INET6, dst);
    l.a = hop_limit;
    l.text = "ipv6 " + src + " > " + dst;
    layers_.push_back(l);
    return *this;
}

Packet& Packet::ipv6_ext(uint8_t type, size_t len_bytes) {
    const bool ah = type == kIpv6Ah;
    if (type == kIpv6Fragment) return ipv6_fragment(0, false);
    if (ah ? (len_bytes < 12 || len_bytes % 4) : (len_bytes < 8 || len_bytes % 8)) {
        throw std::invalid_argument("packet builder: bad extension header length " +
                                    std::to_string(len_bytes));
    }
    Layer l{Kind::Ipv6Ext};
    l.a = type;
    l.b = static_cast<uint32_t>(len_bytes);
    l.text = "ext " + std::to_string(type) + " (" + std::to_string(len_bytes) + " bytes)";
    layers_.push_back(l);
    return *this;
}

Packet& Packet::ipv6_fragment(uint16_t offset_units, bool more_fragments, uint32_t id) {
    Layer l{Kind::Ipv6Ext};
    l.a = kIpv6Fragment;
    l.b = 8;
    l.c = static_cast<uint32_t>(offset_units & 0x1fff) << 3 | (more_fragments ? 1u : 0u);
    l.src[0] = static_cast<uint8_t>(id >> 24);
    l.src[1] = static_cast<uint8_t>(id >> 16);
    l.src[2] = static_cast<uint8_t>(id >> 8);
    l.src[3] = static_cast<uint8_t>(id);
    l.text = "frag off " + std::to_string(offset_units * 8) + (more_fragments ? " MF" : "");
    layers_.push_back(l);
    return *this;
}

Packet& Packet::tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
    Layer l{Kind::Tcp};
    l.a = sport;
    l.b = dport;
    l.c = flags;
    l.text = "tcp " + std::to_string(sport) + " > " + std::to_string(dport) + " [" +
             tcp_flags_text(flags) + "]";
    layers_.push_back(l);
    return *this;
}

Packet& Packet::udp(uint16_t sport, uint16_t dport) {
    Layer l{Kind::Udp};
    l.a = sport;
    l.b = dport;
    l.text = "udp " + std::to_string(sport) + " > " + std::to_string(dport);
    layers_.push_back(l);
    return *this;
}

Packet& Packet::icmp_echo(uint16_t id, uint16_t seq) {
    Layer l{Kind::Icmp};
    l.a = id;
    l.b = seq;
    l.text = "icmp echo id " + std::to_string(id) + " seq " + std::to_string(seq);
    layers_.push_back(l);
    return *this;
}

Packet& Packet::icmpv6_echo(uint16_t id, uint16_t seq) {
    Layer l{Kind::Icmpv6};
    l.a = id;
    l.b = seq;
    l.text = "icmpv6 echo id " + std::to_string(id) + " seq " + std::to_string(seq);
    layers_.push_back(l);
    return *this;
}

Packet& Packet::l4_proto(uint8_t proto) {
    Layer l{Kind::L4Proto};
    l.a = proto;
    l.text = "proto " + std::to_string(proto);
    layers_.push_back(l);
    return *this;
}

Packet& Packet::payload(size_t n, uint8_t fill) {
    Layer l{Kind::Payload};
    l.a = static_cast<uint32_t>(n);
    l.b = fill;
    l.text = "payload " + std::to_string(n);
    layers_.push_back(l);
    return *this;
}

Packet& Packet::mutate(std::string what, std::function<void(Bytes&)> fn) {
    mutations_.push_back({std::move(what), std::move(fn)});
    return *this;
}

Packet& Packet::truncate(size_t n) {
    return mutate("truncated to " + std::to_string(n), [n](Bytes& b) {
        if (b.size() > n) b.resize(n);
    });
}

Packet::Layer& Packet::last(Kind kind, const char* call) {
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
        if (it->kind == kind) return *it;
    }
    throw std::logic_error(std::string("packet builder: ") + call + " without its layer");
}

Bytes Packet::bytes() const {
    std::vector<Layer> layers = layers_;
    if (layers.empty() || layers.front().kind != Kind::Eth) {
        Packet p;
        p.eth();
        layers.insert(layers.begin(), p.layers_.front());
    }

    // What a header announces for the layer after it.
    auto next_proto = [&](size_t i) -> uint8_t {
        if (i + 1 >= layers.size()) return 59;  // IPv6 "no next header"
        const Layer& n = layers[i + 1];
        switch (n.kind) {
            case Kind::Ipv4:
                return 4;
            case Kind::Ipv6:
                return 41;
            case Kind::Ipv6Ext:
                return static_cast<uint8_t>(n.a);
            case Kind::Tcp:
                return 6;
            case Kind::Udp:
                return 17;
            case Kind::Icmp:
                return 1;
            case Kind::Icmpv6:
                return 58;
            case Kind::L4Proto:
                return static_cast<uint8_t>(n.a);
            default:
                return 59;
        }
    };

    Bytes b;
    std::vector<size_t> offs(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
        const Layer& l = layers[i];
        offs[i] = b.size();
        switch (l.kind) {
            case Kind::Eth: {
                b.insert(b.end(), l.dst.begin(), l.dst.begin() + 6);
                b.insert(b.end(), l.src.begin(), l.src.begin() + 6);
                uint16_t type = 0x88b5;  // IEEE local experimental, when nothing follows
                if (i + 1 < layers.size() && layers[i + 1].kind == Kind::Ipv4) type = 0x0800;
                if (i + 1 < layers.size() && layers[i + 1].kind == Kind::Ipv6) type = 0x86dd;
                if (ethertype_override_ >= 0) type = static_cast<uint16_t>(ethertype_override_);
                push16(b, type);
                break;
            }
            case Kind::Ipv4:
                b.push_back(0x45);
                b.push_back(0);
                push16(b, 0);  // total length, below
                push16(b, 0x1234);
                push16(b, l.c);
                b.push_back(static_cast<uint8_t>(l.a));
                b.push_back(next_proto(i));
                push16(b, 0);  // checksum, below
                b.insert(b.end(), l.src.begin(), l.src.begin() + 4);
                b.insert(b.end(), l.dst.begin(), l.dst.begin() + 4);
                break;
            case Kind::Ipv6:
                push32(b, 0x60000000);
                push16(b, 0);  // payload length, below
                b.push_back(next_proto(i));
                b.push_back(static_cast<uint8_t>(l.a));
                b.insert(b.end(), l.src.begin(), l.src.end());
                b.insert(b.end(), l.dst.begin(), l.dst.end());
                break;
            case Kind::Ipv6Ext: {
                const size_t start = b.size();
                b.push_back(next_proto(i));
                if (l.a == kIpv6Fragment) {
                    b.push_back(0);
                    push16(b, l.c);
                    b.insert(b.end(), l.src.begin(), l.src.begin() + 4);
                } else if (l.a == kIpv6Ah) {
                    b.push_back(static_cast<uint8_t>(l.b / 4 - 2));
                    b.resize(start + l.b, 0);  // reserved, SPI, sequence, ICV: zeros
                } else {
                    b.push_back(static_cast<uint8_t>(l.b / 8 - 1));
                    if (l.a == kIpv6Routing) {
                        b.resize(start + l.b, 0);  // type 0, segments left 0
                    } else {
                        // One PadN option filling the header.
                        b.push_back(1);
                        b.push_back(static_cast<uint8_t>(l.b - 4));
                        b.resize(start + l.b, 0);
                    }
                }
                break;
            }
            case Kind::Tcp:
                push16(b, l.a);
                push16(b, l.b);
                push32(b, 1);  // seq
                push32(b, (l.c & kTcpAck) ? 1 : 0);
                b.push_back(5 << 4);
                b.push_back(static_cast<uint8_t>(l.c));
                push16(b, 65535);
                push16(b, 0);  // checksum, below
                push16(b, 0);
                break;
            case Kind::Udp:
                push16(b, l.a);
                push16(b, l.b);
                push16(b, 0);  // length, below
                push16(b, 0);  // checksum, below
                break;
            case Kind::Icmp:
            case Kind::Icmpv6:
                b.push_back(l.kind == Kind::Icmp ? 8 : 128);
                b.push_back(0);
                push16(b, 0);
                push16(b, l.a);
                push16(b, l.b);
                break;
            case Kind::L4Proto:
                break;
            case Kind::Payload:
                b.insert(b.end(), l.a, static_cast<uint8_t>(l.b));
                break;
        }
    }

    // L4 lengths and checksums first (they only cover bytes already final), then the IP
    // lengths and IPv4 header checksums.
    int ip_index = -1;  // the IP header an L4 checksum's pseudo header comes from
    for (size_t i = 0; i < layers.size(); ++i) {
        if (layers[i].kind == Kind::Ipv4 || layers[i].kind == Kind::Ipv6) ip_index = int(i);
        const Layer& l = layers[i];
        const size_t off = offs[i];
        const size_t len = b.size() - off;
        auto pseudo_sum = [&](uint8_t proto) -> uint32_t {
            uint32_t s = 0;
            if (ip_index < 0) return s;
            const Layer& ip = layers[static_cast<size_t>(ip_index)];
            const size_t alen = ip.kind == Kind::Ipv4 ? 4 : 16;
            s = sum16(ip.src.data(), alen, s);
            s = sum16(ip.dst.data(), alen, s);
            s += proto;
            s += static_cast<uint32_t>(len & 0xffff) + static_cast<uint32_t>(len >> 16);
            return s;
        };
        switch (l.kind) {
            case Kind::Udp:
                put16(b, off + 4, static_cast<uint32_t>(len));
                [[fallthrough]];
            case Kind::Tcp:
            case Kind::Icmpv6: {
                const uint8_t proto = l.kind == Kind::Tcp ? 6 : l.kind == Kind::Udp ? 17 : 58;
                const size_t csum_at = off + (l.kind == Kind::Tcp   ? 16
                                              : l.kind == Kind::Udp ? 6
                                                                    : 2);
                uint16_t c = inet_checksum(b.data() + off, len, pseudo_sum(proto));
                if (l.kind == Kind::Udp && c == 0) c = 0xffff;  // 0 means "no checksum"
                put16(b, csum_at, c);
                break;
            }
            case Kind::Icmp:
                put16(b, off + 2, inet_checksum(b.data() + off, len));
                break;
            default:
                break;
        }
    }
    for (size_t i = layers.size(); i-- > 0;) {
        const size_t off = offs[i];
        const size_t len = b.size() - off;
        if (layers[i].kind == Kind::Ipv4) {
            put16(b, off + 2, static_cast<uint32_t>(len));
            put16(b, off + 10, 0);
            put16(b, off + 10, inet_checksum(b.data() + off, 20));
        } else if (layers[i].kind == Kind::Ipv6) {
            put16(b, off + 4, static_cast<uint32_t>(len - 40));
        }
    }

    for (const auto& m : mutations_) m.fn(b);
    return b;
}

std::string Packet::summary() const {
    std::string s;
    if (layers_.empty() || layers_.front().kind != Kind::Eth) s = "eth";
    for (const auto& l : layers_) {
        if (!s.empty()) s += " / ";
        s += l.text;
    }
    if (ethertype_override_ >= 0) {
        char t[32];
        std::snprintf(t, sizeof t, " (ethertype 0x%04x)", ethertype_override_);
        s += t;
    }
    for (const auto& m : mutations_) s += " / " + m.what;
    s += " (" + std::to_string(bytes().size()) + " bytes)";
    return s;
}

std::string Packet::describe() const { return summary() + "\n" + hexdump(bytes()); }

std::string hexdump(const Bytes& bytes) {
    std::ostringstream out;
    char buf[24];
    for (size_t i = 0; i < bytes.size(); i += 16) {
        std::snprintf(buf, sizeof buf, "%04zx ", i);
        out << buf;
        std::string ascii;
        for (size_t j = i; j < i + 16; ++j) {
            if (j < bytes.size()) {
                std::snprintf(buf, sizeof buf, " %02x", bytes[j]);
                out << buf;
                ascii += (bytes[j] >= 0x20 && bytes[j] < 0x7f) ? char(bytes[j]) : '.';
            } else {
                out << "   ";
            }
            if (j == i + 7) out << ' ';
        }
        out << "  " << ascii << '\n';
    }
    return out.str();
}

}  // namespace pbpf::test
