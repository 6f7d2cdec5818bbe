"""Federation benchmarks on this machine (not CI): WAN bytes per update, cross-site visibility
latency through an emulated WAN, and what touch coalescing saves.

    bash Benchmarks/federation.sh                 # builds release, installs redis-py
    SESSIONFED_BIN=path python3 Benchmarks/federation.py [--quick]

Numbers depend on the machine; record them in Benchmarks/README.md with the command.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))
from federation import Federation  # noqa: E402


def link_bytes(federation, site, to):
    link = federation.link(site, to)
    return link["bytesSent"], link["statistics"]


def settle(federation):
    federation.wait_quiet(deadline_s=60)


def wire_bytes(federation, a, b):
    """Bytes the proxy between a and b forwarded, both directions (TLS records included)."""
    answer = federation.proxy(a, b, "status")
    return int(answer.split("bytes_forwarded=")[1].split()[0])


def wan_bytes_per_update(binary, workdir, updates):
    """A 10 KB session hash, then single-field updates: frame bytes seoul sends to tokyo, and
    TCP payload bytes on seoul's TLS connection to tokyo (both directions: deltas, their
    acknowledgements and heartbeats), per update."""
    federation = Federation(binary, workdir, tls=True, proxies=True)
    try:
        federation.start_all()
        seoul = federation.redis("seoul")
        key = "spring:session:sessions:3f2a7c5e-1b9d-4e0a-9c77-5b1e2d3c4f60"
        fields = {f"sessionAttr:attribute{n:03d}": "v" * 92 for n in range(100)}  # 100 x (20 + 92) B ~ 10 KB
        seoul.hset(key, mapping=fields)
        settle(federation)
        results = {}
        for label, write in (
            ("single-field update (HSET lastAccessedTime)", lambda i: seoul.hset(key, "lastAccessedTime", str(1_700_000_000_000 + i))),
            ("full rewrite (HSET of all 100 fields)", lambda i: seoul.hset(key, mapping={name: f"{i:08d}" + "v" * 84 for name in fields})),
        ):
            before, stats_before = link_bytes(federation, "seoul", "tokyo")
            wire_before = wire_bytes(federation, "seoul", "tokyo")
            for i in range(updates):
                write(i)
                time.sleep(0.015)  # one update per batch: nothing to coalesce
            settle(federation)
            after, stats_after = link_bytes(federation, "seoul", "tokyo")
            wire_after = wire_bytes(federation, "seoul", "tokyo")
            batches = stats_after["batchesSent"] - stats_before["batchesSent"]
            results[label] = ((after - before) / updates, (wire_after - wire_before) / updates, batches)
        return results
    finally:
        federation.stop_all()


def visibility_latency(binary, workdir, rate, seconds, delay_ms):
    """SETs at seoul at `rate`/s; tokyo's keyspace events tell when each became visible there."""
    federation = Federation(binary, workdir, tls=True, proxies=True, delay_ms=delay_ms)
    try:
        federation.start_all()
        tokyo = federation.redis("tokyo")
        tokyo.config_set("notify-keyspace-events", "E$")
        seen = {}
        ready = threading.Event()

        def listen():
            pubsub = federation.redis("tokyo").pubsub()
            pubsub.subscribe("__keyevent@0__:set")
            ready.set()
            while len(seen) < rate * seconds:
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] == "message":
                    seen[message["data"]] = time.perf_counter()
            pubsub.close()

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        ready.wait()
        seoul = federation.redis("seoul")
        sent = {}
        interval = 1.0 / rate
        start = time.perf_counter()
        for n in range(rate * seconds):
            target = start + n * interval
            # Sleep most of the wait: a spinning writer would hold the GIL (delaying the
            # listener thread's timestamps) and a core the servers need.
            remaining = target - time.perf_counter()
            if remaining > 0.0003:
                time.sleep(remaining - 0.0002)
            while time.perf_counter() < target:
                pass
            key = f"latency:{n}"
            seoul.set(key, "x")
            sent[key] = time.perf_counter()
        achieved = rate * seconds / (time.perf_counter() - start)
        listener.join(timeout=30)
        latencies = sorted((seen[key] - sent[key]) * 1000 for key in sent if key in seen)
        missing = len(sent) - len(latencies)
        def percentile(p):
            return latencies[min(len(latencies) - 1, int(len(latencies) * p))]
        return {
            "writes": len(sent), "achieved_rate": achieved, "missing": missing,
            "p50": percentile(0.50), "p99": percentile(0.99), "max": latencies[-1], "mean": statistics.fmean(latencies),
        }
    finally:
        federation.stop_all()


def coalescing(binary, workdir, sessions, page_loads):
    """Spring-Session-like traffic: every request does HMSET (lastAccessedTime, an attribute)
    plus PEXPIREAT; a page load fires 8 requests for one session at once."""
    federation = Federation(binary, workdir, tls=True)
    try:
        federation.start_all()
        seoul = federation.redis("seoul")
        keys = [f"spring:session:sessions:{n:08d}-aaaa-bbbb-cccc-{n:012d}" for n in range(sessions)]
        for key in keys:
            seoul.hset(key, mapping={"creationTime": "1700000000000", "maxInactiveInterval": "1800", "sessionAttr:user": "ann"})
        settle(federation)
        results = {}
        for label, burst in (("bursts (8 requests of a page load together)", True), ("spread (one request per batch)", False)):
            before, stats_before = link_bytes(federation, "seoul", "tokyo")
            requests = 0
            for load in range(page_loads):
                key = keys[load % sessions]
                for request in range(8):
                    now = int(time.time() * 1000)
                    pipe = seoul.pipeline(transaction=False)
                    pipe.hset(key, mapping={"lastAccessedTime": str(now), "sessionAttr:lastPage": f"/page/{request}"})
                    pipe.pexpireat(key, now + 1_800_000)
                    pipe.execute()
                    requests += 1
                    if not burst:
                        time.sleep(0.007)
                if burst:
                    time.sleep(0.007)
            settle(federation)
            after, stats_after = link_bytes(federation, "seoul", "tokyo")
            produced = stats_after["deltasEnqueued"] - stats_before["deltasEnqueued"]
            shipped = stats_after["deltasSent"] - stats_before["deltasSent"]
            results[label] = {
                "requests": requests, "deltas_produced": produced, "deltas_shipped": shipped,
                "bytes": after - before, "bytes_per_request": (after - before) / requests,
            }
        return results
    finally:
        federation.stop_all()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer operations (a smoke run)")
    parser.add_argument("--only", choices=["bytes", "latency", "coalescing"], help="run one of the three")
    options = parser.parse_args()
    binary = os.environ.get("SESSIONFED_BIN")
    if not binary:
        sys.exit("SESSIONFED_BIN must name a (release) sessionfed binary")
    scale = 0.1 if options.quick else 1.0
    with tempfile.TemporaryDirectory() as scratch:
        if options.only in (None, "bytes"):
            print("== WAN bytes per update of a 10 KB session hash (seoul -> tokyo, amortized incl. heartbeats)")
            for label, (frames, wire, batches) in wan_bytes_per_update(binary, Path(scratch) / "bytes", int(1000 * scale)).items():
                print(f"   {label:48s} frames {frames:8.1f} B/update, on the wire (TLS, both directions) {wire:8.1f} B/update ({batches} batches)")
        if options.only in (None, "latency"):
            print("== cross-site visibility latency at 2,000 writes/s, 25 ms one-way emulated delay")
            result = visibility_latency(binary, Path(scratch) / "latency", rate=2000, seconds=max(1, int(10 * scale)), delay_ms=25)
            print(
                f"   {result['writes']} writes at {result['achieved_rate']:.0f}/s: p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, "
                f"max {result['max']:.1f} ms, mean {result['mean']:.1f} ms, not seen {result['missing']}"
            )
        if options.only in (None, "coalescing"):
            print("== touch coalescing on a Spring-Session-like workload (HMSET + PEXPIREAT per request)")
            for label, numbers in coalescing(binary, Path(scratch) / "coalescing", sessions=50, page_loads=int(500 * scale)).items():
                print(
                    f"   {label:44s} {numbers['requests']} requests: {numbers['deltas_produced']} deltas produced, "
                    f"{numbers['deltas_shipped']} shipped, {numbers['bytes']} bytes = {numbers['bytes_per_request']:.1f} bytes/request"
                )


if __name__ == "__main__":
    main()
