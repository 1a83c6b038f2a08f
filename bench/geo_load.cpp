// geo_load: the geo dataset's load, ours against nftables', in one run (bench/geo_compare.sh).
//   geo_load ours [DB]        read + merge, then fill an LPM trie as the agent does; prints
//                             "read_ms fill_ms prefixes memlock_B slab_delta_B"
//   geo_load nft ALLOW [DB]   writes to stdout an nft script with the same prefixes in two
//                             interval maps (ipv4_addr / ipv6_addr -> verdict): accept for
//                             the country ALLOW, drop for the others, as the persona
//                             `allow countries { ALLOW }` decides
// DB defaults to the agent's default dataset. Needs root for `ours` (a BPF map).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <arpa/inet.h>

#include "agent/config.h"
#include "agent/geo.h"
#include "agent/geo_db.h"

namespace {

using pbpf::agent::geo::GeoDataset;
using pbpf::agent::geo::GeoPrefix;

// Kernel memory from /proc/meminfo, bytes: Slab + VmallocUsed + Percpu (BPF maps and
// nftables sets allocate from all three).
long long slab_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    long long kb = 0, sum = 0;
    std::string unit;
    while (in >> key >> kb) {
        if (key == "Slab:" || key == "VmallocUsed:" || key == "Percpu:") sum += kb * 1024;
        std::getline(in, unit);
    }
    return sum;
}

long long memlock(int fd) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string key;
    while (in >> key) {
        if (key == "memlock:") {
            long long v = 0;
            in >> v;
            return v;
        }
    }
    return -1;
}

double ms(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int ours(const std::string& db) {
    const long long slab0 = slab_bytes();
    auto t0 = std::chrono::steady_clock::now();
    auto ds = pbpf::agent::geo::load_geo_dataset(db);
    if (!ds) {
        std::fprintf(stderr, "geo_load: %s\n", ds.error().what().c_str());
        return 1;
    }
    const double read_ms = ms(t0);
    t0 = std::chrono::steady_clock::now();
    auto trie = pbpf::agent::build_geo_trie(*ds);
    if (!trie) {
        std::fprintf(stderr, "geo_load: %s\n", trie.error().what().c_str());
        return 1;
    }
    const double fill_ms = ms(t0);
    const long long slab1 = slab_bytes();
    std::printf("%.0f %.0f %zu %lld %lld\n", read_ms, fill_ms, ds->v4.size() + ds->v6.size(),
                memlock(trie->get()), slab1 - slab0);
    return 0;
}

void elements(const std::vector<GeoPrefix>& list, int family, uint16_t allow) {
    bool first = true;
    char text[INET6_ADDRSTRLEN];
    for (const auto& p : list) {
        inet_ntop(family, p.addr.data(), text, sizeof text);
        std::printf("%s%s/%u : %s", first ? "" : ",\n", text, unsigned(p.len),
                    p.country == allow ? "accept" : "drop");
        first = false;
    }
    std::printf("\n");
}

int nft(const std::string& allow_code, const std::string& db) {
    auto allow = pbpf::agent::geo::country_index(allow_code);
    if (!allow) {
        std::fprintf(stderr, "geo_load: %s is not a country code\n", allow_code.c_str());
        return 2;
    }
    auto ds = pbpf::agent::geo::load_geo_dataset(db);
    if (!ds) {
        std::fprintf(stderr, "geo_load: %s\n", ds.error().what().c_str());
        return 1;
    }
    std::printf(
        "table inet pbgeo {\n  map geo4 {\n    type ipv4_addr : verdict\n"
        "    flags interval\n    elements = {\n");
    elements(ds->v4, AF_INET, *allow);
    std::printf(
        "    }\n  }\n  map geo6 {\n    type ipv6_addr : verdict\n"
        "    flags interval\n    elements = {\n");
    elements(ds->v6, AF_INET6, *allow);
    std::printf(
        "    }\n  }\n  chain in {\n    type filter hook input priority 0; policy accept;\n"
        "    ip saddr vmap @geo4\n    ip6 saddr vmap @geo6\n  }\n}\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "ours") return ours(argc > 2 ? argv[2] : pbpf::agent::kDefaultGeoDatabase);
    if (mode == "nft" && argc > 2)
        return nft(argv[2], argc > 3 ? argv[3] : pbpf::agent::kDefaultGeoDatabase);
    std::fprintf(stderr, "usage: geo_load ours [DB] | geo_load nft COUNTRY [DB]\n");
    return 2;
}
