// Value syntax of PDL. Addresses go through inet_pton, which is strict (no octal or
// shortened IPv4 forms), so that "010.1" never silently means something else.
#include "pdl-compiler/values.h"

#include <arpa/inet.h>

#include <cstring>

#include "pdl-compiler/compiler.h"

namespace pdl {

namespace {

bool all_digits(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// Decimal 0..limit; false on overflow (any digit count, no wraparound).
bool parse_uint(const std::string& s, unsigned long limit, unsigned long& out) {
    if (!all_digits(s)) return false;
    unsigned long v = 0;
    for (char c : s) {
        v = v * 10 + static_cast<unsigned long>(c - '0');
        if (v > limit) return false;
    }
    out = v;
    return true;
}

}  // namespace

std::optional<PortParse> parse_port_item(const std::string& word) {
    auto dash = word.find('-');
    std::string lo = word.substr(0, dash);
    std::string hi = dash == std::string::npos ? lo : word.substr(dash + 1);
    if (!all_digits(lo) || !all_digits(hi)) return std::nullopt;
    PortParse p;
    unsigned long a = 0, b = 0;
    if (!parse_uint(lo, 65535, a)) {
        p.error = "port " + lo + " is out of range; expected 0-65535";
        return p;
    }
    if (!parse_uint(hi, 65535, b)) {
        p.error = "port " + hi + " is out of range; expected 0-65535";
        return p;
    }
    if (a > b) {
        p.error = "port range " + word + " is empty (" + lo + " > " + hi + "); did you mean " + hi +
                  "-" + lo + "?";
        return p;
    }
    p.range = {static_cast<uint16_t>(a), static_cast<uint16_t>(b)};
    return p;
}

std::optional<CidrParse> parse_cidr(const std::string& word) {
    auto slash = word.find('/');
    std::string addr = word.substr(0, slash);
    bool v6 = addr.find(':') != std::string::npos;
    bool v4_shape = !v6 && !addr.empty() && addr.find('.') != std::string::npos &&
                    addr.find_first_not_of("0123456789.") == std::string::npos;
    if (!v6 && !v4_shape) return std::nullopt;

    CidrParse p;
    p.cidr.family = v6 ? ir::Family::V6 : ir::Family::V4;
    unsigned max_len = v6 ? 128 : 32;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), p.cidr.addr.data()) != 1) {
        p.error = "invalid " + std::string(v6 ? "IPv6" : "IPv4") + " address '" + addr + "'";
        return p;
    }
    unsigned long len = max_len;
    if (slash != std::string::npos) {
        std::string len_text = word.substr(slash + 1);
        if (!all_digits(len_text)) {
            p.error = "invalid prefix length '" + len_text + "' in '" + word +
                      "'; expected a number 0-" + std::to_string(max_len);
            return p;
        }
        if (!parse_uint(len_text, max_len, len)) {
            p.error = "prefix length /" + len_text + " is out of range for " +
                      (v6 ? "IPv6" : "IPv4") + " (0-" + std::to_string(max_len) + ")";
            return p;
        }
    }
    p.cidr.prefix_len = static_cast<uint8_t>(len);
    ir::Cidr masked = p.cidr;
    for (unsigned bit = static_cast<unsigned>(len); bit < max_len; ++bit)
        masked.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    if (masked.addr != p.cidr.addr) {
        p.error = "CIDR " + word + " has host bits set; did you mean " +
                  format_address(masked.family, masked.addr.data()) + "/" + std::to_string(len) +
                  "?";
        return p;
    }
    return p;
}

std::string format_address(ir::Family family, const uint8_t* addr) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == ir::Family::V6 ? AF_INET6 : AF_INET, addr, buf, sizeof buf);
    return buf;
}

std::string format_cidr(const ir::Cidr& cidr) {
    unsigned max_len = cidr.family == ir::Family::V6 ? 128 : 32;
    std::string s = format_address(cidr.family, cidr.addr.data());
    if (cidr.prefix_len != max_len) s += "/" + std::to_string(cidr.prefix_len);
    return s;
}

std::string format_port_range(const ir::PortRange& r) {
    if (r.lo == r.hi) return std::to_string(r.lo);
    return std::to_string(r.lo) + "-" + std::to_string(r.hi);
}

bool cidr_contains(const ir::Cidr& outer, const ir::Cidr& inner) {
    if (outer.family != inner.family || outer.prefix_len > inner.prefix_len) return false;
    for (unsigned bit = 0; bit < outer.prefix_len; ++bit) {
        uint8_t m = static_cast<uint8_t>(0x80u >> (bit % 8));
        if ((outer.addr[bit / 8] & m) != (inner.addr[bit / 8] & m)) return false;
    }
    return true;
}

}  // namespace pdl
