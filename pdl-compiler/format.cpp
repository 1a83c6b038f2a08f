// The formatter: prints the syntax tree in the one canonical layout (2-space indent, one
// statement per line, single spaces, `{ a, b }` lists), keeping every comment. Blank
// lines keep the author's grouping: inside a block or a multi-line list a run of blank
// lines between two statements, items or comments becomes one, and none is kept right
// after '{' or right before '}' (the parser records them that way, as "" trivia). At top
// level a persona or bind block is always set apart from its neighbours by exactly one
// blank line; elsewhere (between imports and sets, before end-of-file comments) at most
// one is kept where the author left some. Printing from the tree makes
// format(format(x)) == format(x) by construction.
#include <type_traits>

#include "pdl-compiler/ast.h"
#include "pdl-compiler/compiler.h"
#include "pdl-compiler/lexer.h"
#include "pdl-compiler/parser.h"

namespace pdl {

namespace {

// Concatenates strings and string views (std::string + std::string_view is C++26).
template <class... Parts>
std::string cat(const Parts&... parts) {
    std::string s;
    s.reserve((std::string_view(parts).size() + ...));
    (s.append(parts), ...);
    return s;
}

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += std::string("\\") + c;
        else if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else
            out += c;
    }
    return out + "\"";
}

class Printer {
  public:
    std::string run(const ast::File& f) {
        for (size_t i = 0; i < f.items.size(); ++i) {
            const ast::TopLevel& item = f.items[i];
            // Personas and bind blocks are set apart by a blank line; imports and sets may
            // stay grouped.
            if (i > 0 && (set_apart(item) || set_apart(f.items[i - 1])) &&
                (item.leading.empty() || !item.leading.front().empty()))
                out_ += "\n";
            trivia(item.leading, 0);
            if (auto* imp = std::get_if<ast::Import>(&item.node)) {
                line(0, "import " + quote(imp->path.value), item.trailing);
            } else if (auto* s = std::get_if<ast::SetDecl>(&item.node)) {
                line(0, cat("set ", s->name.text, " = ", list(s->items, 0)), item.trailing);
            } else if (auto* p = std::get_if<ast::PersonaDecl>(&item.node)) {
                std::string head = cat("persona ", p->name.text);
                if (p->parent) head += cat(" extends ", p->parent->text);
                block(head, p->block, 0, item.trailing);
            } else if (auto* b = std::get_if<ast::BindDecl>(&item.node)) {
                block(cat("bind ", b->persona.text), b->block, 0, item.trailing);
            }
        }
        // Comments after a persona or bind block are set apart from it, like the next one
        // would be.
        if (!f.items.empty() && set_apart(f.items.back()) && !f.end_trivia.empty() &&
            !f.end_trivia.front().empty())
            out_ += "\n";
        trivia(f.end_trivia, 0);
        return std::move(out_);
    }

  private:
    static bool set_apart(const ast::TopLevel& item) {
        return std::holds_alternative<ast::PersonaDecl>(item.node) ||
               std::holds_alternative<ast::BindDecl>(item.node);
    }

    static std::string pad(int indent) { return std::string(static_cast<size_t>(indent) * 2, ' '); }

    // Comments at `indent`; a blank line ("") stays an empty line, without indentation.
    static std::string trivia_text(const ast::Trivia& t, int indent) {
        std::string s;
        for (const auto& line : t) s += line.empty() ? "\n" : cat(pad(indent), line, "\n");
        return s;
    }

    void trivia(const ast::Trivia& t, int indent) { out_ += trivia_text(t, indent); }

    void line(int indent, const std::string& text, std::string_view trailing) {
        out_ += cat(pad(indent), text, trailing.empty() ? "" : "  ", trailing, "\n");
    }

    static std::string item(const ast::Item& it) { return cat(it.set_ref ? "$" : "", it.text); }

    std::string list(const ast::ValueList& l, int indent) {
        if (!l.braced) return l.items.empty() ? "" : item(l.items[0]);
        if (!l.multiline) {
            if (l.items.empty()) return "{}";
            std::string s = "{ ";
            for (size_t i = 0; i < l.items.size(); ++i) s += (i ? ", " : "") + item(l.items[i]);
            return s + " }";
        }
        std::string s = "{";
        if (!l.open_comment.empty()) s += cat("  ", l.open_comment);
        s += "\n";
        for (const auto& it : l.items) {
            s += trivia_text(it.leading, indent + 1);
            s += pad(indent + 1) + item(it) + ",";
            if (!it.trailing.empty()) s += cat("  ", it.trailing);
            s += "\n";
        }
        s += trivia_text(l.end_trivia, indent + 1);
        return s + pad(indent) + "}";
    }

    void block(std::string_view head, const ast::Block& b, int indent, std::string_view trailing) {
        out_ += cat(pad(indent), head, " {");
        if (!b.open_comment.empty()) out_ += cat("  ", b.open_comment);
        out_ += "\n";
        for (const auto& st : b.statements) statement(st, indent + 1);
        trivia(b.end_trivia, indent + 1);
        line(indent, "}", trailing);
    }

    // A flow pattern of an except list.
    std::string match(const ast::Match& m, int indent) {
        std::string s = m.direction ? cat(m.direction->text, " ", m.proto.text) : cat(m.proto.text);
        if (m.port_keyword) s += " port " + list(m.ports, indent);
        if (m.peer_keyword) s += cat(" ", m.peer_keyword->text, " ", list(m.peers, indent));
        return s;
    }

    // Like list(): one line when the source had it on one line (and no pattern holds a
    // multi-line list), else one pattern per line with a trailing comma.
    std::string matches(const ast::MatchList& l, int indent) {
        bool multiline = l.multiline;
        for (const auto& m : l.items)
            multiline = multiline || m.ports.multiline || m.peers.multiline;
        if (!multiline) {
            if (l.items.empty()) return "{}";
            std::string s = "{ ";
            for (size_t i = 0; i < l.items.size(); ++i)
                s += (i ? ", " : "") + match(l.items[i], indent);
            return s + " }";
        }
        std::string s = "{";
        if (!l.open_comment.empty()) s += cat("  ", l.open_comment);
        s += "\n";
        for (const auto& m : l.items) {
            s += trivia_text(m.leading, indent + 1);
            s += pad(indent + 1) + match(m, indent + 1) + ",";
            if (!m.trailing.empty()) s += cat("  ", m.trailing);
            s += "\n";
        }
        s += trivia_text(l.end_trivia, indent + 1);
        return s + pad(indent) + "}";
    }

    // The text of a statement that is not a block (on one line unless it holds a
    // multi-line list).
    std::string text(const ast::Statement& st, int indent) {
        return std::visit(
            [&](const auto& n) -> std::string {
                using T = std::decay_t<decltype(n)>;
                if constexpr (std::is_same_v<T, ast::Description>) {
                    return "description " + quote(n.value);
                } else if constexpr (std::is_same_v<T, ast::Mode>) {
                    return cat("mode ", n.value.text);
                } else if constexpr (std::is_same_v<T, ast::Default>) {
                    return cat("default ", n.direction.text, " ", n.action.text);
                } else if constexpr (std::is_same_v<T, ast::Rule>) {
                    std::string s = cat(n.action.text, " ", n.direction.text, " ", n.proto.text);
                    if (n.port_keyword) s += " port " + list(n.ports, indent);
                    return cat(s, " ", n.peer_keyword.text, " ", list(n.peers, indent));
                } else if constexpr (std::is_same_v<T, ast::Encryption>) {
                    std::string s = cat("encryption ", n.setting.text);
                    if (n.min_tls) s += cat(" min-tls ", n.min_tls->text);
                    if (n.except_keyword) s += " except " + matches(n.exceptions, indent);
                    return s;
                } else if constexpr (std::is_same_v<T, ast::Threshold>) {
                    std::string s = cat(n.kind.text, " ", n.rate.text);
                    return n.block ? cat(s, " block ", n.block->text) : s;
                } else if constexpr (std::is_same_v<T, ast::Shaping>) {
                    std::string s = cat(n.direction.text, " rate ", n.rate.text);
                    return n.burst ? cat(s, " burst ", n.burst->text) : s;
                } else if constexpr (std::is_same_v<T, ast::Priority>) {
                    return cat("priority ", n.value.text);
                } else if constexpr (std::is_same_v<T, ast::LatencyTarget>) {
                    return cat("latency target ", n.value.text);
                } else if constexpr (std::is_same_v<T, ast::Route>) {
                    return cat("route ", n.kind.text, " ", n.value.text);
                } else if constexpr (std::is_same_v<T, ast::NextHops>) {
                    return "next-hops " + list(n.hops, indent);
                } else if constexpr (std::is_same_v<T, ast::MaxHops>) {
                    return cat("max-hops ", n.value.text);
                } else if constexpr (std::is_same_v<T, ast::Countries>) {
                    return cat(n.action.text, " countries ", list(n.countries, indent));
                } else if constexpr (std::is_same_v<T, ast::Unknown>) {
                    return cat("unknown ", n.action.text);
                } else if constexpr (std::is_same_v<T, ast::Exempt>) {
                    return "exempt " + list(n.cidrs, indent);
                } else if constexpr (std::is_same_v<T, ast::OnViolation>) {
                    return cat("on-violation ", n.action.text);
                } else if constexpr (std::is_same_v<T, ast::DnsServers>) {
                    return "servers " + list(n.servers, indent);
                } else if constexpr (std::is_same_v<T, ast::DnsSearch>) {
                    std::string s = "search";
                    for (const auto& d : n.domains) s += " " + quote(d.value);
                    return s;
                } else if constexpr (std::is_same_v<T, ast::Forward>) {
                    return cat(n.direction.text, " ", n.proto.text, " ", n.from.text, " -> ",
                               n.to.text);
                } else if constexpr (std::is_same_v<T, ast::BindMatch>) {
                    return cat(n.kind.text, " ",
                               n.quoted ? quote(n.value.text) : cat(n.value.text));
                } else {
                    static_assert(std::is_same_v<T, ast::Section>);
                    return "";  // printed by statement() as a block
                }
            },
            st.node);
    }

    void statement(const ast::Statement& st, int indent) {
        trivia(st.leading, indent);
        if (auto* sec = std::get_if<ast::Section>(&st.node))
            block(sec->keyword.text, sec->block, indent, st.trailing);
        else
            line(indent, text(st, indent), st.trailing);
    }

    std::string out_;
};

}  // namespace

FormatOutput format(const Source& src) {
    FormatOutput out;
    Diagnostics diags(src.filename, src.text);
    ast::File file = parse(lex_source(src.text, diags), diags);
    out.diagnostics = diags.render();
    if (diags.errors() > 0) return out;
    out.text = Printer().run(file);
    out.ok = true;
    return out;
}

}  // namespace pdl
