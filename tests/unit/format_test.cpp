// Formatter: canonical layout (golden), idempotence, comments kept, meaning unchanged.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/unit/test_util.h"

namespace pdl {
namespace {

std::string fmt(const std::string& text) {
    FormatOutput out = format(Source{"t.pdl", text});
    EXPECT_TRUE(out.ok) << out.diagnostics;
    return out.text;
}

const char* kMessy = R"pdl(# Web tier
set  dns_servers={10.0.0.53,10.0.0.54}   # resolvers
set web_ports = {

    80,   # http


  # tls
      443,
  8000-8099

}
persona   web-frontend{   # the public tier

description   "public \"web\" tier"


    security {

  mode   audit;default ingress deny

        # egress
  allow ingress tcp port $web_ports from any
allow egress udp port 53 to $dns_servers   # dns
      deny egress any to {169.254.169.254 , fd00::/8}

    }
}
persona empty { }
# end of file
)pdl";

const char* kCanonical = R"pdl(# Web tier
set dns_servers = { 10.0.0.53, 10.0.0.54 }  # resolvers
set web_ports = {
  80,  # http

  # tls
  443,
  8000-8099,
}

persona web-frontend {  # the public tier
  description "public \"web\" tier"

  security {
    mode audit
    default ingress deny

    # egress
    allow ingress tcp port $web_ports from any
    allow egress udp port 53 to $dns_servers  # dns
    deny egress any to { 169.254.169.254, fd00::/8 }
  }
}

persona empty {
}

# end of file
)pdl";

TEST(Format, CanonicalLayout) { EXPECT_EQ(fmt(kMessy), kCanonical); }

TEST(Format, Idempotent) {
    EXPECT_EQ(fmt(kCanonical), kCanonical);
    EXPECT_EQ(fmt(fmt(kMessy)), fmt(kMessy));
}

TEST(Format, KeepsEveryComment) {
    std::string out = fmt(kMessy);
    std::istringstream in(kMessy);
    std::string line;
    while (std::getline(in, line)) {
        auto hash = line.find('#');
        if (hash == std::string::npos) continue;
        std::string comment = line.substr(hash);
        while (!comment.empty() && comment.back() == ' ') comment.pop_back();
        EXPECT_NE(out.find(comment), std::string::npos) << comment;
    }
}

TEST(Format, DoesNotChangeMeaning) {
    auto before = compile(Source{"t.pdl", kMessy});
    auto after = compile(Source{"t.pdl", fmt(kMessy)});
    ASSERT_TRUE(before.ok()) << before.diagnostics;
    ASSERT_TRUE(after.ok()) << after.diagnostics;
    EXPECT_EQ(to_json(lower(before.personas)), to_json(lower(after.personas)));
}

TEST(Format, SyntaxErrorsFailWithDiagnostics) {
    FormatOutput out = format(Source{"t.pdl", "persona p {\n  security {\n    allow\n  }\n}\n"});
    EXPECT_FALSE(out.ok);
    EXPECT_EQ(out.text, "");
    EXPECT_EQ(out.diagnostics,
              "t.pdl:3:10: error: expected 'ingress' or 'egress' after 'allow', found end of line\n"
              "    allow\n"
              "         ^\n");
}

TEST(Format, SemanticErrorsDoNotBlockFormatting) {
    // Formatting is about layout: an unknown set is for `pdl check` to report.
    FormatOutput out =
        format(Source{"t.pdl", "persona p { security { allow egress tcp to $nope } }"});
    EXPECT_TRUE(out.ok);
    EXPECT_EQ(out.text, "persona p {\n  security {\n    allow egress tcp to $nope\n  }\n}\n");
}

TEST(Format, EmptyAndCommentOnlyFiles) {
    EXPECT_EQ(fmt(""), "");
    EXPECT_EQ(fmt("\n\n# only\n\n\n# comments\n\n"), "# only\n\n# comments\n");
}

TEST(Format, BlankLinesInsideBlocksKeepTheAuthorsGrouping) {
    // A run of blank lines (whitespace-only lines count) between statements or comments
    // becomes one; blank lines right after '{' (even after its comment) or right before
    // '}' go.
    EXPECT_EQ(fmt("persona p {  # open\n"
                  "\n"
                  "\n"
                  "  description \"d\"\n"
                  "  \t \n"
                  "   \n"
                  "  security {\n"
                  "\n"
                  "    # defaults\n"
                  "    default ingress deny\n"
                  "    default egress deny\n"
                  "\n"
                  "\n"
                  "\n"
                  "    # rules\n"
                  "\n"
                  "    allow egress tcp port 443 to any  # tls\n"
                  "\n"
                  "    allow egress udp port 53 to any\n"
                  "\n"
                  "    # last words\n"
                  "\n"
                  "\n"
                  "  }\n"
                  "\n"
                  "}\n"),
              "persona p {  # open\n"
              "  description \"d\"\n"
              "\n"
              "  security {\n"
              "    # defaults\n"
              "    default ingress deny\n"
              "    default egress deny\n"
              "\n"
              "    # rules\n"
              "\n"
              "    allow egress tcp port 443 to any  # tls\n"
              "\n"
              "    allow egress udp port 53 to any\n"
              "\n"
              "    # last words\n"
              "  }\n"
              "}\n");
}

TEST(Format, BlankLinesAfterSemicolonsAndOneLineBlocks) {
    // `;`-joined statements are split without blank lines; a blank line after the
    // joined line is kept.
    EXPECT_EQ(fmt("persona p { security { mode audit; default ingress deny\n"
                  "\n"
                  "allow ingress tcp from any } }\n"),
              "persona p {\n"
              "  security {\n"
              "    mode audit\n"
              "    default ingress deny\n"
              "\n"
              "    allow ingress tcp from any\n"
              "  }\n"
              "}\n");
}

TEST(Format, BlankLinesInMultilineLists) {
    EXPECT_EQ(fmt("persona p {\n"
                  "  security {\n"
                  "    allow egress tcp port {\n"
                  "\n"
                  "      80, 8080,\n"
                  "\n"
                  "\n"
                  "      # tls\n"
                  "      443,\n"
                  "\n"
                  "    } to {  # peers\n"
                  "\n"
                  "      10.0.0.0/8,\n"
                  "\n"
                  "      # v6\n"
                  "      fd00::/8\n"
                  "      # end\n"
                  "\n"
                  "    }\n"
                  "  }\n"
                  "}\n"),
              "persona p {\n"
              "  security {\n"
              "    allow egress tcp port {\n"
              "      80,\n"
              "      8080,\n"
              "\n"
              "      # tls\n"
              "      443,\n"
              "    } to {  # peers\n"
              "      10.0.0.0/8,\n"
              "\n"
              "      # v6\n"
              "      fd00::/8,\n"
              "      # end\n"
              "    }\n"
              "  }\n"
              "}\n");
}

TEST(Format, TopLevelSpacing) {
    // Personas are set apart by exactly one blank line (before their leading comments);
    // between sets, and before end-of-file comments that follow a set, at most one blank
    // line is kept where the author left some.
    EXPECT_EQ(fmt("\n\n# header\n\n\n"
                  "set a = { 1 }\n\n\n"
                  "set b = { 2 }\n"
                  "set c = { 3 }\n"
                  "# about p\n"
                  "persona p {\n}\n"
                  "persona q {\n}\n\n\n"
                  "# about r\n\n"
                  "persona r {\n}\n"
                  "set d = { 4 }\n"
                  "# set e = { 5 }\n\n\n"),
              "# header\n\n"
              "set a = { 1 }\n\n"
              "set b = { 2 }\n"
              "set c = { 3 }\n\n"
              "# about p\n"
              "persona p {\n}\n\n"
              "persona q {\n}\n\n"
              "# about r\n\n"
              "persona r {\n}\n\n"
              "set d = { 4 }\n"
              "# set e = { 5 }\n");
    EXPECT_EQ(fmt("persona p {\n}\n# tail\n"), "persona p {\n}\n\n# tail\n");
    EXPECT_EQ(fmt("set a = { 1 }\n\n\n# tail\n"), "set a = { 1 }\n\n# tail\n");
}

TEST(Format, CrlfAndWhitespaceOnlyLines) {
    EXPECT_EQ(fmt("persona p {\r\n  security {\r\n    mode audit  # m\r\n \t \r\n"
                  "    default ingress deny\r\n  \r\n  }\r\n}\r\n"),
              "persona p {\n  security {\n    mode audit  # m\n\n"
              "    default ingress deny\n  }\n}\n");
}

// The blank-line rules as a property: a fixed canonical file (lines without blank
// lines, and per gap between two lines what the formatter does with blank lines there)
// is re-laid out at random (indentation, trailing spaces, runs of blank and
// whitespace-only lines); the output must be the canonical lines with a blank line
// exactly where the rule says, which also makes it a fixed point.
TEST(Format, BlankLineRulesOnRandomLayouts) {
    enum Gap { Drop, Keep, Force };  // after '{' / before '}'; author's choice; always
    struct Line {
        const char* text;
        Gap after;
    };
    const std::vector<Line> lines = {
        {"# Web tier", Keep},
        {"set dns_servers = { 10.0.0.53, 10.0.0.54 }  # resolvers", Keep},
        {"set web_ports = {", Drop},
        {"  80,  # http", Keep},
        {"  # tls", Keep},
        {"  443,", Keep},
        {"  8000-8099,", Drop},
        {"}", Force},
        {"# about the persona", Keep},
        {"persona web-frontend {  # the public tier", Drop},
        {"  # first", Keep},
        {"  description \"public tier\"", Keep},
        {"  security {", Drop},
        {"    mode audit", Keep},
        {"    default ingress deny", Keep},
        {"    # egress", Keep},
        {"    allow ingress tcp port $web_ports from any", Keep},
        {"    allow egress udp port 53 to $dns_servers  # dns", Keep},
        {"    deny egress any to {", Drop},
        {"      169.254.169.254,", Keep},
        {"      # ula", Keep},
        {"      fd00::/8,", Drop},
        {"    }", Keep},
        {"    # last", Drop},
        {"  }", Drop},
        {"}", Force},
        {"persona empty {", Drop},
        {"}", Force},
        {"# end of file", Drop},
    };
    std::mt19937 rng(20240601);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    const char* blanks[] = {"", " ", "\t", "  \r", " \t "};
    for (int round = 0; round < 300; ++round) {
        std::string input;
        std::string expected;
        for (size_t i = 0; i < lines.size(); ++i) {
            std::string text = lines[i].text;
            text.erase(0, text.find_first_not_of(' '));
            input += std::string(static_cast<size_t>(pick(7)), pick(4) ? ' ' : '\t') + text +
                     std::string(static_cast<size_t>(pick(3)), ' ') + "\n";
            expected += std::string(lines[i].text) + "\n";
            if (i + 1 == lines.size()) break;
            int run = pick(3) == 0 ? 1 + pick(3) : 0;
            for (int k = 0; k < run; ++k) input += std::string(blanks[pick(5)]) + "\n";
            if (lines[i].after == Force || (lines[i].after == Keep && run > 0)) expected += "\n";
        }
        if (pick(2)) input = std::string(static_cast<size_t>(pick(3)), '\n') + input;
        ASSERT_EQ(fmt(input), expected) << "round " << round << ", input:\n" << input;
        ASSERT_EQ(fmt(expected), expected);
    }
}

// Every statement of the language, laid out badly, with comments in every kind of block
// and in the except lists.
const char* kMessyAll = R"pdl(# The whole language
import   "base.pdl"   # shared sets
import "lib/common.pdl"
set   resolvers={10.0.0.53,10.0.0.54}
persona   web   extends   base{   # the web tier
  description   "web"
  security {  # firewall
    mode   enforce
    encryption   required   min-tls   1.2   except {udp port 53,egress tcp port 853 to $resolvers}   # one line
    encryption required except {  # plaintext allowed

      # resolvers
      udp port 53,  # dns
      egress   tcp   port {
        80,  # http
        8080
      } to 10.0.0.0/8
      ingress icmp,
      # end of exceptions

    }
    ids{   # detection
      syn-flood   2000/s   block   60s
      # scans
      port-scan 50/10s  # report only
      # end of ids
    }
  }
  qos {  # shaping
    egress rate 200mbit   burst 64kb
    ingress   rate 100mbit;priority high  # high
    # latency
    latency   target 5ms
  }
  topology { route table 100; next-hops {10.0.0.1,10.0.0.2};max-hops 8 }
  sovereignty {  # where traffic may go
    allow countries {DE,FR,EU}   # europe
    unknown deny
    exempt {
      10.0.0.0/8,  # internal
      $internal
    }
    on-violation   log
    # end of sovereignty
  }
  dns {
    servers   $resolvers  # resolvers
    search "corp.example"    "example.com"
  }
  forward {  # ports
    egress   tcp   127.0.0.1:5432->10.1.2.3:5432  # db
    ingress tcp 8443   ->   443
    egress udp [fd00::1]:53 -> [fd00::2]:53
    # end of forwards
  }
}
bind   web {  # where web runs
  cgroup   "/system.slice/web-*.service"
  # interfaces
  interface "eth*"  # uplinks
  user www-data; group   "web ops"
}
persona empty extends web { }
# end of file
)pdl";

const char* kCanonicalAll = R"pdl(# The whole language
import "base.pdl"  # shared sets
import "lib/common.pdl"
set resolvers = { 10.0.0.53, 10.0.0.54 }

persona web extends base {  # the web tier
  description "web"
  security {  # firewall
    mode enforce
    encryption required min-tls 1.2 except { udp port 53, egress tcp port 853 to $resolvers }  # one line
    encryption required except {  # plaintext allowed
      # resolvers
      udp port 53,  # dns
      egress tcp port {
        80,  # http
        8080,
      } to 10.0.0.0/8,
      ingress icmp,
      # end of exceptions
    }
    ids {  # detection
      syn-flood 2000/s block 60s
      # scans
      port-scan 50/10s  # report only
      # end of ids
    }
  }
  qos {  # shaping
    egress rate 200mbit burst 64kb
    ingress rate 100mbit
    priority high  # high
    # latency
    latency target 5ms
  }
  topology {
    route table 100
    next-hops { 10.0.0.1, 10.0.0.2 }
    max-hops 8
  }
  sovereignty {  # where traffic may go
    allow countries { DE, FR, EU }  # europe
    unknown deny
    exempt {
      10.0.0.0/8,  # internal
      $internal,
    }
    on-violation log
    # end of sovereignty
  }
  dns {
    servers $resolvers  # resolvers
    search "corp.example" "example.com"
  }
  forward {  # ports
    egress tcp 127.0.0.1:5432 -> 10.1.2.3:5432  # db
    ingress tcp 8443 -> 443
    egress udp [fd00::1]:53 -> [fd00::2]:53
    # end of forwards
  }
}

bind web {  # where web runs
  cgroup "/system.slice/web-*.service"
  # interfaces
  interface "eth*"  # uplinks
  user www-data
  group "web ops"
}

persona empty extends web {
}

# end of file
)pdl";

TEST(Format, CanonicalLayoutOfEveryConstruct) { EXPECT_EQ(fmt(kMessyAll), kCanonicalAll); }

TEST(Format, IdempotentOnEveryConstruct) {
    EXPECT_EQ(fmt(kCanonicalAll), kCanonicalAll);
    EXPECT_EQ(fmt(fmt(kMessyAll)), fmt(kMessyAll));
}

TEST(Format, KeepsEveryCommentInEveryBlock) {
    std::string out = fmt(kMessyAll);
    std::istringstream in(kMessyAll);
    std::string line;
    int comments = 0;
    while (std::getline(in, line)) {
        auto hash = line.find('#');
        if (hash == std::string::npos) continue;
        std::string comment = line.substr(hash);
        while (!comment.empty() && comment.back() == ' ') comment.pop_back();
        EXPECT_NE(out.find(comment), std::string::npos) << comment;
        ++comments;
    }
    EXPECT_EQ(comments, 29);  // the check above ran
}

TEST(Format, ExceptListLayout) {
    auto wrap = [](const std::string& statement) {
        return "persona p {\n  security {\n    " + statement + "\n  }\n}\n";
    };
    // One line stays one line, with single spaces.
    EXPECT_EQ(fmt(wrap("encryption required except {udp port 53 ,tcp port {853,5353}}")),
              wrap("encryption required except { udp port 53, tcp port { 853, 5353 } }"));
    EXPECT_EQ(fmt(wrap("encryption required except {  }")), wrap("encryption required except {}"));
    // Over lines (separated by commas or line breaks): one pattern per line, each with a
    // trailing comma.
    EXPECT_EQ(fmt(wrap("encryption required except { udp port 53\n"
                       "icmp, egress any to fd00::/8 }")),
              wrap("encryption required except {\n"
                   "      udp port 53,\n"
                   "      icmp,\n"
                   "      egress any to fd00::/8,\n"
                   "    }"));
    // A comment after '{' needs the line break after it.
    EXPECT_EQ(fmt(wrap("encryption required except {  # why\n  udp port 53 }")),
              wrap("encryption required except {  # why\n"
                   "      udp port 53,\n"
                   "    }"));
    // A pattern holding a multi-line list puts the except list over lines too.
    std::string nested = fmt(wrap("encryption required except { tcp port {\n80 }, udp }"));
    EXPECT_EQ(nested, wrap("encryption required except {\n"
                           "      tcp port {\n"
                           "        80,\n"
                           "      },\n"
                           "      udp,\n"
                           "    }"));
    EXPECT_EQ(fmt(nested), nested);
}

TEST(Format, StringsAreRequoted) {
    EXPECT_EQ(fmt("import \"a \\\"b\\\".pdl\"\n"
                  "bind p { cgroup \"/x\\\\y\"; group \"a\\tb\" }\n"
                  "persona p { dns { search \"x\\\"\" } }\n"),
              "import \"a \\\"b\\\".pdl\"\n"
              "\n"
              "bind p {\n  cgroup \"/x\\\\y\"\n  group \"a\\tb\"\n}\n"
              "\n"
              "persona p {\n  dns {\n    search \"x\\\"\"\n  }\n}\n");
}

TEST(Format, TopLevelSpacingWithImportsAndBinds) {
    // Imports group with sets like sets do; bind blocks are set apart like personas.
    EXPECT_EQ(fmt("import \"a.pdl\"\n"
                  "import \"b.pdl\"\n\n\n"
                  "set s = { 1 }\n"
                  "bind p { user u }\n"
                  "bind q { user v }\n"
                  "persona p { }\n"
                  "import \"c.pdl\"\n"
                  "bind r { user w }\n"
                  "# tail\n"),
              "import \"a.pdl\"\n"
              "import \"b.pdl\"\n\n"
              "set s = { 1 }\n\n"
              "bind p {\n  user u\n}\n\n"
              "bind q {\n  user v\n}\n\n"
              "persona p {\n}\n\n"
              "import \"c.pdl\"\n\n"
              "bind r {\n  user w\n}\n\n"
              "# tail\n");
}

TEST(Format, ErrorsInNewStatementsFailWithDiagnostics) {
    FormatOutput out = format(Source{"t.pdl", "persona p {\n  qos {\n    egress\n  }\n}\n"});
    EXPECT_FALSE(out.ok);
    EXPECT_EQ(out.text, "");
    EXPECT_EQ(out.diagnostics,
              "t.pdl:3:11: error: expected 'rate' after 'egress', found end of line\n"
              "    egress\n"
              "          ^\n");
}

TEST(Format, GoldenSourcesAreCanonical) {
    // The golden inputs double as formatter fixtures: they are kept formatted.
    for (const auto& entry : std::filesystem::directory_iterator(PERSONABPF_GOLDEN_DIR)) {
        if (entry.path().extension() != ".pdl") continue;
        std::ifstream f(entry.path());
        std::stringstream ss;
        ss << f.rdbuf();
        EXPECT_EQ(fmt(ss.str()), ss.str()) << entry.path();
    }
}

}  // namespace
}  // namespace pdl
