// Country codes for `sovereignty`: ISO 3166-1 alpha-2 and the groups PDL expands
// (docs/pdl.md, "Country groups").
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pdl {

// An officially assigned ISO 3166-1 alpha-2 code (upper case), or XK (Kosovo: user
// assigned, but used by every geo dataset).
bool is_country_code(const std::string& code);

// The members of a group (EU, EEA, EFTA), sorted; nullptr when `name` is not a group.
const std::vector<std::string>* country_group(const std::string& name);
std::vector<std::string> country_group_names();

// A hint for a code that is not ISO but is often written for one ("UK" -> use GB),
// or for lower case; nullopt when there is none.
std::optional<std::string> country_hint(const std::string& code);

}  // namespace pdl
