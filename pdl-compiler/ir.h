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

struct Persona {
    std::string name;
    std::string description;
    Mode mode = Mode::Enforce;
    Action default_ingress = Action::Allow;
    Action default_egress = Action::Allow;
    std::vector<Rule> rules;
    SourceLoc loc;
};

}  // namespace pdl::ir
