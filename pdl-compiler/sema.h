// Semantic pass: ast::File -> checked ir::Persona list (sets resolved, values parsed,
// duplicates, kinds and families checked). Reports into Diagnostics; never throws.
#pragma once

#include <vector>

#include "pdl-compiler/ast.h"
#include "pdl-compiler/diagnostics.h"
#include "pdl-compiler/ir.h"

namespace pdl {

std::vector<ir::Persona> check(const ast::File& file, Diagnostics& diags);

}  // namespace pdl
