// The migration bundle: JSON in and out, and its validation.
#include "agent/migration_bundle.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

#include <openssl/evp.h>

namespace pbpf::agent {
namespace {

using nlohmann::json;

// A bundle member that is missing or wrong: the message names it.
struct Bad : std::runtime_error {
    using std::runtime_error::runtime_error;
};

const json& member(const json& obj, const std::string& where, const char* key) {
    if (!obj.is_object()) throw Bad(where + " must be an object");
    auto it = obj.find(key);
    if (it == obj.end()) throw Bad(where + "." + key + " is missing");
    return *it;
}

std::string str(const json& obj, const std::string& where, const char* key) {
    const json& v = member(obj, where, key);
    if (!v.is_string()) throw Bad(where + "." + key + " must be a string");
    return v.get<std::string>();
}

uint64_t u64(const json& obj, const std::string& where, const char* key, uint64_t max) {
    const json& v = member(obj, where, key);
    // A number parsed from text is unsigned when >= 0; one built in memory from a signed
    // integer is not.
    const bool whole = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    if (!whole || v.get<uint64_t>() > max)
        throw Bad(where + "." + key + " must be a whole number from 0 to " + std::to_string(max));
    return v.get<uint64_t>();
}

struct Named {
    uint8_t value;
    const char* name;
};
constexpr Named kStates[] = {{PBPF_CT_NEW, "new"},
                             {PBPF_CT_ESTABLISHED, "established"},
                             {PBPF_CT_CLOSING, "closing"},
                             {PBPF_CT_CLOSED, "closed"}};
constexpr Named kFlags[] = {{PBPF_CT_F_AUDIT, "audit"},
                            {PBPF_CT_F_FIN_LOCAL, "fin_local"},
                            {PBPF_CT_F_FIN_REMOTE, "fin_remote"},
                            {PBPF_CT_F_POLICED, "policed"}};

template <size_t N>
uint8_t by_name(const Named (&table)[N], const std::string& name, const std::string& where) {
    for (const auto& e : table)
        if (name == e.name) return e.value;
    throw Bad(where + ": unknown value '" + name + "'");
}
template <size_t N>
const char* name_of(const Named (&table)[N], uint8_t value) {
    for (const auto& e : table)
        if (e.value == value) return e.name;
    return nullptr;
}

std::string addr_text(uint8_t family, const uint8_t* addr) {
    char buf[INET6_ADDRSTRLEN] = {0};
    inet_ntop(family == PBPF_FAMILY_IPV4 ? AF_INET : AF_INET6, addr, buf, sizeof buf);
    return buf;
}

void parse_addr(uint8_t family, const std::string& text, uint8_t* out, const std::string& where) {
    std::memset(out, 0, 16);
    if (inet_pton(family == PBPF_FAMILY_IPV4 ? AF_INET : AF_INET6, text.c_str(), out) != 1)
        throw Bad(where + ": '" + text + "' is not an " +
                  (family == PBPF_FAMILY_IPV4 ? "IPv4" : "IPv6") + " address");
}

json flow_json(const BundleFlow& f) {
    json flags = json::array();
    for (const auto& e : kFlags)
        if (f.flags & e.value) flags.push_back(e.name);
    const char* state = name_of(kStates, f.state);
    return {
        {"family", f.family == PBPF_FAMILY_IPV4 ? "ipv4" : "ipv6"},
        {"proto", f.proto},
        {"local", addr_text(f.family, f.local)},
        {"remote", addr_text(f.family, f.remote)},
        {"local_port", f.local_port},
        {"remote_port", f.remote_port},
        {"state", state ? state : "new"},
        {"origin", f.origin == PBPF_DIR_EGRESS ? "egress" : "ingress"},
        {"flags", flags},
        {"rule_id", f.rule_id},
        {"packets",
         {{"ingress", f.packets[PBPF_DIR_INGRESS]}, {"egress", f.packets[PBPF_DIR_EGRESS]}}},
        {"bytes", {{"ingress", f.bytes[PBPF_DIR_INGRESS]}, {"egress", f.bytes[PBPF_DIR_EGRESS]}}},
        {"age_ns", f.age_ns},
        {"idle_ns", f.idle_ns}};
}

BundleFlow parse_flow(const json& j, const std::string& where) {
    BundleFlow f;
    const std::string family = str(j, where, "family");
    if (family == "ipv4")
        f.family = PBPF_FAMILY_IPV4;
    else if (family == "ipv6")
        f.family = PBPF_FAMILY_IPV6;
    else
        throw Bad(where + ".family must be \"ipv4\" or \"ipv6\"");
    f.proto = static_cast<uint8_t>(u64(j, where, "proto", 255));
    parse_addr(f.family, str(j, where, "local"), f.local, where + ".local");
    parse_addr(f.family, str(j, where, "remote"), f.remote, where + ".remote");
    f.local_port = static_cast<uint16_t>(u64(j, where, "local_port", 65535));
    f.remote_port = static_cast<uint16_t>(u64(j, where, "remote_port", 65535));
    f.state = by_name(kStates, str(j, where, "state"), where + ".state");
    const std::string origin = str(j, where, "origin");
    if (origin != "ingress" && origin != "egress")
        throw Bad(where + ".origin must be \"ingress\" or \"egress\"");
    f.origin = origin == "egress" ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS;
    const json& flags = member(j, where, "flags");
    if (!flags.is_array()) throw Bad(where + ".flags must be an array of names");
    for (const auto& fl : flags) {
        if (!fl.is_string()) throw Bad(where + ".flags must be an array of names");
        f.flags |= by_name(kFlags, fl.get<std::string>(), where + ".flags");
    }
    f.rule_id = static_cast<uint32_t>(u64(j, where, "rule_id", UINT32_MAX));
    for (const char* what : {"packets", "bytes"}) {
        const json& per_dir = member(j, where, what);
        uint64_t* out = std::strcmp(what, "packets") == 0 ? f.packets : f.bytes;
        out[PBPF_DIR_INGRESS] = u64(per_dir, where + "." + what, "ingress", UINT64_MAX);
        out[PBPF_DIR_EGRESS] = u64(per_dir, where + "." + what, "egress", UINT64_MAX);
    }
    f.age_ns = u64(j, where, "age_ns", UINT64_MAX);
    f.idle_ns = u64(j, where, "idle_ns", UINT64_MAX);
    if (f.idle_ns > f.age_ns) throw Bad(where + ": idle_ns is larger than age_ns");
    return f;
}

}  // namespace

std::string persona_digest(const std::string& source, const std::string& imports_json) {
    // Length-prefixed parts: ("ab", "c") and ("a", "bc") differ.
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
    for (const std::string* part : {&source, &imports_json}) {
        const std::string size = std::to_string(part->size()) + ":";
        ok = ok && EVP_DigestUpdate(ctx, size.data(), size.size()) == 1 &&
             EVP_DigestUpdate(ctx, part->data(), part->size()) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, &len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) throw std::runtime_error("SHA-256 failed");
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

BundleFlow flow_from_entry(const pbpf_ct_key& k, const pbpf_ct_value& v, uint64_t now_ns) {
    BundleFlow f;
    f.family = k.family;
    f.proto = k.proto;
    std::memcpy(f.local, k.local, 16);
    std::memcpy(f.remote, k.remote, 16);
    f.local_port = ntohs(k.local_port);
    f.remote_port = ntohs(k.remote_port);
    f.state = v.state;
    f.origin = v.origin;
    f.flags = v.flags;
    f.rule_id = v.rule_id;
    for (int d = 0; d < PBPF_DIR_COUNT; ++d) {
        f.packets[d] = v.packets[d];
        f.bytes[d] = v.bytes[d];
    }
    f.age_ns = now_ns > v.created_ns ? now_ns - v.created_ns : 0;
    f.idle_ns = now_ns > v.last_seen_ns ? now_ns - v.last_seen_ns : 0;
    if (f.idle_ns > f.age_ns) f.idle_ns = f.age_ns;
    return f;
}

void flow_to_entry(const BundleFlow& f, uint64_t workload, uint32_t ifindex, uint32_t persona_id,
                   uint64_t policy_epoch, uint64_t now_ns, pbpf_ct_key* k, pbpf_ct_value* v) {
    std::memset(k, 0, sizeof *k);  // padding too: a stray byte makes lookups miss
    std::memset(v, 0, sizeof *v);
    k->workload = workload;
    k->ifindex = ifindex;
    k->family = f.family;
    k->proto = f.proto;
    k->local_port = htons(f.local_port);
    k->remote_port = htons(f.remote_port);
    std::memcpy(k->local, f.local, 16);
    std::memcpy(k->remote, f.remote, 16);
    // An age beyond the target's uptime cannot be expressed: the flow starts at boot.
    v->created_ns = now_ns > f.age_ns ? now_ns - f.age_ns : 0;
    v->last_seen_ns = now_ns > f.idle_ns ? now_ns - f.idle_ns : 0;
    v->policy_epoch = policy_epoch;
    for (int d = 0; d < PBPF_DIR_COUNT; ++d) {
        v->packets[d] = f.packets[d];
        v->bytes[d] = f.bytes[d];
    }
    v->persona_id = persona_id;
    v->rule_id = f.rule_id;
    v->origin = f.origin;
    v->state = f.state;
    v->flags = f.flags;
}

json bundle_to_json(const Bundle& b) {
    json flows = json::array();
    for (const auto& f : b.flows) flows.push_back(flow_json(f));
    json binding = {{"kind", b.kind}};
    if (b.kind == "cgroup") {
        binding["cgroup"] = b.cgroup;
    } else {
        binding["ifname"] = b.ifname;
        binding["netns"] = b.netns;
    }
    return {{"format", kBundleFormat},
            {"version", kBundleVersion},
            {"exported_at", b.exported_at},
            {"source",
             {{"agent_version", b.agent_version},
              {"map_schema_version", b.map_schema_version},
              {"host_country", b.host_country}}},
            {"persona",
             {{"name", b.persona},
              {"version", b.persona_version},
              {"filename", b.filename},
              {"source", b.source},
              {"imports", json::parse(b.imports_json)},
              {"sha256", persona_digest(b.source, b.imports_json)}}},
            {"binding", binding},
            {"conntrack", flows},
            {"counters", b.counters.is_null() ? json::object() : b.counters},
            {"not_included",
             {{"qos", "token buckets and queues are not carried: the target shapes afresh"},
              {"ids", "this release keeps no IDS state"}}}};
}

BundleParse bundle_from_json(const json& j) {
    BundleParse out;
    try {
        if (!j.is_object()) throw Bad("a bundle is a JSON object");
        const std::string format = str(j, "bundle", "format");
        if (format != kBundleFormat)
            throw Bad("not a migration bundle: format is '" + format + "', expected '" +
                      kBundleFormat + "'");
        const json& version = member(j, "bundle", "version");
        if (!version.is_number_integer() || version.get<int64_t>() != kBundleVersion)
            throw Bad("bundle version " + version.dump() + " is not supported (this agent reads " +
                      std::to_string(kBundleVersion) + ")");
        Bundle b;
        b.exported_at = static_cast<int64_t>(u64(j, "bundle", "exported_at", INT64_MAX));
        const json& src = member(j, "bundle", "source");
        b.agent_version = str(src, "source", "agent_version");
        b.map_schema_version =
            static_cast<uint32_t>(u64(src, "source", "map_schema_version", UINT32_MAX));
        b.host_country = str(src, "source", "host_country");

        const json& p = member(j, "bundle", "persona");
        b.persona = str(p, "persona", "name");
        if (b.persona.empty()) throw Bad("persona.name is empty");
        b.persona_version = static_cast<int64_t>(u64(p, "persona", "version", INT64_MAX));
        if (b.persona_version < 1) throw Bad("persona.version must be 1 or more");
        b.filename = str(p, "persona", "filename");
        b.source = str(p, "persona", "source");
        const json& imports = member(p, "persona", "imports");
        if (!imports.is_array()) throw Bad("persona.imports must be an array");
        for (const auto& imp : imports) {
            str(imp, "persona.imports[]", "filename");
            str(imp, "persona.imports[]", "source");
        }
        b.imports_json = imports.dump();
        const std::string digest = str(p, "persona", "sha256");
        if (digest != persona_digest(b.source, b.imports_json))
            throw Bad(
                "persona.sha256 does not match the persona's source and imports (the "
                "bundle was edited or damaged)");

        const json& binding = member(j, "bundle", "binding");
        b.kind = str(binding, "binding", "kind");
        if (b.kind == "cgroup") {
            b.cgroup = str(binding, "binding", "cgroup");
        } else if (b.kind == "interface") {
            b.ifname = str(binding, "binding", "ifname");
            b.netns = str(binding, "binding", "netns");
        } else {
            throw Bad("binding.kind must be \"cgroup\" or \"interface\"");
        }

        const json& flows = member(j, "bundle", "conntrack");
        if (!flows.is_array()) throw Bad("conntrack must be an array");
        for (size_t i = 0; i < flows.size(); ++i)
            b.flows.push_back(parse_flow(flows[i], "conntrack[" + std::to_string(i) + "]"));
        if (j.contains("counters")) {
            if (!j["counters"].is_object()) throw Bad("counters must be an object");
            b.counters = j["counters"];
        }
        out.bundle = std::move(b);
    } catch (const Bad& e) {
        out.error = e.what();
    } catch (const json::exception& e) {
        out.error = std::string("bad bundle: ") + e.what();
    }
    return out;
}

}  // namespace pbpf::agent
