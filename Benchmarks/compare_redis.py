"""Runs the same workload against redis-server and sessionfed and prints ratios.

Throughput: redis-benchmark SET, GET, HSET with -c 50 at -P 1 and -P 16.
Memory: 100,000 Spring-Session-shaped hashes (creationTime, lastAccessedTime,
maxInactiveInterval + three 200-byte attributes), loaded with redis-cli --pipe;
bytes per session from the server's RSS growth and from INFO used_memory.
Everything runs on loopback and stops when done.
"""

import argparse
import os
import signal
import socket
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


def measure(name, start, requests, memory_only=False):
    port = free_ports(1)[0]
    process, cleanup = start(port)
    try:
        wait_for_port(port, process)
        throughput = {} if memory_only else {1: run_benchmark(port, 1, requests), 16: run_benchmark(port, 16, requests * 5)}
        subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], capture_output=True, check=True)
        time.sleep(0.5)
        rss_before, used_before = rss_bytes(process.pid), info_used_memory(port)
        load = session_load()
        subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=load, capture_output=True, check=True)
        time.sleep(0.5)
        rss_after, used_after = rss_bytes(process.pid), info_used_memory(port)
        dbsize = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True, text=True).stdout.strip()
        memory = {
            "rss_per_session": (rss_after - rss_before) / SESSIONS,
            "used_per_session": (used_after - used_before) / SESSIONS,
            "dbsize": dbsize,
        }
        return throughput, memory
    finally:
        stop(process, cleanup)


def stop(process, cleanup):
    """SIGTERM, then SIGKILL after 15 s; then the server's files go."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    cleanup()


def start_redis(port):
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return process, lambda: None


def start_sessionfed(port):
    directory = tempfile.mkdtemp(prefix="sessionfed-bench-")
    peer, fed, admin = free_ports(3)
    path = os.path.join(directory, "topology.yaml")
    with open(path, "w") as file:
        file.write(f"""federation: bench
topologyVersion: 1
defaults:
  backupCount: 0
sites:
  - name: local
    id: 1
    nodes:
      - name: local-1
        client: 127.0.0.1:{port}
        peer: 127.0.0.1:{peer}
        federation: 127.0.0.1:{fed}
        admin: 127.0.0.1:{admin}
""")
    process = subprocess.Popen(
        [os.environ["SESSIONFED_BIN"], "node", "--topology", path, "--node", "local-1", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def cleanup():
        os.remove(path)
        os.rmdir(directory)

    return process, cleanup


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000, help="requests per test at -P 1 (x5 at -P 16)")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory load (it does not depend on a quiet machine, throughput does)")
    args = parser.parse_args()
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    print(f"redis-server {redis_version}; sessionfed {os.environ['SESSIONFED_BIN']}; {os.cpu_count()} cores", flush=True)
    redis_throughput, redis_memory = measure("redis", start_redis, args.requests, args.memory_only)
    fed_throughput, fed_memory = measure("sessionfed", start_sessionfed, args.requests, args.memory_only)

    print()
    print("| test | pipeline | redis-server req/s | sessionfed req/s | ratio | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for pipeline, target in ((1, 0.9), (16, 0.6)):
        for test in ("SET", "GET", "HSET") if redis_throughput else ():
            redis, fed = redis_throughput[pipeline].get(test, 0), fed_throughput[pipeline].get(test, 0)
            ratio = fed / redis if redis else 0
            print(f"| {test} | -P {pipeline} | {redis:,.0f} | {fed:,.0f} | {ratio:.2f} | >= {target} {'met' if ratio >= target else 'MISSED'} |")
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
