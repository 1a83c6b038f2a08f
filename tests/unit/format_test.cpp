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
