// Value syntax of PDL. Addresses go through inet_pton, which is strict (no octal or
// shortened IPv4 forms), so that "010.1" never silently means something else.
#include "pdl-compiler/values.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <vector>

#include "pdl-compiler/compiler.h"

namespace pdl {

namespace {

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

// Decimal 0..limit; false on overflow (any digit count, no wraparound).
bool parse_uint(std::string_view s, unsigned long limit, unsigned long& out) {
    if (!all_digits(s)) return false;
    unsigned long v = 0;
    for (char c : s) {
        const auto d = static_cast<unsigned long>(c - '0');
        if (v > (limit - d) / 10 || d > limit) return false;  // v * 10 + d > limit
        v = v * 10 + d;
    }
    out = v;
    return true;
}

}  // namespace

std::optional<uint64_t> parse_number(std::string_view word, uint64_t lo, uint64_t hi) {
    unsigned long v = 0;
    if (!parse_uint(word, hi, v) || v < lo) return std::nullopt;
    return v;
}

std::optional<PortParse> parse_port_item(std::string_view word) {
    auto dash = word.find('-');
    std::string_view lo = word.substr(0, dash);
    std::string_view hi = dash == std::string_view::npos ? lo : word.substr(dash + 1);
    if (!all_digits(lo) || !all_digits(hi)) return std::nullopt;
    PortParse p;
    unsigned long a = 0, b = 0;
    if (!parse_uint(lo, 65535, a)) {
        p.error = "port " + std::string(lo) + " is out of range; expected 0-65535";
        return p;
    }
    if (!parse_uint(hi, 65535, b)) {
        p.error = "port " + std::string(hi) + " is out of range; expected 0-65535";
        return p;
    }
    if (a > b) {
        p.error = "port range " + std::string(word) + " is empty (" + std::string(lo) + " > " +
                  std::string(hi) + "); did you mean " + std::string(hi) + "-" + std::string(lo) +
                  "?";
        return p;
    }
    p.range = {static_cast<uint16_t>(a), static_cast<uint16_t>(b)};
    return p;
}

std::optional<CidrParse> parse_cidr(std::string_view word) {
    auto slash = word.find('/');
    std::string_view addr = word.substr(0, slash);
    bool v6 = addr.find(':') != std::string_view::npos;
    bool v4_shape = !v6 && !addr.empty() && addr.find('.') != std::string_view::npos &&
                    addr.find_first_not_of("0123456789.") == std::string_view::npos;
    if (!v6 && !v4_shape) return std::nullopt;

    CidrParse p;
    p.cidr.family = v6 ? ir::Family::V6 : ir::Family::V4;
    unsigned max_len = v6 ? 128 : 32;
    // inet_pton wants a C string; no address it accepts is this long (45 bytes at most).
    char text[64];
    bool fits = addr.size() < sizeof text;
    if (fits) {
        std::memcpy(text, addr.data(), addr.size());
        text[addr.size()] = '\0';
    }
    if (!fits || inet_pton(v6 ? AF_INET6 : AF_INET, text, p.cidr.addr.data()) != 1) {
        p.error =
            "invalid " + std::string(v6 ? "IPv6" : "IPv4") + " address '" + std::string(addr) + "'";
        return p;
    }
    unsigned long len = max_len;
    if (slash != std::string_view::npos) {
        std::string_view len_text = word.substr(slash + 1);
        if (!all_digits(len_text)) {
            p.error = "invalid prefix length '" + std::string(len_text) + "' in '" +
                      std::string(word) + "'; expected a number 0-" + std::to_string(max_len);
            return p;
        }
        if (!parse_uint(len_text, max_len, len)) {
            p.error = "prefix length /" + std::string(len_text) + " is out of range for " +
                      (v6 ? "IPv6" : "IPv4") + " (0-" + std::to_string(max_len) + ")";
            return p;
        }
    }
    p.cidr.prefix_len = static_cast<uint8_t>(len);
    ir::Cidr masked = p.cidr;
    // Clear the host bits: those of a partial byte, then whole bytes.
    if (len % 8) masked.addr[len / 8] &= static_cast<uint8_t>(0xFF00u >> (len % 8));
    for (size_t byte = (len + 7) / 8; byte < max_len / 8; ++byte) masked.addr[byte] = 0;
    if (masked.addr != p.cidr.addr) {
        p.error = "CIDR " + std::string(word) + " has host bits set; did you mean " +
                  format_address(masked.family, masked.addr.data()) + "/" + std::to_string(len) +
                  "?";
        return p;
    }
    return p;
}

namespace {

// Formatters that write into a buffer, so that texts built in bulk append each value at once.
char* put_number(char* at, unsigned n) { return std::to_chars(at, at + 10, n).ptr; }

char* put_ipv4(char* at, const uint8_t* addr) {
    for (int i = 0; i < 4; ++i) {
        if (i) *at++ = '.';
        at = put_number(at, addr[i]);
    }
    return at;
}

// What inet_ntop prints (glibc's inet_ntop6, RFC 5952 but for IPv4-mapped and -compatible
// addresses), without its sprintf per group: every rule's text holds its addresses, and
// inet_ntop was most of the semantic pass.
char* put_ipv6(char* at, const uint8_t* addr) {
    unsigned words[8];
    for (int i = 0; i < 8; ++i) words[i] = (unsigned{addr[2 * i]} << 8) | addr[2 * i + 1];
    // The first longest run of two or more zero words becomes "::".
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        if (words[i] != 0) {
            ++i;
            continue;
        }
        int len = 0;
        while (i + len < 8 && words[i + len] == 0) ++len;
        if (len > best_len) {
            best = i;
            best_len = len;
        }
        i += len;
    }
    if (best_len < 2) best = -1;
    for (int i = 0; i < 8; ++i) {
        if (best != -1 && i >= best && i < best + best_len) {
            if (i == best) *at++ = ':';
            continue;
        }
        if (i != 0) *at++ = ':';
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)))
            return put_ipv4(at, addr + 12);
        at = std::to_chars(at, at + 4, words[i], 16).ptr;
    }
    if (best != -1 && best + best_len == 8) *at++ = ':';
    return at;
}

// Room for the longest address and prefix length: "ffff:...:255.255.255.255/128".
constexpr size_t kMaxCidrText = INET6_ADDRSTRLEN + 4;

char* put_address(char* at, ir::Family family, const uint8_t* addr) {
    return family == ir::Family::V4 ? put_ipv4(at, addr) : put_ipv6(at, addr);
}

}  // namespace

std::string format_address(ir::Family family, const uint8_t* addr) {
    char text[kMaxCidrText];
    return std::string(text, put_address(text, family, addr));
}

void append_cidr(std::string& out, const ir::Cidr& cidr) {
    char text[kMaxCidrText];
    char* end = put_address(text, cidr.family, cidr.addr.data());
    if (cidr.prefix_len != (cidr.family == ir::Family::V6 ? 128 : 32)) {
        *end++ = '/';
        end = put_number(end, cidr.prefix_len);
    }
    out.append(text, end);
}

std::string format_cidr(const ir::Cidr& cidr) {
    std::string s;
    append_cidr(s, cidr);
    return s;
}

void append_port_range(std::string& out, const ir::PortRange& r) {
    char text[16];
    char* end = put_number(text, r.lo);
    if (r.lo != r.hi) {
        *end++ = '-';
        end = put_number(end, r.hi);
    }
    out.append(text, end);
}

std::string format_port_range(const ir::PortRange& r) {
    std::string s;
    append_port_range(s, r);
    return s;
}

bool cidr_contains(const ir::Cidr& outer, const ir::Cidr& inner) {
    if (outer.family != inner.family || outer.prefix_len > inner.prefix_len) return false;
    // Whole bytes of the prefix, then the bits of a partial one (lint calls this for every
    // pair of rules it compares).
    const unsigned bytes = outer.prefix_len / 8u, bits = outer.prefix_len % 8u;
    if (std::memcmp(outer.addr.data(), inner.addr.data(), bytes) != 0) return false;
    if (bits == 0) return true;
    const auto mask = static_cast<uint8_t>(0xFF00u >> bits);
    return (outer.addr[bytes] & mask) == (inner.addr[bytes] & mask);
}

namespace {

struct Unit {
    const char* name;
    uint64_t factor;
};

// Splits "200mbit" into 200 and "mbit". The number must be a plain decimal.
bool split_number(const std::string& word, uint64_t& number, std::string& unit) {
    size_t i = 0;
    while (i < word.size() && word[i] >= '0' && word[i] <= '9') ++i;
    if (i == 0 || i > 18) return false;  // no digits, or too many to be sane
    number = std::stoull(word.substr(0, i));
    unit = word.substr(i);
    return true;
}

std::string unit_list(const std::vector<Unit>& units) {
    std::string s;
    for (size_t i = 0; i < units.size(); ++i)
        s += std::string(i == 0 ? "" : i + 1 == units.size() ? " or " : ", ") + units[i].name;
    return s;
}

Parsed<uint64_t> with_unit(const std::string& word, const std::vector<Unit>& units,
                           const std::string& what, const std::string& example) {
    Parsed<uint64_t> p;
    uint64_t n = 0;
    std::string unit;
    if (!split_number(word, n, unit)) {
        p.error = "invalid " + what + " '" + word + "'; expected a number with a unit (" +
                  unit_list(units) + "), e.g. " + example;
        return p;
    }
    if (unit.empty()) {
        p.error = what + " '" + word + "' needs a unit (" + unit_list(units) + "), e.g. " + example;
        return p;
    }
    for (const auto& u : units) {
        if (unit != u.name) continue;
        if (n == 0) {
            p.error = what + " must be greater than zero";
            return p;
        }
        if (n > UINT64_MAX / u.factor) {
            p.error = what + " '" + word + "' is too large";
            return p;
        }
        p.value = n * u.factor;
        return p;
    }
    p.error =
        "unknown unit '" + unit + "' in " + what + " '" + word + "'; expected " + unit_list(units);
    return p;
}

const std::vector<Unit> kRateUnits = {{"bit", 1},
                                      {"kbit", 1000},
                                      {"mbit", 1000'000},
                                      {"gbit", 1000'000'000},
                                      {"tbit", 1000'000'000'000}};
const std::vector<Unit> kSizeUnits = {
    {"b", 1}, {"kb", 1u << 10}, {"mb", 1u << 20}, {"gb", 1u << 30}};
const std::vector<Unit> kDurationUnits = {
    {"ns", 1},           {"us", 1000},          {"ms", 1000'000},
    {"s", 1000'000'000}, {"m", 60'000'000'000}, {"h", 3600'000'000'000}};

std::string format_with(uint64_t v, const std::vector<Unit>& units) {
    for (size_t i = units.size(); i-- > 0;)
        if (v % units[i].factor == 0) return std::to_string(v / units[i].factor) + units[i].name;
    return std::to_string(v) + units[0].name;
}

}  // namespace

Parsed<uint64_t> parse_rate(std::string_view text) {
    const std::string word(text);
    // tc's 'bps' means bytes per second and surprises everyone; say so instead of guessing.
    if (word.size() > 3 && word.compare(word.size() - 3, 3, "bps") == 0) {
        Parsed<uint64_t> p;
        p.error = "ambiguous rate '" + word +
                  "'; PDL rates are bits per second: write bit, kbit, mbit, gbit or tbit "
                  "(e.g. 200mbit)";
        return p;
    }
    return with_unit(word, kRateUnits, "rate", "200mbit");
}

Parsed<uint64_t> parse_size(std::string_view word) {
    return with_unit(std::string(word), kSizeUnits, "size", "256kb");
}

Parsed<uint64_t> parse_duration(std::string_view word) {
    return with_unit(std::string(word), kDurationUnits, "duration", "60s");
}

Parsed<EventRate> parse_event_rate(std::string_view text) {
    const std::string word(text);
    Parsed<EventRate> p;
    auto slash = word.find('/');
    std::string count = word.substr(0, slash);
    unsigned long n = 0;
    if (slash == std::string::npos || !all_digits(count)) {
        p.error = "invalid event rate '" + word + "'; expected COUNT/WINDOW, e.g. 2000/s or 50/10s";
        return p;
    }
    if (!parse_uint(count, UINT32_MAX, n) || n == 0) {
        p.error = "event count " + count + " is out of range; expected 1-4294967295";
        return p;
    }
    std::string window = word.substr(slash + 1);
    // "/s" means "/1s".
    if (!window.empty() && (window[0] < '0' || window[0] > '9')) window = "1" + window;
    auto w = parse_duration(window);
    if (!w.ok()) {
        p.error = "invalid window in event rate '" + word + "'; expected a duration after '/' " +
                  "(e.g. 2000/s or 50/10s)";
        return p;
    }
    p.value = {n, w.value};
    return p;
}

Parsed<ir::Cidr> parse_host(std::string_view text) {
    const std::string word(text);
    Parsed<ir::Cidr> p;
    auto c = parse_cidr(word);
    if (!c) {
        p.error = "expected an IPv4 or IPv6 address, found '" + word + "'";
    } else if (!c->error.empty()) {
        p.error = c->error;
    } else if (c->cidr.prefix_len != (c->cidr.family == ir::Family::V6 ? 128 : 32)) {
        p.error = "expected a single address, found the network " + word;
    } else {
        p.value = c->cidr;
    }
    return p;
}

Parsed<Endpoint> parse_endpoint(std::string_view text) {
    const std::string word(text);
    Parsed<Endpoint> p;
    std::string addr, port = word;
    if (!word.empty() && word[0] == '[') {
        auto close = word.find(']');
        if (close == std::string::npos || close + 1 >= word.size() || word[close + 1] != ':') {
            p.error = "invalid endpoint '" + word + "'; expected [IPv6]:PORT, e.g. [fd00::1]:53";
            return p;
        }
        addr = word.substr(1, close - 1);
        port = word.substr(close + 2);
        if (addr.find(':') == std::string::npos) {
            p.error = "brackets are for IPv6 addresses; write an IPv4 endpoint as 10.0.0.1:53";
            return p;
        }
    } else if (auto colon = word.find(':'); colon != std::string::npos) {
        if (word.find(':', colon + 1) != std::string::npos) {
            p.error = "write an IPv6 address with a port in brackets, e.g. [fd00::1]:53";
            return p;
        }
        addr = word.substr(0, colon);
        port = word.substr(colon + 1);
    }
    unsigned long n = 0;
    if (!all_digits(port)) {
        p.error =
            "invalid endpoint '" + word + "'; expected [ADDRESS:]PORT, e.g. 10.0.0.1:53 or 53";
        return p;
    }
    if (!parse_uint(port, 65535, n) || n == 0) {
        p.error = "port " + port + " is out of range; expected 1-65535";
        return p;
    }
    p.value.port = static_cast<uint16_t>(n);
    if (!addr.empty()) {
        auto h = parse_host(addr);
        if (!h.ok()) {
            p.error = h.error;
            return p;
        }
        p.value.addr = h.value;
    }
    return p;
}

std::string format_endpoint(const std::optional<ir::Cidr>& addr, uint16_t port) {
    if (!addr) return std::to_string(port);
    std::string a = format_address(addr->family, addr->addr.data());
    if (addr->family == ir::Family::V6) a = "[" + a + "]";
    return a + ":" + std::to_string(port);
}

std::string format_rate(uint64_t bps) { return format_with(bps, kRateUnits); }
std::string format_size(uint64_t bytes) { return format_with(bytes, kSizeUnits); }
std::string format_duration(uint64_t ns) { return format_with(ns, kDurationUnits); }

}  // namespace pdl
