"""Site-replication stories: three real nodes are one store.

Every node accepts every command and forwards it to its partition's primary; a write is
acknowledged only after the partition's in-sync backup applied it. redis-py clients on
every node log each acknowledged write; nodes are killed with SIGKILL and frozen with
SIGSTOP, and afterwards every acknowledged write must be readable from every node.
"""

import threading
import time

import redis

from conftest import wait_until


def slot(key):
    """Redis Cluster's slot of a key: CRC16/XMODEM of its hash tag, modulo 16384."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


def partition_of(key, partitions=16):
    return slot(key) * partitions // 16384


def clients(site):
    return {node: redis.Redis(port=site.ports[node]["client"], socket_timeout=15, decode_responses=True) for node in site.names}


def primaries(site):
    """Partition -> primary, from the leader's committed map."""
    leader = site.leader_view()
    return {row["partition"]: row["primary"] for row in leader["partitionTable"]}


class Writer(threading.Thread):
    """Writes its own keys (`writer:key`) with increasing values through one node and logs
    what was acknowledged; errors are counted, never retried blindly."""

    def __init__(self, name, port, keys=20):
        super().__init__(daemon=True)
        self.name_ = name
        self.client = redis.Redis(port=port, socket_timeout=15, decode_responses=True)
        self.keys = [f"{name}:{index}" for index in range(keys)]
        self.acknowledged = {}      # key -> last acknowledged value
        self.attempted = {}         # key -> last attempted value
        self.acknowledged_at = []   # (sent, acknowledged, key) of every acknowledged write
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        counter = 0
        while not self.stop.is_set():
            counter += 1
            key = self.keys[counter % len(self.keys)]
            self.attempted[key] = counter
            sent = time.monotonic()
            try:
                if self.client.set(key, counter):
                    self.acknowledged[key] = counter
                    self.acknowledged_at.append((sent, time.monotonic(), key))
            except (redis.ConnectionError, redis.TimeoutError) as error:
                self.errors.append(("connection", str(error)))
                time.sleep(0.05)
            except redis.ResponseError as error:
                self.errors.append(("reply", str(error)))


def check_every_acknowledged_write(site, writers):
    """Every running node reads, for every key, its last acknowledged value or a later attempted one
    (a write the client never saw acknowledged may still have been applied)."""
    lost = []
    everyone = clients(site)
    for node in site.running():
        client = everyone[node]
        for writer in writers:
            for key, value in writer.acknowledged.items():
                read = client.get(key)
                if read is None or not (value <= int(read) <= writer.attempted[key]):
                    lost.append(f"{node}: {key} acknowledged {value}, attempted up to {writer.attempted[key]}, read {read}")
    assert not lost, "acknowledged writes lost:\n" + "\n".join(lost[:20])


def test_write_acknowledged_by_one_node_is_read_at_once_by_every_other(site_factory):
    site = site_factory()
    site.start_all()
    site.wait_converged()
    nodes = clients(site)
    names = site.names
    for index in range(60):
        writer = names[index % 3]
        key = f"spring:session:sessions:{index}"
        assert nodes[writer].hset(key, mapping={"creationTime": str(index), "sessionAttr:user": f"user{index}"}) == 2
        assert nodes[writer].set(f"session:{index}", f"value{index}") is True
        for reader in names:
            assert nodes[reader].hgetall(key) == {"creationTime": str(index), "sessionAttr:user": f"user{index}"}, (writer, reader, key)
            assert nodes[reader].get(f"session:{index}") == f"value{index}", (writer, reader)
    # Multi-key commands whose keys share a primary (hash tags) run where they live.
    assert nodes[names[0]].mset({"{user:1}:a": "1", "{user:1}:b": "2"}) is True
    assert nodes[names[1]].mget("{user:1}:a", "{user:1}:b") == ["1", "2"]
    # RENAME within a hash tag (Spring Session's changeSessionId keeps the tag in practice).
    assert nodes[names[2]].rename("{user:1}:a", "{user:1}:c") is True
    assert nodes[names[0]].get("{user:1}:c") == "1" and nodes[names[1]].exists("{user:1}:a") == 0
    # Every partition's copies report caught up, and the status shows each node's copies.
    status = site.status(names[0])
    assert status["dataPlane"]["copies"], status["dataPlane"]
    assert all(copy["caughtUp"] for copy in status["dataPlane"]["copies"])


def test_sigkill_of_a_node_under_load_loses_no_acknowledged_write(site_factory):
    site = site_factory()
    site.start_all()
    site.wait_converged()
    victim = site.names[1]
    table = primaries(site)
    writers = [Writer(f"w{index}", site.ports[node]["client"]) for index, node in enumerate(site.names)]
    for writer in writers:
        writer.start()
    time.sleep(1.0)
    site.kill(victim)  # returns once the process is gone
    killed_at = time.monotonic()
    # The survivors' writers go on; the victim's writer only meets connection errors.
    time.sleep(4.0)
    for writer in writers:
        writer.stop.set()
    for writer in writers:
        writer.join(20)
    survivors = [writer for writer, node in zip(writers, site.names) if node != victim]
    # Writes sent after the kill: one already in flight may still have been answered by the
    # victim in the moment before SIGKILL took it.
    moved = [at - killed_at for writer in survivors for sent, at, key in writer.acknowledged_at
             if sent > killed_at and table[partition_of(key)] == victim]
    assert moved, "no write to a partition of the killed node succeeded after the kill"
    print(f"kill -> first acknowledged write to a moved partition: {min(moved):.3f}s")
    for writer in survivors:
        assert all(kind == "reply" for kind, _ in writer.errors), writer.errors[:5]
    site.wait_converged()
    check_every_acknowledged_write(site, writers)
    # The killed node comes back as a new incarnation, copies partitions again, and reads
    # every acknowledged write too.
    site.start(victim)
    site.wait_converged()
    wait_until(lambda: all(copy["caughtUp"] for copy in (site.status(victim) or {"dataPlane": {"copies": [{"caughtUp": False}]}})["dataPlane"]["copies"]), 20, what=f"{victim}'s copies to catch up")
    check_every_acknowledged_write(site, writers)


def test_thawed_primary_never_returns_a_value_overwritten_while_it_was_frozen(site_factory):
    site = site_factory()
    site.start_all()
    site.wait_converged()
    table = primaries(site)
    frozen = site.names[0]
    key = next(f"cart:{index}" for index in range(1000) if table[partition_of(f"cart:{index}")] == frozen)
    nodes = clients(site)
    other = site.names[1]
    assert nodes[other].set(key, "old") is True
    site.freeze(frozen)
    try:
        # The write goes to the new primary once the frozen one is deposed (about a second).
        deadline = time.monotonic() + 10
        while True:
            try:
                assert nodes[other].set(key, "new") is True
                break
            except redis.ResponseError:
                assert time.monotonic() < deadline, "the write never succeeded after the primary froze"
        time.sleep(max(0.0, 5.0 - (time.monotonic() - (deadline - 10))))
    finally:
        site.thaw(frozen)
    reads = []
    end = time.monotonic() + 3
    while time.monotonic() < end:
        try:
            reads.append(nodes[frozen].get(key))
        except redis.ResponseError as error:
            reads.append(f"error: {error}")
    assert "old" not in reads, f"the thawed node answered the overwritten value: {reads[:10]}"
    assert reads[-1] == "new", reads[-5:]
