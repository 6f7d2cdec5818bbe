#!/usr/bin/env bash
# The whole comparison with redis-server on this machine (Benchmarks/compare_all.py: single
# node, collections, threads, replicated writes, allocations), written into Benchmarks/README.md's
# "Latest comparison" with the date, the commit and the machine.
#
#   bash Benchmarks/run.sh                      # installs redis-server/redis-tools, builds release
#   SESSIONFED_BIN=path bash Benchmarks/run.sh  # use an existing binary
#   bash Benchmarks/run.sh --no-write           # print instead of writing the README
#
# Not part of CI: numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for package in redis-server redis-tools; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts a redis-server service on install; the benchmark runs its own.

if [ -z "${SESSIONFED_BIN:-}" ]; then
  swift build -c release --product sessionfed
  swift build -c release --product wan-proxy
  SESSIONFED_BIN="$(swift build -c release --show-bin-path)/sessionfed"
fi
export SESSIONFED_BIN
exec python3 Benchmarks/compare_all.py "$@"
