// What the semantic pass makes of each section, of `extends` and of `import`: the checked
// IR, value by value (units converted, groups expanded, inheritance merged).
#include <gtest/gtest.h>

#include "pdl-compiler/compiler.h"
#include "pdl-compiler/values.h"

namespace pdl {
namespace {

CompileOutput compile_with(const std::string& main, std::vector<Source> imports = {}) {
    CompileOptions options;
    options.loader = map_loader(std::move(imports));
    return compile(Source{"t.pdl", main}, options);
}

const ir::Persona& only(const CompileOutput& out) {
    EXPECT_TRUE(out.ok()) << out.diagnostics;
    EXPECT_EQ(out.personas.size(), 1u);
    static const ir::Persona none;
    return out.personas.empty() ? none : out.personas[0];
}

std::vector<std::string> cidrs(const std::vector<ir::Cidr>& v) {
    std::vector<std::string> out;
    for (const auto& c : v) out.push_back(format_cidr(c));
    return out;
}

TEST(SemaIr, EverySection) {
    auto out = compile_with(R"pdl(set dns = { 10.0.0.53, fd00::53 }

persona p {
  security {
    encryption required min-tls 1.3 except { udp port 53, egress tcp port 22 to 10.9.0.0/16 }
    ids {
      syn-flood 2000/s block 60s
      port-scan 50/10s
    }
  }
  qos {
    egress rate 200mbit burst 256kb
    ingress rate 1gbit
    priority high
    latency target 500us
  }
  topology {
    route via fd00::1
    next-hops { 10.0.0.1, 10.0.0.2 }
    max-hops 8
  }
  sovereignty {
    deny countries { RU, EFTA }
    unknown allow
    exempt { 10.0.0.0/8, 192.168.0.0/16 }
    on-violation log
  }
  dns {
    servers $dns
    search "corp.example" "example.com"
  }
  forward {
    egress tcp 127.0.0.1:5432 -> 10.1.2.3:6432
    egress udp 53 -> [fd00::53]:5353
    ingress tcp 8443 -> 443
  }
}
)pdl");
    const ir::Persona& p = only(out);
    EXPECT_TRUE(p.encryption.required);
    EXPECT_EQ(p.encryption.min_tls, ir::TlsVersion::V1_3);
    ASSERT_EQ(p.encryption.exceptions.size(), 2u);
    EXPECT_FALSE(p.encryption.exceptions[0].direction.has_value());
    EXPECT_EQ(p.encryption.exceptions[0].text, "udp port 53");
    EXPECT_EQ(p.encryption.exceptions[1].text, "egress tcp port 22 to 10.9.0.0/16");
    EXPECT_EQ(p.encryption.exceptions[1].direction, ir::Direction::Egress);

    ASSERT_TRUE(p.ids.syn_flood.has_value());
    EXPECT_EQ(*p.ids.syn_flood, (ir::Threshold{2000, 1'000'000'000, 60'000'000'000}));
    EXPECT_EQ(*p.ids.port_scan, (ir::Threshold{50, 10'000'000'000, 0}));

    EXPECT_EQ(*p.qos.egress, (ir::Shaping{200'000'000, 256 * 1024}));
    EXPECT_EQ(*p.qos.ingress, (ir::Shaping{1'000'000'000, 0}));
    EXPECT_EQ(p.qos.priority, ir::Priority::High);
    EXPECT_EQ(p.qos.latency_target_ns, 500'000u);

    ASSERT_TRUE(p.topology.route.has_value());
    EXPECT_EQ(p.topology.route->kind, ir::Route::Kind::Via);
    EXPECT_EQ(format_cidr(p.topology.route->via), "fd00::1");
    EXPECT_EQ(cidrs(p.topology.next_hops), (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
    EXPECT_EQ(p.topology.max_hops, 8);

    EXPECT_EQ(p.sovereignty.list, ir::Action::Deny);
    EXPECT_EQ(p.sovereignty.countries, (std::vector<std::string>{"CH", "IS", "LI", "NO", "RU"}));
    EXPECT_EQ(p.sovereignty.unknown, ir::Action::Allow);
    EXPECT_EQ(cidrs(p.sovereignty.exempt),
              (std::vector<std::string>{"10.0.0.0/8", "192.168.0.0/16"}));
    EXPECT_EQ(p.sovereignty.on_violation, ir::OnViolation::Log);

    EXPECT_EQ(cidrs(p.dns.servers), (std::vector<std::string>{"10.0.0.53", "fd00::53"}));
    EXPECT_EQ(p.dns.search, (std::vector<std::string>{"corp.example", "example.com"}));

    ASSERT_EQ(p.forwards.size(), 3u);
    EXPECT_EQ(p.forwards[0].text, "egress tcp 127.0.0.1:5432 -> 10.1.2.3:6432");
    EXPECT_EQ(p.forwards[1].text, "egress udp 53 -> [fd00::53]:5353");
    EXPECT_FALSE(p.forwards[1].match_addr.has_value());
    EXPECT_EQ(p.forwards[1].target_port, 5353);
    EXPECT_EQ(p.forwards[2].direction, ir::Direction::Ingress);
    EXPECT_EQ(p.forwards[2].match_port, 8443);
    EXPECT_EQ(p.forwards[2].target_port, 443);
    EXPECT_FALSE(p.forwards[2].target_addr.has_value());
}

// Repeated ports and peers are dropped, the first of each kept in place: short lists are
// compared directly, long ones sorted, to the same result.
TEST(SemaIr, RepeatsKeepTheFirst) {
    std::string ports, want;
    for (int p = 119; p >= 100; --p) {
        ports += std::to_string(p) + ", ";
        want += (want.empty() ? "" : ", ") + std::to_string(p);
    }
    auto out = compile_with(
        "set hosts = { 10.0.0.2, 10.0.0.1 }\n"
        "persona p {\n  security {\n"
        "    allow egress tcp port { 443, 80, 443, 22, 80 } to "
        "{ 10.0.0.1, $hosts, 10.0.0.3, 10.0.0.2 }\n"
        "    allow egress udp port { " +
        ports + "105, 100, 119 } to any\n  }\n}\n");
    const ir::Persona& p = only(out);
    ASSERT_EQ(p.rules.size(), 2u);
    EXPECT_EQ(p.rules[0].text,
              "allow egress tcp port { 443, 80, 22 } to { 10.0.0.1, 10.0.0.2, 10.0.0.3 }");
    EXPECT_EQ(p.rules[1].text, "allow egress udp port { " + want + " } to any");
}

TEST(SemaIr, UnsetSectionsStayUnset) {
    const auto out = compile_with("persona p {\n}\n");
    const ir::Persona& p = only(out);
    EXPECT_FALSE(p.encryption.required);
    EXPECT_FALSE(p.ids.syn_flood || p.ids.port_scan);
    EXPECT_FALSE(p.qos.egress || p.qos.ingress || p.qos.priority || p.qos.latency_target_ns);
    EXPECT_FALSE(p.topology.route || p.topology.max_hops);
    EXPECT_FALSE(p.sovereignty.list || p.sovereignty.unknown || p.sovereignty.on_violation);
    EXPECT_TRUE(p.dns.servers.empty() && p.forwards.empty() && p.parent.empty());
}

TEST(SemaIr, RouteTableNames) {
    const auto out = compile_with("persona p {\n  topology {\n    route table main\n  }\n}\n");
    const ir::Persona& p = only(out);
    ASSERT_TRUE(p.topology.route.has_value());
    EXPECT_EQ(p.topology.route->table, 254u);
}

// Rules add up, parent first (ids renumbered); single settings of the child replace the
// parent's; list settings replace as a whole; exempt ranges and forwards add up, a
// child's forward of the same port replacing the parent's.
TEST(SemaIr, ExtendsMergesParentFirst) {
    auto out = compile_with(R"pdl(persona base {
  description "base"
  security {
    default egress deny
    allow egress udp port 53 to any
    encryption required
  }
  qos {
    egress rate 10mbit
    priority low
  }
  sovereignty {
    allow countries { EU }
    exempt 10.0.0.0/8
  }
  dns {
    servers { 10.0.0.53, 10.0.0.54 }
  }
  forward {
    egress tcp 5432 -> 10.1.2.3:5432
    ingress tcp 8080 -> 80
  }
}

persona mid extends base {
  security {
    allow egress tcp port 443 to any
  }
  qos {
    priority high
  }
}

persona leaf extends mid {
  description "leaf"
  security {
    default ingress deny
    allow ingress tcp port 22 from 10.0.0.0/8
  }
  sovereignty {
    deny countries { RU }
    exempt 192.168.0.0/16
  }
  dns {
    servers 10.9.9.9
  }
  forward {
    egress tcp 5432 -> 10.7.7.7:5432
  }
}
)pdl");
    ASSERT_TRUE(out.ok()) << out.diagnostics;
    ASSERT_EQ(out.personas.size(), 3u);
    const ir::Persona& leaf = out.personas[2];
    EXPECT_EQ(leaf.name, "leaf");
    EXPECT_EQ(leaf.parent, "mid");
    EXPECT_EQ(leaf.description, "leaf");
    EXPECT_EQ(out.personas[1].description, "base");
    EXPECT_EQ(leaf.default_egress, ir::Action::Deny);
    EXPECT_EQ(leaf.default_ingress, ir::Action::Deny);
    ASSERT_EQ(leaf.rules.size(), 3u);
    EXPECT_EQ(leaf.rules[0].text, "allow egress udp port 53 to any");
    EXPECT_EQ(leaf.rules[1].text, "allow egress tcp port 443 to any");
    EXPECT_EQ(leaf.rules[2].text, "allow ingress tcp port 22 from 10.0.0.0/8");
    for (size_t i = 0; i < leaf.rules.size(); ++i) EXPECT_EQ(leaf.rules[i].id, i + 1);
    EXPECT_EQ(leaf.rules[0].loc.line, 5u);  // where the parent wrote it
    EXPECT_TRUE(leaf.encryption.required);
    EXPECT_EQ(leaf.qos.egress->rate_bps, 10'000'000u);
    EXPECT_EQ(leaf.qos.priority, ir::Priority::High);
    EXPECT_EQ(leaf.sovereignty.list, ir::Action::Deny);
    EXPECT_EQ(leaf.sovereignty.countries, std::vector<std::string>{"RU"});
    EXPECT_EQ(cidrs(leaf.sovereignty.exempt),
              (std::vector<std::string>{"10.0.0.0/8", "192.168.0.0/16"}));
    EXPECT_EQ(cidrs(leaf.dns.servers), std::vector<std::string>{"10.9.9.9"});
    ASSERT_EQ(leaf.forwards.size(), 2u);
    EXPECT_EQ(leaf.forwards[0].text, "ingress tcp 8080 -> 80");
    EXPECT_EQ(leaf.forwards[1].text, "egress tcp 5432 -> 10.7.7.7:5432");
}

// Only the compiled file's personas and binds are output; imported ones are parents and
// sets. A file imported twice (a diamond) is loaded once.
TEST(SemaIr, ImportsProvideSetsAndParents) {
    auto out = compile_with(R"pdl(import "lib/a.pdl"
import "lib/b.pdl"

persona web extends base {
  security {
    allow ingress tcp port $web_ports from $office
  }
}

bind web {
  cgroup "/system.slice/nginx.service"
  user alice
  group "webops"
  interface "tap-web*"
}
)pdl",
                            {{"lib/a.pdl", "import \"common.pdl\"\nset web_ports = { 80, 443 }\n"},
                             {"lib/b.pdl", "import \"./common.pdl\"\npersona base {\n}\n"},
                             {"lib/common.pdl", "set office = { 10.1.0.0/16 }\n"}});
    const ir::Persona& p = only(out);
    EXPECT_EQ(p.name, "web");
    EXPECT_EQ(p.rules.at(0).text, "allow ingress tcp port { 80, 443 } from 10.1.0.0/16");
    ASSERT_EQ(out.imports.size(), 3u);
    EXPECT_EQ(out.imports[0].filename, "lib/common.pdl");
    EXPECT_EQ(out.imports[1].filename, "lib/a.pdl");
    EXPECT_EQ(out.imports[2].filename, "lib/b.pdl");
    ASSERT_EQ(out.binds.size(), 1u);
    const ir::BindRule& b = out.binds[0];
    EXPECT_EQ(b.persona, "web");
    EXPECT_EQ(b.cgroups, std::vector<std::string>{"/system.slice/nginx.service"});
    EXPECT_EQ(b.users, std::vector<std::string>{"alice"});
    EXPECT_EQ(b.groups, std::vector<std::string>{"webops"});
    EXPECT_EQ(b.interfaces, std::vector<std::string>{"tap-web*"});
    EXPECT_EQ(b.loc.line, 10u);
}

TEST(SemaIr, ErrorsInAnImportCompileToNothing) {
    auto out = compile_with("import \"lib.pdl\"\n\npersona p {\n}\n",
                            {{"lib.pdl", "set x = { 99999 }\n"}});
    EXPECT_FALSE(out.ok());
    EXPECT_TRUE(out.personas.empty());
    EXPECT_EQ(out.errors, 1u);
}

}  // namespace
}  // namespace pdl
