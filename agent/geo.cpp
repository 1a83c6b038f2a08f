// GeoManager: the geo maps in force, their reload without a gap, and the migration gate.
#include "agent/geo.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "agent/api_error.h"
#include "agent/api_server.h"
#include "agent/geo_db.h"
#include "agent/loader.h"
#include "agent/persona_manager.h"
#include "maps/abi/geo.h"
#include "maps/abi/limits.h"
#include "maps/abi/policy.h"
#include "maps/map_image.h"

namespace pbpf::agent {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string iso_time(int64_t seconds) {
    if (seconds <= 0) return "";
    std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

struct FileStamp {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
};

Result<FileStamp> stamp_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return sys_error("geo database " + path);
    if (!S_ISREG(st.st_mode)) return Error{EINVAL, "geo database " + path + " is not a file"};
    return FileStamp{static_cast<uint64_t>(st.st_size),
                     int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
}

// The inner map the outer map's slot 0 points at, if any.
Result<Fd> slot_map(int outer_fd, const char* outer_name) {
    uint32_t zero = 0, id = 0;
    if (bpf_map_lookup_elem(outer_fd, &zero, &id) != 0) {
        if (errno == ENOENT) return Fd();
        return sys_error(std::string("read ") + outer_name);
    }
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0)
        return sys_error(std::string("open the map in ") + outer_name + " (map id " +
                         std::to_string(id) + ")");
    return Fd(fd);
}

// The kernel's own count of the memory a map holds ("memlock" in its fdinfo), 0 if unknown.
uint64_t map_memory(int fd) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string key;
    uint64_t value = 0;
    while (in >> key) {
        if (key == "memlock:") {
            in >> value;
            return value;
        }
        std::string rest;
        std::getline(in, rest);
    }
    return 0;
}

pbpf_geo_key key_of(uint8_t family, const uint8_t* addr, unsigned len) {
    pbpf_geo_key k{};
    k.prefixlen = PBPF_GEO_FAMILY_BITS + len;
    k.family = family;
    std::memcpy(k.addr, addr, family == PBPF_FAMILY_IPV4 ? 4 : 16);
    return k;
}

pbpf_geo_value value_of(uint16_t country) {
    pbpf_geo_value v{};
    v.country = country;
    const std::string code = geo::country_code(country);
    v.code[0] = static_cast<uint8_t>(code[0]);
    v.code[1] = static_cast<uint8_t>(code[1]);
    return v;
}

}  // namespace

namespace {

Result<Fd> build_trie6(const geo::GeoDataset& ds) {
    const size_t n = ds.v6.size();
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "pbpf_geo_trie", sizeof(pbpf_geo_key),
                            sizeof(pbpf_geo_value), static_cast<uint32_t>(std::max<size_t>(n, 1)),
                            &opts);
    if (fd < 0) return sys_error("create geo trie (" + std::to_string(n) + " prefixes)", fd);
    Fd trie(fd);
    for (const auto& p : ds.v6) {
        const pbpf_geo_key k = key_of(PBPF_FAMILY_IPV6, p.addr.data(), p.len);
        const pbpf_geo_value v = value_of(p.country);
        if (bpf_map_update_elem(trie.get(), &k, &v, BPF_ANY) != 0) {
            char text[INET6_ADDRSTRLEN] = "?";
            inet_ntop(AF_INET6, p.addr.data(), text, sizeof text);
            return sys_error("write geo prefix " + std::string(text) + "/" + std::to_string(p.len));
        }
    }
    return trie;
}

// Writes `count` blocks starting at block `first`, in batches.
Result<void> write_blocks(int fd, uint32_t first, const uint16_t* entries, size_t count) {
    constexpr size_t kBatch = 4096;
    std::vector<uint32_t> keys(std::min(count, kBatch));
    for (size_t done = 0; done < count;) {
        const size_t n = std::min(kBatch, count - done);
        for (size_t i = 0; i < n; ++i) keys[i] = first + static_cast<uint32_t>(done + i);
        uint32_t written = static_cast<uint32_t>(n);
        if (bpf_map_update_batch(fd, keys.data(), entries + done * 256, &written, nullptr) != 0)
            return sys_error("write geo IPv4 blocks " + std::to_string(first + done) + ".." +
                             std::to_string(first + done + n - 1));
        done += n;
    }
    return {};
}

Result<Fd> build_table4(const geo::GeoDataset& ds, size_t& groups) {
    auto table = geo::build_geo4_table(ds.v4);
    if (!table) return Error{table.error().err, ds.path + ": " + table.error().message};
    groups = table->groups.size();
    const size_t blocks = PBPF_GEO4_TOP_BLOCKS + groups;
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "pbpf_geo4_tbl", sizeof(uint32_t),
                            sizeof(pbpf_geo4_block), static_cast<uint32_t>(blocks), &opts);
    if (fd < 0)
        return sys_error("create geo IPv4 table (" + std::to_string(blocks) + " blocks)", fd);
    Fd map(fd);
    // The array starts zeroed (no country): only blocks with data are written.
    const uint16_t* top = table->top.data();
    for (uint32_t b = 0; b < PBPF_GEO4_TOP_BLOCKS;) {
        auto empty = [&](uint32_t k) {
            const uint16_t* e = top + size_t{k} * 256;
            return std::all_of(e, e + 256, [](uint16_t x) { return x == 0; });
        };
        if (empty(b)) {
            ++b;
            continue;
        }
        uint32_t end = b + 1;
        while (end < PBPF_GEO4_TOP_BLOCKS && !empty(end)) ++end;
        if (auto r = write_blocks(map.get(), b, top + size_t{b} * 256, end - b); !r)
            return r.error();
        b = end;
    }
    if (groups != 0) {
        static_assert(sizeof(std::array<uint16_t, 256>) == sizeof(pbpf_geo4_block));
        if (auto r =
                write_blocks(map.get(), PBPF_GEO4_TOP_BLOCKS, table->groups.front().data(), groups);
            !r)
            return r.error();
    }
    return map;
}

}  // namespace

Result<GeoMaps> build_geo_maps(const geo::GeoDataset& ds) {
    const size_t n = ds.v4.size() + ds.v6.size();
    if (n > PBPF_GEO_MAX_PREFIXES)
        return Error{E2BIG, ds.path + " has " + std::to_string(n) + " prefixes; at most " +
                                std::to_string(PBPF_GEO_MAX_PREFIXES) + " are supported"};
    GeoMaps maps;
    auto table = build_table4(ds, maps.v4_groups);
    if (!table) return table.error();
    auto trie = build_trie6(ds);
    if (!trie) return trie.error();
    maps.table4 = std::move(*table);
    maps.trie6 = std::move(*trie);
    return maps;
}

Result<void> install_geo_maps(int geo4_outer_fd, int geo_outer_fd, const GeoMaps& maps) {
    const uint32_t zero = 0;
    auto before = slot_map(geo4_outer_fd, "pbpf_geo4");  // to put back if the trie fails
    if (!before) return before.error();
    const uint32_t table = static_cast<uint32_t>(maps.table4.get());
    if (bpf_map_update_elem(geo4_outer_fd, &zero, &table, BPF_ANY) != 0)
        return sys_error("swap in the geo IPv4 table");
    const uint32_t trie = static_cast<uint32_t>(maps.trie6.get());
    if (bpf_map_update_elem(geo_outer_fd, &zero, &trie, BPF_ANY) != 0) {
        const int err = errno;
        const uint32_t old = static_cast<uint32_t>(before->get());
        if (before->valid())
            (void)bpf_map_update_elem(geo4_outer_fd, &zero, &old, BPF_ANY);
        else
            (void)bpf_map_delete_elem(geo4_outer_fd, &zero);
        return Error{err, std::string("swap in the geo IPv6 trie: ") + std::strerror(err) +
                              " (the IPv4 table in force was put back)"};
    }
    return {};
}

namespace {

bool settings_list(const pbpf_persona_settings& s, uint16_t index) {
    return (s.countries[index / 64] >> (index % 64)) & 1;
}

}  // namespace

json GeoInfo::to_json() const {
    return {{"path", path},
            {"format", format},
            {"database_type", database_type},
            {"build_epoch", build_epoch},
            {"file_size", file_size},
            {"file_mtime_ns", file_mtime_ns},
            {"ipv4_prefixes", ipv4_prefixes},
            {"ipv6_prefixes", ipv6_prefixes},
            {"skipped", skipped},
            {"loaded_at", loaded_at},
            {"load_ms", load_ms},
            {"generation", generation}};
}

GeoInfo GeoInfo::from_json(const json& j) {
    GeoInfo i;
    i.path = j.value("path", "");
    i.format = j.value("format", "");
    i.database_type = j.value("database_type", "");
    i.build_epoch = j.value("build_epoch", uint64_t{0});
    i.file_size = j.value("file_size", uint64_t{0});
    i.file_mtime_ns = j.value("file_mtime_ns", int64_t{0});
    i.ipv4_prefixes = j.value("ipv4_prefixes", uint64_t{0});
    i.ipv6_prefixes = j.value("ipv6_prefixes", uint64_t{0});
    i.skipped = j.value("skipped", uint64_t{0});
    i.loaded_at = j.value("loaded_at", int64_t{0});
    i.load_ms = j.value("load_ms", 0.0);
    i.generation = j.value("generation", uint64_t{0});
    return i;
}

GateAnswer migration_gate(const pbpf_persona_settings& s, const std::string& country) {
    GateAnswer a;
    if (!(s.flags & PBPF_SETTINGS_F_SOVEREIGNTY)) {
        a.reason = "the persona sets no country list";
        return a;
    }
    const bool deny_list = s.flags & PBPF_SETTINGS_F_SOV_DENY_LIST;
    const bool log_only = s.flags & PBPF_SETTINGS_F_SOV_LOG_ONLY;
    auto index = country.empty() ? std::nullopt : geo::country_index(country);
    if (!index) {
        a.violation = !(s.flags & PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW);
        a.reason = a.violation
                       ? "the host's country is not known and the persona has `unknown deny`"
                       : "the host's country is not known; the persona has `unknown allow`";
    } else {
        const bool listed = settings_list(s, *index);
        a.violation = deny_list ? listed : !listed;
        if (a.violation)
            a.reason = country + (deny_list ? " is in the persona's denied countries"
                                            : " is not among the persona's allowed countries");
        else
            a.reason = country + (deny_list ? " is not among the persona's denied countries"
                                            : " is among the persona's allowed countries");
    }
    if (a.violation && log_only) a.reason += " (`on-violation log`: allowed, reported)";
    a.allowed = !a.violation || log_only;
    return a;
}

GeoManager::GeoManager(Loader& loader, GeoConfig cfg, std::string state_dir)
    : loader_(loader), cfg_(std::move(cfg)), state_file_(state_dir + "/geo.json") {}

void GeoManager::start(bool needed) {
    std::lock_guard lock(mu_);
    if (auto r = adopt_locked(); !r) spdlog::warn("geo: {}", r.error().what());
    if (info_) {
        spdlog::info("geo: kept the dataset in force ({}, {} IPv4 and {} IPv6 prefixes)",
                     info_->path, info_->ipv4_prefixes, info_->ipv6_prefixes);
        return;
    }
    if (!needed && !in_force()) {
        spdlog::info("geo: no persona has a country list; {} is read when one does", cfg_.database);
        return;
    }
    if (auto r = load_locked("start"); !r) {
        last_error_ = r.error().what();
        spdlog::warn("geo: {}; {}", last_error_,
                     in_force() ? "the dataset in force stays"
                                : "no dataset: every destination is of unknown country");
    }
}

// The maps in force, and whether they are the configured file as it is now.
Result<void> GeoManager::adopt_locked() {
    auto table = slot_map(loader_.geo4_fd(), "pbpf_geo4");
    if (!table) return table.error();
    auto trie = slot_map(loader_.geo_fd(), "pbpf_geo");
    if (!trie) return trie.error();
    table4_ = std::move(*table);
    trie_ = std::move(*trie);
    if (!in_force()) return {};
    // A trie without a table: an agent before the IPv4 table made it (for both families,
    // which the programs still use); it keeps enforcing until start() has loaded the file.
    if (!table4_.valid()) return {};
    std::ifstream in(state_file_);
    if (!in) return {};
    GeoInfo recorded;
    try {
        recorded = GeoInfo::from_json(json::parse(in));
    } catch (const std::exception& e) {
        return Error{EINVAL, state_file_ + ": " + e.what()};
    }
    info_ = recorded;  // describes the maps whether or not they are still current
    auto now = stamp_of(cfg_.database);
    if (!now || recorded.path != cfg_.database || recorded.file_size != now->size ||
        recorded.file_mtime_ns != now->mtime_ns)
        info_.reset();  // stale: start() loads the file
    return {};
}

Result<json> GeoManager::load_locked(const char* why) {
    const auto t0 = std::chrono::steady_clock::now();
    auto stamp = stamp_of(cfg_.database);
    if (!stamp) return stamp.error();
    auto ds = geo::load_geo_dataset(cfg_.database);
    if (!ds) return ds.error();
    auto maps = build_geo_maps(*ds);
    if (!maps) return maps.error();
    // The flip: one write per family, every new lookup sees the new maps.
    if (auto r = install_geo_maps(loader_.geo4_fd(), loader_.geo_fd(), *maps); !r) return r.error();
    if (auto e = loader_.bump_policy_epoch(); !e)
        spdlog::warn("geo: bump policy epoch: {}", e.error().what());
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    GeoInfo info;
    info.path = cfg_.database;
    info.format = ds->format;
    info.database_type = ds->database_type;
    info.build_epoch = ds->build_epoch;
    info.file_size = stamp->size;
    info.file_mtime_ns = stamp->mtime_ns;
    info.ipv4_prefixes = ds->v4.size();
    info.ipv6_prefixes = ds->v6.size();
    info.skipped = ds->skipped;
    info.loaded_at = static_cast<int64_t>(std::time(nullptr));
    info.load_ms = ms;
    info.generation = (info_ ? info_->generation : 0) + 1;
    table4_ = std::move(maps->table4);
    trie_ = std::move(maps->trie6);
    info_ = info;
    last_error_.clear();
    save_info_locked();
    spdlog::info(
        "geo: {} {} ({} IPv4 and {} IPv6 prefixes, {} records without a country) in "
        "{:.0f} ms",
        why == std::string("start") ? "loaded" : "reloaded", info.path, info.ipv4_prefixes,
        info.ipv6_prefixes, info.skipped, ms);
    return info.to_json();
}

void GeoManager::save_info_locked() const {
    if (!info_) return;
    const std::string tmp = state_file_ + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << info_->to_json().dump(2) << "\n";
        if (!out) {
            spdlog::warn("geo: write {}: {}", tmp, std::strerror(errno));
            return;
        }
    }
    std::error_code ec;
    fs::rename(tmp, state_file_, ec);
    if (ec) spdlog::warn("geo: rename {}: {}", tmp, ec.message());
}

Result<void> GeoManager::ensure_loaded() {
    std::lock_guard lock(mu_);
    if (table4_.valid()) return {};
    if (auto r = load_locked("start"); !r) {
        last_error_ = r.error().what();
        if (trie_.valid()) {  // an older agent's trie of both families
            spdlog::warn("geo: {}; the dataset in force stays", last_error_);
            return {};
        }
        return Error{r.error().err, "no geo dataset (" + r.error().message +
                                        "): every destination counts as of unknown country"};
    }
    return {};
}

Result<json> GeoManager::reload() {
    std::lock_guard lock(mu_);
    auto r = load_locked("reload");
    if (!r) last_error_ = r.error().what();
    return r;
}

json GeoManager::info() const {
    std::lock_guard lock(mu_);
    json j;
    j["database"] = cfg_.database;
    j["host_country"] = cfg_.host_country.empty() ? json() : json(cfg_.host_country);
    j["loaded"] = in_force();
    if (info_) {
        j["dataset"] = info_->to_json();
        j["dataset"]["build_date"] = iso_time(static_cast<int64_t>(info_->build_epoch));
        j["dataset"]["loaded_at_text"] = iso_time(info_->loaded_at);
        j["dataset"]["current"] = info_->path == cfg_.database;
    } else if (in_force()) {
        j["dataset"] = json{{"path", "unknown (maps left by another agent, without a record)"}};
    }
    if (in_force()) {
        const uint64_t v4 = table4_.valid() ? map_memory(table4_.get()) : 0;
        const uint64_t v6 = trie_.valid() ? map_memory(trie_.get()) : 0;
        j["memory_bytes"] = v4 + v6;
        j["memory_bytes_ipv4_table"] = v4;
        j["memory_bytes_ipv6_trie"] = v6;
    }
    if (!last_error_.empty()) j["error"] = last_error_;
    return j;
}

json GeoManager::lookup(const std::string& ip) const {
    uint8_t addr[16] = {};
    uint8_t family = 0;
    if (inet_pton(AF_INET, ip.c_str(), addr) == 1)
        family = PBPF_FAMILY_IPV4;
    else if (inet_pton(AF_INET6, ip.c_str(), addr) == 1)
        family = PBPF_FAMILY_IPV6;
    else
        throw ApiError(400, "'" + ip + "' is not an IPv4 or IPv6 address");
    std::lock_guard lock(mu_);
    json j = {{"ip", ip}, {"family", family == PBPF_FAMILY_IPV4 ? "ipv4" : "ipv6"}};
    if (!in_force()) {
        j["country"] = nullptr;
        j["reason"] = "no geo dataset is loaded";
        return j;
    }
    // As the programs look it up (sov_violation in bpf/persona.bpf.c).
    uint16_t entry = 0;  // country index + 1; 0: none
    auto read = [&](int fd, const void* key, void* value, const char* what) {
        if (bpf_map_lookup_elem(fd, key, value) == 0) return true;
        if (errno != ENOENT)
            throw ApiError(500, sys_error("look up " + ip + " in the geo " + what).what());
        return false;
    };
    if (family == PBPF_FAMILY_IPV4 && table4_.valid()) {
        pbpf_geo4_block block{};
        uint32_t i = uint32_t{addr[0]} << 8 | addr[1];
        if (read(table4_.get(), &i, &block, "IPv4 table")) {
            entry = block.entry[addr[2]];
            if (entry & PBPF_GEO4_GROUP) {
                i = PBPF_GEO4_TOP_BLOCKS + (entry & ~PBPF_GEO4_GROUP);
                entry = read(table4_.get(), &i, &block, "IPv4 table") ? block.entry[addr[3]] : 0;
            }
        }
    } else if (trie_.valid()) {
        const pbpf_geo_key k = key_of(family, addr, family == PBPF_FAMILY_IPV4 ? 32 : 128);
        pbpf_geo_value v{};
        if (read(trie_.get(), &k, &v, "trie")) entry = static_cast<uint16_t>(v.country + 1);
    }
    if (entry == 0 || entry > geo::kCountryCount) {
        j["country"] = nullptr;
        j["reason"] = "the dataset has no country for this address";
        return j;
    }
    j["country"] = geo::country_code(static_cast<uint16_t>(entry - 1));
    return j;
}

void GeoManager::add_routes(ApiServer& server, PersonaManager& personas) {
    server.add_route(
        "GET", "/v1/geo", [this](const httplib::Request&) { return info(); }, false);
    server.add_route(
        "GET", "/v1/geo/lookup",
        [this](const httplib::Request& req) {
            if (!req.has_param("ip")) throw ApiError(400, "missing ?ip=ADDRESS");
            return lookup(req.get_param_value("ip"));
        },
        false);
    server.add_route(
        "POST", "/v1/geo/reload",
        [this](const httplib::Request&) {
            auto r = reload();
            if (!r) throw ApiError(422, r.error().what() + "; the dataset in force stays");
            return json{{"reloaded", true}, {"dataset", *r}};
        },
        true, "geo-reload");
    server.add_route("GET", "/v1/migration/gate", [this, &personas](const httplib::Request& req) {
        if (!req.has_param("persona")) throw ApiError(400, "missing ?persona=NAME");
        const std::string name = req.get_param_value("persona");
        PersonaVersion v;
        if (req.has_param("version")) {
            int64_t n = 0;
            try {
                n = std::stoll(req.get_param_value("version"));
            } catch (...) {
                throw ApiError(400, "version must be a number");
            }
            v = personas.version_of(name, n);
        } else {
            v = personas.current_version(name);
        }
        std::string country =
            req.has_param("country") ? req.get_param_value("country") : cfg_.host_country;
        for (auto& c : country) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (!country.empty() && !geo::country_index(country))
            throw ApiError(400, "'" + req.get_param_value("country") +
                                    "' is not an ISO 3166-1 alpha-2 country code");
        const auto settings = persona_image_from_json(json::parse(v.image_json)).settings;
        const GateAnswer a = migration_gate(settings, country);
        return json{{"persona", name},
                    {"version", v.version},
                    {"country", country.empty() ? json() : json(country)},
                    {"allowed", a.allowed},
                    {"violation", a.violation},
                    {"reason", a.reason}};
    });
}

}  // namespace pbpf::agent
