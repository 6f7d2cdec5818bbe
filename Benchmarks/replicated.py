"""Replicated writes, side by side, with one client (`sessionfed bench`) on one machine:

- redis-server with one replica, each write followed by `WAIT 1 0` (acknowledged only once
  the replica has it: the closest Redis comes to synchronous replication);
- a 3-node sessionfed site with `backupCount: 1` (every write acknowledged after its
  partition's in-sync backup applied it), clients spread over the three nodes;
- the same site driven as a cluster-aware client drives it (`bench --cluster`: the slot map
  read once, each key sent to its partition's primary, so no write takes the forwarding hop);
- a single sessionfed node and a lone redis-server, for what replication costs each;
- with `--before-bin`, a single node of an earlier build (driven by the same client), for
  what the change that added replication cost a node alone.

The three that matter, redis + WAIT and the site with either client, run in rounds (three by
default), taking turns, and the table shows medians. Loopback only; prints a Markdown table of throughput, p50/p99 latency and the CPU time the
servers used per write (all server processes together, from /proc), and the ratios.

    SESSIONFED_BIN=.build/release/sessionfed python3 Benchmarks/replicated.py [--requests 100000] [--clients 50]
        [--before-bin PATH --before-label TEXT] [--rounds 3]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))

from cluster import Site  # noqa: E402


WAITED = "redis-server + 1 replica, WAIT 1 0 after each write"
SITE = "sessionfed, 3-node site, backupCount 1"
CLUSTERED = "sessionfed, 3-node site, backupCount 1, cluster-aware client"
MEDIANS = ("requestsPerSecond", "p50Microseconds", "p99Microseconds", "serverMicrosecondsPerRequest")


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
    parser.add_argument("--rounds", type=int, default=3, help="rounds of redis + WAIT against the site; medians shown")
    arguments = parser.parse_args()
    binary = os.environ.get("SESSIONFED_BIN", ".build/release/sessionfed")
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is needed (apt-get install redis-server)")
    rows = []
    rounds = {}
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
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
        # redis-server alone, then with a replica and WAIT 1 0 after every write; and a site of
        # three with backupCount 1, clients on every node. The last two run in rounds, taking
        # turns: a burst of load from elsewhere on the machine lands in one round, and the
        # table shows each figure's median.
        primary_port, replica_port = free_port(), free_port()
        for name in ("primary", "replica"):
            (workdir / name).mkdir()
        primary = redis_server(primary_port, workdir / "primary")
        replica = site = None
        try:
            rows.insert(0, ("redis-server, no replica", bench(binary, [primary_port], arguments, [primary.pid])))
            replica = redis_server(replica_port, workdir / "replica", replica_of=primary_port)
            wait_replica_online(primary_port)
            # Cluster clients served: the standalone clients are served the same either way.
            site = Site(binary, workdir / "site", nodes=3, tls=False, defaults={"partitions": 16, "backupCount": 1, "clusterClients": "true"})
            site.start_all()
            site.wait_converged()
            site_ports = [site.ports[node]["client"] for node in site.names]
            site_pids = [site.processes[node].handle.pid for node in site.names]
            contenders = [
                (WAITED, lambda: bench(binary, [primary_port], arguments, [primary.pid, replica.pid], ["--wait-replicas", "1"])),
                (SITE, lambda: bench(binary, site_ports, arguments, site_pids)),
                (CLUSTERED, lambda: bench(binary, site_ports[:1], arguments, site_pids, ["--cluster"])),
            ]
            for round_index in range(arguments.rounds):
                # Each round starts with the next contender, so none always runs first.
                shift = round_index % len(contenders)
                for name, run in contenders[shift:] + contenders[:shift]:
                    rounds.setdefault(name, []).append(run())
        finally:
            if site:
                site.stop_all()
            if replica:
                stop(replica)
            stop(primary)
        for name in (WAITED, SITE, CLUSTERED):
            results = rounds[name]
            rows.insert(1 if name == WAITED else len(rows), (name, {key: statistics.median(result[key] for result in results) for key in MEDIANS}))
    print(f"`sessionfed bench --command {arguments.command} --clients {arguments.clients} --requests {arguments.requests}` (pipeline 1); "
          f"the last two rows and redis + WAIT: medians of {arguments.rounds} rounds, taking turns\n")
    print("| setup | req/s | p50 µs | p99 µs | server CPU per write µs |")
    print("| --- | --- | --- | --- | --- |")
    for name, result in rows:
        print(f"| {name} | {int(result['requestsPerSecond']):,} | {int(result['p50Microseconds']):,} | {int(result['p99Microseconds']):,} | {result['serverMicrosecondsPerRequest']:.1f} |")
    byname = dict(rows)
    waited = byname[WAITED]
    for name in (WAITED, SITE, CLUSTERED):
        print(f"\n{name}, each round: " + " / ".join(
            f"{int(result['requestsPerSecond']):,} req/s, {result['serverMicrosecondsPerRequest']:.1f} µs CPU" for result in rounds[name]))
    for name, client in ((SITE, "clients in standalone mode"), (CLUSTERED, "a cluster-aware client")):
        replicated = byname[name]
        print(f"\nreplicated ratio (sessionfed site, {client} / redis + WAIT): throughput {replicated['requestsPerSecond'] / waited['requestsPerSecond']:.2f}, "
              f"p99 {replicated['p99Microseconds'] / waited['p99Microseconds']:.2f} (below 1 is better), "
              f"server CPU per write {replicated['serverMicrosecondsPerRequest'] / waited['serverMicrosecondsPerRequest']:.2f} (below 1 is better)")


if __name__ == "__main__":
    main()
