#!/usr/bin/env bash
# bench/migration_bench.sh: how long `personabpf migrate send` takes to move a workload with
# N tracked flows (default 10,000) from one agent to another, end to end (issue 9, item 6:
# target < 100 ms for 10,000 conntrack entries). See docs/benchmarks.md, "Workload
# migration".
#
# Two agents on this kernel as two hosts (own sockets, state dirs, pin dirs and cgroup
# subtrees), with certificates from a CA made here; agent B listens on 127.0.0.1 (port
# picked by the kernel). A workload cgroup under A, bound to a persona with `default
# ingress deny`, holds N UDP sockets, each of which has sent one datagram to 127.0.0.1:9000
# (nothing listens: the loopback's port-unreachable comes back as a related ICMP error), so
# A tracks N flows. Each round sends the workload to a new cgroup under B (a full import:
# binding, N flows re-keyed, the persona version already there after round 1) and records:
#   wall     the CLI's wall clock, `personabpf migrate send` from exec to exit
#   total    the source agent's own count: export + connect + exchange
#   export   reading the flows and building the bundle on A
#   connect  TCP + TLS 1.3 handshake with mutual certificates
#   exchange the bundle to B, B's import (parse, check, compile, gate, bind, write the
#            flows), the reply back
#   import   B's import alone (its own count), then by phase after the table
# and checks that B then tracks the N flows for its cgroup (`personabpf conntrack ls`).
#
# Usage (root, after building personabpfd and personabpf in build-bench):
#   bench/migration_bench.sh [--build DIR] [--flows N] [--rounds R]
#
# Safety: traffic only on 127.0.0.1; cgroup programs attach only to the two agents' own
# cgroup subtrees /pbmb-<pid>-a and /pbmb-<pid>-b; everything is removed on every exit path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
flows=10000
rounds=5
while [[ $# -gt 0 ]]; do
    case $1 in
        --build) build=$2; shift 2 ;;
        --flows) flows=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        *) echo "usage: $0 [--build DIR] [--flows N] [--rounds R]" >&2; exit 2 ;;
    esac
done
log() { echo "migration_bench: $*" >&2; }
die() { log "$*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root"
agentd=$build/agent/personabpfd
cli_bin=$build/tools/personabpf
[[ -x $agentd && -x $cli_bin ]] || die "build personabpfd and personabpf in $build first"
command -v openssl >/dev/null || die "openssl is needed (scripts/setup.sh installs it)"
command -v python3 >/dev/null || die "python3 is needed"

id=$$
work=$(mktemp -d /tmp/pbmb-$id.XXXXXX)
cg_mount=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
    /proc/self/mountinfo | head -n1)
[[ -n $cg_mount ]] || die "no cgroup2 mount"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

declare -A pid
maker_pid=
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [[ -n $maker_pid ]] && { kill "$maker_pid" 2>/dev/null; wait "$maker_pid" 2>/dev/null; }
    for h in a b; do
        if [[ -n ${pid[$h]:-} ]]; then
            kill -TERM "${pid[$h]}" 2>/dev/null
            for _ in $(seq 50); do kill -0 "${pid[$h]}" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "${pid[$h]}" 2>/dev/null
            wait "${pid[$h]}" 2>/dev/null
        fi
        local bpffs=/sys/fs/bpf/pbmb-$id-$h state=$work/$h/state
        if [[ -d $bpffs || -d $state ]]; then
            "$agentd" --uninstall --bpffs-root "$bpffs" --state-dir "$state" --purge-state \
                >"$work/uninstall-$h.log" 2>&1 || { log "agent $h uninstall failed:"; cat "$work/uninstall-$h.log" >&2; rc=1; }
        fi
        local root=$cg_mount/pbmb-$id-$h
        if [[ -d $root ]]; then
            find "$root" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
            rmdir "$root" || { log "warning: $root still exists"; rc=1; }
        fi
        [[ -d $bpffs ]] && { log "warning: $bpffs still exists"; rc=1; }
    done
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- certificates: one CA, host-a and host-b ---------------------------------------------
pki=$work/pki
mkdir -p "$pki"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 1 \
    -subj "/CN=pbmb-ca" 2>/dev/null
for h in a b; do
    openssl req "${ec[@]}" -keyout "$pki/$h.key" -out "$pki/$h.csr" -subj "/CN=host-$h" 2>/dev/null
    printf 'subjectAltName=DNS:host-%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' \
        "$h" >"$pki/$h.ext"
    openssl x509 -req -in "$pki/$h.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -out "$pki/$h.crt" -days 1 -extfile "$pki/$h.ext" 2>/dev/null
done

# ---- the two agents ---------------------------------------------------------------------
cli() { local h=$1; shift; "$cli_bin" --socket "$work/$h/agent.sock" "$@"; }
start_agent() { # HOST PEER LISTEN
    local h=$1 peer=$2 listen=$3
    mkdir -p "$work/$h/state" "$cg_mount/pbmb-$id-$h"
    {
        printf '[migration]\ncert = "%s"\nkey = "%s"\nca = "%s"\npeers = ["host-%s"]\n' \
            "$pki/$h.crt" "$pki/$h.key" "$pki/ca.crt" "$peer"
        [[ -n $listen ]] && printf 'listen = "%s"\n' "$listen"
    } >"$work/$h/agent.toml"
    "$agentd" --config "$work/$h/agent.toml" --socket "$work/$h/agent.sock" \
        --state-dir "$work/$h/state" --bpffs-root "/sys/fs/bpf/pbmb-$id-$h" \
        --cgroup-root "/pbmb-$id-$h" --log-level warn >"$work/$h/agent.log" 2>&1 &
    pid[$h]=$!
    for _ in $(seq 100); do
        cli "$h" status >/dev/null 2>&1 && return 0
        kill -0 "${pid[$h]}" 2>/dev/null || { cat "$work/$h/agent.log" >&2; pid[$h]=; die "agent $h exited"; }
        sleep 0.1
    done
    cat "$work/$h/agent.log" >&2
    die "agent $h did not answer"
}
start_agent a b ""
start_agent b a 127.0.0.1:0
to=$(cli b -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["migration"]["address"])')
[[ $to == 127.0.0.1:* ]] || die "agent b listens on '$to'"

cat >"$work/persona.pdl" <<'EOF'
persona pbmb {
  security {
    mode enforce
    default ingress deny
    default egress deny
    allow egress udp port 9000 to any
  }
}
EOF
cli a persona apply "$work/persona.pdl" >/dev/null
mkdir "$cg_mount/pbmb-$id-a/w"
cli a bind --persona pbmb --cgroup "/pbmb-$id-a/w" >/dev/null

# ---- the workload's flows: N sockets created inside the bound cgroup -----------------------
cat >"$work/maker.py" <<'EOF'
import resource, signal, socket, sys
n, ready = int(sys.argv[1]), sys.argv[2]
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, n + 64))
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("127.0.0.1", 9000))
    socks.append(s)
open(ready, "w").close()
signal.pause()
EOF
# The process joins the cgroup before it creates a socket (a socket keeps its cgroup).
sh -c 'echo $$ >"$1/cgroup.procs" && exec python3 "$2" "$3" "$4"' sh \
    "$cg_mount/pbmb-$id-a/w" "$work/maker.py" "$flows" "$work/ready" &
maker_pid=$!
for _ in $(seq 600); do
    [[ -e $work/ready ]] && break
    kill -0 "$maker_pid" 2>/dev/null || die "the flow maker exited"
    sleep 0.1
done
[[ -e $work/ready ]] || die "the flow maker did not finish"

count_flows() { # HOST CGROUP -> flows tracked for the cgroup
    cli "$1" -j conntrack ls --limit 1000000 | python3 -c '
import json, sys
cg = sys.argv[1]
rows = json.load(sys.stdin)
rows = rows.get("flows", rows) if isinstance(rows, dict) else rows
print(sum(1 for r in rows if r.get("cgroup") == cg or r.get("workload") == cg))' "$2"
}

log "kernel $(uname -r), $(nproc) CPUs; $flows flows, $rounds rounds; agent b at $to"
printf '%-6s %8s %8s %8s %8s %9s %8s %9s %7s\n' round wall total export connect exchange import bytes flows
declare -a walls totals phases
for r in $(seq "$rounds"); do
    target=/pbmb-$id-b/w$r
    mkdir "$cg_mount$target"
    t0=$(date +%s%N)
    out=$(cli a -j migrate send --cgroup "/pbmb-$id-a/w" --to "$to" --peer-name host-b \
        --target-cgroup "$target")
    t1=$(date +%s%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
    read -r total export connect exchange import bytes moved phase < <(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
ms = r["ms"]
ph = r["target"].get("import_phases_ms", {})
print("%.1f %.1f %.1f %.1f %.1f %d %d %s" % (ms["total"], ms["export"], ms["connect"],
      ms["exchange"], r["target"]["import_ms"], r["bytes"], r["flows"],
      ",".join("%s=%.1f" % (k, v) for k, v in ph.items()) or "-"))' "$out")
    [[ $moved == "$flows" ]] || die "round $r: $moved flows sent, expected $flows"
    printf '%-6s %8s %8s %8s %8s %9s %8s %9s %7s\n' "$r" "$wall" "$total" "$export" "$connect" \
        "$exchange" "$import" "$bytes" "$moved"
    walls+=("$wall")
    totals+=("$total")
    phases+=("round $r: $phase")
done
# B's import by phase (import_phases_ms): checks (bundle, compile, gate, repository), the
# journal (the entries there before, the file written and fsynced), persona applied, bound,
# flows written, commit (the journal removed).
log "import phases, ms:"
printf '  %s\n' "${phases[@]}"
# B tracks the flows for the last target cgroup.
at_b=$(count_flows b "/pbmb-$id-b/w$rounds")
[[ $at_b -ge $flows ]] || die "agent b tracks $at_b flows for /pbmb-$id-b/w$rounds, expected $flows"
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
log "median of $rounds rounds: wall $(median "${walls[@]}") ms, agent total $(median "${totals[@]}") ms; agent b tracks $at_b flows for the last target"
