// Policy map writer/reader and counter reader: the agent's (and tests') only path from a
// PersonaImage to the kernel map of one persona version.
#include "maps/policy_map.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

namespace pbpf {

namespace {

const char* direction_name(unsigned dir) {
    switch (dir) {
        case PBPF_DIR_INGRESS:
            return "ingress";
        case PBPF_DIR_EGRESS:
            return "egress";
        default:
            return "dir?";
    }
}

const char* proto_name(unsigned proto) {
    switch (proto) {
        case PBPF_PROTO_OTHER:
            return "other";
        case PBPF_PROTO_ICMP:
            return "icmp";
        case PBPF_PROTO_TCP:
            return "tcp";
        case PBPF_PROTO_UDP:
            return "udp";
        case PBPF_PROTO_ICMPV6:
            return "icmpv6";
        default:
            return "proto?";
    }
}

const char* verdict_name(unsigned verdict) {
    switch (verdict) {
        case PBPF_VERDICT_ALLOW:
            return "allow";
        case PBPF_VERDICT_DENY:
            return "deny";
        default:
            return "verdict?";
    }
}

Result<uint32_t> map_max_entries(int map_fd) {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (int err = bpf_obj_get_info_by_fd(map_fd, &info, &len); err != 0) {
        return sys_error("read policy map info (fd " + std::to_string(map_fd) + ")", err);
    }
    return info.max_entries;
}

const char* kind_name(unsigned kind) {
    switch (kind) {
        case PBPF_ENTRY_ADDR:
            return "ADDR";
        case PBPF_ENTRY_ENC_ADDR:
            return "ENC_ADDR";
        case PBPF_ENTRY_SOV_EXEMPT:
            return "SOV_EXEMPT";
        default:
            return "kind?";
    }
}

bool is_address_table(unsigned kind) {
    return kind == PBPF_ENTRY_ADDR || kind == PBPF_ENTRY_ENC_ADDR || kind == PBPF_ENTRY_SOV_EXEMPT;
}

uint32_t class_of_port_entry(const pbpf_policy_key& k) {
    return uint32_t{k.data[0]} << 24 | uint32_t{k.data[1]} << 16 | uint32_t{k.data[2]} << 8 |
           uint32_t{k.data[3]};
}

// An address table: (kind, dir, family).
using Table = std::tuple<uint8_t, uint8_t, uint8_t>;

// The prefix lengths each address table of `entries` uses.
std::map<Table, std::set<unsigned>> table_lengths(const std::vector<PolicyEntry>& entries) {
    std::map<Table, std::set<unsigned>> out;
    for (const auto& e : entries) {
        if (!is_address_table(e.key.kind)) continue;
        out[{e.key.kind, e.key.dir, e.key.family_or_proto}].insert(e.key.prefixlen -
                                                                   PBPF_POLICY_HEADER_BITS);
    }
    return out;
}

size_t chunks_for(size_t lengths) {
    return (lengths + PBPF_POLICY_LENGTHS_PER_ENTRY - 1) / PBPF_POLICY_LENGTHS_PER_ENTRY;
}

}  // namespace

// Sovereignty, written with the map from the settings (maps/abi/policy.h): the flags every
// PORT entry carries, and one SOV_COUNTRY entry per country of the list.
uint8_t sovereignty_flags(const pbpf_persona_settings& s) {
    if (!(s.flags & PBPF_SETTINGS_F_SOVEREIGNTY)) return 0;
    uint8_t f = PBPF_POLICY_F_SOVEREIGNTY;
    if (s.flags & PBPF_SETTINGS_F_SOV_DENY_LIST) f |= PBPF_POLICY_F_SOV_DENY_LIST;
    if (s.flags & PBPF_SETTINGS_F_SOV_UNKNOWN_ALLOW) f |= PBPF_POLICY_F_SOV_UNKNOWN_OK;
    if (s.flags & PBPF_SETTINGS_F_SOV_LOG_ONLY) f |= PBPF_POLICY_F_SOV_LOG_ONLY;
    return f;
}

namespace {

constexpr uint8_t kSovFlags = PBPF_POLICY_F_SOVEREIGNTY | PBPF_POLICY_F_SOV_DENY_LIST |
                              PBPF_POLICY_F_SOV_UNKNOWN_OK | PBPF_POLICY_F_SOV_LOG_ONLY;

std::vector<PolicyEntry> sov_country_entries(const pbpf_persona_settings& s) {
    std::vector<PolicyEntry> out;
    if (!(s.flags & PBPF_SETTINGS_F_SOVEREIGNTY)) return out;
    for (unsigned bit = 0; bit < PBPF_COUNTRY_BITS; ++bit) {
        if (!(s.countries[bit / 64] & (uint64_t{1} << (bit % 64)))) continue;
        PolicyEntry e;
        e.key.prefixlen = PBPF_POLICY_HEADER_BITS + 16;
        e.key.kind = PBPF_ENTRY_SOV_COUNTRY;
        e.key.data[0] = static_cast<uint8_t>(bit >> 8);
        e.key.data[1] = static_cast<uint8_t>(bit);
        e.value.verdict = PBPF_VERDICT_ALLOW;
        out.push_back(e);
    }
    return out;
}

}  // namespace

std::vector<PolicyEntry> kernel_policy_entries(const PersonaImage& image) {
    // Port prefix lengths 1..16 per (port table kind, class).
    std::map<std::pair<uint8_t, uint32_t>, uint16_t> port_lengths;
    for (const auto& e : image.entries) {
        if (e.key.kind != PBPF_ENTRY_PORT && e.key.kind != PBPF_ENTRY_ENC_PORT) continue;
        const unsigned len = e.key.prefixlen - PBPF_POLICY_HEADER_BITS - PBPF_POLICY_CLASS_BITS;
        if (len >= 1 && len <= 16)
            port_lengths[{e.key.kind, class_of_port_entry(e.key)}] |=
                static_cast<uint16_t>(1u << (len - 1));
    }
    std::vector<PolicyEntry> out = image.entries;
    for (auto& e : out) {
        const uint8_t port_kind = e.key.kind == PBPF_ENTRY_ADDR       ? PBPF_ENTRY_PORT
                                  : e.key.kind == PBPF_ENTRY_ENC_ADDR ? PBPF_ENTRY_ENC_PORT
                                                                      : 0;
        if (port_kind == 0) continue;
        auto it = port_lengths.find({port_kind, e.value.class_id});
        e.value.port_lengths = it == port_lengths.end() ? 0 : it->second;
    }
    if (const uint8_t sov = sovereignty_flags(image.settings); sov != 0) {
        for (auto& e : out)
            if (e.key.kind == PBPF_ENTRY_PORT) e.value.flags |= sov;
        for (auto& e : sov_country_entries(image.settings)) out.push_back(e);
    }
    for (const auto& [table, lengths] : table_lengths(image.entries)) {
        const std::vector<unsigned> longest_first(lengths.rbegin(), lengths.rend());
        for (size_t chunk = 0; chunk < chunks_for(longest_first.size()); ++chunk) {
            PolicyEntry d;
            d.key.kind = PBPF_ENTRY_LENGTHS;
            d.key.dir = std::get<1>(table);
            d.key.family_or_proto = std::get<2>(table);
            d.key.table = std::get<0>(table);
            d.key.data[0] = static_cast<uint8_t>(chunk);
            auto* list = reinterpret_cast<pbpf_policy_lengths*>(&d.value);
            std::memset(list->len, PBPF_POLICY_LENGTHS_END, sizeof list->len);
            for (size_t i = 0; i < PBPF_POLICY_LENGTHS_PER_ENTRY; ++i) {
                const size_t at = chunk * PBPF_POLICY_LENGTHS_PER_ENTRY + i;
                if (at < longest_first.size())
                    list->len[i] = static_cast<uint8_t>(longest_first[at]);
            }
            out.push_back(d);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

size_t policy_map_size(const PersonaImage& image) {
    size_t n = image.entries.size() + sov_country_entries(image.settings).size();
    for (const auto& [table, lengths] : table_lengths(image.entries))
        n += chunks_for(lengths.size());
    return n;
}

std::string describe(const PolicyEntry& e) {
    const auto& k = e.key;
    const auto& v = e.value;
    char buf[160];
    if (k.kind == PBPF_ENTRY_ADDR || k.kind == PBPF_ENTRY_ENC_ADDR) {
        const bool v4 = k.family_or_proto == PBPF_FAMILY_IPV4;
        char addr[INET6_ADDRSTRLEN] = "?";
        inet_ntop(v4 ? AF_INET : AF_INET6, k.data, addr, sizeof addr);
        std::snprintf(buf, sizeof buf, "%s %s %s %s/%u -> class %u",
                      k.kind == PBPF_ENTRY_ADDR ? "ADDR" : "ENC_ADDR", direction_name(k.dir),
                      v4 ? "ipv4" : "ipv6", addr, k.prefixlen - PBPF_POLICY_HEADER_BITS,
                      v.class_id);
    } else if (k.kind == PBPF_ENTRY_SOV_EXEMPT) {
        const bool v4 = k.family_or_proto == PBPF_FAMILY_IPV4;
        char addr[INET6_ADDRSTRLEN] = "?";
        inet_ntop(v4 ? AF_INET : AF_INET6, k.data, addr, sizeof addr);
        std::snprintf(buf, sizeof buf, "SOV_EXEMPT %s %s/%u -> %s", v4 ? "ipv4" : "ipv6", addr,
                      k.prefixlen - PBPF_POLICY_HEADER_BITS, verdict_name(v.verdict));
    } else if (k.kind == PBPF_ENTRY_PORT || k.kind == PBPF_ENTRY_ENC_PORT) {
        const uint32_t class_id = uint32_t{k.data[0]} << 24 | uint32_t{k.data[1]} << 16 |
                                  uint32_t{k.data[2]} << 8 | uint32_t{k.data[3]};
        const unsigned port = unsigned{k.data[4]} << 8 | k.data[5];
        const unsigned plen = k.prefixlen - PBPF_POLICY_HEADER_BITS - PBPF_POLICY_CLASS_BITS;
        const unsigned last = port | (plen >= 16 ? 0u : (0xffffu >> plen));
        std::snprintf(buf, sizeof buf, "%s class %u %s %u/%u (%u-%u) -> %s rule %u%s%s",
                      k.kind == PBPF_ENTRY_PORT ? "PORT" : "ENC_PORT", class_id,
                      proto_name(k.family_or_proto), port, plen, port, last,
                      verdict_name(v.verdict), v.rule_id,
                      (v.flags & PBPF_POLICY_F_AUDIT) ? " audit" : "",
                      (v.flags & PBPF_POLICY_F_SOVEREIGNTY) ? " sovereignty" : "");
    } else if (k.kind == PBPF_ENTRY_SOV_COUNTRY) {
        const unsigned bit = unsigned{k.data[0]} << 8 | k.data[1];
        std::snprintf(buf, sizeof buf, "SOV_COUNTRY %c%c -> %s",
                      'A' + static_cast<int>(bit / 26 % 26), 'A' + static_cast<int>(bit % 26),
                      verdict_name(v.verdict));
    } else if (k.kind == PBPF_ENTRY_LENGTHS) {
        const auto* list = reinterpret_cast<const pbpf_policy_lengths*>(&v);
        int n = std::snprintf(buf, sizeof buf, "LENGTHS %s %s %s chunk %u:", kind_name(k.table),
                              direction_name(k.dir),
                              k.family_or_proto == PBPF_FAMILY_IPV4 ? "ipv4" : "ipv6", k.data[0]);
        for (uint8_t len : list->len) {
            if (len == PBPF_POLICY_LENGTHS_END || n < 0 || n >= static_cast<int>(sizeof buf)) break;
            n += std::snprintf(buf + n, sizeof buf - static_cast<size_t>(n), " %u", len);
        }
    } else {
        std::snprintf(buf, sizeof buf, "entry of unknown kind %u (prefixlen %u)", k.kind,
                      k.prefixlen);
    }
    return buf;
}

Result<Fd> create_policy_map(uint32_t max_entries, const char* name) {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, name, sizeof(pbpf_policy_key),
                            sizeof(pbpf_policy_value), std::max<uint32_t>(max_entries, 1), &opts);
    if (fd < 0) {
        return sys_error("create policy map '" + std::string(name) + "' (" +
                             std::to_string(max_entries) + " entries)",
                         fd);
    }
    return Fd(fd);
}

Result<void> check_policy_fits(const PersonaImage& image, uint32_t max_entries) {
    const size_t needed = policy_map_size(image);
    if (needed > max_entries) {
        return Error{E2BIG, "persona '" + image.name + "' needs " + std::to_string(needed) +
                                " policy entries, limit is " + std::to_string(max_entries)};
    }
    return {};
}

Result<void> write_policy(int map_fd, const PersonaImage& image) {
    auto limit = map_max_entries(map_fd);
    if (!limit) return limit.error();
    if (auto fits = check_policy_fits(image, *limit); !fits) return fits.error();

    const std::vector<PolicyEntry> entries = kernel_policy_entries(image);
    for (size_t i = 0; i < entries.size(); ++i) {
        const PolicyEntry& e = entries[i];
        if (bpf_map_update_elem(map_fd, &e.key, &e.value, BPF_NOEXIST) == 0) continue;
        const int err = errno;
        std::string msg = "persona '" + image.name + "': write policy entry " +
                          std::to_string(i + 1) + " of " + std::to_string(entries.size()) + " (" +
                          describe(e) + ")";
        if (err == E2BIG || err == ENOSPC || err == ENOMEM) {
            msg += " (policy map limit is " + std::to_string(*limit) + " entries)";
        } else if (err == EEXIST) {
            msg += " (a duplicate key: the image is not canonical)";
        }
        return sys_error(std::move(msg), err);
    }
    return {};
}

Result<Fd> build_policy_map(const PersonaImage& image, uint32_t limit, const char* name) {
    if (auto r = check_policy_fits(image, limit); !r) return r.error();
    auto map = create_policy_map(static_cast<uint32_t>(policy_map_size(image)), name);
    if (!map) return map.error();
    if (auto r = write_policy(map->get(), image); !r) return r.error();
    return std::move(*map);
}

Result<std::vector<PolicyEntry>> read_policy(int map_fd) {
    std::vector<PolicyEntry> out;
    pbpf_policy_key key{};
    pbpf_policy_key next{};
    const void* prev = nullptr;  // first call: the map's first key
    for (;;) {
        std::memset(&next, 0, sizeof next);
        if (bpf_map_get_next_key(map_fd, prev, &next) != 0) {
            if (errno == ENOENT) break;
            return sys_error("dump policy map (fd " + std::to_string(map_fd) + ")");
        }
        key = next;
        prev = &key;
        if (next.kind == PBPF_ENTRY_LENGTHS || next.kind == PBPF_ENTRY_SOV_COUNTRY) continue;
        PolicyEntry e;
        e.key = next;
        if (bpf_map_lookup_elem(map_fd, &e.key, &e.value) != 0) {
            // Removed between the two calls: nothing to report for it.
            if (errno != ENOENT) return sys_error("read policy entry (" + describe(e) + ")");
            continue;
        }
        e.value.port_lengths = 0;
        e.value.flags &= static_cast<uint8_t>(~kSovFlags);
        out.push_back(e);
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<pbpf_counters> read_counters(int counters_map_fd, uint32_t persona_id) {
    const int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) return sys_error("count possible CPUs", ncpus);
    // Per-CPU values are laid out at 8-byte strides; pbpf_counters is a multiple of 8.
    static_assert(sizeof(pbpf_counters) % 8 == 0);
    std::vector<pbpf_counters> per_cpu(static_cast<size_t>(ncpus));
    if (bpf_map_lookup_elem(counters_map_fd, &persona_id, per_cpu.data()) != 0) {
        return sys_error("read counters of persona id " + std::to_string(persona_id));
    }
    pbpf_counters sum{};
    for (const auto& c : per_cpu) {
        for (int d = 0; d < PBPF_DIR_COUNT; ++d) {
            sum.dir[d].allowed_packets += c.dir[d].allowed_packets;
            sum.dir[d].allowed_bytes += c.dir[d].allowed_bytes;
            sum.dir[d].denied_packets += c.dir[d].denied_packets;
            sum.dir[d].denied_bytes += c.dir[d].denied_bytes;
            sum.dir[d].audited_packets += c.dir[d].audited_packets;
            sum.dir[d].audited_bytes += c.dir[d].audited_bytes;
            for (int r = 0; r < PBPF_DROP_REASON_SLOTS; ++r)
                sum.dir[d].dropped_by_reason[r] += c.dir[d].dropped_by_reason[r];
        }
    }
    return sum;
}

Result<pbpf_binding_counters> read_binding_counters(int map_fd, uint32_t slot) {
    const int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) return sys_error("count possible CPUs", ncpus);
    static_assert(sizeof(pbpf_binding_counters) % 8 == 0);
    std::vector<pbpf_binding_counters> per_cpu(static_cast<size_t>(ncpus));
    if (bpf_map_lookup_elem(map_fd, &slot, per_cpu.data()) != 0)
        return sys_error("read counters of binding slot " + std::to_string(slot));
    pbpf_binding_counters sum{};
    for (const auto& c : per_cpu) {
        for (int d = 0; d < PBPF_DIR_COUNT; ++d) {
            sum.dir[d].passed_packets += c.dir[d].passed_packets;
            sum.dir[d].passed_bytes += c.dir[d].passed_bytes;
            sum.dir[d].dropped_packets += c.dir[d].dropped_packets;
            sum.dir[d].dropped_bytes += c.dir[d].dropped_bytes;
        }
    }
    return sum;
}

Result<std::map<uint32_t, BindingDropReasons>> read_binding_drops(int map_fd) {
    const int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) return sys_error("count possible CPUs", ncpus);
    std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus));
    std::map<uint32_t, BindingDropReasons> out;
    pbpf_binding_drop_key key{}, next{};
    bool first = true;
    while (bpf_map_get_next_key(map_fd, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        if (bpf_map_lookup_elem(map_fd, &key, per_cpu.data()) != 0) {
            if (errno == ENOENT) continue;  // deleted meanwhile
            return sys_error("read binding drops of slot " + std::to_string(key.slot));
        }
        if (key.dir >= PBPF_DIR_COUNT) continue;
        const unsigned r = key.reason < PBPF_DROP_REASON_SLOTS ? key.reason : 0;
        uint64_t& n = out[key.slot][key.dir][r];
        for (uint64_t v : per_cpu) n += v;
    }
    if (errno != ENOENT) return sys_error("walk binding drops");
    return out;
}

Result<void> clear_binding_drops(int map_fd, uint32_t slot) {
    for (uint8_t dir = 0; dir < PBPF_DIR_COUNT; ++dir) {
        for (unsigned r = 0; r < PBPF_DROP_REASON_SLOTS; ++r) {
            pbpf_binding_drop_key key{};
            key.slot = slot;
            key.dir = dir;
            key.reason = static_cast<uint8_t>(r);
            if (bpf_map_delete_elem(map_fd, &key) != 0 && errno != ENOENT)
                return sys_error("clear binding drops of slot " + std::to_string(slot));
        }
    }
    return {};
}

}  // namespace pbpf
