// The compiler driver: loads the import closure (lexer and parser per file), runs the
// semantic pass over it and lint over the compiled file, and renders rules back to their
// canonical one-line text.
#include "pdl-compiler/compiler.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "pdl-compiler/diagnostics.h"
#include "pdl-compiler/lexer.h"
#include "pdl-compiler/lint.h"
#include "pdl-compiler/parser.h"
#include "pdl-compiler/sema.h"
#include "pdl-compiler/values.h"

namespace pdl {

namespace {

// At most this many files in one import closure.
constexpr size_t kMaxImports = 64;

std::string dirname_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return "";
    return path.substr(0, slash + 1);
}

// "a/b/../c/./d.pdl" -> "a/c/d.pdl"; leading ".." are kept. Lexical only: the same file
// reached through two spellings is loaded once.
std::string normalize(const std::string& path) {
    bool absolute = !path.empty() && path[0] == '/';
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= path.size()) {
        size_t slash = path.find('/', start);
        std::string part = path.substr(start, slash == std::string::npos ? slash : slash - start);
        if (part == "..") {
            if (!parts.empty() && parts.back() != "..")
                parts.pop_back();
            else if (!absolute)
                parts.push_back(part);
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    std::string out = absolute ? "/" : "";
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? "/" : "") + parts[i];
    return out;
}

// One file of the closure; heap-allocated so that the references to its text (of
// Diagnostics, and of the syntax tree's views) stay valid.
struct Loaded {
    Source source;
    std::unique_ptr<Diagnostics> diags;
    ast::File ast;
    std::vector<size_t> imports;
    bool incomplete = false;  // an import failed to load
};

// Loads the import closure depth first; files end up dependencies first, the root last.
class ImportLoader {
  public:
    ImportLoader(SourceLoader loader) : loader_(std::move(loader)) {}

    // `root` is parsed into diags the caller owns.
    std::vector<std::unique_ptr<Loaded>> run(const Source& root, Diagnostics& root_diags) {
        auto main = std::make_unique<Loaded>();
        main->source = Source{root.filename, ""};
        // The tree's texts are views into root.text, which outlives compile().
        main->ast = parse(lex_source(root.text, root_diags), root_diags);
        stack_.push_back(normalize(root.filename));
        main->imports = imports_of(*main, root_diags, main->incomplete);
        stack_.pop_back();
        files_.push_back(std::move(main));
        return std::move(files_);
    }

  private:
    std::vector<size_t> imports_of(const Loaded& file, Diagnostics& diags, bool& incomplete) {
        std::vector<size_t> out;
        for (const auto& item : file.ast.items) {
            auto* imp = std::get_if<ast::Import>(&item.node);
            if (!imp) continue;
            const std::string rel(imp->path.value);
            if (rel.empty()) {
                diags.error(imp->path.span, "empty import path");
                incomplete = true;
                continue;
            }
            std::string path =
                normalize(rel[0] == '/' ? rel : dirname_of(file.source.filename) + rel);
            if (auto cycle = std::find(stack_.begin(), stack_.end(), path); cycle != stack_.end()) {
                std::string chain;
                for (auto it = cycle; it != stack_.end(); ++it) chain += *it + " -> ";
                diags.error(imp->path.span, "import cycle: " + chain + path);
                incomplete = true;
                continue;
            }
            if (auto done = index_.find(path); done != index_.end()) {
                out.push_back(done->second);
                continue;
            }
            if (index_.size() >= kMaxImports) {
                diags.error(imp->path.span, "too many imported files (the limit is " +
                                                std::to_string(kMaxImports) + ")");
                incomplete = true;
                continue;
            }
            std::string error;
            auto text = loader_(path, error);
            if (!text) {
                diags.error(imp->path.span, "cannot import '" + rel + "' (" + path + "): " + error);
                incomplete = true;
                continue;
            }
            auto loaded = std::make_unique<Loaded>();
            loaded->source = Source{path, std::move(*text)};
            loaded->diags = std::make_unique<Diagnostics>(path, loaded->source.text);
            loaded->ast = parse(lex_source(loaded->source.text, *loaded->diags), *loaded->diags);
            stack_.push_back(path);
            loaded->imports = imports_of(*loaded, *loaded->diags, loaded->incomplete);
            stack_.pop_back();
            index_[path] = files_.size();
            out.push_back(files_.size());
            files_.push_back(std::move(loaded));
        }
        return out;
    }

    SourceLoader loader_;
    std::vector<std::unique_ptr<Loaded>> files_;
    std::map<std::string, size_t> index_;
    std::vector<std::string> stack_;  // files being loaded, for cycle reports
};

}  // namespace

SourceLoader file_loader() {
    return [](const std::string& path, std::string& error) -> std::optional<std::string> {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            error = std::strerror(errno);
            return std::nullopt;
        }
        std::string text;
        char buf[65536];
        while (in.read(buf, sizeof buf) || in.gcount() > 0) {
            text.append(buf, static_cast<size_t>(in.gcount()));
            // The lexer refuses more anyway; do not read a huge file to say so.
            if (text.size() > kMaxSourceBytes) break;
        }
        if (in.bad()) {
            error = "read error";
            return std::nullopt;
        }
        return text;
    };
}

SourceLoader map_loader(std::vector<Source> files) {
    return [files = std::move(files)](const std::string& path,
                                      std::string& error) -> std::optional<std::string> {
        for (const auto& f : files)
            if (f.filename == path) return f.text;
        error = "not among the files sent with the request";
        return std::nullopt;
    };
}

CompileOutput compile(const Source& src, const CompileOptions& options) {
    CompileOutput out;
    Diagnostics diags(src.filename, src.text);
    auto files = ImportLoader(options.loader ? options.loader : file_loader()).run(src, diags);
    std::vector<Unit> units;
    for (auto& f : files) {
        Diagnostics* d = f->diags ? f->diags.get() : &diags;
        units.push_back(Unit{&f->ast, d, f->imports, f->incomplete});
    }
    // Sema also runs after syntax errors: the statements that did parse may hold more
    // mistakes, and reporting them all at once saves the user round trips.
    CheckResult checked = check(units);
    // Lint only a file that is otherwise right: after an error a set may look unused
    // because the statement using it did not parse. Imported files are libraries: their
    // findings show when they are compiled themselves.
    size_t errors = 0;
    for (const auto& u : units) errors += u.diags->errors();
    if (options.lint && errors == 0)
        lint(files.back()->ast, checked.personas, diags, LintOptions{options.werror});
    for (size_t i = 0; i + 1 < files.size(); ++i) {
        const Diagnostics& d = *files[i]->diags;
        out.errors += d.errors();
        out.warnings += d.warnings();
        out.diagnostics += d.render();
        out.imports.push_back(files[i]->source);
    }
    out.errors += diags.errors();
    out.warnings += diags.warnings();
    out.diagnostics += diags.render();
    if (out.errors == 0) {
        out.personas = std::move(checked.personas);
        out.binds = std::move(checked.binds);
    }
    return out;
}

std::vector<std::string> configured_sections(const ir::Persona& p) {
    std::vector<std::string> out;
    if (p.encryption.required) out.push_back("encryption");
    if (p.ids.syn_flood || p.ids.port_scan) out.push_back("ids");
    const auto& q = p.qos;
    if (q.egress || q.ingress || q.priority || q.latency_target_ns) out.push_back("qos");
    const auto& t = p.topology;
    if (t.route || !t.next_hops.empty() || t.max_hops) out.push_back("topology");
    const auto& s = p.sovereignty;
    if (s.list || s.unknown || !s.exempt.empty() || s.on_violation) out.push_back("sovereignty");
    if (!p.dns.servers.empty() || !p.dns.search.empty()) out.push_back("dns");
    if (!p.forwards.empty()) out.push_back("forward");
    return out;
}

nlohmann::json to_json(const ir::BindRule& bind) {
    nlohmann::json j = {{"persona", bind.persona}, {"line", bind.loc.line}};
    auto add = [&j](const char* key, const std::vector<std::string>& v) {
        if (!v.empty()) j[key] = v;
    };
    add("cgroups", bind.cgroups);
    add("users", bind.users);
    add("groups", bind.groups);
    add("interfaces", bind.interfaces);
    return j;
}

std::string describe_rule(const ir::Rule& rule) {
    // Built for every rule of every file: in a buffer that is reused, then copied out at
    // its exact size (the IR keeps it).
    thread_local std::string s;
    s.clear();
    s += rule.action == ir::Action::Deny ? "deny" : "allow";
    s += rule.direction == ir::Direction::Egress ? " egress " : " ingress ";
    switch (rule.proto) {
        case ir::Proto::Tcp:
            s += "tcp";
            break;
        case ir::Proto::Udp:
            s += "udp";
            break;
        case ir::Proto::Icmp:
            s += "icmp";
            break;
        case ir::Proto::Icmpv6:
            s += "icmpv6";
            break;
        case ir::Proto::Any:
            s += "any";
            break;
    }
    if (!rule.ports.empty()) {
        s += " port ";
        if (rule.ports.size() == 1) {
            append_port_range(s, rule.ports[0]);
        } else {
            s += "{ ";
            for (size_t i = 0; i < rule.ports.size(); ++i) {
                if (i) s += ", ";
                append_port_range(s, rule.ports[i]);
            }
            s += " }";
        }
    }
    s += rule.direction == ir::Direction::Egress ? " to " : " from ";
    if (rule.peers.empty()) {
        s += "any";
    } else if (rule.peers.size() == 1) {
        append_cidr(s, rule.peers[0]);
    } else {
        s += "{ ";
        for (size_t i = 0; i < rule.peers.size(); ++i) {
            if (i) s += ", ";
            append_cidr(s, rule.peers[i]);
        }
        s += " }";
    }
    return s;
}

}  // namespace pdl
