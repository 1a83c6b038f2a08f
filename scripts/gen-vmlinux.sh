#!/usr/bin/env bash
# Regenerates vmlinux.h (the kernel's types for BPF C) from the running kernel's BTF.
# The build does the same (cmake/BpfObject.cmake); this is for editors and one-off builds.
set -euo pipefail

usage() {
    echo "usage: $0 [OUTPUT] [BTF]" >&2
    echo "  OUTPUT  where to write vmlinux.h (default: build/vmlinux/vmlinux.h)" >&2
    echo "  BTF     BTF file to dump (default: /sys/kernel/btf/vmlinux)" >&2
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo_root/build/vmlinux/vmlinux.h}"
btf="${2:-/sys/kernel/btf/vmlinux}"

bpftool="$(command -v bpftool || true)"
for candidate in /usr/sbin/bpftool /usr/local/sbin/bpftool; do
    [[ -n "$bpftool" ]] && break
    [[ -x "$candidate" ]] && bpftool="$candidate"
done
if [[ -z "$bpftool" ]]; then
    echo "gen-vmlinux: bpftool not found (Debian: apt install bpftool)" >&2
    exit 1
fi
if [[ ! -r "$btf" ]]; then
    echo "gen-vmlinux: cannot read $btf (kernel without CONFIG_DEBUG_INFO_BTF?)" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
# Write beside the target and rename, so a failed dump never leaves a truncated header.
tmp="$(mktemp "$out.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
"$bpftool" btf dump file "$btf" format c >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "gen-vmlinux: wrote $out ($(wc -l <"$out") lines) from $btf"
