// GeoManager: the geo dataset the kernel enforces sovereignty with (pbpf_geo4 and pbpf_geo,
// see maps/abi/geo.h). It reads the configured file (agent/geo_db.h), fills a new IPv4
// table and a new IPv6 trie, and flips the two slots to them: a reload has no gap, and a
// failed one leaves the maps in force untouched. They are pinned with the maps, so they
// keep enforcing across agent restarts; a restarted agent adopts them when they were made
// from the configured file as that file is now (path, size, mtime, recorded in
// <state_dir>/geo.json), and loads the file again otherwise (also when only a trie of both
// families, from an agent before the IPv4 table, is in force).
//
// Also the migration gate: may a persona's workload move to a host of a given country?
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/config.h"
#include "maps/abi/settings.h"
#include "maps/fd.h"
#include "maps/result.h"

namespace pbpf::agent {

class ApiServer;
class Loader;
class PersonaManager;

// What is known about the dataset in force, as GET /v1/geo shows it.
struct GeoInfo {
    std::string path;           // the file it was read from
    std::string format;         // "mmdb" or "csv"
    std::string database_type;  // MMDB metadata; "csv"
    uint64_t build_epoch = 0;   // seconds
    uint64_t file_size = 0;
    int64_t file_mtime_ns = 0;
    uint64_t ipv4_prefixes = 0;
    uint64_t ipv6_prefixes = 0;
    uint64_t skipped = 0;
    int64_t loaded_at = 0;    // wall clock, seconds
    double load_ms = 0;       // read + fill, milliseconds
    uint64_t generation = 0;  // swaps so far (persisted)

    nlohmann::json to_json() const;
    static GeoInfo from_json(const nlohmann::json& j);
};

namespace geo {
struct GeoDataset;
}
// The kernel's form of a dataset (maps/abi/geo.h), complete before anyone sees it. Also
// used by the tests and the benchmarks.
struct GeoMaps {
    Fd table4;             // the IPv4 DIR-24-8 table: the inner map of pbpf_geo4
    Fd trie6;              // the IPv6 LPM trie: the inner map of pbpf_geo
    size_t v4_groups = 0;  // IPv4 /24s split by longer prefixes (blocks after the first 65,536)
};
Result<GeoMaps> build_geo_maps(const geo::GeoDataset& ds);
// Points pbpf_geo4's and pbpf_geo's slots at `maps` (two writes; each family switches at
// once, IPv4 first).
Result<void> install_geo_maps(int geo4_outer_fd, int geo_outer_fd, const GeoMaps& maps);

// The gate's answer for one persona version and one destination host country.
struct GateAnswer {
    bool allowed = true;
    bool violation = false;  // outside the persona's countries (allowed anyway with `log`)
    std::string reason;
};
// The decision, from the persona's settings (pure: unit-tested). `country` is an ISO code
// in upper case, or "" for a host whose country is not known.
GateAnswer migration_gate(const pbpf_persona_settings& settings, const std::string& country);

class GeoManager {
  public:
    GeoManager(Loader& loader, GeoConfig cfg, std::string state_dir);
    GeoManager(const GeoManager&) = delete;
    GeoManager& operator=(const GeoManager&) = delete;

    // Adopts the pinned maps, or loads the configured file when they were made from
    // another file (or the file changed, or only an older agent's trie is pinned), or
    // when `needed` (a stored persona has a country list). Without either nothing is read:
    // the dataset is loaded when the first persona that needs it is applied
    // (ensure_loaded). Never fails the agent: a missing or bad file is logged and reported
    // by info() (`error`), and whatever maps were in force keep enforcing (none: every
    // destination is of unknown country).
    void start(bool needed);
    // Loads the configured file unless an IPv4 table is in force (an older agent's trie
    // alone is replaced when the file loads, and stays when it does not). The error says
    // why there is no dataset (the caller reports it as a warning: enforcement treats
    // every destination as of unknown country meanwhile).
    Result<void> ensure_loaded();

    // Reads the configured file again into a new table and trie and swaps them in (no
    // gap), then bumps the policy epoch so tracked flows are judged once more against the
    // new data. On any error the maps in force stay, and the error says what was wrong
    // with the file.
    Result<nlohmann::json> reload();

    nlohmann::json info() const;
    // The country the kernel's maps give `ip` (400 for a malformed address).
    nlohmann::json lookup(const std::string& ip) const;
    // GET /v1/geo, GET /v1/geo/lookup?ip=, POST /v1/geo/reload (admin),
    // GET /v1/migration/gate?persona=NAME[&version=N][&country=CC] (country defaults to
    // this host's, [geo] host_country).
    void add_routes(ApiServer& server, PersonaManager& personas);

  private:
    Result<nlohmann::json> load_locked(const char* why);
    Result<void> adopt_locked();
    void save_info_locked() const;
    bool in_force() const { return table4_.valid() || trie_.valid(); }

    Loader& loader_;
    GeoConfig cfg_;
    std::string state_file_;
    mutable std::mutex mu_;
    Fd table4_;                    // the IPv4 table in force (ours or adopted); -1: none
    Fd trie_;                      // the trie in force (ours or adopted); -1: none
    std::optional<GeoInfo> info_;  // of table4_ and trie_
    std::string last_error_;       // of the last start/reload that failed; "" after success
};

}  // namespace pbpf::agent
