// Geo datasets (agent/geo_db.h): the MMDB search-tree walk, the CSV parser, the merge of
// sibling prefixes, and longest-prefix lookup over the sorted lists.
#include "agent/geo_db.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <maxminddb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>
#include <unordered_map>

#include "maps/abi/geo.h"
#include "pdl-compiler/countries.h"

namespace pbpf::agent::geo {

namespace {

using Addr = std::array<uint8_t, 16>;
using U128 = unsigned __int128;

bool bit(const Addr& a, int i) { return (a[i / 8] & (0x80u >> (i % 8))) != 0; }
void set_bit(Addr& a, int i) { a[i / 8] |= static_cast<uint8_t>(0x80u >> (i % 8)); }
void clear_bit(Addr& a, int i) { a[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8))); }

// `a` with every bit from `len` on cleared.
Addr masked(Addr a, int len) {
    for (int i = len; i < 128; ++i) {
        if (i % 8 == 0) {
            std::fill(a.begin() + i / 8, a.end(), 0);
            break;
        }
        clear_bit(a, i);
    }
    return a;
}

bool covers(const GeoPrefix& p, const Addr& a) { return masked(a, p.len) == p.addr; }

std::string addr_text(const Addr& a, int family) {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, a.data(), buf, sizeof buf);
    return buf;
}

std::string prefix_text(const Addr& a, int len, int family) {
    return addr_text(a, family) + "/" + std::to_string(len);
}

// The lists' order, (addr, len, country), as GeoPrefix's operator<=> has it, but with one
// memcmp for the address (the defaulted one compares byte by byte).
bool prefix_less(const GeoPrefix& a, const GeoPrefix& b) {
    int c = std::memcmp(a.addr.data(), b.addr.data(), a.addr.size());
    if (c != 0) return c < 0;
    if (a.len != b.len) return a.len < b.len;
    return a.country < b.country;
}

// Sorts, then merges adjacent sibling prefixes of one country into their parent, again and
// again as parents become siblings themselves: one pass, the output a stack growing at the
// front of the same vector. A merged parent replaces an equal prefix already listed: its
// two halves covered all of it. (A tree walk lists prefixes in order: no sort then.)
void sort_and_merge(std::vector<GeoPrefix>& v) {
    if (!std::is_sorted(v.begin(), v.end(), prefix_less))
        std::sort(v.begin(), v.end(), prefix_less);
    size_t top = 0;  // v[0, top) is the output
    for (size_t i = 0; i < v.size(); ++i) {
        v[top++] = v[i];
        while (top >= 2) {
            const GeoPrefix& hi = v[top - 1];
            const GeoPrefix& lo = v[top - 2];
            if (lo.len != hi.len || lo.len == 0 || lo.country != hi.country) break;
            const int last = lo.len - 1;
            if (bit(lo.addr, last) || !bit(hi.addr, last)) break;
            Addr hi_base = hi.addr;
            clear_bit(hi_base, last);
            if (hi_base != lo.addr) break;
            GeoPrefix parent = lo;
            parent.len = static_cast<uint8_t>(last);
            top -= 2;
            if (top > 0 && v[top - 1].addr == parent.addr && v[top - 1].len == parent.len) --top;
            v[top++] = parent;
        }
    }
    v.resize(top);
}

// --------------------------------------------------------------------------------- CSV

std::string_view trim(std::string_view s) {
    const char* ws = " \t\r\n\v\f";
    size_t b = s.find_first_not_of(ws);
    if (b == s.npos) return {};
    size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

// A field: trimmed, and without one pair of surrounding double quotes.
std::string_view field(std::string_view s) {
    s = trim(s);
    if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = trim(s.substr(1, s.size() - 2));
    return s;
}

// An address (no prefix length); family from its form. The error says only what is wrong:
// the caller quotes the text.
Result<int> parse_addr(std::string_view text, Addr& out) {
    const std::string t(text);
    out = {};
    if (t.find(':') != t.npos) {
        if (::inet_pton(AF_INET6, t.c_str(), out.data()) != 1)
            return Error{EINVAL, "not an IPv6 address"};
        return AF_INET6;
    }
    if (::inet_pton(AF_INET, t.c_str(), out.data()) != 1)
        return Error{EINVAL, "not an IPv4 address (a.b.c.d)"};
    return AF_INET;
}

struct Cidr {
    Addr addr{};
    int family = 0;
    int len = 0;
};

// "198.51.100.0/24", "2001:db8::/32" or a bare address (a host); bits set past the length
// are refused with the network that was probably meant, as agent/xdp_prefilter.cpp does.
Result<Cidr> parse_cidr(std::string_view text) {
    const std::string t(text);
    Cidr c;
    size_t slash = t.find('/');
    auto fam = parse_addr(std::string_view(t).substr(0, slash), c.addr);
    if (!fam) return Error{EINVAL, "'" + t + "': " + fam.error().message};
    c.family = *fam;
    const int max = c.family == AF_INET ? 32 : 128;
    c.len = max;
    if (slash != t.npos) {
        std::string len = t.substr(slash + 1);
        if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != len.npos ||
            (len.size() > 1 && len[0] == '0') || std::stoi(len) > max)
            return Error{EINVAL, "'" + t + "': prefix length must be 0.." + std::to_string(max)};
        c.len = std::stoi(len);
    }
    Addr net = masked(c.addr, c.len);
    if (net != c.addr)
        return Error{EINVAL, "'" + t + "': host bits set beyond /" + std::to_string(c.len) +
                                 " (the network is " + prefix_text(net, c.len, c.family) + ")"};
    return c;
}

U128 to_u128(const Addr& a, int bytes) {
    U128 v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | a[i];
    return v;
}

Addr from_u128(U128 v, int bytes) {
    Addr a{};
    for (int i = bytes - 1; i >= 0; --i) {
        a[i] = static_cast<uint8_t>(v & 0xff);
        v >>= 8;
    }
    return a;
}

U128 low_mask(int bits) { return bits >= 128 ? ~U128(0) : (U128(1) << bits) - 1; }

// The fewest prefixes that cover [start, end] exactly (start <= end), in order.
template <typename Emit>
void split_range(U128 start, U128 end, int max, Emit emit) {
    for (;;) {
        int host = 0;
        while (host < max && (start & low_mask(host + 1)) == 0 &&
               (start | low_mask(host + 1)) <= end)
            ++host;
        emit(start, max - host);
        U128 last = start | low_mask(host);
        if (last >= end) return;
        start = last + 1;
    }
}

// A header names its columns: its first field has a character no address has.
bool is_header_field(std::string_view f) {
    return f.find_first_not_of("0123456789abcdefABCDEF:./") != f.npos;
}

struct CsvPrefix {
    GeoPrefix p;
    size_t line = 0;
};

// ---------------------------------------------------------------------------- MMDB

struct MmdbHandle {
    MMDB_s db{};
    bool open = false;
    ~MmdbHandle() {
        if (open) MMDB_close(&db);
    }
};

constexpr int kNoCountry = -1;

// The country of one data entry: `country_code` (ip-location-db), else `country.iso_code`
// (GeoLite2), else `registered_country.iso_code`. The first of them present decides.
Result<int> decode_country(const MMDB_s& db, uint32_t offset) {
    static const char* const kFlat[] = {"country_code", nullptr};
    static const char* const kCountry[] = {"country", "iso_code", nullptr};
    static const char* const kRegistered[] = {"registered_country", "iso_code", nullptr};
    for (const char* const* path : {kFlat, kCountry, kRegistered}) {
        MMDB_entry_s entry{&db, offset};
        MMDB_entry_data_s data{};
        int status = MMDB_aget_value(&entry, &data, path);
        if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR) continue;
        if (status != MMDB_SUCCESS)
            return Error{EINVAL, "data entry at offset " + std::to_string(offset) + ": " +
                                     MMDB_strerror(status)};
        if (!data.has_data) continue;
        if (data.type != MMDB_DATA_TYPE_UTF8_STRING) return kNoCountry;
        auto idx = country_index(std::string_view(data.utf8_string, data.data_size));
        return idx ? static_cast<int>(*idx) : kNoCountry;
    }
    return kNoCountry;
}

// Walks the whole search tree depth first, listing every prefix whose record holds data.
class TreeWalk {
  public:
    TreeWalk(const MMDB_s& db, GeoDataset& ds) : db_(db), ds_(ds) {}

    Result<void> run() {
        const uint32_t nodes = db_.metadata.node_count;
        const bool v6 = db_.metadata.ip_version == 6;
        bits_ = v6 ? 128 : 32;
        if (nodes == 0) return {};
        seen_.assign(nodes, 0);
        cache_.reserve(1024);
        if (v6) {
            if (auto r = find_ipv4_root(); !r) return r;
        }

        // Records, not nodes, go on the stack, right before left: prefixes come out in
        // address order (no sort needed), and the IPv4 subtree (::/96) is walked before
        // anything that aliases it.
        struct Frame {
            uint64_t record;
            uint32_t offset;  // data records: the entry's offset in the data section
            uint8_t type;
            uint8_t depth;
            Addr addr;
        };
        std::vector<Frame> stack;
        stack.push_back({0, 0, MMDB_RECORD_TYPE_SEARCH_NODE, 0, Addr{}});
        while (!stack.empty()) {
            const Frame f = stack.back();
            stack.pop_back();
            switch (f.type) {
                case MMDB_RECORD_TYPE_EMPTY:
                    continue;
                case MMDB_RECORD_TYPE_DATA:
                    if (auto r = add(f.addr, f.depth, f.offset); !r) return r;
                    continue;
                case MMDB_RECORD_TYPE_SEARCH_NODE:
                    break;
                default:
                    return Error{EINVAL, "invalid record " + std::to_string(f.record) + " at " +
                                             where(f.addr, f.depth)};
            }
            // ::ffff:0:0/96 and 2002::/16 (and any other alias: some writers add Teredo's
            // 2001::/32) point back at the IPv4 subtree; it is listed once, as IPv4.
            if (v6 && f.record == ipv4_root_ && !is_ipv4_path(f.addr, f.depth)) continue;
            if (f.depth >= bits_)
                return Error{EINVAL, "search tree deeper than " + std::to_string(bits_) +
                                         " bits at " + where(f.addr, f.depth)};
            const auto node = static_cast<uint32_t>(f.record);
            if (seen_[node])
                return Error{EINVAL, "search tree reaches node " + std::to_string(node) +
                                         " twice (again at " + where(f.addr, f.depth) + ")"};
            seen_[node] = 1;
            MMDB_search_node_s n{};
            if (int status = MMDB_read_node(&db_, node, &n); status != MMDB_SUCCESS)
                return Error{EINVAL, "read search node " + std::to_string(node) + ": " +
                                         MMDB_strerror(status)};
            const auto depth = static_cast<uint8_t>(f.depth + 1);
            Addr right = f.addr;
            set_bit(right, f.depth);
            stack.push_back(
                {n.right_record, n.right_record_entry.offset, n.right_record_type, depth, right});
            stack.push_back(
                {n.left_record, n.left_record_entry.offset, n.left_record_type, depth, f.addr});
        }
        return {};
    }

  private:
    // The node at ::/96, where an IPv6 tree keeps IPv4; none when a record above it ends
    // the path (the IPv4 space then has that record's data, or none).
    Result<void> find_ipv4_root() {
        uint64_t node = 0;
        for (int depth = 0; depth < 96; ++depth) {
            MMDB_search_node_s n{};
            if (int status = MMDB_read_node(&db_, static_cast<uint32_t>(node), &n);
                status != MMDB_SUCCESS)
                return Error{EINVAL, "read search node " + std::to_string(node) + ": " +
                                         MMDB_strerror(status)};
            if (n.left_record_type != MMDB_RECORD_TYPE_SEARCH_NODE) return {};
            node = n.left_record;
        }
        ipv4_root_ = node;
        return {};
    }

    // Whether a prefix lies on the path from the root to ::/96 (all zero bits).
    static bool is_ipv4_path(const Addr& a, int depth) { return depth <= 96 && a == Addr{}; }

    std::string where(const Addr& a, int depth) const {
        return prefix_text(a, depth, bits_ == 32 ? AF_INET : AF_INET6);
    }

    Result<void> add(const Addr& a, int depth, uint32_t offset) {
        int country;
        if (auto it = cache_.find(offset); it != cache_.end()) {
            country = it->second;
        } else {
            auto c = decode_country(db_, offset);
            if (!c) return Error{EINVAL, "at " + where(a, depth) + ": " + c.error().message};
            country = *c;
            cache_.emplace(offset, country);
        }
        if (country == kNoCountry) {
            ++ds_.skipped;
            return {};
        }
        GeoPrefix p;
        p.country = static_cast<uint16_t>(country);
        if (bits_ == 32) {
            p.addr = a;
            p.len = static_cast<uint8_t>(depth);
            ds_.v4.push_back(p);
            return {};
        }
        // IPv6 tree: below ::/96 is IPv4; a record above it on the zero path covers all of
        // IPv4 as well as its IPv6 prefix.
        const bool zero96 =
            std::all_of(a.begin(), a.begin() + 12, [](uint8_t b) { return b == 0; });
        if (zero96 && depth >= 96) {
            std::copy(a.begin() + 12, a.end(), p.addr.begin());
            p.len = static_cast<uint8_t>(depth - 96);
            ds_.v4.push_back(p);
            return {};
        }
        if (zero96) {
            GeoPrefix all4;
            all4.country = p.country;
            ds_.v4.push_back(all4);
        }
        p.addr = a;
        p.len = static_cast<uint8_t>(depth);
        ds_.v6.push_back(p);
        return {};
    }

    const MMDB_s& db_;
    GeoDataset& ds_;
    int bits_ = 128;
    uint64_t ipv4_root_ = UINT64_MAX;
    std::vector<uint8_t> seen_;
    std::unordered_map<uint32_t, int> cache_;  // data offset -> country (many share one)
};

Result<GeoDataset> load_mmdb(const std::string& path) {
    MmdbHandle h;
    errno = 0;
    int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &h.db);
    if (status != MMDB_SUCCESS) {
        if (status == MMDB_IO_ERROR) return sys_error(path + ": open MMDB");
        return Error{EINVAL, path + ": " + MMDB_strerror(status)};
    }
    h.open = true;
    GeoDataset ds;
    ds.path = path;
    ds.format = "mmdb";
    ds.database_type = h.db.metadata.database_type ? h.db.metadata.database_type : "";
    ds.build_epoch = h.db.metadata.build_epoch;
    TreeWalk walk(h.db, ds);
    if (auto r = walk.run(); !r) return Error{r.error().err, path + ": " + r.error().message};
    sort_and_merge(ds.v4);
    sort_and_merge(ds.v6);
    return ds;
}

// libmaxminddb looks for the metadata marker in the last 128 KiB; so do we.
constexpr char kMmdbMarker[] = "\xAB\xCD\xEFMaxMind.com";
constexpr size_t kMarkerWindow = 128 * 1024;

}  // namespace

// ------------------------------------------------------------------------- countries

std::optional<uint16_t> country_index(std::string_view code) {
    if (code.size() != 2) return std::nullopt;
    std::string up(2, ' ');
    for (int i = 0; i < 2; ++i) {
        char c = code[i];
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        if (c < 'A' || c > 'Z') return std::nullopt;
        up[i] = c;
    }
    if (!pdl::is_country_code(up)) return std::nullopt;
    return static_cast<uint16_t>((up[0] - 'A') * 26 + (up[1] - 'A'));
}

std::string country_code(uint16_t index) {
    if (index >= kCountryCount) return "??";
    return {static_cast<char>('A' + index / 26), static_cast<char>('A' + index % 26)};
}

// ---------------------------------------------------------------------------- reading

Result<GeoDataset> parse_geo_csv(std::string_view text, const std::string& name) {
    GeoDataset ds;
    ds.path = name;
    ds.format = "csv";
    ds.database_type = "csv";
    std::vector<CsvPrefix> v4, v6;
    size_t line_no = 0;
    bool first = true;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == text.npos ? text.npos : nl - pos);
        pos = nl == text.npos ? text.size() : nl + 1;
        ++line_no;
        auto fail = [&](const std::string& msg) {
            return Error{EINVAL, name + ":" + std::to_string(line_no) + ": " + msg};
        };
        line = trim(line);
        if (line.empty() || line.front() == '#') continue;
        std::vector<std::string_view> fields;
        for (size_t b = 0;;) {
            size_t comma = line.find(',', b);
            fields.push_back(field(line.substr(b, comma == line.npos ? line.npos : comma - b)));
            if (comma == line.npos) break;
            b = comma + 1;
        }
        const bool was_first = first;
        first = false;
        if (was_first && is_header_field(fields[0])) continue;
        if (fields.size() != 2 && fields.size() != 3)
            return fail("expected CIDR,CC or START,END,CC, got " + std::to_string(fields.size()) +
                        (fields.size() == 1 ? " field" : " fields"));
        auto country = country_index(fields.back());
        // Parsed even when the country is unusable: a malformed line is an error anyway.
        std::vector<GeoPrefix> got;
        int family = 0;
        if (fields.size() == 2) {
            auto c = parse_cidr(fields[0]);
            if (!c) return fail(c.error().message);
            family = c->family;
            GeoPrefix p;
            p.addr = c->addr;
            p.len = static_cast<uint8_t>(c->len);
            got.push_back(p);
        } else {
            if (fields[0].find('/') != fields[0].npos || fields[1].find('/') != fields[1].npos)
                return fail("a range is START,END,CC with two addresses, not prefixes");
            Addr start, end;
            auto fs = parse_addr(fields[0], start);
            if (!fs)
                return fail("range start '" + std::string(fields[0]) + "': " + fs.error().message);
            auto fe = parse_addr(fields[1], end);
            if (!fe)
                return fail("range end '" + std::string(fields[1]) + "': " + fe.error().message);
            if (*fs != *fe)
                return fail("range " + std::string(fields[0]) + " to " + std::string(fields[1]) +
                            " mixes IPv4 and IPv6");
            family = *fs;
            const int bytes = family == AF_INET ? 4 : 16;
            U128 s = to_u128(start, bytes), e = to_u128(end, bytes);
            if (e < s)
                return fail("range end " + addr_text(end, family) + " is before its start " +
                            addr_text(start, family));
            split_range(s, e, bytes * 8, [&](U128 base, int len) {
                GeoPrefix p;
                p.addr = from_u128(base, bytes);
                p.len = static_cast<uint8_t>(len);
                got.push_back(p);
            });
        }
        if (!country) {
            ++ds.skipped;
            continue;
        }
        for (GeoPrefix& p : got) {
            p.country = *country;
            (family == AF_INET ? v4 : v6).push_back({p, line_no});
        }
    }

    // The same prefix twice: fine when both say the same; two countries are a conflict
    // that no longest-prefix match can settle.
    auto finish = [&](std::vector<CsvPrefix>& in, std::vector<GeoPrefix>& out,
                      int family) -> Result<void> {
        std::stable_sort(in.begin(), in.end(), [](const CsvPrefix& a, const CsvPrefix& b) {
            return std::tie(a.p.addr, a.p.len) < std::tie(b.p.addr, b.p.len);
        });
        out.reserve(in.size());
        for (size_t i = 0; i < in.size(); ++i) {
            if (i > 0 && in[i].p.addr == in[i - 1].p.addr && in[i].p.len == in[i - 1].p.len) {
                if (in[i].p.country == in[i - 1].p.country) continue;
                return Error{EINVAL, name + ":" + std::to_string(in[i].line) + ": " +
                                         prefix_text(in[i].p.addr, in[i].p.len, family) + " is " +
                                         country_code(in[i].p.country) + " here but " +
                                         country_code(in[i - 1].p.country) + " on line " +
                                         std::to_string(in[i - 1].line)};
            }
            out.push_back(in[i].p);
        }
        sort_and_merge(out);
        return {};
    };
    if (auto r = finish(v4, ds.v4, AF_INET); !r) return r.error();
    if (auto r = finish(v6, ds.v6, AF_INET6); !r) return r.error();
    return ds;
}

Result<GeoDataset> load_geo_dataset(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_error("open geo dataset " + path);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return sys_error("stat geo dataset " + path);
    if (!S_ISREG(st.st_mode)) return Error{EINVAL, path + ": not a regular file"};
    const size_t size = static_cast<size_t>(st.st_size);

    std::string tail(std::min(size, kMarkerWindow), '\0');
    if (::pread(fd, tail.data(), tail.size(), static_cast<off_t>(size - tail.size())) !=
        static_cast<ssize_t>(tail.size()))
        return sys_error("read geo dataset " + path);
    if (tail.find(std::string_view(kMmdbMarker, sizeof kMmdbMarker - 1)) != tail.npos)
        return load_mmdb(path);

    std::string text(size, '\0');
    size_t got = 0;
    while (got < size) {
        ssize_t n = ::pread(fd, text.data() + got, size - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return sys_error("read geo dataset " + path);
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    text.resize(got);
    if (text.find('\0') != text.npos)
        return Error{EINVAL, path + ": neither an MMDB file (no metadata section) nor CSV text"};
    auto ds = parse_geo_csv(text, path);
    if (!ds) return ds.error();
    ds->build_epoch = static_cast<uint64_t>(st.st_mtim.tv_sec);
    return ds;
}

std::optional<uint16_t> lookup(const GeoDataset& ds, int family, const uint8_t* addr) {
    if (family != AF_INET && family != AF_INET6) return std::nullopt;
    const std::vector<GeoPrefix>& list = family == AF_INET ? ds.v4 : ds.v6;
    Addr target{};
    std::copy(addr, addr + (family == AF_INET ? 4 : 16), target.begin());
    // The last prefix at or before (target, longest) either covers the target, and is then
    // the longest that does, or shares only its first k bits with it; a covering prefix is
    // then an ancestor of it, at most /k, so search again at (target/k, k). k shrinks.
    GeoPrefix key;
    key.addr = target;
    key.len = 128;
    key.country = UINT16_MAX;
    auto end = list.end();
    for (;;) {
        auto it = std::upper_bound(list.begin(), end, key, prefix_less);
        if (it == list.begin()) return std::nullopt;
        const GeoPrefix& cand = *std::prev(it);
        if (covers(cand, target)) return cand.country;
        int k = 0;
        while (k < cand.len && bit(cand.addr, k) == bit(target, k)) ++k;
        key.addr = masked(target, k);
        key.len = static_cast<uint8_t>(k);
        end = it;
    }
}

Result<Geo4Table> build_geo4_table(const std::vector<GeoPrefix>& v4) {
    // Shorter prefixes first, so that a longer one overwrites the part of a shorter one it
    // covers (only a CSV nests them).
    std::vector<const GeoPrefix*> order;
    order.reserve(v4.size());
    for (const auto& p : v4) order.push_back(&p);
    std::stable_sort(order.begin(), order.end(),
                     [](const GeoPrefix* a, const GeoPrefix* b) { return a->len < b->len; });
    Geo4Table t;
    t.top.assign(size_t{1} << 24, 0);
    for (const GeoPrefix* p : order) {
        const uint32_t addr = uint32_t{p->addr[0]} << 24 | uint32_t{p->addr[1]} << 16 |
                              uint32_t{p->addr[2]} << 8 | p->addr[3];
        const auto entry = static_cast<uint16_t>(p->country + 1);
        if (p->len <= 24) {
            // Every /24 it covers (no /24 is split yet: longer prefixes come later).
            const uint32_t first = addr >> 8;
            const uint32_t count = uint32_t{1} << (24 - p->len);
            std::fill_n(t.top.begin() + first, count, entry);
            continue;
        }
        uint16_t& slot = t.top[addr >> 8];
        if (!(slot & PBPF_GEO4_GROUP)) {
            if (t.groups.size() == PBPF_GEO4_MAX_GROUPS)
                return Error{E2BIG, "more than " + std::to_string(PBPF_GEO4_MAX_GROUPS) +
                                        " IPv4 /24s are split by longer prefixes"};
            std::array<uint16_t, 256> group;
            group.fill(slot);  // what the /24 held: the country of a shorter prefix, or 0
            t.groups.push_back(group);
            slot = static_cast<uint16_t>(PBPF_GEO4_GROUP | (t.groups.size() - 1));
        }
        auto& group = t.groups[slot & ~PBPF_GEO4_GROUP];
        const uint32_t first = addr & 0xff;
        const uint32_t count = uint32_t{1} << (32 - p->len);
        std::fill_n(group.begin() + first, count, entry);
    }
    return t;
}

std::optional<uint16_t> lookup(const Geo4Table& table, const uint8_t* addr) {
    uint16_t e = table.top[uint32_t{addr[0]} << 16 | uint32_t{addr[1]} << 8 | addr[2]];
    if (e & PBPF_GEO4_GROUP) e = table.groups[e & ~PBPF_GEO4_GROUP][addr[3]];
    if (e == 0) return std::nullopt;
    return static_cast<uint16_t>(e - 1);
}

}  // namespace pbpf::agent::geo
