// Clocks shared by the agent's parts: the kernel's monotonic clock (the one bpf_ktime_get_ns
// reads, so the programs' timestamps compare with it) and elapsed milliseconds.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>

namespace pbpf::agent {

// CLOCK_MONOTONIC in nanoseconds, as bpf_ktime_get_ns() returns it.
inline uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Milliseconds since t0, fractional.
inline double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace pbpf::agent
