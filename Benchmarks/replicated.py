"""Replicated writes, side by side, with one client (`sessionfed bench`) on one machine:

- redis-server with one replica, each write followed by `WAIT 1 0` (acknowledged only once
  the replica has it: the closest Redis comes to synchronous replication);
- a 3-node sessionfed site with `backupCount: 1` (every write acknowledged after its
  partition's in-sync backup applied it), clients spread over the three nodes;
- a single sessionfed node and a lone redis-server, for what replication costs each;
- with `--before-bin`, a single node of an earlier build (driven by the same client), for
  what the change that added replication cost a node alone.

Loopback only; prints a Markdown table of throughput, p50/p99 latency and the CPU time the
servers used per write (all server processes together, from /proc), and the ratios.

    SESSIONFED_BIN=.build/release/sessionfed python3 Benchmarks/replicated.py [--requests 100000] [--clients 50]
        [--before-bin PATH --before-label TEXT]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))

from cluster import Site  # noqa: E402


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, deadline_s=20):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pids):
    """User and system CPU time the processes used so far (from /proc, in clock ticks)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def bench(binary, ports, arguments, servers, extra=()):
    """One `sessionfed bench` run, with the CPU time the servers (`servers`: their pids) used
    per request: machine load moves req/s a lot and CPU per request much less."""
    command = [binary, "bench", "--json", "--requests", str(arguments.requests), "--clients", str(arguments.clients),
               "--command", arguments.command, *extra]
    for port in ports:
        command += ["--port", str(port)]
    before = cpu_seconds(servers)
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    used = cpu_seconds(servers) - before
    if result.returncode != 0:
        raise RuntimeError(f"bench failed: {result.stdout}\n{result.stderr}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["serverMicrosecondsPerRequest"] = used * 1e6 / arguments.requests
    return measured


def redis_server(port, workdir, replica_of=None):
    argv = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    if replica_of:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process


def wait_replica_online(port, deadline_s=20):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "replication"], capture_output=True, text=True).stdout
        if "connected_slaves:1" in info and "state=online" in info:
            return
        time.sleep(0.1)
    raise RuntimeError("the replica did not come online")


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--command", default="set")
    parser.add_argument("--before-bin", help="a sessionfed binary of an earlier commit: one more single-node row")
    parser.add_argument("--before-label", default="an earlier build")
    arguments = parser.parse_args()
    binary = os.environ.get("SESSIONFED_BIN", ".build/release/sessionfed")
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        # redis-server alone, then with a replica and WAIT 1 0 after every write.
        primary_port, replica_port = free_port(), free_port()
        for name in ("primary", "replica"):
            (workdir / name).mkdir()
        primary = redis_server(primary_port, workdir / "primary")
        try:
            rows.append(("redis-server, no replica", bench(binary, [primary_port], arguments, [primary.pid])))
            replica = redis_server(replica_port, workdir / "replica", replica_of=primary_port)
            try:
                wait_replica_online(primary_port)
                rows.append(("redis-server + 1 replica, WAIT 1 0 after each write", bench(binary, [primary_port], arguments, [primary.pid, replica.pid], ["--wait-replicas", "1"])))
            finally:
                stop(replica)
        finally:
            stop(primary)
        # A single sessionfed node (a site of one: no backups), the earlier build's first.
        servers = [(arguments.before_bin, f"sessionfed, 1 node, {arguments.before_label}")] if arguments.before_bin else []
        for server, label in servers + [(binary, "sessionfed, 1 node")]:
            single = Site(server, workdir / f"single-{len(rows)}", nodes=1, tls=False, defaults={"partitions": 16, "backupCount": 0})
            try:
                single.start_all()
                wait_for_port(single.ports[single.names[0]]["client"])
                time.sleep(1.0)
                pids = [single.processes[single.names[0]].handle.pid]
                rows.append((label, bench(binary, [single.ports[single.names[0]]["client"]], arguments, pids)))
            finally:
                single.stop_all()
        # A site of three with backupCount 1, clients on every node.
        site = Site(binary, workdir / "site", nodes=3, tls=False, defaults={"partitions": 16, "backupCount": 1})
        try:
            site.start_all()
            site.wait_converged()
            ports = [site.ports[node]["client"] for node in site.names]
            pids = [site.processes[node].handle.pid for node in site.names]
            rows.append(("sessionfed, 3-node site, backupCount 1", bench(binary, ports, arguments, pids)))
        finally:
            site.stop_all()
    print(f"`sessionfed bench --command {arguments.command} --clients {arguments.clients} --requests {arguments.requests}` (pipeline 1)\n")
    print("| setup | req/s | p50 µs | p99 µs | server CPU per write µs |")
    print("| --- | --- | --- | --- | --- |")
    for name, result in rows:
        print(f"| {name} | {int(result['requestsPerSecond']):,} | {result['p50Microseconds']:,} | {result['p99Microseconds']:,} | {result['serverMicrosecondsPerRequest']:.1f} |")
    byname = dict(rows)
    replicated = byname["sessionfed, 3-node site, backupCount 1"]
    waited = byname["redis-server + 1 replica, WAIT 1 0 after each write"]
    print(f"\nreplicated ratio (sessionfed site / redis + WAIT): throughput {replicated['requestsPerSecond'] / waited['requestsPerSecond']:.2f}, "
          f"p99 {replicated['p99Microseconds'] / waited['p99Microseconds']:.2f} (below 1 is better), "
          f"server CPU per write {replicated['serverMicrosecondsPerRequest'] / waited['serverMicrosecondsPerRequest']:.2f} (below 1 is better)")


if __name__ == "__main__":
    main()
