#!/usr/bin/env bash
# Interop stories: real clients (redis-cli, redis-py, Flask-Session, Django, node-redis,
# phpredis) against a real `sessionfed node`, loopback only. See Tests/Interop/.
#
#   bash scripts/interop/run.sh            # installs what is missing, builds, runs pytest
#   SESSIONFED_BIN=/path/to/sessionfed bash scripts/interop/run.sh   # skip the build
#
# Exits with pytest's status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

# Debian packages: redis-cli, node + node-redis, php + phpredis, redis-server (the reference
# sorted-set replies are diffed against). graphviz and chromium check `sessionfed topology graph`
# output (DOT rendered, SVG screenshotted).
DEBIAN_PACKAGES=(redis-tools redis-server nodejs node-redis php-cli php-redis graphviz chromium fonts-dejavu-core)
# PyPI packages, pinned to the versions these tests were verified with.
PYPI_PACKAGES=(
  "pytest==9.0.3"
  "redis==8.1.0"
  "Flask==3.1.3"
  "Flask-Session==0.8.0"
  "Django==5.2.19"
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  # nodejs may come from another repository under the same name; any install will do.
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "interop: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! python3 -m pip install -q --disable-pip-version-check "${PYPI_PACKAGES[@]}"; then
  echo "interop: pip install failed" >&2
  exit 1
fi

if [ -z "${SESSIONFED_BIN:-}" ]; then
  echo "interop: building sessionfed (release, scratch path .build-interop)"
  swift build -c release --product sessionfed --scratch-path .build-interop
  swift build -c release --product wan-proxy --scratch-path .build-interop
  SESSIONFED_BIN="$ROOT/.build-interop/release/sessionfed"
fi
export SESSIONFED_BIN
echo "interop: using $SESSIONFED_BIN"

export PYTHONDONTWRITEBYTECODE=1
status=0
python3 -m pytest -q -p no:cacheprovider Tests/Interop || status=$?
exit "$status"
