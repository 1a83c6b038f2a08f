// MapImage: every kernel map entry one persona version needs, produced by lowering
// (pdl-compiler) and written by the agent into a fresh policy trie. Deterministic:
// entries are sorted, so equal personas give byte-equal images and JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "maps/abi/policy.h"
#include "maps/abi_layout.h"

namespace pbpf {

struct PolicyEntry {
    pbpf_policy_key key{};
    pbpf_policy_value value{};
};

// Total order on entries (by key bytes, then value) used to keep images canonical.
bool operator<(const PolicyEntry& a, const PolicyEntry& b);
bool operator==(const PolicyEntry& a, const PolicyEntry& b);

struct PersonaImage {
    std::string name;
    bool audit = false;
    pbpf_verdict default_ingress = PBPF_VERDICT_ALLOW;
    pbpf_verdict default_egress = PBPF_VERDICT_ALLOW;
    uint32_t rule_count = 0;
    uint32_t class_count = 0;
    std::vector<PolicyEntry> entries;  // sorted, no duplicate keys

    void canonicalize();  // sorts entries
};

struct MapImage {
    std::vector<PersonaImage> personas;  // sorted by name
};

// Canonical JSON: entries rendered readably (kind, direction, family, CIDR or class,
// protocol, port block as "lo-hi", verdict, rule, audit). Keys sorted.
nlohmann::json to_json(const PolicyEntry& e);
nlohmann::json to_json(const PersonaImage& p);
nlohmann::json to_json(const MapImage& m);
// Parses what to_json(PersonaImage) wrote; throws std::runtime_error on bad input.
PersonaImage persona_image_from_json(const nlohmann::json& j);

// Key constructors: every byte not set here is zero (padding included), so lookups
// from BPF, which zeroes its keys too, hit.
PolicyEntry make_addr_entry(pbpf_direction dir, pbpf_family family, const uint8_t addr[16],
                            unsigned cidr_len, uint32_t class_id);
PolicyEntry make_port_entry(uint32_t class_id, pbpf_proto proto, uint16_t port,
                            unsigned port_prefix_len, pbpf_verdict verdict, uint32_t rule_id,
                            bool audit);

}  // namespace pbpf
