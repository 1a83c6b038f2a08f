// The PDL parser. Each statement is parsed by one function; on an error it reports
// "expected X, found Y" and skips to the end of the statement (balancing braces), so
// that parsing continues with the next statement.
#include "pdl-compiler/parser.h"

#include <optional>

namespace pdl {

namespace {

const std::vector<std::string> kTopLevel = {"set", "persona"};
const std::vector<std::string> kPersonaStmts = {"description", "security"};
const std::vector<std::string> kSecurityStmts = {"mode", "default", "allow", "deny"};
const std::vector<std::string> kDirections = {"ingress", "egress"};
const std::vector<std::string> kActions = {"allow", "deny"};
const std::vector<std::string> kModes = {"enforce", "audit"};
const std::vector<std::string> kProtos = {"tcp", "udp", "icmp", "icmpv6", "any"};
// Parts of PDL that later issues implement; named so users get "not supported yet"
// instead of "unknown".
const std::vector<std::string> kLaterTopLevel = {"import", "bind"};
const std::vector<std::string> kLaterSections = {
    "qos", "topology", "sovereignty", "dns", "forward", "bind", "ids", "encryption"};
const std::vector<std::string> kLaterSecurity = {"encryption", "ids"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
    for (const auto& x : v)
        if (x == s) return true;
    return false;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    auto best = nearest(word, candidates);
    return best ? "; did you mean '" + *best + "'?" : "";
}

class Parser {
  public:
    Parser(const std::vector<Token>& tokens, Diagnostics& diags) : t_(tokens), d_(diags) {}

    ast::File file() {
        ast::File f;
        while (!d_.too_many_errors()) {
            ast::Trivia trivia = collect_trivia(f.items.empty());
            const Token& tok = peek();
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
            bool ok = false;
            if (is_word("set")) {
                ast::SetDecl s;
                ok = set_decl(s);
                item.node = std::move(s);
            } else if (is_word("persona")) {
                ast::PersonaDecl p;
                ok = persona(p);
                item.node = std::move(p);
            } else if (tok.kind == TokenKind::Word && contains(kLaterTopLevel, tok.text)) {
                d_.error(tok.span, "'" + tok.text +
                                       "' is not supported yet (this build supports at top "
                                       "level: set, persona)");
            } else if (tok.kind == TokenKind::Word && contains(kLaterSections, tok.text)) {
                d_.error(tok.span, "'" + tok.text +
                                       "' sections belong inside a persona, and are not "
                                       "supported yet (this build supports: description, "
                                       "security)");
            } else if (tok.kind == TokenKind::Word) {
                d_.error(tok.span, "unknown statement '" + tok.text +
                                       "'; expected 'set' or 'persona'" +
                                       did_you_mean(tok.text, kTopLevel));
            } else {
                d_.error(tok.span, "expected 'set' or 'persona', found " + describe(tok));
            }
            if (ok) ok = end_of_statement(item.trailing);
            if (ok) {
                f.items.push_back(std::move(item));
            } else {
                sync();
                if (pos_ == start) advance();  // always make progress
            }
        }
        return f;
    }

  private:
    const Token& peek(size_t ahead = 0) const {
        size_t i = pos_ + ahead;
        return i < t_.size() ? t_[i] : t_.back();
    }
    const Token& advance() {
        const Token& tok = peek();
        if (pos_ < t_.size() - 1) ++pos_;
        return tok;
    }
    bool is_word(const char* w) const { return peek().kind == TokenKind::Word && peek().text == w; }

    // Comments, blank lines and empty statements before a statement. Blank lines are
    // collapsed to one and dropped at the start of a block.
    ast::Trivia collect_trivia(bool at_start) {
        ast::Trivia out;
        for (;;) {
            const Token& tok = peek();
            if (tok.kind == TokenKind::Newline) {
                if (tok.count >= 2 && !(at_start && out.empty()) &&
                    (out.empty() || !out.back().empty()))
                    out.push_back("");
                advance();
            } else if (tok.kind == TokenKind::Comment) {
                out.push_back(tok.text);
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
    bool end_of_statement(std::string& trailing) {
        bool semi = false;
        if (peek().kind == TokenKind::Semicolon) {
            advance();
            semi = true;
        }
        if (peek().kind == TokenKind::Comment) {
            trailing = advance().text;
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
            const Token& tok = peek();
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

    bool expect_name(ast::Word& out, const char* what) {
        const Token& tok = peek();
        if (tok.kind != TokenKind::Word || !is_identifier(tok.text)) {
            d_.error(tok.span, std::string("expected ") + what +
                                   " (letters, digits, '-' and '_'), found " + describe(tok));
            return false;
        }
        out = {tok.text, tok.span};
        advance();
        return true;
    }

    // Expects one of `choices` after `after`; suggests the nearest on a typo.
    bool expect_choice(ast::Word& out, const std::vector<std::string>& choices,
                       const std::string& what, const std::string& after) {
        const Token& tok = peek();
        if (tok.kind == TokenKind::Word && contains(choices, tok.text)) {
            out = {tok.text, tok.span};
            advance();
            return true;
        }
        std::string msg = "expected " + what + " after '" + after + "', found " + describe(tok);
        if (tok.kind == TokenKind::Word) msg += did_you_mean(tok.text, choices);
        d_.error(tok.span, msg);
        return false;
    }

    bool set_decl(ast::SetDecl& s) {
        advance();  // set
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
        return value_list(s.items, "an address, CIDR, port or port range");
    }

    // A single value or a braced list. `what` names the expected item kind.
    bool value_list(ast::ValueList& list, const std::string& what) {
        const Token& first = peek();
        list.span = first.span;
        if (first.kind == TokenKind::Word || first.kind == TokenKind::SetRef) {
            list.items.push_back(
                ast::Item{first.text, first.kind == TokenKind::SetRef, first.span, {}, {}});
            advance();
            return true;
        }
        if (first.kind != TokenKind::LBrace) {
            d_.error(first.span, "expected " + what + ", found " + describe(first));
            return false;
        }
        list.braced = true;
        advance();
        ast::Trivia pending;
        bool want_comma = false;  // an item was just read
        bool same_line = true;    // no line break since the last item, ',' or '{'
        for (;;) {
            const Token& tok = peek();
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
                        list.items.back().trailing = tok.text;
                    else if (same_line && list.items.empty())
                        list.open_comment = tok.text;
                    else
                        pending.push_back(tok.text);
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
                        d_.error(tok.span, "expected " + what + " before ','");
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
                    list.items.push_back(ast::Item{
                        tok.text, tok.kind == TokenKind::SetRef, tok.span, std::move(pending), {}});
                    pending.clear();
                    want_comma = true;
                    same_line = true;
                    advance();
                    break;
                case TokenKind::LBrace:
                    d_.error(tok.span, "lists cannot be nested; expected " + what);
                    return skip_list();
                default:
                    d_.error(tok.span, std::string("expected ") +
                                           (want_comma ? "',' or '}'" : what + " or '}'") +
                                           ", found " + describe(tok));
                    return skip_list();
            }
        }
    }

    // After an error inside a braced list: skip to its '}' so that the '}' is not taken
    // for the end of the enclosing block.
    bool skip_list() {
        for (;;) {
            TokenKind k = peek().kind;
            if (k == TokenKind::Eof || k == TokenKind::LBrace) return false;
            advance();
            if (k == TokenKind::RBrace) return false;
        }
    }

    // Statements of a persona or security block, up to and including the closing '}'.
    bool block(ast::Block& b, bool security, const std::string& owner, Span open) {
        if (peek().kind == TokenKind::Comment) b.open_comment = advance().text;
        if (++depth_ > kMaxNesting) {
            d_.error(open, "blocks are nested too deeply");
            return false;
        }
        for (;;) {
            if (d_.too_many_errors()) return false;
            ast::Trivia trivia = collect_trivia(b.statements.empty());
            const Token& tok = peek();
            if (tok.kind == TokenKind::RBrace) {
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
            bool ok = security ? security_statement(st) : persona_statement(st);
            if (ok) ok = end_of_statement(st.trailing);
            if (ok) {
                b.statements.push_back(std::move(st));
            } else {
                sync();
                if (pos_ == start) advance();  // always make progress
            }
        }
    }

    bool persona(ast::PersonaDecl& p) {
        advance();  // persona
        if (!expect_name(p.name, "a persona name")) return false;
        if (is_word("extends")) {
            d_.error(peek().span,
                     "'extends' is not supported yet (personas cannot inherit "
                     "in this build)");
            return false;
        }
        if (peek().kind != TokenKind::LBrace) {
            d_.error(peek().span, "expected '{' after the persona name, found " + describe(peek()));
            return false;
        }
        Span open = advance().span;
        return block(p.block, false, "persona '" + p.name.text + "'", open);
    }

    bool persona_statement(ast::Statement& st) {
        const Token& tok = peek();
        if (is_word("description")) {
            advance();
            if (peek().kind != TokenKind::String) {
                d_.error(peek().span,
                         "expected a quoted string after 'description', found " + describe(peek()));
                return false;
            }
            st.node = ast::Description{peek().text, peek().span};
            advance();
            return true;
        }
        if (is_word("security")) {
            advance();
            if (peek().kind != TokenKind::LBrace) {
                d_.error(peek().span, "expected '{' after 'security', found " + describe(peek()));
                return false;
            }
            ast::Section sec;
            sec.keyword = {tok.text, tok.span};
            Span open = advance().span;
            bool ok = block(sec.block, true, "the security block", open);
            st.node = std::move(sec);
            return ok;
        }
        if (tok.kind == TokenKind::Word && contains(kLaterSections, tok.text)) {
            d_.error(tok.span, "'" + tok.text +
                                   "' sections are not supported yet (this build supports: "
                                   "description, security)");
            return false;
        }
        if (tok.kind == TokenKind::Word && contains(kSecurityStmts, tok.text)) {
            d_.error(tok.span, "'" + tok.text + "' belongs inside a security { } block");
            return false;
        }
        if (tok.kind == TokenKind::Word) {
            d_.error(tok.span, "unknown statement '" + tok.text +
                                   "' in persona; expected 'description' or 'security'" +
                                   did_you_mean(tok.text, kPersonaStmts));
            return false;
        }
        d_.error(tok.span,
                 "expected a statement ('description' or 'security'), found " + describe(tok));
        return false;
    }

    bool security_statement(ast::Statement& st) {
        const Token& tok = peek();
        if (is_word("mode")) {
            advance();
            ast::Mode m;
            if (!expect_choice(m.value, kModes, "'enforce' or 'audit'", "mode")) return false;
            st.node = std::move(m);
            return true;
        }
        if (is_word("default")) {
            advance();
            ast::Default d;
            if (!expect_choice(d.direction, kDirections, "'ingress' or 'egress'", "default"))
                return false;
            if (!expect_choice(d.action, kActions, "'allow' or 'deny'",
                               "default " + d.direction.text))
                return false;
            st.node = std::move(d);
            return true;
        }
        if (is_word("allow") || is_word("deny")) {
            ast::Rule r;
            bool ok = rule(r);
            st.node = std::move(r);
            return ok;
        }
        if (tok.kind == TokenKind::Word && contains(kLaterSecurity, tok.text)) {
            d_.error(tok.span, "'" + tok.text +
                                   "' is not supported yet (this build supports in security: "
                                   "mode, default, allow, deny)");
            return false;
        }
        if (tok.kind == TokenKind::Word && contains(kPersonaStmts, tok.text)) {
            d_.error(tok.span, "'" + tok.text +
                                   "' belongs directly in the persona, not in its security block");
            return false;
        }
        if (tok.kind == TokenKind::Word) {
            d_.error(tok.span, "unknown statement '" + tok.text +
                                   "' in security block; expected 'mode', 'default', 'allow' "
                                   "or 'deny'" +
                                   did_you_mean(tok.text, kSecurityStmts));
            return false;
        }
        d_.error(tok.span, "expected a statement ('mode', 'default', 'allow' or 'deny'), found " +
                               describe(tok));
        return false;
    }

    bool rule(ast::Rule& r) {
        r.action = {peek().text, peek().span};
        advance();
        if (!expect_choice(r.direction, kDirections, "'ingress' or 'egress'", r.action.text))
            return false;
        const Token& p = peek();
        if (p.kind == TokenKind::Word && contains(kProtos, p.text)) {
            r.proto = {p.text, p.span};
            advance();
        } else if (p.kind == TokenKind::Word) {
            d_.error(p.span, "unknown protocol '" + p.text +
                                 "'; expected tcp, udp, icmp, icmpv6 or any" +
                                 did_you_mean(p.text, kProtos));
            return false;
        } else {
            d_.error(p.span,
                     "expected a protocol (tcp, udp, icmp, icmpv6 or any), found " + describe(p));
            return false;
        }
        bool ingress = r.direction.text == "ingress";
        std::string right = ingress ? "from" : "to";
        std::string wrong = ingress ? "to" : "from";
        if (is_word("port")) {
            r.port_keyword = ast::Word{peek().text, peek().span};
            advance();
            if (!value_list(r.ports, "a port, a port range, '{' or a $set")) return false;
        }
        const Token& k = peek();
        if (k.kind == TokenKind::Word && k.text == wrong) {
            d_.error(k.span, std::string(ingress ? "ingress" : "egress") + " rules name the " +
                                 (ingress ? "source" : "destination") + " with '" + right +
                                 "'; did you mean '" + right + "'?");
            // Keep parsing: the peers may hold more errors worth reporting.
            advance();
            ast::ValueList peers;
            value_list(peers, "an address, a CIDR, '{', a $set or 'any'");
            return false;
        }
        if (k.kind != TokenKind::Word || k.text != right) {
            std::string expected = r.port_keyword ? "'" + right + "'" : "'port' or '" + right + "'";
            d_.error(k.span, "expected " + expected + ", found " + describe(k));
            return false;
        }
        r.peer_keyword = {k.text, k.span};
        advance();
        return value_list(r.peers, "an address, a CIDR, '{', a $set or 'any'");
    }

    const std::vector<Token>& t_;
    Diagnostics& d_;
    size_t pos_ = 0;
    int depth_ = 0;
};

}  // namespace

ast::File parse(const std::vector<Token>& tokens, Diagnostics& diags) {
    return Parser(tokens, diags).file();
}

}  // namespace pdl
