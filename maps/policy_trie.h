// Policy tries: create the LPM trie of one persona version, fill it from a PersonaImage,
// dump it back; plus summed reads of the per-CPU persona counters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "maps/abi/counters.h"
#include "maps/abi/limits.h"
#include "maps/fd.h"
#include "maps/map_image.h"
#include "maps/result.h"

namespace pbpf {

// A fresh, empty LPM trie shaped like the inner map template of pbpf_policies (key
// pbpf_policy_key, value pbpf_policy_value, BPF_F_NO_PREALLOC). pbpf_policies accepts any
// max_entries (since Linux 5.10 only type, key/value size and flags of an LPM inner map
// must match the template), so a trie may be sized to its persona.
Result<Fd> create_policy_trie(uint32_t max_entries = PBPF_MAX_POLICY_ENTRIES,
                              const char* name = "pbpf_policy");

// Refuses, before any kernel call, an image with more entries than the trie can hold:
// "persona 'x' needs N policy entries, limit is M".
Result<void> check_policy_fits(const PersonaImage& image, uint32_t max_entries);

// Writes every entry of `image` into the trie (which should be fresh: nothing is removed).
// Checks the fit against the trie's own max_entries first. On failure the error names the
// entry (index and readable key) and carries the kernel's errno.
Result<void> write_policy(int trie_fd, const PersonaImage& image);

// Every entry of the trie, sorted like a canonical image.
Result<std::vector<PolicyEntry>> read_policy(int trie_fd);

// One entry, readably: "ADDR egress ipv4 10.0.0.0/8 -> class 3",
// "PORT class 3 tcp 8000/12 (8000-8015) -> deny rule 2 audit"; ENC_ADDR and ENC_PORT read
// like ADDR and PORT, "SOV_EXEMPT ipv4 10.0.0.0/8 -> allow".
std::string describe(const PolicyEntry& entry);

// pbpf_counters[persona_id] summed over all possible CPUs.
Result<pbpf_counters> read_counters(int counters_map_fd, uint32_t persona_id);

}  // namespace pbpf
