// Parsing and printing of PDL values: ports, port ranges, addresses and CIDRs.
// Shared by the semantic pass, the rule describer and the tests.
#pragma once

#include <optional>
#include <string>

#include "pdl-compiler/ir.h"

namespace pdl {

// "443" or "8000-8099". nullopt when the word is not shaped like a port (no digits);
// otherwise `error` is set when it is shaped like one but invalid.
struct PortParse {
    ir::PortRange range;
    std::string error;  // empty: ok
};
std::optional<PortParse> parse_port_item(const std::string& word);

// "10.0.0.1", "10.0.0.0/8", "2001:db8::/32". nullopt when the word is not shaped like an
// address at all; otherwise `error` explains what is wrong (host bits set, prefix out of
// range, ...).
struct CidrParse {
    ir::Cidr cidr;
    std::string error;  // empty: ok
};
std::optional<CidrParse> parse_cidr(const std::string& word);

// Address only ("10.0.0.0", "2001:db8::").
std::string format_address(ir::Family family, const uint8_t* addr);
// "10.0.0.0/8"; host routes (/32, /128) print as the bare address.
std::string format_cidr(const ir::Cidr& cidr);
// "443" or "8000-8099".
std::string format_port_range(const ir::PortRange& r);
// Does `outer` contain every address of `inner`? (Same family required.)
bool cidr_contains(const ir::Cidr& outer, const ir::Cidr& inner);

}  // namespace pdl
