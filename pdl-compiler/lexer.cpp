// The PDL lexer: one pass over the bytes, no backtracking, every token located.
#include "pdl-compiler/lexer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

namespace pdl {

namespace {

// Classes of bytes, looked up once per byte of the source.
constexpr uint8_t kNameChar = 1;  // letters, digits, '-' and '_'
constexpr uint8_t kWordChar = 2;  // name characters and '.', ':', '/', '[' and ']'
constexpr std::array<uint8_t, 256> kCharClass = [] {
    std::array<uint8_t, 256> table{};
    for (int c = 0; c < 256; ++c) {
        bool name = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
        // '.', ':' and '/' belong to addresses, CIDRs and rates, '-' to names and port
        // ranges, '[' and ']' to IPv6 endpoints ([fd00::1]:53).
        bool word = name || c == '.' || c == ':' || c == '/' || c == '[' || c == ']';
        table[static_cast<size_t>(c)] =
            static_cast<uint8_t>((name ? kNameChar : 0) | (word ? kWordChar : 0));
    }
    return table;
}();

bool is_word_char(unsigned char c) { return kCharClass[c] & kWordChar; }
bool is_name_char(unsigned char c) { return kCharClass[c] & kNameChar; }

bool is_arrow(const std::string& s, size_t i) {
    return s[i] == '-' && i + 1 < s.size() && s[i + 1] == '>';
}

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not valid UTF-8.
size_t utf8_length(const std::string& s, size_t i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
        unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

std::string describe_char(const std::string& s, size_t i, size_t n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char buf[32];
    if (n == 0) {
        std::snprintf(buf, sizeof buf, "byte 0x%02X (not UTF-8)", c);
        return buf;
    }
    if (n == 1 && c >= 0x21 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
    if (n == 1) {
        std::snprintf(buf, sizeof buf, "U+%04X", c);
        return buf;
    }
    return "'" + s.substr(i, n) + "'";
}

}  // namespace

bool is_identifier(std::string_view word) {
    if (word.empty()) return false;
    unsigned char c0 = static_cast<unsigned char>(word[0]);
    if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '_')) return false;
    for (unsigned char c : word)
        if (!is_name_char(c)) return false;
    return true;
}

namespace {

std::string describe(TokenKind kind, std::string_view text) {
    switch (kind) {
        case TokenKind::Word:
            return "'" + std::string(text) + "'";
        case TokenKind::SetRef:
            return "'$" + std::string(text) + "'";
        case TokenKind::String:
            return "a string";
        case TokenKind::LBrace:
            return "'{'";
        case TokenKind::RBrace:
            return "'}'";
        case TokenKind::Comma:
            return "','";
        case TokenKind::Equals:
            return "'='";
        case TokenKind::Semicolon:
            return "';'";
        case TokenKind::Arrow:
            return "'->'";
        case TokenKind::Newline:
            return "end of line";
        case TokenKind::Comment:
            return "a comment";
        case TokenKind::Eof:
            return "end of file";
    }
    return "?";
}

}  // namespace

std::string describe(const Token& tok) { return describe(tok.kind, tok.text); }
std::string describe(const Lexeme& tok) { return describe(tok.kind, tok.text); }

std::string_view TextStore::keep(std::string_view text) {
    if (text.empty()) return {};
    constexpr size_t kBlockBytes = 16384;
    if (blocks_.empty() || text.size() > capacity_ - used_) {
        capacity_ = std::max(kBlockBytes, text.size());
        blocks_.push_back(std::make_unique_for_overwrite<char[]>(capacity_));
        used_ = 0;
    }
    char* at = blocks_.back().get() + used_;
    std::memcpy(at, text.data(), text.size());
    used_ += text.size();
    return {at, text.size()};
}

std::vector<Token> lex(const std::string& text, Diagnostics& diags) {
    Lexed lexed = lex_source(text, diags);
    std::vector<Token> out;
    out.reserve(lexed.tokens.size());
    for (const Lexeme& l : lexed.tokens)
        out.push_back(Token{l.kind, std::string(l.text), l.span, l.count});
    return out;
}

Lexed lex_source(const std::string& text, Diagnostics& diags) {
    Lexed lexed;
    std::vector<Lexeme>& out = lexed.tokens;
    auto at = [&](size_t off) { return static_cast<uint32_t>(off); };
    auto push = [&out](TokenKind kind, std::string_view t, Span span, uint32_t count = 0) {
        out.push_back(Lexeme{t, span, count, kind});
    };
    if (text.size() > kMaxSourceBytes) {
        diags.error(Span{0, 0}, "file is too large (" + std::to_string(text.size()) +
                                    " bytes; the limit is " + std::to_string(kMaxSourceBytes) +
                                    ")");
        push(TokenKind::Eof, {}, Span{0, 0});
        return lexed;
    }
    // Real files have a token per 4 to 8 bytes; reserving for the denser end saves the
    // copies of a growing vector (pages never touched cost nothing).
    out.reserve(text.size() / 4 + 16);
    const std::string_view src = text;
    size_t i = 0;
    const size_t n = text.size();
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // a BOM is not content

    while (i < n && !diags.too_many_errors()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        size_t start = i;
        if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
        } else if (c == '\n') {
            uint32_t count = 0;
            while (i < n &&
                   (text[i] == '\n' || text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) {
                if (text[i] == '\n') ++count;
                ++i;
            }
            push(TokenKind::Newline, {}, Span{at(start), 1}, count);
        } else if (c == '#') {
            while (i < n && text[i] != '\n') ++i;
            size_t end = i;
            while (end > start &&
                   (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r'))
                --end;
            push(TokenKind::Comment, src.substr(start, end - start),
                 Span{at(start), at(end - start)});
        } else if (c == '{' || c == '}' || c == ',' || c == '=' || c == ';') {
            TokenKind k = c == '{'   ? TokenKind::LBrace
                          : c == '}' ? TokenKind::RBrace
                          : c == ',' ? TokenKind::Comma
                          : c == '=' ? TokenKind::Equals
                                     : TokenKind::Semicolon;
            push(k, src.substr(i, 1), Span{at(i), 1});
            ++i;
        } else if (c == '"') {
            ++i;
            const size_t body = i;
            std::string decoded;  // the value, once an escape makes it differ from the source
            bool escaped = false;
            bool closed = false;
            while (i < n && text[i] != '\n') {
                char d = text[i];
                if (d == '"') {
                    closed = true;
                    ++i;
                    break;
                }
                if (d == '\\') {
                    if (!escaped) decoded.assign(text, body, i - body);
                    escaped = true;
                    char e = i + 1 < n ? text[i + 1] : '\0';
                    if (e == '"' || e == '\\') {
                        decoded += e;
                    } else if (e == 'n') {
                        decoded += '\n';
                    } else if (e == 't') {
                        decoded += '\t';
                    } else {
                        diags.error(Span{at(i), 2},
                                    "unknown escape sequence in string; "
                                    "expected \\\", \\\\, \\n or \\t");
                        if (e == '\n' || e == '\0') {
                            ++i;
                            continue;
                        }
                    }
                    i += 2;
                    continue;
                }
                size_t len = utf8_length(text, i);
                if (len == 0) {
                    diags.error(Span{at(i), 1}, "invalid UTF-8 in string");
                    len = 1;
                }
                if (escaped) decoded.append(text, i, len);
                i += len;
            }
            if (!closed) {
                diags.error(Span{at(start), 1},
                            "unterminated string; expected '\"' before the end of the line");
                // The token is still produced, so the parser does not report a cascade.
            }
            std::string_view value =
                escaped ? lexed.store.keep(decoded) : src.substr(body, (closed ? i - 1 : i) - body);
            if (value.size() > kMaxStringBytes)
                diags.error(Span{at(start), at(i - start)},
                            "string is too long (" + std::to_string(value.size()) +
                                " bytes; the limit is " + std::to_string(kMaxStringBytes) + ")");
            push(TokenKind::String, value, Span{at(start), at(i - start)});
        } else if (c == '$') {
            ++i;
            while (i < n && is_name_char(static_cast<unsigned char>(text[i]))) ++i;
            std::string_view name = src.substr(start + 1, i - start - 1);
            if (name.empty()) {
                diags.error(Span{at(start), 1}, "expected a set name after '$'");
                continue;
            }
            if (name.size() > kMaxWordBytes) {
                diags.error(Span{at(start), at(i - start)},
                            "name is too long (" + std::to_string(name.size()) +
                                " bytes; the limit is " + std::to_string(kMaxWordBytes) + ")");
                continue;
            }
            push(TokenKind::SetRef, name, Span{at(start), at(i - start)});
        } else if (is_arrow(text, i)) {
            push(TokenKind::Arrow, src.substr(i, 2), Span{at(i), 2});
            i += 2;
        } else if (is_word_char(c)) {
            // A word ends before "->", so that `5432->443` is a forward, not one word.
            while (i < n && is_word_char(static_cast<unsigned char>(text[i])) && !is_arrow(text, i))
                ++i;
            if (i - start > kMaxWordBytes) {
                diags.error(Span{at(start), at(i - start)},
                            "token is too long (" + std::to_string(i - start) +
                                " bytes; the limit is " + std::to_string(kMaxWordBytes) + ")");
                continue;
            }
            push(TokenKind::Word, src.substr(start, i - start), Span{at(start), at(i - start)});
        } else {
            size_t len = utf8_length(text, i);
            diags.error(Span{at(i), 1}, "unexpected character " + describe_char(text, i, len));
            i += len == 0 ? 1 : len;
        }
    }
    push(TokenKind::Eof, {}, Span{at(n), 0});
    return lexed;
}

}  // namespace pdl
