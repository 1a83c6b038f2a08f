// The formatter: prints the syntax tree in the one canonical layout (2-space indent, one
// statement per line, single spaces, `{ a, b }` lists), keeping every comment. Blank
// lines keep the author's grouping: inside a block or a multi-line list a run of blank
// lines between two statements, items or comments becomes one, and none is kept right
// after '{' or right before '}' (the parser records them that way, as "" trivia). At top
// level a persona is always set apart from its neighbours by exactly one blank line;
// elsewhere (between sets, before end-of-file comments) at most one is kept where the
// author left some. Printing from the tree makes format(format(x)) == format(x) by
// construction.
#include "pdl-compiler/ast.h"
#include "pdl-compiler/compiler.h"
#include "pdl-compiler/lexer.h"
#include "pdl-compiler/parser.h"

namespace pdl {

namespace {

std::string quote(const std::string& s) {
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
            bool persona = std::holds_alternative<ast::PersonaDecl>(item.node);
            bool prev_persona =
                i > 0 && std::holds_alternative<ast::PersonaDecl>(f.items[i - 1].node);
            // Personas are set apart by a blank line; sets may stay grouped.
            if (i > 0 && (persona || prev_persona) &&
                (item.leading.empty() || !item.leading.front().empty()))
                out_ += "\n";
            trivia(item.leading, 0);
            std::string text;
            if (auto* s = std::get_if<ast::SetDecl>(&item.node)) {
                text = "set " + s->name.text + " = " + list(s->items, 0);
                line(0, text, item.trailing);
            } else {
                const auto& p = std::get<ast::PersonaDecl>(item.node);
                block("persona " + p.name.text, p.block, 0, item.trailing);
            }
        }
        // Comments after a persona are set apart from it, like the next persona would be.
        if (!f.items.empty() && std::holds_alternative<ast::PersonaDecl>(f.items.back().node) &&
            !f.end_trivia.empty() && !f.end_trivia.front().empty())
            out_ += "\n";
        trivia(f.end_trivia, 0);
        return std::move(out_);
    }

  private:
    static std::string pad(int indent) { return std::string(static_cast<size_t>(indent) * 2, ' '); }

    // Comments at `indent`; a blank line ("") stays an empty line, without indentation.
    static std::string trivia_text(const ast::Trivia& t, int indent) {
        std::string s;
        for (const auto& line : t) s += line.empty() ? "\n" : pad(indent) + line + "\n";
        return s;
    }

    void trivia(const ast::Trivia& t, int indent) { out_ += trivia_text(t, indent); }

    void line(int indent, const std::string& text, const std::string& trailing) {
        out_ += pad(indent) + text + (trailing.empty() ? "" : "  " + trailing) + "\n";
    }

    static std::string item(const ast::Item& it) { return it.set_ref ? "$" + it.text : it.text; }

    std::string list(const ast::ValueList& l, int indent) {
        if (!l.braced) return l.items.empty() ? "" : item(l.items[0]);
        if (!l.multiline) {
            if (l.items.empty()) return "{}";
            std::string s = "{ ";
            for (size_t i = 0; i < l.items.size(); ++i) s += (i ? ", " : "") + item(l.items[i]);
            return s + " }";
        }
        std::string s = "{";
        if (!l.open_comment.empty()) s += "  " + l.open_comment;
        s += "\n";
        for (const auto& it : l.items) {
            s += trivia_text(it.leading, indent + 1);
            s += pad(indent + 1) + item(it) + ",";
            if (!it.trailing.empty()) s += "  " + it.trailing;
            s += "\n";
        }
        s += trivia_text(l.end_trivia, indent + 1);
        return s + pad(indent) + "}";
    }

    void block(const std::string& head, const ast::Block& b, int indent,
               const std::string& trailing) {
        out_ += pad(indent) + head + " {";
        if (!b.open_comment.empty()) out_ += "  " + b.open_comment;
        out_ += "\n";
        for (const auto& st : b.statements) statement(st, indent + 1);
        trivia(b.end_trivia, indent + 1);
        line(indent, "}", trailing);
    }

    void statement(const ast::Statement& st, int indent) {
        trivia(st.leading, indent);
        if (auto* d = std::get_if<ast::Description>(&st.node)) {
            line(indent, "description " + quote(d->value), st.trailing);
        } else if (auto* m = std::get_if<ast::Mode>(&st.node)) {
            line(indent, "mode " + m->value.text, st.trailing);
        } else if (auto* df = std::get_if<ast::Default>(&st.node)) {
            line(indent, "default " + df->direction.text + " " + df->action.text, st.trailing);
        } else if (auto* r = std::get_if<ast::Rule>(&st.node)) {
            std::string s = r->action.text + " " + r->direction.text + " " + r->proto.text;
            if (r->port_keyword) s += " port " + list(r->ports, indent);
            s += " " + r->peer_keyword.text + " " + list(r->peers, indent);
            line(indent, s, st.trailing);
        } else if (auto* sec = std::get_if<ast::Section>(&st.node)) {
            block(sec->keyword.text, sec->block, indent, st.trailing);
        }
    }

    std::string out_;
};

}  // namespace

FormatOutput format(const Source& src) {
    FormatOutput out;
    Diagnostics diags(src.filename, src.text);
    std::vector<Token> tokens = lex(src.text, diags);
    ast::File file = parse(tokens, diags);
    out.diagnostics = diags.render();
    if (diags.errors() > 0) return out;
    out.text = Printer().run(file);
    out.ok = true;
    return out;
}

}  // namespace pdl
