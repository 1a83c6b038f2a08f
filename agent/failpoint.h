// Crash points for tests: with PERSONABPF_FAILPOINT=<name> in its environment, the agent
// kills itself with SIGKILL when it reaches failpoint("<name>"), exactly as an operator's
// kill -9 or a power cut would stop it there. Tests use it to prove that a crash at any
// step of a change leaves the store consistent and the kernel enforcing the last
// committed state (tests/integration/repository_test.cpp). Without the variable a
// failpoint costs one comparison with an empty string.
#pragma once

#include <signal.h>

#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

namespace pbpf::agent {

// Whether PERSONABPF_FAILPOINT names `name` (also for injected errors rather than kills:
// `if (failpoint_armed("x")) return Error{...}`).
inline bool failpoint_armed(const char* name) {
    static const char* armed = [] {
        const char* v = std::getenv("PERSONABPF_FAILPOINT");
        return v ? v : "";
    }();
    return armed[0] != '\0' && std::strcmp(armed, name) == 0;
}

inline void failpoint(const char* name) {
    if (!failpoint_armed(name)) return;
    spdlog::warn("failpoint {}: killing the agent (PERSONABPF_FAILPOINT)", name);
    spdlog::default_logger()->flush();
    ::raise(SIGKILL);
}

}  // namespace pbpf::agent
