// Parser: the tree it builds, where comments go, and recovery after errors.
#include <gtest/gtest.h>

#include "pdl-compiler/parser.h"

namespace pdl {
namespace {

struct Parsed {
    ast::File file;
    size_t errors;
    std::string diagnostics;
};

Parsed parse_text(const std::string& text) {
    Diagnostics d("t.pdl", text);
    auto toks = lex(text, d);
    ast::File f = parse(toks, d);
    return {std::move(f), d.errors(), d.render()};
}

TEST(Parser, BuildsSetsAndPersonas) {
    auto p = parse_text(
        "set ports = { 80, 443 }\n"
        "persona web {\n"
        "  description \"d\"\n"
        "  security {\n"
        "    mode audit; default egress deny\n"
        "    allow egress tcp port $ports to { 10.0.0.0/8, $dns }\n"
        "  }\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    ASSERT_EQ(p.file.items.size(), 2u);
    const auto& set = std::get<ast::SetDecl>(p.file.items[0].node);
    EXPECT_EQ(set.name.text, "ports");
    ASSERT_EQ(set.items.items.size(), 2u);
    EXPECT_EQ(set.items.items[1].text, "443");

    const auto& persona = std::get<ast::PersonaDecl>(p.file.items[1].node);
    EXPECT_EQ(persona.name.text, "web");
    ASSERT_EQ(persona.block.statements.size(), 2u);
    EXPECT_EQ(std::get<ast::Description>(persona.block.statements[0].node).value, "d");
    const auto& sec = std::get<ast::Section>(persona.block.statements[1].node);
    ASSERT_EQ(sec.block.statements.size(), 3u);
    EXPECT_EQ(std::get<ast::Mode>(sec.block.statements[0].node).value.text, "audit");
    const auto& def = std::get<ast::Default>(sec.block.statements[1].node);
    EXPECT_EQ(def.direction.text, "egress");
    EXPECT_EQ(def.action.text, "deny");
    const auto& rule = std::get<ast::Rule>(sec.block.statements[2].node);
    EXPECT_EQ(rule.action.text, "allow");
    EXPECT_EQ(rule.proto.text, "tcp");
    ASSERT_TRUE(rule.port_keyword.has_value());
    ASSERT_EQ(rule.ports.items.size(), 1u);
    EXPECT_TRUE(rule.ports.items[0].set_ref);
    EXPECT_EQ(rule.peer_keyword.text, "to");
    EXPECT_TRUE(rule.peers.braced);
    ASSERT_EQ(rule.peers.items.size(), 2u);
    EXPECT_EQ(rule.peers.items[0].text, "10.0.0.0/8");
    EXPECT_TRUE(rule.peers.items[1].set_ref);
}

TEST(Parser, OneLineBlocks) {
    auto p = parse_text("persona p { security { mode audit } }\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& persona = std::get<ast::PersonaDecl>(p.file.items[0].node);
    const auto& sec = std::get<ast::Section>(persona.block.statements[0].node);
    EXPECT_EQ(sec.block.statements.size(), 1u);
}

TEST(Parser, CommentsAndBlankLinesAreAttached) {
    auto p = parse_text(
        "# head\n"
        "\n"
        "# about p\n"
        "persona p {  # open\n"
        "  security {\n"
        "    mode audit  # why\n"
        "\n"
        "\n"
        "    # last\n"
        "  }\n"
        "}  # done\n"
        "# tail\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& item = p.file.items[0];
    EXPECT_EQ(item.leading, (ast::Trivia{"# head", "", "# about p"}));
    EXPECT_EQ(item.trailing, "# done");
    const auto& persona = std::get<ast::PersonaDecl>(item.node);
    EXPECT_EQ(persona.block.open_comment, "# open");
    const auto& sec = std::get<ast::Section>(persona.block.statements[0].node);
    EXPECT_EQ(sec.block.statements[0].trailing, "# why");
    EXPECT_EQ(sec.block.end_trivia, (ast::Trivia{"", "# last"}));
    EXPECT_EQ(p.file.end_trivia, (ast::Trivia{"# tail"}));
}

TEST(Parser, MultilineListsKeepItemComments) {
    auto p = parse_text(
        "set ports = {  # web\n"
        "  80,  # http\n"
        "  # tls\n"
        "  443,\n"
        "  # end\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& list = std::get<ast::SetDecl>(p.file.items[0].node).items;
    EXPECT_TRUE(list.multiline);
    EXPECT_EQ(list.open_comment, "# web");
    ASSERT_EQ(list.items.size(), 2u);
    EXPECT_EQ(list.items[0].trailing, "# http");
    EXPECT_EQ(list.items[1].leading, (ast::Trivia{"# tls"}));
    EXPECT_EQ(list.end_trivia, (ast::Trivia{"# end"}));
}

TEST(Parser, MultilineListsKeepBlankLinesBetweenItems) {
    // Runs of blank lines become one "" entry; none after '{' or before '}'.
    auto p = parse_text(
        "set ports = {  # web\n"
        "\n"
        "  80,\n"
        "\n"
        "\n"
        "  # tls\n"
        "\n"
        "  443,  # https\n"
        "  \t\n"
        "  8443,\n"
        "\n"
        "  # end\n"
        "\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& list = std::get<ast::SetDecl>(p.file.items[0].node).items;
    ASSERT_EQ(list.items.size(), 3u);
    EXPECT_EQ(list.items[0].leading, ast::Trivia{});
    EXPECT_EQ(list.items[1].leading, (ast::Trivia{"", "# tls", ""}));
    EXPECT_EQ(list.items[1].trailing, "# https");
    EXPECT_EQ(list.items[2].leading, (ast::Trivia{""}));
    EXPECT_EQ(list.end_trivia, (ast::Trivia{"", "# end"}));
}

TEST(Parser, BlankLinesInBlocksAreCollapsedAndTrimmed) {
    auto p = parse_text(
        "persona p {\n"
        "\n"
        "  # first\n"
        "\n"
        "\n"
        "  description \"d\"\n"
        " \r\n"
        "  security {\n"
        "\n"
        "    mode audit\n"
        "  }\n"
        "\n"
        "}\n");
    ASSERT_EQ(p.errors, 0u) << p.diagnostics;
    const auto& persona = std::get<ast::PersonaDecl>(p.file.items[0].node);
    ASSERT_EQ(persona.block.statements.size(), 2u);
    EXPECT_EQ(persona.block.statements[0].leading, (ast::Trivia{"# first", ""}));
    EXPECT_EQ(persona.block.statements[1].leading, (ast::Trivia{""}));
    EXPECT_EQ(persona.block.end_trivia, ast::Trivia{});
    const auto& sec = std::get<ast::Section>(persona.block.statements[1].node);
    EXPECT_EQ(sec.block.statements[0].leading, ast::Trivia{});
}

TEST(Parser, RecoversAndReportsEveryBadStatement) {
    auto p = parse_text(
        "persona a {\n"
        "  security {\n"
        "    allow sideways tcp to any\n"
        "    mode loud\n"
        "    allow egress tcp to any\n"
        "  }\n"
        "}\n"
        "persona b {\n"
        "  security {\n"
        "    deny egress tcp to { 10.0.0.1 10.0.0.2 }\n"
        "    deny egress tcp port to any\n"
        "  }\n"
        "}\n");
    EXPECT_EQ(p.errors, 4u) << p.diagnostics;
    // Both personas still parse: the bad statements are dropped, the good ones kept.
    ASSERT_EQ(p.file.items.size(), 2u);
    const auto& a = std::get<ast::PersonaDecl>(p.file.items[0].node);
    EXPECT_EQ(std::get<ast::Section>(a.block.statements[0].node).block.statements.size(), 1u);
}

TEST(Parser, UnsupportedSectionsArePassedOverWhole) {
    auto p = parse_text(
        "persona a {\n"
        "  qos {\n"
        "    egress rate 200mbit { nested { deeper } }\n"
        "  }\n"
        "  security { mode audit }\n"
        "}\n");
    EXPECT_EQ(p.errors, 1u) << p.diagnostics;
    const auto& a = std::get<ast::PersonaDecl>(p.file.items[0].node);
    ASSERT_EQ(a.block.statements.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<ast::Section>(a.block.statements[0].node));
}

TEST(Parser, DeepNestingDoesNotRecurse) {
    std::string text =
        "persona a {\n  qos " + std::string(200000, '{') + std::string(200000, '}') + "\n}\n";
    auto p = parse_text(text);
    EXPECT_EQ(p.errors, 2u);
    EXPECT_NE(p.diagnostics.find("blocks are nested too deeply (the limit is 64)"),
              std::string::npos);
}

TEST(Parser, ErrorCountIsBounded) {
    std::string text;
    for (int i = 0; i < 1000; ++i) text += "bogus\n";
    auto p = parse_text(text);
    EXPECT_EQ(p.errors, Diagnostics::kMaxErrors);
    EXPECT_NE(p.diagnostics.find("(too many errors; stopping here)"), std::string::npos);
}

}  // namespace
}  // namespace pdl
