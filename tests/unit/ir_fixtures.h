// Personas built directly as IR, for lowering and MapImage tests that must not depend on
// the parser: one that sets every section, and the pieces to build others.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "pdl-compiler/ir.h"
#include "pdl-compiler/values.h"

namespace pdl::test {

inline ir::Cidr cidr(const std::string& text) {
    auto parsed = parse_cidr(text);
    EXPECT_TRUE(parsed && parsed->error.empty()) << "bad CIDR in a test: " << text;
    return parsed ? parsed->cidr : ir::Cidr{};
}

inline ir::Rule rule(uint32_t id, ir::Action action, ir::Direction dir, ir::Proto proto,
                     std::vector<ir::PortRange> ports, std::vector<ir::Cidr> peers) {
    ir::Rule r;
    r.id = id;
    r.action = action;
    r.direction = dir;
    r.proto = proto;
    r.ports = std::move(ports);
    r.peers = std::move(peers);
    return r;
}

inline ir::Match match(std::optional<ir::Direction> dir, ir::Proto proto,
                       std::vector<ir::PortRange> ports, std::vector<ir::Cidr> peers) {
    ir::Match m;
    m.direction = dir;
    m.proto = proto;
    m.ports = std::move(ports);
    m.peers = std::move(peers);
    return m;
}

inline ir::Forward forward(ir::Direction dir, ir::Proto proto, std::optional<ir::Cidr> match_addr,
                           uint16_t match_port, std::optional<ir::Cidr> target_addr,
                           uint16_t target_port) {
    ir::Forward f;
    f.direction = dir;
    f.proto = proto;
    f.match_addr = std::move(match_addr);
    f.match_port = match_port;
    f.target_addr = std::move(target_addr);
    f.target_port = target_port;
    return f;
}

// A persona that sets every section (the product sketch's web-frontend, give or take).
inline ir::Persona full_persona() {
    using D = ir::Direction;
    using P = ir::Proto;
    ir::Persona p;
    p.name = "full";
    p.default_ingress = ir::Action::Deny;
    p.default_egress = ir::Action::Deny;
    p.rules = {rule(1, ir::Action::Allow, D::Ingress, P::Tcp, {{80, 80}, {443, 443}}, {}),
               rule(2, ir::Action::Allow, D::Egress, P::Tcp, {{5432, 5432}}, {cidr("10.1.0.0/16")}),
               rule(3, ir::Action::Deny, D::Egress, P::Any, {}, {cidr("169.254.169.254")})};

    p.encryption.required = true;
    p.encryption.min_tls = ir::TlsVersion::V1_3;
    p.encryption.exceptions = {match(D::Egress, P::Udp, {{53, 53}}, {}),
                               match(std::nullopt, P::Tcp, {{22, 22}}, {cidr("192.168.0.0/16")})};

    p.ids.syn_flood = ir::Threshold{2000, 1'000'000'000, 60'000'000'000};
    p.ids.port_scan = ir::Threshold{50, 10'000'000'000, 300'000'000'000};

    p.qos.egress = ir::Shaping{200'000'000, 262'144};
    p.qos.ingress = ir::Shaping{500'000'000, 0};
    p.qos.priority = ir::Priority::High;
    p.qos.latency_target_ns = 5'000'000;

    p.topology.route = ir::Route{ir::Route::Kind::Table, 100, {}};
    p.topology.next_hops = {cidr("10.0.0.2"), cidr("2001:db8::1"), cidr("10.0.0.1")};
    p.topology.max_hops = 8;

    p.sovereignty.list = ir::Action::Allow;
    p.sovereignty.countries = {"CH", "DE", "NO"};
    p.sovereignty.exempt = {cidr("10.0.0.0/8"), cidr("192.168.0.0/16"), cidr("fd00::/8")};
    p.sovereignty.on_violation = ir::OnViolation::Log;

    p.dns.servers = {cidr("10.0.0.53"), cidr("fd00::53")};
    p.dns.search = {"corp.example", "example.org"};

    p.forwards = {forward(D::Egress, P::Tcp, cidr("127.0.0.1"), 5432, cidr("10.1.2.3"), 5432),
                  forward(D::Ingress, P::Tcp, std::nullopt, 8443, std::nullopt, 443),
                  forward(D::Egress, P::Udp, std::nullopt, 53, cidr("fd00::53"), 53)};
    return p;
}

}  // namespace pdl::test
