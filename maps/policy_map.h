// Policy maps: create the map of one persona version (a hash searched by tuple-space
// search, see maps/abi/policy.h), fill it from a PersonaImage, dump it back; plus summed
// reads of the per-CPU persona counters.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "maps/abi/counters.h"
#include "maps/abi/limits.h"
#include "maps/fd.h"
#include "maps/map_image.h"
#include "maps/result.h"

namespace pbpf {

// The PBPF_POLICY_F_SOV_* flags of a persona's settings; 0 without a country list.
uint8_t sovereignty_flags(const pbpf_persona_settings& settings);

// What the kernel map of `image` holds: its entries, each ADDR/ENC_ADDR value with its
// class's port_lengths, plus the LENGTHS entries of every address table and, for a
// persona with a country list, the sovereignty flags on its PORT values and one
// SOV_COUNTRY entry per country. Sorted.
std::vector<PolicyEntry> kernel_policy_entries(const PersonaImage& image);

// The number of entries kernel_policy_entries(image) has, without building them.
size_t policy_map_size(const PersonaImage& image);

// A fresh, empty policy map shaped like the inner map template of pbpf_policies (hash,
// key pbpf_policy_key, value pbpf_policy_value, BPF_F_NO_PREALLOC). pbpf_policies accepts
// any max_entries (since Linux 5.10 only type, key/value size and flags of an inner hash
// must match the template), so a map is sized to its persona: a hash's bucket array is
// allocated for max_entries up front, even without preallocated elements.
Result<Fd> create_policy_map(uint32_t max_entries, const char* name = "pbpf_policy");

// Refuses, before any kernel call, an image whose map would hold more entries than
// max_entries: "persona 'x' needs N policy entries, limit is M".
Result<void> check_policy_fits(const PersonaImage& image, uint32_t max_entries);

// Writes kernel_policy_entries(image) into the map (which should be fresh: nothing is
// removed). Checks the fit against the map's own max_entries first. On failure the error
// names the entry (index and readable key) and carries the kernel's errno.
Result<void> write_policy(int map_fd, const PersonaImage& image);

// check_policy_fits against `limit`, then a map of exactly policy_map_size(image)
// entries, written: complete, not yet enforced.
Result<Fd> build_policy_map(const PersonaImage& image, uint32_t limit = PBPF_MAX_POLICY_ENTRIES,
                            const char* name = "pbpf_policy");

// The image entries of the map, sorted like a canonical image: LENGTHS and SOV_COUNTRY
// entries left out, port_lengths and sovereignty flags cleared (what write_policy added
// to the image).
Result<std::vector<PolicyEntry>> read_policy(int map_fd);

// One entry, readably: "ADDR egress ipv4 10.0.0.0/8 -> class 3",
// "PORT class 3 tcp 8000/12 (8000-8015) -> deny rule 2 audit"; ENC_ADDR and ENC_PORT read
// like ADDR and PORT, "SOV_EXEMPT ipv4 10.0.0.0/8 -> allow",
// "LENGTHS ADDR egress ipv4 chunk 0: 32 24 0".
std::string describe(const PolicyEntry& entry);

// pbpf_counters[persona_id] summed over all possible CPUs.
Result<pbpf_counters> read_counters(int counters_map_fd, uint32_t persona_id);
// pbpf_binding_counters[slot] summed over all possible CPUs.
Result<pbpf_binding_counters> read_binding_counters(int map_fd, uint32_t slot);

// One binding's dropped packets by direction and reason (index: enum pbpf_event_reason,
// 0 for reasons beyond the array).
using BindingDropReasons = std::array<std::array<uint64_t, PBPF_DROP_REASON_SLOTS>, PBPF_DIR_COUNT>;
// Every key of pbpf_binding_drops, summed over all possible CPUs, by counter slot. One
// pass over the keys that exist (drops that occurred), not over every slot.
Result<std::map<uint32_t, BindingDropReasons>> read_binding_drops(int map_fd);
// Deletes `slot`'s keys (before the slot's next owner gets it). Absent keys are fine.
Result<void> clear_binding_drops(int map_fd, uint32_t slot);

}  // namespace pbpf
