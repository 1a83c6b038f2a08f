// MapImage: every kernel map entry one persona version needs, produced by lowering
// (pdl-compiler) and written by the agent into a fresh policy trie, its settings slot and
// its forward map. Deterministic: entries are sorted, so equal personas give byte-equal
// images and JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "maps/abi/forward.h"
#include "maps/abi/policy.h"
#include "maps/abi/settings.h"
#include "maps/abi_layout.h"

namespace pbpf {

struct PolicyEntry {
    pbpf_policy_key key{};
    pbpf_policy_value value{};
};

// Total order on entries (by key bytes, then value) used to keep images canonical.
bool operator<(const PolicyEntry& a, const PolicyEntry& b);
bool operator==(const PolicyEntry& a, const PolicyEntry& b);

struct ForwardEntry {
    pbpf_forward_key key{};
    pbpf_forward_value value{};
};

// Total order on forwards (by key fields, then value), as for PolicyEntry.
bool operator<(const ForwardEntry& a, const ForwardEntry& b);
bool operator==(const ForwardEntry& a, const ForwardEntry& b);

struct PersonaImage {
    std::string name;
    bool audit = false;
    pbpf_verdict default_ingress = PBPF_VERDICT_ALLOW;
    pbpf_verdict default_egress = PBPF_VERDICT_ALLOW;
    uint32_t rule_count = 0;
    uint32_t class_count = 0;          // class ids 1..class_count, ADDR and ENC_ADDR alike
    std::vector<PolicyEntry> entries;  // sorted, no duplicate keys
    // The persona's settings slot; PBPF_SETTINGS_F_AUDIT mirrors `audit`. All zero (but
    // that flag) for a persona with only a security section.
    pbpf_persona_settings settings{};
    // `dns { search ... }`: applied by the agent (resolver configuration), not a kernel
    // entry. In the order given.
    std::vector<std::string> dns_search;
    std::vector<ForwardEntry> forwards;  // sorted, no duplicate keys

    void canonicalize();  // sorts entries and forwards
};

struct MapImage {
    std::vector<PersonaImage> personas;  // sorted by name
};

// Canonical JSON: entries rendered readably (kind, direction, family, CIDR or class,
// protocol, port block as "lo-hi", verdict, rule, audit); "settings" by section with
// units in the key names, and "forwards", each only when the persona sets any (so a
// security-only persona's JSON has neither). Keys sorted.
nlohmann::json to_json(const PolicyEntry& e);
nlohmann::json to_json(const ForwardEntry& f);
nlohmann::json to_json(const PersonaImage& p);
nlohmann::json to_json(const MapImage& m);
// Parses what to_json(PersonaImage) wrote; throws std::runtime_error on bad input.
PersonaImage persona_image_from_json(const nlohmann::json& j);

// Key constructors: every byte not set here is zero (padding included), so lookups
// from BPF, which zeroes its keys too, hit. `kind` selects the table of that layout:
// ADDR or ENC_ADDR, PORT or ENC_PORT.
PolicyEntry make_addr_entry(pbpf_direction dir, pbpf_family family, const uint8_t addr[16],
                            unsigned cidr_len, uint32_t class_id,
                            pbpf_entry_kind kind = PBPF_ENTRY_ADDR);
PolicyEntry make_port_entry(uint32_t class_id, pbpf_proto proto, uint16_t port,
                            unsigned port_prefix_len, pbpf_verdict verdict, uint32_t rule_id,
                            bool audit, pbpf_entry_kind kind = PBPF_ENTRY_PORT);
// A SOV_EXEMPT entry: destinations in addr/cidr_len skip the sovereignty check.
PolicyEntry make_sov_exempt_entry(pbpf_family family, const uint8_t addr[16], unsigned cidr_len);
// A forward: family 0 leaves the address zero (any address in a key; the workload's own
// in a value). Ports in host order; stored in network order.
ForwardEntry make_forward_entry(pbpf_direction dir, pbpf_proto proto, uint8_t family,
                                const uint8_t addr[16], uint16_t port, uint8_t target_family,
                                const uint8_t target_addr[16], uint16_t target_port);

}  // namespace pbpf
