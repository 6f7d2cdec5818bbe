"""Federation stories: three real sites (one node each) on loopback, mutual TLS, redis-py.

Each story starts its own federation, so they can cut links and kill nodes freely.
"""

import random
import re
import shutil
import threading
import time

import pytest
import redis

from conftest import raw_exchange, wait_until
from federation import SITES


def conflicts(federation):
    total = 0
    for site in SITES:
        for link in federation.status(site)["federationLinks"]:
            total += sum(link["statistics"]["conflicts"].values())
    return total


def test_concurrent_writes_at_three_sites_converge(federation_factory):
    federation = federation_factory()
    federation.start_all()
    sessions = [f"spring:session:sessions:{n}" for n in range(40)]
    for key in sessions:
        federation.redis("seoul").hset(key, mapping={"creationTime": "1", "maxInactiveInterval": "1800"})
    federation.wait_quiet()
    errors = []

    def writer(site, seed):
        generator = random.Random(seed)
        client = federation.redis(site)
        try:
            for step in range(300):
                key = generator.choice(sessions)
                action = generator.randrange(10)
                if action < 4:
                    # The same field at every site (conflicts) and a field of this site's own.
                    client.hset(key, mapping={"sessionAttr:cart": f"{site}-{step}", f"sessionAttr:{site}": str(step)})
                elif action == 4:
                    client.hdel(key, "sessionAttr:cart")
                elif action == 5:
                    client.pexpire(key, 3_600_000 + generator.randrange(100_000))
                elif action == 6:
                    client.sadd(f"index:{generator.randrange(5)}", key)
                elif action == 7:
                    client.delete(key)
                elif action == 8:
                    try:
                        client.rename(key, f"{key}:renamed:{site}")
                    except redis.ResponseError:
                        pass  # no such key here right now
                else:
                    client.set(f"short:{site}:{step}", "x", px=generator.randrange(1, 400))
        except Exception as error:  # reported below, with the site
            errors.append(f"{site}: {error!r}")

    threads = [threading.Thread(target=writer, args=(site, index)) for index, site in enumerate(SITES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    time.sleep(0.5)  # let the short-lived keys expire everywhere
    federation.wait_quiet()
    reference = federation.dump("seoul")
    assert reference, "the history left no keys at all"
    for site in SITES[1:]:
        other = federation.dump(site)
        differing = sorted(key for key in set(reference) | set(other) if reference.get(key) != other.get(key))
        assert not differing, f"{site} differs from seoul in {differing[:10]}"
    roots = {federation.status(site)["merkleRoot"] for site in SITES}
    assert len(roots) == 1, roots
    assert conflicts(federation) > 0, "concurrent writes to sessionAttr:cart were not counted as conflicts"
    assert not any(key.startswith("short:") for key in reference), "expired keys are still visible"


def test_a_session_written_logged_out_and_written_again_after_collection_leaves_every_site_equal(federation_factory):
    """A session collected everywhere, written again, logged out and written once more at one
    site before its next batch leaves: the outbox folds the first write into the delete,
    which stores nothing. The delete must reach every site's state, so that the sites agree
    at once, not at the next periodic anti-entropy round (5 minutes by default; the last
    write keeps the session from being collected again, which would hide the difference)."""
    federation = federation_factory(defaults={"collectionIntervalMilliseconds": 300})
    federation.start_all()
    key = "spring:session:sessions:written-again"
    seoul = federation.redis("seoul")
    seoul.hset(key, "user", "ann")
    federation.wait_quiet()
    seoul.delete(key)
    wait_until(lambda: all(federation.status(site)["storedKeys"] == 0 for site in SITES), 30, interval_s=0.1,
               what="every site to collect the logged-out session")
    def coalesced():
        return sum(link["statistics"]["deltasCoalesced"] for link in federation.status("tokyo")["federationLinks"])

    before = coalesced()
    pipe = federation.redis("tokyo").pipeline(transaction=False)
    pipe.hset(key, "user", "bob")
    pipe.delete(key)
    pipe.hset(key, "user", "carol")
    assert pipe.execute() == [1, 1, 1]
    # The story is about a write folded into the delete: it must have been, on both links.
    assert coalesced() == before + 2
    federation.wait_quiet(deadline_s=15)
    for site in SITES:
        assert federation.redis(site).hgetall(key) == {"user": "carol"}, site


def test_logout_at_one_site_concurrent_with_writes_elsewhere_is_final(federation_factory):
    federation = federation_factory(proxies=True)
    federation.start_all()
    seoul, tokyo, frankfurt = (federation.redis(site) for site in SITES)
    keys = [f"session:{n}" for n in range(60)]
    for key in keys:
        seoul.hset(key, mapping={"user": "ann", "lastAccessedTime": "0"})
    federation.wait_quiet()
    # Tokyo and frankfurt cannot hear each other while the user logs out at tokyo and
    # frankfurt keeps serving the same sessions: the writes are truly concurrent with the
    # logout (a write made after the logout arrived would rightly start a new session).
    federation.cut("tokyo", "frankfurt")

    def logout():
        for key in keys:
            tokyo.delete(key)

    def keep_using():
        for step, key in enumerate(keys):
            frankfurt.hset(key, "lastAccessedTime", str(step))
            frankfurt.pexpire(key, 1_800_000)

    threads = [threading.Thread(target=logout), threading.Thread(target=keep_using)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.2)
    federation.restore("tokyo", "frankfurt")
    federation.wait_quiet()
    for _ in range(2):
        for site in SITES:
            alive = [key for key in keys if federation.redis(site).exists(key)]
            assert not alive, f"logged-out sessions alive at {site}: {alive[:5]}"
        time.sleep(1.0)  # and they stay gone
    discarded = sum(
        link["statistics"]["conflicts"].get("delete-wins", 0) for site in SITES for link in federation.status(site)["federationLinks"]
    )
    assert discarded > 0, "no write was discarded by the concurrent logout: the race did not happen"


def test_deleted_and_expired_sessions_are_collected_at_every_site(federation_factory):
    """Without federation-wide collection every session ever created stayed in memory at
    every site (the tombstones of deleted sessions and expired ones past their grace)."""
    federation = federation_factory(defaults={"collectionIntervalMilliseconds": 300, "expiryGraceMilliseconds": 500})
    federation.start_all()
    seoul, tokyo, frankfurt = (federation.redis(site) for site in SITES)
    pipe = seoul.pipeline(transaction=False)
    for n in range(1_000):
        pipe.hset(f"session:{n}", mapping={"user": f"u{n}", "lastAccessedTime": "0"})
        if n % 2 == 0:
            pipe.pexpire(f"session:{n}", 300)
    pipe.execute()
    frankfurt.hset("session:kept", "user", "ann")
    federation.wait_quiet()
    for n in range(1, 1_000, 2):
        tokyo.delete(f"session:{n}")

    def collected():
        statuses = [federation.status(site) for site in SITES]
        return all(status["storedKeys"] == 1 for status in statuses)

    wait_until(collected, 30, what="every site to drop the deleted and expired sessions")
    for site in SITES:
        status = federation.status(site)
        assert status["keysCollected"] >= 900, f"{site}: {status['keysCollected']} keys collected"
        assert status["collection"]["blockedBy"] == [], status["collection"]
        assert federation.redis(site).dbsize() == 1
        assert federation.redis(site).hget("session:kept", "user") == "ann"
    # A session of a collected name written again lives at every site.
    seoul.hset("session:1", "user", "bob")
    wait_until(lambda: all(federation.redis(site).hget("session:1", "user") == "bob" for site in SITES), 10, what="the new session:1 everywhere")
    federation.wait_quiet()


def test_link_cut_beyond_the_outbox_bound_is_repaired_by_anti_entropy(federation_factory):
    federation = federation_factory(proxies=True, defaults={"outboxLimitBytes": 65536})
    federation.start_all()
    seoul, tokyo = federation.redis("seoul"), federation.redis("tokyo")
    federation.cut("seoul", "tokyo")
    pipe = seoul.pipeline(transaction=False)
    for n in range(3000):
        pipe.hset(f"session:cut:{n}", mapping={"user": f"u{n}", "payload": "p" * 40})
    pipe.execute()
    tokyo.hset("session:tokyo-during-cut", "user", "tia")  # acknowledged at tokyo during the cut

    def resync_needed():
        report = federation.run_cli("status", "--topology", str(federation.topology)).stdout
        return report if re.search(r"seoul-1\s+tokyo\s+needs-resync", report) else None

    report = wait_until(resync_needed, 20, interval_s=0.2, what="seoul's link to tokyo to show needs-resync")
    assert "needs-resync" in report
    link = federation.link("seoul", "tokyo")
    assert link["statistics"]["outboxOverflows"] >= 1 and link["statistics"]["deltasDropped"] > 0
    assert "outbox over its limit" in federation.log("seoul")

    federation.restore("seoul", "tokyo")
    federation.wait_quiet(deadline_s=40)
    assert not federation.link("seoul", "tokyo")["needsResync"]
    assert federation.link("seoul", "tokyo")["statistics"]["keysRepaired"] + federation.link("tokyo", "seoul")["statistics"]["keysRepaired"] > 0
    for site in SITES:
        client = federation.redis(site)
        assert client.dbsize() == 3001, f"{site} has {client.dbsize()} keys"
        assert client.hget("session:cut:2999", "user") == "u2999"
        assert client.hget("session:tokyo-during-cut", "user") == "tia"


def test_a_node_killed_and_restarted_empty_recovers_before_serving(federation_factory):
    federation = federation_factory()
    federation.start_all()
    for index, site in enumerate(SITES):
        pipe = federation.redis(site).pipeline(transaction=False)
        for n in range(400):
            pipe.hset(f"session:{site}:{n}", mapping={"user": f"{site}{n}", "n": str(n)})
        pipe.execute()
    federation.wait_quiet()
    federation.kill("frankfurt")
    federation.redis("seoul").hset("session:written-while-down", "user", "zoe")
    federation.redis("tokyo").delete("session:seoul:7")

    federation.start("frankfurt", wait_healthy=False)
    client = federation.redis("frankfurt")
    answers = []
    # Until it has recovered, frankfurt answers -LOADING (or its /healthz says 503), never a
    # partial keyspace.
    while not federation.healthy("frankfurt"):
        try:
            answers.append(client.dbsize())
        except redis.exceptions.BusyLoadingError:
            answers.append("LOADING")
        time.sleep(0.005)
    # (recovery may end between the health check and the command: then the full count)
    assert all(answer in ("LOADING", 1200) for answer in answers), answers[:20]
    assert client.dbsize() == 1200
    assert client.hget("session:written-while-down", "user") == "zoe"
    assert client.exists("session:seoul:7") == 0
    federation.wait_quiet()
    assert "data recovered from the federation" in federation.log("frankfurt")


def test_peers_with_a_foreign_ca_or_from_another_federation_are_refused(federation_factory, tmp_path):
    federation = federation_factory()
    federation.start_all()

    # An impostor for frankfurt with certificates from another CA.
    foreign = federation_factory(federation=federation.federation)
    foreign.ports["seoul"] = federation.ports["seoul"]
    foreign.ports["tokyo"] = federation.ports["tokyo"]
    for site in SITES:
        (foreign.workdir / f"topology-{site}.yaml").write_text(foreign.topology_text())
    foreign.start("frankfurt", wait_healthy=False)
    wait_until(lambda: "TLS handshake failed" in federation.log("seoul"), 20, what="seoul to refuse the foreign CA")
    assert re.search(r"TLS handshake failed.*federation connection refused", federation.log("seoul"))
    wait_until(lambda: "TLS handshake failed" in foreign.log("frankfurt"), 20, what="the impostor to log the refusal")

    # A node of another federation holding a certificate of this CA.
    other = federation_factory(federation="another-federation")
    other.ports["seoul"] = federation.ports["seoul"]
    other.ports["tokyo"] = federation.ports["tokyo"]
    shutil.rmtree(other.workdir / "certs")
    shutil.copytree(federation.workdir / "certs", other.workdir / "certs")
    for site in SITES:
        (other.workdir / f"topology-{site}.yaml").write_text(other.topology_text())
    other.start("frankfurt", wait_healthy=False)
    refusal = "peer belongs to federation 'another-federation', this is federation 'interop-federation'"
    wait_until(lambda: refusal in federation.log("seoul"), 20, what="seoul to refuse the other federation")
    wait_until(lambda: refusal in other.log("frankfurt"), 20, what="the other federation's node to log why")
    # The real federation is unharmed.
    federation.redis("seoul").set("still", "fine")
    wait_until(lambda: federation.redis("frankfurt").get("still") == "fine", 10, what="replication to go on")


def test_writes_from_other_sites_fire_keyspace_events(federation_factory):
    federation = federation_factory()
    federation.start_all()
    tokyo = federation.redis("tokyo")
    tokyo.config_set("notify-keyspace-events", "KEA")
    pubsub = tokyo.pubsub()
    pubsub.psubscribe("__keyevent@0__:*")
    wait_until(lambda: pubsub.get_message(timeout=0.1) is not None, 5, what="the subscription")
    federation.redis("seoul").hset("session:events", "user", "ann")
    federation.redis("frankfurt").delete("other-key-never-written")  # nothing merged: no event
    federation.redis("seoul").delete("session:events")
    events = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(events) < 2:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "pmessage":
            events.append((message["channel"], message["data"]))
    pubsub.close()
    assert events == [("__keyevent@0__:hset", "session:events"), ("__keyevent@0__:del", "session:events")]


def test_malformed_frames_close_the_link_not_the_node(federation_factory):
    import socket

    federation = federation_factory(tls=False)  # plaintext on loopback: the garbage reaches the decoder
    federation.start_all()
    port = federation.ports["seoul"]["federation"]
    garbage = [
        b"\x00\x00\x00\x05hello",  # a frame that is not a protobuf Frame
        b"\xff\xff\xff\xff" + b"x" * 64,  # a length far over the 16 MiB cap
        b"GET / HTTP/1.1\r\n\r\n",  # the wrong protocol
    ]
    for payload in garbage:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
            sock.settimeout(5)
            try:
                closed = sock.recv(4096) == b""
            except ConnectionResetError:
                closed = True
            assert closed, f"seoul kept a connection open after {payload[:12]!r}"
    assert "malformed frame" in federation.log("seoul") or "expected Hello" in federation.log("seoul")
    federation.redis("seoul").set("after-garbage", "ok")
    wait_until(lambda: federation.redis("tokyo").get("after-garbage") == "ok", 10, what="replication to go on")
    assert federation.healthy("seoul")


def test_a_passive_site_refuses_writes_serves_reads_and_applies_the_active_sites_writes(federation_factory):
    """DESIGN.md §5: a passive site answers writes with Redis's read-only replica error (clients
    act on its first word) and serves reads; what the active sites write still reaches it."""
    federation = federation_factory(roles={"frankfurt": "passive"})
    federation.start_all()
    passive = federation.redis("frankfurt")
    with pytest.raises(redis.exceptions.ReadOnlyError, match="You can't write against a read only replica"):
        passive.set("session:1", "x")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        passive.hset("spring:session:sessions:1", mapping={"user": "ann"})
    assert federation.redis("seoul").hset("spring:session:sessions:1", mapping={"user": "ann"}) == 1
    wait_until(lambda: passive.hgetall("spring:session:sessions:1") == {"user": "ann"}, 10,
               what="a write at the active seoul to be read at the passive frankfurt")
    assert passive.exists("spring:session:sessions:1") == 1 and passive.ping()
    # In a transaction, as on a Redis replica: the write is refused when queued and EXEC
    # discards the transaction.
    replies = raw_exchange(federation.ports["frankfurt"]["client"], ["MULTI"], ["GET", "x"], ["SET", "session:2", "y"], ["EXEC"])
    assert replies == ["+OK", "+QUEUED", "-READONLY You can't write against a read only replica.",
                       "-EXECABORT Transaction discarded because of previous errors."], replies
    pipe = passive.pipeline(transaction=True)
    pipe.set("session:2", "y")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        pipe.execute()
    assert federation.redis("tokyo").get("session:2") is None
