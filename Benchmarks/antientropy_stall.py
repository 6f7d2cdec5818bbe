"""The longest event-loop stall while anti-entropy runs over many keys: three federated sites
of one node each, N session hashes written at seoul and federated, then anti-entropy rounds
every few seconds while a client PINGs every node about once a millisecond. A PING waits for
whatever the node's event loop is busy with, so its longest wait is the longest stall.

    SESSIONFED_BIN=path python3 Benchmarks/antientropy_stall.py --keys 1000000 [--label TEXT]

Numbers depend on the machine; record them in Benchmarks/README.md with the command.
"""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))
from federation import SITES, Federation  # noqa: E402


def load(client, keys, batch=5_000):
    pipe = client.pipeline(transaction=False)
    for index in range(keys):
        pipe.hset(f"spring:session:sessions:{index:08d}", mapping={"creationTime": "1700000000000", "sessionAttr:user": f"u{index}"})
        if (index + 1) % batch == 0:
            pipe.execute()
    pipe.execute()


def probe(federation, site, seconds, results):
    client = federation.redis(site)
    waits = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        client.ping()
        waits.append((time.perf_counter() - started) * 1000)
        time.sleep(0.001)
    results[site] = waits


def status(federation, site):
    """/status with a long timeout: at a million keys an old build computes its Merkle root
    for it on the loop."""
    with urllib.request.urlopen(f"http://127.0.0.1:{federation.ports[site]['admin']}/status", timeout=300) as response:
        return json.loads(response.read())


def rounds(federation, site):
    return sum(link["statistics"]["resyncRuns"] for link in status(federation, site)["federationLinks"])


def wait_federated(federation, keys, deadline_s=900):
    """Every site holds every key and no link has deltas in flight (no Merkle roots compared)."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        sizes = [federation.redis(site).dbsize() for site in SITES]
        if sizes == [keys] * len(SITES):
            links = [link for site in SITES for link in status(federation, site)["federationLinks"]]
            if all(link["connected"] and link["lagDeltas"] == 0 for link in links):
                return
        time.sleep(1)
    raise AssertionError(f"not federated within {deadline_s}s: sizes {sizes}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval-ms", type=int, default=5_000, help="antiEntropyIntervalMilliseconds")
    parser.add_argument("--label", default="")
    arguments = parser.parse_args()
    binary = os.environ["SESSIONFED_BIN"]
    with tempfile.TemporaryDirectory() as workdir:
        federation = Federation(
            binary, workdir, tls=False,
            defaults={"partitions": 271, "antiEntropyIntervalMilliseconds": arguments.interval_ms, "outboxLimitBytes": 2_000_000_000},
        )
        try:
            federation.start_all()
            started = time.time()
            load(federation.redis("seoul"), arguments.keys)
            wait_federated(federation, arguments.keys)
            print(f"loaded and federated {arguments.keys} keys in {time.time() - started:.0f}s", flush=True)
            before = {site: rounds(federation, site) for site in SITES}
            logged = {site: len(federation.log(site)) for site in SITES}
            results = {}
            threads = [threading.Thread(target=probe, args=(federation, site, arguments.seconds, results)) for site in SITES]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            after = {site: rounds(federation, site) for site in SITES}
            print(f"{arguments.label or binary}: {arguments.keys} keys, {arguments.seconds:.0f}s of PINGs, rounds every {arguments.interval_ms} ms")
            print("| site | rounds started | PINGs | median ms | p99.9 ms | longest ms |")
            print("| --- | --- | --- | --- | --- | --- |")
            for site in SITES:
                waits = sorted(results[site])
                p999 = waits[min(len(waits) - 1, int(len(waits) * 0.999))]
                print(f"| {site} | {after[site] - before[site]} | {len(waits)} | {statistics.median(waits):.2f} | {p999:.1f} | {waits[-1]:.1f} |")
            # The node logs every step that held its loop for 10 ms or more, with what it was.
            for site in SITES:
                held = []
                for line in federation.log(site)[logged[site]:].splitlines():
                    if "event loop held by one step" in line:
                        found = re.search(r"held_ms=([0-9.]+) step=(.*?) \[", line)
                        cpu = re.search(r"cpu_ms=([0-9.]+)", line)
                        if found:
                            held.append((float(found.group(1)), float(cpu.group(1)) if cpu else None, found.group(2)))
                held.sort(reverse=True)
                rounds_finished = re.findall(r"differing_leaves=(\d+) .*?keys_repaired_here=(\d+)", federation.log(site)[logged[site]:])
                differing = sum(int(leaves) for leaves, _ in rounds_finished)
                repaired = sum(int(keys) for _, keys in rounds_finished)
                print(f"{site}: {len(rounds_finished)} rounds finished ({differing} differing leaves, {repaired} keys repaired); "
                      f"{len(held)} steps of 10 ms or more while PINGs ran; longest (held ms, CPU ms, step): {held[:6]}")
        finally:
            federation.stop_all()


if __name__ == "__main__":
    main()
