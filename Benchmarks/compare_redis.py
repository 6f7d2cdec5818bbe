"""Runs the same workload against redis-server and sessionfed and prints ratios.

Throughput: redis-benchmark SET, GET, HSET with -c 50 at -P 1 and -P 16, in rounds (three by
default) in which the two servers take turns; the tables show each test's median.
Memory: 100,000 Spring-Session-shaped hashes (creationTime, lastAccessedTime,
maxInactiveInterval + three 200-byte attributes), loaded with redis-cli --pipe;
bytes per session from the server's RSS growth and from INFO used_memory.
Everything runs on loopback and stops when done.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SESSIONS = 100_000
ATTRIBUTE = b"x" * 200


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_port(port, process, deadline_s=20):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def info_used_memory(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "memory"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


def run_benchmark(port, pipeline, requests):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set,get,hset", "-c", "50", "-P", str(pipeline),
         "-n", str(requests), "--csv"],
        capture_output=True, text=True, check=True,
    ).stdout
    results = {}
    for line in out.splitlines():
        parts = [p.strip('"') for p in line.split(",")]
        if parts and parts[0] in ("SET", "GET", "HSET"):
            results[parts[0]] = float(parts[1])
    return results


def session_load():
    """RESP for the memory load: HSET + PEXPIREAT per session, as Spring Session writes it."""
    chunks = []
    expire_at = str(int(time.time() * 1000) + 3_600_000).encode()
    for index in range(SESSIONS):
        key = b"spring:session:sessions:%032x" % index
        words = [b"HSET", key, b"creationTime", b"1700000000000", b"lastAccessedTime", b"1700000000000",
                 b"maxInactiveInterval", b"1800", b"sessionAttr:user", ATTRIBUTE, b"sessionAttr:cart", ATTRIBUTE,
                 b"sessionAttr:prefs", ATTRIBUTE]
        for command in (words, [b"PEXPIREAT", key, expire_at]):
            chunks.append(b"*%d\r\n" % len(command))
            for word in command:
                chunks.append(b"$%d\r\n%s\r\n" % (len(word), word))
    return b"".join(chunks)


def throughput(ports, requests, rounds):
    """Each test on both servers, `rounds` times, the two servers taking turns (which goes
    first alternates): a burst of load from elsewhere on the machine then lands in one
    round, and the median of the rounds drops it. Returns per server {pipeline: {test:
    median req/s}} and every round's figures."""
    runs = {name: {1: {}, 16: {}} for name in ports}
    for round_index in range(rounds):
        order = list(ports) if round_index % 2 == 0 else list(reversed(ports))
        for pipeline, count in ((1, requests), (16, requests * 5)):
            for name in order:
                for test, value in run_benchmark(ports[name], pipeline, count).items():
                    runs[name][pipeline].setdefault(test, []).append(value)
    medians = {name: {pipeline: {test: statistics.median(values) for test, values in tests.items()}
                      for pipeline, tests in by_pipeline.items()} for name, by_pipeline in runs.items()}
    return medians, runs


def memory(port, process):
    """RSS and used_memory growth per session for the Spring-Session load, on an empty server."""
    subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], capture_output=True, check=True)
    time.sleep(0.5)
    rss_before, used_before = rss_bytes(process.pid), info_used_memory(port)
    load = session_load()
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=load, capture_output=True, check=True)
    time.sleep(0.5)
    rss_after, used_after = rss_bytes(process.pid), info_used_memory(port)
    dbsize = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True).stdout.strip()
    return {
        "rss_per_session": (rss_after - rss_before) / SESSIONS,
        "used_per_session": (used_after - used_before) / SESSIONS,
        "dbsize": dbsize,
    }


def stop(process, cleanup):
    """SIGTERM, then SIGKILL after 15 s; then the server's files go."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    cleanup()


def start_redis(port, tls_certificates=None):
    """redis-server on `port`; with `tls_certificates` (a `sessionfed certs init` directory),
    on `port` over TLS only (`tls-port`, clients not asked for a certificate)."""
    listen = ["--port", str(port)]
    if tls_certificates:
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", os.path.join(tls_certificates, "local-1.pem"),
                  "--tls-key-file", os.path.join(tls_certificates, "local-1.key"), "--tls-auth-clients", "no"]
    process = subprocess.Popen(
        ["redis-server", *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return process, lambda: None


def node_topology(port, threads, tls_port=None):
    """A site of one node on loopback; with `tls_port`, a TLS listener for clients there
    (certificates in `certs/`, clients not asked for one)."""
    peer, fed, admin = free_ports(3)
    tls = "clientTLS:\n  directory: certs\n" if tls_port else ""
    node_tls = f"        clientTLS: 127.0.0.1:{tls_port}\n" if tls_port else ""
    return f"""federation: bench
topologyVersion: 1
defaults:
  backupCount: 0
  threads: {threads}
{tls}sites:
  - name: local
    id: 1
    nodes:
      - name: local-1
        client: 127.0.0.1:{port}
        peer: 127.0.0.1:{peer}
        federation: 127.0.0.1:{fed}
        admin: 127.0.0.1:{admin}
{node_tls}"""


def start_sessionfed(port, threads=1, tls_port=None):
    """A node serving clients on `port` (and over TLS on `tls_port` when given, with
    certificates `sessionfed certs init` writes into its directory's `certs/`)."""
    directory = tempfile.mkdtemp(prefix="sessionfed-bench-")
    path = os.path.join(directory, "topology.yaml")
    with open(path, "w") as file:
        file.write(node_topology(port, threads, tls_port))
    if tls_port:
        subprocess.run([os.environ["SESSIONFED_BIN"], "certs", "init", "--topology", path, "--out", os.path.join(directory, "certs")],
                       check=True, capture_output=True)
    process = subprocess.Popen(
        [os.environ["SESSIONFED_BIN"], "node", "--topology", path, "--node", "local-1", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return process, lambda: shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000, help="requests per test at -P 1 (x5 at -P 16)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every throughput test; the tables show medians")
    parser.add_argument("--memory-only", action="store_true",
                        help="skip the throughput runs (the memory table alone)")
    args = parser.parse_args()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    print(f"redis-server {redis_version}; sessionfed {os.environ['SESSIONFED_BIN']}; {os.cpu_count()} cores", flush=True)
    servers = {}
    try:
        for name, start in (("redis", start_redis), ("sessionfed", start_sessionfed)):
            port = free_ports(1)[0]
            process, cleanup = start(port)
            servers[name] = (port, process, cleanup)
            wait_for_port(port, process)
        ports = {name: server[0] for name, server in servers.items()}
        medians, runs = ({}, {}) if args.memory_only else throughput(ports, args.requests, args.rounds)
        used = {name: memory(port, servers[name][1]) for name, port in ports.items()}
    finally:
        for port, process, cleanup in servers.values():
            stop(process, cleanup)

    if medians:
        print()
        print(f"Throughput: median of {args.rounds} rounds, the two servers taking turns "
              f"(`redis-benchmark -c 50 -n {args.requests:,}` at -P 1, {args.requests * 5:,} at -P 16).")
        print()
        print("| test | pipeline | redis-server req/s | sessionfed req/s | ratio | target | sessionfed, each round |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for pipeline, target in ((1, 0.9), (16, 0.6)):
            for test in ("SET", "GET", "HSET"):
                redis, fed = medians["redis"][pipeline].get(test, 0), medians["sessionfed"][pipeline].get(test, 0)
                ratio = fed / redis if redis else 0
                rounds = " / ".join(f"{value / 1000:,.0f}k" for value in runs["sessionfed"][pipeline].get(test, []))
                print(f"| {test} | -P {pipeline} | {redis:,.0f} | {fed:,.0f} | {ratio:.2f} | >= {target} {'met' if ratio >= target else 'MISSED'} | {rounds} |")
    redis_memory, fed_memory = used["redis"], used["sessionfed"]
    print()
    print("| memory per session (100,000 Spring-Session hashes) | redis-server | sessionfed | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    rss_ratio = fed_memory["rss_per_session"] / redis_memory["rss_per_session"]
    print(f"| RSS growth | {redis_memory['rss_per_session']:,.0f} B | {fed_memory['rss_per_session']:,.0f} B | {rss_ratio:.2f} | <= 1.3 {'met' if rss_ratio <= 1.3 else 'MISSED'} |")
    used_ratio = fed_memory["used_per_session"] / redis_memory["used_per_session"]
    print(f"| INFO used_memory growth | {redis_memory['used_per_session']:,.0f} B | {fed_memory['used_per_session']:,.0f} B | {used_ratio:.2f} | (estimate) |")
    print(f"| DBSIZE after load | {redis_memory['dbsize']} | {fed_memory['dbsize']} | | |")


if __name__ == "__main__":
    sys.exit(main())
