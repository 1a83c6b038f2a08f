// One test per diagnostic: the exact rendered text (location, message, source line,
// caret and underline, notes) is part of the user interface.
#include <gtest/gtest.h>

#include "tests/unit/test_util.h"

namespace pdl {
namespace {

using test::diagnostics_of;

TEST(Diagnostics, AnyInList) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to { any, 10.0.0.1 }
  }
}
)pdl"),
        R"pdl(t.pdl:3:27: error: 'any' cannot be part of a list; write it alone (to any / from any)
    allow egress tcp to { any, 10.0.0.1 }
                          ^~~
)pdl");
}

TEST(Diagnostics, BadAddr) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to 10.0.0.256
  }
}
)pdl"),
              R"pdl(t.pdl:3:25: error: invalid IPv4 address '10.0.0.256'
    allow egress tcp to 10.0.0.256
                        ^~~~~~~~~~
)pdl");
}

TEST(Diagnostics, BadEscape) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  description "a\qb"
}
)pdl"),
              R"pdl(t.pdl:2:17: error: unknown escape sequence in string; expected \", \\, \n or \t
  description "a\qb"
                ^~
)pdl");
}

TEST(Diagnostics, BadProto) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tpc to any
  }
}
)pdl"),
        R"pdl(t.pdl:3:18: error: unknown protocol 'tpc'; expected tcp, udp, icmp, icmpv6 or any; did you mean 'tcp'?
    allow egress tpc to any
                 ^~~
)pdl");
}

TEST(Diagnostics, DefaultBad) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    default ingress drop
  }
}
)pdl"),
        R"pdl(t.pdl:3:21: error: expected 'allow' or 'deny' after 'default ingress', found 'drop'
    default ingress drop
                    ^~~~
)pdl");
}

TEST(Diagnostics, DescInSec) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    description "x"
  }
}
)pdl"),
        R"pdl(t.pdl:3:5: error: 'description' belongs directly in the persona, not in its security block
    description "x"
    ^~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, DupDefault) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    default egress deny
    default ingress allow
  }
}
)pdl"),
              R"pdl(t.pdl:5:5: error: 'default ingress' is given twice in persona 'p'
    default ingress allow
    ^~~~~~~~~~~~~~~
t.pdl:3:5: note: first given here
    default ingress deny
    ^~~~~~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, DupDescription) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  description "a"
  description "b"
}
)pdl"),
              R"pdl(t.pdl:3:3: error: 'description' is given twice in persona 'p'
  description "b"
  ^~~~~~~~~~~
t.pdl:2:3: note: first given here
  description "a"
  ^~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, DupMode) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    mode audit
    mode enforce
  }
}
)pdl"),
              R"pdl(t.pdl:4:5: error: 'mode' is given twice in persona 'p'
    mode enforce
    ^~~~
t.pdl:3:5: note: first given here
    mode audit
    ^~~~
)pdl");
}

TEST(Diagnostics, DupPersona) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
}
persona p {
}
)pdl"),
              R"pdl(t.pdl:3:9: error: duplicate persona 'p'
persona p {
        ^
t.pdl:1:9: note: 'p' is first defined here
persona p {
        ^
)pdl");
}

TEST(Diagnostics, DupSet) {
    EXPECT_EQ(diagnostics_of(R"pdl(set a = { 80 }
set a = { 443 }
persona p {
  security {
    allow ingress tcp port $a from any
  }
}
)pdl"),
              R"pdl(t.pdl:2:5: error: duplicate set 'a'
set a = { 443 }
    ^
t.pdl:1:5: note: 'a' is first defined here
set a = { 80 }
    ^
)pdl");
}

TEST(Diagnostics, EmptyList) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to {}
  }
}
)pdl"),
        R"pdl(t.pdl:3:25: error: empty address list; expected at least one address or CIDR (or write 'any')
    allow egress tcp to {}
                        ^~
)pdl");
}

TEST(Diagnostics, EmptySet) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(set a = {}
)pdl"),
        R"pdl(t.pdl:1:9: error: set 'a' is empty; expected at least one address, CIDR, port or port range
set a = {}
        ^~
)pdl");
}

TEST(Diagnostics, Expected) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp port 80
  }
}
)pdl"),
              R"pdl(t.pdl:3:29: error: expected 'to', found end of line
    allow egress tcp port 80
                            ^
)pdl");
}

TEST(Diagnostics, ExpectedEq) {
    EXPECT_EQ(diagnostics_of(R"pdl(set a { 80 }
)pdl"),
              R"pdl(t.pdl:1:7: error: expected '=' after the set name, found '{'
set a { 80 }
      ^
)pdl");
}

TEST(Diagnostics, HostBits) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to 10.1.2.3/8
  }
}
)pdl"),
              R"pdl(t.pdl:3:25: error: CIDR 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?
    allow egress tcp to 10.1.2.3/8
                        ^~~~~~~~~~
)pdl");
}

TEST(Diagnostics, IcmpV6) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress icmp to 2001:db8::1
  }
}
)pdl"),
        R"pdl(t.pdl:3:26: error: icmp matches IPv4 only, but 2001:db8::1 is an IPv6 address; use icmpv6 for IPv6
    allow egress icmp to 2001:db8::1
                         ^~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, Icmpv6V4) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress icmpv6 to 10.0.0.0/8
  }
}
)pdl"),
        R"pdl(t.pdl:3:28: error: icmpv6 matches IPv6 only, but 10.0.0.0/8 is an IPv4 network; use icmp for IPv4
    allow egress icmpv6 to 10.0.0.0/8
                           ^~~~~~~~~~
)pdl");
}

TEST(Diagnostics, ListMissingComma) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to { 10.0.0.1 10.0.0.2 }
    allow egress tcp to 10.0.0.0/33
  }
}
)pdl"),
              R"pdl(t.pdl:3:36: error: expected ',' or '}' after a list item, found '10.0.0.2'
    allow egress tcp to { 10.0.0.1 10.0.0.2 }
                                   ^~~~~~~~
t.pdl:4:25: error: prefix length /33 is out of range for IPv4 (0-32)
    allow egress tcp to 10.0.0.0/33
                        ^~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, LoHi) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp port 9000-8000 to any
  }
}
)pdl"),
        R"pdl(t.pdl:3:27: error: port range 9000-8000 is empty (9000 > 8000); did you mean 8000-9000?
    allow egress tcp port 9000-8000 to any
                          ^~~~~~~~~
)pdl");
}

TEST(Diagnostics, MissingDir) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egres tcp to any
  }
}
)pdl"),
        R"pdl(t.pdl:3:11: error: expected 'ingress' or 'egress' after 'allow', found 'egres'; did you mean 'egress'?
    allow egres tcp to any
          ^~~~~
)pdl");
}

TEST(Diagnostics, MixedSet) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(set m = { 10.0.0.1, 443 }
)pdl"),
        R"pdl(t.pdl:1:21: error: set 'm' mixes ports and addresses; '443' is a port but '10.0.0.1' is an address
set m = { 10.0.0.1, 443 }
                    ^~~
note: a set holds either addresses and CIDRs, or ports and port ranges; split it into two sets
)pdl");
}

TEST(Diagnostics, Multi) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona a {
  security {
    allow egress tcp to 10.0.0.1/8
    mode foo
  }
}
persona b {
  security {
    deny ingress udp port 99999 from any
  }
}
)pdl"),
              R"pdl(t.pdl:3:25: error: CIDR 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?
    allow egress tcp to 10.0.0.1/8
                        ^~~~~~~~~~
t.pdl:4:10: error: expected 'enforce' or 'audit' after 'mode', found 'foo'
    mode foo
         ^~~
t.pdl:9:27: error: port 99999 is out of range; expected 0-65535
    deny ingress udp port 99999 from any
                          ^~~~~
)pdl");
}

TEST(Diagnostics, PeerWord) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to example.com
  }
}
)pdl"),
        R"pdl(t.pdl:3:25: error: expected an address, a CIDR, a $set or 'any', found 'example.com'
    allow egress tcp to example.com
                        ^~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, PersonaNoname) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona {
}
)pdl"),
        R"pdl(t.pdl:1:9: error: expected a persona name (letters, digits, '-' and '_'), found '{'
persona {
        ^
)pdl");
}

TEST(Diagnostics, PortAny) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    deny egress any port 80 to any
  }
}
)pdl"),
        R"pdl(t.pdl:3:21: error: 'port' needs tcp or udp; 'any' also covers protocols without ports; write one rule for tcp and one for udp
    deny egress any port 80 to any
                    ^~~~
)pdl");
}

TEST(Diagnostics, PortIcmp) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress icmp port 80 to any
  }
}
)pdl"),
              R"pdl(t.pdl:3:23: error: 'port' needs tcp or udp; icmp has no ports
    allow egress icmp port 80 to any
                      ^~~~
)pdl");
}

TEST(Diagnostics, PortRange) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp port 70000 to any
  }
}
)pdl"),
              R"pdl(t.pdl:3:27: error: port 70000 is out of range; expected 0-65535
    allow egress tcp port 70000 to any
                          ^~~~~
)pdl");
}

TEST(Diagnostics, PortWord) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp port http to any
  }
}
)pdl"),
              R"pdl(t.pdl:3:27: error: expected a port, a port range or a $set, found 'http'
    allow egress tcp port http to any
                          ^~~~
)pdl");
}

TEST(Diagnostics, PrefixRange) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to 10.0.0.0/33
  }
}
)pdl"),
              R"pdl(t.pdl:3:25: error: prefix length /33 is out of range for IPv4 (0-32)
    allow egress tcp to 10.0.0.0/33
                        ^~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, RuleAtPersona) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  allow egress tcp to any
}
)pdl"),
              R"pdl(t.pdl:2:3: error: 'allow' belongs inside a security { } block
  allow egress tcp to any
  ^~~~~
)pdl");
}

TEST(Diagnostics, SetFamily) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(set v6 = { 2001:db8::/32 }
persona p {
  security {
    allow egress icmp to $v6
  }
}
)pdl"),
        R"pdl(t.pdl:4:26: error: icmp matches IPv4 only, but set '$v6' contains 2001:db8::/32, an IPv6 network; use icmpv6 for IPv6
    allow egress icmp to $v6
                         ^~~
)pdl");
}

TEST(Diagnostics, SetInSet) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(set a = { 80 }
set b = { $a }
)pdl"),
        R"pdl(t.pdl:2:11: error: a set cannot contain another set ('$a'); list its items instead
set b = { $a }
          ^~
)pdl");
}

TEST(Diagnostics, SetItem) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(set a = { 80, http }
persona p {
  security {
    allow egress tcp port $a to any
  }
}
)pdl"),
        R"pdl(t.pdl:1:15: error: invalid set item 'http'; expected an address, CIDR, port or port range
set a = { 80, http }
              ^~~~
)pdl");
}

TEST(Diagnostics, Tab) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
	security {
		allow egress tcp to 10.1.2.3/8
	}
}
)pdl"),
              R"pdl(t.pdl:3:23: error: CIDR 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?
		allow egress tcp to 10.1.2.3/8
		                    ^~~~~~~~~~
)pdl");
}

TEST(Diagnostics, TopRbrace) {
    EXPECT_EQ(diagnostics_of(R"pdl(}
persona p {
}
)pdl"),
              R"pdl(t.pdl:1:1: error: unexpected '}' at top level; no block is open here
}
^
)pdl");
}

TEST(Diagnostics, TopUnknown) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persnoa p {
}
)pdl"),
        R"pdl(t.pdl:1:1: error: unknown statement 'persnoa'; expected 'import', 'set', 'persona' or 'bind'; did you mean 'persona'?
persnoa p {
^~~~~~~
)pdl");
}

TEST(Diagnostics, TrailingGarbage) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    mode audit enforce
  }
}
)pdl"),
        R"pdl(t.pdl:3:16: error: expected end of statement (a new line or ';'), found 'enforce'
    mode audit enforce
               ^~~~~~~
)pdl");
}

TEST(Diagnostics, Unclosed) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to any
)pdl"),
              R"pdl(t.pdl:4:1: error: expected '}' to close the security block

^
t.pdl:2:12: note: the block starts here
  security {
           ^
t.pdl:4:1: error: expected '}' to close persona 'p'

^
t.pdl:1:11: note: the block starts here
persona p {
          ^
)pdl");
}

TEST(Diagnostics, UnexpectedChar) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to any @
  }
}
)pdl"),
              R"pdl(t.pdl:3:29: error: unexpected character '@'
    allow egress tcp to any @
                            ^
)pdl");
}

TEST(Diagnostics, UnknownKw) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    alow egress tcp to any
  }
}
)pdl"),
        R"pdl(t.pdl:3:5: error: unknown statement 'alow' in security block; expected 'mode', 'default', 'allow', 'deny', 'encryption' or 'ids'; did you mean 'allow'?
    alow egress tcp to any
    ^~~~
)pdl");
}

TEST(Diagnostics, UnknownPersonaStmt) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  secrity {
  }
}
)pdl"),
        R"pdl(t.pdl:2:3: error: unknown statement 'secrity' in persona; expected 'description', 'security', 'qos', 'topology', 'sovereignty', 'dns' or 'forward'; did you mean 'security'?
  secrity {
  ^~~~~~~
)pdl");
}

TEST(Diagnostics, UnknownSet) {
    EXPECT_EQ(diagnostics_of(R"pdl(set web_ports = { 80, 443 }
persona p {
  security {
    allow ingress tcp port $web_port from any
  }
}
)pdl"),
              R"pdl(t.pdl:4:28: error: unknown set '$web_port'; did you mean '$web_ports'?
    allow ingress tcp port $web_port from any
                           ^~~~~~~~~
)pdl");
}

TEST(Diagnostics, UnknownSetFar) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to $nothing_like_it
  }
}
)pdl"),
        R"pdl(t.pdl:3:25: error: unknown set '$nothing_like_it'; define it at top level with 'set nothing_like_it = { ... }'
    allow egress tcp to $nothing_like_it
                        ^~~~~~~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, Unterminated) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  description "public web
}
)pdl"),
              R"pdl(t.pdl:2:15: error: unterminated string; expected '"' before the end of the line
  description "public web
              ^
)pdl");
}

TEST(Diagnostics, UnusedSet) {
    EXPECT_EQ(diagnostics_of(R"pdl(set unused = { 80 }
persona p {
}
)pdl"),
              R"pdl(t.pdl:1:5: warning: set 'unused' is never used
set unused = { 80 }
    ^~~~~~
)pdl");
}

TEST(Diagnostics, Utf8) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  description "café" mode
}
)pdl"),
              R"pdl(t.pdl:2:22: error: expected end of statement (a new line or ';'), found 'mode'
  description "café" mode
                     ^~~~
)pdl");
}

TEST(Diagnostics, V6Bad) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to 2001:db8:::1
  }
}
)pdl"),
              R"pdl(t.pdl:3:25: error: invalid IPv6 address '2001:db8:::1'
    allow egress tcp to 2001:db8:::1
                        ^~~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, V6Hostbits) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to 2001:db8::1/32
  }
}
)pdl"),
        R"pdl(t.pdl:3:25: error: CIDR 2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?
    allow egress tcp to 2001:db8::1/32
                        ^~~~~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, V6Prefix) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    allow egress tcp to 2001:db8::/129
  }
}
)pdl"),
              R"pdl(t.pdl:3:25: error: prefix length /129 is out of range for IPv6 (0-128)
    allow egress tcp to 2001:db8::/129
                        ^~~~~~~~~~~~~~
)pdl");
}

TEST(Diagnostics, WrongKind) {
    EXPECT_EQ(diagnostics_of(R"pdl(set dns = { 10.0.0.53 }
persona p {
  security {
    allow egress udp port $dns to any
  }
}
)pdl"),
              R"pdl(t.pdl:4:27: error: set '$dns' holds addresses, but ports are expected here
    allow egress udp port $dns to any
                          ^~~~
t.pdl:1:5: note: 'dns' is defined here
set dns = { 10.0.0.53 }
    ^~~
)pdl");
}

TEST(Diagnostics, WrongKindAddr) {
    EXPECT_EQ(diagnostics_of(R"pdl(set ports = { 53 }
persona p {
  security {
    allow egress udp port 53 to $ports
  }
}
)pdl"),
              R"pdl(t.pdl:4:33: error: set '$ports' holds ports, but addresses are expected here
    allow egress udp port 53 to $ports
                                ^~~~~~
t.pdl:1:5: note: 'ports' is defined here
set ports = { 53 }
    ^~~~~
)pdl");
}

TEST(Diagnostics, WrongPeerKw) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    allow ingress tcp port 22 to 10.0.0.0/8
  }
}
)pdl"),
        R"pdl(t.pdl:3:31: error: ingress rules name the source with 'from'; did you mean 'from'?
    allow ingress tcp port 22 to 10.0.0.0/8
                              ^~
)pdl");
}

}  // namespace
}  // namespace pdl
