// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* parse_only.bpf.c: the "parse only" baseline of persona_bench. A cgroup_skb egress
 * program that reads the same headers, with the same helper calls, as parse() of
 * bpf/persona.bpf.c (IPv4 header, IPv6 fixed header and extension-header walk, the first
 * bytes of TCP/UDP/ICMP) and passes the packet: no map lookup, no counter, no conntrack.
 * The code below is a copy of persona.bpf.c's parse(); keep them in step. A malformed
 * packet is dropped so that the parse result is used. Only ever run with
 * bpf_prog_test_run, never attached. */

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps/abi/types.h"
#include "maps/abi/policy.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_DSTOPTS_ 60

#define PBPF_MAX_IPV6_EXT_HEADERS 6

enum parse_result {
	PARSE_OK,
	PARSE_NOT_IP,
	PARSE_MALFORMED,
};

struct pkt {
	__u8 family;
	__u8 ipproto;
	__u8 bucket;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 later_fragment;
	__u8 pad0;
	__be16 sport;
	__be16 dport;
	__u32 l4_off;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline __u8 proto_bucket(__u8 family, __u8 ipproto)
{
	switch (ipproto) {
	case IPPROTO_TCP_:
		return PBPF_PROTO_TCP;
	case IPPROTO_UDP_:
		return PBPF_PROTO_UDP;
	case IPPROTO_ICMP_:
		return family == PBPF_FAMILY_IPV4 ? PBPF_PROTO_ICMP : PBPF_PROTO_OTHER;
	case IPPROTO_ICMPV6_:
		return family == PBPF_FAMILY_IPV6 ? PBPF_PROTO_ICMPV6 : PBPF_PROTO_OTHER;
	default:
		return PBPF_PROTO_OTHER;
	}
}

static __always_inline int is_icmp_echo(const struct pkt *p)
{
	if (p->bucket == PBPF_PROTO_ICMP)
		return p->icmp_type == 8 || p->icmp_type == 0;
	if (p->bucket == PBPF_PROTO_ICMPV6)
		return p->icmp_type == 128 || p->icmp_type == 129;
	return 0;
}

static __always_inline int read_l4(struct __sk_buff *skb, struct pkt *p)
{
	__u8 hdr[14];

	p->bucket = proto_bucket(p->family, p->ipproto);
	if (p->later_fragment)
		return PARSE_OK;
	switch (p->ipproto) {
	case IPPROTO_TCP_:
		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, 14))
			return PARSE_MALFORMED;
		p->tcp_flags = hdr[13];
		break;
	case IPPROTO_UDP_:
		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, 4))
			return PARSE_MALFORMED;
		break;
	case IPPROTO_ICMP_:
	case IPPROTO_ICMPV6_:
		if (p->bucket == PBPF_PROTO_OTHER)
			return PARSE_OK;
		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, 8))
			return PARSE_MALFORMED;
		p->icmp_type = hdr[0];
		p->icmp_code = hdr[1];
		if (is_icmp_echo(p)) {
			__builtin_memcpy(&p->sport, &hdr[4], 2);
			p->dport = p->sport;
		}
		return PARSE_OK;
	default:
		return PARSE_OK;
	}
	__builtin_memcpy(&p->sport, &hdr[0], 2);
	__builtin_memcpy(&p->dport, &hdr[2], 2);
	return PARSE_OK;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 l3, struct pkt *p)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)))
		return PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return PARSE_MALFORMED;
	p->family = PBPF_FAMILY_IPV4;
	p->ipproto = ip.protocol;
	p->later_fragment = (ip.frag_off & bpf_htons(0x1fff)) != 0;
	p->l4_off = l3 + ip.ihl * 4;
	__builtin_memcpy(p->saddr, &ip.saddr, 4);
	__builtin_memcpy(p->daddr, &ip.daddr, 4);
	return read_l4(skb, p);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 l3, struct pkt *p)
{
	__u8 fixed[8];
	__u8 ext[4];
	__u32 off = 40;
	__u8 nexthdr;
	int i;

	if (bpf_skb_load_bytes(skb, l3, fixed, sizeof(fixed)))
		return PARSE_MALFORMED;
	if ((fixed[0] >> 4) != 6)
		return PARSE_MALFORMED;
	if (bpf_skb_load_bytes(skb, l3 + 8, p->saddr, 16) ||
	    bpf_skb_load_bytes(skb, l3 + 24, p->daddr, 16))
		return PARSE_MALFORMED;
	p->family = PBPF_FAMILY_IPV6;
	nexthdr = fixed[6];

	for (i = 0; i < PBPF_MAX_IPV6_EXT_HEADERS; i++) {
		switch (nexthdr) {
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
			if (bpf_skb_load_bytes(skb, l3 + off, ext, 2))
				return PARSE_MALFORMED;
			nexthdr = ext[0];
			off += ((__u32)ext[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT_:
			if (bpf_skb_load_bytes(skb, l3 + off, ext, 4))
				return PARSE_MALFORMED;
			nexthdr = ext[0];
			if ((((__u16)ext[2] << 8 | ext[3]) & 0xfff8) != 0)
				p->later_fragment = 1;
			off += 8;
			break;
		case IPPROTO_AH_:
			if (bpf_skb_load_bytes(skb, l3 + off, ext, 2))
				return PARSE_MALFORMED;
			nexthdr = ext[0];
			off += ((__u32)ext[1] + 2) * 4;
			break;
		default:
			goto done;
		}
		if (off > 0xffff)
			return PARSE_MALFORMED;
	}
	switch (nexthdr) {
	case IPPROTO_HOPOPTS_:
	case IPPROTO_ROUTING_:
	case IPPROTO_DSTOPTS_:
	case IPPROTO_FRAGMENT_:
	case IPPROTO_AH_:
		return PARSE_MALFORMED;
	}
done:
	p->ipproto = nexthdr;
	p->l4_off = l3 + off;
	return read_l4(skb, p);
}

static __always_inline int parse(struct __sk_buff *skb, __u32 l3, struct pkt *p)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, l3, p);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, l3, p);
	return PARSE_NOT_IP;
}

SEC("cgroup_skb/egress")
int pbpf_bench_parse_only(struct __sk_buff *skb)
{
	struct pkt p;

	__builtin_memset(&p, 0, sizeof(p));
	return parse(skb, 0, &p) == PARSE_MALFORMED ? 0 : 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
