#!/usr/bin/env bash
# Federation benchmarks (WAN bytes per update, cross-site latency through an emulated WAN,
# coalescing savings) against a release build. Not part of CI; record results in
# Benchmarks/README.md.
#
#   bash Benchmarks/federation.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check "pytest==9.0.3" "redis==8.1.0"
if [ -z "${SESSIONFED_BIN:-}" ]; then
  swift build -c release --product sessionfed
  SESSIONFED_BIN="$(swift build -c release --show-bin-path)/sessionfed"
fi
export SESSIONFED_BIN
exec python3 Benchmarks/federation.py "$@"
