// `personabpf persona apply|ls|show|rm`: personas stored and enforced by the agent.
#include <ctime>
#include <iomanip>
#include <iostream>
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
            std::cout << (changed ? "applied " : "unchanged ") << field(p, "name") << " (id "
                      << field(p, "id") << ", " << field(p, "entries") << " entries)\n";
            if (auto it = p.find("not_enforced"); it != p.end() && it->is_array() && !it->empty()) {
                std::string sections;
                for (const auto& s : *it)
                    if (s.is_string())
                        sections += (sections.empty() ? "" : ", ") + s.get<std::string>();
                std::cerr << "personabpf: note: " << field(p, "name") << ": " << sections
                          << " compiled and stored, not enforced by this release\n";
            }
        }
    }
    if (ctx.json) print_json({{"applied", applied}});
    return status;
}

int run_ls(const Context& ctx) {
    auto list = ctx.client().get("/v1/personas");
    if (ctx.json) {
        print_json(list);
        return 0;
    }
    using A = Table::Align;
    Table table({"NAME", "ID", "MODE", "RULES", "ENTRIES", "BINDINGS"},
                {A::Left, A::Right, A::Left, A::Right, A::Right, A::Right});
    for (const auto& p : list) {
        table.add_row({field(p, "name"), field(p, "id"), field(p, "mode"), count_of(p, "rules"),
                       count_of(p, "entries"), count_of(p, "bindings")});
    }
    if (table.empty()) {
        std::cout << "no personas\n";
    } else {
        table.print(std::cout);
    }
    return 0;
}

// A time the agent sends as Unix seconds, in local time; other shapes as they came.
std::string time_text(const nlohmann::json& t) {
    if (!t.is_number_integer()) return text_of(t);
    std::time_t secs = t.get<std::time_t>();
    std::tm tm{};
    char buf[64];
    if (!localtime_r(&secs, &tm) || !std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm))
        return text_of(t);
    return buf;
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

int run_show(const Context& ctx, const std::string& name) {
    auto api = ctx.client();
    auto p = api.get("/v1/personas/" + url_encode(name));
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
    auto rules = rule_lines(p.value("rules", nlohmann::json()));
    std::cout << "rules:" << (rules.empty() ? "        none" : "") << '\n';
    // Numbered like the rule ids the kernel reports (1-based, source order).
    for (size_t i = 0; i < rules.size(); ++i)
        std::cout << "  " << std::setw(3) << i + 1 << "  " << rules[i] << '\n';
    std::cout << "bindings:" << (bound.empty() ? "     none" : "") << '\n';
    for (const auto& b : bound) std::cout << "  " << b << '\n';
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
    auto* persona = app.add_subcommand("persona", "Apply, list, show and remove personas");
    persona->require_subcommand(1);

    auto apply_opt = std::make_shared<ApplyOptions>();
    auto* apply = persona->add_subcommand("apply", "Store and enforce the personas of PDL files");
    apply->add_option("files", apply_opt->files, "PDL files ('-' reads stdin)")->required();
    apply->add_option("-m,--message", apply_opt->message, "Note stored with the new version");
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

    auto show_name = std::make_shared<std::string>();
    auto* show = persona->add_subcommand("show", "Show one persona");
    show->add_option("name", *show_name, "Persona name")->required();
    show->callback([&ctx, show_name] {
        ctx.action = [&ctx, show_name] { return run_show(ctx, *show_name); };
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
