// Lexer: token kinds, values and spans, trivia, and the size bounds.
#include <gtest/gtest.h>

#include <algorithm>

#include "pdl-compiler/lexer.h"

namespace pdl {
namespace {

std::vector<Token> lex_ok(const std::string& text) {
    Diagnostics d("t.pdl", text);
    auto toks = lex(text, d);
    EXPECT_EQ(d.errors(), 0u) << d.render();
    return toks;
}

std::string kinds(const std::vector<Token>& toks) {
    std::string s;
    for (const auto& t : toks) {
        switch (t.kind) {
            case TokenKind::Word:
                s += "W(" + t.text + ")";
                break;
            case TokenKind::SetRef:
                s += "$(" + t.text + ")";
                break;
            case TokenKind::String:
                s += "S(" + t.text + ")";
                break;
            case TokenKind::LBrace:
                s += "{";
                break;
            case TokenKind::RBrace:
                s += "}";
                break;
            case TokenKind::Comma:
                s += ",";
                break;
            case TokenKind::Equals:
                s += "=";
                break;
            case TokenKind::Semicolon:
                s += ";";
                break;
            case TokenKind::Arrow:
                s += "->";
                break;
            case TokenKind::Newline:
                s += "NL" + std::to_string(t.count);
                break;
            case TokenKind::Comment:
                s += "C(" + t.text + ")";
                break;
            case TokenKind::Eof:
                s += "EOF";
                break;
        }
        s += " ";
    }
    return s;
}

TEST(Lexer, WordsKeepAddressesCidrsAndRangesWhole) {
    auto toks = lex_ok("allow egress tcp port 8000-8099 to { 10.0.0.0/8, 2001:db8::/32, ::1 }");
    EXPECT_EQ(kinds(toks),
              "W(allow) W(egress) W(tcp) W(port) W(8000-8099) W(to) { W(10.0.0.0/8) , "
              "W(2001:db8::/32) , W(::1) } EOF ");
}

TEST(Lexer, SetRefsStringsCommentsAndNewlines) {
    auto toks = lex_ok(
        "set a = { 80 } # web\n\n\npersona web-1 {description \"x \\\"y\\\"\\n\"; $web_ports}");
    EXPECT_EQ(kinds(toks),
              "W(set) W(a) = { W(80) } C(# web) NL3 W(persona) W(web-1) { W(description) "
              "S(x \"y\"\n) ; $(web_ports) } EOF ");
}

TEST(Lexer, ArrowsEndWords) {
    // A word stops before "->", so a forward needs no spaces around its arrow; a '-'
    // elsewhere stays part of the word (names, port ranges).
    auto toks = lex_ok(
        "egress tcp 5432->443\n"
        "egress tcp 127.0.0.1:5432 -> 10.1.2.3:5432\n"
        "a-b->c- ->->x-\n");
    EXPECT_EQ(kinds(toks),
              "W(egress) W(tcp) W(5432) -> W(443) NL1 "
              "W(egress) W(tcp) W(127.0.0.1:5432) -> W(10.1.2.3:5432) NL1 "
              "W(a-b) -> W(c-) -> -> W(x-) NL1 EOF ");
    EXPECT_EQ(toks[3].span.offset, 15u);
    EXPECT_EQ(toks[3].span.length, 2u);
    EXPECT_EQ(describe(toks[3]), "'->'");
}

TEST(Lexer, BracketsBelongToWords) {
    auto toks = lex_ok("egress udp [fd00::1]:53->[fd00::2]:5353 ingress tcp [::1]");
    EXPECT_EQ(kinds(toks),
              "W(egress) W(udp) W([fd00::1]:53) -> W([fd00::2]:5353) W(ingress) W(tcp) W([::1]) "
              "EOF ");
}

TEST(Lexer, LoneGreaterThanIsAnError) {
    std::string text = "egress tcp 1 > 2";
    Diagnostics d("t.pdl", text);
    auto toks = lex(text, d);
    EXPECT_EQ(d.render(),
              "t.pdl:1:14: error: unexpected character '>'\negress tcp 1 > 2\n             ^\n");
    EXPECT_EQ(kinds(toks), "W(egress) W(tcp) W(1) W(2) EOF ");
}

TEST(Lexer, TooLongWordBeforeAnArrowIsAnError) {
    // The bound applies to the word the arrow ends; the arrow and what follows still lex.
    std::string text = std::string(kMaxWordBytes + 1, '1') + "->2";
    Diagnostics d("t.pdl", text);
    auto toks = lex(text, d);
    EXPECT_EQ(d.errors(), 1u);
    EXPECT_EQ(kinds(toks), "-> W(2) EOF ");
}

TEST(Lexer, SpansAreByteOffsets) {
    auto toks = lex_ok("  mode audit");
    ASSERT_GE(toks.size(), 2u);
    EXPECT_EQ(toks[0].span.offset, 2u);
    EXPECT_EQ(toks[0].span.length, 4u);
    EXPECT_EQ(toks[1].span.offset, 7u);
    EXPECT_EQ(toks[1].span.length, 5u);
}

TEST(Lexer, CrLfAndBomAreWhitespace) {
    auto toks = lex_ok("\xEF\xBB\xBFmode audit\r\nmode enforce\r\n");
    EXPECT_EQ(kinds(toks), "W(mode) W(audit) NL1 W(mode) W(enforce) NL1 EOF ");
}

TEST(Lexer, CommentTrailingSpaceIsCut) {
    auto toks = lex_ok("# hello   \t\n");
    EXPECT_EQ(toks[0].text, "# hello");
}

TEST(Lexer, Utf8InStringsIsKept) {
    auto toks = lex_ok("description \"caf\xC3\xA9 \xE2\x9C\x93\"");
    EXPECT_EQ(toks[1].text, "caf\xC3\xA9 \xE2\x9C\x93");
}

TEST(Lexer, InvalidUtf8InStringIsAnError) {
    std::string text = "description \"a\xFF\"";
    Diagnostics d("t.pdl", text);
    lex(text, d);
    EXPECT_EQ(d.errors(), 1u);
    EXPECT_NE(d.render().find("invalid UTF-8 in string"), std::string::npos);
}

TEST(Lexer, TooLongTokenIsAnError) {
    std::string text = "persona " + std::string(kMaxWordBytes + 1, 'a');
    Diagnostics d("t.pdl", text);
    auto toks = lex(text, d);
    EXPECT_EQ(d.errors(), 1u);
    EXPECT_NE(d.render().find("token is too long (257 bytes; the limit is 256)"),
              std::string::npos);
}

TEST(Lexer, TooLargeFileIsAnError) {
    std::string text(kMaxSourceBytes + 1, ' ');
    Diagnostics d("big.pdl", text);
    auto toks = lex(text, d);
    EXPECT_EQ(d.errors(), 1u);
    ASSERT_EQ(toks.size(), 1u);
    EXPECT_EQ(toks[0].kind, TokenKind::Eof);
    EXPECT_EQ(d.render(),
              "big.pdl:1:1: error: file is too large (4194305 bytes; the limit is "
              "4194304)\n");
}

TEST(Lexer, StrayCharactersAreReportedAndPassedOver) {
    std::string text = "mode @ audit \x01";
    Diagnostics d("t.pdl", text);
    auto toks = lex(text, d);
    EXPECT_EQ(d.errors(), 2u);
    EXPECT_EQ(kinds(toks), "W(mode) W(audit) EOF ");
}

TEST(Lexer, IdentifierRule) {
    EXPECT_TRUE(is_identifier("web-frontend_2"));
    EXPECT_TRUE(is_identifier("_x"));
    EXPECT_FALSE(is_identifier("2web"));
    EXPECT_FALSE(is_identifier("10.0.0.1"));
    EXPECT_FALSE(is_identifier(""));
}

// lex_source() gives the parser what lex() gives, with the texts as views: into the source,
// but for a string whose escapes make its value differ from its spelling.
TEST(Lexer, SourceTextsAreViews) {
    std::string text =
        "set web = { 10.0.0.0/8, 443 }  # why\n"
        "persona p { description \"plain\"; description \"a\\\"b\\n\"\n"
        "  allow egress tcp port $web to [fd00::1]:53 -> 1 }\n";
    Diagnostics d1("t.pdl", text), d2("t.pdl", text);
    Lexed lexed = lex_source(text, d1);
    std::vector<Token> toks = lex(text, d2);
    ASSERT_EQ(lexed.tokens.size(), toks.size());
    auto in_source = [&text](std::string_view v) {
        return v.empty() ||
               (v.data() >= text.data() && v.data() + v.size() <= text.data() + text.size());
    };
    for (size_t i = 0; i < toks.size(); ++i) {
        const Lexeme& l = lexed.tokens[i];
        EXPECT_EQ(l.kind, toks[i].kind) << i;
        EXPECT_EQ(l.text, toks[i].text) << i;
        EXPECT_EQ(l.span.offset, toks[i].span.offset) << i;
        EXPECT_EQ(l.span.length, toks[i].span.length) << i;
        EXPECT_EQ(l.count, toks[i].count) << i;
        if (l.text != "a\"b\n") {
            EXPECT_TRUE(in_source(l.text)) << i << ": " << l.text;
        }
    }
    auto decoded = std::find_if(lexed.tokens.begin(), lexed.tokens.end(),
                                [](const Lexeme& l) { return l.text == "a\"b\n"; });
    ASSERT_NE(decoded, lexed.tokens.end());
    EXPECT_FALSE(in_source(decoded->text));
}

TEST(Lexer, KeptTextsSurviveTheStoresMove) {
    TextStore store;
    std::vector<std::string> texts;
    std::vector<std::string_view> views;
    for (size_t i = 0; i < 3000; ++i) {
        // Short texts share blocks; one longer than a block gets its own.
        texts.push_back(i == 1500 ? std::string(100000, 'x')
                                  : std::string(1 + i % 300, static_cast<char>('a' + i % 26)));
        views.push_back(store.keep(texts.back()));
    }
    EXPECT_TRUE(store.keep("").empty());
    TextStore moved = std::move(store);
    for (size_t i = 0; i < texts.size(); ++i) ASSERT_EQ(views[i], texts[i]) << i;
    EXPECT_EQ(moved.keep("after"), "after");
}

}  // namespace
}  // namespace pdl
