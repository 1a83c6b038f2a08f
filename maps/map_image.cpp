// Canonical form and JSON of MapImage: the readable, deterministic rendering that golden
// tests, `pdl compile` and the agent API show, and its exact inverse.
#include "maps/map_image.h"

#include <arpa/inet.h>

#include <algorithm>
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

PolicyEntry entry_from_json(const nlohmann::json& j) {
    if (!j.is_object()) bad("entry must be an object, found " + j.dump());
    std::string kind = str_field(j, "kind");
    if (kind == "addr") {
        only_keys(j, {"kind", "dir", "family", "prefix", "class"});
        std::string dir = str_field(j, "dir");
        if (dir != "ingress" && dir != "egress")
            bad("\"dir\" must be \"ingress\" or \"egress\" in " + j.dump());
        std::string family = str_field(j, "family");
        if (family != "ipv4" && family != "ipv6")
            bad("\"family\" must be \"ipv4\" or \"ipv6\" in " + j.dump());
        bool v6 = family == "ipv6";
        std::string prefix = str_field(j, "prefix");
        auto slash = prefix.find('/');
        if (slash == std::string::npos) bad("\"prefix\" must be ADDRESS/LENGTH in " + j.dump());
        uint8_t addr[16] = {};
        if (inet_pton(v6 ? AF_INET6 : AF_INET, prefix.substr(0, slash).c_str(), addr) != 1)
            bad("bad " + family + " address in \"prefix\" of " + j.dump());
        std::string len_text = prefix.substr(slash + 1);
        uint32_t len = 0;
        if (!parse_u16(len_text, len) || len > (v6 ? 128u : 32u))
            bad("bad prefix length in \"prefix\" of " + j.dump());
        PolicyEntry e = make_addr_entry(dir == "egress" ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS,
                                        v6 ? PBPF_FAMILY_IPV6 : PBPF_FAMILY_IPV4, addr, len,
                                        u32_field(j, "class"));
        if (std::memcmp(e.key.data, addr, 16) != 0)
            bad("\"prefix\" has host bits set in " + j.dump());
        return e;
    }
    if (kind == "port") {
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
                               bool_field(j, "audit"));
    }
    bad("\"kind\" must be \"addr\" or \"port\" in " + j.dump());
}

}  // namespace

void PersonaImage::canonicalize() {
    std::sort(entries.begin(), entries.end());
    entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
}

nlohmann::json to_json(const PolicyEntry& e) {
    const auto& k = e.key;
    nlohmann::json j;
    if (k.kind == PBPF_ENTRY_ADDR) {
        bool v6 = k.family_or_proto == PBPF_FAMILY_IPV6;
        char buf[INET6_ADDRSTRLEN] = {};
        inet_ntop(v6 ? AF_INET6 : AF_INET, k.data, buf, sizeof buf);
        j["kind"] = "addr";
        j["dir"] = k.dir == PBPF_DIR_EGRESS ? "egress" : "ingress";
        j["family"] = v6 ? "ipv6" : "ipv4";
        j["prefix"] =
            std::string(buf) + "/" + std::to_string(k.prefixlen - PBPF_POLICY_HEADER_BITS);
        j["class"] = e.value.class_id;
    } else {
        j["kind"] = "port";
        j["class"] = read_be32(k.data);
        j["proto"] = proto_name(k.family_or_proto);
        j["ports"] = port_block(k);
        j["verdict"] = verdict_name(e.value.verdict);
        j["rule"] = e.value.rule_id;
        j["audit"] = (e.value.flags & PBPF_POLICY_F_AUDIT) != 0;
    }
    return j;
}

nlohmann::json to_json(const PersonaImage& p) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& e : p.entries) entries.push_back(to_json(e));
    return nlohmann::json{{"name", p.name},
                          {"audit", p.audit},
                          {"default_ingress", verdict_name(p.default_ingress)},
                          {"default_egress", verdict_name(p.default_egress)},
                          {"rule_count", p.rule_count},
                          {"class_count", p.class_count},
                          {"entries", std::move(entries)}};
}

nlohmann::json to_json(const MapImage& m) {
    nlohmann::json personas = nlohmann::json::array();
    for (const auto& p : m.personas) personas.push_back(to_json(p));
    return nlohmann::json{{"personas", std::move(personas)}};
}

PersonaImage persona_image_from_json(const nlohmann::json& j) {
    only_keys(j, {"name", "audit", "default_ingress", "default_egress", "rule_count", "class_count",
                  "entries"});
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
    p.canonicalize();
    return p;
}

}  // namespace pbpf
