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

// A quoted string value (description, search domains, globs, import paths).
struct String {
    std::string value;
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

// A flow pattern inside `encryption ... except { ... }`:
// [ingress|egress] PROTO [port PORTS] [to|from PEERS]
struct Match {
    std::optional<Word> direction;
    Word proto;
    std::optional<Word> port_keyword;
    ValueList ports;
    std::optional<Word> peer_keyword;
    ValueList peers;
    Span span;             // the whole pattern
    Trivia leading;        // only in multi-line lists
    std::string trailing;  // comment after the pattern on its line
};
struct MatchList {
    bool multiline = false;
    std::vector<Match> items;
    std::string open_comment;
    Trivia end_trivia;
    Span span;  // '{' to '}'
};

// encryption required|optional [min-tls VERSION] [except { MATCH, ... }]
struct Encryption {
    Word setting;  // "required" or "optional"
    std::optional<Word> min_tls;
    std::optional<Word> except_keyword;
    MatchList exceptions;
};

// In `ids { }`: syn-flood|port-scan EVENT-RATE [block DURATION]
struct Threshold {
    Word kind;
    Word rate;
    std::optional<Word> block;
};

// In `qos { }`: egress|ingress rate RATE [burst SIZE]
struct Shaping {
    Word direction;
    Word rate;
    std::optional<Word> burst;
};
struct Priority {
    Word value;
};
struct LatencyTarget {  // latency target DURATION
    Word value;
};

// In `topology { }`
struct Route {  // route table N | route via ADDRESS
    Word kind;  // "table" or "via"
    Word value;
};
struct NextHops {
    ValueList hops;
};
struct MaxHops {
    Word value;
};

// In `sovereignty { }`
struct Countries {  // allow|deny countries LIST
    Word action;
    ValueList countries;
};
struct Unknown {  // unknown allow|deny
    Word action;
};
struct Exempt {  // exempt LIST
    ValueList cidrs;
};
struct OnViolation {  // on-violation drop|log
    Word action;
};

// In `dns { }`
struct DnsServers {  // servers LIST
    ValueList servers;
};
struct DnsSearch {  // search "domain" ["domain" ...]
    std::vector<String> domains;
};

// In `forward { }`: egress PROTO [ADDR:]PORT -> ADDR:PORT | ingress PROTO PORT -> PORT
struct Forward {
    Word direction, proto;
    Word from;
    Span arrow;
    Word to;
};

// In a top-level `bind NAME { }`: cgroup "GLOB" | user NAME | group NAME | interface "GLOB"
struct BindMatch {
    Word kind;
    Word value;  // decoded text; `quoted` says how it was written
    bool quoted = false;
};

struct Statement;
struct Block {
    std::vector<Statement> statements;
    std::string open_comment;  // comment after '{'
    Trivia end_trivia;         // comments (and blank lines between them) before '}'
};
// security, ids, qos, topology, sovereignty, dns, forward: `keyword { statements }`.
struct Section {
    Word keyword;
    Block block;
};

struct Statement {
    Trivia leading;
    std::string trailing;
    Span keyword;  // first token of the statement
    std::variant<Description, Mode, Default, Rule, Section, Encryption, Threshold, Shaping,
                 Priority, LatencyTarget, Route, NextHops, MaxHops, Countries, Unknown, Exempt,
                 OnViolation, DnsServers, DnsSearch, Forward, BindMatch>
        node;
};

struct Import {
    String path;
};
struct SetDecl {
    Word name;
    ValueList items;
};
struct PersonaDecl {
    Word name;
    std::optional<Word> parent;  // extends NAME
    Block block;
};
struct BindDecl {
    Word persona;
    Block block;  // BindMatch statements
};

struct TopLevel {
    Trivia leading;
    std::string trailing;
    Span keyword;
    std::variant<Import, SetDecl, PersonaDecl, BindDecl> node;
};

struct File {
    std::vector<TopLevel> items;
    Trivia end_trivia;  // comments after the last item
};

}  // namespace pdl::ast
