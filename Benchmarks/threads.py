"""How a node's throughput moves with `threads:` (build item 4 of the performance issue).

Starts redis-server and one sessionfed node per thread count, then runs
`redis-benchmark -t set,get,hset -c 50` at -P 1 and -P 16 against each, in rounds with the
contenders taking turns (the tables show medians). Besides requests per second it reports the
server's CPU per request (user + system time of the whole process, from /proc) and how busy
the node's busiest thread was, which tells whether the loop that runs commands or the machine
ran out first.

    python3 Benchmarks/threads.py                     # threads 1 and 2
    python3 Benchmarks/threads.py --threads 1,2,4 --rounds 5
    python3 Benchmarks/threads.py --tls               # clients over TLS (redis-server's tls-port)

SESSIONFED_BIN picks the binary (default .build-interop/release/sessionfed).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare_redis import free_ports, node_topology, start_redis, start_sessionfed, stop, wait_for_port  # noqa: E402

TLS_ARGUMENTS = ["--tls", "--insecure"]

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """{thread id: user + system ticks} for every thread of `pid`."""
    ticks = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks[task] = int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            continue
    return ticks


def run(port, pid, test, pipeline, requests, tls):
    """req/s, server CPU µs per request, busiest thread's share of a core."""
    before = cpu_ticks(pid)
    started = time.monotonic()
    out = subprocess.run(
        ["redis-benchmark", *(TLS_ARGUMENTS if tls else []), "-p", str(port), "-t", test, "-c", "50", "-P", str(pipeline), "-n", str(requests), "--csv"],
        capture_output=True, text=True, check=True,
    ).stdout
    elapsed = time.monotonic() - started
    after = cpu_ticks(pid)
    used = {task: after[task] - before.get(task, 0) for task in after}
    rate = next(float(line.split(",")[1].strip('"')) for line in out.splitlines() if line.startswith(f'"{test.upper()}"'))
    cpu_us = sum(used.values()) / TICKS * 1e6 / requests
    busiest = max(used.values()) / TICKS / elapsed
    return rate, cpu_us, busiest


def certificates_for_redis(directory):
    """A certificate for redis-server's tls-port, written by `sessionfed certs init`."""
    topology = os.path.join(directory, "topology.yaml")
    plain, tls = free_ports(2)
    Path(topology).write_text(node_topology(plain, threads=1, tls_port=tls))
    subprocess.run([os.environ["SESSIONFED_BIN"], "certs", "init", "--topology", topology, "--out", os.path.join(directory, "certs")],
                   check=True, capture_output=True)
    return os.path.join(directory, "certs")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2", help="thread counts to compare, comma-separated")
    parser.add_argument("--requests", type=int, default=200_000, help="requests per test at -P 1 (x5 at -P 16)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tests", default="set,get,hset")
    parser.add_argument("--tls", action="store_true", help="clients over TLS, redis-server on its tls-port")
    args = parser.parse_args()
    os.environ.setdefault("SESSIONFED_BIN", ".build-interop/release/sessionfed")
    counts = [int(value) for value in args.threads.split(",")]
    tests = args.tests.split(",")
    print(f"{os.cpu_count()} cores; sessionfed {os.environ.get('SESSIONFED_BIN')}{'; clients over TLS' if args.tls else ''}", flush=True)
    servers = {}
    scratch = tempfile.mkdtemp(prefix="sessionfed-bench-threads-")
    try:
        certificates = certificates_for_redis(scratch) if args.tls else None
        contenders = [("redis-server", lambda port: start_redis(port, certificates))]
        # Over TLS the benchmark's port is the node's TLS port; its plaintext one goes unused.
        contenders += [(f"threads: {count}", lambda port, count=count: start_sessionfed(free_ports(1)[0], threads=count, tls_port=port)
                        if args.tls else start_sessionfed(port, threads=count)) for count in counts]
        for name, start in contenders:
            port = free_ports(1)[0]
            process, cleanup = start(port)
            servers[name] = (port, process, cleanup)
            wait_for_port(port, process)
        results = {}
        for round_index in range(args.rounds):
            order = list(servers) if round_index % 2 == 0 else list(reversed(servers))
            for pipeline in (1, 16):
                requests = args.requests * (5 if pipeline == 16 else 1)
                for test in tests:
                    for name in order:
                        port, process, _ = servers[name]
                        results.setdefault((test, pipeline, name), []).append(run(port, process.pid, test, pipeline, requests, args.tls))
    finally:
        for port, process, cleanup in servers.values():
            stop(process, cleanup)
        shutil.rmtree(scratch, ignore_errors=True)

    names = list(servers)
    print()
    print(f"Median of {args.rounds} rounds, `redis-benchmark -c 50 -n {args.requests:,}` (x5 at -P 16); "
          "ratio to redis-server; CPU: the server process's µs per request; busiest: its busiest thread's share of a core.")
    print()
    print("| test | pipeline | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for pipeline in (1, 16):
        for test in tests:
            cells = []
            redis_rate = statistics.median(r[0] for r in results[(test, pipeline, "redis-server")])
            for name in names:
                runs = results[(test, pipeline, name)]
                rate = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                busiest = statistics.median(r[2] for r in runs)
                ratio = "" if name == "redis-server" else f" ({rate / redis_rate:.2f})"
                cells.append(f"{rate / 1000:,.0f}k{ratio}, {cpu:.1f} µs, busiest {busiest:.0%}")
            print(f"| {test.upper()} | -P {pipeline} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
