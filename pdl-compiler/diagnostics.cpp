// Rendering of diagnostics in the clang/bpftrace layout, and typo suggestions.
#include "pdl-compiler/diagnostics.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace pdl {

namespace {

// Lines longer than this are not echoed: a caret under column 300000 helps nobody and
// a hostile one-line file would make every diagnostic megabytes long.
constexpr size_t kMaxEchoedLine = 1000;

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

Diagnostics::Diagnostics(std::string filename, const std::string& text)
    : filename_(std::move(filename)), text_(text) {
    line_starts_.push_back(0);
    const char* begin = text_.data();
    const char* end = begin + text_.size();
    for (const char* p = begin;;) {
        p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        if (!p) break;
        line_starts_.push_back(static_cast<uint32_t>(++p - begin));
    }
}

Diagnostic& Diagnostics::error(Span span, std::string message) {
    ++errors_;
    if (errors_ > kMaxErrors) {
        discard_ = Diagnostic{};
        return discard_;
    }
    if (errors_ == kMaxErrors) message += " (too many errors; stopping here)";
    diags_.push_back(Diagnostic{Severity::Error, span, std::move(message), {}});
    return diags_.back();
}

Diagnostic& Diagnostics::warning(Span span, std::string message) {
    ++warnings_;
    diags_.push_back(Diagnostic{Severity::Warning, span, std::move(message), {}});
    return diags_.back();
}

std::pair<uint32_t, uint32_t> Diagnostics::line_col(uint32_t offset) const {
    offset = std::min<uint32_t>(offset, static_cast<uint32_t>(text_.size()));
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line = static_cast<size_t>(it - line_starts_.begin());  // 1-based
    uint32_t start = line_starts_[line - 1];
    uint32_t col = 1;
    for (uint32_t i = start; i < offset; ++i)
        if (!is_continuation(static_cast<unsigned char>(text_[i]))) ++col;
    return {static_cast<uint32_t>(line), col};
}

void Diagnostics::render_one(std::string& out, const char* kind, Span span,
                             const std::string& message) const {
    auto [line, col] = line_col(span.offset);
    out += filename_ + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + kind + ": " +
           message + "\n";

    size_t start = line_starts_[line - 1];
    size_t end = text_.find('\n', start);
    if (end == std::string::npos) end = text_.size();
    if (end > start && text_[end - 1] == '\r') --end;
    if (end - start > kMaxEchoedLine) return;
    out.append(text_, start, end - start);
    out += "\n";

    // Tabs are copied so the caret lines up whatever the terminal's tab width.
    std::string caret;
    size_t off = std::min<size_t>(span.offset, text_.size());
    for (size_t i = start; i < off && i < end; ++i) {
        unsigned char c = static_cast<unsigned char>(text_[i]);
        if (is_continuation(c)) continue;
        caret += c == '\t' ? '\t' : ' ';
    }
    caret += '^';
    size_t span_end = std::min<size_t>(off + span.length, end);
    bool first = true;
    for (size_t i = off; i < span_end; ++i) {
        if (is_continuation(static_cast<unsigned char>(text_[i]))) continue;
        if (!first) caret += '~';
        first = false;
    }
    out += caret + "\n";
}

std::string Diagnostics::render() const {
    std::vector<const Diagnostic*> sorted;
    for (const auto& d : diags_) sorted.push_back(&d);
    std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic* a, const Diagnostic* b) {
        return a->span.offset < b->span.offset;
    });
    std::string out;
    for (const Diagnostic* d : sorted) {
        render_one(out, d->severity == Severity::Error ? "error" : "warning", d->span, d->message);
        for (const Note& n : d->notes) {
            if (n.span)
                render_one(out, "note", *n.span, n.message);
            else
                out += "note: " + n.message + "\n";
        }
    }
    return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
    // Optimal string alignment: a swap of two neighbours ("tpc") costs one edit, the
    // most common typo of short keywords.
    std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
    std::iota(prev.begin(), prev.end(), 0);
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                cur[j] = std::min(cur[j], prev2[j - 2] + 1);
        }
        prev2 = prev;
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

std::optional<std::string> nearest(const std::string& word,
                                   const std::vector<std::string>& candidates) {
    // Long garbage tokens are not typos; skip the quadratic work too.
    if (word.size() > 64) return std::nullopt;
    std::optional<std::string> best;
    size_t best_d = 0;
    for (const auto& c : candidates) {
        size_t d = edit_distance(word, c);
        size_t limit = std::max<size_t>(1, std::min(word.size(), c.size()) / 3);
        if (d > limit || d == 0) continue;
        if (!best || d < best_d) {
            best = c;
            best_d = d;
        }
    }
    return best;
}

}  // namespace pdl
