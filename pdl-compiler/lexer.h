// Lexer: PDL source text -> tokens. Values (addresses, CIDRs, ports, ranges, rates,
// endpoints such as [fd00::1]:53) are lexed as plain words; the parser and the semantic
// pass decide what a word means in its place.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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

// Texts that are not in the source text: decoded strings, or copies of texts whose owner
// goes away. A kept view stays valid for the life of the store, also when it is moved.
class TextStore {
  public:
    std::string_view keep(std::string_view text);

  private:
    std::vector<std::unique_ptr<char[]>> blocks_;
    size_t used_ = 0;      // of the last block
    size_t capacity_ = 0;  // of the last block
};

// A token as the parser reads it: like Token, but its text is a view (into the source text,
// or into Lexed::store for a string whose value differs from its spelling), so that a
// large file does not cost a std::string per token.
struct Lexeme {
    std::string_view text;
    Span span;
    uint32_t count = 0;  // Newline: number of line breaks it covers
    TokenKind kind = TokenKind::Eof;
};

struct Lexed {
    std::vector<Lexeme> tokens;
    TextStore store;
};

// What lex() does, with the texts as views into `text`, which must outlive the result
// (and the syntax tree parsed from it).
Lexed lex_source(const std::string& text, Diagnostics& diags);

// Letters, digits, '-' and '_', starting with a letter or '_'.
bool is_identifier(std::string_view word);

// For messages: "'word'", "end of line", "'{'", ...
std::string describe(const Token& tok);
std::string describe(const Lexeme& tok);

}  // namespace pdl
