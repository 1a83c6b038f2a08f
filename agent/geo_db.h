// Geo datasets: a country database (MMDB, or CSV) read into memory as a list of prefixes
// per family, each with the country it is assigned to. Pure reading: no BPF here; the
// agent's GeoManager (agent/geo.h) loads the lists into the kernel's tries.
//
// Formats, recognised by content (not by file name):
//  - MMDB (MaxMind DB, read with libmaxminddb), with either country schema: GeoLite2's
//    `country.iso_code` (falling back to `registered_country.iso_code`) or the flat
//    `country_code` of the ip-location-db packages. The search tree is walked node by
//    node (MMDB_read_node), so every prefix with data is listed, not only those looked up.
//  - CSV, one assignment per line: `CIDR,CC` or `START,END,CC` (an inclusive address
//    range, split into the fewest prefixes that cover it). Blank lines and lines starting
//    with `#` are skipped; a header line whose first field is not an address is skipped.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "maps/result.h"

namespace pbpf::agent::geo {

// A country as the bit index of pbpf_persona_settings.countries (maps/abi/settings.h):
// (c0 - 'A') * 26 + (c1 - 'A') for the upper-case code c0 c1, so 0..675.
inline constexpr uint16_t kCountryCount = 26 * 26;

// "DE" -> its index; nullopt unless the code is an ISO 3166-1 alpha-2 country (or XK),
// case-insensitively: data codes such as EU, AP, ZZ, A1, O1 are "no country".
std::optional<uint16_t> country_index(std::string_view code);
// The index's two letters ("DE").
std::string country_code(uint16_t index);

// One prefix of a dataset.
struct GeoPrefix {
    std::array<uint8_t, 16> addr{};  // network order; IPv4 in addr[0..3], the rest zero
    uint8_t len = 0;                 // prefix length: 0..32 (IPv4), 0..128 (IPv6)
    uint16_t country = 0;            // country_index()

    auto operator<=>(const GeoPrefix&) const = default;
};

struct GeoDataset {
    std::string path;
    std::string format;         // "mmdb" or "csv"
    std::string database_type;  // MMDB metadata database_type; "csv" for CSV
    uint64_t build_epoch = 0;   // MMDB metadata build_epoch; CSV: the file's mtime (seconds)
    // Sorted by (addr, len); bits past len are zero. Adjacent sibling prefixes of the same
    // country are merged into their parent, so the lists are as short as the data allows.
    // Prefixes nest only where a CSV nests them (the longest prefix then wins, as in an
    // LPM trie); an MMDB's never nest. IPv4 addresses of an IPv6 MMDB (the ::/96 subtree)
    // are listed in v4; the tree's aliases of it (::ffff:0:0/96, 2002::/16) are not listed.
    std::vector<GeoPrefix> v4;
    std::vector<GeoPrefix> v6;
    size_t skipped = 0;  // records or lines with no usable country code (counted, not fatal)
};

// Reads a dataset. Errors name the file and, for CSV, the line: a malformed line is an
// error (a dataset that is silently half read is worse than none), an unknown country code
// is only counted in `skipped`.
Result<GeoDataset> load_geo_dataset(const std::string& path);

// Parses CSV text as load_geo_dataset() parses a CSV file; `name` starts every error
// message ("name:LINE: ..."). build_epoch is left 0.
Result<GeoDataset> parse_geo_csv(std::string_view text, const std::string& name);

// The country of `addr` (network order, 4 or 16 bytes as `family` AF_INET/AF_INET6 says)
// by longest-prefix match in the dataset; nullopt when no prefix covers it.
std::optional<uint16_t> lookup(const GeoDataset& ds, int family, const uint8_t* addr);

// The IPv4 DIR-24-8 table of maps/abi/geo.h, built in memory: `top` has one entry per /24
// (1 << 24 of them; block k of the kernel's table is top[k * 256 .. k * 256 + 255]), and
// groups[g] the 256 entries of the /24 that top points at with PBPF_GEO4_GROUP | g. An entry
// is 0 (no country) or the country's index + 1.
struct Geo4Table {
    std::vector<uint16_t> top;
    std::vector<std::array<uint16_t, 256>> groups;
};

// Fills the table from `v4` (any order; where prefixes nest, the longest wins). Fails only
// when more than PBPF_GEO4_MAX_GROUPS /24s are split by longer prefixes.
Result<Geo4Table> build_geo4_table(const std::vector<GeoPrefix>& v4);

// The country the table gives an IPv4 address (network order), as lookup() does.
std::optional<uint16_t> lookup(const Geo4Table& table, const uint8_t* addr);

}  // namespace pbpf::agent::geo
