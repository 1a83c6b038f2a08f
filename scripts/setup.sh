#!/usr/bin/env bash
# Installs every Debian package personabpf needs to build, run its demo and run its tests.
# Idempotent: installs only what is missing. Run as root on Debian 12.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsqlite3-dev libcpp-httplib-dev
  libnl-3-dev libnl-route-3-dev libtomlplusplus-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libclang-rt-14-dev clang-format git
  # demo and integration tests: netns, veth, traffic
  iproute2 iputils-ping netcat-openbsd procps util-linux sqlite3 curl
  # automatic binding tests: a real user (useradd, userdel)
  passwd
  # bench/veth_compare.sh: trafgen, and the firewalls it compares against
  netsniff-ng nftables iptables
  # QoS tests: shaping accuracy and priority measured with real TCP
  iperf3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# bpffs is needed for pinning; mount it if this machine has not.
if ! mountpoint -q /sys/fs/bpf; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi
