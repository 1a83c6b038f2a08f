// The migration bundle: JSON in and out, and its validation.
#include "agent/migration_bundle.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
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

// The members of a flow, in the order of a version 2 bundle's `conntrack.columns`.
enum Col {
    kColFamily,
    kColProto,
    kColLocal,
    kColRemote,
    kColLocalPort,
    kColRemotePort,
    kColState,
    kColOrigin,
    kColFlags,
    kColRuleId,
    kColIngressPackets,
    kColEgressPackets,
    kColIngressBytes,
    kColEgressBytes,
    kColAgeNs,
    kColIdleNs,
    kColCount
};
constexpr const char* kColumns[kColCount] = {
    "family",        "proto",        "local",  "remote",  "local_port",      "remote_port",
    "state",         "origin",       "flags",  "rule_id", "ingress_packets", "egress_packets",
    "ingress_bytes", "egress_bytes", "age_ns", "idle_ns"};

// One row of a version 2 bundle: an array, not an object per flow, so that 10,000 flows
// cost a few allocations each to build, write, parse and free, not some thirty.
json flow_row(const BundleFlow& f) {
    json flags = json::array();
    for (const auto& e : kFlags)
        if (f.flags & e.value) flags.push_back(e.name);
    const char* state = name_of(kStates, f.state);
    json row = json::array();
    auto& a = row.get_ref<json::array_t&>();
    a.reserve(kColCount);
    a.emplace_back(f.family == PBPF_FAMILY_IPV4 ? "ipv4" : "ipv6");
    a.emplace_back(f.proto);
    a.emplace_back(addr_text(f.family, f.local));
    a.emplace_back(addr_text(f.family, f.remote));
    a.emplace_back(f.local_port);
    a.emplace_back(f.remote_port);
    a.emplace_back(state ? state : "new");
    a.emplace_back(f.origin == PBPF_DIR_EGRESS ? "egress" : "ingress");
    a.emplace_back(std::move(flags));
    a.emplace_back(f.rule_id);
    a.emplace_back(f.packets[PBPF_DIR_INGRESS]);
    a.emplace_back(f.packets[PBPF_DIR_EGRESS]);
    a.emplace_back(f.bytes[PBPF_DIR_INGRESS]);
    a.emplace_back(f.bytes[PBPF_DIR_EGRESS]);
    a.emplace_back(f.age_ns);
    a.emplace_back(f.idle_ns);
    return row;
}

// A flow's members by name: a version 1 object (packets and bytes nested per direction),
// or a version 2 row read through its bundle's columns.
struct FlowSource {
    const json* object = nullptr;                    // version 1
    const json* row = nullptr;                       // version 2
    const std::array<int, kColCount>* at = nullptr;  // version 2: column of each member
    std::string where;

    const json& get(Col c) const {
        if (row) {
            const int i = (*at)[c];
            if (i < 0 || static_cast<size_t>(i) >= row->size())
                throw Bad(where + "." + kColumns[c] + " is missing");
            return (*row)[static_cast<size_t>(i)];
        }
        switch (c) {
            case kColIngressPackets:
            case kColEgressPackets:
            case kColIngressBytes:
            case kColEgressBytes: {
                const bool packets = c == kColIngressPackets || c == kColEgressPackets;
                const char* what = packets ? "packets" : "bytes";
                const char* dir =
                    c == kColIngressPackets || c == kColIngressBytes ? "ingress" : "egress";
                return member(member(*object, where, what), where + "." + what, dir);
            }
            default:
                return member(*object, where, kColumns[c]);
        }
    }
    std::string name(Col c) const {
        if (row) return where + "." + kColumns[c];
        switch (c) {
            case kColIngressPackets:
                return where + ".packets.ingress";
            case kColEgressPackets:
                return where + ".packets.egress";
            case kColIngressBytes:
                return where + ".bytes.ingress";
            case kColEgressBytes:
                return where + ".bytes.egress";
            default:
                return where + "." + kColumns[c];
        }
    }
    std::string str(Col c) const {
        const json& v = get(c);
        if (!v.is_string()) throw Bad(name(c) + " must be a string");
        return v.get<std::string>();
    }
    uint64_t u64(Col c, uint64_t max) const {
        const json& v = get(c);
        const bool whole =
            v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
        if (!whole || v.get<uint64_t>() > max)
            throw Bad(name(c) + " must be a whole number from 0 to " + std::to_string(max));
        return v.get<uint64_t>();
    }
};

BundleFlow parse_flow(const FlowSource& j) {
    const std::string& where = j.where;
    BundleFlow f;
    const std::string family = j.str(kColFamily);
    if (family == "ipv4")
        f.family = PBPF_FAMILY_IPV4;
    else if (family == "ipv6")
        f.family = PBPF_FAMILY_IPV6;
    else
        throw Bad(j.name(kColFamily) + " must be \"ipv4\" or \"ipv6\"");
    f.proto = static_cast<uint8_t>(j.u64(kColProto, 255));
    parse_addr(f.family, j.str(kColLocal), f.local, j.name(kColLocal));
    parse_addr(f.family, j.str(kColRemote), f.remote, j.name(kColRemote));
    f.local_port = static_cast<uint16_t>(j.u64(kColLocalPort, 65535));
    f.remote_port = static_cast<uint16_t>(j.u64(kColRemotePort, 65535));
    f.state = by_name(kStates, j.str(kColState), j.name(kColState));
    const std::string origin = j.str(kColOrigin);
    if (origin != "ingress" && origin != "egress")
        throw Bad(j.name(kColOrigin) + " must be \"ingress\" or \"egress\"");
    f.origin = origin == "egress" ? PBPF_DIR_EGRESS : PBPF_DIR_INGRESS;
    const json& flags = j.get(kColFlags);
    if (!flags.is_array()) throw Bad(j.name(kColFlags) + " must be an array of names");
    for (const auto& fl : flags) {
        if (!fl.is_string()) throw Bad(j.name(kColFlags) + " must be an array of names");
        f.flags |= by_name(kFlags, fl.get<std::string>(), j.name(kColFlags));
    }
    f.rule_id = static_cast<uint32_t>(j.u64(kColRuleId, UINT32_MAX));
    f.packets[PBPF_DIR_INGRESS] = j.u64(kColIngressPackets, UINT64_MAX);
    f.packets[PBPF_DIR_EGRESS] = j.u64(kColEgressPackets, UINT64_MAX);
    f.bytes[PBPF_DIR_INGRESS] = j.u64(kColIngressBytes, UINT64_MAX);
    f.bytes[PBPF_DIR_EGRESS] = j.u64(kColEgressBytes, UINT64_MAX);
    f.age_ns = j.u64(kColAgeNs, UINT64_MAX);
    f.idle_ns = j.u64(kColIdleNs, UINT64_MAX);
    if (f.idle_ns > f.age_ns) throw Bad(where + ": idle_ns is larger than age_ns");
    return f;
}

// A version 2 bundle's conntrack: {"columns": [...], "rows": [[...], ...]}. Every member
// of a flow must have its column; an unknown column is an error (a newer format).
void parse_rows(const json& ct, std::vector<BundleFlow>& out) {
    if (!ct.is_object()) throw Bad("conntrack must be an object with columns and rows");
    const json& columns = member(ct, "conntrack", "columns");
    const json& rows = member(ct, "conntrack", "rows");
    if (!columns.is_array()) throw Bad("conntrack.columns must be an array of names");
    if (!rows.is_array()) throw Bad("conntrack.rows must be an array");
    std::array<int, kColCount> at;
    at.fill(-1);
    for (size_t i = 0; i < columns.size(); ++i) {
        if (!columns[i].is_string()) throw Bad("conntrack.columns must be an array of names");
        const std::string& name = columns[i].get_ref<const std::string&>();
        auto it = std::find_if(std::begin(kColumns), std::end(kColumns),
                               [&](const char* c) { return name == c; });
        if (it == std::end(kColumns)) throw Bad("conntrack.columns: unknown column '" + name + "'");
        const auto c = static_cast<size_t>(it - std::begin(kColumns));
        if (at[c] >= 0) throw Bad("conntrack.columns: '" + name + "' appears twice");
        at[c] = static_cast<int>(i);
    }
    for (int c = 0; c < kColCount; ++c)
        if (at[static_cast<size_t>(c)] < 0)
            throw Bad(std::string("conntrack.columns: '") + kColumns[c] + "' is missing");
    out.reserve(rows.size());
    FlowSource src;
    src.at = &at;
    for (size_t i = 0; i < rows.size(); ++i) {
        src.where = "conntrack.rows[" + std::to_string(i) + "]";
        if (!rows[i].is_array() || rows[i].size() != columns.size())
            throw Bad(src.where + " must be an array of " + std::to_string(columns.size()) +
                      " values, one per column");
        src.row = &rows[i];
        out.push_back(parse_flow(src));
    }
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
    json rows = json::array();
    rows.get_ref<json::array_t&>().reserve(b.flows.size());
    for (const auto& f : b.flows) rows.push_back(flow_row(f));
    json binding = {{"kind", b.kind}};
    if (b.kind == "cgroup") {
        binding["cgroup"] = b.cgroup;
    } else {
        binding["ifname"] = b.ifname;
        binding["netns"] = b.netns;
    }
    json out = {{"format", kBundleFormat},
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
                {"conntrack", {{"columns", kColumns}, {"rows", json::array()}}},
                {"counters", b.counters.is_null() ? json::object() : b.counters},
                {"qos", b.qos.is_null() ? json::object() : b.qos},
                {"not_included",
                 {{"qos",
                   "token buckets and queues are the source's links' and are not carried: the "
                   "target shapes afresh; the RTT figures under qos are for the record (the "
                   "target measures its own paths)"},
                  {"ids", "this release keeps no IDS state"}}}};
    out["conntrack"]["rows"] = std::move(rows);  // moved: not a copy of every flow
    return out;
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
        if (!version.is_number_integer() || version.get<int64_t>() < kBundleMinVersion ||
            version.get<int64_t>() > kBundleVersion)
            throw Bad("bundle version " + version.dump() + " is not supported (this agent reads " +
                      std::to_string(kBundleMinVersion) + " to " + std::to_string(kBundleVersion) +
                      ")");
        const int64_t format_version = version.get<int64_t>();
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
        if (format_version >= 2) {
            parse_rows(flows, b.flows);
        } else {  // version 1: an object per flow
            if (!flows.is_array()) throw Bad("conntrack must be an array");
            FlowSource src;
            for (size_t i = 0; i < flows.size(); ++i) {
                src.where = "conntrack[" + std::to_string(i) + "]";
                src.object = &flows[i];
                b.flows.push_back(parse_flow(src));
            }
        }
        if (j.contains("counters")) {
            if (!j["counters"].is_object()) throw Bad("counters must be an object");
            b.counters = j["counters"];
        }
        if (j.contains("qos")) {
            if (!j["qos"].is_object()) throw Bad("qos must be an object");
            b.qos = j["qos"];
        }
        out.bundle = std::move(b);
    } catch (const Bad& e) {
        out.error = e.what();
    } catch (const json::exception& e) {
        out.error = std::string("bad bundle: ") + e.what();
    }
    return out;
}

TargetParse migration_target(const json& body, const std::string& verb, const Bundle* bundle) {
    TargetParse out;
    const std::string what = "migrate " + verb;
    if (!body.is_object()) {
        out.error = "request must be a JSON object";
        return out;
    }
    for (const char* key : {"cgroup", "ifname", "netns"})
        if (body.contains(key) && !body[key].is_string()) {
            out.error = what + ": \"" + key + "\" must be a string";
            return out;
        }
    const bool cgroup = body.contains("cgroup"), ifname = body.contains("ifname");
    if (cgroup && ifname) {
        out.error = what + ": give \"cgroup\" or \"ifname\", not both";
        return out;
    }
    if (body.contains("netns") && !ifname) {
        out.error = what + ": \"netns\" goes with \"ifname\" only";
        return out;
    }
    MigrationTarget t;
    if (cgroup) {
        t.kind = "cgroup";
        t.cgroup = body["cgroup"].get<std::string>();
    } else if (ifname) {
        t.kind = "interface";
        t.ifname = body["ifname"].get<std::string>();
        t.netns = body.value("netns", std::string());
        if (t.ifname.empty()) {
            out.error = what + ": \"ifname\" is empty";
            return out;
        }
    } else if (bundle) {  // the bundle's own workload
        t.kind = bundle->kind;
        t.cgroup = bundle->cgroup;
        t.ifname = bundle->ifname;
        t.netns = bundle->netns;
    } else {
        out.error = what + " needs \"cgroup\" (a path) or \"ifname\" (and \"netns\")";
        return out;
    }
    if (bundle && bundle->kind != t.kind) {
        out.error = bundle->kind == "cgroup"
                        ? "the bundle is of a cgroup-bound workload (cgroup " + bundle->cgroup +
                              "): import it into a cgroup (\"cgroup\"), not onto an interface"
                        : "the bundle is of an interface-bound workload (interface " +
                              bundle->ifname +
                              (bundle->netns.empty() ? "" : " in netns " + bundle->netns) +
                              "): import it onto an interface (\"ifname\"), not into a cgroup";
        return out;
    }
    out.target = std::move(t);
    return out;
}

}  // namespace pbpf::agent
