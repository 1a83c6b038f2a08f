// libFuzzer target over the geo dataset's CSV parser (agent/geo_db.h, parse_geo_csv).
// Checks, for any input:
//  - no crash, sanitizer report, leak or uncaught exception;
//  - a parsed dataset is canonical: each list sorted and free of duplicates, no bits set
//    past a prefix's length, lengths within the family, countries that country_index()
//    gives back, and no two neighbours that are siblings of one country (they merge);
//  - lookup() agrees with a longest-prefix match by brute force over the lists, at the
//    first and last address of every prefix.
// A violation prints what differed and abort()s, so libFuzzer saves the input.
// Build and run: scripts/fuzz.sh SECONDS geo_csv_fuzz.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/geo_db.h"

using namespace pbpf::agent::geo;

namespace {

[[noreturn]] void violation(const char* what, const GeoPrefix& p) {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, p.addr.data(), buf, sizeof buf);
    std::fprintf(stderr, "\n*** geo_csv_fuzz property violated: %s (%s/%d %s)\n", what, buf, p.len,
                 country_code(p.country).c_str());
    std::fflush(stderr);
    std::abort();
}

bool covers(const GeoPrefix& p, const std::array<uint8_t, 16>& a) {
    for (int i = 0; i < p.len; ++i) {
        const uint8_t m = static_cast<uint8_t>(0x80u >> (i % 8));
        if ((p.addr[i / 8] & m) != (a[i / 8] & m)) return false;
    }
    return true;
}

void check(const GeoDataset& ds, int family) {
    const std::vector<GeoPrefix>& list = family == AF_INET ? ds.v4 : ds.v6;
    const int max = family == AF_INET ? 32 : 128;
    for (size_t i = 0; i < list.size(); ++i) {
        const GeoPrefix& p = list[i];
        if (p.len > max) violation("prefix length out of range", p);
        for (int b = p.len; b < 128; ++b)
            if (p.addr[b / 8] & (0x80u >> (b % 8))) violation("bits set past the length", p);
        if (country_index(country_code(p.country)) != p.country) violation("bad country", p);
        if (i == 0) continue;
        const GeoPrefix& q = list[i - 1];
        if (!(q.addr < p.addr || (q.addr == p.addr && q.len < p.len)))
            violation("not sorted or duplicated", p);
        if (q.len == p.len && q.country == p.country && p.len > 0) {
            GeoPrefix parent = q;
            parent.len = static_cast<uint8_t>(p.len - 1);
            if (covers(parent, p.addr) && q.addr != p.addr) violation("unmerged siblings", p);
        }
    }
    for (const GeoPrefix& p : list) {
        std::array<uint8_t, 16> last = p.addr;
        for (int b = p.len; b < max; ++b) last[b / 8] |= static_cast<uint8_t>(0x80u >> (b % 8));
        for (const auto& a : {p.addr, last}) {
            const GeoPrefix* best = nullptr;
            for (const GeoPrefix& q : list)
                if (covers(q, a) && (!best || q.len > best->len)) best = &q;
            auto got = lookup(ds, family, a.data());
            if (!best || !got || *got != best->country) violation("lookup disagrees", p);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto ds = parse_geo_csv(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    if (!ds.ok()) {
        if (ds.error().message.rfind("fuzz:", 0) != 0) {
            std::fprintf(stderr, "error without a line: %s\n", ds.error().message.c_str());
            std::abort();
        }
        return 0;
    }
    // Brute force is quadratic: check small results only.
    if (ds->v4.size() + ds->v6.size() > 200) return 0;
    check(*ds, AF_INET);
    check(*ds, AF_INET6);
    return 0;
}
