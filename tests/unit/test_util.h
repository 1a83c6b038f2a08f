// Helpers shared by the unit tests: compile a snippet, read golden files.
#pragma once

#include <string>

#include "pdl-compiler/compiler.h"

namespace pdl::test {

inline CompileOutput compile_text(const std::string& text, const std::string& file = "t.pdl") {
    return compile(Source{file, text});
}

inline std::string diagnostics_of(const std::string& text) {
    return compile_text(text).diagnostics;
}

}  // namespace pdl::test
