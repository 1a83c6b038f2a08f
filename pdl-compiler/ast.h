// The PDL syntax tree: statements as written, with their locations and the comments and
// blank lines around them (the formatter prints from it; sema checks it into the IR).
// Texts are views: into the source text when parsed from lex_source() (the source must
// outlive the tree), otherwise into the tree's own File::store. A large file holds a
// hundred thousand rules, so the nodes are kept small.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "pdl-compiler/diagnostics.h"
#include "pdl-compiler/lexer.h"

namespace pdl::ast {

// Lines before a statement, a list item or a '}': comments ('#...') and blank lines (""),
// in order. Nearly always there are none, and then it is one null pointer.
class Trivia {
  public:
    using value_type = std::string_view;
    using const_iterator = const std::string_view*;
    using iterator = const_iterator;

    Trivia() = default;
    Trivia(std::initializer_list<std::string_view> lines) {
        for (std::string_view line : lines) push_back(line);
    }
    Trivia(const Trivia& other)
        : lines_(other.empty() ? nullptr : std::make_unique<Lines>(*other.lines_)) {}
    Trivia& operator=(const Trivia& other) {
        if (this != &other) *this = Trivia(other);
        return *this;
    }
    Trivia(Trivia&&) noexcept = default;
    Trivia& operator=(Trivia&&) noexcept = default;

    bool empty() const { return !lines_ || lines_->empty(); }
    size_t size() const { return lines_ ? lines_->size() : 0; }
    const_iterator begin() const { return lines_ ? lines_->data() : nullptr; }
    const_iterator end() const { return begin() + size(); }
    std::string_view front() const { return lines_->front(); }
    std::string_view back() const { return lines_->back(); }

    void push_back(std::string_view line) {
        if (!lines_) lines_ = std::make_unique<Lines>();
        lines_->push_back(line);
    }
    void pop_back() { lines_->pop_back(); }
    void clear() { lines_.reset(); }

    friend bool operator==(const Trivia& a, const Trivia& b) {
        return std::equal(a.begin(), a.end(), b.begin(), b.end());
    }

  private:
    using Lines = std::vector<std::string_view>;
    std::unique_ptr<Lines> lines_;
};

struct Word {
    std::string_view text;
    Span span;
};

// One value of a list or a single value: a word (port, range, address, CIDR, `any`) or a
// set reference.
struct Item {
    std::string_view text;  // set name without '$' for set references
    bool set_ref = false;
    Span span;
    Trivia leading;             // only in multi-line lists (comments and blank lines)
    std::string_view trailing;  // comment after the item on its line
};

// `443`, `$set`, `any` (braced = false, one item) or `{ a, b, ... }`.
struct ValueList {
    bool braced = false;
    bool multiline = false;  // the source broke the list over lines: keep it that way
    std::vector<Item> items;
    std::string_view open_comment;  // comment after '{'
    Trivia end_trivia;              // comments (and blank lines between them) before '}'
    Span span;
};

// A quoted string value (description, search domains, globs, import paths).
struct String {
    std::string_view value;
    Span span;
};

struct Description {
    std::string_view value;
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
    Span span;                  // the whole pattern
    Trivia leading;             // only in multi-line lists
    std::string_view trailing;  // comment after the pattern on its line
};
struct MatchList {
    bool multiline = false;
    std::vector<Match> items;
    std::string_view open_comment;
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
    std::string_view open_comment;  // comment after '{'
    Trivia end_trivia;              // comments (and blank lines between them) before '}'
};
// security, ids, qos, topology, sovereignty, dns, forward: `keyword { statements }`.
struct Section {
    Word keyword;
    Block block;
};

struct Statement {
    Trivia leading;
    std::string_view trailing;
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
    std::string_view trailing;
    Span keyword;
    std::variant<Import, SetDecl, PersonaDecl, BindDecl> node;
};

struct File {
    std::vector<TopLevel> items;
    Trivia end_trivia;  // comments after the last item
    TextStore store;    // texts that are not in the source text
};

}  // namespace pdl::ast
