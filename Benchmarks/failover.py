"""Failover of a partition's primary inside a site, measured from the client's side.

Each run starts a fresh site of three real nodes (`Tests/Interop/cluster.py`), puts
redis-py writers on the two nodes that survive, SIGKILLs the third (a node that is not the
Raft leader, so the time is the data plane's: failure detection, promotion of the in-sync
backup, the new primary's lease) and records the time from the kill to the first
acknowledged write to a partition the killed node was primary of. Prints every run and
the median; loopback only.

    SESSIONFED_BIN=.build/release/sessionfed python3 Benchmarks/failover.py [--runs 10]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))

from cluster import Site  # noqa: E402
from conftest import wait_until  # noqa: E402
from test_site_replication import Writer, partition_of, primaries  # noqa: E402


def one_run(binary, workdir):
    site = Site(binary, workdir, tls=True)
    try:
        site.start_all()
        site.wait_converged()
        leader = site.leader_view()
        followers = [node for node in site.names if node != leader["leader"]]
        # Right after start the placement may still be rebalancing: wait until a follower
        # is primary of some partitions, and kill the one with the most.
        wait_until(lambda: any(node in primaries(site).values() for node in followers), 20, what="a follower to lead partitions")
        table = primaries(site)
        victim = max(followers, key=lambda node: list(table.values()).count(node))
        survivors = [node for node in site.names if node != victim]
        # Keys of the victim's partitions only, so every write measures the failover.
        writers = []
        for index, node in enumerate(survivors):
            writer = Writer(f"w{index}", site.ports[node]["client"])
            writer.keys = [key for key in (f"w{index}:{n}" for n in range(2000)) if table[partition_of(key)] == victim][:20]
            writers.append(writer)
        for writer in writers:
            writer.start()
        time.sleep(1.0)
        site.kill(victim)  # returns once the process is gone
        killed_at = time.monotonic()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            after = [at for writer in writers for sent, at, _ in list(writer.acknowledged_at) if sent > killed_at]
            if after:
                break
            time.sleep(0.01)
        for writer in writers:
            writer.stop.set()
        for writer in writers:
            writer.join(20)
        # Only writes sent after the kill: one in flight may have been answered by the victim
        # in the moment before SIGKILL took it.
        after = [at for writer in writers for sent, at, _ in writer.acknowledged_at if sent > killed_at]
        return (min(after) - killed_at) if after else None
    finally:
        site.stop_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    arguments = parser.parse_args()
    binary = os.environ.get("SESSIONFED_BIN", ".build/release/sessionfed")
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for run in range(arguments.runs):
            seconds = one_run(binary, Path(directory) / f"run{run}")
            print(f"run {run + 1}: kill -> first acknowledged write to a moved partition: "
                  + (f"{seconds * 1000:.0f} ms" if seconds is not None else "none within 15 s"), flush=True)
            if seconds is not None:
                results.append(seconds)
    if results:
        print(f"median {statistics.median(results) * 1000:.0f} ms, min {min(results) * 1000:.0f} ms, "
              f"max {max(results) * 1000:.0f} ms over {len(results)} of {arguments.runs} runs")


if __name__ == "__main__":
    main()
