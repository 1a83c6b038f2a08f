// Parsing and printing of PDL values: ports, port ranges, addresses and CIDRs.
// Shared by the semantic pass, the rule describer and the tests.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pdl-compiler/ir.h"

namespace pdl {

// "443" or "8000-8099". nullopt when the word is not shaped like a port (no digits);
// otherwise `error` is set when it is shaped like one but invalid.
struct PortParse {
    ir::PortRange range;
    std::string error;  // empty: ok
};
std::optional<PortParse> parse_port_item(std::string_view word);

// "10.0.0.1", "10.0.0.0/8", "2001:db8::/32". nullopt when the word is not shaped like an
// address at all; otherwise `error` explains what is wrong (host bits set, prefix out of
// range, ...).
struct CidrParse {
    ir::Cidr cidr;
    std::string error;  // empty: ok
};
std::optional<CidrParse> parse_cidr(std::string_view word);

// Address only ("10.0.0.0", "2001:db8::").
std::string format_address(ir::Family family, const uint8_t* addr);
// "10.0.0.0/8"; host routes (/32, /128) print as the bare address.
std::string format_cidr(const ir::Cidr& cidr);
// "443" or "8000-8099".
std::string format_port_range(const ir::PortRange& r);
// format_cidr() and format_port_range() appended to `out`, for texts built in bulk.
void append_cidr(std::string& out, const ir::Cidr& cidr);
void append_port_range(std::string& out, const ir::PortRange& r);
// Does `outer` contain every address of `inner`? (Same family required.)
bool cidr_contains(const ir::Cidr& outer, const ir::Cidr& inner);

// A plain decimal number in [lo, hi] (no sign, no unit, no overflow); nullopt otherwise.
std::optional<uint64_t> parse_number(std::string_view word, uint64_t lo, uint64_t hi);

// Values with units. Each returns the value, or an error message that says what was
// expected; `what` names the value in messages ("rate", "burst", "block time"...).
template <class T>
struct Parsed {
    T value{};
    std::string error;  // empty: ok
    bool ok() const { return error.empty(); }
};
// Bits per second, SI multiples as tc(8) reads them: 10kbit, 200mbit, 1gbit, 1tbit, 500bit.
Parsed<uint64_t> parse_rate(std::string_view word);
// Bytes, binary multiples as tc(8) reads them: 64kb (65536), 1mb, 1gb, 1500b.
Parsed<uint64_t> parse_size(std::string_view word);
// Nanoseconds: 500us, 5ms, 2s, 1m, 1h, 100ns. Always positive.
Parsed<uint64_t> parse_duration(std::string_view word);
// Events per window: 2000/s, 50/10s, 100/m. count >= 1, fits 32 bits.
struct EventRate {
    uint64_t count = 0;
    uint64_t window_ns = 0;
};
Parsed<EventRate> parse_event_rate(std::string_view word);
// A single address (IPv4 or IPv6, no prefix, or a full-length one), as a host CIDR.
Parsed<ir::Cidr> parse_host(std::string_view word);
// [ADDRESS:]PORT, IPv6 in brackets ([fd00::1]:53). Port 1-65535.
struct Endpoint {
    std::optional<ir::Cidr> addr;
    uint16_t port = 0;
};
Parsed<Endpoint> parse_endpoint(std::string_view word);
// "[fd00::1]:53", "10.0.0.1:53", "53".
std::string format_endpoint(const std::optional<ir::Cidr>& addr, uint16_t port);
// Canonical renderings used in messages and JSON: "200mbit", "256kb", "60s", "50/10s".
std::string format_rate(uint64_t bps);
std::string format_size(uint64_t bytes);
std::string format_duration(uint64_t ns);

}  // namespace pdl
