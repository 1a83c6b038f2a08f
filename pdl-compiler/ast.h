// The PDL syntax tree: statements as written, with their locations and the comments and
// blank lines around them (the formatter prints from it; sema checks it into the IR).
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "pdl-compiler/diagnostics.h"

namespace pdl::ast {

// Lines before a statement: comments ('#...') and blank lines (""), in order.
using Trivia = std::vector<std::string>;

struct Word {
    std::string text;
    Span span;
};

// One value of a list or a single value: a word (port, range, address, CIDR, `any`) or a
// set reference.
struct Item {
    std::string text;  // set name without '$' for set references
    bool set_ref = false;
    Span span;
    Trivia leading;        // only in multi-line lists (comments and blank lines)
    std::string trailing;  // comment after the item on its line
};

// `443`, `$set`, `any` (braced = false, one item) or `{ a, b, ... }`.
struct ValueList {
    bool braced = false;
    bool multiline = false;  // the source broke the list over lines: keep it that way
    std::vector<Item> items;
    std::string open_comment;  // comment after '{'
    Trivia end_trivia;         // comments (and blank lines between them) before '}'
    Span span;
};

struct Description {
    std::string value;
    Span value_span;
};
struct Mode {
    Word value;
};
struct Default {
    Word direction;
    Word action;
};
struct Rule {
    Word action, direction, proto;
    std::optional<Word> port_keyword;
    ValueList ports;    // empty items when no `port`
    Word peer_keyword;  // `from` or `to`
    ValueList peers;
};

struct Statement;
struct Block {
    std::vector<Statement> statements;
    std::string open_comment;  // comment after '{'
    Trivia end_trivia;         // comments (and blank lines between them) before '}'
};
struct Security {
    Block block;
};

struct Statement {
    Trivia leading;
    std::string trailing;
    Span keyword;  // first token of the statement
    std::variant<Description, Mode, Default, Rule, Security> node;
};

struct SetDecl {
    Word name;
    ValueList items;
};
struct PersonaDecl {
    Word name;
    Block block;
};

struct TopLevel {
    Trivia leading;
    std::string trailing;
    Span keyword;
    std::variant<SetDecl, PersonaDecl> node;
};

struct File {
    std::vector<TopLevel> items;
    Trivia end_trivia;  // comments after the last item
};

}  // namespace pdl::ast
