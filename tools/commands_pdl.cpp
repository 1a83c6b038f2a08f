// `personabpf pdl check|fmt|compile`: the offline PDL tools. They run the compiler in
// process and never talk to the agent.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>

#include "maps/map_image.h"
#include "pdl-compiler/compiler.h"
#include "tools/commands.h"
#include "tools/table.h"

namespace pbpf::cli {
namespace {

std::string plural(size_t n, const std::string& word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// Diagnostics arrive rendered (file:line:col, source line, caret); print them as is.
void print_diagnostics(const std::string& diagnostics) {
    if (diagnostics.empty()) return;
    std::cerr << diagnostics;
    if (diagnostics.back() != '\n') std::cerr << '\n';
}

std::string display_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

int run_check(const Context& ctx, const std::vector<std::string>& files) {
    int status = 0;
    nlohmann::json report = nlohmann::json::array();
    for (const auto& path : files) {
        const std::string name = display_name(path);
        auto out = pdl::compile(pdl::Source{name, read_source(path)});
        if (!out.ok()) status = 1;

        nlohmann::json names = nlohmann::json::array();
        for (const auto& p : out.personas) names.push_back(p.name);
        if (ctx.json) {
            report.push_back({{"file", name},
                              {"ok", out.ok()},
                              {"personas", out.ok() ? names : nlohmann::json::array()},
                              {"errors", out.errors},
                              {"warnings", out.warnings},
                              {"diagnostics", out.diagnostics}});
            continue;
        }
        print_diagnostics(out.diagnostics);
        const size_t warnings = static_cast<size_t>(out.warnings);
        if (out.ok()) {
            std::string line = name + ": ok: " + plural(out.personas.size(), "persona");
            if (!names.empty()) line += " (" + text_of(names) + ")";
            if (warnings > 0) line += ", " + plural(warnings, "warning");
            std::cout << line << '\n';
        } else {
            std::cout << name << ": " << plural(static_cast<size_t>(out.errors), "error") << ", "
                      << plural(warnings, "warning") << '\n';
        }
    }
    if (ctx.json) print_json(report);
    return status;
}

struct FmtOptions {
    std::vector<std::string> files;
    bool write = false;
    bool check = false;
};

int run_fmt(const FmtOptions& opt) {
    if (opt.write && opt.check) throw CliError("pdl fmt: -w and --check exclude each other");
    int status = 0;
    for (const auto& path : opt.files) {
        if (path == "-" && opt.write) throw CliError("pdl fmt -w: cannot rewrite stdin");
        const std::string name = display_name(path);
        const std::string text = read_source(path);
        auto out = pdl::format(pdl::Source{name, text});
        print_diagnostics(out.diagnostics);
        if (!out.ok) {
            // A file that does not parse is never rewritten: formatting must not lose text.
            std::cerr << "personabpf: error: " << name << ": not formatted (fix the errors)\n";
            status = 1;
            continue;
        }
        if (opt.check) {
            if (out.text != text) {
                std::cout << name << '\n';
                status = 1;
            }
        } else if (opt.write) {
            if (out.text == text) continue;
            // Write a sibling and rename it over the file, so a failure leaves the original.
            const std::string tmp = path + ".pbpf-fmt.tmp";
            {
                std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
                f << out.text;
                f.close();
                if (!f) throw CliError("cannot write " + tmp);
            }
            if (std::rename(tmp.c_str(), path.c_str()) != 0) {
                std::remove(tmp.c_str());
                throw CliError("cannot replace " + path + ": " + std::strerror(errno));
            }
            std::cout << "formatted " << name << '\n';
        } else {
            std::cout << out.text;
        }
    }
    return status;
}

std::string verdict_name(pbpf_verdict v) { return v == PBPF_VERDICT_DENY ? "deny" : "allow"; }

int run_compile(const Context& ctx, const std::string& path, const std::string& persona) {
    const std::string name = display_name(path);
    auto out = pdl::compile(pdl::Source{name, read_source(path)});
    print_diagnostics(out.diagnostics);
    if (!out.ok()) return 1;

    auto personas = out.personas;
    if (!persona.empty()) {
        std::erase_if(personas, [&](const auto& p) { return p.name != persona; });
        if (personas.empty()) throw CliError(name + ": no persona named '" + persona + "'");
    }
    pbpf::MapImage image = pdl::lower(personas);

    if (ctx.json) {
        print_json(pbpf::to_json(image));
        return 0;
    }
    using A = Table::Align;
    Table table({"PERSONA", "MODE", "INGRESS", "EGRESS", "RULES", "CLASSES", "ENTRIES"},
                {A::Left, A::Left, A::Left, A::Left, A::Right, A::Right, A::Right});
    for (const auto& p : image.personas) {
        table.add_row({p.name, p.audit ? "audit" : "enforce", verdict_name(p.default_ingress),
                       verdict_name(p.default_egress), std::to_string(p.rule_count),
                       std::to_string(p.class_count), std::to_string(p.entries.size())});
    }
    table.print(std::cout);
    return 0;
}

}  // namespace

void add_pdl_commands(CLI::App& app, Context& ctx) {
    auto* pdl = app.add_subcommand("pdl", "Check, format and compile PDL files (no agent needed)");
    pdl->require_subcommand(1);

    auto check_files = std::make_shared<std::vector<std::string>>();
    auto* check = pdl->add_subcommand("check", "Report errors and warnings; exit 1 on errors");
    check->add_option("files", *check_files, "PDL files ('-' reads stdin)")->required();
    check->callback([&ctx, check_files] {
        ctx.action = [&ctx, check_files] { return run_check(ctx, *check_files); };
    });

    auto fmt_opt = std::make_shared<FmtOptions>();
    auto* fmt = pdl->add_subcommand("fmt", "Print files in canonical layout");
    fmt->add_option("files", fmt_opt->files, "PDL files ('-' reads stdin)")->required();
    fmt->add_flag("-w,--write", fmt_opt->write, "Rewrite the files in place");
    fmt->add_flag("--check", fmt_opt->check, "List files that are not formatted; exit 1 if any");
    fmt->callback([&ctx, fmt_opt] { ctx.action = [fmt_opt] { return run_fmt(*fmt_opt); }; });

    auto file = std::make_shared<std::string>();
    auto persona = std::make_shared<std::string>();
    auto* compile = pdl->add_subcommand(
        "compile", "Show what a file compiles to (-j: the canonical MapImage JSON)");
    compile->add_option("file", *file, "PDL file ('-' reads stdin)")->required();
    compile->add_option("--persona", *persona, "Only this persona");
    compile->callback([&ctx, file, persona] {
        ctx.action = [&ctx, file, persona] { return run_compile(ctx, *file, *persona); };
    });
}

}  // namespace pbpf::cli
