// PolicyEntry and ForwardEntry constructors, the canonical order of entries and
// PersonaImage::canonicalize: the one place that knows how a trie key (maps/abi/policy.h)
// or a forward (maps/abi/forward.h) is laid out in bytes.
#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <tuple>

#include "maps/map_image.h"

namespace pbpf {

namespace {

// Clears every bit of `bytes` after the first `bits` bits, so two entries naming the
// same prefix (10.1.2.3/8 and 10.0.0.0/8) get the same key.
void mask_after(uint8_t* bytes, size_t len, unsigned bits) {
    for (size_t i = 0; i < len; ++i) {
        const unsigned start = static_cast<unsigned>(i) * 8;
        if (bits >= start + 8) continue;
        if (bits <= start) {
            bytes[i] = 0;
        } else {
            bytes[i] &= static_cast<uint8_t>(0xff00u >> (bits - start));
        }
    }
}

// The data bytes as two big-endian numbers: comparing them compares the bytes in order,
// as memcmp would, in two integer comparisons.
uint64_t data_word(const pbpf_policy_key& k, size_t i) {
    uint64_t w;
    std::memcpy(&w, k.data + 8 * i, sizeof w);
    if constexpr (std::endian::native == std::endian::little) w = __builtin_bswap64(w);
    return w;
}

// Field-wise, so the order reads naturally in dumps (kind, direction, family/proto,
// address/class+port, prefix length), independent of host endianness. Called for every
// pair of neighbours when an image is canonicalized, hence no memcmp and no tuples.
int compare_keys(const pbpf_policy_key& a, const pbpf_policy_key& b) {
    const uint32_t ha = uint32_t{a.kind} << 16 | uint32_t{a.dir} << 8 | a.family_or_proto;
    const uint32_t hb = uint32_t{b.kind} << 16 | uint32_t{b.dir} << 8 | b.family_or_proto;
    if (ha != hb) return ha < hb ? -1 : 1;
    for (size_t i = 0; i < 2; ++i) {
        const uint64_t wa = data_word(a, i), wb = data_word(b, i);
        if (wa != wb) return wa < wb ? -1 : 1;
    }
    if (a.prefixlen != b.prefixlen) return a.prefixlen < b.prefixlen ? -1 : 1;
    if (a.table != b.table) return a.table < b.table ? -1 : 1;
    return 0;
}

auto value_tuple(const pbpf_policy_value& v) {
    return std::tie(v.class_id, v.rule_id, v.verdict, v.flags, v.port_lengths);
}

// kind, dir, family, address: the layout of ADDR, ENC_ADDR and SOV_EXEMPT keys.
PolicyEntry address_keyed(pbpf_entry_kind kind, uint8_t dir, pbpf_family family,
                          const uint8_t addr[16], unsigned cidr_len) {
    PolicyEntry e;
    std::memset(&e.key, 0, sizeof e.key);
    std::memset(&e.value, 0, sizeof e.value);
    const unsigned addr_bytes = family == PBPF_FAMILY_IPV4 ? 4 : 16;
    cidr_len = std::min(cidr_len, addr_bytes * 8);
    e.key.prefixlen = PBPF_POLICY_HEADER_BITS + cidr_len;
    e.key.kind = static_cast<__u8>(kind);
    e.key.dir = dir;
    e.key.family_or_proto = static_cast<__u8>(family);
    std::memcpy(e.key.data, addr, addr_bytes);
    mask_after(e.key.data, sizeof e.key.data, cidr_len);
    return e;
}

bool entry_less(const PolicyEntry& a, const PolicyEntry& b) {
    if (int c = compare_keys(a.key, b.key); c != 0) return c < 0;
    return value_tuple(a.value) < value_tuple(b.value);
}

int compare_forward_keys(const pbpf_forward_key& a, const pbpf_forward_key& b) {
    const auto ha = std::tie(a.dir, a.proto, a.family, a.pad0);
    const auto hb = std::tie(b.dir, b.proto, b.family, b.pad0);
    if (ha != hb) return ha < hb ? -1 : 1;
    if (int c = std::memcmp(a.addr, b.addr, sizeof a.addr); c != 0) return c < 0 ? -1 : 1;
    // Ports compare in host order, so 80 sorts before 443 on any host.
    const auto ta = std::make_tuple(ntohs(a.port), a.pad1);
    const auto tb = std::make_tuple(ntohs(b.port), b.pad1);
    if (ta != tb) return ta < tb ? -1 : 1;
    return 0;
}

int compare_forward_values(const pbpf_forward_value& a, const pbpf_forward_value& b) {
    const auto ha = std::make_tuple(a.family, a.pad0, ntohs(a.port));
    const auto hb = std::make_tuple(b.family, b.pad0, ntohs(b.port));
    if (ha != hb) return ha < hb ? -1 : 1;
    if (int c = std::memcmp(a.addr, b.addr, sizeof a.addr); c != 0) return c < 0 ? -1 : 1;
    return 0;
}

}  // namespace

PolicyEntry make_addr_entry(pbpf_direction dir, pbpf_family family, const uint8_t addr[16],
                            unsigned cidr_len, uint32_t class_id, pbpf_entry_kind kind) {
    PolicyEntry e = address_keyed(kind, static_cast<__u8>(dir), family, addr, cidr_len);
    e.value.class_id = class_id;
    return e;
}

PolicyEntry make_sov_exempt_entry(pbpf_family family, const uint8_t addr[16], unsigned cidr_len) {
    PolicyEntry e = address_keyed(PBPF_ENTRY_SOV_EXEMPT, 0, family, addr, cidr_len);
    e.value.verdict = PBPF_VERDICT_ALLOW;
    return e;
}

PolicyEntry make_port_entry(uint32_t class_id, pbpf_proto proto, uint16_t port,
                            unsigned port_prefix_len, pbpf_verdict verdict, uint32_t rule_id,
                            bool audit, pbpf_entry_kind kind) {
    PolicyEntry e;
    std::memset(&e.key, 0, sizeof e.key);
    std::memset(&e.value, 0, sizeof e.value);
    port_prefix_len = std::min(port_prefix_len, 16u);
    e.key.prefixlen = PBPF_POLICY_HEADER_BITS + PBPF_POLICY_CLASS_BITS + port_prefix_len;
    e.key.kind = static_cast<__u8>(kind);
    e.key.dir = 0;
    e.key.family_or_proto = static_cast<__u8>(proto);
    e.key.data[0] = static_cast<uint8_t>(class_id >> 24);
    e.key.data[1] = static_cast<uint8_t>(class_id >> 16);
    e.key.data[2] = static_cast<uint8_t>(class_id >> 8);
    e.key.data[3] = static_cast<uint8_t>(class_id);
    e.key.data[4] = static_cast<uint8_t>(port >> 8);
    e.key.data[5] = static_cast<uint8_t>(port);
    // Only the port bytes carry host bits; the class id is always matched whole.
    mask_after(e.key.data + 4, 2, port_prefix_len);
    e.value.rule_id = rule_id;
    e.value.verdict = static_cast<__u8>(verdict);
    e.value.flags = audit ? PBPF_POLICY_F_AUDIT : 0;
    return e;
}

ForwardEntry make_forward_entry(pbpf_direction dir, pbpf_proto proto, uint8_t family,
                                const uint8_t addr[16], uint16_t port, uint8_t target_family,
                                const uint8_t target_addr[16], uint16_t target_port) {
    ForwardEntry f;
    std::memset(&f.key, 0, sizeof f.key);
    std::memset(&f.value, 0, sizeof f.value);
    f.key.dir = static_cast<__u8>(dir);
    f.key.proto = static_cast<__u8>(proto);
    f.key.family = family;
    f.key.port = htons(port);
    if (family != 0) std::memcpy(f.key.addr, addr, family == PBPF_FAMILY_IPV4 ? 4 : 16);
    f.value.family = target_family;
    f.value.port = htons(target_port);
    if (target_family != 0)
        std::memcpy(f.value.addr, target_addr, target_family == PBPF_FAMILY_IPV4 ? 4 : 16);
    return f;
}

bool operator<(const PolicyEntry& a, const PolicyEntry& b) { return entry_less(a, b); }

bool operator==(const PolicyEntry& a, const PolicyEntry& b) {
    return compare_keys(a.key, b.key) == 0 && value_tuple(a.value) == value_tuple(b.value);
}

bool operator<(const ForwardEntry& a, const ForwardEntry& b) {
    if (int c = compare_forward_keys(a.key, b.key); c != 0) return c < 0;
    return compare_forward_values(a.value, b.value) < 0;
}

bool operator==(const ForwardEntry& a, const ForwardEntry& b) {
    return compare_forward_keys(a.key, b.key) == 0 && compare_forward_values(a.value, b.value) == 0;
}

void PersonaImage::canonicalize() {
    // Lowering emits its entries nearly in order (only the few appended by other sections
    // are not), so: find the strictly ordered head, sort the tail and merge it in. Strictly
    // ordered throughout means sorted and free of duplicates: one pass, nothing moved. Here,
    // next to operator<, so that the comparisons inline.
    auto strictly_after = [](const PolicyEntry& a, const PolicyEntry& b) {
        return !entry_less(a, b);
    };
    auto head_end = std::adjacent_find(entries.begin(), entries.end(), strictly_after);
    if (head_end != entries.end()) {
        auto mid = head_end + 1;  // [begin, mid) is sorted
        std::sort(mid, entries.end(), entry_less);
        if (entry_less(*mid, *(mid - 1)))
            std::inplace_merge(entries.begin(), mid, entries.end(), entry_less);
        entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
    }
    std::sort(forwards.begin(), forwards.end());
    forwards.erase(std::unique(forwards.begin(), forwards.end()), forwards.end());
}

}  // namespace pbpf
