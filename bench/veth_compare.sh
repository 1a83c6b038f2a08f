#!/usr/bin/env bash
# bench/veth_compare.sh: real traffic over a veth pair between two network namespaces,
# 64-byte UDP frames from trafgen, filtered in the receiving namespace by
#   none         no rules at all
#   iptables     N single rules in the receiver's INPUT chain (iptables-restore)
#   nftables     one rule with a set of N addresses in an input-hook chain
#   personabpf   a persona of N rules, bound by a running personabpfd to the receiver's
#                veth (interface binding, tc programs on that veth)
# for N in RULE_COUNTS, all in the same run, and prints packets per second at the receiver
# and the ratios. See docs/benchmarks.md, "Real traffic over veth vs iptables and nftables".
#
# Usage (root, after building personabpfd and personabpf):
#   bench/veth_compare.sh [--build DIR] [--duration SEC] [--counts "10 1000 10000"]
#                         [--rounds R] [--sender-cpu C]
#
# The same rules everywhere: the traffic (UDP to RX_ADDR port 9000) is dropped by the last
# of N rules; the other N-1 rules drop UDP port 9000 to other /32s (10.64.0.0/10, never
# used), so iptables walks all N rules per packet, nftables does one set lookup, and
# personabpf evaluates the packet as a new, denied flow (denied flows get no conntrack
# entry, so every packet takes the policy path: conntrack miss + ADDR + PORT lookups).
#
# The rate is read from the kernel: rx_packets of the receiving veth (/proc/net/dev), sampled over the
# middle of each run (the first second and the last half second are skipped). A veth
# counts a packet there when it is queued to the receiving CPU's backlog, which holds at
# most netdev_max_backlog packets, so in steady state it is the rate the receive path
# (and the filter in it) processes. Each configuration also checks that the filter did
# drop the traffic: the receiver's UDP stack (InDatagrams + NoPorts) must not see it.
#
# Safety: everything lives in two netns created here (pbvc-<pid>-tx, pbvc-<pid>-rx), a
# cgroup subtree /pbvc-<pid> (the agent's managed root: its cgroup programs attach there,
# on an empty cgroup), and a pin dir /sys/fs/bpf/pbvc-<pid>; no rule or program touches
# the root netns. All of it is removed on every exit path (trap).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
duration=8
counts="10 1000 10000"
rounds=1
sender_cpu=1

while (($#)); do
    case $1 in
        --build) build=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --counts) counts=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --sender-cpu) sender_cpu=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "veth_compare: unknown argument $1" >&2; exit 2 ;;
    esac
done

die() { echo "veth_compare: error: $*" >&2; exit 1; }
log() { echo "veth_compare: $*" >&2; }

[[ $duration =~ ^[0-9]+$ ]] && ((duration >= 3)) || die "--duration must be a whole number of seconds, at least 3"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number"
[[ $EUID -eq 0 ]] || die "run as root"
agentd=$build/agent/personabpfd
cli_bin=$build/tools/personabpf
[[ -x $agentd && -x $cli_bin ]] || die "build personabpfd and personabpf in $build first"
for t in trafgen nft iptables iptables-restore nsenter taskset ip; do
    command -v "$t" >/dev/null || die "missing $t (scripts/setup.sh installs netsniff-ng, nftables, iptables)"
done

id=$$
ns_tx=pbvc-$id-tx
ns_rx=pbvc-$id-rx
veth_tx=pbvc${id}t # IFNAMSIZ: at most 15 bytes
veth_rx=pbvc${id}r
tx_addr=198.19.0.1
rx_addr=198.19.0.2
dport=9000
work=$(mktemp -d /tmp/pbvc-$id.XXXXXX)
run_dir=/run/pbvc-$id
sock=$run_dir/agent.sock
state=$run_dir/state
bpffs=/sys/fs/bpf/pbvc-$id
cg_rel=/pbvc-$id
cg_mount=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
    /proc/self/mountinfo | head -n1)
[[ -n $cg_mount ]] || die "no cgroup2 mount"
cg_root=$cg_mount$cg_rel

in_tx() { nsenter --net="/run/netns/$ns_tx" "$@"; }
in_rx() { nsenter --net="/run/netns/$ns_rx" "$@"; }
cli() { "$cli_bin" --socket "$sock" "$@"; }

agent_pid=
trafgen_pid=
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [[ -n $trafgen_pid ]] && { kill -INT "$trafgen_pid" 2>/dev/null; wait "$trafgen_pid" 2>/dev/null; }
    if [[ -n $agent_pid ]]; then
        kill -TERM "$agent_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$agent_pid" 2>/dev/null
        wait "$agent_pid" 2>/dev/null
    fi
    if [[ -d $bpffs || -d $state ]]; then
        "$agentd" --uninstall --bpffs-root "$bpffs" --state-dir "$state" --purge-state \
            >"$work/uninstall.log" 2>&1 || { log "agent uninstall failed:"; cat "$work/uninstall.log" >&2; rc=1; }
    fi
    [[ -d $cg_root ]] && rmdir "$cg_root"
    ip netns pids "$ns_tx" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns pids "$ns_rx" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$ns_tx" 2>/dev/null
    ip netns del "$ns_rx" 2>/dev/null
    [[ -d $bpffs ]] && { log "warning: $bpffs still exists"; rc=1; }
    [[ -d $cg_root ]] && { log "warning: $cg_root still exists"; rc=1; }
    rm -rf "$run_dir" "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- network ---------------------------------------------------------------------------
ip netns add "$ns_tx"
ip netns add "$ns_rx"
ip link add "$veth_tx" netns "$ns_tx" type veth peer name "$veth_rx" netns "$ns_rx"
in_tx ip addr add "$tx_addr/30" dev "$veth_tx"
in_rx ip addr add "$rx_addr/30" dev "$veth_rx"
in_tx ip link set "$veth_tx" up
in_rx ip link set "$veth_rx" up
in_tx ip link set lo up
in_rx ip link set lo up
# nsenter keeps the root netns's /sys: read links and counters through ip and /proc/net.
mac_of() { "$@" | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1) }'; }
tx_mac=$(mac_of in_tx ip -o link show dev "$veth_tx")
rx_mac=$(mac_of in_rx ip -o link show dev "$veth_rx")
[[ -n $tx_mac && -n $rx_mac ]] || die "cannot read the veth MACs"
# No ARP on the fast path: trafgen writes the frames with these MACs.
in_tx ip neigh replace "$rx_addr" lladdr "$rx_mac" dev "$veth_tx" nud permanent

# 64-byte frame: 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload (checksums by trafgen).
cat >"$work/udp64.cfg" <<EOF
{
  eth(da=$rx_mac, sa=$tx_mac, type=0x0800),
  ipv4(saddr=$tx_addr, daddr=$rx_addr, ttl=64, proto=17),
  udp(sport=40000, dport=$dport),
  fill(0x41, 22)
}
EOF

# ---- rule sets ---------------------------------------------------------------------------
# Address k (0-based) of the N-1 non-matching rules: 10.64.0.0 + k + 1 (inside 10.64.0.0/10).
# Written with awk: a shell loop forking per rule takes minutes at 10,000.
other_addrs() { # N -> the N-1 addresses, one per line
    awk -v n="$1" 'BEGIN { for (k = 1; k < n; k++)
        printf "10.%d.%d.%d\n", 64 + int(k / 65536), int(k / 256) % 256, k % 256 }'
}

gen_iptables() { # N -> iptables-restore input
    echo "*filter"
    echo ":INPUT ACCEPT [0:0]"
    other_addrs "$1" | awk -v p="$dport" '{ print "-A INPUT -d " $1 "/32 -p udp -m udp --dport " p " -j DROP" }'
    echo "-A INPUT -d $rx_addr/32 -p udp -m udp --dport $dport -j DROP"
    echo "COMMIT"
}

gen_nft() { # N -> nft -f input
    echo "table ip pbvc {"
    echo "  set dsts {"
    echo "    type ipv4_addr"
    printf '    elements = { '
    other_addrs "$1" | awk '{ printf "%s, ", $1 }'
    echo "$rx_addr }"
    echo "  }"
    echo "  chain input {"
    echo "    type filter hook input priority 0; policy accept;"
    echo "    ip daddr @dsts udp dport $dport counter drop"
    echo "  }"
    echo "}"
}

gen_pdl() { # N -> a persona file; rules of the sender's egress (the veth faces the sender)
    echo "persona pbvc-$1 {"
    echo "  security {"
    echo "    mode enforce"
    echo "    default ingress allow"
    echo "    default egress allow"
    other_addrs "$1" | awk -v p="$dport" '{ print "    deny egress udp port " p " to " $1 }'
    echo "    deny egress udp port $dport to $rx_addr"
    echo "  }"
    echo "}"
}

# ---- measurement -------------------------------------------------------------------------
rx_packets() { # the receiving veth's rx_packets, from the rx netns's /proc/net/dev
    in_rx awk -v d="$veth_rx" -F '[: ]+' '{ sub(/^ +/, "") } $1 == d { print $3 }' /proc/net/dev
}
udp_seen() { # InDatagrams + NoPorts of the receiver's UDP stack
    in_rx awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $2 + $3; exit }' /proc/net/snmp
}

# measure LABEL EXPECT_DROP -> prints pps; fails if the traffic reached the receiver's UDP
# stack under a filter, or did not reach it without one.
measure() {
    local label=$1 expect_drop=$2 r0 r1 t0 t1 u0 u1 pps
    u0=$(udp_seen)
    # trafgen ends on its own: `timeout` sends SIGINT to its process group (trafgen and the
    # worker it forks) after $duration seconds. The rate is read over the middle of that.
    in_tx timeout -s INT "$duration" taskset -c "$sender_cpu" trafgen --dev "$veth_tx" \
        --conf "$work/udp64.cfg" --cpus 1 --no-sock-mem --notouch-irq --num 0 --no-cpu-stats \
        >"$work/trafgen.log" 2>&1 &
    trafgen_pid=$!
    sleep 1
    kill -0 "$trafgen_pid" 2>/dev/null || { cat "$work/trafgen.log" >&2; die "trafgen exited"; }
    r0=$(rx_packets); t0=$(date +%s%N)
    sleep "$(awk -v d="$duration" 'BEGIN { print d - 1.5 }')"
    r1=$(rx_packets); t1=$(date +%s%N)
    local rc=0
    wait "$trafgen_pid" || rc=$?
    trafgen_pid=
    # 124: stopped by timeout, the normal end.
    [[ $rc == 124 || $rc == 0 ]] || { cat "$work/trafgen.log" >&2; die "$label: trafgen failed ($rc)"; }
    u1=$(udp_seen)
    pps=$(((r1 - r0) * 1000000000 / (t1 - t0)))
    if [[ $expect_drop == 1 && $((u1 - u0)) -gt 100 ]]; then
        die "$label: $((u1 - u0)) packets reached the receiver's UDP stack: the filter did not drop them"
    fi
    if [[ $expect_drop == 0 && $((u1 - u0)) -lt 1000 ]]; then
        die "$label: the traffic did not reach the receiver's UDP stack ($((u1 - u0)))"
    fi
    log "$label: $pps pps (udp stack saw $((u1 - u0)))"
    echo "$pps"
}

# ---- agent -------------------------------------------------------------------------------
mkdir -p "$run_dir" "$state"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mkdir "$cg_root"
: >"$work/agent.toml" # embedded defaults, whatever /etc/personabpf/agent.toml says
"$agentd" --config "$work/agent.toml" --socket "$sock" --state-dir "$state" --bpffs-root "$bpffs" \
    --cgroup-root "$cg_rel" --log-level warn >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
    cli status >/dev/null 2>&1 && break
    kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; agent_pid=; die "personabpfd exited"; }
    sleep 0.1
done
cli status >/dev/null || { cat "$work/agent.log" >&2; die "personabpfd did not answer"; }

denied_egress() { # PERSONA -> denied egress packets (stats table, column 5)
    cli stats "$1" | awk -v p="$1" '$1 == p && $2 == "egress" { print $5; found = 1 }
        END { if (!found) print 0 }'
}

# ---- the run -----------------------------------------------------------------------------
log "kernel $(uname -r), $(nproc) CPUs, $(trafgen -v 2>/dev/null | head -n1), $(iptables -V), $(nft -v)"
log "trafgen on CPU $sender_cpu, $duration s per configuration, counts: $counts, rounds: $rounds"
declare -A res
for ((round = 1; round <= rounds; round++)); do
    res[none,$round]=$(measure "round $round: no rules" 0)
    for n in $counts; do
        gen_iptables "$n" >"$work/ipt.rules"
        in_rx iptables-restore <"$work/ipt.rules"
        got=$(in_rx iptables -S INPUT | grep -c -- '-j DROP' || true)
        [[ $got == "$n" ]] || die "iptables: $got rules loaded, expected $n"
        res[iptables,$n,$round]=$(measure "round $round: iptables $n rules" 1)
        in_rx iptables -F INPUT

        gen_nft "$n" >"$work/nft.rules"
        in_rx nft -f "$work/nft.rules"
        res[nftables,$n,$round]=$(measure "round $round: nftables set of $n" 1)
        in_rx nft delete table ip pbvc

        gen_pdl "$n" >"$work/p$n.pdl"
        cli persona apply -m "veth_compare $n" "$work/p$n.pdl" >/dev/null
        cli bind --persona "pbvc-$n" --ifname "$veth_rx" --netns "$ns_rx" >/dev/null
        d0=$(denied_egress "pbvc-$n")
        res[personabpf,$n,$round]=$(measure "round $round: personabpf $n rules" 1)
        d1=$(denied_egress "pbvc-$n")
        log "round $round: personabpf $n rules: persona denied $((d1 - d0)) packets"
        ((d1 - d0 > 0)) || die "personabpf: the persona's deny counter did not move"
        cli unbind --ifname "$veth_rx" --netns "$ns_rx" >/dev/null
    done
done

# ---- table -------------------------------------------------------------------------------
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
col() { # KEY... -> median over rounds
    local vals=() r
    for ((r = 1; r <= rounds; r++)); do vals+=("${res[$1,$r]}"); done
    echo "${vals[*]}" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

none=$(col none)
echo
echo "64-byte UDP over veth, receiver dropping; pps at the receiver (median of $rounds round(s))"
echo "no rules: $none pps"
printf '%-7s %12s %12s %12s %12s %12s %10s\n' rules iptables nftables personabpf pbpf/nft pbpf/ipt pbpf/none
for n in $counts; do
    ipt=$(col "iptables,$n")
    nf=$(col "nftables,$n")
    pb=$(col "personabpf,$n")
    printf '%-7s %12s %12s %12s %12s %12s %10s\n' "$n" "$ipt" "$nf" "$pb" \
        "$(ratio "$pb" "$nf")" "$(ratio "$pb" "$ipt")" "$(ratio "$pb" "$none")"
done
if ((rounds > 1)); then
    echo
    echo "per round:"
    for ((r = 1; r <= rounds; r++)); do
        line="round $r: none ${res[none,$r]}"
        for n in $counts; do
            line+="; $n: ipt ${res[iptables,$n,$r]} nft ${res[nftables,$n,$r]} pbpf ${res[personabpf,$n,$r]}"
        done
        echo "$line"
    done
fi
