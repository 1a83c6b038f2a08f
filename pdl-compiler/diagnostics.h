// Diagnostics: located errors and warnings with notes, rendered like clang/bpftrace
// (file:line:col, the source line, a caret and underline). Every pass reports here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace pdl {

// A byte range of the source text. Rendering turns it into line and column.
struct Span {
    uint32_t offset = 0;
    uint32_t length = 0;
};

enum class Severity { Error, Warning };

struct Note {
    std::string message;
    std::optional<Span> span;  // rendered with its own location and caret when set
};

struct Diagnostic {
    Severity severity = Severity::Error;
    Span span;
    std::string message;
    std::vector<Note> notes;
};

class Diagnostics {
  public:
    // Beyond this many errors a file is hopeless; stop collecting so that hostile input
    // cannot make the report unbounded.
    static constexpr size_t kMaxErrors = 50;

    Diagnostics(std::string filename, const std::string& text);

    // The reference stays valid until the next report (notes are added right away).
    Diagnostic& error(Span span, std::string message);
    Diagnostic& warning(Span span, std::string message);

    size_t errors() const { return errors_; }
    size_t warnings() const { return warnings_; }
    bool too_many_errors() const { return errors_ >= kMaxErrors; }

    // Every diagnostic in source order (stable for equal positions).
    std::string render() const;

    // 1-based line and column (column counts UTF-8 code points) of a byte offset.
    std::pair<uint32_t, uint32_t> line_col(uint32_t offset) const;
    const std::string& filename() const { return filename_; }

  private:
    void render_one(std::string& out, const char* kind, Span span,
                    const std::string& message) const;

    std::string filename_;
    const std::string& text_;
    std::vector<uint32_t> line_starts_;
    std::deque<Diagnostic> diags_;
    Diagnostic discard_;  // target of reports past kMaxErrors
    size_t errors_ = 0;
    size_t warnings_ = 0;
};

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate closest to `word`, if close enough to be a plausible typo.
std::optional<std::string> nearest(const std::string& word,
                                   const std::vector<std::string>& candidates);

}  // namespace pdl
