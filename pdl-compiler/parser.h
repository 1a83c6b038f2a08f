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

// The tree keeps copies of the tokens' texts.
ast::File parse(const std::vector<Token>& tokens, Diagnostics& diags);
// The tree's texts are views into the text `lexed` was lexed from, which must outlive it;
// the tokens are freed before this returns.
ast::File parse(Lexed lexed, Diagnostics& diags);

}  // namespace pdl
