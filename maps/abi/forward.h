/* Port forwarding of one persona version: (direction, protocol, address, port) -> new
 * address and port. A hash map per persona version, swapped like its policy trie.
 *  egress:  the workload's connections to addr:port go to the value's address and port.
 *           A key with family 0 and a zero addr matches any destination address (look
 *           up the exact key first, then this one).
 *  ingress: connections to the host's port go to the workload's own address (value
 *           family 0) at the value's port; the key's family is 0 and addr zero. */
#pragma once

#include "maps/abi/types.h"
#include "maps/abi/policy.h"

struct pbpf_forward_key {
	__u8 dir;    /* enum pbpf_direction */
	__u8 proto;  /* PBPF_PROTO_TCP or PBPF_PROTO_UDP */
	__u8 family; /* enum pbpf_family of addr; 0: any address (addr zero) */
	__u8 pad0;
	__be16 port; /* destination port, network order */
	__u16 pad1;
	__u8 addr[16]; /* destination address, network order; IPv4 in addr[0..3] */
};

struct pbpf_forward_value {
	__u8 family; /* enum pbpf_family of addr; 0: the workload's own address */
	__u8 pad0;
	__be16 port; /* new destination port, network order */
	__u8 addr[16]; /* new destination address, network order; IPv4 in addr[0..3] */
};
