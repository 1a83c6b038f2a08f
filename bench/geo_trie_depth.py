#!/usr/bin/env python3
"""bench/geo_trie_depth.py: how many nodes the kernel's LPM trie holds for the geo dataset
and how many a lookup visits, by a model of kernel/bpf/lpm_trie.c (the insert of
trie_update_elem(), the walk of trie_lookup_elem()) over the same keys personabpf writes
(family byte, then the address: maps/abi/geo.h). For the reading of
bench/geo_veth_compare.sh (docs/benchmarks.md, "Throughput with real packets").

Usage (after building geo_load; takes about 40 s):
  build-bench/bench/geo_load nft DE > /tmp/geo.nft
  build-bench/bench/geo_load addrs DE 64 1024 > /tmp/addrs
  bench/geo_trie_depth.py /tmp/geo.nft /tmp/addrs

Prints the node count (prefixes plus intermediate nodes) and, for the addresses (the
"ADDR CC" lines of geo_load addrs), the nodes visited per lookup.
"""
import ipaddress
import re
import statistics
import sys

FAMILY = {4: 4, 6: 6}  # enum pbpf_family: PBPF_FAMILY_IPV4 = 4, PBPF_FAMILY_IPV6 = 6
W = 8 + 128  # key bits: family byte + 16 address bytes (IPv4 in the first 4)


class Node:
    __slots__ = ("key", "plen", "inter", "child")

    def __init__(self, key, plen, inter):
        self.key, self.plen, self.inter, self.child = key, plen, inter, [None, None]


def bit(key, i):
    return (key >> (W - 1 - i)) & 1


def match(a, alen, b, blen):
    """longest_prefix_match(): common leading bits, at most the shorter length."""
    m = min(alen, blen)
    x = a ^ b
    return m if x == 0 else min(W - x.bit_length(), m)


class Trie:
    def __init__(self):
        self.root, self.nodes = None, 0

    def insert(self, key, plen):  # trie_update_elem()
        parent, side, node = None, 0, self.root
        while node:
            m = match(node.key, node.plen, key, plen)
            if node.plen != m or node.plen == plen or node.plen == W:
                break
            parent, side, node = node, bit(key, node.plen), node.child[bit(key, node.plen)]

        def put(n):
            if parent is None:
                self.root = n
            else:
                parent.child[side] = n

        new = Node(key, plen, False)
        if node is None:
            put(new)
            self.nodes += 1
            return
        m = match(node.key, node.plen, key, plen)
        if node.plen == m:  # the same prefix: replaced (an intermediate one becomes real)
            node.inter = False
            return
        self.nodes += 1
        if m == plen:  # the new prefix is above the node
            new.child[bit(node.key, m)] = node
            put(new)
            return
        inter = Node(key & ~((1 << (W - m)) - 1), m, True)
        self.nodes += 1
        inter.child[bit(node.key, m)] = node
        inter.child[bit(key, m)] = new
        put(inter)

    def visits(self, key):  # trie_lookup_elem(), full-length key
        node, n = self.root, 0
        while node:
            n += 1
            m = match(node.key, node.plen, key, W)
            if m < node.plen or m == W:
                break
            node = node.child[bit(key, node.plen)]
        return n


def key_of(addr):
    a = ipaddress.ip_address(addr)
    return (FAMILY[a.version] << 128) | (int(a) << (96 if a.version == 4 else 0))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    trie = Trie()
    element = re.compile(r"^([0-9a-f:.]+)/(\d+) : ")
    prefixes = 0
    with open(sys.argv[1]) as f:
        for line in f:
            m = element.match(line)
            if m:
                trie.insert(key_of(m.group(1)), 8 + int(m.group(2)))
                prefixes += 1
    print(f"{prefixes} prefixes, {trie.nodes} trie nodes")
    with open(sys.argv[2]) as f:
        depths = [trie.visits(key_of(line.split()[0])) for line in f if line.strip()]
    print(f"{len(depths)} lookups: nodes visited mean {statistics.mean(depths):.1f}, "
          f"median {statistics.median(depths)}, min {min(depths)}, max {max(depths)}")


if __name__ == "__main__":
    main()
