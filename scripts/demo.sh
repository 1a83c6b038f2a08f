#!/usr/bin/env bash
# The main job's demo, as root after a build: run personabpfd on a cgroup subtree and a
# throwaway netns of its own, bind a persona to a workload cgroup, show one allowed and
# one denied connection, and a binding rule binding a cgroup as it appears. Usage: scripts/demo.sh [BUILD_DIR]  (or BUILD_DIR=...; ./build)
#
# Safety: programs attach only to the subtree /personabpf-demo this script creates, never
# to the cgroup2 root or an interface of the root netns; traffic goes only to an address
# inside the netns created here; everything is removed on every exit path.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${BUILD_DIR:-./build}}

die() { echo "demo: error: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

[[ $EUID -eq 0 ]] || die "run as root (the agent loads BPF programs)"
[[ -d $build ]] || die "no build dir '$build' (build first: scripts/build.sh $build)"
build=$(cd "$build" && pwd)

find_bin() {
    local f
    for f in "$build/$2/$1" "$build/$1" "$build/bin/$1"; do
        [[ -x $f ]] && { echo "$f"; return; }
    done
    f=$(find "$build" -maxdepth 3 -type f -name "$1" -perm -u+x 2>/dev/null | head -n1)
    [[ -n $f ]] || die "$1 not found under $build"
    echo "$f"
}
agentd=$(find_bin personabpfd agent)
cli_bin=$(find_bin personabpf tools)
for tool in ip nsenter nc ss; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done

# ---- instance: every path of its own, so it never meets a production agent -------------
run_dir=/run/personabpf-demo
sock=$run_dir/agent.sock
state=$run_dir/state
bpffs=/sys/fs/bpf/personabpf-demo
cg_rel=/personabpf-demo
cg_mount=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
    /proc/self/mountinfo | head -n1)
[[ -n $cg_mount ]] || die "no cgroup2 mount in /proc/self/mountinfo"
cg_root=$cg_mount$cg_rel
workload_rel=$cg_rel/web
workload=$cg_mount$workload_rel
auto_rel=$cg_rel/auto-1 # made after a binding rule for $cg_rel/auto-*: bound by the agent
auto=$cg_mount$auto_rel

ns=pbpf-demo-$$
veth_host=pbd$$h # IFNAMSIZ: at most 15 bytes, pid_max is 7 digits
veth_peer=pbd$$p
# 198.18.X.0/30 with X from our pid; skip subnets already routed here (another demo, a test).
x=$(($$ % 250 + 1))
for _ in $(seq 250); do
    # shellcheck disable=SC2143 # grep -q under pipefail could SIGPIPE ip and misreport
    [[ -z $(ip -4 route show to match "198.18.$x.1" | grep -v '^default') ]] && break
    x=$((x % 250 + 1))
done
host_addr=198.18.$x.1
server_addr=198.18.$x.2
allowed_port=8080
denied_port=9090
persona=demo-client

cli() { "$cli_bin" --socket "$sock" "$@"; }

# ---- cleanup: registered before anything is created --------------------------------------
agent_pid=
server_pids=()
created_cg_root=0
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null; done
    if [[ -n $agent_pid ]]; then
        kill -TERM "$agent_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$agent_pid" 2>/dev/null
        wait "$agent_pid" 2>/dev/null
    fi
    # The pinned links outlive the agent by design; --uninstall detaches and unpins them.
    if [[ -d $bpffs || -d $state ]]; then
        local out
        out=$("$agentd" --uninstall --bpffs-root "$bpffs" --state-dir "$state" --purge-state 2>&1) ||
            { printf 'demo: uninstall failed:\n%s\n' "$out" >&2; rc=1; }
    fi
    # The client processes have exited, so the cgroups are empty and rmdir suffices.
    [[ -d $workload ]] && rmdir "$workload"
    [[ -d $auto ]] && rmdir "$auto"
    [[ $created_cg_root == 1 && -d $cg_root ]] && rmdir "$cg_root"
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
    ip link del "$veth_host" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    [[ -d $bpffs ]] && { echo "demo: warning: $bpffs still exists" >&2; rc=1; }
    rm -rf "$run_dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One demo at a time: the instance paths are fixed so the cleanup of a crashed run knows them.
if [[ -S $sock ]] && cli status >/dev/null 2>&1; then
    trap - EXIT
    die "an agent already answers on $sock (another demo running?)"
fi
if [[ -d $bpffs || -d $run_dir || -d $cg_root ]]; then
    echo "demo: removing leftovers of an earlier run"
    "$agentd" --uninstall --bpffs-root "$bpffs" --state-dir "$state" --purge-state >/dev/null 2>&1 || true
    if [[ -d $cg_root ]]; then
        find "$cg_root" -depth -type d -exec rmdir {} + 2>/dev/null ||
            die "$cg_root is busy (processes left in it?); remove it by hand"
    fi
    rm -rf "$run_dir"
fi

# Netns of demos that died without cleanup (SIGKILL): the name carries the demo's pid.
for old in $(ip netns list | awk '$1 ~ /^pbpf-demo-[0-9]+$/ { print $1 }'); do
    old_pid=${old#pbpf-demo-}
    # A zombie (killed, not yet reaped) counts as dead.
    [[ $(ps -o stat= -p "$old_pid" 2>/dev/null) == [^Z]* ]] && continue
    echo "demo: removing netns $old of an earlier run"
    ip netns pids "$old" | xargs -r kill 2>/dev/null || true
    ip link del "pbd${old_pid}h" 2>/dev/null || true
    ip netns del "$old" || true
done

mkdir -p "$run_dir" "$state"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
if [[ ! -d $cg_root ]]; then
    mkdir "$cg_root"
    created_cg_root=1
fi

# ---- agent ---------------------------------------------------------------------------------
step "starting personabpfd (socket $sock, cgroup root $cg_rel under $cg_mount)"
# --config /dev/null: embedded defaults, whatever /etc/personabpf/agent.toml says.
"$agentd" --config /dev/null --socket "$sock" --state-dir "$state" --bpffs-root "$bpffs" \
    --cgroup-root "$cg_rel" --log-level info >"$run_dir/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
    cli status >/dev/null 2>&1 && break
    kill -0 "$agent_pid" 2>/dev/null || { cat "$run_dir/agent.log" >&2; agent_pid=; die "personabpfd exited"; }
    sleep 0.1
done
cli status >/dev/null || { cat "$run_dir/agent.log" >&2; die "personabpfd did not answer within 10s"; }
cli status

step "applying the example personas"
cli pdl check "$root"/examples/*.pdl
# Only the personas the demo workloads use: the other examples carry bind blocks for
# real host workloads (nginx.service, tap-*, user alice) that a demo must not claim.
cli persona apply -m "demo" "$root"/examples/demo.pdl "$root"/examples/web.pdl
cli persona ls

# ---- network: a netns with two servers behind a veth ---------------------------------------
step "netns $ns: servers on $server_addr:$allowed_port and :$denied_port"
ip netns add "$ns"
ip link add "$veth_host" type veth peer name "$veth_peer"
ip link set "$veth_peer" netns "$ns"
ip addr add "$host_addr/30" dev "$veth_host"
ip link set "$veth_host" up
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
in_ns ip addr add "$server_addr/30" dev "$veth_peer"
in_ns ip link set "$veth_peer" up
in_ns ip link set lo up
for port in "$allowed_port" "$denied_port"; do
    # -d: never read stdin; -k: keep accepting. nsenter execs nc, so $! is the server.
    in_ns nc -dlk "$server_addr" "$port" >/dev/null 2>&1 &
    server_pids+=($!)
done
for port in "$allowed_port" "$denied_port"; do
    for _ in $(seq 50); do
        [[ -n $(in_ns ss -Hltn "sport = :$port") ]] && break
        sleep 0.1
    done
    [[ -n $(in_ns ss -Hltn "sport = :$port") ]] || die "server on port $port did not start"
done

# ---- workload ------------------------------------------------------------------------------
step "workload cgroup $workload_rel bound to $persona"
mkdir "$workload"
cli bind --persona "$persona" --cgroup "$workload_rel"
cli bindings ls

# denied_egress PERSONA: the persona's denied egress packets, from the `stats` table
# (PERSONA DIR ALLOWED-PKTS ALLOWED-BYTES DENIED-PKTS ...).
denied_egress() {
    cli stats "$1" | awk -v p="$1" '$1 == p && $2 == "egress" { print $5; found = 1 }
        END { if (!found) print 0 }'
}

# Runs nc from a fresh process inside the workload cgroup: a socket belongs to the cgroup
# it is created in, so the process moves itself first, then execs the client.
connect() {
    sh -c 'echo $$ > "$1/cgroup.procs" && exec nc -z -w 2 "$2" "$3"' sh \
        "$workload" "$server_addr" "$1" >/dev/null 2>&1
}

failures=0
results=()
probe() { # probe PORT EXPECTED(allowed|denied)
    local port=$1 expected=$2 observed denied_before denied_after verdict
    denied_before=$(denied_egress "$persona")
    if connect "$port"; then observed=allowed; else observed=denied; fi
    denied_after=$(denied_egress "$persona")
    verdict=PASS
    [[ $observed == "$expected" ]] || verdict=FAIL
    # A denial must be the persona's doing (its deny counter moved), not a dead server.
    if [[ $observed == denied && $denied_after -le $denied_before ]]; then
        verdict=FAIL
        observed="denied, but not by the persona"
    fi
    [[ $verdict == PASS ]] || failures=$((failures + 1))
    results+=("$(printf '%-4s  tcp %s:%-5s  expected %-7s  observed %s' \
        "$verdict" "$server_addr" "$port" "$expected" "$observed")")
}

step "connections from the workload"
probe "$allowed_port" allowed
probe "$denied_port" denied
printf '%s\n' "${results[@]}"

step "automatic binding: a rule for $cg_rel/auto-*, then a new cgroup $auto_rel"
cli rules add --persona "$persona" --cgroup "$cg_rel/auto-*"
mkdir "$auto"
for _ in $(seq 50); do
    cli bindings ls | grep -q -- "$auto_rel " && break
    sleep 0.1
done
if cli bindings ls | grep -q -- "$auto_rel "; then
    results+=("$(printf '%-4s  %s bound by the rule as it appeared' PASS "$auto_rel")")
else
    failures=$((failures + 1))
    results+=("$(printf '%-4s  %s not bound by the rule within 5 s' FAIL "$auto_rel")")
fi
cli rules ls
printf '%s\n' "${results[-1]}"

step "personabpf stats $persona"
cli stats "$persona"
step "personabpf bindings ls"
cli bindings ls
step "personabpf conntrack ls --persona $persona (the allowed connection, tracked)"
cli conntrack ls --persona "$persona"
step "personabpf events --persona $persona (verdicts: the new flow and the drops)"
cli events -n 10 --persona "$persona"

if ((failures > 0)); then
    echo
    echo "demo: FAILED: $failures of ${#results[@]} checks did not behave as the persona and its rule say"
    echo "--- agent log ($run_dir/agent.log)"
    tail -n 40 "$run_dir/agent.log"
    exit 1
fi
echo
echo "demo: OK: the persona allowed tcp/$allowed_port and denied tcp/$denied_port; a rule bound $auto_rel as it appeared"
