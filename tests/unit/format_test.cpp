// Formatter: canonical layout (golden), idempotence, comments kept, meaning unchanged.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
