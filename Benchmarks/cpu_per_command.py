"""CPU time the node spends per command, counted by the kernel for the node's process alone.

Throughput on a shared 2-core machine moves with whatever else runs; the CPU time the node
itself spends on N commands moves much less, so this is the number to compare two builds by
while the machine is busy. `perf stat -e task-clock -p PID` counts the node's CPU time while
`redis-benchmark -c 50 -P P -r 100000` sends N commands (after a warm-up run that creates the
keys and grows the buffers); the result is that time divided by N. The node is a site of one
(`backupCount: 0`): the common path of a command, without replication.

Needs `perf` (apt-get install linux-perf) and redis-benchmark (redis-tools).

    SESSIONFED_BIN=.build-interop/release/sessionfed python3 Benchmarks/cpu_per_command.py
        [--commands set,hset,get] [--pipeline 16] [--requests 200000] [--before-bin PATH] [--keyspace 100000]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))

from build_columns import builds, print_table, random_keys  # noqa: E402
from cluster import Site  # noqa: E402


def cpu_milliseconds(pid, command):
    """The task-clock of `pid`, in milliseconds, while `command` runs."""
    with tempfile.NamedTemporaryFile("r", suffix=".csv") as output:
        subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "-p", str(pid), "-o", output.name, "--", *command],
                       capture_output=True, check=True)
        lines = [line for line in Path(output.name).read_text().splitlines() if "task-clock" in line]
        return float(lines[-1].split(",")[0])


def per_command(binary, command, pipeline, requests, keyspace):
    with tempfile.TemporaryDirectory() as directory:
        site = Site(binary, Path(directory), nodes=1, tls=False, defaults={"partitions": 16, "backupCount": 0})
        try:
            site.start_all()
            node = site.names[0]
            port, pid = site.ports[node]["client"], site.processes[node].handle.pid

            def bench(count):
                return ["redis-benchmark", "-p", str(port), "-t", command, "-n", str(count), "-c", "50",
                        "-P", str(pipeline), *random_keys(keyspace), "-q"]

            subprocess.run(bench(50_000), capture_output=True, check=True)  # warm
            return cpu_milliseconds(pid, bench(requests)) * 1_000 / requests
        finally:
            site.stop_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="set,hset,get")
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--before-bin", help="a sessionfed binary of an earlier commit: a column for it")
    parser.add_argument("--keyspace", type=int, default=100_000,
                        help="redis-benchmark -r (0: its one key; HSET then writes one field of one hash again and again)")
    arguments = parser.parse_args()
    columns = builds(arguments.before_bin)
    rows = {
        command: [per_command(path, command, arguments.pipeline, arguments.requests, arguments.keyspace) for _, path in columns]
        for command in arguments.commands.split(",")
    }
    benchmark = " ".join(["redis-benchmark -c 50 -P", str(arguments.pipeline), *random_keys(arguments.keyspace)])
    title = f"node CPU µs per command ({benchmark}, {arguments.requests:,} requests)"
    print_table(title, columns, rows, digits=2)

if __name__ == "__main__":
    main()
