// Value syntax of PDL. Addresses go through inet_pton, which is strict (no octal or
// shortened IPv4 forms), so that "010.1" never silently means something else.
#include "pdl-compiler/values.h"

#include <arpa/inet.h>

#include <cstring>
#include <vector>

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

Parsed<uint64_t> parse_rate(const std::string& word) {
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

Parsed<uint64_t> parse_size(const std::string& word) {
    return with_unit(word, kSizeUnits, "size", "256kb");
}

Parsed<uint64_t> parse_duration(const std::string& word) {
    return with_unit(word, kDurationUnits, "duration", "60s");
}

Parsed<EventRate> parse_event_rate(const std::string& word) {
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

Parsed<ir::Cidr> parse_host(const std::string& word) {
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

Parsed<Endpoint> parse_endpoint(const std::string& word) {
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
