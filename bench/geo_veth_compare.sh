#!/usr/bin/env bash
# bench/geo_veth_compare.sh: data sovereignty with real packets, personabpf against
# nftables on the full default geo dataset, in the same run. 64-byte UDP frames from
# trafgen cross a veth pair from a sender netns into a receiver netns, addressed to IPv4
# destinations sampled from the dataset (many countries), and are judged by their
# destination's country in the receiving netns:
#   none         no filter: every frame reaches IP routing (and is dropped there: no route)
#   nftables     `ip daddr vmap @geo4`, an interval map of every IPv4 prefix of the
#                dataset (accept for DE, drop for the others) in an inet table's
#                prerouting chain (the earliest inet hook; input never sees these frames)
#   nft-ingress  the same rule and map in a netdev table's ingress chain on the receiving
#                veth: nftables at the hook personabpf uses
#   personabpf   a persona `allow countries { DE }` whose rules allow the UDP traffic,
#                bound by a running personabpfd to the receiving veth (interface binding,
#                tc programs on that veth), the agent's [geo] database the same dataset
# for each traffic mix:
#   denied       N_DENIED destinations outside DE: every frame a new flow denied by its
#                country (denied flows get no conntrack entry: the worst case for us)
#   established  15 of 16 frames to 64 DE destinations (64 flows, tracked after their first
#                frame: the established path), 1 of 16 to 64 destinations outside DE
# and prints packets per second at the receiver and the ratios. --denied sets how many
# destinations outside DE the frames rotate over (1: one destination, every lookup hits
# the CPU caches; the default 1024 spreads the lookups over the dataset). See
# docs/benchmarks.md, "Data sovereignty", "Throughput with real packets".
#
# Usage (root, after building personabpfd, personabpf and geo_load in build-bench):
#   bench/geo_veth_compare.sh [--build DIR] [--duration SEC] [--rounds R] [--db FILE]
#                             [--denied N_DENIED] [--mixes "denied established"]
#                             [--configs "none nftables nft-ingress personabpf"]
#                             [--sender-cpu C]
#
# The frames vary the DESTINATION, not the source: what arrives at an interface-bound
# workload's interface is the workload's egress (docs/architecture.md, "Interface-bound
# workloads"), whose remote is the destination; the country check is the same code for
# both directions (the flow's remote address). The frames all come from the sender's own
# address 198.19.0.1; the receiver netns has no route for the foreign destinations and
# does not forward, so whatever a filter lets through is dropped by its IP routing (no
# ICMP is sent, counted in InAddrErrors). Nothing leaves the two netns.
#
# The rate is read from the kernel: rx_packets of the receiving veth (/proc/net/dev),
# sampled over the middle of each run (the first second and the last half second are
# skipped), as bench/veth_compare.sh does. A veth transmit is received in softirq on the
# sending CPU, so sender, receive path and filter share one CPU, --sender-cpu: trafgen's
# worker is moved there after it starts (trafgen pins worker i to CPU i itself) and
# reniced to -20; this script, the agent and the helpers run on the other CPUs. Each
# configuration checks that its filter let through exactly the mix's DE share: the
# receiver's InAddrErrors (frames that reached routing) over its rx_packets, whole run;
# for personabpf also that the persona's drops by reason `sovereignty` account for the
# rest. The ratios are medians of the per-round ratios (configurations of one round run
# within a minute of each other; on a shared machine that is the steadier figure).
#
# Safety: everything lives in two netns created here (pbgv-<pid>-tx, pbgv-<pid>-rx), a
# cgroup subtree /pbgv-<pid> (the agent's managed root: its cgroup programs attach there,
# on an empty cgroup), and a pin dir /sys/fs/bpf/pbgv-<pid>; no rule or program touches
# the root netns. All of it is removed on every exit path (trap).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
duration=8
rounds=1
sender_cpu=1
db=/var/lib/personabpf/geo/country.mmdb
n_denied=1024
mixes="denied established"
configs="none nftables nft-ingress personabpf"
allow=DE # the persona's country; also the nft maps' accept

while (($#)); do
    case $1 in
        --build) build=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --db) db=$2; shift 2 ;;
        --denied) n_denied=$2; shift 2 ;;
        --mixes) mixes=$2; shift 2 ;;
        --configs) configs=$2; shift 2 ;;
        --sender-cpu) sender_cpu=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "geo_veth_compare: unknown argument $1" >&2; exit 2 ;;
    esac
done

die() { echo "geo_veth_compare: error: $*" >&2; exit 1; }
log() { echo "geo_veth_compare: $*" >&2; }

[[ $duration =~ ^[0-9]+$ ]] && ((duration >= 3)) || die "--duration must be a whole number of seconds, at least 3"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number"
[[ $n_denied =~ ^[1-9][0-9]*$ ]] || die "--denied must be a positive number"
for m in $mixes; do [[ $m == denied || $m == established ]] || die "unknown mix $m"; done
for c in $configs; do
    [[ $c == none || $c == nftables || $c == nft-ingress || $c == personabpf ]] || die "unknown configuration $c"
done
[[ $EUID -eq 0 ]] || die "run as root"
[[ -r $db ]] || die "no geo dataset at $db (scripts/setup.sh installs it)"
agentd=$build/agent/personabpfd
cli_bin=$build/tools/personabpf
loader=$build/bench/geo_load
[[ -x $agentd && -x $cli_bin && -x $loader ]] || die "build personabpfd, personabpf and geo_load in $build first"
for t in trafgen nft nsenter taskset ip jq; do
    command -v "$t" >/dev/null || die "missing $t (scripts/setup.sh installs netsniff-ng, nftables, jq)"
done

id=$$
ns_tx=pbgv-$id-tx
ns_rx=pbgv-$id-rx
veth_tx=pbgv${id}t # IFNAMSIZ: at most 15 bytes
veth_rx=pbgv${id}r
tx_addr=198.19.0.1
rx_addr=198.19.0.2
dport=9000
persona=pbgv-$allow
work=$(mktemp -d /tmp/pbgv-$id.XXXXXX)
run_dir=/run/pbgv-$id
sock=$run_dir/agent.sock
state=$run_dir/state
bpffs=/sys/fs/bpf/pbgv-$id
cg_rel=/pbgv-$id
cg_mount=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
    /proc/self/mountinfo | head -n1)
[[ -n $cg_mount ]] || die "no cgroup2 mount"
cg_root=$cg_mount$cg_rel

# This script, the agent and every helper run on the other CPUs; trafgen alone on the
# sender CPU, at nice -20 (the receive path and the filters run in its context, see
# measure()): on a shared machine, other work then takes little of the measured CPU.
other_cpus=$(seq 0 $(($(nproc --all) - 1)) | grep -vx "$sender_cpu" | paste -sd, -)
[[ -n $other_cpus ]] || die "no CPU besides the sender CPU $sender_cpu"
taskset -p -c "$other_cpus" $$ >/dev/null

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
    ip netns del "$ns_rx" 2>/dev/null # its nft tables go with it
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
# No IPv6 on either side: no neighbour discovery or router solicitation frames among the
# measured ones (the persona would drop them by its default, not by country).
for ns in "$ns_tx" "$ns_rx"; do
    nsenter --net="/run/netns/$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add "$veth_tx" netns "$ns_tx" type veth peer name "$veth_rx" netns "$ns_rx"
in_tx ip addr add "$tx_addr/30" dev "$veth_tx"
in_rx ip addr add "$rx_addr/30" dev "$veth_rx"
in_tx ip link set "$veth_tx" up
in_rx ip link set "$veth_rx" up
in_tx ip link set lo up
in_rx ip link set lo up
# The receiver neither forwards nor has a route for the sampled destinations: a frame a
# filter lets through ends in its IP routing (InAddrErrors), silently.
in_rx sysctl -q -w net.ipv4.conf.all.forwarding=0 net.ipv4.conf.default.forwarding=0 \
    "net.ipv4.conf.$veth_rx.forwarding=0"
[[ $(in_rx ip -4 route show default) == "" ]] || die "the receiver netns has a default route"
# nsenter keeps the root netns's /sys: read links and counters through ip and /proc/net.
mac_of() { "$@" | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1) }'; }
tx_mac=$(mac_of in_tx ip -o link show dev "$veth_tx")
rx_mac=$(mac_of in_rx ip -o link show dev "$veth_rx")
[[ -n $tx_mac && -n $rx_mac ]] || die "cannot read the veth MACs"

# ---- destinations and frames -----------------------------------------------------------
# 64 addresses of DE prefixes, then n_denied of other countries' prefixes, each group
# spread evenly over its prefixes in address order ("ADDR CC" lines).
"$loader" addrs "$allow" 64 "$n_denied" "$db" >"$work/addrs"
head -n 64 "$work/addrs" >"$work/allowed"
tail -n +65 "$work/addrs" >"$work/denied"
[[ $(wc -l <"$work/denied") == "$n_denied" ]] || die "geo_load addrs gave too few addresses"
log "destinations: 64 in $allow; $n_denied outside it, in $(awk '{ print $2 }' "$work/denied" | sort -u | wc -l) countries"

frame() { # DADDR -> one trafgen packet: 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload = 64 bytes
    echo "{ eth(da=$rx_mac, sa=$tx_mac, type=0x0800), ipv4(saddr=$tx_addr, daddr=$1, ttl=64, proto=17), udp(sport=40000, dport=$dport), fill(0x41, 22) }"
}
# trafgen sends the config's packets round-robin.
# denied: each denied destination once per cycle.
awk '{ print $1 }' "$work/denied" | while read -r a; do frame "$a"; done >"$work/denied.cfg"
# established: 64 blocks of 16 frames, 15 to DE destinations (each of the 64 fifteen times
# per cycle) and one to the block's denied destination (the first 64 denied ones, round
# robin when there are fewer).
mapfile -t de_addrs < <(awk '{ print $1 }' "$work/allowed")
mapfile -t out_addrs < <(head -n 64 "$work/denied" | awk '{ print $1 }')
for ((b = 0; b < 64; b++)); do
    for ((k = 0; k < 15; k++)); do frame "${de_addrs[$(((b * 15 + k) % 64))]}"; done
    frame "${out_addrs[$((b % ${#out_addrs[@]}))]}"
done >"$work/established.cfg"
declare -A share # the mix's expected DE share (of frames a filter lets through)
share[denied]=0
share[established]=0.9375

# ---- nftables: the dataset's IPv4 prefixes, loaded once into the receiver netns ---------
# geo_load nft writes an inet table with geo4 and geo6 maps and an input chain; keep only
# geo4's elements (the traffic is IPv4) and use them in two tables: inet (prerouting) and
# netdev (ingress on the receiving veth). The chains are added per measurement.
"$loader" nft "$allow" "$db" | awk '/map geo4/ { on = 1 } /map geo6/ { on = 0 } on && / : (accept|drop)/' \
    >"$work/geo4.elements"
n4=$(wc -l <"$work/geo4.elements")
((n4 > 100000)) || die "only $n4 IPv4 prefixes for nft"
tables=()
[[ " $configs " == *" nftables "* ]] && tables+=("inet pbgv")
[[ " $configs " == *" nft-ingress "* ]] && tables+=("netdev pbgvn")
{
    for tbl in "${tables[@]}"; do
        echo "table $tbl {"
        echo "  map geo4 {"
        echo "    type ipv4_addr : verdict"
        echo "    flags interval"
        echo "    elements = {"
        cat "$work/geo4.elements"
        echo "    }"
        echo "  }"
        echo "}"
    done
} >"$work/geo4.nft"
t0=$(date +%s%N)
((${#tables[@]} == 0)) || in_rx nft -f "$work/geo4.nft"
t1=$(date +%s%N)
log "nft: $n4 IPv4 prefixes loaded into ${#tables[@]} interval map(s) in $(((t1 - t0) / 1000000)) ms"

nft_on() { # CONFIG -> adds the chain using the map
    case $1 in
        nftables) in_rx nft -f - <<EOF ;;
add chain inet pbgv pre { type filter hook prerouting priority 0; policy accept; }
add rule inet pbgv pre ip daddr vmap @geo4
EOF
        nft-ingress) in_rx nft -f - <<EOF ;;
add chain netdev pbgvn in { type filter hook ingress device "$veth_rx" priority 0; policy accept; }
add rule netdev pbgvn in ip daddr vmap @geo4
EOF
    esac
}
nft_off() {
    case $1 in
        nftables) in_rx nft flush chain inet pbgv pre && in_rx nft delete chain inet pbgv pre ;;
        nft-ingress) in_rx nft flush chain netdev pbgvn in && in_rx nft delete chain netdev pbgvn in ;;
    esac
}

# ---- measurement -------------------------------------------------------------------------
# A process parked in the rx netns: its /proc/PID/net/dev is the rx netns's, so the rate
# samples below read the counter and the clock without forking (on a busy machine a fork
# between the read and the clock would skew the rate).
nsenter --net="/run/netns/$ns_rx" sleep infinity &
rx_proc=$!
sample() { # -> globals RX (the receiving veth's rx_packets) and NOW (µs), no fork
    local l f
    while read -r l; do
        if [[ $l == "$veth_rx:"* ]]; then
            read -r -a f <<<"${l#*:}"
            RX=${f[1]}
            break
        fi
    done <"/proc/$rx_proc/net/dev"
    NOW=${EPOCHREALTIME//[!0-9]/}
}
rx_packets() { sample; echo "$RX"; }
routed_out() { # InAddrErrors of the receiver: frames that reached routing, found no route
    in_rx awk '$1 == "Ip:" && $2 ~ /^[0-9]+$/ { print $6; exit }' /proc/net/snmp
}
icmp_out() { in_rx awk '$1 == "Icmp:" && $2 ~ /^[0-9]+$/ { print $16; exit }' /proc/net/snmp; }

# measure LABEL MIX EXPECT_SHARE -> prints "pps total passed"; fails unless the share of
# frames that got through the filter is EXPECT_SHARE (within 1%).
measure() {
    local label=$1 mix=$2 expect=$3 a0 a1 p0 p1 r0 r1 t0 t1 pps
    a0=$(rx_packets); p0=$(routed_out)
    # trafgen ends on its own: `timeout` sends SIGINT to its process group (trafgen and the
    # worker it forks) after $duration seconds. The rate is read over the middle of that.
    in_tx timeout -s INT "$duration" taskset -c "$sender_cpu" trafgen --dev "$veth_tx" \
        --conf "$work/$mix.cfg" --cpus 1 --no-sock-mem --notouch-irq --num 0 --no-cpu-stats \
        >"$work/trafgen.log" 2>&1 &
    trafgen_pid=$!
    # trafgen pins its worker to CPU 0 itself (worker i on CPU i), whatever taskset said:
    # move every trafgen process to the sender CPU once the worker runs, then raise its
    # priority (only then: at nice -20 on this script's CPU it would starve the script).
    sleep 0.3
    local p
    for p in $(ip netns pids "$ns_tx"); do
        if [[ $(cat "/proc/$p/comm" 2>/dev/null) == trafgen ]]; then
            taskset -a -p -c "$sender_cpu" "$p" >/dev/null
            renice -n -20 -p "$p" >/dev/null
        fi
    done
    sleep 0.7
    kill -0 "$trafgen_pid" 2>/dev/null || { cat "$work/trafgen.log" >&2; die "trafgen exited"; }
    sample; r0=$RX; t0=$NOW
    sleep "$(awk -v d="$duration" 'BEGIN { print d - 1.5 }')"
    sample; r1=$RX; t1=$NOW
    local rc=0
    wait "$trafgen_pid" || rc=$?
    trafgen_pid=
    # 124: stopped by timeout, the normal end.
    [[ $rc == 124 || $rc == 0 ]] || { cat "$work/trafgen.log" >&2; die "$label: trafgen failed ($rc)"; }
    sleep 0.2 # the backlog drains
    a1=$(rx_packets); p1=$(routed_out)
    pps=$(((r1 - r0) * 1000000 / (t1 - t0)))
    local total=$((a1 - a0)) passed=$((p1 - p0))
    ((total > 100000)) || die "$label: only $total frames arrived"
    awk -v p="$passed" -v t="$total" -v e="$expect" 'BEGIN { d = p / t - e; exit !(d < 0.01 && d > -0.01) }' ||
        die "$label: $passed of $total frames got through the filter, expected a share of $expect"
    log "$label: $pps pps ($passed of $total frames passed the filter)"
    echo "$pps $total $passed"
}

# ---- agent -------------------------------------------------------------------------------
mkdir -p "$run_dir" "$state"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mkdir "$cg_root"
# embedded defaults, whatever /etc/personabpf/agent.toml says, and the dataset under test
printf '[geo]\ndatabase = "%s"\n' "$db" >"$work/agent.toml"
"$agentd" --config "$work/agent.toml" --socket "$sock" --state-dir "$state" --bpffs-root "$bpffs" \
    --cgroup-root "$cg_rel" --log-level warn >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
    cli status >/dev/null 2>&1 && break
    kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; agent_pid=; die "personabpfd exited"; }
    sleep 0.1
done
cli status >/dev/null || { cat "$work/agent.log" >&2; die "personabpfd did not answer"; }

# The interface faces the sender: its frames are the workload's egress, judged at the
# veth's tc ingress, their remote the destination.
cat >"$work/persona.pdl" <<EOF
persona $persona {
  security {
    mode enforce
    default ingress deny
    default egress deny
    allow egress udp port $dport to any
  }
  sovereignty {
    allow countries { $allow }
    unknown deny
    on-violation drop
  }
}
EOF
t0=$(date +%s%N)
cli persona apply -m "geo_veth_compare" "$work/persona.pdl" >"$work/apply.log" 2>&1 ||
    { cat "$work/apply.log" >&2; die "persona apply failed"; }
t1=$(date +%s%N)
grep -qi warn "$work/apply.log" && { cat "$work/apply.log" >&2; die "persona apply warned (geo data?)"; }
geo=$(cli --json geo info)
[[ $(jq -r '.loaded' <<<"$geo") == true ]] || { echo "$geo" >&2; die "the agent loaded no geo data"; }
log "personabpf: persona applied in $(((t1 - t0) / 1000000)) ms (geo data loaded:" \
    "$(jq -r '.dataset.ipv4_prefixes' <<<"$geo") IPv4 + $(jq -r '.dataset.ipv6_prefixes' <<<"$geo") IPv6 prefixes)"
# The kernel's trie places the sampled destinations as geo_load did.
while read -r a cc; do
    got=$(cli --json geo lookup "$a" | jq -r '.country')
    [[ $got == "$cc" ]] || die "geo lookup $a: $got, geo_load said $cc"
done < <(head -n 2 "$work/allowed"; awk 'NR % 97 == 1' "$work/denied")

pstat() { # -> "allowed_packets sovereignty_drops other_drops" of the persona's egress
    cli --json stats "$persona" | jq -r '.[0].egress as $e | ($e.dropped_by_reason // {}) as $d |
        "\($e.allowed_packets) \($d.sovereignty // 0) \(($e.denied_packets) - ($d.sovereignty // 0))"'
}

run_config() { # CONFIG MIX ROUND -> res[CONFIG,MIX,ROUND]
    local c=$1 mix=$2 r=$3 label="round $3: $2: $1" expect=${share[$2]} out s0 s1
    [[ $c == none ]] && expect=1
    case $c in
        none) out=$(measure "$label" "$mix" "$expect") ;;
        nftables | nft-ingress)
            nft_on "$c"
            out=$(measure "$label" "$mix" "$expect")
            nft_off "$c"
            ;;
        personabpf)
            cli bind --persona "$persona" --ifname "$veth_rx" --netns "$ns_rx" >/dev/null
            s0=$(pstat)
            out=$(measure "$label" "$mix" "$expect")
            s1=$(pstat)
            cli unbind --ifname "$veth_rx" --netns "$ns_rx" >/dev/null
            read -r _ total passed <<<"$out"
            read -r al0 sv0 ot0 <<<"$s0"
            read -r al1 sv1 ot1 <<<"$s1"
            log "$label: persona allowed $((al1 - al0)), dropped $((sv1 - sv0)) by sovereignty," \
                "$((ot1 - ot0)) for other reasons"
            ((ot1 - ot0 <= 10)) || die "$label: the persona dropped frames for other reasons than sovereignty"
            local miss=$((sv1 - sv0 - (total - passed)))
            ((miss <= 10 && miss >= -10)) ||
                die "$label: the persona's sovereignty drops ($((sv1 - sv0))) are not the frames stopped ($((total - passed)))"
            ;;
    esac
    res[$c,$mix,$r]=${out%% *}
}

# ---- the run -----------------------------------------------------------------------------
log "kernel $(uname -r), $(nproc --all) CPUs, $(trafgen -v 2>/dev/null | head -n1), $(nft -v)"
log "trafgen on CPU $sender_cpu, $duration s per configuration, mixes: $mixes, rounds: $rounds"
declare -A res
for ((round = 1; round <= rounds; round++)); do
    for mix in $mixes; do
        for c in $configs; do run_config "$c" "$mix" "$round"; done
    done
done
icmp=$(icmp_out)
((icmp == 0)) || die "the receiver sent $icmp ICMP messages"

# ---- table -------------------------------------------------------------------------------
median() { tr ' ' '\n' | awk 'NF' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
col() { # CONFIG,MIX -> median over rounds
    local vals=() r
    for ((r = 1; r <= rounds; r++)); do vals+=("${res[$1,$r]:-}"); done
    echo "${vals[*]}" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }
rcol() { # A B MIX -> median over rounds of the per-round ratio A/B (rounds are minutes
    # apart; on a shared machine the ratio within a round is the steadier figure)
    local vals=() r
    for ((r = 1; r <= rounds; r++)); do vals+=("$(ratio "${res[$1,$3,$r]:-0}" "${res[$2,$3,$r]:-0}")"); done
    echo "${vals[*]}" | tr ' ' '\n' | grep -vx -- - | median || true
}
dash() { echo "${1:--}"; }

echo
echo "64-byte UDP over veth, $n4 IPv4 prefixes; pps at the receiver (median of $rounds round(s));"
echo "ratios: median of the per-round ratios"
printf '%-12s %10s %10s %12s %11s %9s %13s\n' mix none nftables nft-ingress personabpf pbpf/nft pbpf/nft-ingr
for mix in $mixes; do
    printf '%-12s %10s %10s %12s %11s %9s %13s\n' "$mix" "$(dash "$(col "none,$mix")")" \
        "$(dash "$(col "nftables,$mix")")" "$(dash "$(col "nft-ingress,$mix")")" \
        "$(dash "$(col "personabpf,$mix")")" "$(dash "$(rcol personabpf nftables "$mix")")" \
        "$(dash "$(rcol personabpf nft-ingress "$mix")")"
done
if ((rounds > 1)); then
    echo
    echo "per round:"
    for ((r = 1; r <= rounds; r++)); do
        line="round $r:"
        for mix in $mixes; do
            line+=" $mix:"
            for c in $configs; do line+=" $c ${res[$c,$mix,$r]}"; done
            line+=" (pbpf/nft $(ratio "${res[personabpf,$mix,$r]:-0}" "${res[nftables,$mix,$r]:-0}"));"
        done
        echo "$line"
    done
fi
