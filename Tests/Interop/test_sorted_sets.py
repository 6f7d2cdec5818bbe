"""Sorted sets against the reference: every sorted-set command and option, sent alike to a real
redis-server 7.0 and to a real sessionfed node, must get byte-identical replies in RESP2 and
RESP3; then the same commands across the nodes of a site and across federated sites.

Spring Session's reactive indexed repository keeps `spring:session:sessions:expirations` as a
sorted set (ZADD, ZREM, ZREVRANGEBYSCORE … LIMIT); other libraries use ZRANGEBYSCORE to find
expired sessions.
"""

import shutil
import subprocess
import time

import pytest
import redis

from conftest import free_ports, wait_until

REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A redis-server of its own on a free loopback port, without persistence; always stopped."""
    if REDIS_SERVER is None:
        pytest.fail("redis-server is missing (scripts/interop/run.sh installs it)")
    workdir = tmp_path_factory.mktemp("redis-server")
    (port,) = free_ports(1)
    log = open(workdir / "redis.log", "wb")
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        def answers():
            if process.poll() is not None:
                raise AssertionError(f"redis-server exited with {process.returncode}: {(workdir / 'redis.log').read_text()}")
            try:
                return redis.Redis(port=port, socket_timeout=1).ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, 10, what="redis-server to answer")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# The exact bytes of one reply, whatever its type (RESP2 and RESP3).

def read_reply(stream):
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise AssertionError(f"connection closed mid-reply: {line!r}")
    kind, body = line[:1], line[1:-2]
    if kind in b"+-:_,#(":
        return line
    if kind in b"$=!":
        length = int(body)
        return line if length < 0 else line + stream.read(length + 2)
    if kind in b"*~>%|":
        count = int(body)
        if count < 0:
            return line
        items = count * 2 if kind in b"%|" else count
        return line + b"".join(read_reply(stream) for _ in range(items))
    raise AssertionError(f"unknown reply type {line!r}")


class RawConnection:
    def __init__(self, port, protocol):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.stream = self.sock.makefile("rb")
        if protocol == 3:
            assert self.send("HELLO", "3")[:1] == b"%"

    def send(self, *words):
        parts = [word if isinstance(word, bytes) else str(word).encode() for word in words]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts))
        return read_reply(self.stream)

    def close(self):
        self.stream.close()
        self.sock.close()


def diff(reference_port, node_port, commands, protocol):
    """Sends each command to both servers; returns the commands whose replies differ."""
    ours, theirs = RawConnection(node_port, protocol), RawConnection(reference_port, protocol)
    try:
        differences = []
        for command in commands:
            expected, actual = theirs.send(*command), ours.send(*command)
            if expected != actual:
                differences.append(f"{' '.join(map(str, command))}\n    redis-server: {expected!r}\n    sessionfed:   {actual!r}")
        return differences
    finally:
        ours.close()
        theirs.close()


def c(text):
    return text.split(" ")


KEYS = ["z", "z2", "dst", "lex", "str", "renamed", "zi"]

# Every command and option, valid and not, in an order where each builds on the last.
COMMANDS = [
    ["DEL", *KEYS],
    # ZADD: adds, options, errors, odd scores.
    c("ZADD z 1 a 2 b 3 c"),
    c("ZADD z 1 a 5 b 4 d"),
    c("ZADD z CH 1 a 6 b 3.5 e"),
    c("ZADD z NX 9 a 7 f"),
    c("ZADD z XX 8 a 1 nope"),
    c("ZADD z XX CH 2 a"),
    c("ZADD z GT CH 1 a 10 b"),
    c("ZADD z LT CH 0.5 a 20 b"),
    c("ZADD z GT XX CH 0 a 99 b"),
    c("ZADD z LT 1 new"),
    c("ZADD z INCR 2.5 a"),
    c("ZADD z INCR -1 brandnew"),
    c("ZADD z NX INCR 1 a"),
    c("ZADD z XX INCR 1 missing"),
    c("ZADD z GT INCR -100 a"),
    c("ZADD z LT INCR -100 a"),
    c("ZADD z ch incr 0 a"),
    c("ZADD z 0.1 p01 1e20 big -0 negzero 1e-5 tiny 123456789012345678 long 2.5e-310 denormal"),
    c("ZADD z inf top -inf bottom +inf top2"),
    c("ZADD z 0x10 hex"),
    c("ZADD z 1 a 2"),
    c("ZADD z NX"),
    c("ZADD z"),
    c("ZADD z NX XX 1 a"),
    c("ZADD z GT LT 1 a"),
    c("ZADD z NX GT 1 a"),
    c("ZADD z NX LT 1 a"),
    c("ZADD z INCR 1 a 2 b"),
    c("ZADD z nan a"),
    c("ZADD z abc a"),
    c("ZADD z 1e400 a"),
    ["ZADD", "z", "", "a"],
    ["ZADD", "z", " 1", "a"],
    c("ZADD z 1 a BOGUS b"),
    # ZINCRBY.
    c("ZINCRBY zi 1.5 m"),
    c("ZINCRBY zi 0.1 m"),
    c("ZINCRBY zi inf m"),
    c("ZINCRBY zi -inf m"),
    c("ZINCRBY zi x m"),
    c("ZINCRBY zi 1"),
    # Reads of one member and the size.
    c("ZSCORE z a"), c("ZSCORE z p01"), c("ZSCORE z big"), c("ZSCORE z negzero"), c("ZSCORE z tiny"),
    c("ZSCORE z long"), c("ZSCORE z denormal"), c("ZSCORE z top"), c("ZSCORE z bottom"), c("ZSCORE z nope"),
    c("ZSCORE missing a"), c("ZSCORE z"),
    c("ZCARD z"), c("ZCARD missing"), c("ZCARD z extra"),
    c("ZRANK z a"), c("ZRANK z bottom"), c("ZRANK z nope"), c("ZRANK missing a"),
    c("ZREVRANK z a"), c("ZREVRANK z top2"),
    c("ZCOUNT z -inf +inf"), c("ZCOUNT z (1 5"), c("ZCOUNT z 5 (5"), c("ZCOUNT z x 1"), c("ZCOUNT missing 0 1"),
    # ZRANGE by index.
    c("ZRANGE z 0 -1"),
    c("ZRANGE z 0 -1 WITHSCORES"),
    c("ZRANGE z 2 4 withscores"),
    c("ZRANGE z -3 -1"),
    c("ZRANGE z -100 1"),
    c("ZRANGE z 5 2"),
    c("ZRANGE z 100 200"),
    c("ZRANGE z 0 2 REV"),
    c("ZRANGE z 0 2 REV WITHSCORES"),
    c("ZRANGE z 0 -1 LIMIT 0 1"),
    c("ZRANGE z 0 -1 LIMIT 1 -1"),
    c("ZRANGE z a 1"),
    c("ZRANGE z 0 -1 BOGUS"),
    c("ZRANGE z 0 -1 REV REV"),
    c("ZRANGE z 0 -1 WITHSCORES WITHSCORES"),
    c("ZRANGE z 0"),
    c("ZRANGE missing 0 -1"),
    c("ZRANGE missing 0 -1 WITHSCORES"),
    # ZRANGE BYSCORE.
    c("ZRANGE z 1 5 BYSCORE"),
    c("ZRANGE z (1 (5 BYSCORE WITHSCORES"),
    c("ZRANGE z -inf +inf BYSCORE LIMIT 2 3"),
    c("ZRANGE z -inf +inf BYSCORE LIMIT 2 -1 WITHSCORES"),
    c("ZRANGE z +inf (2 BYSCORE REV"),
    c("ZRANGE z +inf -inf BYSCORE REV LIMIT 1 2 WITHSCORES"),
    c("ZRANGE z (1 +inf BYSCORE REV"),
    c("ZRANGE z 5 1 BYSCORE"),
    c("ZRANGE z 3.5 3.5 BYSCORE"),
    c("ZRANGE z (3.5 3.5 BYSCORE"),
    c("ZRANGE z x 1 BYSCORE"),
    c("ZRANGE z 1 ((2 BYSCORE"),
    c("ZRANGE z 0 1 BYSCORE BYLEX"),
    c("ZRANGE z 0 1 BYSCORE LIMIT 0"),
    c("ZRANGE z 0 1 BYSCORE LIMIT x 1"),
    c("ZRANGE missing x 1 BYSCORE"),
    # ZRANGEBYSCORE, ZREVRANGEBYSCORE (Spring: ZREVRANGEBYSCORE … LIMIT).
    c("ZRANGEBYSCORE z -inf +inf"),
    c("ZRANGEBYSCORE z -inf +inf WITHSCORES"),
    c("ZRANGEBYSCORE z (0 10 WITHSCORES LIMIT 1 2"),
    c("ZRANGEBYSCORE z 0 10 LIMIT 0 0"),
    c("ZRANGEBYSCORE z 0 10 LIMIT -1 5"),
    c("ZRANGEBYSCORE z 0 10 LIMIT 100 5"),
    c("ZRANGEBYSCORE z 0 10 LIMIT 3 -7"),
    c("ZRANGEBYSCORE z 0 10 BYSCORE"),
    c("ZRANGEBYSCORE z 0 10 REV"),
    c("ZRANGEBYSCORE z a b"),
    c("ZRANGEBYSCORE z 0"),
    c("ZREVRANGEBYSCORE z +inf -inf"),
    c("ZREVRANGEBYSCORE z +inf -inf WITHSCORES LIMIT 0 3"),
    c("ZREVRANGEBYSCORE z 10 (1 LIMIT 2 2"),
    c("ZREVRANGEBYSCORE z 1 10"),
    # ZREVRANGE.
    c("ZREVRANGE z 0 -1"),
    c("ZREVRANGE z 0 2 WITHSCORES"),
    c("ZREVRANGE z -2 -1 WITHSCORES"),
    c("ZREVRANGE z 0 -1 LIMIT 0 1"),
    c("ZREVRANGE z 0 -1 REV"),
    c("ZREVRANGE missing 0 -1"),
    # Lexicographic ranges over members of one score.
    c("ZADD lex 0 a 0 b 0 c 0 d 0 e"),
    c("ZRANGE lex [b (d BYLEX"),
    c("ZRANGE lex - + BYLEX LIMIT 1 2"),
    c("ZRANGE lex + [b BYLEX REV"),
    c("ZRANGE lex - + BYLEX WITHSCORES"),
    c("ZRANGE lex a c BYLEX"),
    c("ZRANGE lex [d [b BYLEX"),
    c("ZRANGEBYLEX lex (a [c"),
    c("ZRANGEBYLEX lex - + LIMIT 2 10"),
    c("ZREVRANGEBYLEX lex (d -"),
    c("ZREVRANGEBYLEX lex + - LIMIT 1 1"),
    # ZRANGESTORE.
    c("SET dst old EX 100"),
    c("ZRANGESTORE dst z 0 2"),
    c("TYPE dst"),
    c("TTL dst"),
    c("ZRANGE dst 0 -1 WITHSCORES"),
    c("ZRANGESTORE dst z +inf (1 BYSCORE REV LIMIT 0 2"),
    c("ZRANGE dst 0 -1 WITHSCORES"),
    c("ZRANGESTORE dst lex [b + BYLEX LIMIT 0 2"),
    c("ZRANGE dst 0 -1"),
    c("ZRANGESTORE dst z 0 -1 WITHSCORES"),
    c("ZRANGESTORE dst z 0 -1 LIMIT 0 1"),
    c("ZRANGESTORE dst z 100 200"),
    c("EXISTS dst"),
    c("ZRANGESTORE dst missing 0 -1"),
    c("ZRANGESTORE dst str 0 -1"),
    c("ZRANGESTORE dst z"),
    c("ZRANGESTORE z2 z2 0 -1"),
    # ZREM and ZREMRANGEBYSCORE; the last member takes the key.
    c("ZREM z a a nope"),
    c("ZREM missing a"),
    c("ZREM z"),
    c("ZREMRANGEBYSCORE z (10 +inf"),
    c("ZREMRANGEBYSCORE z x 1"),
    c("ZRANGE z 0 -1 WITHSCORES"),
    c("ZREMRANGEBYSCORE z -inf +inf"),
    c("EXISTS z"),
    c("TYPE z"),
    # Types: WRONGTYPE both ways.
    c("SET str x"),
    c("ZADD str 1 a"), c("ZREM str a"), c("ZSCORE str a"), c("ZCARD str"), c("ZRANGE str 0 -1"),
    c("ZRANGEBYSCORE str 0 1"), c("ZREVRANGE str 0 1"), c("ZINCRBY str 1 a"), c("ZRANK str a"), c("ZCOUNT str 0 1"),
    c("ZADD z2 1 a 2 b"),
    c("GET z2"), c("SADD z2 a"), c("HSET z2 f v"), c("SMEMBERS z2"),
    # Key commands on a sorted set.
    c("TYPE z2"),
    c("EXISTS z2"),
    c("EXPIRE z2 100"),
    c("ZADD z2 3 c"),
    c("TTL z2"),
    c("RENAME z2 renamed"),
    c("ZRANGE renamed 0 -1 WITHSCORES"),
    c("TTL renamed"),
    c("PERSIST renamed"),
    c("TTL renamed"),
    c("DEL renamed"),
    c("EXISTS renamed"),
    c("ZCARD renamed"),
    ["DEL", *KEYS],
]


@pytest.mark.parametrize("protocol", [pytest.param(2, id="resp2"), pytest.param(3, id="resp3")])
def test_every_sorted_set_reply_is_redis_servers(node, reference, protocol):
    differences = diff(reference, node.port, COMMANDS, protocol)
    assert not differences, f"{len(differences)} of {len(COMMANDS)} replies differ:\n" + "\n".join(differences)


@pytest.mark.parametrize("protocol", [pytest.param(2, id="resp2"), pytest.param(3, id="resp3")])
def test_redis_py_reads_the_same_values(node, reference, protocol):
    """What a client library makes of the replies (RESP3 doubles, RESP2 strings) agrees too."""
    results = []
    for port in (reference, node.port):
        r = redis.Redis(port=port, protocol=protocol, decode_responses=True, socket_timeout=10)
        r.delete("py:z", "py:dst")
        steps = [
            r.zadd("py:z", {"a": 1.5, "b": 0.1, "c": 3, "d": float("inf")}),
            r.zadd("py:z", {"a": 2}, xx=True, ch=True),
            r.zadd("py:z", {"e": 7}, nx=True),
            r.zincrby("py:z", 0.25, "a"),
            r.zadd("py:z", {"a": 1}, incr=True),
            r.zscore("py:z", "b"),
            r.zrange("py:z", 0, -1, withscores=True),
            r.zrange("py:z", "(1", "+inf", byscore=True, offset=1, num=2, withscores=True),
            r.zrangebyscore("py:z", "-inf", 5, withscores=True),
            r.zrevrangebyscore("py:z", "+inf", "-inf", start=0, num=2, withscores=True),
            r.zrevrange("py:z", 0, 1, withscores=True),
            r.zrangestore("py:dst", "py:z", 1, 3),
            r.zrange("py:dst", 0, -1, withscores=True),
            r.zcard("py:z"),
            r.zrem("py:z", "a", "zz"),
            r.zrank("py:z", "c"),
            r.zcount("py:z", 0, 5),
            r.zremrangebyscore("py:z", "-inf", 1),
            r.type("py:z"),
        ]
        r.delete("py:z", "py:dst")
        r.close()
        results.append(steps)
    assert results[1] == results[0]


def test_keyspace_events_are_redis_servers(node, reference):
    """`notify-keyspace-events` with `z`: the same events, in the same order."""
    seen = []
    for port in (reference, node.port):
        r = redis.Redis(port=port, decode_responses=True, socket_timeout=10)
        previous = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
        r.config_set("notify-keyspace-events", "Ezg")
        assert r.config_get("notify-keyspace-events")["notify-keyspace-events"] == "gzE"
        pubsub = r.pubsub()
        pubsub.psubscribe("__keyevent@0__:*")
        wait_until(lambda: pubsub.get_message(timeout=0.1) is not None, 5, what="the subscription")
        r.zadd("ev:z", {"a": 1, "b": 2})
        r.zadd("ev:z", {"a": 1})  # unchanged: no event
        r.zincrby("ev:z", 1, "a")
        r.zrem("ev:z", "a")
        r.zrangestore("ev:dst", "ev:z", 0, -1)
        r.zrangestore("ev:dst", "ev:z", 5, 9)
        r.zremrangebyscore("ev:z", "-inf", "+inf")
        r.zadd("ev:z", {"c": 3})
        r.delete("ev:z")
        events = []
        deadline = time.monotonic() + 5
        while len(events) < 9 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "pmessage":
                events.append((message["channel"], message["data"]))
        pubsub.close()
        r.config_set("notify-keyspace-events", previous)
        r.close()
        seen.append(events)
    assert seen[1] == seen[0]
    assert [event for event, _ in seen[0]][:3] == ["__keyevent@0__:zadd", "__keyevent@0__:zincr", "__keyevent@0__:zrem"]


def test_scan_type_zset_finds_sorted_sets_only(node):
    r = node.redis(protocol=3)
    r.zadd("scan:z", {"a": 1})
    r.sadd("scan:s", "a")
    r.hset("scan:h", "f", "v")
    assert sorted(key for key in r.scan_iter(match="scan:*", _type="zset")) == ["scan:z"]
    r.delete("scan:z", "scan:s", "scan:h")
    r.close()


# Inside a site: commands go to the key's primary; ZRANGESTORE spans partitions.

def test_sorted_sets_across_the_nodes_of_a_site(site_factory):
    from test_site_replication import clients, partition_of, started_site

    site, at = started_site(site_factory)
    first, second, third = site.names
    index = "spring:session:sessions:expirations"
    now = 1_700_000_000_000
    table = {row["partition"]: row["primary"] for row in site.leader_view()["partitionTable"]}
    source_primary = table[partition_of(index)]
    # A subscriber at a node that is not the key's primary hears its sorted-set events.
    listening = next(node for node in site.names if node != source_primary)
    assert at[listening].config_set("notify-keyspace-events", "Ezg") is True
    listener = at[listening].pubsub()
    listener.psubscribe("__keyevent@0__:z*")
    assert listener.get_message(timeout=2)["type"] == "psubscribe"
    for n in range(30):
        assert at[site.names[n % 3]].zadd(index, {f"session-{n}": now + n * 60_000}) == 1
    # Read at every node, whichever holds the partition.
    for node in site.names:
        assert at[node].zcard(index) == 30
        assert at[node].zrevrangebyscore(index, now + 10 * 60_000, "-inf", start=0, num=3) == ["session-10", "session-9", "session-8"]
        assert at[node].zscore(index, "session-7") == now + 7 * 60_000
    assert at[second].zrem(index, "session-0", "session-1") == 2
    assert at[third].zrange(index, 0, 0) == ["session-2"]
    heard = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(heard) < 2:
        message = listener.get_message(timeout=0.5)
        if message and message["type"] == "pmessage":
            heard.add((message["channel"], message["data"]))
    listener.close()
    assert heard == {("__keyevent@0__:zadd", index), ("__keyevent@0__:zrem", index)}, heard

    # Two keys whose partitions have different primaries: ZRANGESTORE runs across them.
    destination = next(
        f"expired:{n}" for n in range(1000) if table[partition_of(f"expired:{n}")] not in (None, source_primary)
    )
    assert at[first].zrangestore(destination, index, "-inf", now + 5 * 60_000, byscore=True) == 4
    for node in site.names:
        assert at[node].zrange(destination, 0, -1, withscores=True) == [(f"session-{n}", float(now + n * 60_000)) for n in range(2, 6)]
        assert at[node].type(destination) == "zset"
    assert at[third].zrangestore(destination, index, 100, 200) == 0
    assert all(at[node].exists(destination) == 0 for node in site.names)
    # RENAME across partitions carries the scores.
    assert at[second].rename(index, destination) is True
    assert at[first].zcard(destination) == 28
    assert at[third].exists(index) == 0


# Between sites: add-wins presence, last-writer-wins score.

def test_sorted_sets_converge_across_federated_sites(federation_factory):
    federation = federation_factory(proxies=True)
    federation.start_all()
    seoul, tokyo, frankfurt = (federation.redis(site) for site in ("seoul", "tokyo", "frankfurt"))
    index = "spring:session:sessions:expirations"

    # A ZADD at seoul is read at tokyo.
    assert seoul.zadd(index, {"s1": 100, "s2": 200}) == 2
    wait_until(lambda: tokyo.zrange(index, 0, -1, withscores=True) == [("s1", 100.0), ("s2", 200.0)], 20,
               what="seoul's ZADD to reach tokyo")
    federation.wait_quiet()

    # Cut apart, seoul touches s1 while tokyo removes it; both rescore s2, tokyo later.
    for a, b in (("seoul", "tokyo"), ("seoul", "frankfurt"), ("tokyo", "frankfurt")):
        federation.cut(a, b)
    assert seoul.zadd(index, {"s1": 300}) == 0
    assert seoul.zadd(index, {"s2": 5}, ch=True) == 1
    time.sleep(0.05)  # tokyo's write is the later one by the clock as well
    assert tokyo.zrem(index, "s1") == 1
    assert tokyo.zadd(index, {"s2": 7}, ch=True) == 1
    assert tokyo.zrange(index, 0, -1, withscores=True) == [("s2", 7.0)]
    for a, b in (("seoul", "tokyo"), ("seoul", "frankfurt"), ("tokyo", "frankfurt")):
        federation.restore(a, b)
    federation.wait_quiet()

    expected = [("s2", 7.0), ("s1", 300.0)]
    for site, client in (("seoul", seoul), ("tokyo", tokyo), ("frankfurt", frankfurt)):
        assert client.zrange(index, 0, -1, withscores=True) == expected, site
        assert client.zrevrangebyscore(index, "+inf", "-inf", start=0, num=1) == ["s1"], site
    assert federation.dump("seoul") == federation.dump("tokyo") == federation.dump("frankfurt")

    # A ZREM that saw both removes the member everywhere; the last one takes the key.
    assert frankfurt.zrem(index, "s1", "s2") == 2
    federation.wait_quiet()
    for client in (seoul, tokyo, frankfurt):
        assert client.exists(index) == 0
