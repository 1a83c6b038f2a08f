// Lexer: PDL source text -> tokens. Values (addresses, CIDRs, ports, ranges, rates,
// endpoints such as [fd00::1]:53) are lexed as plain words; the parser and the semantic
// pass decide what a word means in its place.
#pragma once

#include <string>
#include <vector>

#include "pdl-compiler/diagnostics.h"

namespace pdl {

// Bounds that keep hostile input cheap: checked here, reported as ordinary errors.
constexpr size_t kMaxSourceBytes = 4u << 20;
constexpr size_t kMaxWordBytes = 256;
constexpr size_t kMaxStringBytes = 4096;

enum class TokenKind {
    Word,    // identifier, keyword, number, range, address, CIDR, rate or endpoint
    SetRef,  // $name (text holds the name without '$')
    String,  // "..." (text holds the decoded value)
    LBrace,
    RBrace,
    Comma,
    Equals,
    Semicolon,
    Arrow,    // -> (in forwards)
    Newline,  // one or more line breaks; `count` says how many
    Comment,  // # to end of line (text holds it, '#' included, trailing space cut)
    Eof,
};

struct Token {
    TokenKind kind = TokenKind::Eof;
    std::string text;
    Span span;
    unsigned count = 0;  // Newline: number of line breaks it covers
};

// Never fails: bad characters are reported and skipped. The last token is always Eof.
std::vector<Token> lex(const std::string& text, Diagnostics& diags);

// Letters, digits, '-' and '_', starting with a letter or '_'.
bool is_identifier(const std::string& word);

// For messages: "'word'", "end of line", "'{'", ...
std::string describe(const Token& tok);

}  // namespace pdl
