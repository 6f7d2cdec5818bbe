#!/usr/bin/env bash
# Builds the three libFuzzer targets (README "Fuzzing") and runs each for a bounded time,
# seeded by its committed corpus (Fuzz/Corpus/<target>, read only) with a fresh working corpus,
# one process at a time. Prints each target's executions, speed and crashes and the totals;
# exits non-zero if any target crashed, keeping the input under .build-fuzz/crashes/<target>.
#
#   bash scripts/fuzz/run.sh [SECONDS_PER_TARGET]     (default 60)
#   FUZZ_MERGE=1 bash scripts/fuzz/run.sh 600         also minimize what the run found into
#                                                      the committed corpus (-set_cover_merge=1)
#
# Needs only the Swift toolchain (libFuzzer ships with it). The targets are built with
# -sanitize=fuzzer (coverage feedback and libFuzzer's main) and -sanitize=address: the parsers
# read through unsafe buffer pointers, whose bounds release builds do not check.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
scratch="$root/.build-fuzz"
targets=(FuzzRESPParser FuzzFrameDecoder FuzzTopologyParser)
# Longest input per target. Cost grows with length, and the check's small RESP limits are crossed
# within a few dozen bytes; frames get room for the largest seed (under 800 bytes), topology
# files for the largest example (about 2 KiB).
declare -A max_len=([FuzzRESPParser]=512 [FuzzFrameDecoder]=1024 [FuzzTopologyParser]=4096)
# -DFUZZING drops the replaying main each target has for ordinary builds (libFuzzer brings its own).
flags=(-c release --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING)

cd "$root"
# A trap is libFuzzer's to report; Swift's own backtracer would only slow each crash down.
export SWIFT_BACKTRACE=enable=no
for target in "${targets[@]}"; do
    swift build "${flags[@]}" --product "$target"
done
bin="$(swift build "${flags[@]}" --show-bin-path)"

run="$scratch/run"
rm -rf "$run"
status=0
total_runs=0
total_crashes=0
rows=()
for target in "${targets[@]}"; do
    mkdir -p "$run/$target/corpus" "$scratch/crashes/$target"
    echo "== $target: ${seconds}s from Fuzz/Corpus/$target ($(ls "Fuzz/Corpus/$target" | wc -l) files)"
    set +e
    # -timeout: an input taking 10 s is a hang; -rss_limit_mb: a parser must not balloon on a few KiB.
    "$bin/$target" "$run/$target/corpus" "Fuzz/Corpus/$target" \
        -max_total_time="$seconds" -max_len="${max_len[$target]}" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$scratch/crashes/$target/" >"$run/$target/log" 2>&1
    code=$?
    set -e
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/$target/log" | tail -1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run/$target/log" | tail -1)"
    crashes=0
    if [ "$code" -ne 0 ]; then
        crashes=1
        status=1
        tail -40 "$run/$target/log"
        echo "$target CRASHED (exit $code); input kept in .build-fuzz/crashes/$target/;" \
            "replay it with: swift run $target .build-fuzz/crashes/$target/<file>"
    fi
    total_runs=$((total_runs + ${runs:-0}))
    total_crashes=$((total_crashes + crashes))
    rows+=("$(printf '%-20s %8s %14s %10s %8s' "$target" "$seconds" "${runs:-?}" "${speed:-?}" "$crashes")")
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$code" -eq 0 ]; then
        # Edges only, fewest files covering them: the committed corpus is for regression in
        # every `swift test`, and hit counts would multiply its files for little.
        "$bin/$target" -set_cover_merge=1 -use_counters=0 "Fuzz/Corpus/$target" "$run/$target/corpus" >"$run/$target/merge.log" 2>&1
        echo "merged: $(ls "Fuzz/Corpus/$target" | wc -l) files in Fuzz/Corpus/$target"
    fi
done

echo
echo "fuzzing $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), ${seconds}s per target"
printf '%-20s %8s %14s %10s %8s\n' target seconds executions exec/s crashes
printf '%s\n' "${rows[@]}"
printf '%-20s %8s %14s %10s %8s\n' total "" "$total_runs" "" "$total_crashes"
exit "$status"
