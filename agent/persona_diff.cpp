// Version diffs for `persona diff`.
#include "agent/persona_diff.h"

#include <algorithm>
#include <cstdint>
#include <map>

#include <nlohmann/json.hpp>

namespace pbpf::agent {
namespace {

using nlohmann::json;

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find('\n', i);
        if (j == std::string::npos) j = text.size();
        out.push_back(text.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

// One line of an edit script: ' ' kept, '-' only in a, '+' only in b.
struct Edit {
    char op;
    size_t a, b;  // line indexes (the one of the side the line is on)
};

// Longest common subsequence of a[lo_a, hi_a) and b[lo_b, hi_b) by dynamic programming.
std::vector<Edit> lcs_edits(const std::vector<std::string>& a, const std::vector<std::string>& b,
                            size_t lo_a, size_t hi_a, size_t lo_b, size_t hi_b) {
    const size_t n = hi_a - lo_a, m = hi_b - lo_b;
    std::vector<uint32_t> len((n + 1) * (m + 1), 0);
    auto at = [&](size_t i, size_t j) -> uint32_t& { return len[i * (m + 1) + j]; };
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            at(i, j) = a[lo_a + i] == b[lo_b + j] ? at(i + 1, j + 1) + 1
                                                  : std::max(at(i + 1, j), at(i, j + 1));
    std::vector<Edit> out;
    size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && a[lo_a + i] == b[lo_b + j]) {
            out.push_back({' ', lo_a + i++, lo_b + j++});
        } else if (i < n && (j == m || at(i + 1, j) >= at(i, j + 1))) {
            out.push_back({'-', lo_a + i++, lo_b + j});  // removals first, as diff -u
        } else {
            out.push_back({'+', lo_a + i, lo_b + j++});
        }
    }
    return out;
}

std::string quote(const std::string& s) { return json(s).dump(); }

// Leaves of a JSON object as "a.b.c" -> value text.
void flatten(const json& j, const std::string& prefix, std::map<std::string, std::string>& out) {
    if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it)
            flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    } else {
        out[prefix] = j.dump();
    }
}

json parse_or_null(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    return j.is_discarded() ? json() : j;
}

}  // namespace

std::string unified_diff(const std::string& a_text, const std::string& b_text,
                         const std::string& a_name, const std::string& b_name) {
    if (a_text == b_text) return "";
    const auto a = split_lines(a_text), b = split_lines(b_text);
    size_t head = 0;
    while (head < a.size() && head < b.size() && a[head] == b[head]) ++head;
    size_t tail = 0;
    while (tail < a.size() - head && tail < b.size() - head &&
           a[a.size() - 1 - tail] == b[b.size() - 1 - tail])
        ++tail;
    std::vector<Edit> edits;
    for (size_t i = 0; i < head; ++i) edits.push_back({' ', i, i});
    const size_t mid_a = a.size() - head - tail, mid_b = b.size() - head - tail;
    if (mid_a * mid_b > 4'000'000) {
        for (size_t i = head; i < a.size() - tail; ++i) edits.push_back({'-', i, head});
        for (size_t j = head; j < b.size() - tail; ++j) edits.push_back({'+', a.size() - tail, j});
    } else {
        auto mid = lcs_edits(a, b, head, a.size() - tail, head, b.size() - tail);
        edits.insert(edits.end(), mid.begin(), mid.end());
    }
    for (size_t k = 0; k < tail; ++k)
        edits.push_back({' ', a.size() - tail + k, b.size() - tail + k});

    std::string out = "--- " + a_name + "\n+++ " + b_name + "\n";
    constexpr size_t kContext = 3;
    size_t k = 0;
    while (k < edits.size()) {
        // The next change, and the hunk around it: changes closer than 2 * context merge.
        while (k < edits.size() && edits[k].op == ' ') ++k;
        if (k == edits.size()) break;
        size_t start = k >= kContext ? k - kContext : 0;
        size_t end = k;
        size_t quiet = 0;
        for (size_t e = k; e < edits.size(); ++e) {
            if (edits[e].op == ' ') {
                if (++quiet > 2 * kContext) break;
            } else {
                quiet = 0;
                end = e;
            }
        }
        size_t stop = std::min(edits.size(), end + 1 + kContext);
        size_t a_start = edits[start].a, b_start = edits[start].b, a_count = 0, b_count = 0;
        for (size_t e = start; e < stop; ++e) {
            a_count += edits[e].op != '+';
            b_count += edits[e].op != '-';
        }
        out += "@@ -" + std::to_string(a_count ? a_start + 1 : a_start) + "," +
               std::to_string(a_count) + " +" + std::to_string(b_count ? b_start + 1 : b_start) +
               "," + std::to_string(b_count) + " @@\n";
        for (size_t e = start; e < stop; ++e) {
            const std::string& line = edits[e].op == '+' ? b[edits[e].b] : a[edits[e].a];
            out += edits[e].op;
            out += line;
            out += '\n';
        }
        k = stop;
    }
    return out;
}

std::vector<std::string> version_changes(const PersonaVersion& from, const PersonaVersion& to) {
    std::vector<std::string> out;
    // Rules: a multiset difference of their canonical texts.
    json ra = parse_or_null(from.rules_json), rb = parse_or_null(to.rules_json);
    std::map<std::string, int> count;
    if (ra.is_array())
        for (const auto& r : ra) count[r.is_string() ? r.get<std::string>() : r.dump()]--;
    if (rb.is_array())
        for (const auto& r : rb) count[r.is_string() ? r.get<std::string>() : r.dump()]++;
    for (const auto& [text, n] : count)
        for (int i = 0; i < -n; ++i) out.push_back("rule removed: " + text);
    for (const auto& [text, n] : count)
        for (int i = 0; i < n; ++i) out.push_back("rule added: " + text);
    if (from.mode != to.mode) out.push_back("mode: " + from.mode + " -> " + to.mode);
    if (from.default_ingress != to.default_ingress)
        out.push_back("default ingress: " + from.default_ingress + " -> " + to.default_ingress);
    if (from.default_egress != to.default_egress)
        out.push_back("default egress: " + from.default_egress + " -> " + to.default_egress);
    if (from.description != to.description)
        out.push_back("description: " + quote(from.description) + " -> " + quote(to.description));
    // Settings and forwards, from the lowered images.
    json ia = parse_or_null(from.image_json), ib = parse_or_null(to.image_json);
    std::map<std::string, std::string> sa, sb;
    if (ia.is_object() && ia.contains("settings")) flatten(ia["settings"], "", sa);
    if (ib.is_object() && ib.contains("settings")) flatten(ib["settings"], "", sb);
    for (const auto& [key, value] : sa) {
        auto it = sb.find(key);
        if (it == sb.end())
            out.push_back("setting removed: " + key + " (was " + value + ")");
        else if (it->second != value)
            out.push_back("setting " + key + ": " + value + " -> " + it->second);
    }
    for (const auto& [key, value] : sb)
        if (!sa.count(key)) out.push_back("setting added: " + key + " = " + value);
    const json fa = ia.is_object() ? ia.value("forwards", json::array()) : json::array();
    const json fb = ib.is_object() ? ib.value("forwards", json::array()) : json::array();
    if (fa != fb)
        out.push_back("forwards: " + std::to_string(fa.size()) + " -> " +
                      std::to_string(fb.size()) + " entries");
    if (from.filename != to.filename)
        out.push_back("file: " + from.filename + " -> " + to.filename);
    return out;
}

}  // namespace pbpf::agent
