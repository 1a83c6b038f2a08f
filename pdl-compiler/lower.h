// Lowering's internal interface: the policy algorithm (lower.cpp), which lowers both the
// security rules and the encryption exceptions, and the lowering of every other section
// (lower_settings.cpp). The public entry points are pdl::lower in compiler.h.
#pragma once

#include <cstdint>
#include <vector>

#include "maps/map_image.h"
#include "pdl-compiler/ir.h"

namespace pdl {

struct LoweredPolicy {
    std::vector<pbpf::PolicyEntry> entries;  // ADDR and PORT kinds, in canonical order
    uint32_t next_class = 1;                 // the first class id left unused
};

// The two-table policy of docs/architecture.md "Policy lookup": deny beats allow, the
// lowest id among the deciding rules is reported, no match takes the direction's default
// (reported as rule 0). Class ids are numbered from `first_class`. Rule ids are only
// reported, so several rules may share one (an exception lowered once per direction).
LoweredPolicy lower_policy(const std::vector<ir::Rule>& rules, ir::Action default_ingress,
                           ir::Action default_egress, bool audit, uint32_t first_class = 1);

// Every section but the security rules: image.settings, dns_search and forwards, and the
// ENC_ADDR/ENC_PORT and SOV_EXEMPT entries of the trie. Encryption exception classes are
// numbered after image.class_count, which is raised to cover them. Expects image.audit
// to be set; leaves canonicalizing to the caller.
void lower_settings(const ir::Persona& persona, pbpf::PersonaImage& image);

}  // namespace pdl
