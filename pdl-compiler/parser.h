// Recursive-descent parser: tokens -> ast::File. Recovers at statement level so that one
// bad statement never hides errors in the rest of the file.
#pragma once

#include <vector>

#include "pdl-compiler/ast.h"
#include "pdl-compiler/diagnostics.h"
#include "pdl-compiler/lexer.h"

namespace pdl {

// Blocks and lists may nest this deep (misplaced sections and stray braces are skipped
// brace by brace, without recursion).
constexpr int kMaxNesting = 64;

ast::File parse(const std::vector<Token>& tokens, Diagnostics& diags);

}  // namespace pdl
