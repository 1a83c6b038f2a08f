// Kernel tests skip only on a developer machine that lacks root or a feature; when
// CI=true or PERSONABPF_REQUIRE_KERNEL=1 the same condition fails the test instead.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace pbpf::test {

inline bool kernel_required() {
    const char* ci = std::getenv("CI");
    const char* req = std::getenv("PERSONABPF_REQUIRE_KERNEL");
    return (ci && std::strcmp(ci, "true") == 0) || (req && std::strcmp(req, "1") == 0);
}

}  // namespace pbpf::test

// Use at the top of a kernel test (or in SetUp): `if (!cond) PBPF_KERNEL_UNAVAILABLE(why);`
#define PBPF_KERNEL_UNAVAILABLE(why)                                                       \
    do {                                                                                   \
        if (::pbpf::test::kernel_required()) {                                             \
            FAIL() << "kernel feature required (CI=true or PERSONABPF_REQUIRE_KERNEL=1): " \
                   << (why);                                                               \
        } else {                                                                           \
            GTEST_SKIP() << "kernel feature unavailable: " << (why);                       \
        }                                                                                  \
    } while (0)

#define PBPF_REQUIRE_ROOT()                                          \
    do {                                                             \
        if (::geteuid() != 0) PBPF_KERNEL_UNAVAILABLE("needs root"); \
    } while (0)
