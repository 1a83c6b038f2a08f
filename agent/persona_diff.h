// What changed between two versions of a persona: a readable list of changes (rules,
// mode, defaults, description, settings) and a unified diff of the source files.
// Pure functions over stored versions; no agent state.
#pragma once

#include <string>
#include <vector>

#include "agent/store.h"

namespace pbpf::agent {

// A unified diff of `a` and `b` by lines, 3 lines of context, headed
// "--- a_name" / "+++ b_name"; "" when the texts are equal. Texts too different to diff
// cheaply (more than ~4 million line pairs after the common head and tail) give a
// one-hunk summary instead of a line diff.
std::string unified_diff(const std::string& a, const std::string& b, const std::string& a_name,
                         const std::string& b_name);

// "rule added: allow egress tcp port 443 to 10.0.0.0/8", "mode: enforce -> audit",
// "default egress: allow -> deny", "description: \"x\" -> \"y\"",
// "setting qos.egress_rate_bps: 10000000 -> 20000000", "file: a.pdl -> b.pdl". In that
// order of kinds; empty when the versions mean the same (their sources may still differ).
std::vector<std::string> version_changes(const PersonaVersion& from, const PersonaVersion& to);

}  // namespace pbpf::agent
