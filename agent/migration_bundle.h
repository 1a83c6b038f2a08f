// The workload migration bundle (docs/migration.md): what `migrate export` writes and
// `migrate import` reads, as versioned JSON. Flows are written as rows under named columns,
// with ages instead of the source's monotonic timestamps, so nothing in a bundle depends
// on the source's map layout or clock. Parsing and validation are pure (unit-tested).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "maps/abi/conntrack.h"

namespace pbpf::agent {

inline constexpr const char* kBundleFormat = "personabpf-migration-bundle";
// Version 2 writes the flows as rows under named columns (version 1: an object per flow,
// still read).
inline constexpr int kBundleVersion = 2;
inline constexpr int kBundleMinVersion = 1;

// One tracked flow of the workload, without its workload key (the target re-keys it).
struct BundleFlow {
    uint8_t family = 0;  // PBPF_FAMILY_IPV4 | PBPF_FAMILY_IPV6
    uint8_t proto = 0;   // IP protocol number
    uint8_t local[16] = {}, remote[16] = {};
    uint16_t local_port = 0, remote_port = 0;  // host order
    uint8_t state = 0;                         // enum pbpf_ct_state
    uint8_t origin = 0;                        // enum pbpf_direction
    uint8_t flags = 0;                         // PBPF_CT_F_*
    uint32_t rule_id = 0;
    uint64_t packets[PBPF_DIR_COUNT] = {}, bytes[PBPF_DIR_COUNT] = {};
    uint64_t age_ns = 0;   // since the flow's first packet, at export
    uint64_t idle_ns = 0;  // since its latest packet, at export
};

struct Bundle {
    int64_t exported_at = 0;  // unix seconds
    // The source agent (for the record: nothing below depends on its layout).
    std::string agent_version;
    uint32_t map_schema_version = 0;
    std::string host_country;
    // The persona as stored in the source's repository.
    std::string persona;
    int64_t persona_version = 0;
    std::string filename, source;
    std::string imports_json = "[]";  // [{"filename", "source"}], as the store keeps it
    // The binding on the source: kind "cgroup" (cgroup = path relative to the cgroup2
    // mount) or "interface" (ifname, netns).
    std::string kind;
    std::string cgroup, ifname, netns;
    std::vector<BundleFlow> flows;
    // The binding's counters on the source at export, per direction: passed and dropped
    // packets and bytes, drops by reason. For the record: an import does not restore them.
    nlohmann::json counters;
    // The binding's QoS state on the source at export: the persona's latency target and
    // the RTT its TCP sockets measured (samples, sum, p50, p99 since sampling began), {}
    // when the persona has no latency target. For the record as well: the target measures
    // its own paths afresh.
    nlohmann::json qos;
};

// SHA-256 of the persona's source and imports, hex: the bundle's check against an edited
// or truncated source (not a signature: see docs/migration.md).
std::string persona_digest(const std::string& source, const std::string& imports_json);

// A flow from the kernel's entry, `now_ns` being the exporter's CLOCK_MONOTONIC.
BundleFlow flow_from_entry(const pbpf_ct_key& k, const pbpf_ct_value& v, uint64_t now_ns);
// The target's entry: the workload and persona given, timestamps rebased to `now_ns`.
void flow_to_entry(const BundleFlow& f, uint64_t workload, uint32_t ifindex, uint32_t persona_id,
                   uint64_t policy_epoch, uint64_t now_ns, pbpf_ct_key* k, pbpf_ct_value* v);

nlohmann::json bundle_to_json(const Bundle& b);
// Validates everything that can be checked without an agent: format and version, every
// member present and of its type and range, the persona digest. Returns the error text
// (naming the member) or the bundle.
struct BundleParse {
    std::optional<Bundle> bundle;
    std::string error;
};
BundleParse bundle_from_json(const nlohmann::json& j);

// The workload a migration request names: a cgroup (path), or an interface (ifname, netns:
// "" = the agent's own netns).
struct MigrationTarget {
    std::string kind;  // "cgroup" | "interface"
    std::string cgroup, ifname, netns;
};
struct TargetParse {
    std::optional<MigrationTarget> target;
    std::string error;  // a 400's text when there is no target
};
// The request's "cgroup", or "ifname" with an optional "netns". `verb` names the request
// in errors ("export", "import"). For an import, `bundle` is the default target (its own
// binding, when the request names none) and the target must be of its kind: flows keyed
// by a cgroup are not moved onto an interface, nor the other way.
TargetParse migration_target(const nlohmann::json& body, const std::string& verb,
                             const Bundle* bundle = nullptr);

}  // namespace pbpf::agent
