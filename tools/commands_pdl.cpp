// `personabpf pdl check|fmt|compile`: the offline PDL tools. They run the compiler in
// process and never talk to the agent.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

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

void print_error(const std::string& message) {
    std::cerr << "personabpf: error: " << message << '\n';
}

// read_source, but a file that cannot be read is reported (stderr, or the caller's JSON
// via `error`) rather than thrown, so a run over many files goes on with the others.
std::optional<std::string> try_read_source(const std::string& path, std::string& error) {
    try {
        return read_source(path);
    } catch (const CliError& e) {
        error = e.what();
        return std::nullopt;
    }
}

int run_check(const Context& ctx, const std::vector<std::string>& files,
              const pdl::CompileOptions& options) {
    int status = 0;
    nlohmann::json report = nlohmann::json::array();
    for (const auto& path : files) {
        const std::string name = display_name(path);
        std::string read_error;
        const auto text = try_read_source(path, read_error);
        if (!text) {
            status = 1;
            if (ctx.json) {
                report.push_back({{"file", name},
                                  {"ok", false},
                                  {"error", read_error},
                                  {"personas", nlohmann::json::array()},
                                  {"errors", 1},
                                  {"warnings", 0},
                                  {"diagnostics", ""}});
            } else {
                print_error(read_error);
            }
            continue;
        }
        auto out = pdl::compile(pdl::Source{name, *text}, options);
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

// A temporary file that is removed unless commit() renamed it into place.
class TempFile {
  public:
    TempFile() = default;
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() {
        close();
        if (!path_.empty()) ::unlink(path_.c_str());
    }

    // Creates the file from a mkstemp template; false with errno set on failure.
    bool create(std::string templ) {
        fd_ = ::mkostemp(templ.data(), O_CLOEXEC);
        if (fd_ < 0) return false;
        path_ = std::move(templ);
        return true;
    }
    bool write_all(const std::string& data) {
        size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return false;
            done += static_cast<size_t>(n);
        }
        return true;
    }
    // Closes the descriptor; false with errno set when close() reports a write error.
    bool close() {
        if (fd_ < 0) return true;
        const int rc = ::close(fd_);
        fd_ = -1;
        return rc == 0;
    }
    // Renames the file to `dest`; from then on it is no longer removed.
    bool commit(const std::string& dest) {
        if (::rename(path_.c_str(), dest.c_str()) != 0) return false;
        path_.clear();
        return true;
    }
    int fd() const { return fd_; }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
    int fd_ = -1;
};

// Replaces the contents of the file `path` names with `text`, atomically: the new text
// goes to a fresh temporary file beside the real file (symlinks resolved, so the link
// stays a link), gets the file's mode (and, best effort, its owner), is synced and renamed
// over it. On any failure the original is untouched and the temporary file is removed.
void write_in_place(const std::string& path, const std::string& text) {
    const auto fail = [&path](const std::string& what) {
        return CliError("cannot rewrite " + path + ": " + what + ": " + std::strerror(errno));
    };
    char* resolved = ::realpath(path.c_str(), nullptr);
    if (resolved == nullptr) throw fail("resolve path");
    const std::string target = resolved;
    std::free(resolved);

    struct stat st {};
    if (::stat(target.c_str(), &st) != 0) throw fail("stat " + target);
    if (!S_ISREG(st.st_mode)) throw CliError("cannot rewrite " + path + ": not a regular file");

    const std::filesystem::path target_path(target);
    const std::string dir = target_path.parent_path().string();
    TempFile tmp;
    if (!tmp.create(dir + "/." + target_path.filename().string() + ".pbpf-fmt.XXXXXX"))
        throw fail("create a temporary file in " + dir);
    if (!tmp.write_all(text)) throw fail("write " + tmp.path());
    // Owner before mode: chown may clear set-id bits. Only root can give a file away, so
    // a failed chown is not an error (the file then belongs to whoever ran fmt -w).
    if (st.st_uid != ::geteuid() || st.st_gid != ::getegid()) {
        [[maybe_unused]] const int rc = ::fchown(tmp.fd(), st.st_uid, st.st_gid);
    }
    if (::fchmod(tmp.fd(), st.st_mode & 07777) != 0) throw fail("chmod " + tmp.path());
    if (::fsync(tmp.fd()) != 0) throw fail("fsync " + tmp.path());
    if (!tmp.close()) throw fail("write " + tmp.path());
    if (!tmp.commit(target)) throw fail("rename " + tmp.path() + " to " + target);

    // Make the rename itself durable; the new contents are in place either way.
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        ::fsync(dir_fd);
        ::close(dir_fd);
    }
}

struct FmtOptions {
    std::vector<std::string> files;
    bool write = false;
    bool check = false;
};

int run_fmt(const FmtOptions& opt) {
    // Refuse before rewriting anything: `fmt -w a.pdl -` must not half-run.
    if (opt.write)
        for (const auto& path : opt.files)
            if (path == "-") throw CliError("pdl fmt -w: cannot rewrite stdin");
    int status = 0;
    for (const auto& path : opt.files) {
        const std::string name = display_name(path);
        std::string read_error;
        const auto text = try_read_source(path, read_error);
        if (!text) {
            print_error(read_error);
            status = 1;
            continue;
        }
        auto out = pdl::format(pdl::Source{name, *text});
        print_diagnostics(out.diagnostics);
        if (!out.ok) {
            // A file that does not parse is never rewritten: formatting must not lose text.
            print_error(name + ": not formatted (fix the errors)");
            status = 1;
            continue;
        }
        if (opt.check) {
            if (out.text != *text) {
                std::cout << name << '\n';
                status = 1;
            }
        } else if (opt.write) {
            if (out.text == *text) continue;
            try {
                write_in_place(path, out.text);
            } catch (const CliError& e) {
                print_error(e.what());
                status = 1;
                continue;
            }
            std::cout << "formatted " << name << '\n';
        } else {
            std::cout << out.text;
        }
    }
    return status;
}

std::string verdict_name(pbpf_verdict v) { return v == PBPF_VERDICT_DENY ? "deny" : "allow"; }

int run_compile(const Context& ctx, const std::string& path, const std::string& persona,
                const pdl::CompileOptions& options) {
    const std::string name = display_name(path);
    auto out = pdl::compile(pdl::Source{name, read_source(path)}, options);
    print_diagnostics(out.diagnostics);
    if (!out.ok()) return 1;

    auto personas = out.personas;
    if (!persona.empty()) {
        std::erase_if(personas, [&](const auto& p) { return p.name != persona; });
        if (personas.empty()) {
            std::string known;
            for (const auto& p : out.personas) known += (known.empty() ? "" : ", ") + p.name;
            throw CliError(
                "no persona named '" + persona + "' in " + name +
                (known.empty() ? " (it has no personas)" : " (personas: " + known + ")"));
        }
    }
    pbpf::MapImage image = pdl::lower(personas);

    auto binds = out.binds;
    if (!persona.empty()) std::erase_if(binds, [&](const auto& b) { return b.persona != persona; });
    if (ctx.json) {
        nlohmann::json j = pbpf::to_json(image);
        if (!binds.empty()) {
            j["binds"] = nlohmann::json::array();
            for (const auto& b : binds) j["binds"].push_back(pdl::to_json(b));
        }
        print_json(j);
        return 0;
    }
    std::map<std::string, std::string> sections;
    for (const auto& p : personas) {
        std::string s;
        for (const auto& name : pdl::configured_sections(p)) s += (s.empty() ? "" : ",") + name;
        sections[p.name] = s.empty() ? "-" : s;
    }
    using A = Table::Align;
    Table table({"PERSONA", "MODE", "INGRESS", "EGRESS", "RULES", "CLASSES", "ENTRIES", "SECTIONS"},
                {A::Left, A::Left, A::Left, A::Left, A::Right, A::Right, A::Right, A::Left});
    for (const auto& p : image.personas) {
        table.add_row({p.name, p.audit ? "audit" : "enforce", verdict_name(p.default_ingress),
                       verdict_name(p.default_egress), std::to_string(p.rule_count),
                       std::to_string(p.class_count), std::to_string(p.entries.size()),
                       sections[p.name]});
    }
    table.print(std::cout);
    for (const auto& b : binds) {
        std::string what;
        auto add = [&what](const char* kind, const std::vector<std::string>& v) {
            for (const auto& x : v) what += std::string(what.empty() ? "" : ", ") + kind + " " + x;
        };
        add("cgroup", b.cgroups);
        add("user", b.users);
        add("group", b.groups);
        add("interface", b.interfaces);
        std::cout << "bind " << b.persona << ": " << (what.empty() ? "(nothing)" : what) << "\n";
    }
    return 0;
}

// --no-lint and --werror; `options` must outlive the parse (the flags write into it).
void add_lint_flags(CLI::App& cmd, pdl::CompileOptions& options) {
    cmd.add_flag_callback(
        "--no-lint", [&options] { options.lint = false; },
        "Do not report lint warnings (docs/pdl.md, \"Lint warnings\")");
    cmd.add_flag("--werror", options.werror,
                 "Treat warnings as errors: exit 1 and compile the file to nothing");
}

}  // namespace

void add_pdl_commands(CLI::App& app, Context& ctx) {
    auto* pdl = app.add_subcommand("pdl", "Check, format and compile PDL files (no agent needed)");
    pdl->require_subcommand(1);

    auto check_files = std::make_shared<std::vector<std::string>>();
    auto check_opt = std::make_shared<pdl::CompileOptions>();
    auto* check = pdl->add_subcommand("check", "Report errors and warnings; exit 1 on errors");
    check->add_option("files", *check_files, "PDL files ('-' reads stdin)")->required();
    add_lint_flags(*check, *check_opt);
    check->callback([&ctx, check_files, check_opt] {
        ctx.action = [&ctx, check_files, check_opt] {
            return run_check(ctx, *check_files, *check_opt);
        };
    });

    auto fmt_opt = std::make_shared<FmtOptions>();
    auto* fmt = pdl->add_subcommand("fmt", "Print files in canonical layout");
    fmt->add_option("files", fmt_opt->files, "PDL files ('-' reads stdin)")->required();
    auto* write = fmt->add_flag("-w,--write", fmt_opt->write,
                                "Rewrite the files in place (symlinks: their targets)");
    fmt->add_flag("--check", fmt_opt->check, "List files that are not formatted; exit 1 if any")
        ->excludes(write);
    fmt->callback([&ctx, fmt_opt] { ctx.action = [fmt_opt] { return run_fmt(*fmt_opt); }; });

    auto file = std::make_shared<std::string>();
    auto persona = std::make_shared<std::string>();
    auto* compile = pdl->add_subcommand(
        "compile", "Show what a file compiles to (-j: the canonical MapImage JSON)");
    compile->add_option("file", *file, "PDL file ('-' reads stdin)")->required();
    compile->add_option("--persona", *persona, "Only this persona");
    auto compile_opt = std::make_shared<pdl::CompileOptions>();
    add_lint_flags(*compile, *compile_opt);
    compile->callback([&ctx, file, persona, compile_opt] {
        ctx.action = [&ctx, file, persona, compile_opt] {
            return run_compile(ctx, *file, *persona, *compile_opt);
        };
    });
}

}  // namespace pbpf::cli
