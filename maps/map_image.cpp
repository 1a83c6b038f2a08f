// The JSON of MapImage: the readable, deterministic rendering that golden tests,
// `pdl compile` and the agent API show, and its exact inverse. (The canonical order of
// entries is in policy_entry.cpp.)
#include "maps/map_image.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <stdexcept>

namespace pbpf {

namespace {

[[noreturn]] void bad(const std::string& what) {
    throw std::runtime_error("invalid persona image JSON: " + what);
}

const char* verdict_name(uint8_t v) {
    return v == PBPF_VERDICT_DENY ? "deny" : v == PBPF_VERDICT_ALLOW ? "allow" : "invalid";
}

const char* proto_name(uint8_t p) {
    switch (p) {
        case PBPF_PROTO_TCP:
            return "tcp";
        case PBPF_PROTO_UDP:
            return "udp";
        case PBPF_PROTO_ICMP:
            return "icmp";
        case PBPF_PROTO_ICMPV6:
            return "icmpv6";
        case PBPF_PROTO_OTHER:
            return "other";
    }
    return "invalid";
}

uint32_t read_be32(const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

// "8000-8063", "443", or "any" for the whole port space.
std::string port_block(const pbpf_policy_key& k) {
    unsigned plen = k.prefixlen - PBPF_POLICY_HEADER_BITS - PBPF_POLICY_CLASS_BITS;
    if (plen == 0) return "any";
    uint32_t lo = uint32_t{k.data[4]} << 8 | k.data[5];
    uint32_t hi = lo + (1u << (16 - plen)) - 1;
    return lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi);
}

const nlohmann::json& field(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) bad(std::string("missing \"") + key + "\" in " + j.dump());
    return *it;
}

std::string str_field(const nlohmann::json& j, const char* key) {
    const auto& v = field(j, key);
    if (!v.is_string()) bad(std::string("\"") + key + "\" must be a string in " + j.dump());
    return v.get<std::string>();
}

uint32_t u32_field(const nlohmann::json& j, const char* key) {
    const auto& v = field(j, key);
    if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
        bad(std::string("\"") + key + "\" must be an unsigned 32-bit number in " + j.dump());
    return v.get<uint32_t>();
}

bool bool_field(const nlohmann::json& j, const char* key) {
    const auto& v = field(j, key);
    if (!v.is_boolean()) bad(std::string("\"") + key + "\" must be true or false in " + j.dump());
    return v.get<bool>();
}

// Rejects keys the writer never produces: a typo in hand-written JSON must not be
// silently ignored.
void only_keys(const nlohmann::json& j, std::initializer_list<const char*> keys) {
    if (!j.is_object()) bad("expected an object, found " + j.dump());
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool known = false;
        for (const char* k : keys) known = known || it.key() == k;
        if (!known) bad("unexpected key \"" + it.key() + "\" in " + j.dump());
    }
}

pbpf_verdict verdict_from(const std::string& s, const nlohmann::json& j) {
    if (s == "allow") return PBPF_VERDICT_ALLOW;
    if (s == "deny") return PBPF_VERDICT_DENY;
    bad("verdict must be \"allow\" or \"deny\", found \"" + s + "\" in " + j.dump());
}

bool parse_u16(const std::string& s, uint32_t& out) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
        return false;
    out = static_cast<uint32_t>(std::stoul(s));
    return out <= 65535;
}

// "ipv4"/"ipv6" and "ADDRESS/LENGTH" of an address-keyed entry; host bits must be zero.
struct Prefix {
    pbpf_family family;
    uint8_t addr[16] = {};
    unsigned len = 0;
};

Prefix prefix_from_json(const nlohmann::json& j) {
    Prefix out;
    std::string family = str_field(j, "family");
    if (family != "ipv4" && family != "ipv6")
        bad("\"family\" must be \"ipv4\" or \"ipv6\" in " + j.dump());
    bool v6 = family == "ipv6";
    out.family = v6 ? PBPF_FAMILY_IPV6 : PBPF_FAMILY_IPV4;
    std::string prefix = str_field(j, "prefix");
    auto slash = prefix.find('/');
    if (slash == std::string::npos) bad("\"prefix\" must be ADDRESS/LENGTH in " + j.dump());
    if (inet_pton(v6 ? AF_INET6 : AF_INET, prefix.substr(0, slash).c_str(), out.addr) != 1)
        bad("bad " + family + " address in \"prefix\" of " + j.dump());
    std::string len_text = prefix.substr(slash + 1);
    uint32_t len = 0;
    if (!parse_u16(len_text, len) || len > (v6 ? 128u : 32u))
        bad("bad prefix length in \"prefix\" of " + j.dump());
    out.len = len;
    return out;
}

void check_no_host_bits(const PolicyEntry& e, const Prefix& p, const nlohmann::json& j) {
    if (std::memcmp(e.key.data, p.addr, 16) != 0)
        bad("\"prefix\" has host bits set in " + j.dump());
}

PolicyEntry entry_from_json(const nlohmann::json& j) {
    if (!j.is_object()) bad("entry must be an object, found " + j.dump());
    std::string kind = str_field(j, "kind");
    if (kind == "addr" || kind == "enc-addr") {
        only_keys(j, {"kind", "dir", "family", "prefix", "class"});
        std::string dir = str_field(j, "dir");
        if (dir != "ingress" && dir != "egress")
            bad("\"dir\" must be \"ingress\" or \"egress\" in " + j.dump());
        Prefix p = prefix_from_json(j);
        PolicyEntry e = make_addr_entry(dir == "egress" ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS,
                                        p.family, p.addr, p.len, u32_field(j, "class"),
                                        kind == "addr" ? PBPF_ENTRY_ADDR : PBPF_ENTRY_ENC_ADDR);
        check_no_host_bits(e, p, j);
        return e;
    }
    if (kind == "sov-exempt") {
        only_keys(j, {"kind", "family", "prefix"});
        Prefix p = prefix_from_json(j);
        PolicyEntry e = make_sov_exempt_entry(p.family, p.addr, p.len);
        check_no_host_bits(e, p, j);
        return e;
    }
    if (kind == "port" || kind == "enc-port") {
        only_keys(j, {"kind", "class", "proto", "ports", "verdict", "rule", "audit"});
        std::string proto = str_field(j, "proto");
        pbpf_proto p;
        if (proto == "tcp")
            p = PBPF_PROTO_TCP;
        else if (proto == "udp")
            p = PBPF_PROTO_UDP;
        else if (proto == "icmp")
            p = PBPF_PROTO_ICMP;
        else if (proto == "icmpv6")
            p = PBPF_PROTO_ICMPV6;
        else if (proto == "other")
            p = PBPF_PROTO_OTHER;
        else
            bad("\"proto\" must be tcp, udp, icmp, icmpv6 or other in " + j.dump());
        std::string ports = str_field(j, "ports");
        uint32_t lo = 0, hi = 65535;
        if (ports != "any") {
            auto dash = ports.find('-');
            bool ok = parse_u16(ports.substr(0, dash), lo);
            hi = lo;
            if (ok && dash != std::string::npos) ok = parse_u16(ports.substr(dash + 1), hi);
            if (!ok || hi < lo) bad("\"ports\" must be \"any\", PORT or LO-HI in " + j.dump());
        }
        // Only aligned power-of-two blocks are expressible as one LPM key.
        uint32_t size = hi - lo + 1;
        unsigned plen = 16;
        while ((1u << (16 - plen)) < size) --plen;
        if ((1u << (16 - plen)) != size || lo % size != 0 || (ports != "any" && plen == 0))
            bad("\"ports\" " + ports + " is not an aligned power-of-two block in " + j.dump());
        return make_port_entry(u32_field(j, "class"), p, static_cast<uint16_t>(lo), plen,
                               verdict_from(str_field(j, "verdict"), j), u32_field(j, "rule"),
                               bool_field(j, "audit"),
                               kind == "port" ? PBPF_ENTRY_PORT : PBPF_ENTRY_ENC_PORT);
    }
    bad("\"kind\" must be \"addr\", \"port\", \"enc-addr\", \"enc-port\" or \"sov-exempt\" in " +
        j.dump());
}

uint64_t u64_field(const nlohmann::json& j, const char* key) {
    const auto& v = field(j, key);
    if (!v.is_number_unsigned())
        bad(std::string("\"") + key + "\" must be an unsigned 64-bit number in " + j.dump());
    return v.get<uint64_t>();
}

// For values whose zero means "unset": the writer omits them, so a zero would not
// survive a round trip.
uint64_t positive_u64_field(const nlohmann::json& j, const char* key) {
    uint64_t v = u64_field(j, key);
    if (v == 0)
        bad(std::string("\"") + key + "\" must be positive (omit it when unset) in " + j.dump());
    return v;
}

const nlohmann::json& object_field(const nlohmann::json& j, const char* key) {
    const auto& v = field(j, key);
    if (!v.is_object() || v.empty())
        bad(std::string("\"") + key + "\" must be a non-empty object (omit it when unset) in " +
            j.dump());
    return v;
}

const nlohmann::json& array_field(const nlohmann::json& j, const char* key, size_t max) {
    const auto& v = field(j, key);
    if (!v.is_array() || v.empty() || v.size() > max)
        bad(std::string("\"") + key + "\" must be an array of 1 to " + std::to_string(max) +
            " elements in " + j.dump());
    return v;
}

// ---- addresses and endpoints ----

std::string address_text(uint8_t family, const uint8_t* addr) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == PBPF_FAMILY_IPV6 ? AF_INET6 : AF_INET, addr, buf, sizeof buf);
    return buf;
}

// "10.0.0.1" or "fd00::1" into family + 16 bytes; false when neither.
bool parse_address(const std::string& s, uint8_t& family, uint8_t addr[16]) {
    std::memset(addr, 0, 16);
    if (inet_pton(AF_INET, s.c_str(), addr) == 1) {
        family = PBPF_FAMILY_IPV4;
        return true;
    }
    if (inet_pton(AF_INET6, s.c_str(), addr) == 1) {
        family = PBPF_FAMILY_IPV6;
        return true;
    }
    return false;
}

nlohmann::json address_json(const pbpf_addr& a) { return address_text(a.family, a.addr); }

pbpf_addr address_from_json(const nlohmann::json& v, const nlohmann::json& where) {
    pbpf_addr a;
    std::memset(&a, 0, sizeof a);
    if (!v.is_string() || !parse_address(v.get<std::string>(), a.family, a.addr))
        bad("expected an IPv4 or IPv6 address, found " + v.dump() + " in " + where.dump());
    return a;
}

// As PDL writes endpoints: "10.0.0.1:53", "[fd00::1]:53", or "53" without an address.
std::string endpoint_text(uint8_t family, const uint8_t* addr, __be16 port) {
    std::string p = std::to_string(ntohs(port));
    if (family == 0) return p;
    std::string a = address_text(family, addr);
    return family == PBPF_FAMILY_IPV6 ? "[" + a + "]:" + p : a + ":" + p;
}

void endpoint_from_json(const nlohmann::json& j, const char* key, uint8_t& family, uint8_t addr[16],
                        uint16_t& port) {
    std::string s = str_field(j, key);
    std::string host, port_text = s;
    family = 0;
    std::memset(addr, 0, 16);
    if (!s.empty() && s[0] == '[') {
        auto close = s.find("]:");
        if (close == std::string::npos) bad("bad endpoint \"" + s + "\" in " + j.dump());
        host = s.substr(1, close - 1);
        port_text = s.substr(close + 2);
        if (inet_pton(AF_INET6, host.c_str(), addr) != 1)
            bad("bad IPv6 address in endpoint \"" + s + "\" in " + j.dump());
        family = PBPF_FAMILY_IPV6;
    } else if (auto colon = s.find(':'); colon != std::string::npos) {
        host = s.substr(0, colon);
        port_text = s.substr(colon + 1);
        if (inet_pton(AF_INET, host.c_str(), addr) != 1)
            bad("bad IPv4 address in endpoint \"" + s + "\" in " + j.dump());
        family = PBPF_FAMILY_IPV4;
    }
    uint32_t p = 0;
    if (!parse_u16(port_text, p))
        bad("endpoint \"" + s + "\" must be [ADDRESS:]PORT in " + j.dump());
    port = static_cast<uint16_t>(p);
}

// ---- settings ----

struct Name {
    unsigned value;
    const char* name;
};

constexpr Name kTls[] = {
    {PBPF_TLS_1_0, "1.0"}, {PBPF_TLS_1_1, "1.1"}, {PBPF_TLS_1_2, "1.2"}, {PBPF_TLS_1_3, "1.3"}};
constexpr Name kPriorities[] = {{PBPF_PRIORITY_LOW, "low"},
                                {PBPF_PRIORITY_NORMAL, "normal"},
                                {PBPF_PRIORITY_HIGH, "high"},
                                {PBPF_PRIORITY_CRITICAL, "critical"}};

template <size_t N>
const char* name_of(const Name (&names)[N], unsigned value) {
    for (const auto& n : names)
        if (n.value == value) return n.name;
    return "invalid";
}

template <size_t N>
unsigned value_of(const Name (&names)[N], const nlohmann::json& j, const char* key) {
    std::string s = str_field(j, key);
    std::string choices;
    for (const auto& n : names) {
        if (s == n.name) return n.value;
        choices += std::string(choices.empty() ? "" : ", ") + "\"" + n.name + "\"";
    }
    bad(std::string("\"") + key + "\" must be one of " + choices + " in " + j.dump());
}

// One of two words for a flag: "allow"/"deny", "drop"/"log".
bool choice_field(const nlohmann::json& j, const char* key, const char* if_clear,
                  const char* if_set) {
    std::string s = str_field(j, key);
    if (s == if_clear) return false;
    if (s == if_set) return true;
    bad(std::string("\"") + key + "\" must be \"" + if_clear + "\" or \"" + if_set + "\" in " +
        j.dump());
}

nlohmann::json threshold_json(const pbpf_ids_threshold& t) {
    return {{"count", t.count}, {"window_ns", t.window_ns}, {"block_ns", t.block_ns}};
}

pbpf_ids_threshold threshold_from_json(const nlohmann::json& j) {
    only_keys(j, {"count", "window_ns", "block_ns"});
    pbpf_ids_threshold t;
    t.count = u64_field(j, "count");
    t.window_ns = u64_field(j, "window_ns");
    t.block_ns = u64_field(j, "block_ns");
    return t;
}

nlohmann::json shaping_json(const pbpf_shaping& s) {
    return {{"rate_bps", s.rate_bps}, {"burst_bytes", s.burst_bytes}};
}

pbpf_shaping shaping_from_json(const nlohmann::json& j) {
    only_keys(j, {"rate_bps", "burst_bytes"});
    pbpf_shaping s;
    s.rate_bps = u64_field(j, "rate_bps");
    s.burst_bytes = u64_field(j, "burst_bytes");
    return s;
}

bool country_bit(const pbpf_persona_settings& s, unsigned i) {
    return (s.countries[i / 64] >> (i % 64)) & 1;
}

// The settings object, or null when the persona sets nothing beyond its security
// section (the audit flag is the top-level "audit").
nlohmann::json settings_json(const pbpf_persona_settings& s,
                             const std::vector<std::string>& dns_search) {
    nlohmann::json out = nlohmann::json::object();
    const uint32_t f = s.flags;
    if (f & PBPF_SETTINGS_F_ENCRYPTION_REQUIRED)
        out["encryption"] = {{"required", true}, {"min_tls", name_of(kTls, s.min_tls)}};

    nlohmann::json ids = nlohmann::json::object();
    if (f & PBPF_SETTINGS_F_IDS_SYN_FLOOD) ids["syn_flood"] = threshold_json(s.syn_flood);
    if (f & PBPF_SETTINGS_F_IDS_PORT_SCAN) ids["port_scan"] = threshold_json(s.port_scan);
    if (!ids.empty()) out["ids"] = std::move(ids);

    nlohmann::json qos = nlohmann::json::object();
    if (f & PBPF_SETTINGS_F_QOS_EGRESS) qos["egress"] = shaping_json(s.egress);
    if (f & PBPF_SETTINGS_F_QOS_INGRESS) qos["ingress"] = shaping_json(s.ingress);
    if (s.priority != PBPF_PRIORITY_UNSET) qos["priority"] = name_of(kPriorities, s.priority);
    if (s.latency_target_ns != 0) qos["latency_target_ns"] = s.latency_target_ns;
    if (!qos.empty()) out["qos"] = std::move(qos);

    nlohmann::json topo = nlohmann::json::object();
    if (f & PBPF_SETTINGS_F_ROUTE_TABLE)
        topo["route"] = {{"table", s.route_table}};
    else if (f & PBPF_SETTINGS_F_ROUTE_VIA)
        topo["route"] = {{"via", address_json(s.route_via)}};
    if (s.next_hop_count != 0) {
        nlohmann::json hops = nlohmann::json::array();
        for (unsigned i = 0; i < s.next_hop_count && i < PBPF_MAX_NEXT_HOPS; ++i)
            hops.push_back(address_json(s.next_hops[i]));
        topo["next_hops"] = std::move(hops);
    }
    if (s.max_hops != 0) topo["max_hops"] = s.max_hops;
    if (!topo.empty()) out["topology"] = std::move(topo);

    if (f & PBPF_SETTINGS_F_SOVEREIGNTY) {
        nlohmann::json countries = nlohmann::json::array();
        for (unsigned i = 0; i < PBPF_COUNTRY_BITS; ++i)
            if (country_bit(s, i))
                countries.push_back(
                    std::string{static_cast<char>('A' + i / 26), static_cast<char>('A' + i % 26)});
        out["sovereignty"] = {{"list", f & PBPF_SETTINGS_F_SOV_DENY_LIST ? "deny" : "allow"},
                              {"countries", std::move(countries)},
                              {"unknown", f & PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW ? "allow" : "deny"},
                              {"on_violation", f & PBPF_SETTINGS_F_SOV_LOG_ONLY ? "log" : "drop"}};
    }

    nlohmann::json dns = nlohmann::json::object();
    if (s.dns_count != 0) {
        nlohmann::json servers = nlohmann::json::array();
        for (unsigned i = 0; i < s.dns_count && i < PBPF_MAX_DNS_SERVERS; ++i)
            servers.push_back(address_json(s.dns_servers[i]));
        dns["servers"] = std::move(servers);
    }
    if (!dns_search.empty()) dns["search"] = dns_search;
    if (!dns.empty()) out["dns"] = std::move(dns);

    return out.empty() ? nlohmann::json() : out;
}

void settings_from_json(const nlohmann::json& j, PersonaImage& p) {
    only_keys(j, {"encryption", "ids", "qos", "topology", "sovereignty", "dns"});
    if (j.empty()) bad("\"settings\" must not be empty (omit it when unset)");
    pbpf_persona_settings& s = p.settings;
    if (j.contains("encryption")) {
        const auto& e = object_field(j, "encryption");
        only_keys(e, {"required", "min_tls"});
        if (!bool_field(e, "required"))
            bad("\"required\" must be true (omit \"encryption\" when it is not) in " + e.dump());
        s.flags |= PBPF_SETTINGS_F_ENCRYPTION_REQUIRED;
        s.min_tls = static_cast<__u16>(value_of(kTls, e, "min_tls"));
    }
    if (j.contains("ids")) {
        const auto& ids = object_field(j, "ids");
        only_keys(ids, {"syn_flood", "port_scan"});
        if (ids.contains("syn_flood")) {
            s.flags |= PBPF_SETTINGS_F_IDS_SYN_FLOOD;
            s.syn_flood = threshold_from_json(ids["syn_flood"]);
        }
        if (ids.contains("port_scan")) {
            s.flags |= PBPF_SETTINGS_F_IDS_PORT_SCAN;
            s.port_scan = threshold_from_json(ids["port_scan"]);
        }
    }
    if (j.contains("qos")) {
        const auto& q = object_field(j, "qos");
        only_keys(q, {"egress", "ingress", "priority", "latency_target_ns"});
        if (q.contains("egress")) {
            s.flags |= PBPF_SETTINGS_F_QOS_EGRESS;
            s.egress = shaping_from_json(q["egress"]);
        }
        if (q.contains("ingress")) {
            s.flags |= PBPF_SETTINGS_F_QOS_INGRESS;
            s.ingress = shaping_from_json(q["ingress"]);
        }
        if (q.contains("priority"))
            s.priority = static_cast<__u8>(value_of(kPriorities, q, "priority"));
        if (q.contains("latency_target_ns"))
            s.latency_target_ns = positive_u64_field(q, "latency_target_ns");
    }
    if (j.contains("topology")) {
        const auto& t = object_field(j, "topology");
        only_keys(t, {"route", "next_hops", "max_hops"});
        if (t.contains("route")) {
            const auto& r = object_field(t, "route");
            if (r.size() != 1)
                bad("\"route\" must hold either \"table\" or \"via\" in " + r.dump());
            if (r.contains("table")) {
                s.flags |= PBPF_SETTINGS_F_ROUTE_TABLE;
                s.route_table = u32_field(r, "table");
            } else if (r.contains("via")) {
                s.flags |= PBPF_SETTINGS_F_ROUTE_VIA;
                s.route_via = address_from_json(r["via"], r);
            } else {
                only_keys(r, {"table", "via"});
            }
        }
        if (t.contains("next_hops")) {
            const auto& hops = array_field(t, "next_hops", PBPF_MAX_NEXT_HOPS);
            for (const auto& h : hops) s.next_hops[s.next_hop_count++] = address_from_json(h, t);
        }
        if (t.contains("max_hops")) {
            uint64_t hops = positive_u64_field(t, "max_hops");
            if (hops > 255) bad("\"max_hops\" must be at most 255 in " + t.dump());
            s.max_hops = static_cast<__u8>(hops);
        }
    }
    if (j.contains("sovereignty")) {
        const auto& sov = object_field(j, "sovereignty");
        only_keys(sov, {"list", "countries", "unknown", "on_violation"});
        s.flags |= PBPF_SETTINGS_F_SOVEREIGNTY;
        if (choice_field(sov, "list", "allow", "deny")) s.flags |= PBPF_SETTINGS_F_SOV_DENY_LIST;
        if (choice_field(sov, "unknown", "deny", "allow"))
            s.flags |= PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW;
        if (choice_field(sov, "on_violation", "drop", "log"))
            s.flags |= PBPF_SETTINGS_F_SOV_LOG_ONLY;
        const auto& countries = field(sov, "countries");
        if (!countries.is_array()) bad("\"countries\" must be an array in " + sov.dump());
        for (const auto& c : countries) {
            std::string code = c.is_string() ? c.get<std::string>() : "";
            if (code.size() != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' ||
                code[1] > 'Z')
                bad("country must be two letters A-Z, found " + c.dump() + " in " + sov.dump());
            unsigned i = static_cast<unsigned>(code[0] - 'A') * 26 + (code[1] - 'A');
            if (country_bit(s, i)) bad("duplicate country " + c.dump() + " in " + sov.dump());
            s.countries[i / 64] |= uint64_t{1} << (i % 64);
        }
    }
    if (j.contains("dns")) {
        const auto& d = object_field(j, "dns");
        only_keys(d, {"servers", "search"});
        if (d.contains("servers")) {
            const auto& servers = array_field(d, "servers", PBPF_MAX_DNS_SERVERS);
            for (const auto& a : servers) s.dns_servers[s.dns_count++] = address_from_json(a, d);
        }
        if (d.contains("search")) {
            const auto& search = d["search"];
            if (!search.is_array() || search.empty())
                bad("\"search\" must be a non-empty array of names in " + d.dump());
            for (const auto& name : search) {
                if (!name.is_string()) bad("\"search\" must hold strings in " + d.dump());
                p.dns_search.push_back(name.get<std::string>());
            }
        }
    }
}

// ---- forwards ----

const char* forward_proto_name(uint8_t p) {
    return p == PBPF_PROTO_TCP ? "tcp" : p == PBPF_PROTO_UDP ? "udp" : "invalid";
}

ForwardEntry forward_from_json(const nlohmann::json& j) {
    only_keys(j, {"dir", "proto", "match", "target"});
    std::string dir = str_field(j, "dir");
    if (dir != "ingress" && dir != "egress")
        bad("\"dir\" must be \"ingress\" or \"egress\" in " + j.dump());
    std::string proto = str_field(j, "proto");
    if (proto != "tcp" && proto != "udp") bad("\"proto\" must be tcp or udp in " + j.dump());
    uint8_t family = 0, target_family = 0;
    uint8_t addr[16], target_addr[16];
    uint16_t port = 0, target_port = 0;
    endpoint_from_json(j, "match", family, addr, port);
    endpoint_from_json(j, "target", target_family, target_addr, target_port);
    return make_forward_entry(dir == "egress" ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS,
                              proto == "tcp" ? PBPF_PROTO_TCP : PBPF_PROTO_UDP, family, addr, port,
                              target_family, target_addr, target_port);
}

}  // namespace

nlohmann::json to_json(const PolicyEntry& e) {
    const auto& k = e.key;
    nlohmann::json j;
    if (k.kind == PBPF_ENTRY_ADDR || k.kind == PBPF_ENTRY_ENC_ADDR ||
        k.kind == PBPF_ENTRY_SOV_EXEMPT) {
        bool v6 = k.family_or_proto == PBPF_FAMILY_IPV6;
        j["kind"] = k.kind == PBPF_ENTRY_ADDR       ? "addr"
                    : k.kind == PBPF_ENTRY_ENC_ADDR ? "enc-addr"
                                                    : "sov-exempt";
        j["family"] = v6 ? "ipv6" : "ipv4";
        j["prefix"] = address_text(k.family_or_proto, k.data) + "/" +
                      std::to_string(k.prefixlen - PBPF_POLICY_HEADER_BITS);
        if (k.kind != PBPF_ENTRY_SOV_EXEMPT) {
            j["dir"] = k.dir == PBPF_DIR_EGRESS ? "egress" : "ingress";
            j["class"] = e.value.class_id;
        }
    } else {
        j["kind"] = k.kind == PBPF_ENTRY_ENC_PORT ? "enc-port" : "port";
        j["class"] = read_be32(k.data);
        j["proto"] = proto_name(k.family_or_proto);
        j["ports"] = port_block(k);
        j["verdict"] = verdict_name(e.value.verdict);
        j["rule"] = e.value.rule_id;
        j["audit"] = (e.value.flags & PBPF_POLICY_F_AUDIT) != 0;
    }
    return j;
}

nlohmann::json to_json(const ForwardEntry& f) {
    return nlohmann::json{{"dir", f.key.dir == PBPF_DIR_EGRESS ? "egress" : "ingress"},
                          {"proto", forward_proto_name(f.key.proto)},
                          {"match", endpoint_text(f.key.family, f.key.addr, f.key.port)},
                          {"target", endpoint_text(f.value.family, f.value.addr, f.value.port)}};
}

nlohmann::json to_json(const PersonaImage& p) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& e : p.entries) entries.push_back(to_json(e));
    nlohmann::json j{{"name", p.name},
                     {"audit", p.audit},
                     {"default_ingress", verdict_name(p.default_ingress)},
                     {"default_egress", verdict_name(p.default_egress)},
                     {"rule_count", p.rule_count},
                     {"class_count", p.class_count},
                     {"entries", std::move(entries)}};
    if (nlohmann::json s = settings_json(p.settings, p.dns_search); !s.is_null())
        j["settings"] = std::move(s);
    if (!p.forwards.empty()) {
        nlohmann::json forwards = nlohmann::json::array();
        for (const auto& f : p.forwards) forwards.push_back(to_json(f));
        j["forwards"] = std::move(forwards);
    }
    return j;
}

nlohmann::json to_json(const MapImage& m) {
    nlohmann::json personas = nlohmann::json::array();
    for (const auto& p : m.personas) personas.push_back(to_json(p));
    return nlohmann::json{{"personas", std::move(personas)}};
}

PersonaImage persona_image_from_json(const nlohmann::json& j) {
    only_keys(j, {"name", "audit", "default_ingress", "default_egress", "rule_count", "class_count",
                  "entries", "settings", "forwards"});
    PersonaImage p;
    p.name = str_field(j, "name");
    p.audit = bool_field(j, "audit");
    p.default_ingress = verdict_from(str_field(j, "default_ingress"), j);
    p.default_egress = verdict_from(str_field(j, "default_egress"), j);
    p.rule_count = u32_field(j, "rule_count");
    p.class_count = u32_field(j, "class_count");
    const auto& entries = field(j, "entries");
    if (!entries.is_array()) bad("\"entries\" must be an array");
    std::set<std::vector<uint8_t>> keys;
    for (const auto& ej : entries) {
        PolicyEntry e = entry_from_json(ej);
        const auto* b = reinterpret_cast<const uint8_t*>(&e.key);
        if (!keys.insert(std::vector<uint8_t>(b, b + sizeof e.key)).second)
            bad("duplicate key in entry " + ej.dump());
        p.entries.push_back(e);
    }
    std::memset(&p.settings, 0, sizeof p.settings);
    if (j.contains("settings")) settings_from_json(j["settings"], p);
    if (p.audit) p.settings.flags |= PBPF_SETTINGS_F_AUDIT;
    if (j.contains("forwards")) {
        const auto& forwards = j["forwards"];
        if (!forwards.is_array() || forwards.empty())
            bad("\"forwards\" must be a non-empty array (omit it when empty)");
        std::set<std::vector<uint8_t>> fkeys;
        for (const auto& fj : forwards) {
            ForwardEntry f = forward_from_json(fj);
            const auto* b = reinterpret_cast<const uint8_t*>(&f.key);
            if (!fkeys.insert(std::vector<uint8_t>(b, b + sizeof f.key)).second)
                bad("duplicate forward " + fj.dump());
            p.forwards.push_back(f);
        }
    }
    p.canonicalize();
    return p;
}

}  // namespace pbpf
