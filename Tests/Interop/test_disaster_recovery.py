"""Disaster recovery between sites (DESIGN.md §5) with real processes: three single-node sites,
seoul active, tokyo and frankfurt passive, every link through a `wan-proxy` at 25 ms
one way. Roles move with `sessionfed dr …`; writers keep writing through it all, and every
write a site acknowledged must be at every site at the end."""

import json
import threading
import time

import pytest
import redis

from conftest import wait_until
from federation import SITES

DELAY_MS = 25


def active_passive(federation_factory):
    federation = federation_factory(
        roles={"seoul": "active", "tokyo": "passive", "frankfurt": "passive"}, proxies=True, delay_ms=DELAY_MS,
        defaults={"startupSyncTimeoutMilliseconds": 30000},
    )
    federation.start_all()
    return federation


class Writer(threading.Thread):
    """Writes `prefix:N` = N at whichever site takes writes, trying `order` in turn; a site that
    answers -READONLY or is down is skipped. Records every acknowledged write and the longest
    time without one (the write pause)."""

    def __init__(self, federation, prefix, order):
        super().__init__(daemon=True)
        self.federation = federation
        self.prefix = prefix
        self.order = list(order)
        self.acknowledged = {}
        self.acknowledged_at = {}
        self.refusals = {site: 0 for site in SITES}
        self.longest_pause_s = 0.0
        self.stopping = threading.Event()
        self.clients = {site: federation.redis(site, socket_timeout=2, socket_connect_timeout=1) for site in SITES}

    def run(self):
        number = 0
        last_ack = time.monotonic()
        # A site that is down is tried again after a second, not on every write (a refused
        # connection costs the client its retries).
        down_until = {site: 0.0 for site in SITES}
        while not self.stopping.is_set():
            key = f"{self.prefix}:{number}"
            for site in self.order:
                if time.monotonic() < down_until[site]:
                    continue
                try:
                    self.clients[site].set(key, str(number))
                except redis.exceptions.ReadOnlyError:
                    self.refusals[site] += 1
                    continue
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError):
                    down_until[site] = time.monotonic() + 1.0
                    continue
                now = time.monotonic()
                self.longest_pause_s = max(self.longest_pause_s, now - last_ack)
                last_ack = now
                self.acknowledged[key] = str(number)
                self.acknowledged_at[key] = site
                number += 1
                break
            else:
                time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        self.join(10)


def readyz(federation, site):
    return federation.http(site, "/readyz?write=1")[0]


def missing_at(federation, site, acknowledged):
    client = federation.redis(site)
    keys = list(acknowledged)
    values = []
    for start in range(0, len(keys), 500):
        values += client.mget(keys[start:start + 500])
    return [key for key, value in zip(keys, values) if value != acknowledged[key]]


def assert_nothing_lost(federation, writer):
    federation.wait_quiet(60)
    for site in SITES:
        missing = missing_at(federation, site, writer.acknowledged)
        assert not missing, f"{len(missing)} acknowledged writes missing at {site}, e.g. {missing[:5]}"


def roles(federation, site):
    status = federation.status(site)
    return status["role"], status["roles"]["epoch"]


def test_passive_sites_refuse_writes_and_a_switchover_moves_them_with_nothing_lost(federation_factory):
    federation = active_passive(federation_factory)
    topology = str(federation.topology)
    # Passive sites: -READONLY (Redis's replica text), reads served, /readyz?write=1 says 503.
    for site in ("tokyo", "frankfurt"):
        with pytest.raises(redis.exceptions.ReadOnlyError, match="You can't write against a read only replica"):
            federation.redis(site).set("refused", "x")
        assert readyz(federation, site) == 503
    assert readyz(federation, "seoul") == 200
    federation.redis("seoul").set("before", "1")
    wait_until(lambda: federation.redis("tokyo").get("before") == "1", 10, what="seoul's write read at passive tokyo")

    status = federation.run_cli("dr", "status", "--topology", topology).stdout
    assert "seoul" in status and "active" in status and "passive" in status, status
    graph = federation.run_cli("topology", "graph", topology, "--live", "--format", "mermaid").stdout
    assert graph.count('|"lag ') == 3, graph  # every link connected, labelled with its lag

    writer = Writer(federation, "switch", order=["seoul", "tokyo", "frankfurt"])
    writer.start()
    wait_until(lambda: len(writer.acknowledged) >= 200, 20, what="writes at seoul before the switchover")
    result = federation.run_cli("dr", "switchover", "--topology", topology, "--to", "tokyo", "--timeout", "30")
    print(result.stdout)
    assert "tokyo: active at role epoch 1" in result.stdout, result.stdout
    wait_until(lambda: sum(1 for site in writer.acknowledged_at.values() if site == "tokyo") >= 200, 20, what="writes at tokyo after the switchover")
    writer.stop()
    print(f"switchover write pause: {writer.longest_pause_s * 1000:.0f} ms; acknowledged {len(writer.acknowledged)}")

    assert roles(federation, "tokyo") == ("active", 1)
    wait_until(lambda: roles(federation, "seoul") == ("passive", 1) and roles(federation, "frankfurt") == ("passive", 1), 10,
               what="seoul and frankfurt to learn role epoch 1")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        federation.redis("seoul").set("refused", "x")
    assert readyz(federation, "tokyo") == 200 and readyz(federation, "seoul") == 503
    assert_nothing_lost(federation, writer)

    # A switchover that cannot drain rolls back: tokyo cannot reach frankfurt.
    federation.cut("tokyo", "frankfurt")
    federation.redis("tokyo").set("stuck", "1")
    result = federation.run_cli("dr", "switchover", "--topology", topology, "--to", "frankfurt", "--timeout", "2", check=False)
    assert result.returncode != 0 and "rolled back" in result.stderr, result.stdout + result.stderr
    assert roles(federation, "tokyo") == ("active", 1), "the rollback lifts the fence at the same epoch"
    assert federation.redis("tokyo").set("after-rollback", "1")
    federation.restore("tokyo", "frankfurt")
    federation.wait_quiet(30)


def test_failover_fences_the_returning_site_and_failback_loses_nothing(federation_factory):
    federation = active_passive(federation_factory)
    topology = str(federation.topology)
    writer = Writer(federation, "fail", order=["seoul", "tokyo"])
    writer.start()
    wait_until(lambda: len(writer.acknowledged) >= 200, 20, what="writes at seoul")
    # Seoul is lost: SIGKILL, nothing flushed.
    federation.kill("seoul")
    started = time.monotonic()
    result = federation.run_cli("dr", "failover", "--topology", topology, "--to", "tokyo")
    print(result.stdout)
    assert "RPO accepted" in result.stdout and "tokyo: active at role epoch 1" in result.stdout, result.stdout
    # Command to first accepted write, by a client that tries tokyo at once.
    probe = federation.redis("tokyo")
    wait_until(lambda: probe.set("failover-probe", "1"), 10, what="the first write accepted at tokyo")
    print(f"failover: command to first accepted write {1000 * (time.monotonic() - started):.0f} ms")
    since_failover = len(writer.acknowledged)
    wait_until(lambda: len(writer.acknowledged) >= since_failover + 200, 20, what="writes at tokyo after the failover")

    # Seoul returns: it learns epoch 1 from the first site it reaches and comes back passive.
    federation.start(seoul := "seoul")
    assert roles(federation, seoul) == ("passive", 1)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        federation.redis(seoul).set("refused", "x")
    assert readyz(federation, seoul) == 503

    def acknowledged_by(site):
        return sum(1 for where in list(writer.acknowledged_at.values()) if where == site)

    before_failback = acknowledged_by("seoul")
    result = federation.run_cli("dr", "failback", "--topology", topology, "--to", "seoul", "--timeout", "25")
    print(result.stdout)
    assert "seoul: active at role epoch 2" in result.stdout, result.stdout
    wait_until(lambda: acknowledged_by("seoul") >= before_failback + 100, 20, what="writes at seoul after the failback")
    writer.stop()
    assert roles(federation, "seoul") == ("active", 2)
    wait_until(lambda: roles(federation, "tokyo") == ("passive", 2), 10, what="tokyo to learn role epoch 2")
    # Everything acknowledged after the failover (at tokyo, then seoul) is everywhere; what seoul
    # acknowledged before it died reached the others unless it was in its outboxes (the RPO).
    first_at_tokyo = min(int(value) for key, value in writer.acknowledged.items() if writer.acknowledged_at[key] == "tokyo")
    after_failover = {key: value for key, value in writer.acknowledged.items() if int(value) >= first_at_tokyo}
    federation.wait_quiet(60)
    for site in SITES:
        missing = missing_at(federation, site, after_failover)
        assert not missing, f"{len(missing)} writes acknowledged since the failover missing at {site}, e.g. {missing[:5]}"


def test_take_offline_stops_shipping_to_a_site_and_bring_online_catches_it_up(federation_factory):
    """Active-active: `dr take-offline tokyo` has seoul and frankfurt ship tokyo nothing more
    (their outboxes for it released); `dr bring-online tokyo` resumes, and anti-entropy brings
    tokyo what it missed."""
    federation = federation_factory()
    federation.start_all()
    topology = str(federation.topology)
    federation.wait_quiet(30)
    result = federation.run_cli("dr", "take-offline", "--topology", topology, "tokyo")
    assert "seoul: seoul ships nothing more to tokyo" in result.stdout and "frankfurt:" in result.stdout, result.stdout
    report = json.loads(federation.run_cli("dr", "status", "--topology", topology, "--json").stdout)
    states = {(link["fromSite"], link["toSite"]): link["state"] for link in report["links"]}
    assert states[("seoul", "tokyo")] == "offline" and states[("frankfurt", "tokyo")] == "offline", states
    assert states[("seoul", "frankfurt")] == "connected", states
    federation.redis("seoul").set("while-offline", "1")
    wait_until(lambda: federation.redis("frankfurt").get("while-offline") == "1", 10, what="frankfurt to get seoul's write")
    time.sleep(1)
    assert federation.redis("tokyo").get("while-offline") is None, "nothing is shipped to an offline site"
    assert federation.link("seoul", "tokyo")["lagDeltas"] == 0, "its outbox is released"
    federation.run_cli("dr", "bring-online", "--topology", topology, "tokyo")
    wait_until(lambda: federation.redis("tokyo").get("while-offline") == "1", 15, what="anti-entropy to catch tokyo up")
    federation.wait_quiet(30)
