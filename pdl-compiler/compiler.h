// Public entry points of the PDL compiler: compile source text into checked IR, lower IR
// into kernel map images, and format source canonically. No exceptions cross this API.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "maps/map_image.h"
#include "pdl-compiler/ir.h"

namespace pdl {

struct Source {
    std::string filename;
    std::string text;
};

struct CompileOutput {
    // The personas the file defines (not those of its imports, which it may extend), in
    // source order, inheritance merged. Empty when errors > 0: a file with errors
    // compiles to nothing.
    std::vector<ir::Persona> personas;
    std::vector<ir::BindRule> binds;  // the file's `bind` blocks, in source order
    // Every imported file, dependencies before dependents, names as resolved (what a
    // MapLoader given to another compile must answer to). Set also when errors > 0.
    std::vector<Source> imports;
    std::string diagnostics;  // all rendered diagnostics, errors and warnings, in source order
    size_t errors = 0, warnings = 0;
    bool ok() const { return errors == 0; }
};

// Reads an imported file. `path` is already resolved against the importing file's
// directory. Returns the text, or nullopt with `error` set (e.g. a strerror message).
using SourceLoader =
    std::function<std::optional<std::string>(const std::string& path, std::string& error)>;

// Reads from the file system.
SourceLoader file_loader();
// Answers only from `files` (path -> text), e.g. in the agent, which never reads the
// file system on behalf of a client.
SourceLoader map_loader(std::vector<Source> files);

struct CompileOptions {
    // Run the lint pass (docs/pdl.md, "Lint warnings") on a file without errors.
    bool lint = true;
    // Report lint findings as errors (message suffix " [--werror]"): a file with any
    // then compiles to nothing.
    bool werror = false;
    // Where `import` reads from; unset: the file system (file_loader()).
    SourceLoader loader;
};

// Lex + parse + semantic checks, then lint.
CompileOutput compile(const Source& src, const CompileOptions& options = {});

// Lowers one persona into its canonical (sorted) policy image; see docs/architecture.md
// "Policy lookup".
pbpf::PersonaImage lower(const ir::Persona& persona);
// Lowers every persona; the result is sorted by persona name.
pbpf::MapImage lower(const std::vector<ir::Persona>& personas);

struct FormatOutput {
    std::string text;
    std::string diagnostics;
    bool ok = false;
};

// Canonical layout; keeps comments; idempotent. ok is false (and text empty) when the
// source does not parse.
FormatOutput format(const Source& src);

// The sections beyond `security` rules that `p` configures, in PDL order: "encryption",
// "ids", "qos", "topology", "sovereignty", "dns", "forward". Empty for a firewall-only
// persona.
std::vector<std::string> configured_sections(const ir::Persona& p);

// A bind block as `pdl compile -j` shows it:
// {"persona", "line", "cgroups", "users", "groups", "interfaces"} (empty lists omitted).
nlohmann::json to_json(const ir::BindRule& bind);

// Canonical one-line text of a rule, e.g. "allow egress tcp port 443 to 10.0.0.0/8".
std::string describe_rule(const ir::Rule& rule);
// "10.0.0.0/8", "2001:db8::/32"; a host route prints without the prefix length.
std::string format_cidr(const ir::Cidr& cidr);

}  // namespace pdl
