// Policy trie writer/reader and counter reader: the agent's (and tests') only path from a
// PersonaImage to the kernel's LPM trie of one persona version.
#include "maps/policy_trie.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

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
        return sys_error("read policy trie info (fd " + std::to_string(map_fd) + ")", err);
    }
    return info.max_entries;
}

}  // namespace

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
        std::snprintf(buf, sizeof buf, "%s class %u %s %u/%u (%u-%u) -> %s rule %u%s",
                      k.kind == PBPF_ENTRY_PORT ? "PORT" : "ENC_PORT", class_id,
                      proto_name(k.family_or_proto), port, plen, port, last,
                      verdict_name(v.verdict), v.rule_id,
                      (v.flags & PBPF_POLICY_F_AUDIT) ? " audit" : "");
    } else {
        std::snprintf(buf, sizeof buf, "entry of unknown kind %u (prefixlen %u)", k.kind,
                      k.prefixlen);
    }
    return buf;
}

Result<Fd> create_policy_trie(uint32_t max_entries, const char* name) {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, name, sizeof(pbpf_policy_key),
                            sizeof(pbpf_policy_value), max_entries, &opts);
    if (fd < 0) {
        return sys_error("create policy trie '" + std::string(name) + "' (" +
                             std::to_string(max_entries) + " entries)",
                         fd);
    }
    return Fd(fd);
}

Result<void> check_policy_fits(const PersonaImage& image, uint32_t max_entries) {
    if (image.entries.size() > max_entries) {
        return Error{E2BIG, "persona '" + image.name + "' needs " +
                                std::to_string(image.entries.size()) +
                                " policy entries, limit is " + std::to_string(max_entries)};
    }
    return {};
}

Result<void> write_policy(int trie_fd, const PersonaImage& image) {
    auto limit = map_max_entries(trie_fd);
    if (!limit) return limit.error();
    if (auto fits = check_policy_fits(image, *limit); !fits) return fits.error();

    for (size_t i = 0; i < image.entries.size(); ++i) {
        const PolicyEntry& e = image.entries[i];
        if (bpf_map_update_elem(trie_fd, &e.key, &e.value, BPF_ANY) == 0) continue;
        const int err = errno;
        std::string msg = "persona '" + image.name + "': write policy entry " +
                          std::to_string(i + 1) + " of " + std::to_string(image.entries.size()) +
                          " (" + describe(e) + ")";
        if (err == E2BIG || err == ENOSPC || err == ENOMEM) {
            msg += " (policy trie limit is " + std::to_string(*limit) + " entries)";
        }
        return sys_error(std::move(msg), err);
    }
    return {};
}

Result<std::vector<PolicyEntry>> read_policy(int trie_fd) {
    std::vector<PolicyEntry> out;
    pbpf_policy_key key{};
    pbpf_policy_key next{};
    const void* prev = nullptr;  // first call: the trie's first key
    for (;;) {
        std::memset(&next, 0, sizeof next);
        if (bpf_map_get_next_key(trie_fd, prev, &next) != 0) {
            if (errno == ENOENT) break;
            return sys_error("dump policy trie (fd " + std::to_string(trie_fd) + ")");
        }
        PolicyEntry e;
        e.key = next;
        // An exact key finds itself: no stored prefix that matches it is longer.
        if (bpf_map_lookup_elem(trie_fd, &e.key, &e.value) != 0) {
            // Removed between the two calls: nothing to report for it.
            if (errno != ENOENT) return sys_error("read policy entry (" + describe(e) + ")");
        } else {
            out.push_back(e);
        }
        key = next;
        prev = &key;
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
        }
    }
    return sum;
}

}  // namespace pbpf
