// One test per diagnostic of the semantic pass and lint for the sections beyond the
// firewall (encryption, ids, qos, topology, sovereignty, dns, forward, bind) and for
// `import` and `extends`: the exact rendered text is part of the user interface.
// Generated from real compiler output, then reviewed line by line.
#include <gtest/gtest.h>

#include "pdl-compiler/compiler.h"

namespace pdl {
namespace {

// Compiles t.pdl; `imports` are the only other files that exist (none: the file system).
std::string diagnostics_with(const std::string& main, std::vector<Source> imports = {}) {
    CompileOptions options;
    if (!imports.empty()) options.loader = map_loader(std::move(imports));
    return compile(Source{"t.pdl", main}, options).diagnostics;
}

TEST(Sema, MinTlsWithoutRequired) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  security {
    encryption optional min-tls 1.2
  }
}
)pdl"),
              R"pdl(t.pdl:3:33: error: 'min-tls' applies only to 'encryption required'
    encryption optional min-tls 1.2
                                ^~~
)pdl");
}

TEST(Sema, UnknownTlsVersion) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  security {
    encryption required min-tls 1.4
  }
}
)pdl"),
              R"pdl(t.pdl:3:33: error: unknown TLS version '1.4'; expected 1.0, 1.1, 1.2 or 1.3
    encryption required min-tls 1.4
                                ^~~
)pdl");
}

TEST(Sema, ExceptWithoutRequired) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  security {
    encryption optional except { udp port 53 }
  }
}
)pdl"),
              R"pdl(t.pdl:3:25: error: 'except' applies only to 'encryption required'
    encryption optional except { udp port 53 }
                        ^~~~~~
)pdl");
}

TEST(Sema, EmptyExceptionList) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    encryption required except {}
  }
}
)pdl"),
        R"pdl(t.pdl:3:32: error: empty exception list; expected at least one flow pattern, e.g. 'udp port 53'
    encryption required except {}
                               ^~
)pdl");
}

TEST(Sema, PatternPeersNeedDirection) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    encryption required except { udp port 53 to 10.0.0.53 }
  }
}
)pdl"),
        R"pdl(t.pdl:3:46: error: a pattern with peers needs a direction: 'egress udp ... to ...' or 'ingress udp ... from ...'
    encryption required except { udp port 53 to 10.0.0.53 }
                                             ^~
)pdl");
}

TEST(Sema, PatternWrongPeerKeyword) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    encryption required except { egress udp port 53 from 10.0.0.53 }
  }
}
)pdl"),
        R"pdl(t.pdl:3:53: error: egress patterns name the destination with 'to'; did you mean 'to'?
    encryption required except { egress udp port 53 from 10.0.0.53 }
                                                    ^~~~
)pdl");
}

TEST(Sema, PatternPortNeedsTcpOrUdp) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  security {
    encryption required except { icmp port 53 }
  }
}
)pdl"),
              R"pdl(t.pdl:3:39: error: 'port' needs tcp or udp; icmp has no ports
    encryption required except { icmp port 53 }
                                      ^~~~
)pdl");
}

TEST(Sema, EncryptionTwice) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  security {
    encryption required
    encryption optional
  }
}
)pdl"),
              R"pdl(t.pdl:4:5: error: 'encryption' is given twice in persona 'p'
    encryption optional
    ^~~~~~~~~~
t.pdl:3:5: note: first given here
    encryption required
    ^~~~~~~~~~
)pdl");
}

TEST(Sema, EventRateShape) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    ids {
      syn-flood 2000
    }
  }
}
)pdl"),
        R"pdl(t.pdl:4:17: error: invalid event rate '2000'; expected COUNT/WINDOW, e.g. 2000/s or 50/10s
      syn-flood 2000
                ^~~~
)pdl");
}

TEST(Sema, EventRateCount) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  security {
    ids {
      syn-flood 0/s
    }
  }
}
)pdl"),
              R"pdl(t.pdl:4:17: error: event count 0 is out of range; expected 1-4294967295
      syn-flood 0/s
                ^~~
)pdl");
}

TEST(Sema, EventRateWindow) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    ids {
      port-scan 50/10q
    }
  }
}
)pdl"),
        R"pdl(t.pdl:4:17: error: invalid window in event rate '50/10q'; expected a duration after '/' (e.g. 2000/s or 50/10s)
      port-scan 50/10q
                ^~~~~~
)pdl");
}

TEST(Sema, BlockTime) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    ids {
      syn-flood 2000/s block 60
    }
  }
}
)pdl"),
        R"pdl(t.pdl:4:30: error: block time: duration '60' needs a unit (ns, us, ms, s, m or h), e.g. 60s
      syn-flood 2000/s block 60
                             ^~
)pdl");
}

TEST(Sema, ThresholdTwice) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  security {
    ids {
      syn-flood 2000/s
      syn-flood 100/s
    }
  }
}
)pdl"),
              R"pdl(t.pdl:5:7: error: 'syn-flood' is given twice in persona 'p'
      syn-flood 100/s
      ^~~~~~~~~
t.pdl:4:7: note: first given here
      syn-flood 2000/s
      ^~~~~~~~~
)pdl");
}

TEST(Sema, RateUnknownUnit) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  qos {
    egress rate 200mbits
  }
}
)pdl"),
        R"pdl(t.pdl:3:17: error: unknown unit 'mbits' in rate '200mbits'; expected bit, kbit, mbit, gbit or tbit
    egress rate 200mbits
                ^~~~~~~~
)pdl");
}

TEST(Sema, RateNeedsUnit) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  qos {
    egress rate 200
  }
}
)pdl"),
        R"pdl(t.pdl:3:17: error: rate '200' needs a unit (bit, kbit, mbit, gbit or tbit), e.g. 200mbit
    egress rate 200
                ^~~
)pdl");
}

TEST(Sema, RateBps) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  qos {
    egress rate 200mbps
  }
}
)pdl"),
        R"pdl(t.pdl:3:17: error: ambiguous rate '200mbps'; PDL rates are bits per second: write bit, kbit, mbit, gbit or tbit (e.g. 200mbit)
    egress rate 200mbps
                ^~~~~~~
)pdl");
}

TEST(Sema, RateZero) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  qos {
    ingress rate 0mbit
  }
}
)pdl"),
              R"pdl(t.pdl:3:18: error: rate must be greater than zero
    ingress rate 0mbit
                 ^~~~~
)pdl");
}

TEST(Sema, RateTooLarge) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  qos {
    ingress rate 99999999999999tbit
  }
}
)pdl"),
              R"pdl(t.pdl:3:18: error: rate '99999999999999tbit' is too large
    ingress rate 99999999999999tbit
                 ^~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, Burst) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  qos {
    egress rate 1gbit burst 256k
  }
}
)pdl"),
        R"pdl(t.pdl:3:29: error: burst: unknown unit 'k' in size '256k'; expected b, kb, mb or gb
    egress rate 1gbit burst 256k
                            ^~~~
)pdl");
}

TEST(Sema, ShapingTwice) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  qos {
    egress rate 1gbit
    egress rate 2gbit
  }
}
)pdl"),
              R"pdl(t.pdl:4:5: error: 'egress rate' is given twice in persona 'p'
    egress rate 2gbit
    ^~~~~~
t.pdl:3:5: note: first given here
    egress rate 1gbit
    ^~~~~~
)pdl");
}

TEST(Sema, LatencyTarget) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  qos {
    latency target 5
  }
}
)pdl"),
        R"pdl(t.pdl:3:20: error: latency target: duration '5' needs a unit (ns, us, ms, s, m or h), e.g. 60s
    latency target 5
                   ^
)pdl");
}

TEST(Sema, PriorityTwice) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  qos {
    priority high
    priority low
    latency target 5ms
  }
}
)pdl"),
              R"pdl(t.pdl:4:5: error: 'priority' is given twice in persona 'p'
    priority low
    ^~~~~~~~
t.pdl:3:5: note: first given here
    priority high
    ^~~~~~~~
)pdl");
}

TEST(Sema, RouteTwice) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  topology {
    route table 100
    route via 10.0.0.1
  }
}
)pdl"),
        R"pdl(t.pdl:4:5: error: a persona routes through one table or one gateway; 'route' is given twice in persona 'p'
    route via 10.0.0.1
    ^~~~~~~~~
t.pdl:3:5: note: first given here
    route table 100
    ^~~~~
)pdl");
}

TEST(Sema, RouteTable) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  topology {
    route table 0
  }
}
)pdl"),
        R"pdl(t.pdl:3:17: error: invalid routing table '0'; expected a number 1-4294967295, 'main', 'default' or 'local'
    route table 0
                ^
)pdl");
}

TEST(Sema, RouteTableName) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  topology {
    route table vpn
  }
}
)pdl"),
        R"pdl(t.pdl:3:17: error: invalid routing table 'vpn'; expected a number 1-4294967295, 'main', 'default' or 'local'
    route table vpn
                ^~~
)pdl");
}

TEST(Sema, RouteViaNetwork) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  topology {
    route via 10.0.0.0/8
  }
}
)pdl"),
        R"pdl(t.pdl:3:15: error: route via: expected a single address, found the network 10.0.0.0/8
    route via 10.0.0.0/8
              ^~~~~~~~~~
)pdl");
}

TEST(Sema, NextHopNetwork) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  topology {
    next-hops { 10.0.0.1, 10.0.0.0/24 }
  }
}
)pdl"),
        R"pdl(t.pdl:3:27: error: expected a single address for next hop, found the network 10.0.0.0/24
    next-hops { 10.0.0.1, 10.0.0.0/24 }
                          ^~~~~~~~~~~
)pdl");
}

TEST(Sema, NextHopSetNetwork) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(set gw = { 10.0.0.1, 10.1.0.0/16 }

persona p {
  topology {
    next-hops $gw
  }
}
)pdl"),
        R"pdl(t.pdl:5:15: error: set '$gw' contains the network 10.1.0.0/16, but a next hop is a single address
    next-hops $gw
              ^~~
)pdl");
}

TEST(Sema, TooManyNextHops) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  topology {
    next-hops { 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9 }
  }
}
)pdl"),
              R"pdl(t.pdl:3:15: error: too many next hops (9); at most 8
    next-hops { 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5, 10.0.0.6, 10.0.0.7, 10.0.0.8, 10.0.0.9 }
              ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, MaxHops) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  topology {
    max-hops 256
  }
}
)pdl"),
              R"pdl(t.pdl:3:14: error: invalid hop limit '256'; expected a number 1-255
    max-hops 256
             ^~~
)pdl");
}

TEST(Sema, UnknownCountry) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  sovereignty {
    allow countries { DE, XX }
  }
}
)pdl"),
        R"pdl(t.pdl:3:27: error: unknown country code 'XX'; expected an ISO 3166-1 alpha-2 code (e.g. DE) or a group (EEA, EFTA or EU)
    allow countries { DE, XX }
                          ^~
)pdl");
}

TEST(Sema, CountryUK) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  sovereignty {
    allow countries { UK }
  }
}
)pdl"),
        R"pdl(t.pdl:3:23: error: unknown country code 'UK'; the ISO 3166-1 code of the United Kingdom is GB
    allow countries { UK }
                      ^~
)pdl");
}

TEST(Sema, CountryLowerCase) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  sovereignty {
    allow countries { de, eu }
  }
}
)pdl"),
        R"pdl(t.pdl:3:23: error: unknown country code 'de'; country codes and groups are upper case: DE
    allow countries { de, eu }
                      ^~
t.pdl:3:27: error: unknown country code 'eu'; country codes and groups are upper case: EU
    allow countries { de, eu }
                          ^~
)pdl");
}

TEST(Sema, CountrySet) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(set c = { 10.0.0.1 }

persona p {
  sovereignty {
    allow countries $c
  }
}
)pdl"),
        R"pdl(t.pdl:5:21: error: country lists cannot use sets ('$c'); list the country codes or groups
    allow countries $c
                    ^~
)pdl");
}

TEST(Sema, EmptyCountries) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  sovereignty {
    deny countries {}
  }
}
)pdl"),
        R"pdl(t.pdl:3:20: error: empty country list; expected at least one country code or group
    deny countries {}
                   ^~
)pdl");
}

TEST(Sema, CountryListsConflict) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  sovereignty {
    allow countries { EU }
    deny countries { RU }
  }
}
)pdl"),
        R"pdl(t.pdl:4:5: error: a persona has one country list, either 'allow countries' or 'deny countries'; it is given twice in persona 'p'
    deny countries { RU }
    ^~~~~~~~~~~~~~~~~~~~~
t.pdl:3:5: note: first given here
    allow countries { EU }
    ^~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, ExemptBad) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  sovereignty {
    exempt { 10.0.0.0/8, example.com }
  }
}
)pdl"),
              R"pdl(t.pdl:3:26: error: expected an address, a CIDR or a $set, found 'example.com'
    exempt { 10.0.0.0/8, example.com }
                         ^~~~~~~~~~~
)pdl");
}

TEST(Sema, DnsServerNetwork) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  dns {
    servers 10.0.0.0/24
  }
}
)pdl"),
        R"pdl(t.pdl:3:13: error: expected a single address for DNS server, found the network 10.0.0.0/24
    servers 10.0.0.0/24
            ^~~~~~~~~~~
)pdl");
}

TEST(Sema, TooManyDnsServers) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  dns {
    servers { 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5 }
  }
}
)pdl"),
              R"pdl(t.pdl:3:13: error: too many DNS servers (5); at most 4
    servers { 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 10.0.0.5 }
            ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, SearchDomain) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  dns {
    search "corp.example" "bad_domain.example" "-x.example"
  }
}
)pdl"),
        R"pdl(t.pdl:3:27: error: invalid character '_' in search domain 'bad_domain.example'; expected letters, digits, '-' and '.'
    search "corp.example" "bad_domain.example" "-x.example"
                          ^~~~~~~~~~~~~~~~~~~~
t.pdl:3:48: error: label '-x' of search domain '-x.example' starts or ends with '-'
    search "corp.example" "bad_domain.example" "-x.example"
                                               ^~~~~~~~~~~~
)pdl");
}

TEST(Sema, ForwardProto) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  forward {
    egress icmp 10.0.0.1:53 -> 10.0.0.2:53
  }
}
)pdl"),
              R"pdl(t.pdl:3:12: error: forward needs tcp or udp, found 'icmp'
    egress icmp 10.0.0.1:53 -> 10.0.0.2:53
           ^~~~
)pdl");
}

TEST(Sema, ForwardEndpoint) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  forward {
    egress tcp 10.0.0.1:99999 -> 10.0.0.2:x
  }
}
)pdl"),
              R"pdl(t.pdl:3:16: error: port 99999 is out of range; expected 1-65535
    egress tcp 10.0.0.1:99999 -> 10.0.0.2:x
               ^~~~~~~~~~~~~~
t.pdl:3:34: error: invalid endpoint '10.0.0.2:x'; expected [ADDRESS:]PORT, e.g. 10.0.0.1:53 or 53
    egress tcp 10.0.0.1:99999 -> 10.0.0.2:x
                                 ^~~~~~~~~~
)pdl");
}

TEST(Sema, ForwardV6NoBrackets) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  forward {
    egress tcp fd00::1:53 -> [fd00::2]:53
  }
}
)pdl"),
        R"pdl(t.pdl:3:16: error: write an IPv6 address with a port in brackets, e.g. [fd00::1]:53
    egress tcp fd00::1:53 -> [fd00::2]:53
               ^~~~~~~~~~
)pdl");
}

TEST(Sema, ForwardIngressAddress) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  forward {
    ingress tcp 10.0.0.1:8443 -> 443
  }
}
)pdl"),
        R"pdl(t.pdl:3:17: error: ingress forwards map a port of the host to a port of the workload; write ports only, e.g. 'ingress tcp 8443 -> 443'
    ingress tcp 10.0.0.1:8443 -> 443
                ^~~~~~~~~~~~~
)pdl");
}

TEST(Sema, ForwardEgressNoTarget) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  forward {
    egress tcp 5432 -> 5433
  }
}
)pdl"),
        R"pdl(t.pdl:3:24: error: an egress forward needs a target address, e.g. '5432 -> 10.1.2.3:5433'
    egress tcp 5432 -> 5433
                       ^~~~
)pdl");
}

TEST(Sema, ForwardFamilies) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  forward {
    egress tcp 10.0.0.1:53 -> [fd00::2]:53
  }
}
)pdl"),
              R"pdl(t.pdl:3:16: error: a forward cannot translate between IPv4 and IPv6
    egress tcp 10.0.0.1:53 -> [fd00::2]:53
               ^~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, ForwardTwice) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  forward {
    egress tcp 127.0.0.1:5432 -> 10.1.2.3:5432
    egress tcp 127.0.0.1:5432 -> 10.1.2.4:5432
  }
}
)pdl"),
        R"pdl(t.pdl:4:5: error: 'egress tcp 127.0.0.1:5432' is forwarded twice in persona 'p' (first on line 3)
    egress tcp 127.0.0.1:5432 -> 10.1.2.4:5432
    ^~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, BindUnknownPersona) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona web {
}

bind wbe {
  user alice
}
)pdl"),
              R"pdl(t.pdl:4:6: error: bind names unknown persona 'wbe'; did you mean 'web'?
bind wbe {
     ^~~
)pdl");
}

TEST(Sema, BindImportedPersona) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(import "lib.pdl"

bind base {
  user alice
}
)pdl",
                         {{"lib.pdl", R"pdl(persona base {
}
)pdl"}}),
        R"pdl(t.pdl:3:6: error: bind names persona 'base' from an imported file; a bind block binds a persona defined in the same file
bind base {
     ^~~~
note: 'base' is defined here (lib.pdl:1:9)
)pdl");
}

TEST(Sema, BindCgroupRelative) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
}

bind p {
  cgroup "system.slice/x.service"
}
)pdl"),
        R"pdl(t.pdl:5:10: error: cgroup pattern 'system.slice/x.service' must be an absolute path in the cgroup tree, e.g. "/system.slice/nginx.service"
  cgroup "system.slice/x.service"
         ^~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, BindCgroupDots) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
}

bind p {
  cgroup "/system.slice/../x"
}
)pdl"),
        R"pdl(t.pdl:5:10: error: cgroup pattern '/system.slice/../x' must not contain '.' or '..' components
  cgroup "/system.slice/../x"
         ^~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, BindInterfaceLong) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
}

bind p {
  interface "averyveryverylongname*"
}
)pdl"),
        R"pdl(t.pdl:5:13: error: interface pattern 'averyveryverylongname*' cannot match anything: interface names are at most 15 characters
  interface "averyveryverylongname*"
            ^~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Sema, BindInterfaceSlash) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
}

bind p {
  interface "tap/0"
}
)pdl"),
        R"pdl(t.pdl:5:13: error: interface pattern 'tap/0' contains '/', which no interface name can
  interface "tap/0"
            ^~~~~~~
)pdl");
}

TEST(Sema, BindUser) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
}

bind p {
  user "Alice Smith"
}
)pdl"),
        R"pdl(t.pdl:5:8: error: invalid user name 'Alice Smith'; expected a user name (lower case letters, digits, '_', '-', '.') or a numeric uid
  user "Alice Smith"
       ^~~~~~~~~~~~~
)pdl");
}

TEST(Sema, BindTwoPersonas) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona a {
}

persona b {
}

bind a {
  group webops
}

bind b {
  group webops
}
)pdl"),
        R"pdl(t.pdl:12:9: error: group 'webops' is bound to persona 'a' already; a workload gets one persona
  group webops
        ^~~~~~
t.pdl:8:9: note: bound here
  group webops
        ^~~~~~
)pdl");
}

TEST(Sema, ExtendsUnknown) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona base {
}

persona web extends bsae {
}
)pdl"),
        R"pdl(t.pdl:4:21: error: persona 'web' extends unknown persona 'bsae'; did you mean 'base'?
persona web extends bsae {
                    ^~~~
)pdl");
}

TEST(Sema, ExtendsCycle) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona a extends b {
}

persona b extends a {
}
)pdl"),
              R"pdl(t.pdl:4:19: error: inheritance cycle: b -> a -> b
persona b extends a {
                  ^
)pdl");
}

TEST(Sema, ExtendsSelf) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona a extends a {
}
)pdl"),
              R"pdl(t.pdl:1:19: error: inheritance cycle: a -> a
persona a extends a {
                  ^
)pdl");
}

TEST(Sema, ExtendsNotImported) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(import "b.pdl"
import "a.pdl"
)pdl",
                         {{"a.pdl", R"pdl(persona c extends base {
}
)pdl"},
                          {"b.pdl", R"pdl(persona base {
}
)pdl"}}),
        R"pdl(a.pdl:1:19: error: persona 'base' is defined in 'b.pdl', which this file does not import
persona c extends base {
                  ^~~~
)pdl");
}

TEST(Sema, ExtendsBrokenParent) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona base {
  security {
    allow egress tcp to 10.0.0.0/33
  }
}

persona web extends base {
}
)pdl"),
              R"pdl(t.pdl:3:25: error: prefix length /33 is out of range for IPv4 (0-32)
    allow egress tcp to 10.0.0.0/33
                        ^~~~~~~~~~~
)pdl");
}

TEST(Sema, ImportMissing) {
    EXPECT_EQ(diagnostics_with(R"pdl(import "nope.pdl"

persona p {
}
)pdl"),
              R"pdl(t.pdl:1:8: error: cannot import 'nope.pdl' (nope.pdl): No such file or directory
import "nope.pdl"
       ^~~~~~~~~~
)pdl");
}

TEST(Sema, ImportMissingNoFollowOnErrors) {
    EXPECT_EQ(diagnostics_with(R"pdl(import "nope.pdl"

persona p extends base {
  security {
    allow egress tcp port $web to any
  }
}
)pdl"),
              R"pdl(t.pdl:1:8: error: cannot import 'nope.pdl' (nope.pdl): No such file or directory
import "nope.pdl"
       ^~~~~~~~~~
)pdl");
}

TEST(Sema, BindUserIdRange) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
}

bind p {
  user 4294967295
}
)pdl"),
        R"pdl(t.pdl:5:8: error: invalid user name '4294967295'; expected a user name (lower case letters, digits, '_', '-', '.') or a numeric uid
  user 4294967295
       ^~~~~~~~~~
)pdl");
}

TEST(Sema, ImportCycle) {
    EXPECT_EQ(diagnostics_with(R"pdl(import "a.pdl"

persona p {
}
)pdl",
                               {{"a.pdl", R"pdl(import "b.pdl"
)pdl"},
                                {"b.pdl", R"pdl(import "a.pdl"
)pdl"}}),
              R"pdl(b.pdl:1:8: error: import cycle: a.pdl -> b.pdl -> a.pdl
import "a.pdl"
       ^~~~~~~
)pdl");
}

TEST(Sema, ImportSelf) {
    EXPECT_EQ(diagnostics_with(R"pdl(import "t.pdl"

persona p {
}
)pdl"),
              R"pdl(t.pdl:1:8: error: import cycle: t.pdl -> t.pdl
import "t.pdl"
       ^~~~~~~
)pdl");
}

TEST(Sema, ImportErrorsInLibrary) {
    EXPECT_EQ(diagnostics_with(R"pdl(import "lib.pdl"

persona p extends base {
}
)pdl",
                               {{"lib.pdl", R"pdl(persona base {
  security {
    allow egress tcp port 70000 to any
  }
}
)pdl"}}),
              R"pdl(lib.pdl:3:27: error: port 70000 is out of range; expected 0-65535
    allow egress tcp port 70000 to any
                          ^~~~~
)pdl");
}

TEST(Sema, SetFromUnimportedFile) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(import "b.pdl"
import "a.pdl"
)pdl",
                         {{"a.pdl", R"pdl(persona p {
  security {
    allow egress tcp port $web to any
  }
}
)pdl"},
                          {"b.pdl", R"pdl(set web = { 80 }
)pdl"}}),
        R"pdl(a.pdl:3:27: error: set '$web' is defined in 'b.pdl', which this file does not import
    allow egress tcp port $web to any
                          ^~~~
)pdl");
}

TEST(Sema, DuplicateAcrossFiles) {
    EXPECT_EQ(diagnostics_with(R"pdl(import "lib.pdl"

set web = { 443 }

persona base {
}
)pdl",
                               {{"lib.pdl", R"pdl(set web = { 80 }

persona base {
}
)pdl"}}),
              R"pdl(t.pdl:3:5: error: duplicate set 'web'
set web = { 443 }
    ^~~
note: 'web' is first defined here (lib.pdl:1:5)
t.pdl:5:9: error: duplicate persona 'base'
persona base {
        ^~~~
note: 'base' is first defined here (lib.pdl:3:9)
)pdl");
}

TEST(Sema, SetNotVisibleToImport) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(import "lib.pdl"

set web = { 443 }
)pdl",
                         {{"lib.pdl", R"pdl(persona base {
  security {
    allow egress tcp port $web to any
  }
}
)pdl"}}),
        R"pdl(lib.pdl:3:27: error: set '$web' is defined in 't.pdl', which this file does not import
    allow egress tcp port $web to any
                          ^~~~
)pdl");
}

TEST(Sema, LintLatencyWithoutPriority) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  qos {
    latency target 5ms
  }
}
)pdl"),
        R"pdl(t.pdl:3:5: warning: latency target without a qos priority: persona 'p' competes at normal priority, so nothing backs the target under contention
    latency target 5ms
    ^~~~~~~~~~~~~~~~~~
note: add 'priority high' (or critical) to the qos block, or 'priority normal' to say that is intended
)pdl");
}

TEST(Sema, LintSovereigntyWithoutCountries) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  sovereignty {
    unknown deny
    exempt 10.0.0.0/8
  }
}
)pdl"),
        R"pdl(t.pdl:3:5: warning: this sovereignty setting has no effect: persona 'p' has no 'allow countries' or 'deny countries' list
    unknown deny
    ^~~~~~~~~~~~
t.pdl:4:5: warning: this sovereignty setting has no effect: persona 'p' has no 'allow countries' or 'deny countries' list
    exempt 10.0.0.0/8
    ^~~~~~
)pdl");
}

TEST(Sema, LintCountryTwice) {
    EXPECT_EQ(diagnostics_with(R"pdl(persona p {
  sovereignty {
    allow countries { DE, EU, FR, DE, EEA }
  }
}
)pdl"),
              R"pdl(t.pdl:3:31: warning: FR is already in the list, through EU
    allow countries { DE, EU, FR, DE, EEA }
                              ^~
t.pdl:3:35: warning: DE is already in the list
    allow countries { DE, EU, FR, DE, EEA }
                                  ^~
)pdl");
}

TEST(Sema, LintExceptionNeverAllowed) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    default egress deny
    default ingress deny
    allow egress tcp port 443 to any
    encryption required except { udp port 53, egress tcp port 443 }
  }
}
)pdl"),
        R"pdl(t.pdl:6:34: warning: encryption exception 'udp port 53' has no effect: persona 'p' allows no ingress or egress flow it matches
    encryption required except { udp port 53, egress tcp port 443 }
                                 ^~~~~~~~~~~
note: an exception only matters for flows that a rule (or the default) allows
)pdl");
}

TEST(Sema, LintExceptionDenied) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
  security {
    deny egress udp port 53 to any
    encryption required except { egress udp port 53 }
  }
}
)pdl"),
        R"pdl(t.pdl:4:34: warning: encryption exception 'egress udp port 53' has no effect: persona 'p' allows no egress flow it matches
    encryption required except { egress udp port 53 }
                                 ^~~~~~~~~~~~~~~~~~
note: an exception only matters for flows that a rule (or the default) allows
)pdl");
}

TEST(Sema, LintEmptyBind) {
    EXPECT_EQ(
        diagnostics_with(R"pdl(persona p {
}

bind p {
}
)pdl"),
        R"pdl(t.pdl:4:6: warning: bind block for 'p' matches no workload; add cgroup, user, group or interface lines
bind p {
     ^
)pdl");
}

TEST(Sema, LintUnusedSetUsedByNextHops) {
    EXPECT_EQ(diagnostics_with(R"pdl(set gw = { 10.0.0.1 }
set unused = { 10.0.0.2 }

persona p {
  topology {
    next-hops $gw
  }
}
)pdl"),
              R"pdl(t.pdl:2:5: warning: set 'unused' is never used
set unused = { 10.0.0.2 }
    ^~~~~~
)pdl");
}

}  // namespace
}  // namespace pdl
