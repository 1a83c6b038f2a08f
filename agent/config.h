// Agent configuration: embedded defaults, then the TOML file, then command-line flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "maps/result.h"

namespace pbpf::agent {

inline constexpr const char* kDefaultConfigPath = "/etc/personabpf/agent.toml";

// [limits]: sizes of the kernel maps, fixed when the maps are created (a fresh start or
// after --uninstall). Zero is not a valid value; each has a documented range.
struct Limits {
    uint32_t bindings = 65536;            // cgroup -> persona entries (1..1048576)
    uint32_t interface_bindings = 4096;   // interface -> persona entries (1..65536)
    uint32_t policy_entries = 262144;     // entries of one persona version's trie (16..4194304)
    uint32_t conntrack_entries = 262144;  // tracked flows, LRU (1024..16777216)
};

// [events]: the flow-event stream.
struct EventsConfig {
    uint32_t rate = 1000;      // events per second per CPU the kernel may emit (1..1000000)
    uint32_t burst = 5000;     // events per CPU above the rate in a burst (1..1000000)
    uint32_t ring_kib = 1024;  // ring buffer size, KiB, power of two (64..262144)
    uint32_t history = 10000;  // events the agent keeps for `events` (100..1000000)
};

// [xdp]: the host-wide prefilter on uplinks.
struct XdpConfig {
    std::vector<std::string> interfaces;  // interface names in the agent's netns
    std::vector<std::string> deny;        // CIDRs (IPv4 or IPv6) dropped on those interfaces
    std::string mode = "auto";            // "auto" (native, else generic), "native", "generic"
    uint32_t max_entries = 65536;         // deny-list capacity (1..1048576)
};

// [binding]: automatic binding.
struct BindingConfig {
    // cgroup subtrees (paths relative to the cgroup2 mount, inside the managed subtree)
    // whose workloads are denied everything until their own binding lands.
    std::vector<std::string> fail_closed;
    bool watch_interfaces = true;  // bind interfaces of the agent's netns by rule
};

// [qos]: egress shaping of the personas' `qos` sections.
inline constexpr size_t kQosMaxInterfaces = 64;
struct QosConfig {
    // Interfaces of the agent's netns whose egress is shaped: the agent owns their root
    // qdisc (HTB, handle 7062:). Empty: no shaping, no DSCP marking.
    std::vector<std::string> egress_interfaces;
    // Capacity shared by the personas' classes on each of them (the link class): set it to
    // the real bottleneck for priorities to matter.
    uint64_t link_rate_bps = 10'000'000'000;  // "10gbit"
};

// [geo]: the country data sovereignty is enforced with.
inline constexpr const char* kDefaultGeoDatabase = "/var/lib/personabpf/geo/country.mmdb";
struct GeoConfig {
    // An MMDB (either country schema) or a CSV file (agent/geo_db.h). A missing file is
    // not fatal: the agent runs with no data (every destination of unknown country), or
    // keeps the dataset a previous agent left enforcing.
    std::string database = kDefaultGeoDatabase;
    // This host's country (ISO 3166-1 alpha-2, upper case), for migration: a workload whose
    // persona does not allow it may not move here. "": not set.
    std::string host_country;
};

// [topology]: the personas' `topology` sections (docs/topology.md).
inline constexpr size_t kTopologyMaxInterfaces = 64;
struct TopologyConfig {
    // Interfaces of the agent's netns whose egress carries the next-hop check (and the
    // hop-limit clamp of cgroup-bound workloads): the host's uplinks. Empty: neither.
    std::vector<std::string> egress_interfaces;
    // Priority of the agent's policy-routing rules (`fwmark <persona mark> lookup T`);
    // priority + 1 holds their `unreachable` fallbacks. Nothing else may use these two.
    uint32_t rule_priority = 10000;  // 1..32764
    // `route via GW` gets the routing table table_base + persona id, owned by the agent.
    uint32_t table_base = 70620000;  // 256..4294963199
};

// [metrics]: the Prometheus endpoint.
struct MetricsConfig {
    std::string listen;  // "" (off), "HOST:PORT", "[IPV6]:PORT" or "unix:/PATH"
};

// [migration]: the agent-to-agent transport of `migrate send` (docs/migration.md). cert,
// key and ca are all set or all empty; listen and peers need them.
struct MigrationConfig {
    // Where this agent accepts workloads from peers: "HOST:PORT" or "[IPV6]:PORT"; port 0
    // picks a free one (GET /v1/status shows it). "": no listener (sending still works).
    std::string listen;
    std::string cert;  // PEM: this host's certificate (absolute path)
    std::string key;   // PEM: its private key
    std::string ca;    // PEM: the CA(s) peers' certificates must chain to
    // Certificate names a peer must present (either direction); empty: any the CA signed.
    std::vector<std::string> peers;
    bool has_identity() const { return !cert.empty(); }
};

struct Config {
    std::string socket = "/run/personabpf/agent.sock";
    std::string state_dir = "/var/lib/personabpf";
    std::string bpffs_root = "/sys/fs/bpf/personabpf";
    std::string cgroup_root;  // empty: the cgroup2 mount root
    std::string log_level = "info";
    // Members of this group (and root) are admins of the API; "" = root only.
    std::string admin_group;
    Limits limits;
    EventsConfig events;
    XdpConfig xdp;
    BindingConfig binding;
    QosConfig qos;
    GeoConfig geo;
    TopologyConfig topology;
    MetricsConfig metrics;
    MigrationConfig migration;
};

// Parses TOML text into `base` (keys it does not set keep base's values). `origin` names
// the text in errors: "agent.toml:3:1: ...".
Result<Config> parse_config(std::string_view text, const std::string& origin, Config base = {});

// Reads and parses `path`. A missing file is an error when `required` (the user named
// it), and means "defaults" otherwise.
Result<Config> load_config(const std::string& path, bool required);

}  // namespace pbpf::agent
