"""Collections of any size: one hash and one set growing to --range elements, side by side.

Runs `redis-benchmark -r RANGE -t hset,sadd -n REQUESTS -c 50` against redis-server and
against a single sessionfed node (its `myhash` and `myset` grow to RANGE fields and
members) and prints requests per second and the ratio. A run that does not finish within
--timeout seconds is reported as such (before collections cost O(1) per element, one hash
growing to 100,000 fields did not finish).

  SESSIONFED_BIN=.build-release/release/sessionfed python3 Benchmarks/collections.py
"""

import argparse
import os
import subprocess
import sys
import time

from compare_redis import free_ports, start_redis, start_sessionfed, stop, wait_for_port


def run(port, tests, requests, key_range, timeout):
    started = time.monotonic()
    try:
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-t", tests, "-c", "50", "-r", str(key_range), "-n", str(requests), "--csv"],
            capture_output=True, text=True, check=True, timeout=timeout,
        ).stdout
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started
    results = {}
    for line in out.splitlines():
        parts = [p.strip('"') for p in line.split(",")]
        if parts and parts[0] in ("HSET", "SADD"):
            results[parts[0]] = float(parts[1])
    return results, time.monotonic() - started


def sizes(port):
    def ask(*command):
        return subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True, text=True).stdout.strip()
    return ask("HLEN", "myhash"), ask("SCARD", "myset")


def measure(start, requests, key_range, timeout):
    port = free_ports(1)[0]
    process, cleanup = start(port)
    try:
        wait_for_port(port, process)
        results, seconds = run(port, "hset,sadd", requests, key_range, timeout)
        return results, seconds, sizes(port) if results else ("-", "-")
    finally:
        stop(process, cleanup)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--range", type=int, default=100_000, help="distinct fields and members (-r)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds before a run counts as not finishing")
    args = parser.parse_args()
    print(f"redis-benchmark -r {args.range} -t hset,sadd -n {args.requests} -c 50; sessionfed {os.environ['SESSIONFED_BIN']}; {os.cpu_count()} cores", flush=True)
    redis, redis_seconds, redis_sizes = measure(start_redis, args.requests, args.range, args.timeout)
    fed, fed_seconds, fed_sizes = measure(start_sessionfed, args.requests, args.range, args.timeout)
    print()
    print("| test | redis-server req/s | sessionfed req/s | ratio |")
    print("| --- | --- | --- | --- |")
    for test in ("HSET", "SADD"):
        r = (redis or {}).get(test, 0)
        if fed is None:
            print(f"| {test} | {r:,.0f} | did not finish in {fed_seconds:.0f} s | - |")
            continue
        f = fed.get(test, 0)
        print(f"| {test} | {r:,.0f} | {f:,.0f} | {f / r if r else 0:.2f} |")
    print()
    print(f"sizes after the run (HLEN myhash, SCARD myset): redis-server {redis_sizes}, sessionfed {fed_sizes}; "
          f"wall time redis-server {redis_seconds:.0f} s, sessionfed {fed_seconds:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
