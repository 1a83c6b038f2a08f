// Lint pass: warnings about a file that compiles but probably does not say what its author
// meant (unused sets, redundant list items, duplicate, shadowed or ineffective rules, an
// audit persona with nothing to audit). It runs after the semantic pass, only on a file
// without errors, and reads the checked IR plus the syntax tree for locations. Every
// warning the compiler reports comes from here (see docs/pdl.md, "Lint warnings").
#pragma once

#include <vector>

#include "pdl-compiler/ast.h"
#include "pdl-compiler/diagnostics.h"
#include "pdl-compiler/ir.h"

namespace pdl {

struct LintOptions {
    // Report each finding as an error (its message ends in " [--werror]") instead of a
    // warning, so that the file compiles to nothing.
    bool werror = false;
};

// `personas` is what check() returned for `file` (one per persona declaration, in order).
void lint(const ast::File& file, const std::vector<ir::Persona>& personas, Diagnostics& diags,
          const LintOptions& options = {});

}  // namespace pdl
