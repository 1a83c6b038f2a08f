/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* parse.h: the packet parser of the BPF programs: IPv4, IPv6 with its extension headers,
 * and the first bytes of TCP/UDP/ICMP/ICMPv6 into struct pkt. Shared by bpf/persona.bpf.c
 * and the parse-only baseline of the benchmarks (bench/parse_only.bpf.c), so that the
 * baseline parses exactly what enforcement parses. Include after vmlinux.h,
 * bpf_helpers.h, bpf_endian.h and maps/abi/policy.h. */
#pragma once

/* vmlinux.h carries types, not the uapi macros. */
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

/* Extension headers walked before giving up (and failing closed). Real traffic carries
 * one or two; the bound keeps the verifier's work small. */
#define PBPF_MAX_IPV6_EXT_HEADERS 6

enum parse_result {
	PARSE_OK,
	PARSE_NOT_IP,    /* neither IPv4 nor IPv6: not a persona matter */
	PARSE_MALFORMED, /* truncated or inconsistent headers */
};

/* A packet's headers as the verdict needs them. Addresses and ports as on the wire. */
struct pkt {
	__u8 family;         /* enum pbpf_family */
	__u8 ipproto;        /* IP protocol number (after IPv6 extension headers) */
	__u8 bucket;         /* enum pbpf_proto of the port table */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 later_fragment; /* no L4 header in this packet */
	__u8 first_fragment; /* offset 0 and more fragments follow */
	__u8 ttl;            /* TTL / hop limit */
	__u8 pad0[3];
	__u32 frag_id;       /* IPv4 identification / IPv6 fragment id, if fragmented */
	__be16 sport;        /* TCP/UDP ports; ICMP echo: the identifier in both */
	__be16 dport;
	__u32 l4_off;        /* offset of the L4 header from the start of the data */
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Bucket of an IP protocol number. ICMP belongs to IPv4 and ICMPv6 to IPv6 only: the
 * lowering writes port entries for exactly those, so the other pairing is "other". */
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

/* ICMP errors carry the header of the packet they are about. */
static __always_inline int is_icmp_error(const struct pkt *p)
{
	if (p->bucket == PBPF_PROTO_ICMP)
		return p->icmp_type == 3 || p->icmp_type == 4 || p->icmp_type == 5 ||
		       p->icmp_type == 11 || p->icmp_type == 12;
	if (p->bucket == PBPF_PROTO_ICMPV6)
		return p->icmp_type >= 1 && p->icmp_type <= 4;
	return 0;
}

/* Reads what the verdict needs of the L4 header at l4_off. A fragment that is not the
 * first has no L4 header: it keeps its protocol bucket with port 0. Such fragments do not
 * reach cgroup_skb in practice (egress runs before IP fragmentation, ingress after
 * reassembly); only a raw socket building its own fragments produces them. */
static __always_inline int read_l4(struct __sk_buff *skb, struct pkt *p, int tcp_flags_needed)
{
	__u8 hdr[14];

	p->bucket = proto_bucket(p->family, p->ipproto);
	if (p->later_fragment)
		return PARSE_OK;
	switch (p->ipproto) {
	case IPPROTO_TCP_:
		/* Ports, sequence and ack numbers, data offset, flags. The header quoted in an
		 * ICMP error may stop after 8 bytes (RFC 792): ports are all it needs. */
		if (!tcp_flags_needed) {
			if (bpf_skb_load_bytes(skb, p->l4_off, hdr, 4))
				return PARSE_MALFORMED;
			break;
		}
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
		/* Type, code, checksum, then the echo identifier. */
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
	p->first_fragment = !p->later_fragment && (ip.frag_off & bpf_htons(0x2000)) != 0;
	p->frag_id = bpf_ntohs(ip.id);
	p->ttl = ip.ttl;
	p->l4_off = l3 + ip.ihl * 4;
	__builtin_memcpy(p->saddr, &ip.saddr, 4);
	__builtin_memcpy(p->daddr, &ip.daddr, 4);
	return read_l4(skb, p, 1);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 l3, struct pkt *p)
{
	/* First 8 bytes of the fixed header: version, payload length, next header. */
	__u8 fixed[8];
	/* Generic extension header start: next header, length; for a fragment header
	 * also the offset and M flag (bytes 2..3) and the identification (4..7). */
	__u8 ext[8];
	__u32 off = 40;
	__u8 nexthdr;
	int i;

	if (bpf_skb_load_bytes(skb, l3, fixed, sizeof(fixed)))
		return PARSE_MALFORMED;
	if ((fixed[0] >> 4) != 6)
		return PARSE_MALFORMED;
	/* Source at 8, destination at 24; also proves the fixed header is whole. */
	if (bpf_skb_load_bytes(skb, l3 + 8, p->saddr, 16) ||
	    bpf_skb_load_bytes(skb, l3 + 24, p->daddr, 16))
		return PARSE_MALFORMED;
	p->family = PBPF_FAMILY_IPV6;
	p->ttl = fixed[7];
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
			if (bpf_skb_load_bytes(skb, l3 + off, ext, 8))
				return PARSE_MALFORMED;
			nexthdr = ext[0];
			/* Offset in the top 13 bits of bytes 2..3, M in the lowest. */
			if ((((__u16)ext[2] << 8 | ext[3]) & 0xfff8) != 0)
				p->later_fragment = 1;
			else if (ext[3] & 1)
				p->first_fragment = 1;
			p->frag_id = (__u32)ext[4] << 24 | (__u32)ext[5] << 16 | (__u32)ext[6] << 8 | ext[7];
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
		/* Keeps the offset provably bounded for the verifier and rejects nonsense. */
		if (off > 0xffff)
			return PARSE_MALFORMED;
	}
	/* Still inside extension headers after the bound: cannot classify, fail closed. */
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
	return read_l4(skb, p, 1);
}

/* l3: offset of the IP header (0 for cgroup_skb, the link header's length for tc). The
 * family comes from skb->protocol and must agree with the version nibble. */
static __always_inline int parse(struct __sk_buff *skb, __u32 l3, struct pkt *p)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, l3, p);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, l3, p);
	return PARSE_NOT_IP;
}

