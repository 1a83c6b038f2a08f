// Semantic pass: syntax trees -> checked ir::Persona list and bind rules (sets resolved,
// values and units parsed, inheritance merged, duplicates, kinds, families, ranges and
// conflicting settings checked). Reports into each file's Diagnostics; never throws.
#pragma once

#include <vector>

#include "pdl-compiler/ast.h"
#include "pdl-compiler/diagnostics.h"
#include "pdl-compiler/ir.h"

namespace pdl {

// One parsed file of an import closure.
struct Unit {
    const ast::File* file = nullptr;
    Diagnostics* diags = nullptr;
    std::vector<size_t> imports;  // units this one imports directly (all earlier in the list)
    // An import of this file could not be loaded (reported there): names it would have
    // defined are not reported as unknown a second time.
    bool incomplete = false;
};

struct CheckResult {
    std::vector<ir::Persona> personas;  // of the last unit, in source order, merged
    std::vector<ir::BindRule> binds;    // of the last unit, in source order
};

// `units`: dependencies before dependents; the last one is the file being compiled. Names
// (sets, personas) are global across the units; a file may use those of the files it
// imports, directly or not.
CheckResult check(const std::vector<Unit>& units);

}  // namespace pdl
