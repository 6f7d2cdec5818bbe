"""Disaster recovery between sites, measured from the clients' side.

Three single-node sites (seoul active, tokyo and frankfurt passive) with every link through a
`wan-proxy` at --delay-ms one way (`Tests/Interop/federation.py`), mutual TLS.

- Switchover: a redis-py writer keeps writing at whichever site takes writes while
  `sessionfed dr switchover` moves the writes back and forth between seoul and tokyo --runs
  times. The write pause of a run is the longest time between two acknowledged writes around
  it; the CLI's own figure (fence to the target accepting) is recorded too.
- Failover: --runs times, the active site is SIGKILLed, `sessionfed dr failover` makes the
  other one active, and a client that tries the new site at once measures the time from the
  command to its first accepted write; the killed site is restarted (it returns passive) and
  the next run fails over back to it.

Prints every run, then p50 and max.

    SESSIONFED_BIN=.build-interop/release/sessionfed python3 Benchmarks/dr.py [--runs 10]
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "Interop"))

from conftest import wait_until  # noqa: E402
from federation import Federation  # noqa: E402
from test_disaster_recovery import Writer  # noqa: E402


def summary(name, values):
    values = sorted(values)
    return f"{name}: p50 {statistics.median(values):.0f} ms, max {values[-1]:.0f} ms over {len(values)} runs"


def switchovers(binary, workdir, runs, delay_ms):
    federation = Federation(binary, workdir, proxies=True, delay_ms=delay_ms, roles={"seoul": "active", "tokyo": "passive", "frankfurt": "passive"})
    pauses, reported = [], []
    try:
        federation.start_all()
        topology = str(federation.topology)
        targets = ["tokyo", "seoul"]
        for run in range(runs):
            target = targets[run % 2]
            writer = Writer(federation, f"bench{run}", order=["seoul", "tokyo"])
            writer.start()
            wait_until(lambda: len(writer.acknowledged) >= 200, 20, what="writes before the switchover")
            result = federation.run_cli("dr", "switchover", "--topology", topology, "--to", target, "--timeout", "30")
            wait_until(lambda: sum(1 for site in list(writer.acknowledged_at.values()) if site == target) >= 200, 20, what="writes after it")
            writer.stop()
            match = re.search(r"writes were refused for (\d+) ms", result.stdout)
            reported.append(float(match.group(1)) if match else float("nan"))
            pauses.append(writer.longest_pause_s * 1000)
            print(f"switchover {run + 1} to {target}: client write pause {pauses[-1]:.0f} ms, CLI fence-to-accepting {reported[-1]:.0f} ms", flush=True)
            federation.wait_quiet(60)
    finally:
        federation.stop_all()
    return pauses, reported


def failovers(binary, workdir, runs, delay_ms):
    federation = Federation(binary, workdir, proxies=True, delay_ms=delay_ms, roles={"seoul": "active", "tokyo": "passive", "frankfurt": "passive"})
    times = []
    try:
        federation.start_all()
        topology = str(federation.topology)
        active, standby = "seoul", "tokyo"
        for run in range(runs):
            federation.kill(active)
            started = time.monotonic()
            federation.run_cli("dr", "failover", "--topology", topology, "--to", standby)
            probe = federation.redis(standby)
            wait_until(lambda: probe.set(f"failover:{run}", "1"), 10, interval_s=0.001, what="the first accepted write")
            times.append(1000 * (time.monotonic() - started))
            print(f"failover {run + 1} to {standby}: command to first accepted write {times[-1]:.0f} ms", flush=True)
            federation.start(active)
            federation.wait_quiet(60)
            active, standby = standby, active
    finally:
        federation.stop_all()
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--delay-ms", type=int, default=25)
    arguments = parser.parse_args()
    binary = os.environ.get("SESSIONFED_BIN") or sys.exit("SESSIONFED_BIN must name the sessionfed binary")
    with tempfile.TemporaryDirectory() as scratch:
        pauses, reported = switchovers(binary, Path(scratch) / "switchover", arguments.runs, arguments.delay_ms)
        times = failovers(binary, Path(scratch) / "failover", arguments.runs, arguments.delay_ms)
    print(summary(f"switchover write pause (client side, {arguments.delay_ms} ms one way)", pauses))
    print(summary("switchover fence to target accepting (CLI)", reported))
    print(summary("failover command to first accepted write", times))


if __name__ == "__main__":
    main()
