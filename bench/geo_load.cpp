// geo_load: the geo dataset's load, ours against nftables', in one run (bench/geo_compare.sh).
//   geo_load ours [DB]        read + merge, then fill the IPv4 table and the IPv6 trie as
//                             the agent does; prints
//                             "read_ms fill_ms prefixes memlock_B slab_delta_B"
//   geo_load nft ALLOW [DB]   writes to stdout an nft script with the same prefixes in two
//                             interval maps (ipv4_addr / ipv6_addr -> verdict): accept for
//                             the country ALLOW, drop for the others, as the persona
//                             `allow countries { ALLOW }` decides
//   geo_load addrs COUNTRY N_IN N_OUT [DB]
//                             prints IPv4 addresses as "ADDR CC" lines: N_IN from
//                             distinct prefixes of COUNTRY, then N_OUT from distinct
//                             prefixes of all other countries, each group spread evenly
//                             over its prefixes in address order (bench/geo_veth_compare.sh)
// DB defaults to the agent's default dataset. Needs root for `ours` (a BPF map).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

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
    auto maps = pbpf::agent::build_geo_maps(*ds);
    if (!maps) {
        std::fprintf(stderr, "geo_load: %s\n", maps.error().what().c_str());
        return 1;
    }
    const double fill_ms = ms(t0);
    const long long slab1 = slab_bytes();
    std::printf("%.0f %.0f %zu %lld %lld\n", read_ms, fill_ms, ds->v4.size() + ds->v6.size(),
                memlock(maps->table4.get()) + memlock(maps->trie6.get()), slab1 - slab0);
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

// An address inside the prefix: its first host (network + 1), the prefix itself for a /32.
std::string host_in(const GeoPrefix& p) {
    uint32_t a = uint32_t(p.addr[0]) << 24 | uint32_t(p.addr[1]) << 16 | uint32_t(p.addr[2]) << 8 |
                 uint32_t(p.addr[3]);
    if (p.len < 32) a += 1;
    char text[INET_ADDRSTRLEN];
    const uint32_t n = htonl(a);
    inet_ntop(AF_INET, &n, text, sizeof text);
    return text;
}

int addrs(const std::string& code, const std::string& n_in_text, const std::string& n_out_text,
          const std::string& db) {
    auto country = pbpf::agent::geo::country_index(code);
    if (!country) {
        std::fprintf(stderr, "geo_load: %s is not a country code\n", code.c_str());
        return 2;
    }
    const size_t n_in = std::stoul(n_in_text), n_out = std::stoul(n_out_text);
    auto ds = pbpf::agent::geo::load_geo_dataset(db);
    if (!ds) {
        std::fprintf(stderr, "geo_load: %s\n", ds.error().what().c_str());
        return 1;
    }
    std::vector<const GeoPrefix*> in, out;
    for (const auto& p : ds->v4) (p.country == *country ? in : out).push_back(&p);
    if (in.size() < n_in || out.size() < n_out) {
        std::fprintf(stderr,
                     "geo_load: the dataset has %zu IPv4 prefixes of %s and %zu of others\n",
                     in.size(), code.c_str(), out.size());
        return 1;
    }
    for (size_t i = 0; i < n_in; ++i) {
        const GeoPrefix& p = *in[i * in.size() / n_in];
        std::printf("%s %s\n", host_in(p).c_str(),
                    pbpf::agent::geo::country_code(p.country).c_str());
    }
    for (size_t i = 0; i < n_out; ++i) {
        const GeoPrefix& p = *out[i * out.size() / n_out];
        std::printf("%s %s\n", host_in(p).c_str(),
                    pbpf::agent::geo::country_code(p.country).c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "ours") return ours(argc > 2 ? argv[2] : pbpf::agent::kDefaultGeoDatabase);
    if (mode == "nft" && argc > 2)
        return nft(argv[2], argc > 3 ? argv[3] : pbpf::agent::kDefaultGeoDatabase);
    if (mode == "addrs" && argc > 4)
        return addrs(argv[2], argv[3], argv[4],
                     argc > 5 ? argv[5] : pbpf::agent::kDefaultGeoDatabase);
    std::fprintf(stderr,
                 "usage: geo_load ours [DB] | geo_load nft COUNTRY [DB] |\n"
                 "       geo_load addrs COUNTRY N_IN N_OUT [DB]\n");
    return 2;
}
