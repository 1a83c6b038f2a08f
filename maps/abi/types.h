/* Fixed-width kernel types for the ABI headers, from vmlinux.h in BPF C and from
 * <linux/types.h> in C++. */
#pragma once

#if defined(__bpf__)
/* BPF translation units include vmlinux.h before any ABI header. */
#else
#include <linux/types.h>
#endif
