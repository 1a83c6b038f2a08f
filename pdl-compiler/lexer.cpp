// The PDL lexer: one pass over the bytes, no backtracking, every token located.
#include "pdl-compiler/lexer.h"

#include <cstdio>

namespace pdl {

namespace {

bool is_word_char(unsigned char c) {
    // '.', ':' and '/' belong to addresses, CIDRs and rates, '-' to names and port ranges,
    // '[' and ']' to IPv6 endpoints ([fd00::1]:53).
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':' || c == '/' || c == '[' || c == ']';
}

bool is_arrow(const std::string& s, size_t i) {
    return s[i] == '-' && i + 1 < s.size() && s[i + 1] == '>';
}

bool is_name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
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

bool is_identifier(const std::string& word) {
    if (word.empty()) return false;
    unsigned char c0 = static_cast<unsigned char>(word[0]);
    if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '_')) return false;
    for (unsigned char c : word)
        if (!is_name_char(c)) return false;
    return true;
}

std::string describe(const Token& tok) {
    switch (tok.kind) {
        case TokenKind::Word:
            return "'" + tok.text + "'";
        case TokenKind::SetRef:
            return "'$" + tok.text + "'";
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

std::vector<Token> lex(const std::string& text, Diagnostics& diags) {
    std::vector<Token> out;
    auto at = [&](size_t off) { return static_cast<uint32_t>(off); };
    if (text.size() > kMaxSourceBytes) {
        diags.error(Span{0, 0}, "file is too large (" + std::to_string(text.size()) +
                                    " bytes; the limit is " + std::to_string(kMaxSourceBytes) +
                                    ")");
        out.push_back(Token{TokenKind::Eof, "", Span{0, 0}, 0});
        return out;
    }
    size_t i = 0;
    const size_t n = text.size();
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // a BOM is not content

    while (i < n && !diags.too_many_errors()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        size_t start = i;
        if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
        } else if (c == '\n') {
            unsigned count = 0;
            while (i < n &&
                   (text[i] == '\n' || text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) {
                if (text[i] == '\n') ++count;
                ++i;
            }
            out.push_back(Token{TokenKind::Newline, "", Span{at(start), 1}, count});
        } else if (c == '#') {
            while (i < n && text[i] != '\n') ++i;
            size_t end = i;
            while (end > start &&
                   (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r'))
                --end;
            out.push_back(Token{TokenKind::Comment, text.substr(start, end - start),
                                Span{at(start), at(end - start)}, 0});
        } else if (c == '{' || c == '}' || c == ',' || c == '=' || c == ';') {
            TokenKind k = c == '{'   ? TokenKind::LBrace
                          : c == '}' ? TokenKind::RBrace
                          : c == ',' ? TokenKind::Comma
                          : c == '=' ? TokenKind::Equals
                                     : TokenKind::Semicolon;
            out.push_back(Token{k, std::string(1, static_cast<char>(c)), Span{at(i), 1}, 0});
            ++i;
        } else if (c == '"') {
            ++i;
            std::string value;
            bool closed = false;
            while (i < n && text[i] != '\n') {
                char d = text[i];
                if (d == '"') {
                    closed = true;
                    ++i;
                    break;
                }
                if (d == '\\') {
                    char e = i + 1 < n ? text[i + 1] : '\0';
                    if (e == '"' || e == '\\') {
                        value += e;
                    } else if (e == 'n') {
                        value += '\n';
                    } else if (e == 't') {
                        value += '\t';
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
                value.append(text, i, len);
                i += len;
            }
            if (!closed) {
                diags.error(Span{at(start), 1},
                            "unterminated string; expected '\"' before the end of the line");
                // The token is still produced, so the parser does not report a cascade.
            }
            if (value.size() > kMaxStringBytes)
                diags.error(Span{at(start), at(i - start)},
                            "string is too long (" + std::to_string(value.size()) +
                                " bytes; the limit is " + std::to_string(kMaxStringBytes) + ")");
            out.push_back(Token{TokenKind::String, value, Span{at(start), at(i - start)}, 0});
        } else if (c == '$') {
            ++i;
            while (i < n && is_name_char(static_cast<unsigned char>(text[i]))) ++i;
            std::string name = text.substr(start + 1, i - start - 1);
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
            out.push_back(Token{TokenKind::SetRef, name, Span{at(start), at(i - start)}, 0});
        } else if (is_arrow(text, i)) {
            out.push_back(Token{TokenKind::Arrow, "->", Span{at(i), 2}, 0});
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
            out.push_back(Token{TokenKind::Word, text.substr(start, i - start),
                                Span{at(start), at(i - start)}, 0});
        } else {
            size_t len = utf8_length(text, i);
            diags.error(Span{at(i), 1}, "unexpected character " + describe_char(text, i, len));
            i += len == 0 ? 1 : len;
        }
    }
    out.push_back(Token{TokenKind::Eof, "", Span{at(n), 0}, 0});
    return out;
}

}  // namespace pdl
