// The checked persona IR: what a persona means, independent of syntax. Produced by the
// semantic pass, consumed by lowering (lower.h) and by the agent for display.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pdl::ir {

enum class Direction { Ingress, Egress };
enum class Action { Allow, Deny };
enum class Mode { Enforce, Audit };
enum class Proto { Any, Tcp, Udp, Icmp, Icmpv6 };
enum class Family { V4, V6 };

struct Cidr {
    Family family = Family::V4;
    std::array<uint8_t, 16> addr{};  // IPv4 in addr[0..3]; host bits are zero
    uint8_t prefix_len = 0;
    bool operator==(const Cidr&) const = default;
};

struct PortRange {
    uint16_t lo = 0;
    uint16_t hi = 0;  // inclusive
    bool operator==(const PortRange&) const = default;
};

struct SourceLoc {
    std::string file;
    uint32_t line = 0;
    uint32_t col = 0;
};

struct Rule {
    uint32_t id = 0;  // 1-based, in source order within the persona
    Action action = Action::Allow;
    Direction direction = Direction::Ingress;
    Proto proto = Proto::Any;
    std::vector<PortRange> ports;  // empty: every port (and the only choice for icmp/any)
    std::vector<Cidr> peers;       // empty: any address of the families proto allows
    std::string text;              // the rule as written (canonical form), for humans
    SourceLoc loc;
};

// A flow pattern: an encryption exception. Ports are the flow's service (destination)
// port, as in rules.
struct Match {
    std::optional<Direction> direction;  // nullopt: both directions
    Proto proto = Proto::Any;
    std::vector<PortRange> ports;  // empty: every port
    std::vector<Cidr> peers;       // empty: any address
    std::string text;              // canonical text, e.g. "egress udp port 53"
    SourceLoc loc;
};

enum class TlsVersion { V1_0, V1_1, V1_2, V1_3 };

struct Encryption {
    bool required = false;
    TlsVersion min_tls = TlsVersion::V1_2;  // meaningful when required
    std::vector<Match> exceptions;
};

// `COUNT/WINDOW [block DURATION]`: COUNT events within WINDOW cross the threshold.
struct Threshold {
    uint64_t count = 0;
    uint64_t window_ns = 0;
    uint64_t block_ns = 0;  // 0: report only, never block
    bool operator==(const Threshold&) const = default;
};

struct Ids {
    std::optional<Threshold> syn_flood;  // SYNs per source
    std::optional<Threshold> port_scan;  // distinct destination ports per source
};

struct Shaping {
    uint64_t rate_bps = 0;     // bits per second
    uint64_t burst_bytes = 0;  // 0: not given (enforcement derives one from the rate)
    bool operator==(const Shaping&) const = default;
};

enum class Priority { Low, Normal, High, Critical };

struct Qos {
    std::optional<Shaping> egress, ingress;
    std::optional<Priority> priority;
    std::optional<uint64_t> latency_target_ns;
};

struct Route {
    enum class Kind { Table, Via } kind = Kind::Table;
    uint32_t table = 0;  // Kind::Table
    Cidr via;            // Kind::Via: a host address
};

struct Topology {
    std::optional<Route> route;
    std::vector<Cidr> next_hops;  // host addresses; empty: any next hop
    std::optional<uint8_t> max_hops;
};

enum class OnViolation { Drop, Log };

struct Sovereignty {
    // Allow: only `countries` are allowed destinations; Deny: `countries` are not.
    // nullopt: the persona sets no country list (no sovereignty enforcement).
    std::optional<Action> list;
    std::vector<std::string> countries;  // ISO 3166-1 alpha-2, groups expanded, sorted
    std::optional<Action> unknown;       // destinations without geo data (default: deny)
    std::vector<Cidr> exempt;
    std::optional<OnViolation> on_violation;  // default: drop
};

struct Dns {
    std::vector<Cidr> servers;  // host addresses, in the order given
    std::vector<std::string> search;
};

// egress: the workload's connections to match_addr:match_port go to target instead.
// ingress: connections to the host's match_port go to the workload's target_port.
struct Forward {
    Direction direction = Direction::Egress;
    Proto proto = Proto::Tcp;        // tcp or udp
    std::optional<Cidr> match_addr;  // egress only; nullopt: any destination address
    uint16_t match_port = 0;
    std::optional<Cidr> target_addr;  // egress: required; ingress: nullopt
    uint16_t target_port = 0;
    std::string text;
    SourceLoc loc;
};

struct Persona {
    std::string name;
    std::string parent;  // `extends`; empty: none. Its settings are already merged in.
    std::string description;
    Mode mode = Mode::Enforce;
    Action default_ingress = Action::Allow;
    Action default_egress = Action::Allow;
    std::vector<Rule> rules;  // inherited rules first (ids 1..n), then the persona's own
    Encryption encryption;
    Ids ids;
    Qos qos;
    Topology topology;
    Sovereignty sovereignty;
    Dns dns;
    std::vector<Forward> forwards;
    SourceLoc loc;
};

// A top-level `bind NAME { ... }`: workloads that get `persona` when they appear.
struct BindRule {
    std::string persona;
    std::vector<std::string> cgroups;     // path globs, absolute within the cgroup tree
    std::vector<std::string> users;       // names or numeric uids
    std::vector<std::string> groups;      // names or numeric gids
    std::vector<std::string> interfaces;  // interface name globs
    SourceLoc loc;
};

}  // namespace pdl::ir
