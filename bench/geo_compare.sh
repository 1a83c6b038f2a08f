#!/usr/bin/env bash
# bench/geo_compare.sh: loading the full default geo dataset into the kernel, ours against
# nftables, in the same run:
#   ours       geo_load ours: read and merge the MMDB (libmaxminddb), fill one LPM trie
#              (BPF_MAP_TYPE_LPM_TRIE, both families) as personabpfd does
#   nftables   nft -f of the same prefixes as two interval maps (ipv4_addr / ipv6_addr ->
#              verdict), as `ip saddr vmap` would use them, into a netns created here
# Prints per round: wall time, and the kernel memory each holds (ours: the map's memlock
# and the growth of Slab + VmallocUsed + Percpu in /proc/meminfo; nft: that growth, since
# nft reports no size). Those are system-wide, so the figures carry the noise of
# everything else running.
#
# Usage (root, after building geo_load in BUILD_DIR, default build-bench):
#   bench/geo_compare.sh [--rounds R] [--db FILE]
# Safety: the nft table lives in a netns created and removed here (pbgc-<pid>); nothing
# is attached anywhere, no packet is sent.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
rounds=3
db=/var/lib/personabpf/geo/country.mmdb
while (($#)); do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --db) db=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "geo_compare: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $EUID -eq 0 ]] || { echo "geo_compare: run as root" >&2; exit 1; }
loader=$build/bench/geo_load
[[ -x $loader ]] || { echo "geo_compare: build geo_load first ($loader)" >&2; exit 1; }
command -v nft >/dev/null || { echo "geo_compare: nft missing (scripts/setup.sh)" >&2; exit 1; }

ns=pbgc-$$
tmp=$(mktemp -d /tmp/pbgc-XXXXXX)
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns"
innet() { nsenter --net=/run/netns/"$ns" "$@"; }
# Kernel memory, bytes: Slab + VmallocUsed + Percpu (maps and sets allocate from all three).
slab() { awk '/^(Slab|VmallocUsed|Percpu):/ {s += $2 * 1024} END {print s}' /proc/meminfo; }
now_ms() { date +%s%3N; }

"$loader" nft DE "$db" >"$tmp/geo.nft"
elements=$(grep -cE ' : (accept|drop)' "$tmp/geo.nft") # not the maps' 'type ... : verdict' lines
echo "dataset: $db ($elements prefixes); nft script $(du -h "$tmp/geo.nft" | cut -f1)"
printf '%-6s %-9s %10s %10s %14s %14s\n' round who load_ms read_ms memlock_B kmem_delta_B

for ((r = 1; r <= rounds; r++)); do
    read -r read_ms fill_ms prefixes memlock slab_delta < <("$loader" ours "$db")
    printf '%-6s %-9s %10s %10s %14s %14s\n' "$r" ours "$((read_ms + fill_ms))" "$read_ms" \
        "$memlock" "$slab_delta"

    s0=$(slab)
    t0=$(now_ms)
    innet nft -f "$tmp/geo.nft"
    t1=$(now_ms)
    s1=$(slab)
    got=$(innet nft list map inet pbgeo geo4 | grep -c ' : ' || true)
    printf '%-6s %-9s %10s %10s %14s %14s\n' "$r" nftables "$((t1 - t0))" - - "$((s1 - s0))"
    ((got > 0)) || { echo "geo_compare: nft loaded no element" >&2; exit 1; }
    innet nft delete table inet pbgeo
done
