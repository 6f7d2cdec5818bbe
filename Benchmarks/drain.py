"""Draining a node that holds sessions, measured from the clients' side.

A fresh site of three real nodes (`Tests/Interop/cluster.py`, 64 partitions, one backup)
gets N Spring-Session-shaped sessions (four hash fields and an expiry each). Writers on
the two other nodes then write keys of every partition, retrying -TRYAGAIN and closed
connections as applications do, while the third node is drained by SIGTERM. Prints
- the drain time (SIGTERM to exit) and the node's own `drain_ms` (start of drain to hand-off);
- per partition the node led: the longest a write to it waited during the drain (the
  write pause its planned handover caused), p50/p99/max over those partitions;
- the client-visible errors (after the clients' retries): the goal is 0.

    SESSIONFED_BIN=.build/release/sessionfed python3 Benchmarks/drain.py [--sessions 100000] [--runs 3]
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))

import redis  # noqa: E402

from cluster import Site  # noqa: E402
from conftest import wait_until  # noqa: E402
from test_node_lifecycle import RetryingWriter  # noqa: E402
from test_site_replication import partition_of, primaries  # noqa: E402

PARTITIONS = 64


def load(port, sessions, batch=2_000):
    client = redis.Redis(port=port, socket_timeout=60)
    pipe = client.pipeline(transaction=False)
    for index in range(sessions):
        key = f"spring:session:sessions:{index:08d}"
        pipe.hset(key, mapping={
            "creationTime": "1700000000000", "lastAccessedTime": "1700000000000",
            "maxInactiveInterval": "1800", "sessionAttr:user": f"user-{index}",
        })
        pipe.pexpire(key, 3_600_000)
        if (index + 1) % batch == 0:
            pipe.execute()
    pipe.execute()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def one_run(binary, workdir, sessions):
    site = Site(binary, workdir, tls=True, defaults={"partitions": PARTITIONS})
    try:
        site.start_all()
        site.wait_converged(30)
        leader = site.leader_view()["leader"]
        victim = next(node for node in site.names if node != leader)
        survivors = [node for node in site.names if node != victim]
        wait_until(lambda: victim in primaries(site).values(), 30, what="the victim to lead partitions")
        loaded = time.monotonic()
        load(site.ports[survivors[0]]["client"], sessions)
        load_seconds = time.monotonic() - loaded
        site.wait_converged(60)
        led = {partition for partition, primary in primaries(site).items() if primary == victim}
        writers = []
        for index, node in enumerate(survivors):
            writer = RetryingWriter(f"d{index}", site.ports[node]["client"])
            # Two keys per partition, so every partition's pause shows.
            keys, seen = [], {}
            for n in range(20_000):
                key = f"d{index}:{n}"
                partition = partition_of(key, PARTITIONS)
                if seen.get(partition, 0) < 2:
                    seen[partition] = seen.get(partition, 0) + 1
                    keys.append(key)
            writer.keys = keys
            writers.append(writer)
        for writer in writers:
            writer.start()
        time.sleep(1.0)
        started = time.monotonic()
        site.processes[victim].terminate()
        wait_until(lambda: not site.processes[victim].running(), 60, what="the drained node to exit")
        drained_at = time.monotonic()
        code = site.processes[victim].handle.returncode
        time.sleep(0.5)
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(30)
        match = re.search(r"drain_ms=(\d+)", site.log(victim))
        pauses = {}
        for writer in writers:
            for sent, acknowledged, key in writer.acknowledged_at:
                partition = partition_of(key, PARTITIONS)
                if partition in led and acknowledged >= started and sent <= drained_at:
                    pauses[partition] = max(pauses.get(partition, 0), acknowledged - sent)
        errors = [error for writer in writers for error in writer.errors]
        site.processes.pop(victim)
        return {
            "exit": code, "load_s": load_seconds, "drain_s": drained_at - started,
            "drain_ms": int(match.group(1)) if match else None, "partitions_led": len(led),
            "pauses_ms": [pause * 1000 for pause in pauses.values()], "errors": errors,
        }
    finally:
        site.stop_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    binary = os.environ.get("SESSIONFED_BIN", ".build/release/sessionfed")
    with tempfile.TemporaryDirectory() as directory:
        for run in range(arguments.runs):
            result = one_run(binary, Path(directory) / f"run{run}", arguments.sessions)
            pauses = result["pauses_ms"]
            print(
                f"run {run + 1}: {arguments.sessions} sessions loaded in {result['load_s']:.1f} s; "
                f"SIGTERM -> exit {result['drain_s']:.2f} s (exit {result['exit']}, drain_ms {result['drain_ms']}); "
                f"{result['partitions_led']} partitions handed over, write pause p50 {percentile(pauses, 0.5):.0f} ms, "
                f"p99 {percentile(pauses, 0.99):.0f} ms, max {max(pauses):.0f} ms; client errors {len(result['errors'])}"
                if pauses else f"run {run + 1}: no writes measured: {result}",
                flush=True,
            )


if __name__ == "__main__":
    main()
