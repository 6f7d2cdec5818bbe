"""Stories told with redis-py (PyPI `redis`), over RESP2 and RESP3 (`protocol=3`).

redis-py 8 speaks RESP3 (`HELLO 3`) unless told `protocol=2`; every story here names its
protocol explicitly and runs with both.
"""

import time
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import raw_exchange, wait_until

PROTOCOLS = [pytest.param(2, id="resp2"), pytest.param(3, id="resp3")]


def sid():
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def auth_node(start_node):
    return start_node(password="s3cret", users={"app": "apppass"})


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_string_session_story(node, protocol):
    """A web app keeps its session as one serialized string: create, read, regenerate, logout."""
    r = node.redis(protocol=protocol, client_name=f"interop-py{protocol}")
    assert r.ping() is True
    assert r.client_getname() == f"interop-py{protocol}"

    old, new = f"session:{sid()}", f"session:{sid()}"
    # Login creates the session with a lifetime.
    assert r.set(old, '{"user":"ann","cart":[1,2]}', ex=1800) is True
    assert 1790 <= r.ttl(old) <= 1800
    # A later request reads it (and touches it).
    assert r.get(old) == '{"user":"ann","cart":[1,2]}'
    assert r.expire(old, 3600) is True
    assert 3590 <= r.ttl(old) <= 3600
    # Privilege change: regenerate the id, keeping data and lifetime.
    assert r.rename(old, new) is True
    assert r.get(old) is None
    assert r.exists(old) == 0
    assert r.get(new) == '{"user":"ann","cart":[1,2]}'
    assert 3590 <= r.ttl(new) <= 3600
    # Logout: gone.
    assert r.delete(new) == 1
    assert r.get(new) is None
    assert r.exists(new) == 0
    assert r.ttl(new) == -2
    assert r.delete(new) == 0
    r.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hello_and_reply_shapes(node, protocol):
    r = node.redis(protocol=protocol)
    hello = r.execute_command("HELLO", protocol)
    if protocol == 3:
        assert isinstance(hello, dict)
    else:
        # RESP2 flattens the map into an alternating list.
        assert isinstance(hello, list)
        hello = dict(zip(hello[::2], hello[1::2]))
    assert {"server", "version", "proto", "id", "mode", "role", "modules"} <= set(hello)
    assert hello["proto"] == protocol
    key = f"h:{sid()}"
    r.hset(key, mapping={"a": "1", "b": "2"})
    assert r.hgetall(key) == {"a": "1", "b": "2"}
    assert sorted(r.hkeys(key)) == ["a", "b"]
    r.sadd(f"s:{key}", "x", "y")
    assert r.smembers(f"s:{key}") == {"x", "y"}
    assert r.smismember(f"s:{key}", ["x", "z"]) == [1, 0]
    assert r.delete(key, f"s:{key}") == 2
    r.close()


def _next_message(pubsub, deadline_s=5.0):
    """Poll the subscription until a data message arrives (bounded)."""
    return wait_until(
        lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05),
        deadline_s,
        interval_s=0,
        what="a pub/sub message",
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("flags", ["KEA", "Egx"])
def test_keyspace_events_expired_and_del(node, protocol, flags):
    """Session libraries learn that a session lapsed from real `expired` events."""
    r = node.redis(protocol=protocol)
    previous = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    assert r.config_set("notify-keyspace-events", flags) is True
    got = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    assert got == {"KEA": "AKE", "Egx": "gxE"}[flags]  # normalized as Redis does
    pubsub = r.pubsub()
    try:
        pubsub.subscribe("__keyevent@0__:expired", "__keyevent@0__:del")
        # Subscription confirmations arrive first, in order.
        confirmations = [wait_until(lambda: pubsub.get_message(timeout=0.05), 5, 0, "subscribe") for _ in range(2)]
        assert [m["type"] for m in confirmations] == ["subscribe", "subscribe"]
        assert [m["channel"] for m in confirmations] == ["__keyevent@0__:expired", "__keyevent@0__:del"]

        lapsing, removed = f"session:{sid()}", f"session:{sid()}"
        r.set(lapsing, "soon gone")
        started = time.monotonic()
        assert r.pexpire(lapsing, 150) is True
        message = _next_message(pubsub)
        assert message == {"type": "message", "pattern": None, "channel": "__keyevent@0__:expired", "data": lapsing}
        # Not before its time; the active sweep runs every 100 ms.
        assert time.monotonic() - started >= 0.14
        assert r.exists(lapsing) == 0

        r.set(removed, "logout")
        assert r.delete(removed) == 1
        message = _next_message(pubsub)
        assert message == {"type": "message", "pattern": None, "channel": "__keyevent@0__:del", "data": removed}
        # No further events are pending.
        assert pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2) is None
    finally:
        pubsub.close()
        r.config_set("notify-keyspace-events", previous)
        r.close()


def test_keyspace_channel_and_flags_honoured(node):
    """`K` publishes on __keyspace@0__:<key>; without `g`, DEL publishes nothing."""
    r = node.redis()
    previous = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    pubsub = r.pubsub()
    try:
        key = f"session:{sid()}"
        r.config_set("notify-keyspace-events", "K$")  # keyspace channel, string commands only
        pubsub.subscribe(f"__keyspace@0__:{key}")
        pubsub.psubscribe("__keyevent@0__:*")
        r.set(key, "v")
        message = _next_message(pubsub)
        assert message == {"type": "message", "pattern": None, "channel": f"__keyspace@0__:{key}", "data": "set"}
        r.delete(key)  # generic command: not in K$
        assert pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None
    finally:
        pubsub.close()
        r.config_set("notify-keyspace-events", previous)
        r.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spring_session_sequence_by_hand(node, protocol):
    """RedisSessionRepository's commands (Spring Session Data Redis), sent by hand."""
    r = node.redis(protocol=protocol, decode_responses=False)
    old_id, new_id = sid(), sid()
    old = f"spring:session:sessions:{old_id}".encode()
    new = f"spring:session:sessions:{new_id}".encode()
    now_ms = int(time.time() * 1000)
    serialized_user = b"\xac\xed\x00\x05t\x00\x03ann"  # Java-serialized bytes, not UTF-8
    fields = {
        b"creationTime": str(now_ms).encode(),
        b"lastAccessedTime": str(now_ms).encode(),
        b"maxInactiveInterval": b"1800",
        b"sessionAttr:user": serialized_user,
        b"sessionAttr:empty": b"",
    }
    # Save of a new session: HMSET (+OK), PEXPIREAT.
    assert r.execute_command("HMSET", old, *[x for kv in fields.items() for x in kv]) in (True, b"OK")
    assert r.pexpireat(old, now_ms + 1_800_000) is True
    assert 1_790_000 <= r.pttl(old) <= 1_800_000
    # Load: HGETALL returns the bytes as stored, empty values included.
    assert r.hgetall(old) == fields
    # Save of an existing session: EXISTS must be 1, then HMSET the delta.
    assert r.exists(old) == 1
    assert r.execute_command("HMSET", old, b"lastAccessedTime", str(now_ms + 5).encode()) in (True, b"OK")
    assert r.pexpireat(old, now_ms + 1_800_005) is True
    # Login: changeSessionId() renames the hash.
    assert r.rename(old, new) is True
    assert r.hgetall(old) == {}
    assert r.exists(old) == 0
    loaded = r.hgetall(new)
    assert loaded[b"sessionAttr:user"] == serialized_user and loaded[b"lastAccessedTime"] == str(now_ms + 5).encode()
    assert r.pttl(new) > 1_790_000
    # A save racing an invalidation: EXISTS 0 ("Session was invalidated").
    # Renaming a missing key must answer exactly "-ERR no such key".
    with pytest.raises(redis.ResponseError) as error:
        r.rename(old, new)
    assert str(error.value) == "no such key"
    assert raw_exchange(node.port, ["RENAME", old, new]) == ["-ERR no such key"]
    # Never-expiring session.
    assert r.persist(new) is True
    assert r.ttl(new) == -1
    # Logout: DEL, then nothing is left.
    assert r.delete(new) == 1
    assert r.exists(new) == 0
    assert r.hgetall(new) == {}
    r.close()


def test_spring_indexed_repository_sequence_by_hand(node):
    """RedisIndexedSessionRepository: expires key, buckets, created event, expired event."""
    r = node.redis()
    previous = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    pubsub = r.pubsub()
    try:
        assert r.config_set("notify-keyspace-events", previous + "Egx") is True
        pubsub.subscribe("__keyevent@0__:del", "__keyevent@0__:expired")
        pubsub.psubscribe("spring:session:event:0:created:*")
        for _ in range(3):
            wait_until(lambda: pubsub.get_message(timeout=0.05), 5, 0, "subscribe confirmation")

        session_id = sid()
        session = f"spring:session:sessions:{session_id}"
        expires = f"spring:session:sessions:expires:{session_id}"
        bucket = f"spring:session:expirations:{(int(time.time() * 1000) // 60000 + 1) * 60000}"
        index = f"spring:session:index:org.springframework.session.FindByIndexNameSessionRepository.PRINCIPAL_NAME_INDEX_NAME:ann"
        r.hset(session, mapping={"creationTime": "1", "maxInactiveInterval": "1", "sessionAttr:user": "ann"})
        assert r.append(expires, "") == 0
        assert r.pexpire(expires, 200) is True
        assert r.pexpire(session, 300_000) is True
        assert r.sadd(bucket, f"expires:{session_id}") == 1
        assert r.pexpire(bucket, 300_000) is True
        assert r.sadd(index, session_id) == 1
        assert r.publish(f"spring:session:event:0:created:{session_id}", "{}") == 1
        created = _next_message(pubsub)
        assert created["type"] == "pmessage" and created["channel"] == f"spring:session:event:0:created:{session_id}"
        assert created["pattern"] == "spring:session:event:0:created:*"
        # The expires key lapses: the repository hears `expired` and cleans up.
        expired = _next_message(pubsub)
        assert expired["channel"] == "__keyevent@0__:expired" and expired["data"] == expires
        assert r.smembers(bucket) == {f"expires:{session_id}"}
        # Removing a set's last member removes the key, which Redis also reports as `del`.
        assert r.srem(bucket, f"expires:{session_id}") == 1
        assert r.srem(index, session_id) == 1
        assert r.delete(session) == 1
        deleted = [_next_message(pubsub) for _ in range(3)]
        assert [(m["channel"], m["data"]) for m in deleted] == [
            ("__keyevent@0__:del", bucket),
            ("__keyevent@0__:del", index),
            ("__keyevent@0__:del", session),
        ]
        assert r.exists(session, expires, bucket, index) == 0
    finally:
        pubsub.close()
        r.config_set("notify-keyspace-events", previous)
        r.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_auth_password_and_user(auth_node, protocol):
    # Default user's password (requirepass style): AUTH pw / HELLO 3 AUTH default pw.
    r = auth_node.redis(protocol=protocol)
    assert r.ping() is True
    key = f"session:{sid()}"
    assert r.set(key, "v", ex=60) is True
    r.close()
    # An ACL user: AUTH app apppass / HELLO 3 AUTH app apppass.
    app = auth_node.redis(protocol=protocol, username="app", password="apppass")
    assert app.get(key) == "v"
    assert app.execute_command("CLIENT", "SETNAME", "app-conn") in (True, "OK")
    assert app.client_getname() == "app-conn"
    assert app.delete(key) == 1
    app.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_auth_errors(auth_node, protocol):
    # redis-py retries connection errors (AuthenticationError is one) with backoff by
    # default; no retries here, so each refusal is seen once and at once.
    def client(**kwargs):
        return auth_node.redis(protocol=protocol, retry=Retry(NoBackoff(), 0), **kwargs)

    wrong = client(password="nope")
    with pytest.raises(redis.AuthenticationError) as error:
        wrong.ping()
    assert str(error.value) == "invalid username-password pair or user is disabled."
    wrong.close()
    wrong_user = client(username="app", password="s3cret")
    with pytest.raises(redis.AuthenticationError) as error:
        wrong_user.ping()
    assert str(error.value) == "invalid username-password pair or user is disabled."
    wrong_user.close()
    # Without credentials, commands are refused with NOAUTH. Over RESP3 the refused
    # command is redis-py's own `HELLO 3`, which Redis answers with its HELLO text.
    anonymous = client(password=None)
    with pytest.raises(redis.AuthenticationError) as error:
        anonymous.get("x")
    if protocol == 2:
        assert str(error.value) == "Authentication required."
    else:
        assert str(error.value).startswith("HELLO must be called with the client already authenticated")
    anonymous.close()


def test_auth_error_texts_on_the_wire(auth_node):
    replies = raw_exchange(
        auth_node.port,
        ["GET", "x"],
        ["HELLO", "3"],
        ["AUTH", "nope"],
        ["AUTH", "app", "wrong"],
        ["AUTH", "app", "apppass"],
        ["GET", "x"],
    )
    assert replies[0] == "-NOAUTH Authentication required."
    assert replies[1] == (
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
        "select the RESP protocol version at the same time"
    )
    assert replies[2] == "-WRONGPASS invalid username-password pair or user is disabled."
    assert replies[3] == "-WRONGPASS invalid username-password pair or user is disabled."
    assert replies[4] == "+OK"
    assert replies[5] is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_multi_exec_and_watch_conflict(node, protocol):
    r = node.redis(protocol=protocol)
    other = node.redis(protocol=protocol)
    key = f"session:{sid()}"
    counter = f"{key}:hits"
    # A new session created atomically (redis-rack style: MULTI SETNX EXPIRE EXEC).
    with r.pipeline(transaction=True) as pipe:
        pipe.setnx(key, "data").expire(key, 600).incr(counter).get(key)
        assert pipe.execute() == [True, True, 1, "data"]
    # DISCARD drops queued commands.
    with r.pipeline(transaction=True) as pipe:
        pipe.multi()
        pipe.set(key, "discarded")
        pipe.reset()
    assert r.get(key) == "data"

    # WATCH: an untouched key lets EXEC run.
    with r.pipeline() as pipe:
        pipe.watch(key)
        assert pipe.get(key) == "data"
        pipe.multi()
        pipe.set(key, "updated", keepttl=True)
        assert pipe.execute() == [True]
    assert r.get(key) == "updated" and 590 <= r.ttl(key) <= 600

    # WATCH conflict: another client writes in between, EXEC answers null.
    with r.pipeline() as pipe:
        pipe.watch(key)
        assert other.set(key, "from-other-request") is True
        pipe.multi()
        pipe.set(key, "lost update")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get(key) == "from-other-request"
    assert r.delete(key, counter) == 2
    r.close()
    other.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_older_library_commands_and_encoding_tuning(node, protocol):
    """What older session libraries and test suites send: GETSET, CONFIG SET of Redis's
    encoding thresholds (accepted and read back under both names, without effect here), and
    notify-keyspace-events read back normalised as Redis 7 prints it."""
    client = node.redis(protocol=protocol, decode_responses=True)
    key = f"session:{sid()}"
    assert client.getset(key, "first") is None
    client.expire(key, 100)
    assert client.getset(key, "second") == "first"
    assert client.get(key) == "second" and client.ttl(key) == -1
    hash_key = f"h:{sid()}"
    client.hset(hash_key, "f", "v")
    with pytest.raises(redis.exceptions.ResponseError, match="^WRONGTYPE"):
        client.getset(hash_key, "x")
    assert client.config_set("hash-max-ziplist-entries", 256) is True
    assert client.config_get("hash-max-*") == {
        "hash-max-ziplist-entries": "256", "hash-max-listpack-entries": "256",
        "hash-max-ziplist-value": "64", "hash-max-listpack-value": "64",
    }
    assert client.config_set("set-max-intset-entries", 1024) is True
    assert client.config_get("set-max-intset-entries") == {"set-max-intset-entries": "1024"}
    with pytest.raises(redis.exceptions.ResponseError, match="argument couldn't be parsed into an integer"):
        client.config_set("hash-max-listpack-entries", "lots")
    with pytest.raises(redis.exceptions.ResponseError, match="argument must be a memory value"):
        client.config_set("hash-max-listpack-value", "lots")
    assert client.config_set("hash-max-listpack-value", "1kb") is True
    assert client.config_get("hash-max-listpack-value") == {"hash-max-listpack-value": "1024"}
    with pytest.raises(redis.exceptions.ResponseError, match="duplicate parameter"):
        client.execute_command("CONFIG", "SET", "set-max-intset-entries", "1", "set-max-intset-entries", "2")
    with pytest.raises(redis.exceptions.ResponseError, match="must be between 0 and"):
        client.config_set("zset-max-listpack-entries", -1)
    previous = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    try:
        client.config_set("notify-keyspace-events", "Ehs")
        assert client.config_get("notify-keyspace-events") == {"notify-keyspace-events": "shE"}
        client.config_set("notify-keyspace-events", "KEAn")
        assert client.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
    finally:
        client.config_set("notify-keyspace-events", previous)
        client.config_set("hash-max-ziplist-entries", 512)
        client.config_set("set-max-intset-entries", 512)
        client.config_set("hash-max-listpack-value", 64)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_clients_on_several_loops_share_one_store(start_node, protocol):
    """`threads: 3`: the clients' sockets are spread over two loops of their own while a third
    runs the commands. Eight redis-py clients in threads write sessions in pipelines and bump
    one counter, a subscriber listens on a channel they publish to: nothing is lost, run twice
    or answered out of order."""
    import threading

    node = start_node(threads=3)
    workers, rounds = 8, 200
    subscriber = node.redis(protocol=protocol).pubsub()
    subscriber.subscribe("logins")
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    failures = []

    def work(index):
        try:
            client = node.redis(protocol=protocol)
            for round_number in range(rounds):
                key = f"spring:session:sessions:{index}-{round_number}"
                pipe = client.pipeline(transaction=False)
                pipe.hset(key, mapping={"creationTime": "1", "owner": str(index)})
                pipe.pexpire(key, 60_000)
                pipe.incr("logins:count")
                pipe.hget(key, "owner")
                created, expiring, _, owner = pipe.execute()
                assert (created, expiring, owner) == (2, True, str(index)), (created, expiring, owner)
            client.publish("logins", f"worker {index} done")
            client.close()
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    client = node.redis(protocol=protocol)
    assert client.get("logins:count") == str(workers * rounds)
    assert client.dbsize() == workers * rounds + 1
    heard = set()
    deadline = time.monotonic() + 10
    while len(heard) < workers and time.monotonic() < deadline:
        message = subscriber.get_message(timeout=1)
        if message and message["type"] == "message":
            heard.add(message["data"])
    assert heard == {f"worker {index} done" for index in range(workers)}
    loops = {line.get("io-thread") for line in client.client_list()}
    assert loops <= {"1", "2"} and len(loops) == 2, loops
    subscriber.close()
