// The PDL parser. Each statement is parsed by one function; on an error it reports
// "expected X, found Y" and skips to the end of the statement (balancing braces), so
// that parsing continues with the next statement. Each kind of block has a small table
// of the statements it holds; a statement written in the wrong block is reported with
// the block it belongs in.
#include "pdl-compiler/parser.h"

#include <optional>

namespace pdl {

namespace {

const std::vector<std::string> kDirections = {"ingress", "egress"};
const std::vector<std::string> kActions = {"allow", "deny"};
const std::vector<std::string> kModes = {"enforce", "audit"};
const std::vector<std::string> kProtos = {"tcp", "udp", "icmp", "icmpv6", "any"};
const std::vector<std::string> kEncryptionSettings = {"required", "optional"};
const std::vector<std::string> kPriorities = {"low", "normal", "high", "critical"};
const std::vector<std::string> kRouteKinds = {"table", "via"};
const std::vector<std::string> kViolationActions = {"drop", "log"};

// What the items of each kind of list may be, for messages.
const std::vector<std::string> kPortItems = {"a port", "a port range", "a $set"};
const std::vector<std::string> kPeerItems = {"an address", "a CIDR", "a $set", "'any'"};
const std::vector<std::string> kSetItems = {"an address", "a CIDR", "a port", "a port range"};
const std::vector<std::string> kHostItems = {"an address", "a $set"};
const std::vector<std::string> kCidrItems = {"an address", "a CIDR", "a $set"};
const std::vector<std::string> kCountryItems = {"a country code", "a country group"};

bool contains(const std::vector<std::string>& v, std::string_view s) {
    for (const auto& x : v)
        if (x == s) return true;
    return false;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
    auto best = nearest(std::string(word), candidates);
    return best ? "; did you mean '" + *best + "'?" : "";
}

// "a", "a or b", "a, b or c".
std::string join_choices(const std::vector<std::string>& choices) {
    std::string s;
    for (size_t i = 0; i < choices.size(); ++i) {
        if (i > 0) s += i + 1 == choices.size() ? " or " : ", ";
        s += choices[i];
    }
    return s;
}

// "'a'", "'a' or 'b'", "'a', 'b' or 'c'".
std::string one_of(const std::vector<std::string>& words) {
    std::vector<std::string> quoted;
    for (const auto& w : words) quoted.push_back("'" + w + "'");
    return join_choices(quoted);
}

Span join(Span first, Span last) {
    return {first.offset, last.offset + last.length - first.offset};
}

class Parser {
  public:
    // `copy`: the tokens' texts go away with the tokens, so the tree keeps copies in
    // `store`. Otherwise they are views into the source text (or into `store` already).
    Parser(const std::vector<Lexeme>& tokens, Diagnostics& diags, TextStore store, bool copy)
        : t_(tokens), d_(diags), store_(std::move(store)), copy_(copy) {}

    ast::File file() {
        ast::File f;
        file_items(f);
        f.store = std::move(store_);
        return f;
    }

  private:
    void file_items(ast::File& f) {
        while (!d_.too_many_errors()) {
            ast::Trivia trivia = collect_trivia(f.items.empty());
            const Lexeme& tok = peek();
            if (tok.kind == TokenKind::Eof) {
                f.end_trivia = std::move(trivia);
                break;
            }
            if (tok.kind == TokenKind::RBrace) {
                d_.error(tok.span, "unexpected '}' at top level; no block is open here");
                advance();
                continue;
            }
            size_t start = pos_;
            ast::TopLevel item;
            item.leading = std::move(trivia);
            item.keyword = tok.span;
            bool ok = top_level(item);
            if (ok) ok = end_of_statement(item.trailing);
            if (ok) {
                f.items.push_back(std::move(item));
            } else {
                sync();
                if (pos_ == start) advance();  // always make progress
            }
        }
    }

    using TopLevelFn = bool (Parser::*)(ast::TopLevel&);
    using StatementFn = bool (Parser::*)(ast::Statement&);
    struct TopLevelKind {
        std::string_view keyword;
        TopLevelFn parse;
    };
    struct StatementKind {
        std::string_view keyword;
        StatementFn parse;
    };
    // A kind of block: the statements it holds, and how messages name it.
    struct Place {
        const char* keyword;  // what opens it: "persona", "security", "bind", ...
        const char* in;       // "in persona", "in qos block"
        const char* home;     // where its statements belong: "a qos { } block"
        std::vector<StatementKind> statements;
    };
    static const std::vector<TopLevelKind> kTopLevel;
    static const Place kPersona, kSecurity, kIds, kQos, kTopology, kSovereignty, kDns, kForward,
        kBind;
    static const std::vector<const Place*> kPlaces;

    static std::vector<std::string> keywords(const Place& place) {
        std::vector<std::string> out;
        for (const auto& k : place.statements) out.emplace_back(k.keyword);
        return out;
    }
    static std::vector<std::string> top_level_keywords() {
        std::vector<std::string> out;
        for (const auto& k : kTopLevel) out.emplace_back(k.keyword);
        return out;
    }

    static bool is_statement_keyword(std::string_view w) {
        for (const auto& k : kTopLevel)
            if (w == k.keyword) return true;
        for (const Place* p : kPlaces)
            for (const auto& k : p->statements)
                if (w == k.keyword) return true;
        return false;
    }

    // ---- tokens ----

    std::string_view keep(std::string_view text) { return copy_ ? store_.keep(text) : text; }
    ast::Word word(const Lexeme& tok) { return {keep(tok.text), tok.span}; }

    const Lexeme& peek(size_t ahead = 0) const {
        size_t i = pos_ + ahead;
        return i < t_.size() ? t_[i] : t_.back();
    }
    const Lexeme& advance() {
        const Lexeme& tok = peek();
        if (pos_ < t_.size() - 1) ++pos_;
        return tok;
    }
    // The last token consumed.
    const Lexeme& prev() const { return t_[pos_ > 0 ? pos_ - 1 : 0]; }
    bool is_word(const char* w) const { return peek().kind == TokenKind::Word && peek().text == w; }

    // Is there a '->' before the end of the current statement? (Tells a forward apart.)
    bool arrow_ahead() const {
        for (size_t i = pos_; i < t_.size(); ++i) {
            switch (t_[i].kind) {
                case TokenKind::Arrow:
                    return true;
                case TokenKind::Newline:
                case TokenKind::Semicolon:
                case TokenKind::LBrace:
                case TokenKind::RBrace:
                case TokenKind::Eof:
                    return false;
                default:
                    break;
            }
        }
        return false;
    }

    // Comments, blank lines and empty statements before a statement. Blank lines are
    // collapsed to one and dropped at the start of a block.
    ast::Trivia collect_trivia(bool at_start) {
        ast::Trivia out;
        for (;;) {
            const Lexeme& tok = peek();
            if (tok.kind == TokenKind::Newline) {
                if (tok.count >= 2 && !(at_start && out.empty()) &&
                    (out.empty() || !out.back().empty()))
                    out.push_back("");
                advance();
            } else if (tok.kind == TokenKind::Comment) {
                out.push_back(keep(tok.text));
                advance();
            } else if (tok.kind == TokenKind::Semicolon) {
                advance();
            } else {
                break;
            }
        }
        if (peek().kind == TokenKind::RBrace || peek().kind == TokenKind::Eof)
            while (!out.empty() && out.back().empty()) out.pop_back();
        return out;
    }

    // After a statement: an optional ';', an optional comment, then a line break, '}'
    // or end of file (after a ';' the next statement may follow on the same line).
    bool end_of_statement(std::string_view& trailing) {
        bool semi = false;
        if (peek().kind == TokenKind::Semicolon) {
            advance();
            semi = true;
        }
        if (peek().kind == TokenKind::Comment) {
            trailing = keep(advance().text);
            return true;
        }
        TokenKind k = peek().kind;
        if (semi || k == TokenKind::Newline || k == TokenKind::RBrace || k == TokenKind::Eof)
            return true;
        d_.error(peek().span,
                 "expected end of statement (a new line or ';'), found " + describe(peek()));
        return false;
    }

    // Error recovery: skip to the end of the current statement, stepping over whole
    // { } blocks; stop before a '}' that closes the enclosing block.
    void sync() {
        int depth = 0;
        bool reported = false;
        for (;;) {
            const Lexeme& tok = peek();
            switch (tok.kind) {
                case TokenKind::Eof:
                    return;
                case TokenKind::LBrace:
                    if (++depth > kMaxNesting && !reported) {
                        d_.error(tok.span, "blocks are nested too deeply (the limit is " +
                                               std::to_string(kMaxNesting) + ")");
                        reported = true;
                    }
                    break;
                case TokenKind::RBrace:
                    if (depth == 0) return;
                    --depth;
                    if (depth == 0) {
                        advance();
                        if (peek().kind == TokenKind::Newline ||
                            peek().kind == TokenKind::Semicolon)
                            return;
                        continue;
                    }
                    break;
                case TokenKind::Newline:
                case TokenKind::Semicolon:
                    if (depth == 0) {
                        advance();
                        return;
                    }
                    break;
                default:
                    break;
            }
            advance();
        }
    }

    // ---- pieces of statements ----

    bool expect_name(ast::Word& out, const char* what) {
        const Lexeme& tok = peek();
        if (tok.kind != TokenKind::Word || !is_identifier(tok.text)) {
            d_.error(tok.span, std::string("expected ") + what +
                                   " (letters, digits, '-' and '_'), found " + describe(tok));
            return false;
        }
        out = word(tok);
        advance();
        return true;
    }

    // Expects one of `choices` after `after`; suggests the nearest on a typo.
    bool expect_choice(ast::Word& out, const std::vector<std::string>& choices,
                       std::string_view what, std::string_view after) {
        const Lexeme& tok = peek();
        if (tok.kind == TokenKind::Word && contains(choices, tok.text)) {
            out = word(tok);
            advance();
            return true;
        }
        std::string msg = "expected " + std::string(what) + " after '" + std::string(after) +
                          "', found " + describe(tok);
        if (tok.kind == TokenKind::Word) msg += did_you_mean(tok.text, choices);
        d_.error(tok.span, msg);
        return false;
    }

    // Any word: a value (rate, duration, endpoint, ...) that the semantic pass checks.
    bool expect_value(ast::Word& out, std::string_view what, std::string_view after) {
        const Lexeme& tok = peek();
        if (tok.kind != TokenKind::Word) {
            d_.error(tok.span, "expected " + std::string(what) + " after '" + std::string(after) +
                                   "', found " + describe(tok));
            return false;
        }
        out = word(tok);
        advance();
        return true;
    }

    // A quoted string (import path, glob, domain). A bare word gets the quoted spelling
    // as a hint: globs and paths are the usual reason to forget the quotes.
    bool expect_string(ast::String& out, const std::string& what, std::string_view after) {
        const Lexeme& tok = peek();
        if (tok.kind != TokenKind::String) {
            std::string msg =
                "expected " + what + " after '" + std::string(after) + "', found " + describe(tok);
            if (tok.kind == TokenKind::Word)
                msg += "; write it in quotes: \"" + std::string(tok.text) + "\"";
            d_.error(tok.span, msg);
            return false;
        }
        out = {keep(tok.text), tok.span};
        advance();
        return true;
    }

    // After the required part of a statement, a word that is none of the optional
    // `keywords` still possible is reported with them (and a suggestion), rather than as
    // trailing garbage. Anything else is left to end_of_statement().
    bool expect_end_or(const std::vector<std::string>& keywords) {
        const Lexeme& tok = peek();
        if (tok.kind != TokenKind::Word || contains(keywords, tok.text)) return true;
        std::vector<std::string> choices;
        for (const auto& k : keywords) choices.push_back("'" + k + "'");
        choices.push_back("end of statement");
        d_.error(tok.span, "expected " + join_choices(choices) + " after " + describe(prev()) +
                               ", found " + describe(tok) + did_you_mean(tok.text, keywords));
        return false;
    }

    bool proto(ast::Word& out) {
        const Lexeme& p = peek();
        if (p.kind == TokenKind::Word && contains(kProtos, p.text)) {
            out = word(p);
            advance();
            return true;
        }
        if (p.kind == TokenKind::Word) {
            d_.error(p.span, "unknown protocol '" + std::string(p.text) +
                                 "'; expected tcp, udp, icmp, icmpv6 or any" +
                                 did_you_mean(p.text, kProtos));
        } else {
            d_.error(p.span,
                     "expected a protocol (tcp, udp, icmp, icmpv6 or any), found " + describe(p));
        }
        return false;
    }

    // A single value or a braced list. `kinds` names what an item may be; `after`, when
    // given, the keyword before the list.
    bool value_list(ast::ValueList& list, const std::vector<std::string>& kinds,
                    std::string_view after = {}) {
        const Lexeme& first = peek();
        list.span = first.span;
        if (first.kind == TokenKind::Word || first.kind == TokenKind::SetRef) {
            list.items.push_back(ast::Item{.text = keep(first.text),
                                           .set_ref = first.kind == TokenKind::SetRef,
                                           .span = first.span});
            advance();
            return true;
        }
        if (first.kind != TokenKind::LBrace) {
            std::vector<std::string> starts = kinds;
            starts.push_back("'{'");
            d_.error(first.span, "expected " + join_choices(starts) +
                                     (after.empty() ? "" : " after '" + std::string(after) + "'") +
                                     ", found " + describe(first));
            return false;
        }
        list.braced = true;
        advance();
        ast::Trivia pending;
        bool want_comma = false;  // an item was just read
        bool same_line = true;    // no line break since the last item, ',' or '{'
        for (;;) {
            const Lexeme& tok = peek();
            switch (tok.kind) {
                case TokenKind::Newline:
                    // A blank line between items (or comments) keeps the author's grouping,
                    // collapsed to one; none is kept right after '{'.
                    if (tok.count >= 2 && (!list.items.empty() || !pending.empty()) &&
                        (pending.empty() || !pending.back().empty()))
                        pending.push_back("");
                    list.multiline = true;
                    same_line = false;
                    advance();
                    break;
                case TokenKind::Comment:
                    if (same_line && !list.items.empty() && pending.empty())
                        list.items.back().trailing = keep(tok.text);
                    else if (same_line && list.items.empty())
                        list.open_comment = keep(tok.text);
                    else
                        pending.push_back(keep(tok.text));
                    list.multiline = true;
                    advance();
                    break;
                case TokenKind::RBrace:
                    while (!pending.empty() && pending.back().empty()) pending.pop_back();
                    list.end_trivia = std::move(pending);
                    list.span.length = tok.span.offset + 1 - list.span.offset;
                    advance();
                    return true;
                case TokenKind::Comma:
                    if (!want_comma) {
                        d_.error(tok.span, "expected " + join_choices(kinds) + " before ','");
                        return skip_list();
                    }
                    want_comma = false;
                    advance();
                    break;
                case TokenKind::Word:
                case TokenKind::SetRef:
                    if (want_comma) {
                        d_.error(tok.span,
                                 "expected ',' or '}' after a list item, found " + describe(tok));
                        return skip_list();
                    }
                    list.items.push_back(ast::Item{.text = keep(tok.text),
                                                   .set_ref = tok.kind == TokenKind::SetRef,
                                                   .span = tok.span,
                                                   .leading = std::move(pending)});
                    pending.clear();
                    want_comma = true;
                    same_line = true;
                    advance();
                    break;
                case TokenKind::LBrace:
                    d_.error(tok.span, "lists cannot be nested; expected " + join_choices(kinds));
                    return skip_nested();
                default:
                    std::vector<std::string> next = kinds;
                    next.push_back("'}'");
                    d_.error(tok.span, "expected " +
                                           (want_comma ? "',' or '}'" : join_choices(next)) +
                                           ", found " + describe(tok));
                    return skip_list();
            }
        }
    }

    // After an error inside a braced list: skip to its '}' so that the '}' is not taken
    // for the end of the enclosing block. A '{' more likely opens the next block (the
    // list was left open) than a nested list: sync() steps over it.
    bool skip_list() {
        for (;;) {
            TokenKind k = peek().kind;
            if (k == TokenKind::Eof || k == TokenKind::LBrace) return false;
            advance();
            if (k == TokenKind::RBrace) return false;
        }
    }

    // After a '{' where an item of an open list was expected: skip up to the list's own
    // '}', stepping over the nested braces (bounded like blocks).
    bool skip_nested() {
        int depth = 1;  // the list's '{'
        bool reported = false;
        for (;;) {
            const Lexeme& tok = peek();
            if (tok.kind == TokenKind::Eof) return false;
            if (tok.kind == TokenKind::LBrace && ++depth > kMaxNesting && !reported) {
                d_.error(tok.span, "blocks are nested too deeply (the limit is " +
                                       std::to_string(kMaxNesting) + ")");
                reported = true;
            }
            advance();
            if (tok.kind == TokenKind::RBrace && --depth == 0) return false;
        }
    }

    // `except { MATCH, MATCH ... }`: patterns separated by ',' and/or line breaks (a
    // trailing ',' is fine); comments and blank lines are kept as in value lists.
    bool match_list(ast::MatchList& list) {
        const Lexeme& open = advance();  // '{'
        list.span = open.span;
        ast::Trivia pending;
        bool want_separator = false;  // a pattern was just read
        bool same_line = true;        // no line break since the last pattern, ',' or '{'
        for (;;) {
            const Lexeme& tok = peek();
            switch (tok.kind) {
                case TokenKind::Newline:
                    if (tok.count >= 2 && (!list.items.empty() || !pending.empty()) &&
                        (pending.empty() || !pending.back().empty()))
                        pending.push_back("");
                    list.multiline = true;
                    same_line = false;
                    want_separator = false;
                    advance();
                    break;
                case TokenKind::Comment:
                    if (same_line && !list.items.empty() && pending.empty())
                        list.items.back().trailing = keep(tok.text);
                    else if (same_line && list.items.empty())
                        list.open_comment = keep(tok.text);
                    else
                        pending.push_back(keep(tok.text));
                    list.multiline = true;
                    advance();
                    break;
                case TokenKind::RBrace:
                    while (!pending.empty() && pending.back().empty()) pending.pop_back();
                    list.end_trivia = std::move(pending);
                    list.span = join(list.span, tok.span);
                    advance();
                    return true;
                case TokenKind::Comma:
                    if (!want_separator) {
                        d_.error(tok.span, "expected a flow pattern before ','");
                        return skip_list();
                    }
                    want_separator = false;
                    advance();
                    break;
                case TokenKind::Word: {
                    if (!same_line && is_statement_keyword(tok.text) &&
                        !contains(kDirections, tok.text) && !contains(kProtos, tok.text)) {
                        // The list was left open and this line is the next statement: leave
                        // it, and the '}' after it, to the enclosing block.
                        auto& e =
                            d_.error(tok.span, "expected '}' to close the except list, found " +
                                                   describe(tok));
                        e.notes.push_back({"the list starts here", list.span});
                        return false;
                    }
                    ast::Match m;
                    if (!match(m)) return skip_list();
                    m.leading = std::move(pending);
                    pending.clear();
                    list.items.push_back(std::move(m));
                    want_separator = true;
                    same_line = true;
                    break;
                }
                case TokenKind::Eof: {
                    auto& e = d_.error(tok.span, "expected '}' to close the except list");
                    e.notes.push_back({"the list starts here", list.span});
                    return false;
                }
                case TokenKind::LBrace:
                    d_.error(tok.span, "expected a flow pattern or '}', found '{'");
                    return skip_nested();
                default:
                    d_.error(tok.span, "expected a flow pattern or '}', found " + describe(tok));
                    return skip_list();
            }
        }
    }

    // [ingress|egress] PROTO [port PORTS] [to|from PEERS], up to a ',', a line break, a
    // comment or the list's '}'. Whether the peer keyword fits the direction is for the
    // semantic pass (a pattern without a direction may use either).
    bool match(ast::Match& m) {
        const Lexeme& first = peek();
        if (contains(kDirections, first.text)) {
            m.direction = word(first);
            advance();
            if (!proto(m.proto)) return false;
        } else if (contains(kProtos, first.text)) {
            m.proto = word(first);
            advance();
        } else {
            std::vector<std::string> starts = kDirections;
            starts.insert(starts.end(), kProtos.begin(), kProtos.end());
            d_.error(first.span,
                     "expected 'ingress', 'egress' or a protocol (tcp, udp, icmp, icmpv6 or "
                     "any) to start a flow pattern, found " +
                         describe(first) + did_you_mean(first.text, starts));
            return false;
        }
        if (is_word("port")) {
            m.port_keyword = word(advance());
            if (!value_list(m.ports, kPortItems, "port")) return false;
        }
        if (is_word("to") || is_word("from")) {
            m.peer_keyword = word(advance());
            if (!value_list(m.peers, kPeerItems, m.peer_keyword->text)) return false;
        }
        m.span = join(first.span, prev().span);
        TokenKind k = peek().kind;
        if (k == TokenKind::Comma || k == TokenKind::Newline || k == TokenKind::Comment ||
            k == TokenKind::RBrace)
            return true;
        std::vector<std::string> next;
        std::string after = "after the pattern";
        if (!m.peer_keyword) {
            if (!m.port_keyword) next.push_back("port");
            next.push_back("to");
            next.push_back("from");
            after =
                m.port_keyword ? "after the ports" : "after '" + std::string(m.proto.text) + "'";
        }
        std::vector<std::string> expected = next;
        expected.push_back(",");
        expected.push_back("}");
        std::string msg =
            "expected " + one_of(expected) + " " + after + ", found " + describe(peek());
        if (peek().kind == TokenKind::Word) msg += did_you_mean(peek().text, next);
        d_.error(peek().span, msg);
        return false;
    }

    // ---- blocks ----

    // The statements of a block, up to and including the closing '}'.
    bool block(ast::Block& b, const Place& place, const std::string& owner, Span open) {
        if (peek().kind == TokenKind::Comment) b.open_comment = keep(advance().text);
        if (++depth_ > kMaxNesting) {
            d_.error(open, "blocks are nested too deeply");
            return false;
        }
        // Gathered here, then moved into a vector of the exact size: statements are most of
        // a large tree, and a grown vector keeps up to half of itself spare. (A block that
        // fails is dropped with the statement holding it.)
        std::vector<ast::Statement>& statements = open_blocks_[static_cast<size_t>(depth_)];
        statements.clear();
        for (;;) {
            if (d_.too_many_errors()) return false;
            ast::Trivia trivia = collect_trivia(statements.empty());
            const Lexeme& tok = peek();
            if (tok.kind == TokenKind::RBrace) {
                b.statements.assign(std::make_move_iterator(statements.begin()),
                                    std::make_move_iterator(statements.end()));
                statements.clear();
                b.end_trivia = std::move(trivia);
                advance();
                --depth_;
                return true;
            }
            if (tok.kind == TokenKind::Eof) {
                auto& e = d_.error(tok.span, "expected '}' to close " + owner);
                e.notes.push_back({"the block starts here", open});
                return false;
            }
            size_t start = pos_;
            ast::Statement st;
            st.leading = std::move(trivia);
            st.keyword = tok.span;
            bool ok = statement(st, place);
            if (ok) ok = end_of_statement(st.trailing);
            if (ok) {
                statements.push_back(std::move(st));
            } else {
                sync();
                if (pos_ == start) advance();  // always make progress
            }
        }
    }

    bool top_level(ast::TopLevel& item) {
        const Lexeme& tok = peek();
        if (tok.kind == TokenKind::Word)
            for (const auto& k : kTopLevel)
                if (tok.text == k.keyword) return (this->*k.parse)(item);
        if (misplaced(tok, nullptr)) return false;
        std::vector<std::string> words = top_level_keywords();
        if (tok.kind == TokenKind::Word)
            d_.error(tok.span, "unknown statement '" + std::string(tok.text) + "'; expected " +
                                   one_of(words) + did_you_mean(tok.text, words));
        else
            d_.error(tok.span, "expected " + one_of(words) + ", found " + describe(tok));
        return false;
    }

    bool statement(ast::Statement& st, const Place& place) {
        const Lexeme& tok = peek();
        if (tok.kind == TokenKind::Word)
            for (const auto& k : place.statements)
                if (tok.text == k.keyword) return (this->*k.parse)(st);
        if (misplaced(tok, &place)) return false;
        std::vector<std::string> words = keywords(place);
        if (tok.kind == TokenKind::Word)
            d_.error(tok.span, "unknown statement '" + std::string(tok.text) + "' " + place.in +
                                   "; expected " + one_of(words) + did_you_mean(tok.text, words));
        else
            d_.error(tok.span,
                     "expected a statement (" + one_of(words) + "), found " + describe(tok));
        return false;
    }

    // The block a statement starting with `tok` (the next token) belongs in; nullptr when
    // none. allow/deny and ingress/egress start statements of two blocks each: what
    // follows them decides.
    const Place* home_of(const Lexeme& tok) const {
        std::string_view w = tok.text;
        const Lexeme& next = peek(1);
        auto next_is = [&](const char* s) {
            return next.kind == TokenKind::Word && next.text == s;
        };
        if (w == "allow" || w == "deny") return next_is("countries") ? &kSovereignty : &kSecurity;
        if (w == "ingress" || w == "egress")
            return next_is("rate") ? &kQos : arrow_ahead() ? &kForward : nullptr;
        for (const Place* p : kPlaces)
            for (const auto& k : p->statements)
                if (w == k.keyword) return p;
        return nullptr;
    }

    // Reports a statement written where it does not belong (`here`: nullptr at top level)
    // with where it goes.
    bool misplaced(const Lexeme& tok, const Place* here) {
        if (tok.kind != TokenKind::Word) return false;
        const std::string w(tok.text);
        if (here) {
            for (const auto& k : kTopLevel) {
                if (w == k.keyword) {
                    d_.error(tok.span, "'" + w + "' belongs at top level, outside any block");
                    return true;
                }
            }
        }
        if (here && here != &kPersona && w == here->keyword) {
            d_.error(tok.span, "'" + w + "' blocks cannot be nested");
            return true;
        }
        const Place* home = home_of(tok);
        if (!home || home == here) return false;
        std::string msg;
        if (home == &kPersona) {
            bool section = w != "description";
            if (here && here != &kBind) {
                msg = "'" + w + "' belongs directly in the persona, not in its " + here->keyword +
                      " block";
            } else {
                msg = "'" + w + (section ? "' sections belong" : "' belongs") + " inside a persona";
                if (here) msg += ", not in a bind block";
            }
        } else {
            msg = "'" + w + "' belongs inside " + home->home;
        }
        d_.error(tok.span, msg);
        return true;
    }

    // ---- top level ----

    bool import_decl(ast::TopLevel& item) {
        advance();  // import
        ast::Import imp;
        if (!expect_string(imp.path, "a quoted path", "import")) return false;
        item.node = std::move(imp);
        return true;
    }

    bool set_decl(ast::TopLevel& item) {
        advance();  // set
        ast::SetDecl s;
        if (!expect_name(s.name, "a set name")) return false;
        if (peek().kind != TokenKind::Equals) {
            d_.error(peek().span, "expected '=' after the set name, found " + describe(peek()));
            return false;
        }
        advance();
        if (peek().kind != TokenKind::LBrace) {
            d_.error(peek().span,
                     "expected '{' to start the set's items, found " + describe(peek()));
            return false;
        }
        bool ok = value_list(s.items, kSetItems);
        item.node = std::move(s);
        return ok;
    }

    bool persona_decl(ast::TopLevel& item) {
        advance();  // persona
        ast::PersonaDecl p;
        if (!expect_name(p.name, "a persona name")) return false;
        if (is_word("extends")) {
            advance();
            ast::Word parent;
            if (!expect_name(parent, "a persona name after 'extends'")) return false;
            p.parent = parent;
            if (peek().kind != TokenKind::LBrace) {
                d_.error(peek().span,
                         "expected '{' after the parent persona's name, found " + describe(peek()));
                return false;
            }
        } else if (peek().kind != TokenKind::LBrace) {
            std::string msg =
                "expected '{' or 'extends' after the persona name, found " + describe(peek());
            if (peek().kind == TokenKind::Word) msg += did_you_mean(peek().text, {"extends"});
            d_.error(peek().span, msg);
            return false;
        }
        Span open = advance().span;
        bool ok = block(p.block, kPersona, "persona '" + std::string(p.name.text) + "'", open);
        item.node = std::move(p);
        return ok;
    }

    bool bind_decl(ast::TopLevel& item) {
        advance();  // bind
        ast::BindDecl b;
        if (!expect_name(b.persona, "a persona name after 'bind'")) return false;
        if (peek().kind != TokenKind::LBrace) {
            d_.error(peek().span, "expected '{' after the persona name, found " + describe(peek()));
            return false;
        }
        Span open = advance().span;
        bool ok =
            block(b.block, kBind, "the bind block for '" + std::string(b.persona.text) + "'", open);
        item.node = std::move(b);
        return ok;
    }

    // ---- persona ----

    bool description(ast::Statement& st) {
        advance();  // description
        if (peek().kind != TokenKind::String) {
            d_.error(peek().span,
                     "expected a quoted string after 'description', found " + describe(peek()));
            return false;
        }
        st.node = ast::Description{keep(peek().text), peek().span};
        advance();
        return true;
    }

    // security, ids, qos, topology, sovereignty, dns, forward: `keyword { statements }`.
    bool section(ast::Statement& st) {
        const Lexeme& kw = advance();
        const Place* place = nullptr;
        for (const Place* p : kPlaces)
            if (kw.text == p->keyword) place = p;
        if (peek().kind != TokenKind::LBrace) {
            d_.error(peek().span, "expected '{' after '" + std::string(kw.text) + "', found " +
                                      describe(peek()));
            return false;
        }
        ast::Section sec;
        sec.keyword = word(kw);
        Span open = advance().span;
        bool ok = block(sec.block, *place, "the " + std::string(kw.text) + " block", open);
        st.node = std::move(sec);
        return ok;
    }

    // ---- security ----

    bool mode(ast::Statement& st) {
        advance();  // mode
        ast::Mode m;
        if (!expect_choice(m.value, kModes, "'enforce' or 'audit'", "mode")) return false;
        st.node = std::move(m);
        return true;
    }

    bool default_action(ast::Statement& st) {
        advance();  // default
        ast::Default d;
        if (!expect_choice(d.direction, kDirections, "'ingress' or 'egress'", "default"))
            return false;
        if (!expect_choice(d.action, kActions, "'allow' or 'deny'",
                           "default " + std::string(d.direction.text)))
            return false;
        st.node = std::move(d);
        return true;
    }

    bool rule(ast::Statement& st) {
        ast::Rule r;
        r.action = word(advance());
        if (is_word("countries")) {
            d_.error(st.keyword, "'" + std::string(r.action.text) +
                                     " countries' belongs inside a sovereignty { } block");
            return false;
        }
        if (!expect_choice(r.direction, kDirections, "'ingress' or 'egress'", r.action.text))
            return false;
        if (!proto(r.proto)) return false;
        bool ingress = r.direction.text == "ingress";
        std::string right = ingress ? "from" : "to";
        std::string wrong = ingress ? "to" : "from";
        if (is_word("port")) {
            r.port_keyword = word(advance());
            if (!value_list(r.ports, kPortItems, "port")) return false;
        }
        const Lexeme& k = peek();
        if (k.kind == TokenKind::Word && k.text == wrong) {
            d_.error(k.span, std::string(ingress ? "ingress" : "egress") + " rules name the " +
                                 (ingress ? "source" : "destination") + " with '" + right +
                                 "'; did you mean '" + right + "'?");
            // Keep parsing: the peers may hold more errors worth reporting.
            advance();
            ast::ValueList peers;
            value_list(peers, kPeerItems, wrong);
            return false;
        }
        if (k.kind != TokenKind::Word || k.text != right) {
            std::string expected = r.port_keyword ? "'" + right + "'" : "'port' or '" + right + "'";
            d_.error(k.span, "expected " + expected + ", found " + describe(k));
            return false;
        }
        r.peer_keyword = word(k);
        advance();
        if (!value_list(r.peers, kPeerItems, right)) return false;
        st.node = std::move(r);
        return true;
    }

    // encryption required|optional [min-tls VERSION] [except { MATCH, ... }]
    bool encryption(ast::Statement& st) {
        advance();  // encryption
        ast::Encryption e;
        if (!expect_choice(e.setting, kEncryptionSettings, "'required' or 'optional'",
                           "encryption"))
            return false;
        if (is_word("min-tls")) {
            advance();
            ast::Word version;
            if (!expect_value(version, "a TLS version (such as 1.2)", "min-tls")) return false;
            e.min_tls = version;
        }
        if (is_word("except")) {
            e.except_keyword = word(advance());
            if (peek().kind != TokenKind::LBrace) {
                d_.error(peek().span, "expected '{' after 'except', found " + describe(peek()));
                return false;
            }
            if (!match_list(e.exceptions)) return false;
            if (is_word("min-tls")) {
                d_.error(peek().span,
                         "expected end of statement after the except list, found 'min-tls'; "
                         "write 'min-tls' before 'except'");
                return false;
            }
        } else {
            std::vector<std::string> rest;
            if (!e.min_tls) rest.push_back("min-tls");
            rest.push_back("except");
            if (!expect_end_or(rest)) return false;
        }
        st.node = std::move(e);
        return true;
    }

    // In ids: syn-flood|port-scan RATE [block DURATION]
    bool threshold(ast::Statement& st) {
        ast::Threshold t;
        t.kind = word(advance());
        const char* example = t.kind.text == "syn-flood" ? "2000/s" : "50/10s";
        if (!expect_value(t.rate, std::string("an event rate (such as ") + example + ")",
                          t.kind.text))
            return false;
        if (is_word("block")) {
            advance();
            ast::Word duration;
            if (!expect_value(duration, "a duration (such as 60s)", "block")) return false;
            t.block = duration;
        } else if (!expect_end_or({"block"})) {
            return false;
        }
        st.node = std::move(t);
        return true;
    }

    // ---- qos ----

    // egress|ingress rate RATE [burst SIZE]
    bool shaping(ast::Statement& st) {
        ast::Shaping s;
        s.direction = word(advance());
        if (!is_word("rate") && arrow_ahead()) {
            d_.error(st.keyword, "'" + std::string(s.direction.text) +
                                     "' forwards belong inside a forward { } block");
            return false;
        }
        ast::Word rate_keyword;
        if (!expect_choice(rate_keyword, {"rate"}, "'rate'", s.direction.text)) return false;
        if (!expect_value(s.rate, "a bandwidth (such as 200mbit)",
                          std::string(s.direction.text) + " rate"))
            return false;
        if (is_word("burst")) {
            advance();
            ast::Word size;
            if (!expect_value(size, "a size (such as 64kb)", "burst")) return false;
            s.burst = size;
        } else if (!expect_end_or({"burst"})) {
            return false;
        }
        st.node = std::move(s);
        return true;
    }

    bool priority(ast::Statement& st) {
        advance();  // priority
        ast::Priority p;
        if (!expect_choice(p.value, kPriorities, one_of(kPriorities), "priority")) return false;
        st.node = std::move(p);
        return true;
    }

    // latency target DURATION
    bool latency(ast::Statement& st) {
        advance();  // latency
        ast::Word target;
        if (!expect_choice(target, {"target"}, "'target'", "latency")) return false;
        ast::LatencyTarget l;
        if (!expect_value(l.value, "a duration (such as 5ms)", "latency target")) return false;
        st.node = std::move(l);
        return true;
    }

    // ---- topology ----

    // route table N | route via ADDRESS
    bool route(ast::Statement& st) {
        advance();  // route
        ast::Route r;
        if (!expect_choice(r.kind, kRouteKinds, "'table' or 'via'", "route")) return false;
        bool table = r.kind.text == "table";
        if (!expect_value(
                r.value,
                table ? "a routing table (a number, 'main' or 'default')" : "a gateway address",
                "route " + std::string(r.kind.text)))
            return false;
        st.node = std::move(r);
        return true;
    }

    bool next_hops(ast::Statement& st) {
        advance();  // next-hops
        ast::NextHops n;
        if (!value_list(n.hops, kHostItems, "next-hops")) return false;
        st.node = std::move(n);
        return true;
    }

    bool max_hops(ast::Statement& st) {
        advance();  // max-hops
        ast::MaxHops m;
        if (!expect_value(m.value, "a hop count (1-255)", "max-hops")) return false;
        st.node = std::move(m);
        return true;
    }

    // ---- sovereignty ----

    // allow|deny countries LIST
    bool countries(ast::Statement& st) {
        ast::Countries c;
        c.action = word(advance());
        if (peek().kind == TokenKind::Word && contains(kDirections, peek().text)) {
            d_.error(st.keyword, "'" + std::string(c.action.text) + " " + std::string(peek().text) +
                                     "' rules belong inside a security { } block");
            return false;
        }
        ast::Word keyword;
        if (!expect_choice(keyword, {"countries"}, "'countries'", c.action.text)) return false;
        if (!value_list(c.countries, kCountryItems, std::string(c.action.text) + " countries"))
            return false;
        st.node = std::move(c);
        return true;
    }

    bool unknown(ast::Statement& st) {
        advance();  // unknown
        ast::Unknown u;
        if (!expect_choice(u.action, kActions, "'allow' or 'deny'", "unknown")) return false;
        st.node = std::move(u);
        return true;
    }

    bool exempt(ast::Statement& st) {
        advance();  // exempt
        ast::Exempt e;
        if (!value_list(e.cidrs, kCidrItems, "exempt")) return false;
        st.node = std::move(e);
        return true;
    }

    bool on_violation(ast::Statement& st) {
        advance();  // on-violation
        ast::OnViolation v;
        if (!expect_choice(v.action, kViolationActions, "'drop' or 'log'", "on-violation"))
            return false;
        st.node = std::move(v);
        return true;
    }

    // ---- dns ----

    bool dns_servers(ast::Statement& st) {
        advance();  // servers
        ast::DnsServers s;
        if (!value_list(s.servers, kHostItems, "servers")) return false;
        st.node = std::move(s);
        return true;
    }

    // search "domain" ["domain" ...]
    bool dns_search(ast::Statement& st) {
        advance();  // search
        ast::DnsSearch s;
        ast::String first;
        if (!expect_string(first, "a quoted domain", "search")) return false;
        s.domains.push_back(std::move(first));
        while (peek().kind == TokenKind::String) {
            s.domains.push_back({keep(peek().text), peek().span});
            advance();
        }
        if (peek().kind == TokenKind::Word) {
            d_.error(peek().span, "expected a quoted domain or end of statement, found " +
                                      describe(peek()) + "; write it in quotes: \"" +
                                      std::string(peek().text) + "\"");
            return false;
        }
        st.node = std::move(s);
        return true;
    }

    // ---- forward ----

    // egress|ingress PROTO FROM -> TO
    bool forward(ast::Statement& st) {
        ast::Forward f;
        f.direction = word(advance());
        if (is_word("rate")) {
            d_.error(st.keyword,
                     "'" + std::string(f.direction.text) + " rate' belongs inside a qos { } block");
            return false;
        }
        // `egress 5432 -> ...`: the protocol is missing, not the address.
        if (peek(1).kind == TokenKind::Arrow) {
            d_.error(peek().span, "expected a protocol (tcp or udp) after '" +
                                      std::string(f.direction.text) + "', found " +
                                      describe(peek()));
            return false;
        }
        if (!expect_value(f.proto, "a protocol (tcp or udp)", f.direction.text)) return false;
        if (!expect_value(f.from, "a port or ADDRESS:PORT",
                          std::string(f.direction.text) + " " + std::string(f.proto.text)))
            return false;
        if (peek().kind != TokenKind::Arrow) {
            d_.error(peek().span, "expected '->' after '" + std::string(f.from.text) + "', found " +
                                      describe(peek()));
            return false;
        }
        f.arrow = advance().span;
        if (!expect_value(f.to, "a port or ADDRESS:PORT", "->")) return false;
        st.node = std::move(f);
        return true;
    }

    // ---- bind ----

    // cgroup "GLOB" | interface "GLOB" | user NAME | group NAME (names may be quoted)
    bool bind_match(ast::Statement& st) {
        ast::BindMatch m;
        m.kind = word(advance());
        const Lexeme& v = peek();
        bool glob = m.kind.text == "cgroup" || m.kind.text == "interface";
        if (v.kind == TokenKind::String || (!glob && v.kind == TokenKind::Word)) {
            m.value = word(v);
            m.quoted = v.kind == TokenKind::String;
            advance();
            st.node = std::move(m);
            return true;
        }
        if (glob) {
            ast::String unused;
            expect_string(unused, "a quoted glob", m.kind.text);
        } else {
            const std::string kind(m.kind.text);
            d_.error(v.span, "expected a " + kind + " name or id after '" + kind + "', found " +
                                 describe(v));
        }
        return false;
    }

    const std::vector<Lexeme>& t_;
    Diagnostics& d_;
    TextStore store_;
    bool copy_ = false;
    size_t pos_ = 0;
    int depth_ = 0;
    // Statements of the blocks being parsed, by depth_ (1..kMaxNesting); never resized, so
    // that a block's reference to its vector survives the blocks nested in it.
    std::vector<std::vector<ast::Statement>> open_blocks_ =
        std::vector<std::vector<ast::Statement>>(kMaxNesting + 1);
};

const std::vector<Parser::TopLevelKind> Parser::kTopLevel = {
    {"import", &Parser::import_decl},
    {"set", &Parser::set_decl},
    {"persona", &Parser::persona_decl},
    {"bind", &Parser::bind_decl},
};

const Parser::Place Parser::kPersona = {
    "persona",
    "in persona",
    "a persona",
    {
        {"description", &Parser::description},
        {"security", &Parser::section},
        {"qos", &Parser::section},
        {"topology", &Parser::section},
        {"sovereignty", &Parser::section},
        {"dns", &Parser::section},
        {"forward", &Parser::section},
    },
};

const Parser::Place Parser::kSecurity = {
    "security",
    "in security block",
    "a security { } block",
    {
        {"mode", &Parser::mode},
        {"default", &Parser::default_action},
        {"allow", &Parser::rule},
        {"deny", &Parser::rule},
        {"encryption", &Parser::encryption},
        {"ids", &Parser::section},
    },
};

const Parser::Place Parser::kIds = {
    "ids",
    "in ids block",
    "an ids { } block",
    {
        {"syn-flood", &Parser::threshold},
        {"port-scan", &Parser::threshold},
    },
};

const Parser::Place Parser::kQos = {
    "qos",
    "in qos block",
    "a qos { } block",
    {
        {"egress", &Parser::shaping},
        {"ingress", &Parser::shaping},
        {"priority", &Parser::priority},
        {"latency", &Parser::latency},
    },
};

const Parser::Place Parser::kTopology = {
    "topology",
    "in topology block",
    "a topology { } block",
    {
        {"route", &Parser::route},
        {"next-hops", &Parser::next_hops},
        {"max-hops", &Parser::max_hops},
    },
};

const Parser::Place Parser::kSovereignty = {
    "sovereignty",
    "in sovereignty block",
    "a sovereignty { } block",
    {
        {"allow", &Parser::countries},
        {"deny", &Parser::countries},
        {"unknown", &Parser::unknown},
        {"exempt", &Parser::exempt},
        {"on-violation", &Parser::on_violation},
    },
};

const Parser::Place Parser::kDns = {
    "dns",
    "in dns block",
    "a dns { } block",
    {
        {"servers", &Parser::dns_servers},
        {"search", &Parser::dns_search},
    },
};

const Parser::Place Parser::kForward = {
    "forward",
    "in forward block",
    "a forward { } block",
    {
        {"egress", &Parser::forward},
        {"ingress", &Parser::forward},
    },
};

const Parser::Place Parser::kBind = {
    "bind",
    "in bind block",
    "a top-level bind block",
    {
        {"cgroup", &Parser::bind_match},
        {"interface", &Parser::bind_match},
        {"user", &Parser::bind_match},
        {"group", &Parser::bind_match},
    },
};

const std::vector<const Parser::Place*> Parser::kPlaces = {
    &kPersona, &kSecurity, &kIds, &kQos, &kTopology, &kSovereignty, &kDns, &kForward, &kBind};

}  // namespace

ast::File parse(const std::vector<Token>& tokens, Diagnostics& diags) {
    std::vector<Lexeme> views;
    views.reserve(tokens.size());
    for (const Token& t : tokens) views.push_back(Lexeme{t.text, t.span, t.count, t.kind});
    return Parser(views, diags, TextStore{}, true).file();
}

ast::File parse(Lexed lexed, Diagnostics& diags) {
    return Parser(lexed.tokens, diags, std::move(lexed.store), false).file();
}

}  // namespace pdl
