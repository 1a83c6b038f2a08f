#!/usr/bin/env bash
# The main job from a fresh Debian 12 machine, as root: install what is missing, build,
# then run the agent enforcing the example personas on a demo workload.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$root/build"
exec "$root/scripts/demo.sh" "$root/build"
