// `personabpf persona apply|ls|show|history|diff|rollback|chown|rm`: personas stored and
// enforced by the agent, with every applied version kept (history, diff, rollback).
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>

#include "pdl-compiler/compiler.h"
#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {
namespace {

// The agent reports some fields either as a count or as the list itself.
std::string count_of(const nlohmann::json& j, const std::string& key) {
    if (!j.is_object() || !j.contains(key)) return "-";
    const auto& v = j.at(key);
    if (v.is_array()) return std::to_string(v.size());
    return text_of(v);
}

struct ApplyOptions {
    std::vector<std::string> files;
    std::string message;
    std::string owner;    // --owner: user name or uid (admins only)
    bool lint = true;     // --no-lint: do not print the warnings the agent sends back
    bool werror = false;  // --werror: refuse a file with warnings before sending it
};

// For --werror: compiles the file here first, since the agent has no such option. False
// (diagnostics printed) when it has errors or warnings.
bool passes_werror(const std::string& name, const std::string& source, const ApplyOptions& opt) {
    auto out = pdl::compile(pdl::Source{name, source}, pdl::CompileOptions{opt.lint, true});
    if (out.ok()) return true;
    std::cerr << out.diagnostics;
    if (!out.diagnostics.empty() && out.diagnostics.back() != '\n') std::cerr << '\n';
    std::cerr << "personabpf: error: " << name << ": not applied (" << out.errors << " error"
              << (out.errors == 1 ? "" : "s") << " with --werror)\n";
    return false;
}

// The files `source` imports (transitively), as {"filename", "source"} objects named as
// the compiler resolved them. Errors are left to the agent's compile, which reports them
// the same way.
nlohmann::json imports_of(const std::string& name, const std::string& source) {
    nlohmann::json out = nlohmann::json::array();
    if (source.find("import") == std::string::npos) return out;  // the common case, cheaply
    pdl::CompileOptions options;
    options.lint = false;
    for (const auto& imp : pdl::compile(pdl::Source{name, source}, options).imports)
        out.push_back({{"filename", imp.filename}, {"source", imp.text}});
    return out;
}

// The sections of an applied persona the agent stored but does not enforce, on stderr.
void note_not_enforced(const nlohmann::json& p) {
    auto it = p.find("not_enforced");
    if (it == p.end() || !it->is_array() || it->empty()) return;
    std::string sections;
    for (const auto& s : *it)
        if (s.is_string()) sections += (sections.empty() ? "" : ", ") + s.get<std::string>();
    std::cerr << "personabpf: note: " << field(p, "name") << ": " << sections
              << " compiled and stored, not enforced by this agent\n";
}

int run_apply(const Context& ctx, const ApplyOptions& opt) {
    auto api = ctx.client();
    int status = 0;
    nlohmann::json applied = nlohmann::json::array();
    for (const auto& path : opt.files) {
        const std::string name = path == "-" ? "<stdin>" : path;
        std::string source = read_source(path);
        if (opt.werror && !passes_werror(name, source, opt)) {
            status = 1;
            continue;
        }
        nlohmann::json body = {{"source", source}, {"filename", name}};
        // The agent never reads files for a client: send along what the file imports.
        if (auto imports = imports_of(name, source); !imports.empty()) body["imports"] = imports;
        if (!opt.message.empty()) body["message"] = opt.message;
        if (!opt.owner.empty()) body["owner"] = opt.owner;
        nlohmann::json answer;
        try {
            answer = api.post("/v1/personas", body);
        } catch (const ApiError& e) {
            // A bad file applies nothing; the others are independent, so go on with them.
            if (!e.diagnostics().empty()) {
                std::cerr << e.diagnostics();
                if (e.diagnostics().back() != '\n') std::cerr << '\n';
            }
            std::string what = e.what();
            if (what.find(path) == std::string::npos) what = path + ": " + what;
            std::cerr << "personabpf: error: " << what << '\n';
            status = 1;
            continue;
        }
        // Warnings come back with a successful apply; show them like `pdl check` does.
        if (auto it = answer.find("diagnostics");
            opt.lint && it != answer.end() && it->is_string() && !it->get<std::string>().empty()) {
            std::cerr << it->get<std::string>();
        }
        if (auto it = answer.find("bind_rules"); !ctx.json && it != answer.end() && it->is_number())
            std::cout << name << ": " << it->get<size_t>()
                      << " binding rule(s) from bind blocks (personabpf rules ls)\n";
        for (const auto& p : answer.value("applied", nlohmann::json::array())) {
            applied.push_back(p);
            if (ctx.json) continue;
            const bool changed = p.value("changed", true);
            const std::string persona = field(p, "name");
            if (p.contains("version")) {
                std::cout << (changed ? "applied persona '" + persona + "'"
                                      : "persona '" + persona + "' unchanged")
                          << " (version " << field(p, "version") << ")\n";
            } else {  // an agent without persona versions
                std::cout << (changed ? "applied " : "unchanged ") << persona << " (id "
                          << field(p, "id") << ", " << field(p, "entries") << " entries)\n";
            }
            note_not_enforced(p);
        }
    }
    if (ctx.json) print_json({{"applied", applied}});
    return status;
}

// "alice (uid 1001)" as the agent names the owner; just the uid when it sends only that.
std::string owner_of(const nlohmann::json& p) {
    std::string owner = field(p, "owner");
    if (owner == "-" && p.contains("owner_uid")) owner = "uid " + field(p, "owner_uid");
    return owner;
}

int run_ls(const Context& ctx) {
    auto list = ctx.client().get("/v1/personas");
    if (ctx.json) {
        print_json(list);
        return 0;
    }
    using A = Table::Align;
    Table table({"NAME", "ID", "VERSION", "MODE", "RULES", "ENTRIES", "BINDINGS", "OWNER"},
                {A::Left, A::Right, A::Right, A::Left, A::Right, A::Right, A::Right, A::Left});
    for (const auto& p : list) {
        table.add_row({field(p, "name"), field(p, "id"), field(p, "version"), field(p, "mode"),
                       count_of(p, "rules"), count_of(p, "entries"), count_of(p, "bindings"),
                       owner_of(p)});
    }
    if (table.empty()) {
        std::cout << "no personas\n";
    } else {
        table.print(std::cout);
    }
    return 0;
}

// The persona's rules, one per line, whatever shape the agent sent them in.
std::vector<std::string> rule_lines(const nlohmann::json& rules) {
    std::vector<std::string> lines;
    if (rules.is_string()) {
        std::string text = rules.get<std::string>();
        size_t start = 0;
        while (start < text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            if (end > start) lines.push_back(text.substr(start, end - start));
            start = end + 1;
        }
    } else if (rules.is_array()) {
        for (const auto& r : rules) lines.push_back(r.is_object() ? field(r, "text") : text_of(r));
    }
    return lines;
}

std::string defaults_of(const nlohmann::json& p) {
    const nlohmann::json* src = &p;
    if (p.contains("defaults") && p["defaults"].is_object()) src = &p["defaults"];
    auto pick = [&](const char* a, const char* b) {
        std::string v = field(*src, a);
        if (v == "-") v = field(*src, b);
        if (v == "-" && p.contains("image")) v = field(p["image"], a);
        return v;
    };
    return "ingress " + pick("default_ingress", "ingress") + ", egress " +
           pick("default_egress", "egress");
}

struct ShowOptions {
    std::string name;
    unsigned version = 0;  // --version N; 0: the current one
    bool source = false;   // --source: the stored PDL text instead
};

// Prints a version's stored source text as it was applied.
int print_source(const Context& ctx, const nlohmann::json& p) {
    if (ctx.json) {
        print_json(p);
        return 0;
    }
    auto it = p.find("source");
    if (it == p.end() || !it->is_string())
        throw CliError("the agent sent no source for persona '" + field(p, "name") + "'");
    const std::string& text = it->get_ref<const std::string&>();
    std::cout << text;
    if (!text.empty() && text.back() != '\n') std::cout << '\n';
    return 0;
}

// One line of free text (a version's message) for a header or a table cell.
std::string one_line(std::string text) {
    for (auto& c : text)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    return text.empty() ? "-" : text;
}

void print_rules(const nlohmann::json& p) {
    auto rules = rule_lines(p.value("rules", nlohmann::json()));
    std::cout << "rules:" << (rules.empty() ? "        none" : "") << '\n';
    // Numbered like the rule ids the kernel reports (1-based, source order).
    for (size_t i = 0; i < rules.size(); ++i)
        std::cout << "  " << std::setw(3) << i + 1 << "  " << rules[i] << '\n';
}

// `persona show NAME --version N`: one stored version, as it was applied.
int run_show_version(const Context& ctx, const ShowOptions& opt) {
    auto p = ctx.client().get("/v1/personas/" + url_encode(opt.name) +
                              "?version=" + std::to_string(opt.version));
    if (opt.source) return print_source(ctx, p);
    if (ctx.json) {
        print_json(p);
        return 0;
    }
    std::string author = field(p, "author");
    if (author == "-" && p.contains("author_uid")) author = "uid " + field(p, "author_uid");
    std::cout << "persona:      " << field(p, "name") << '\n';
    std::cout << "version:      " << field(p, "version") << '\n';
    std::cout << "description:  " << field(p, "description") << '\n';
    std::cout << "author:       " << author << '\n';
    std::cout << "created:      " << time_text(p.value("created_at", nlohmann::json())) << '\n';
    std::cout << "message:      " << one_line(field(p, "message")) << '\n';
    std::cout << "mode:         " << field(p, "mode") << '\n';
    std::cout << "defaults:     " << defaults_of(p) << '\n';
    if (std::string file = field(p, "filename"); file != "-")
        std::cout << "source:       " << file << '\n';
    print_rules(p);
    return 0;
}

int run_show(const Context& ctx, const ShowOptions& opt) {
    if (opt.version != 0) return run_show_version(ctx, opt);
    const std::string& name = opt.name;
    auto api = ctx.client();
    auto p = api.get("/v1/personas/" + url_encode(name));
    if (opt.source) {
        // The current answer may leave the text out: then it is the current version's.
        if (!p.contains("source") && p.contains("version") && p["version"].is_number_unsigned())
            p = api.get("/v1/personas/" + url_encode(name) +
                        "?version=" + std::to_string(p["version"].get<uint64_t>()));
        return print_source(ctx, p);
    }
    if (ctx.json) {
        print_json(p);
        return 0;
    }
    // The agent lists the bound cgroups; older answers only count them, so fall back to
    // the binding list.
    std::vector<std::string> bound;
    if (auto it = p.find("bound_cgroups"); it != p.end() && it->is_array()) {
        for (const auto& c : *it) bound.push_back(text_of(c));
    } else {
        for (const auto& b : api.get("/v1/bindings"))
            if (field(b, "persona") == name) bound.push_back(field(b, "cgroup"));
    }

    std::string entries = count_of(p, "entries");
    if (entries == "-" && p.contains("image")) entries = count_of(p["image"], "entries");
    std::string classes = p.contains("image") ? field(p["image"], "class_count") : "-";

    std::cout << "persona:      " << field(p, "name") << " (id " << field(p, "id") << ")\n";
    if (p.contains("version")) std::cout << "version:      " << field(p, "version") << '\n';
    if (p.contains("owner") || p.contains("owner_uid"))
        std::cout << "owner:        " << owner_of(p) << '\n';
    std::cout << "description:  " << field(p, "description") << '\n';
    std::cout << "mode:         " << field(p, "mode");
    if (!p.value("enforced", true)) std::cout << " (not enforced: no policy loaded)";
    std::cout << '\n';
    std::cout << "defaults:     " << defaults_of(p) << '\n';
    std::cout << "entries:      " << entries;
    if (classes != "-") std::cout << " (" << classes << " address classes)";
    std::cout << '\n';
    if (std::string file = field(p, "filename"); file != "-")
        std::cout << "source:       " << file << '\n';
    if (auto it = p.find("updated_at"); it != p.end() && !it->is_null())
        std::cout << "updated:      " << time_text(*it) << '\n';
    print_rules(p);
    std::cout << "bindings:" << (bound.empty() ? "     none" : "") << '\n';
    for (const auto& b : bound) std::cout << "  " << b << '\n';
    return 0;
}

int run_history(const Context& ctx, const std::string& name) {
    auto list = ctx.client().get("/v1/personas/" + url_encode(name) + "/versions");
    if (ctx.json) {
        print_json(list);
        return 0;
    }
    using A = Table::Align;
    Table table({"VERSION", "CREATED", "AUTHOR", "RULES", "MESSAGE"},
                {A::Left, A::Left, A::Left, A::Right, A::Left});
    for (const auto& v : list) {
        std::string author = field(v, "author");
        if (author == "-" && v.contains("author_uid")) author = "uid " + field(v, "author_uid");
        table.add_row({field(v, "version") + (v.value("current", false) ? "*" : ""),
                       time_text(v.value("created_at", nlohmann::json())), author,
                       count_of(v, "rules"), one_line(field(v, "message"))});
    }
    if (table.empty()) {
        std::cout << "no versions of persona '" << name << "'\n";
    } else {
        table.print(std::cout);
    }
    return 0;
}

int run_diff(const Context& ctx, const std::string& name, unsigned from, unsigned to) {
    auto d = ctx.client().get("/v1/personas/" + url_encode(name) +
                              "/diff?from=" + std::to_string(from) + "&to=" + std::to_string(to));
    if (ctx.json) {
        print_json(d);
        return 0;
    }
    auto changes = d.value("changes", nlohmann::json::array());
    std::string source_diff = d.value("source_diff", std::string());
    if ((!changes.is_array() || changes.empty()) && source_diff.empty()) {
        std::cout << "no changes\n";
        return 0;
    }
    // Comments and formatting change the source without changing the policy.
    std::cout << "changes:" << (changes.empty() ? "  none" : "") << '\n';
    for (const auto& c : changes) std::cout << "  " << text_of(c) << '\n';
    if (!source_diff.empty()) {
        std::cout << '\n' << source_diff;
        if (source_diff.back() != '\n') std::cout << '\n';
    }
    return 0;
}

int run_rollback(const Context& ctx, const std::string& name, unsigned to,
                 const std::string& message) {
    nlohmann::json body = {{"to", to}};
    if (!message.empty()) body["message"] = message;
    auto answer = ctx.client().post("/v1/personas/" + url_encode(name) + "/rollback", body);
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    nlohmann::json p = nlohmann::json::object();
    for (const auto& a : answer.value("applied", nlohmann::json::array()))
        if (p.empty() || field(a, "name") == name) p = a;
    std::string target = field(answer, "rolled_back_to");
    if (target == "-") target = std::to_string(to);
    if (p.value("changed", true)) {
        std::cout << "persona '" << name << "' rolled back to version " << target
                  << " (now version " << field(p, "version") << ")\n";
    } else {
        std::cout << "persona '" << name << "' already equals version " << target << " (version "
                  << field(p, "version") << ", unchanged)\n";
    }
    note_not_enforced(p);
    return 0;
}

int run_chown(const Context& ctx, const std::string& name, const std::string& owner) {
    // A uid goes as text too: the agent resolves "1001" like a name, as for `bind --user`.
    auto answer =
        ctx.client().post("/v1/personas/" + url_encode(name) + "/owner", {{"owner", owner}});
    if (ctx.json) {
        print_json(answer);
        return 0;
    }
    std::string now = owner_of(answer);
    std::cout << "persona '" << name << "' is now owned by " << (now == "-" ? owner : now) << '\n';
    return 0;
}

int run_rm(const Context& ctx, const std::string& name, bool force) {
    std::string path = "/v1/personas/" + url_encode(name);
    if (force) path += "?force=1";
    nlohmann::json answer;
    try {
        answer = ctx.client().del(path);
    } catch (const ApiError& e) {
        std::string what = e.what();
        if (e.status() == 409 && !force && what.find("--force") == std::string::npos)
            throw CliError(what + " (unbind it first, or use --force)");
        throw;
    }
    if (ctx.json) {
        print_json(answer.is_null() ? nlohmann::json{{"removed", name}} : answer);
    } else {
        std::cout << "removed " << name << '\n';
    }
    return 0;
}

}  // namespace

void add_persona_commands(CLI::App& app, Context& ctx) {
    auto* persona = app.add_subcommand(
        "persona", "Apply, list, show, diff, roll back, chown and remove personas");
    persona->require_subcommand(1);

    auto apply_opt = std::make_shared<ApplyOptions>();
    auto* apply = persona->add_subcommand("apply", "Store and enforce the personas of PDL files");
    apply->add_option("files", apply_opt->files, "PDL files ('-' reads stdin)")->required();
    apply->add_option("-m,--message", apply_opt->message, "Note stored with the new version");
    apply->add_option("--owner", apply_opt->owner,
                      "Owner of the persona: user name or uid (admins only)");
    apply->add_flag_callback(
        "--no-lint", [apply_opt] { apply_opt->lint = false; },
        "Do not print lint warnings (docs/pdl.md, \"Lint warnings\")");
    apply->add_flag("--werror", apply_opt->werror,
                    "Treat warnings as errors: check each file here first and do not send "
                    "one with warnings");
    apply->callback([&ctx, apply_opt] {
        ctx.action = [&ctx, apply_opt] { return run_apply(ctx, *apply_opt); };
    });

    auto* ls = persona->add_subcommand("ls", "List personas");
    ls->callback([&ctx] { ctx.action = [&ctx] { return run_ls(ctx); }; });

    // Versions count from 1.
    const auto version_check = CLI::Range(1u, std::numeric_limits<unsigned>::max());
    auto show_opt = std::make_shared<ShowOptions>();
    auto* show = persona->add_subcommand("show", "Show one persona");
    show->add_option("name", show_opt->name, "Persona name")->required();
    show->add_option("--version", show_opt->version, "Show this stored version (persona history)")
        ->check(version_check);
    show->add_flag("--source", show_opt->source, "Print the stored PDL source instead");
    show->callback(
        [&ctx, show_opt] { ctx.action = [&ctx, show_opt] { return run_show(ctx, *show_opt); }; });

    auto history_name = std::make_shared<std::string>();
    auto* history = persona->add_subcommand("history", "List a persona's versions");
    history->add_option("name", *history_name, "Persona name")->required();
    history->callback([&ctx, history_name] {
        ctx.action = [&ctx, history_name] { return run_history(ctx, *history_name); };
    });

    struct DiffOptions {
        std::string name;
        unsigned from = 0, to = 0;
    };
    auto diff_opt = std::make_shared<DiffOptions>();
    auto* diff = persona->add_subcommand("diff", "Show what changed between two versions");
    diff->add_option("name", diff_opt->name, "Persona name")->required();
    diff->add_option("from", diff_opt->from, "Older version")->required()->check(version_check);
    diff->add_option("to", diff_opt->to, "Newer version")->required()->check(version_check);
    diff->callback([&ctx, diff_opt] {
        ctx.action = [&ctx, diff_opt] {
            return run_diff(ctx, diff_opt->name, diff_opt->from, diff_opt->to);
        };
    });

    struct RollbackOptions {
        std::string name, message;
        unsigned to = 0;
    };
    auto rb_opt = std::make_shared<RollbackOptions>();
    auto* rollback =
        persona->add_subcommand("rollback", "Apply an earlier version again (as a new version)");
    rollback->add_option("name", rb_opt->name, "Persona name")->required();
    rollback->add_option("--to", rb_opt->to, "The version to go back to")
        ->required()
        ->check(version_check);
    rollback->add_option("-m,--message", rb_opt->message, "Note stored with the new version");
    rollback->callback([&ctx, rb_opt] {
        ctx.action = [&ctx, rb_opt] {
            return run_rollback(ctx, rb_opt->name, rb_opt->to, rb_opt->message);
        };
    });

    auto chown_opt = std::make_shared<std::pair<std::string, std::string>>();
    auto* chown = persona->add_subcommand("chown", "Give a persona to another owner (admins only)");
    chown->add_option("name", chown_opt->first, "Persona name")->required();
    chown->add_option("user", chown_opt->second, "New owner: user name or uid")->required();
    chown->callback([&ctx, chown_opt] {
        ctx.action = [&ctx, chown_opt] {
            return run_chown(ctx, chown_opt->first, chown_opt->second);
        };
    });

    auto rm_name = std::make_shared<std::string>();
    auto rm_force = std::make_shared<bool>(false);
    auto* rm = persona->add_subcommand("rm", "Remove a persona");
    rm->add_option("name", *rm_name, "Persona name")->required();
    rm->add_flag("--force", *rm_force, "Unbind it from its workloads first");
    rm->callback([&ctx, rm_name, rm_force] {
        ctx.action = [&ctx, rm_name, rm_force] { return run_rm(ctx, *rm_name, *rm_force); };
    });
}

}  // namespace pbpf::cli
