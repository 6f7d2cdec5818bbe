"""Heap allocations per command on one node, counted by the kernel, not estimated.

A uprobe on the C library's `malloc` (every Swift object, array and dictionary storage goes
through it) counts calls made by the node's process while `redis-benchmark -c 1` sends N and
then 2N commands; the difference divided by N is the cost of one command, with startup,
timers and the benchmark's own setup commands cancelled out. The node is a site of one
(`backupCount: 0`): the common path of a command, without replication. With `--site`, a
site of three with `backupCount: 1` driven by `redis-benchmark --cluster` (each key sent to
its primary; with `-c 1` its one client writes the keys of one node's partitions): the calls
of all three processes, so one command's count covers the primary, its backup and the
acknowledgement. What the processes allocate idle for as long as the extra N commands took
(timers) is subtracted.

Needs root (for the probe) and `perf` (apt-get install linux-perf).

    SESSIONFED_BIN=.build-interop/release/sessionfed python3 Benchmarks/allocations.py [--commands set,hset,get]
        [--requests 20000] [--before-bin PATH] [--keyspace 1000] [--site]
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))

from build_columns import builds, print_table, random_keys  # noqa: E402
from cluster import Site  # noqa: E402

PROBE = "probe_libc:malloc"


def libc_path(binary):
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("libc.so") and len(parts) >= 3:
            return parts[2]
    raise SystemExit(f"no C library found in `ldd {binary}`")


def add_probe(binary):
    listed = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
    if PROBE in listed:
        return False
    subprocess.run(["perf", "probe", "-q", "-x", libc_path(binary), "malloc"], check=True)
    return True


def count_mallocs(pids, run):
    """Calls to malloc by the processes `pids` (together) while `run()` runs."""
    with tempfile.NamedTemporaryFile("r", suffix=".csv") as output:
        stat = subprocess.Popen(["perf", "stat", "-x,", "-e", PROBE, "-p", ",".join(map(str, pids)), "-o", output.name])
        time.sleep(0.3)
        run()
        stat.send_signal(signal.SIGINT)
        stat.wait()
        lines = [line for line in Path(output.name).read_text().splitlines() if PROBE in line]
        return int(lines[-1].split(",")[0])


def per_command(binary, command, requests, keyspace, replicated):
    with tempfile.TemporaryDirectory() as directory:
        if replicated:
            site = Site(binary, Path(directory), nodes=3, tls=False, defaults={"partitions": 16, "backupCount": 1, "clusterClients": "true"})
        else:
            site = Site(binary, Path(directory), nodes=1, tls=False, defaults={"partitions": 16, "backupCount": 0})
        try:
            site.start_all()
            if replicated:
                site.wait_converged()
            port = site.ports[site.names[0]]["client"]
            pids = [site.processes[node].handle.pid for node in site.names]
            cluster = ["--cluster"] if replicated else []

            def bench(count):
                subprocess.run(["redis-benchmark", "-p", str(port), *cluster, "-t", command, "-n", str(count), "-c", "1", *random_keys(keyspace), "-q"],
                               capture_output=True, check=True)

            def timed(count):
                started = time.monotonic()
                calls = count_mallocs(pids, lambda: bench(count))
                return calls, time.monotonic() - started

            bench(2_000)  # warm: keys exist, buffers have grown
            once, once_seconds = timed(requests)
            twice, twice_seconds = timed(2 * requests)
            # Timers (heartbeats, the control plane's ticks) allocate by the second, not by the
            # command: what the processes allocate idle for the extra run's time comes off.
            idle = count_mallocs(pids, lambda: time.sleep(max(0.0, twice_seconds - once_seconds)))
            return (twice - once - idle) / requests
        finally:
            site.stop_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="set,hset,get")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--before-bin", help="a sessionfed binary of an earlier commit: a column for it")
    parser.add_argument("--keyspace", type=int, default=1_000,
                        help="redis-benchmark -r (0: its one key; HSET then writes one field of one hash again and again)")
    parser.add_argument("--site", action="store_true", help="a site of three, backupCount 1, clients in cluster mode: all three processes counted")
    arguments = parser.parse_args()
    columns = builds(arguments.before_bin)
    added = add_probe(columns[-1][1])
    try:
        rows = {
            command: [per_command(path, command, arguments.requests, arguments.keyspace, arguments.site) for _, path in columns]
            for command in arguments.commands.split(",")
        }
    finally:
        if added:
            subprocess.run(["perf", "probe", "-q", "-d", PROBE])
    benchmark = " ".join(["redis-benchmark -c 1", *(["--cluster"] if arguments.site else []), *random_keys(arguments.keyspace)])
    where = "3-node site, backupCount 1, all nodes" if arguments.site else "one node"
    title = f"mallocs per command, {where} ({benchmark}, {arguments.requests:,} and {2 * arguments.requests:,} requests)"
    print_table(title, columns, rows, digits=1)

if __name__ == "__main__":
    main()
