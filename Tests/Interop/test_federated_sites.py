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
