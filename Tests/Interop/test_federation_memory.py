"""A federation gives back the memory of the sessions it dropped.

Three real sites (one node each, mutual TLS, WAN proxies between them) create 100,000
Spring-Session-shaped sessions, half expiring and half deleted at another site. Once
federation-wide collection has dropped them and the collection horizon has passed, each
node's resident memory is back within 10 % of what the same federation used empty, and what
its allocator still hands out is not a share of the sessions. Then a site is cut
off for longer than the horizon while sessions are deleted and expire elsewhere: collection
waits for it (and says so), and when it returns no dropped session reappears anywhere.

SESSIONFED_MEMORY_SESSIONS changes the count (the number recorded in Benchmarks/README.md
is the default).
"""

import os
import time

from conftest import wait_until
from federation import SITES

SESSIONS = int(os.environ.get("SESSIONFED_MEMORY_SESSIONS", "100000"))
HORIZON_MS = 5_000
DEFAULTS = {"collectionIntervalMilliseconds": 500, "collectionHorizonMilliseconds": HORIZON_MS, "expiryGraceMilliseconds": 500}


def memory(federation, site):
    """The node's resident set (from /proc) and what its allocator has handed out (INFO)."""
    pid = federation.nodes[site].handle.pid
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    allocated = int(federation.redis(site).info("memory")["allocator_allocated"])
    return {"rss": rss, "allocated": allocated}


def session_key(prefix, index):
    return f"spring:session:sessions:{prefix}-{index:08d}"


def create(federation, prefix, count, expire_ms=1_500):
    """`count` sessions written in turn at every site; the even ones expire after `expire_ms`."""
    clients = [federation.redis(site) for site in SITES]
    for start in range(0, count, 1_000):
        pipe = clients[(start // 1_000) % len(SITES)].pipeline(transaction=False)
        for index in range(start, min(count, start + 1_000)):
            key = session_key(prefix, index)
            pipe.hset(key, mapping={
                "creationTime": "1700000000000", "lastAccessedTime": "1700000000000",
                "maxInactiveInterval": "1800", "sessionAttr:user": f"user-{index}",
            })
            if index % 2 == 0:
                pipe.pexpire(key, expire_ms)
        pipe.execute()
    for client in clients:
        client.close()


def delete_odd(client, prefix, count):
    """Deletes the odd sessions (those without an expiry) through `client`."""
    for start in range(1, count, 2_000):
        pipe = client.pipeline(transaction=False)
        for index in range(start, min(count, start + 2_000), 2):
            pipe.delete(session_key(prefix, index))
        assert all(pipe.execute())
    client.close()


def stored(federation):
    return {site: federation.status(site)["storedKeys"] for site in SITES}


def churn(federation, prefix, count):
    """Creates `count` sessions, deletes the odd ones at another site than their writer's,
    waits until every site dropped them all and the horizon forgot them. Returns each node's
    memory while it held them."""
    create(federation, prefix, count)
    federation.wait_quiet(deadline_s=600)
    full = {site: memory(federation, site) for site in SITES}
    delete_odd(federation.redis("tokyo"), prefix, count)
    wait_until(lambda: all(value == 0 for value in stored(federation).values()), 300, interval_s=1,
               what=f"every site to collect the {count} {prefix} sessions")
    # Past the horizon the dropped keys' contexts are forgotten; the next memory pass
    # rebuilds the emptied containers and trims.
    time.sleep(HORIZON_MS / 1_000 + 3)
    for site in SITES:
        assert federation.status(site)["collectedKeysRemembered"] == 0
    return full


def test_memory_returns_after_100k_sessions_and_a_site_cut_off_past_the_horizon_brings_none_back(federation_factory):
    federation = federation_factory(proxies=True, defaults=DEFAULTS)
    federation.start_all()
    # "Empty": the same federation after a small churn, so every code path the big one takes
    # has run once (its code pages are resident in both measurements).
    churn(federation, "warm", 1_000)
    empty = {site: memory(federation, site) for site in SITES}
    started = time.monotonic()
    full = churn(federation, "load", SESSIONS)
    after = {site: memory(federation, site) for site in SITES}
    report = {
        site: {
            "rss_empty_kb": empty[site]["rss"] // 1024, "rss_full_kb": full[site]["rss"] // 1024, "rss_after_kb": after[site]["rss"] // 1024,
            "rss_ratio": round(after[site]["rss"] / empty[site]["rss"], 3),
            "allocated_empty_kb": empty[site]["allocated"] // 1024, "allocated_full_kb": full[site]["allocated"] // 1024,
            "allocated_after_kb": after[site]["allocated"] // 1024,
        }
        for site in SITES
    }
    print(f"\n{SESSIONS} sessions created, dropped and collected in {time.monotonic() - started:.0f} s: {report}")
    for site in SITES:
        # Measured 1.03 since large containers are mapped on their own (Benchmarks/README.md);
        # 2.6x before any memory was given back.
        assert after[site]["rss"] <= 1.10 * empty[site]["rss"], f"{site}: resident memory not given back: {report[site]}"
        # What stays allocated (1-2 MB here) is buffers grown to the load's bursts, not a share
        # of the sessions: 40 bytes kept per session would exceed this bound at 100,000.
        kept = after[site]["allocated"] - empty[site]["allocated"]
        assert kept <= 4 << 20, f"{site}: allocated memory not given back: {report[site]}"

    # Frankfurt is cut off for longer than the horizon while sessions end elsewhere.
    create(federation, "cut", 2_000, expire_ms=60_000)
    federation.wait_quiet(deadline_s=60)
    seoul = federation.redis("seoul")
    for other in ("seoul", "tokyo"):
        federation.cut(other, "frankfurt")
    delete_odd(seoul, "cut", 2_000)
    pipe = seoul.pipeline(transaction=False)
    for index in range(0, 2_000, 2):
        pipe.pexpire(session_key("cut", index), 1)
    pipe.execute()
    federation.redis("frankfurt").hset("session:written-during-the-cut", "user", "ann")
    time.sleep(HORIZON_MS / 1_000 + 2)
    for site in ("seoul", "tokyo"):
        collection = federation.status(site)["collection"]
        assert collection["blockedBy"] == ["frankfurt"], collection
        assert federation.status(site)["storedKeys"] == 2_000, "nothing is dropped while a site that has not seen it is away"
    assert federation.redis("frankfurt").exists(session_key("cut", 1)) == 1, "frankfurt still holds what it did not hear of"

    for other in ("seoul", "tokyo"):
        federation.restore(other, "frankfurt")
    federation.wait_quiet(deadline_s=120)
    wait_until(lambda: all(value == 1 for value in stored(federation).values()), 120, interval_s=1,
               what="every site to drop the sessions that ended during the cut")
    for site in SITES:
        client = federation.redis(site)
        assert client.dbsize() == 1, f"{site}: a dropped session came back: {client.keys('*')[:5]}"
        assert client.hget("session:written-during-the-cut", "user") == "ann"
        assert federation.status(site)["collection"]["blockedBy"] == []
