"""Federation between sites of several nodes each: two federated sites of three real nodes.

A write acknowledged at any node of one site reaches every node of the other, whichever
node of the other site the link lands on: the remote batch is applied by the partition's
primary there and replicated to its backups before it is acknowledged.
"""

import time

import redis

from conftest import wait_until


def started_sites(site_factory, **options):
    sites = site_factory.federated(**options)
    for site in sites:
        site.start_all()
    for site in sites:
        site.wait_converged()
    return sites


def clients(site):
    return {node: redis.Redis(port=site.ports[node]["client"], socket_timeout=15, decode_responses=True) for node in site.names}


def test_writes_at_every_node_of_one_site_are_read_at_every_node_of_the_other(site_factory):
    seoul, lisbon = started_sites(site_factory)
    at_seoul, at_lisbon = clients(seoul), clients(lisbon)
    # Keys of every partition, written through every node of each site.
    written = {}
    for index in range(48):
        node = seoul.names[index % 3]
        key = f"session:seoul:{index}"
        assert at_seoul[node].hset(key, mapping={"user": f"u{index}", "site": "seoul"}) == 2
        written[key] = {"user": f"u{index}", "site": "seoul"}
    for index in range(48):
        node = lisbon.names[index % 3]
        key = f"session:lisbon:{index}"
        assert at_lisbon[node].hset(key, mapping={"user": f"u{index}", "site": "lisbon"}) == 2
        written[key] = {"user": f"u{index}", "site": "lisbon"}

    def everywhere():
        for site, at in ((seoul, at_seoul), (lisbon, at_lisbon)):
            for node in site.names:
                for key, fields in written.items():
                    if at[node].hgetall(key) != fields:
                        return False
        return True

    wait_until(everywhere, 20, what="every session written at either site to be read at every node of both")
    # A delete at one site removes the session at every node of the other.
    assert at_lisbon[lisbon.names[1]].delete("session:seoul:7") == 1
    wait_until(lambda: all(at_seoul[node].exists("session:seoul:7") == 0 for node in seoul.names), 20,
               what="a delete at lisbon to reach every node of seoul")
    # Every copy of every partition agrees at rest (the merges were replicated, not applied
    # on whichever node received the batch).
    for site in (seoul, lisbon):
        counts = {node: clients(site)[node].dbsize() for node in site.names}
        assert len(set(counts.values())) == 1 and counts[site.names[0]] == 95, counts


def test_sigkill_of_the_node_shipping_a_partition_loses_no_acknowledged_write_at_the_other_site(site_factory):
    from test_site_replication import Writer, check_every_acknowledged_write, partition_of

    # Batches leave every 200 ms, so the killed node always dies with deltas it has not
    # shipped yet: they reach the other site only if its backups kept them and the promoted
    # primary ships them.
    seoul, lisbon = started_sites(site_factory, defaults={"batchIntervalMilliseconds": 200})
    wait_until(lambda: len(set(row.get("primary") for row in seoul.leader_view()["partitionTable"])) == 3, 20,
               what="every node of seoul to lead partitions")
    table = {row["partition"]: row["primary"] for row in seoul.leader_view()["partitionTable"]}
    leader = seoul.leader_view()["leader"]
    victim = max((node for node in seoul.names if node != leader), key=lambda node: list(table.values()).count(node))
    writers = [Writer(f"w{index}", seoul.ports[node]["client"]) for index, node in enumerate(seoul.names)]
    for writer in writers:
        writer.start()
    time.sleep(1.5)
    seoul.kill(victim)
    time.sleep(2.0)
    for writer in writers:
        writer.stop.set()
    for writer in writers:
        writer.join(20)
    assert any(table[partition_of(key)] == victim for writer in writers for key in writer.acknowledged), "no write went to the victim's partitions"
    seoul.wait_converged()
    check_every_acknowledged_write(seoul, writers)

    def at_lisbon():
        try:
            check_every_acknowledged_write(lisbon, writers)
            return True
        except AssertionError:
            return False

    try:
        wait_until(at_lisbon, 20, what="every write acknowledged at seoul to reach every node of lisbon")
    except AssertionError:
        check_every_acknowledged_write(lisbon, writers)  # names what is missing
        raise


def federation_links(site, node):
    """The node's federation links from /status, by remote site name."""
    status = site.status(node) or {}
    return {link["site"]: link for link in status.get("federationLinks", [])}


def test_an_overflowed_outbox_between_sites_of_several_nodes_is_repaired_by_anti_entropy(site_factory):
    """Lisbon freezes (every node, SIGSTOP) while seoul takes writes: seoul's outboxes to lisbon
    overflow their small bound and are dropped. After the thaw, anti-entropy rounds run by
    seoul's partition primaries — each partition answered by lisbon's primary of it — bring
    every acknowledged write to every node of lisbon."""
    seoul, lisbon = started_sites(site_factory, defaults={"outboxLimitBytes": 8192})
    at_seoul = clients(seoul)
    for node in lisbon.names:
        lisbon.freeze(node)
    written = {}
    for index in range(600):
        key = f"session:overflow:{index}"
        value = f"v{index}-" + "x" * 64
        assert at_seoul[seoul.names[index % 3]].set(key, value) is True
        written[key] = value

    def overflowed():
        return sum(link["statistics"]["outboxOverflows"] for node in seoul.names for link in federation_links(seoul, node).values()) > 0

    wait_until(overflowed, 10, what="seoul's outboxes to lisbon to overflow while lisbon is frozen")
    for node in lisbon.names:
        lisbon.thaw(node)
    lisbon.wait_converged(30)
    at_lisbon = clients(lisbon)

    def everywhere():
        try:
            return all(at_lisbon[node].mget(list(written)) == list(written.values()) for node in lisbon.names)
        except redis.exceptions.ResponseError as error:
            # Lisbon's primaries may still move just after the thaw: a multi-node MGET is then
            # retried by the node and, past its bound, answered -TRYAGAIN. Nothing else is allowed.
            if not str(error).startswith("TRYAGAIN"):
                raise
            return False

    wait_until(everywhere, 40, what="every write of seoul, dropped from its outboxes, to reach every node of lisbon")
    wait_until(lambda: not any(link["needsResync"] for node in seoul.names for link in federation_links(seoul, node).values()), 20,
               what="seoul's links to lisbon to leave needs-resync")
    repaired = sum(link["statistics"]["keysRepaired"] for node in lisbon.names for link in federation_links(lisbon, node).values())
    assert repaired > 0, "lisbon's primaries merged no repair: the writes came some other way"


def test_a_whole_site_restarted_empty_recovers_every_session_from_the_other_site(site_factory):
    """Every node of lisbon dies (SIGKILL) and starts again empty: its partitions are
    re-created empty, and their new primaries fetch everything from seoul by anti-entropy."""
    seoul, lisbon = started_sites(site_factory)
    at_seoul = clients(seoul)
    written = {}
    for index in range(200):
        key = f"session:before:{index}"
        assert at_seoul[seoul.names[index % 3]].hset(key, mapping={"user": f"u{index}"}) == 1
        written[key] = {"user": f"u{index}"}
    at_lisbon = clients(lisbon)
    wait_until(lambda: all(at_lisbon[node].dbsize() == len(written) for node in lisbon.names), 20,
               what="lisbon to hold every session before the restart")
    for node in lisbon.names:
        lisbon.kill(node)
    for node in lisbon.names:
        lisbon.start(node)
    lisbon.wait_converged(30)
    at_lisbon = clients(lisbon)

    def recovered():
        return all(at_lisbon[node].hgetall(key) == fields for node in lisbon.names for key, fields in written.items())

    wait_until(recovered, 40, what="every session of seoul to come back at every node of the restarted lisbon")
    # Writes after the recovery still flow both ways.
    assert at_lisbon[lisbon.names[2]].hset("session:after", mapping={"user": "new"}) == 1
    wait_until(lambda: all(at_seoul[node].hgetall("session:after") == {"user": "new"} for node in seoul.names), 20,
               what="a write at the restarted lisbon to reach every node of seoul")


def test_sites_of_several_nodes_collect_deleted_and_expired_sessions_at_every_copy(site_factory):
    """Each partition's primary votes on its keys and drops them, replicating the drop to its
    backups: every copy at every node of both sites releases the deleted and expired
    sessions (before, a site of several nodes kept them all for good)."""
    seoul, lisbon = started_sites(site_factory, defaults={"collectionIntervalMilliseconds": 300, "expiryGraceMilliseconds": 500})
    at_seoul, at_lisbon = clients(seoul), clients(lisbon)
    for index in range(600):
        node = seoul.names[index % 3]
        key = f"session:{index}"
        assert at_seoul[node].hset(key, mapping={"user": f"u{index}", "lastAccessedTime": "0"}) == 2
        if index % 2 == 0:
            assert at_seoul[node].pexpire(key, 300)
    assert at_lisbon[lisbon.names[0]].hset("session:kept", "user", "ann") == 1
    wait_until(lambda: all(at_lisbon[node].exists(f"session:{index}") for node in lisbon.names for index in range(1, 600, 50)), 20,
               what="the sessions to reach lisbon")
    for index in range(1, 600, 2):
        assert at_lisbon[lisbon.names[index % 3]].delete(f"session:{index}") == 1

    def stored(site):
        return sum(site.status(node, timeout=5)["storedKeys"] for node in site.names)

    # One live session, in two copies (backupCount 1) at each site.
    wait_until(lambda: stored(seoul) == 2 and stored(lisbon) == 2, 60, interval_s=0.3,
               what="every copy at every node of both sites to drop the deleted and expired sessions")
    for site in (seoul, lisbon):
        for node in site.names:
            status = site.status(node, timeout=5)
            assert status["collection"]["collects"], status["collection"]
            assert status["collection"]["blockedBy"] == [], status["collection"]
        assert sum(site.status(node, timeout=5)["keysCollected"] for node in site.names) >= 2 * 600, "each key dropped from both of its copies"
        for node in site.names:
            client = clients(site)[node]
            assert client.dbsize() == 1
            assert client.hget("session:kept", "user") == "ann"
    # A collected name written again lives at every node of both sites.
    assert at_seoul[seoul.names[1]].hset("session:1", "user", "bob") == 1
    wait_until(lambda: all(at_lisbon[node].hget("session:1", "user") == "bob" for node in lisbon.names), 20,
               what="the new session:1 at every node of lisbon")
