// One test per lint warning (docs/pdl.md, "Lint warnings"): the exact rendered text, like
// diagnostics_test.cpp. Then what lint must not report, and the compile options.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pdl-compiler/diagnostics.h"
#include "tests/unit/test_util.h"

namespace pdl {
namespace {

using test::compile_text;
using test::diagnostics_of;

TEST(Lint, SinglePortRange) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port 8080-8080 from 10.0.0.0/8
  }
}
)pdl"),
              R"pdl(t.pdl:4:28: warning: range 8080-8080 is a single port; write 8080
    allow ingress tcp port 8080-8080 from 10.0.0.0/8
                           ^~~~~~~~~
)pdl");
}

TEST(Lint, SinglePortRangeInSet) {
    EXPECT_EQ(diagnostics_of(R"pdl(set admin = { 22, 2222-2222 }
persona p {
  security {
    default ingress deny
    allow ingress tcp port $admin from 10.0.0.0/8
  }
}
)pdl"),
              R"pdl(t.pdl:1:19: warning: range 2222-2222 is a single port; write 2222
set admin = { 22, 2222-2222 }
                  ^~~~~~~~~
)pdl");
}

TEST(Lint, PortListRepeat) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port { 80, 443, 80 } from any
  }
}
)pdl"),
              R"pdl(t.pdl:4:39: warning: 80 is already in this list
    allow ingress tcp port { 80, 443, 80 } from any
                                      ^~
)pdl");
}

TEST(Lint, PortListCovered) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port { 8080, 8000-8099 } from any
  }
}
)pdl"),
              R"pdl(t.pdl:4:30: warning: 8080 is already covered by 8000-8099 in this list
    allow ingress tcp port { 8080, 8000-8099 } from any
                             ^~~~
)pdl");
}

TEST(Lint, PortListOverlap) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port { 8000-8099, 8050-8199 } from any
  }
}
)pdl"),
              R"pdl(t.pdl:4:41: warning: 8050-8199 overlaps 8000-8099 in this list
    allow ingress tcp port { 8000-8099, 8050-8199 } from any
                                        ^~~~~~~~~
)pdl");
}

TEST(Lint, PortListOverlapViaSet) {
    EXPECT_EQ(diagnostics_of(R"pdl(set web_ports = { 80, 443 }
persona p {
  security {
    default ingress deny
    allow ingress tcp port { $web_ports, 443 } from any
  }
}
)pdl"),
              R"pdl(t.pdl:5:42: warning: 443 is already in this list (in set '$web_ports')
    allow ingress tcp port { $web_ports, 443 } from any
                                         ^~~
)pdl");
}

TEST(Lint, PortListSameSetTwice) {
    EXPECT_EQ(diagnostics_of(R"pdl(set web_ports = { 80, 443 }
persona p {
  security {
    default ingress deny
    allow ingress tcp port { $web_ports, 8080, $web_ports } from any
  }
}
)pdl"),
              R"pdl(t.pdl:5:48: warning: set '$web_ports' is already in this list
    allow ingress tcp port { $web_ports, 8080, $web_ports } from any
                                               ^~~~~~~~~~
)pdl");
}

TEST(Lint, PortSetOverlap) {
    EXPECT_EQ(diagnostics_of(R"pdl(set ports = { 8000-8099, 8080 }
persona p {
  security {
    default ingress deny
    allow ingress tcp port $ports from any
  }
}
)pdl"),
              R"pdl(t.pdl:1:26: warning: 8080 is already covered by 8000-8099 in this set
set ports = { 8000-8099, 8080 }
                         ^~~~
)pdl");
}

TEST(Lint, CidrListCovered) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default egress deny
    allow egress tcp port 443 to { 10.1.0.0/16, 192.168.0.0/16, 10.0.0.0/8 }
  }
}
)pdl"),
              R"pdl(t.pdl:4:36: warning: 10.1.0.0/16 is already covered by 10.0.0.0/8 in this list
    allow egress tcp port 443 to { 10.1.0.0/16, 192.168.0.0/16, 10.0.0.0/8 }
                                   ^~~~~~~~~~~
)pdl");
}

TEST(Lint, CidrListRepeatV6) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default egress deny
    allow egress tcp port 443 to { 2001:db8::1, 2001:db8:0::1 }
  }
}
)pdl"),
              R"pdl(t.pdl:4:49: warning: 2001:db8:0::1 is already in this list
    allow egress tcp port 443 to { 2001:db8::1, 2001:db8:0::1 }
                                                ^~~~~~~~~~~~~
)pdl");
}

TEST(Lint, CidrListCoveredBySet) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(set backends = { 10.0.0.0/8, 2001:db8::/32 }
persona p {
  security {
    default egress deny
    allow egress tcp port 443 to { $backends, 10.20.30.40 }
  }
}
)pdl"),
        R"pdl(t.pdl:5:47: warning: 10.20.30.40 is already covered by 10.0.0.0/8 (in set '$backends') in this list
    allow egress tcp port 443 to { $backends, 10.20.30.40 }
                                              ^~~~~~~~~~~
)pdl");
}

TEST(Lint, CidrSetCovered) {
    EXPECT_EQ(diagnostics_of(R"pdl(set backends = { 10.0.0.0/8, 10.20.0.0/16 }
persona p {
  security {
    default egress deny
    allow egress tcp port 443 to $backends
  }
}
)pdl"),
              R"pdl(t.pdl:1:30: warning: 10.20.0.0/16 is already covered by 10.0.0.0/8 in this set
set backends = { 10.0.0.0/8, 10.20.0.0/16 }
                             ^~~~~~~~~~~~
)pdl");
}

TEST(Lint, DuplicateRule) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    default egress deny
    allow egress tcp port 443 to 10.0.0.0/8
    allow egress udp port 53 to 10.0.0.53
    allow egress tcp port 443 to 10.0.0.0/8
  }
}
)pdl"),
        R"pdl(t.pdl:6:5: warning: rule 3 duplicates rule 1 (same action, direction, protocol, ports and peers)
    allow egress tcp port 443 to 10.0.0.0/8
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:4:5: note: rule 1 is here
    allow egress tcp port 443 to 10.0.0.0/8
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, DuplicateRuleSameMeaning) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(set nets = { 10.0.0.0/9, 10.128.0.0/9 }
persona p {
  security {
    default egress deny
    allow egress tcp port { 80, 81 } to 10.0.0.0/8
    allow egress tcp port 80-81 to $nets
  }
}
)pdl"),
        R"pdl(t.pdl:6:5: warning: rule 2 duplicates rule 1 (same action, direction, protocol, ports and peers)
    allow egress tcp port 80-81 to $nets
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:5:5: note: rule 1 is here
    allow egress tcp port { 80, 81 } to 10.0.0.0/8
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, ShadowedByOneDeny) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    default egress deny
    deny egress any to 10.0.0.0/8
    allow egress tcp port 443 to 10.1.0.0/16
  }
}
)pdl"),
        R"pdl(t.pdl:5:5: warning: rule 2 is shadowed by deny rule 1: every packet it matches is denied
    allow egress tcp port 443 to 10.1.0.0/16
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:4:5: note: deny rule 1 is here
    deny egress any to 10.0.0.0/8
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, ShadowedByDenies) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port 1000-2000 from 192.168.0.0/16
    deny ingress tcp port 1000-1499 from 192.168.0.0/16
    deny ingress tcp port 1500-2000 from 192.168.0.0/17
    deny ingress any from 192.168.128.0/17
  }
}
)pdl"),
        R"pdl(t.pdl:4:5: warning: rule 1 is shadowed by deny rules 2, 3 and 4: every packet it matches is denied
    allow ingress tcp port 1000-2000 from 192.168.0.0/16
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:5:5: note: deny rule 2 is here
    deny ingress tcp port 1000-1499 from 192.168.0.0/16
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:6:5: note: deny rule 3 is here
    deny ingress tcp port 1500-2000 from 192.168.0.0/17
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:7:5: note: deny rule 4 is here
    deny ingress any from 192.168.128.0/17
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, NoEffectAllow) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port 22 from 10.0.0.0/8
    allow egress tcp port 443 to any
  }
}
)pdl"),
              R"pdl(t.pdl:5:5: warning: rule 2 has no effect: egress already defaults to allow
    allow egress tcp port 443 to any
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
note: egress defaults to allow when the persona does not say 'default egress deny'
)pdl");
}

TEST(Lint, NoEffectAllowExplicitDefault) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default egress allow
    allow egress tcp port 443 to any
    deny egress tcp port 25 to any
  }
}
)pdl"),
              R"pdl(t.pdl:4:5: warning: rule 1 has no effect: egress already defaults to allow
    allow egress tcp port 443 to any
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:3:5: note: egress defaults to allow here
    default egress allow
    ^~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, NoEffectDeny) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port 22 from 10.0.0.0/8
    deny ingress tcp port 22 from 192.168.0.0/16
  }
}
)pdl"),
              R"pdl(t.pdl:5:5: warning: rule 2 has no effect: ingress already defaults to deny
    deny ingress tcp port 22 from 192.168.0.0/16
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:3:5: note: ingress defaults to deny here
    default ingress deny
    ^~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, AuditNothingToReport) {
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    mode audit
    default ingress allow
  }
}
)pdl"),
        R"pdl(t.pdl:3:5: warning: audit mode has nothing to report: persona 'p' has no deny rule and both defaults allow
    mode audit
    ^~~~~~~~~~
note: audit mode counts what deny rules and 'default ... deny' would drop
)pdl");
}

// The unused-set warning moved here from the semantic pass; its test stays in
// diagnostics_test.cpp (Diagnostics.UnusedSet).

// ---- what lint must not report ----

TEST(Lint, PartlyDeniedAllowIsNotShadowed) {
    // The deny takes 1500-2000 of 1000-2000 away: the allow still allows the rest. The
    // deny is not idle either: it cuts into the allow.
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port 1000-2000 from 192.168.0.0/16
    deny ingress tcp port 1500-2000 from 192.168.0.0/16
    deny ingress any from 192.168.0.0/17
  }
}
)pdl"),
              "");
}

TEST(Lint, AddressFamiliesAreTakenIntoAccount) {
    // `tcp to any` also reaches IPv6, which the IPv4 deny leaves alone; icmp reaches IPv4
    // only, so the same deny covers all of it.
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    default egress deny
    deny egress any to 0.0.0.0/0
    allow egress tcp to any
    allow egress icmp to any
  }
}
)pdl"),
        R"pdl(t.pdl:6:5: warning: rule 3 is shadowed by deny rule 1: every packet it matches is denied
    allow egress icmp to any
    ^~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:4:5: note: deny rule 1 is here
    deny egress any to 0.0.0.0/0
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, AnyProtocolIsNotCoveredByPerProtocolDenies) {
    // `any` also matches protocols other than tcp, udp, icmp and icmpv6.
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default egress deny
    deny egress tcp to 10.0.0.0/8
    deny egress udp to 10.0.0.0/8
    deny egress icmp to 10.0.0.0/8
    allow egress any to 10.1.0.0/16
  }
}
)pdl"),
              "");
}

TEST(Lint, DirectionsAndActionsAreKeptApart) {
    EXPECT_EQ(diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    default egress deny
    allow egress tcp port 443 to 10.0.0.0/8
    allow ingress tcp port 443 from 10.0.0.0/8
    deny egress tcp port 443 to 10.1.0.0/16
    deny ingress tcp port 443 from 10.1.0.0/16
  }
}
)pdl"),
              "");
}

TEST(Lint, DisjointListItemsAreFine) {
    EXPECT_EQ(diagnostics_of(R"pdl(set ports = { 80, 81, 8000-8099, 8100 }
set nets = { 10.0.0.0/9, 10.128.0.0/9, 2001:db8::/33 }
persona p {
  security {
    default ingress deny
    allow ingress tcp port { $ports, 443, 0-79 } from { $nets, 192.168.1.1, 192.168.1.2 }
  }
}
)pdl"),
              "");
}

TEST(Lint, OneWarningPerRule) {
    // A duplicate is reported as one, not again as having no effect.
    EXPECT_EQ(
        diagnostics_of(R"pdl(persona p {
  security {
    default ingress deny
    allow ingress tcp port 22 from 10.0.0.0/8
    allow ingress tcp port 22 from 10.0.0.0/8
  }
}
)pdl"),
        R"pdl(t.pdl:5:5: warning: rule 2 duplicates rule 1 (same action, direction, protocol, ports and peers)
    allow ingress tcp port 22 from 10.0.0.0/8
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
t.pdl:4:5: note: rule 1 is here
    allow ingress tcp port 22 from 10.0.0.0/8
    ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
)pdl");
}

TEST(Lint, AuditModeWithSomethingToReport) {
    for (const char* text : {"persona p {\n  security {\n    mode audit\n    default egress deny\n"
                             "  }\n}\n",
                             "persona p {\n  security {\n    mode audit\n"
                             "    deny egress tcp port 25 to any\n  }\n}\n",
                             "persona p {\n  security {\n    mode enforce\n  }\n}\n"}) {
        SCOPED_TRACE(text);
        EXPECT_EQ(diagnostics_of(text), "");
    }
}

TEST(Lint, NotRunOnAFileWithErrors) {
    auto out = compile_text(R"pdl(set unused = { 1 }
persona p {
  security {
    allow egress tcp port 80-80 to 10.0.0.300
  }
}
)pdl");
    EXPECT_EQ(out.errors, 1u);
    EXPECT_EQ(out.warnings, 0u);
    EXPECT_EQ(out.diagnostics.find("warning"), std::string::npos) << out.diagnostics;
}

// ---- options ----

const char* kTwoWarnings = R"pdl(set unused = { 1 }
persona p {
  security {
    default egress deny
    allow egress tcp port 443-443 to any
  }
}
)pdl";

TEST(Lint, WarningsDoNotFailTheFile) {
    auto out = compile(Source{"t.pdl", kTwoWarnings});
    EXPECT_TRUE(out.ok());
    EXPECT_EQ(out.warnings, 2u);
    EXPECT_EQ(out.personas.size(), 1u);
}

TEST(Lint, OptionLintOff) {
    CompileOptions options;
    options.lint = false;
    auto out = compile(Source{"t.pdl", kTwoWarnings}, options);
    EXPECT_TRUE(out.ok());
    EXPECT_EQ(out.warnings, 0u);
    EXPECT_EQ(out.diagnostics, "");
    EXPECT_EQ(out.personas.size(), 1u);
}

TEST(Lint, OptionWerror) {
    CompileOptions options;
    options.werror = true;
    auto out = compile(Source{"t.pdl", kTwoWarnings}, options);
    EXPECT_FALSE(out.ok());
    EXPECT_EQ(out.errors, 2u);
    EXPECT_EQ(out.warnings, 0u);
    EXPECT_TRUE(out.personas.empty()) << "a file with errors compiles to nothing";
    EXPECT_EQ(out.diagnostics, R"pdl(t.pdl:1:5: error: set 'unused' is never used [--werror]
set unused = { 1 }
    ^~~~~~
t.pdl:5:27: error: range 443-443 is a single port; write 443 [--werror]
    allow egress tcp port 443-443 to any
                          ^~~~~~~
)pdl");

    // Notes come along.
    out = compile(Source{"t.pdl", "persona p {\n  security {\n    mode audit\n  }\n}\n"}, options);
    EXPECT_EQ(out.diagnostics,
              "t.pdl:3:5: error: audit mode has nothing to report: persona 'p' has no deny rule "
              "and both defaults allow [--werror]\n"
              "    mode audit\n"
              "    ^~~~~~~~~~\n"
              "note: audit mode counts what deny rules and 'default ... deny' would drop\n");
}

TEST(Lint, WarningsStopAtTheErrorLimit) {
    std::string text;
    for (int i = 10; i < 70; ++i) text += "set s" + std::to_string(i) + " = { 1 }\n";
    text += "persona p {\n}\n";  // not a library: its sets are its own to use
    auto out = compile(Source{"t.pdl", text});
    EXPECT_TRUE(out.ok());
    EXPECT_EQ(out.warnings, Diagnostics::kMaxErrors);
    EXPECT_NE(out.diagnostics.find("warning: set 's59' is never used (too many warnings; "
                                   "stopping here)\n"),
              std::string::npos)
        << out.diagnostics;
    EXPECT_EQ(out.diagnostics.find("'s60'"), std::string::npos) << out.diagnostics;
}

// A file of sets only is a library for the files that import it.
TEST(Lint, LibraryOfSetsHasNoUnusedSets) {
    auto out = compile(Source{"lib.pdl", "set a = { 80 }\nset b = { 10.0.0.0/8 }\n"});
    EXPECT_TRUE(out.ok());
    EXPECT_EQ(out.diagnostics, "");
}

// Sets used only by an encryption exception are used.
TEST(Lint, SetUsedByAnExceptionIsUsed) {
    auto out = compile(Source{"t.pdl", R"pdl(set resolvers = { 10.0.0.53 }

persona p {
  security {
    encryption required except { egress udp port 53 to $resolvers }
  }
}
)pdl"});
    EXPECT_TRUE(out.ok());
    EXPECT_EQ(out.diagnostics, "");
}

// ---- the shipped files ----

std::string read(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

TEST(Lint, GoldenFilesAndExamplesAreClean) {
    const std::filesystem::path golden = PERSONABPF_GOLDEN_DIR;
    size_t checked = 0;
    for (const auto& dir : {golden, golden / ".." / ".." / ".." / "examples"}) {
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            if (entry.path().extension() != ".pdl") continue;
            SCOPED_TRACE(entry.path().string());
            // Full paths: examples import each other relative to their own directory.
            CompileOptions werror;
            werror.werror = true;
            auto out = compile(Source{entry.path().string(), read(entry.path())}, werror);
            EXPECT_TRUE(out.ok());
            EXPECT_EQ(out.diagnostics, "");
            if (entry.path().string().find("examples") != std::string::npos) {
                FormatOutput f = format(Source{entry.path().string(), read(entry.path())});
                EXPECT_EQ(f.text, read(entry.path())) << "not `pdl fmt` clean";
            }
            ++checked;
        }
    }
    EXPECT_GE(checked, 11u);
}

// ---- cost ----

TEST(Lint, ManyRulesStayCheap) {
    // Rule-level checks compare rules pairwise; a bounded amount of work keeps a huge
    // persona from making compilation slow (past the bound lint reports less, never
    // wrongly).
    std::string text = "persona big {\n  security {\n    default ingress deny\n";
    for (int i = 0; i < 3000; ++i) {
        const std::string net = "10." + std::to_string(i / 256) + "." + std::to_string(i % 256);
        text +=
            "    allow ingress tcp port " + std::to_string(1000 + i) + " from " + net + ".0/24\n";
        text +=
            "    deny ingress tcp port " + std::to_string(1000 + i) + " from " + net + ".128/25\n";
    }
    text += "  }\n}\n";
    const auto start = std::chrono::steady_clock::now();
    auto out = compile(Source{"big.pdl", text});
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(out.ok());
    EXPECT_EQ(out.warnings, 0u) << out.diagnostics.substr(0, 2000);
    EXPECT_LT(took, std::chrono::seconds(20));
}

}  // namespace
}  // namespace pdl
