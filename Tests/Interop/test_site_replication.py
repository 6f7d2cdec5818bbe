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


def started_site(site_factory, **options):
    """A site of three nodes, converged, and a redis-py client per node."""
    site = site_factory(**options)
    site.start_all()
    site.wait_converged()
    return site, clients(site)


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
    site, nodes = started_site(site_factory)
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
    # Every partition's copies report caught up, and the status shows each node's copies. A
    # converged site may still be moving partitions to the node that joined last (one at a
    # time, each copy transferred before its handover): the copies catch up once it is done.
    status = site.status(names[0])
    assert status["dataPlane"]["copies"], status["dataPlane"]

    def every_copy_caught_up():
        copies = site.status(names[0])["dataPlane"]["copies"]
        return copies if all(copy["caughtUp"] for copy in copies) else None

    wait_until(every_copy_caught_up, 20, interval_s=0.1, what="every copy on the first node caught up")


def test_sigkill_of_a_node_under_load_loses_no_acknowledged_write(site_factory):
    site, _ = started_site(site_factory)
    # Right after start the placement may still be rebalancing: kill a node once every node
    # is primary of some partitions (the follower with the most).
    followers = [node for node in site.names if node != site.leader_view()["leader"]]
    wait_until(lambda: len(set(primaries(site).values())) == 3, 20, what="every node to lead partitions")
    table = primaries(site)
    victim = max(followers, key=lambda node: list(table.values()).count(node))
    writers = [Writer(f"w{index}", site.ports[node]["client"]) for index, node in enumerate(site.names)]
    for writer in writers:
        writer.start()
    time.sleep(1.0)
    site.kill(victim)  # returns once the process is gone
    killed_at = time.monotonic()
    survivors = [writer for writer, node in zip(writers, site.names) if node != victim]

    def moved():
        # Writes sent after the kill: one already in flight may still have been answered by
        # the victim in the moment before SIGKILL took it.
        return [at - killed_at for writer in survivors for sent, at, key in list(writer.acknowledged_at)
                if sent > killed_at and table[partition_of(key)] == victim]

    # The survivors' writers go on; the victim's writer only meets connection errors.
    wait_until(lambda: moved(), 10, what="a write to a partition of the killed node")
    time.sleep(2.0)
    for writer in writers:
        writer.stop.set()
    for writer in writers:
        writer.join(20)
    moved = moved()
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
    site, nodes = started_site(site_factory)
    wait_until(lambda: len(set(primaries(site).values())) == 3, 20, what="every node to lead partitions")
    table = primaries(site)
    frozen = site.names[0]
    key = next(f"cart:{index}" for index in range(1000) if table[partition_of(f"cart:{index}")] == frozen)
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


def keys_on_different_primaries(site, prefix, count=2):
    """`count` keys whose partitions have different primaries."""
    wait_until(lambda: len(set(primaries(site).values())) >= count, 20, what=f"{count} nodes to lead partitions")
    table = primaries(site)
    chosen, owners = [], set()
    for index in range(10000):
        key = f"{prefix}{index}"
        owner = table[partition_of(key)]
        if owner not in owners:
            chosen.append(key)
            owners.add(owner)
        if len(chosen) == count:
            return chosen
    raise AssertionError("no keys on different primaries")


def test_multi_key_commands_and_transactions_over_keys_of_several_nodes(site_factory):
    site, nodes = started_site(site_factory)
    first, second, third = site.names
    a, b, c = keys_on_different_primaries(site, "k", 3)
    assert nodes[first].mset({a: "1", b: "2", c: "3"}) is True
    assert nodes[second].mget(a, b, c, "missing") == ["1", "2", "3", None]
    assert nodes[third].exists(a, b, c, "missing") == 3
    # MULTI/EXEC over three primaries is atomic and answers every command.
    with nodes[second].pipeline(transaction=True) as pipe:
        pipe.incr(a).set(b, "two").get(c).hset(f"{c}:h", "f", "v")
        assert pipe.execute() == [2, True, "3", 1]
    assert nodes[third].mget(a, b) == ["2", "two"]
    assert nodes[first].delete(a, b, "missing") == 2
    assert nodes[second].mget(a, b, c) == [None, None, "3"]
    assert nodes[first].msetnx({a: "x", c: "y"}) is False
    assert nodes[third].get(a) is None, "MSETNX sets nothing when one key exists"


def test_pipelines_wait_for_other_nodes_in_order_with_client_sockets_on_their_own_loops(site_factory):
    """`threads: 2`: every node's client sockets are on a loop of their own while its commands
    run on another. A pipeline through one node mixes keys of every primary, so its commands
    wait in turn (forwarded, or for a backup): the replies still come in the order sent, and a
    transaction over three primaries stays atomic."""
    site, nodes = started_site(site_factory, defaults={"threads": 2})
    keys = keys_on_different_primaries(site, "loop", 3)
    for round_number, node in enumerate(site.names):
        counts = {key: int(nodes[node].get(f"{key}:count") or 0) for key in keys}
        with nodes[node].pipeline(transaction=False) as pipe:
            for index in range(100):
                key = keys[index % 3]
                pipe.set(key, f"{round_number}:{index}").get(key).incr(f"{key}:count")
            replies = pipe.execute()
        for index in range(100):
            key = keys[index % 3]
            counts[key] += 1
            assert replies[3 * index: 3 * index + 3] == [True, f"{round_number}:{index}", counts[key]], (node, index, replies[3 * index: 3 * index + 3])
    with nodes[site.names[1]].pipeline(transaction=True) as pipe:
        pipe.set(keys[0], "0").set(keys[1], "1").set(keys[2], "2").incr(keys[0]).incr(keys[1]).incr(keys[2])
        assert pipe.execute() == [True, True, True, 1, 2, 3]
    assert [nodes[node].mget(keys) for node in site.names] == [["1", "2", "3"]] * 3, "EXEC ran all its commands"
    loops = {client["io-thread"] for client in nodes[site.names[0]].client_list()}
    assert loops == {"1"}, loops


def test_watch_sees_writes_made_through_any_node_of_the_site(site_factory):
    site, nodes = started_site(site_factory)
    watcher = site.names[0]

    def unheld():
        """A key this node holds no copy of (its own copy cannot tell that the key changed);
        right after start the placement may still be moving, and hold one everywhere."""
        table = (site.leader_view() or {}).get("partitionTable")
        if not table:
            return None
        return next((f"lock:{index}" for index in range(1000)
                     if watcher != table[partition_of(f"lock:{index}")].get("primary") and watcher not in table[partition_of(f"lock:{index}")]["backups"]), None)

    key = wait_until(unheld, 20, what=f"a partition {watcher} holds no copy of")
    site.wait_converged(20)
    table = site.leader_view()["partitionTable"]
    writer = next(node for node in site.names if node != watcher)
    other = next(f"other:{index}" for index in range(1000) if table[partition_of(f"other:{index}")].get("primary") != table[partition_of(key)].get("primary"))
    assert nodes[writer].set(key, "v1") is True
    # Changed through another node between WATCH and EXEC: the transaction is not run.
    with nodes[watcher].pipeline(transaction=True) as pipe:
        pipe.watch(key)
        assert pipe.get(key) == "v1"
        assert nodes[writer].set(key, "v2") is True
        pipe.multi()
        pipe.set(key, "from-transaction").set(other, "x")
        try:
            pipe.execute()
            raise AssertionError("EXEC ran although the watched key changed")
        except redis.WatchError:
            pass
    assert nodes[writer].get(key) == "v2" and nodes[writer].get(other) is None
    # Unchanged: it runs, over keys of two primaries.
    with nodes[watcher].pipeline(transaction=True) as pipe:
        pipe.watch(key)
        pipe.multi()
        pipe.set(key, "v3").set(other, "y")
        assert pipe.execute() == [True, True]
    assert nodes[writer].mget(key, other) == ["v3", "y"]
    # A watched key that expires before EXEC counts as changed, as in Redis.
    assert nodes[writer].set(key, "short", px=300) is True
    with nodes[watcher].pipeline(transaction=True) as pipe:
        pipe.watch(key)
        time.sleep(0.5)
        pipe.multi()
        pipe.set(other, "z")
        try:
            pipe.execute()
            raise AssertionError("EXEC ran although the watched key expired")
        except redis.WatchError:
            pass
    assert nodes[writer].get(other) == "y"


def test_keyless_commands_cover_every_node_of_the_site(site_factory):
    site, nodes = started_site(site_factory)
    first, second, third = site.names
    sessions = {f"sess:{index}": f"data{index}" for index in range(200)}
    assert nodes[first].mset(sessions) is True
    assert nodes[second].set("other", "1") is True
    assert nodes[third].dbsize() == 201
    assert sorted(nodes[first].keys("sess:1*")) == sorted(key for key in sessions if key.startswith("sess:1"))
    # connect-redis's all()/clear(): SCAN MATCH sess:* COUNT 100, then MGET / DEL.
    scanned = list(nodes[second].scan_iter(match="sess:*", count=100))
    assert sorted(scanned) == sorted(sessions), "SCAN visits every partition of every node once"
    assert nodes[third].mget(scanned[:50]) == [sessions[key] for key in scanned[:50]]
    assert nodes[first].scan(cursor=0, count=5)[0] != 0, "a cursor is returned while partitions remain"
    try:
        nodes[first].execute_command("SCAN", "notanumber")
        raise AssertionError("an invalid cursor must be refused")
    except redis.ResponseError as error:
        assert str(error) == "invalid cursor"
    assert nodes[third].flushall() is True
    assert [nodes[node].dbsize() for node in site.names] == [0, 0, 0]
    assert nodes[second].get("sess:3") is None


def test_spring_session_story_across_nodes(site_factory):
    site, nodes = started_site(site_factory)
    first, second, third = site.names
    old_key, new_key = keys_on_different_primaries(site, "spring:session:sessions:", 2)
    # Spring's indexed repository: keyspace events for expiry and deletes, on one connection.
    assert nodes[second].config_set("notify-keyspace-events", "Egx") is True
    listener = nodes[second].pubsub()
    listener.subscribe("__keyevent@0__:expired", "__keyevent@0__:del", "spring:session:event:0:created:1")
    assert listener.get_message(timeout=2)["type"] == "subscribe"
    # Created at node 1 (the save sequence Spring sends), read at node 2.
    assert nodes[first].exists(old_key) == 0
    assert nodes[first].hset(old_key, mapping={"creationTime": "1", "lastAccessedTime": "1", "maxInactiveInterval": "1800", "sessionAttr:user": "ann"}) == 4
    assert nodes[first].pexpireat(old_key, int(time.time() * 1000) + 600_000) is True
    assert nodes[third].publish("spring:session:event:0:created:1", "created") == 0
    assert nodes[second].hgetall(old_key)["sessionAttr:user"] == "ann"
    # Login: a new session id by RENAME, at node 3, to a key of another primary.
    assert nodes[third].rename(old_key, new_key) is True
    assert nodes[first].exists(old_key) == 0 and nodes[first].hget(new_key, "sessionAttr:user") == "ann"
    assert nodes[second].pttl(new_key) > 500_000, "RENAME keeps the expiry"
    try:
        nodes[first].rename(old_key, new_key)
        raise AssertionError("RENAME of a missing key must fail")
    except redis.ResponseError as error:
        assert str(error) == "no such key"
    # The `expires:` key lapses on whichever node is its primary: node 2's subscriber hears it.
    table = primaries(site)
    expires_key = next(f"spring:session:sessions:expires:{index}" for index in range(1000)
                       if table[partition_of(f"spring:session:sessions:expires:{index}")] != second)
    assert nodes[first].append(expires_key, "") == 0
    assert nodes[first].pexpire(expires_key, 300) is True
    assert nodes[third].delete(new_key) == 1
    heard = []
    deadline = time.monotonic() + 5
    expired = ("__keyevent@0__:expired", expires_key)
    while time.monotonic() < deadline and expired not in heard:
        message = listener.get_message(timeout=0.5)
        if message and message["type"] == "message":
            heard.append((message["channel"], message["data"]))
    time.sleep(0.5)  # a duplicate would arrive within this
    while (message := listener.get_message(timeout=0.1)) is not None:
        if message["type"] == "message":
            heard.append((message["channel"], message["data"]))
    listener.close()
    assert ("spring:session:event:0:created:1", "created") in heard, heard
    assert ("__keyevent@0__:del", new_key) in heard, heard
    assert expired in heard, heard
    assert heard.count(expired) == 1 and heard.count(("__keyevent@0__:del", new_key)) == 1, f"each event exactly once: {heard}"


def test_partition_below_min_in_sync_refuses_writes_and_serves_reads(site_factory):
    site, nodes = started_site(site_factory, defaults={"backupCount": 2, "minInSync": 3})
    first = site.names[0]
    assert nodes[first].set("session:min", "kept") is True
    leader = site.leader_view()["leader"]
    victim = next(node for node in site.names if node != leader)
    site.kill(victim)
    survivor = next(node for node in site.names if node not in (victim,))
    # Every survivor must have applied that map: a primary whose map still counted the dead
    # backup in sync would take the write (and commit it once the map dropped the backup).
    wait_until(lambda: all(((site.control(node) or {}).get("partitions") or {}).get("refusingWrites") == 16 for node in site.running()), 10,
               what="every partition to refuse writes with two of three copies, on every survivor")
    try:
        nodes[survivor].set("session:min", "lost?")
        raise AssertionError("a write below minInSync must be refused")
    except redis.ResponseError as error:
        assert str(error) == "NOREPLICAS Not enough good replicas to write."
    assert nodes[survivor].get("session:min") == "kept", "reads are still served"
    # The node returns and copies the partitions again. From the moment the map names it a
    # copy of every partition, writes are held while it catches up, and while rebalancing
    # hands it primaries (each handover starts a new in-sync set), never refused.
    site.start(victim)

    def named_everywhere(node):
        table = (site.control(node) or {}).get("partitionTable") or []
        return len(table) == 16 and all(victim == row.get("primary") or victim in row["backups"] for row in table)

    wait_until(lambda: all(named_everywhere(node) for node in site.names), 20,
               what=f"every node to apply the map that names {victim} a copy of every partition again")

    def balanced():
        leader = site.converged()
        return bool(leader) and leader["partitions"]["primaries"].get(victim, 0) >= 5

    written = unconfirmed = 0
    deadline = time.monotonic() + 30
    while not balanced():
        assert time.monotonic() < deadline, "the site did not rebalance onto the returned node within 30 s"
        value = f"new-{written}"
        try:
            assert nodes[survivor].set("session:min", value) is True
        except redis.ResponseError as error:
            # A write in flight when a rebalancing move switches the primary may get the
            # unknown-outcome error (planned handovers that finish such writes are the
            # handover issue's); never -NOREPLICAS.
            assert "may or may not have been applied" in str(error), f"{error} while {victim} caught up"
            unconfirmed += 1
            continue
        written += 1
        assert nodes[victim].get("session:min") == value
    assert nodes[survivor].set("session:min", "new") is True
    assert nodes[victim].get("session:min") == "new"


def test_phpredis_lock_release_runs_at_the_locks_primary_through_any_node(site_factory):
    """phpredis' compare-and-delete lock release (EVALSHA of a script recognised by its SHA1)
    reaches the lock's primary from any node, and the release is seen by every node."""
    import hashlib
    import uuid

    site, nodes = started_site(site_factory)
    body = 'if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end'
    sha = hashlib.sha1(body.encode()).hexdigest()
    for index in range(12):
        lock = f"PHPREDIS_SESSION:{uuid.uuid4().hex}_LOCK"
        taker, releaser = site.names[index % 3], site.names[(index + 1) % 3]
        assert nodes[taker].set(lock, "token", nx=True, px=30_000) is True
        assert nodes[releaser].evalsha(sha, 1, lock, "not-mine") == 0
        assert all(nodes[node].get(lock) == "token" for node in site.names)
        assert nodes[releaser].evalsha(sha, 1, lock, "token") == 1
        assert all(nodes[node].exists(lock) == 0 for node in site.names)
