// The ISO 3166-1 alpha-2 table (officially assigned codes, 2024) and PDL's country groups.
#include "pdl-compiler/countries.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace pdl {

namespace {

// Sorted, so that lookups are a binary search.
constexpr const char* kCodes[] = {
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
};

const std::vector<std::string> kEu = {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES",
                                      "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU",
                                      "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"};

std::vector<std::string> sorted_union(std::vector<std::string> a,
                                      const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    return a;
}

const std::map<std::string, std::vector<std::string>>& groups() {
    static const std::map<std::string, std::vector<std::string>> g = {
        {"EU", kEu},
        {"EEA", sorted_union(kEu, {"IS", "LI", "NO"})},
        {"EFTA", {"CH", "IS", "LI", "NO"}},
    };
    return g;
}

}  // namespace

bool is_country_code(const std::string& code) {
    return std::binary_search(
        std::begin(kCodes), std::end(kCodes), code,
        [](const auto& a, const auto& b) { return std::string_view(a) < std::string_view(b); });
}

const std::vector<std::string>* country_group(const std::string& name) {
    auto it = groups().find(name);
    return it == groups().end() ? nullptr : &it->second;
}

std::vector<std::string> country_group_names() {
    std::vector<std::string> names;
    for (const auto& [name, members] : groups()) names.push_back(name);
    return names;
}

std::optional<std::string> country_hint(const std::string& code) {
    if (code == "UK") return "the ISO 3166-1 code of the United Kingdom is GB";
    if (code == "EL") return "the ISO 3166-1 code of Greece is GR";
    std::string upper = code;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper != code && (is_country_code(upper) || country_group(upper)))
        return "country codes and groups are upper case: " + upper;
    return std::nullopt;
}

}  // namespace pdl
