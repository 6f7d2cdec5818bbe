"""Numbered databases (SELECT 0-15, redis://host:port/1) on sites of several real nodes.

Each database is its own keyspace, replicated inside a site and federated to the other
sites like database 0. Laravel keeps its cache in database 1; Django's documentation uses
`redis://…/1`.
"""

import json
import subprocess
import sys

import pytest
import redis

from conftest import INTEROP_DIR, raw_exchange, wait_until

REFUSAL = "is not supported by this server: each database is replicated and federated on its own"


@pytest.fixture
def sites(site_factory):
    made = site_factory.federated()
    for site in made:
        site.start_all()
    for site in made:
        site.wait_converged()
    return made


def client(site, node_index=0, db=0):
    return redis.Redis(port=site.ports[site.names[node_index]]["client"], db=db, socket_timeout=15, decode_responses=True)


def test_each_database_is_its_own_keyspace_on_a_site_of_three_nodes(sites):
    seoul, _ = sites
    port = seoul.ports[seoul.names[0]]["client"]
    db0, db1 = client(seoul, 0, 0), client(seoul, 1, 1)
    # Keys of every partition, so that commands are forwarded and the site-wide commands
    # ask every node.
    for index in range(40):
        assert db0.set(f"k{index}", f"zero-{index}") is True
        assert db1.set(f"k{index}", f"one-{index}") is True
    assert db1.set("only-in-1", "x") is True
    assert db0.get("k7") == "zero-7" and db1.get("k7") == "one-7"
    assert db0.exists("only-in-1") == 0
    assert db0.dbsize() == 40 and db1.dbsize() == 41
    assert client(seoul, 2, 5).dbsize() == 0
    assert sorted(db1.keys("only*")) == ["only-in-1"]
    assert db0.keys("only*") == []
    assert sorted(db1.scan_iter(match="k1*", count=7)) == sorted(f"k{index}" for index in range(40) if str(index).startswith("1"))
    assert set(db1.scan_iter(count=100)) == {f"k{index}" for index in range(40)} | {"only-in-1"}

    # redis-py's URL form selects the database on connect.
    from_url = redis.Redis.from_url(f"redis://127.0.0.1:{port}/1", decode_responses=True)
    assert from_url.get("only-in-1") == "x"

    # FLUSHDB clears only the current database; FLUSHALL every one.
    assert client(seoul, 2, 3).set("k1", "three") is True
    assert db1.flushdb() is True
    assert db1.dbsize() == 0 and db0.dbsize() == 40 and client(seoul, 0, 3).get("k1") == "three"
    assert db0.flushall() is True
    assert db0.dbsize() == 0 and client(seoul, 1, 3).dbsize() == 0

    # Exact error texts, as Redis words them (and SWAPDB/MOVE refused with the reason).
    assert raw_exchange(port, ("SELECT", "16"), ("SELECT", "1"), ("SWAPDB", "0", "1"), ("MOVE", "k", "1")) == [
        "-ERR DB index is out of range",
        "+OK",
        f"-ERR SWAPDB {REFUSAL}",
        f"-ERR MOVE {REFUSAL}",
    ]


def test_keyspace_notifications_of_database_one_say_so(sites):
    seoul, _ = sites
    at = [client(seoul, index, 1) for index in range(3)]
    for node in at:
        assert node.config_set("notify-keyspace-events", "KEA") is True
    pubsub = client(seoul, 0).pubsub()
    pubsub.psubscribe("__keyspace@*__:sess:*", "__keyevent@*__:set")
    wait_until(lambda: pubsub.get_message(timeout=0.05), 5, 0, "psubscribe")
    wait_until(lambda: pubsub.get_message(timeout=0.05), 5, 0, "psubscribe")
    # Written through another node: the event comes from the key's primary, wherever it is.
    assert at[2].set("sess:42", "v") is True
    seen = set()

    def both():
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message:
            seen.add((message["channel"], message["data"]))
        return {("__keyspace@1__:sess:42", "set"), ("__keyevent@1__:set", "sess:42")} <= seen

    wait_until(both, 10, 0, "the events of a write in database 1")
    pubsub.close()


def test_laravel_cache_and_lock_on_database_one_federated_to_a_second_site(sites):
    """What Laravel's RedisStore sends on its cache connection (REDIS_CACHE_DB=1): SELECT 1,
    SETEX for put(), GET, EXISTS, DEL for forget(), INCRBY for increment(), and for a lock
    SET key owner EX seconds NX; the lock is released without Lua here (WATCH, GET, MULTI,
    DEL, EXEC), as this store runs only phpredis's session-lock script."""
    seoul, lisbon = sites
    prefix = "laravel_database_laravel_cache_:"
    cache = client(seoul, 1, 1)
    assert cache.execute_command("SETEX", prefix + "user:1", 600, 's:3:"ann";') is True
    assert cache.execute_command("GET", prefix + "user:1") == 's:3:"ann";'
    assert cache.execute_command("EXISTS", prefix + "user:1") == 1
    assert cache.execute_command("SET", prefix + "visits", 1) is True
    assert cache.execute_command("INCRBY", prefix + "visits", 4) == 5
    assert cache.execute_command("SETEX", prefix + "gone", 600, "x") is True
    assert cache.execute_command("DEL", prefix + "gone") == 1

    lock = prefix + "report-lock"
    assert cache.execute_command("SET", lock, "owner-a", "EX", 10, "NX") is True
    assert cache.execute_command("SET", lock, "owner-b", "EX", 10, "NX") is None
    with cache.pipeline(transaction=True) as pipe:
        pipe.watch(lock)
        assert pipe.get(lock) == "owner-a"
        pipe.multi()
        pipe.delete(lock)
        assert pipe.execute() == [1]
    assert cache.execute_command("SET", lock, "owner-b", "EX", 10, "NX") is True

    # At the second site, database 1 holds the cache; database 0 does not, at either site.
    remote = client(lisbon, 2, 1)
    wait_until(lambda: remote.get(prefix + "user:1") == 's:3:"ann";' and remote.get(prefix + "visits") == "5"
               and remote.get(lock) == "owner-b", 20, what="database 1 to reach lisbon")
    assert remote.exists(prefix + "gone") == 0
    assert 590 <= remote.ttl(prefix + "user:1") <= 600
    for site in (seoul, lisbon):
        assert client(site, 0, 0).exists(prefix + "user:1", prefix + "visits", lock) == 0
        assert client(site, 0, 0).dbsize() == 0
    # A forget() at lisbon reaches seoul's database 1.
    assert remote.delete(prefix + "user:1") == 1
    wait_until(lambda: cache.exists(prefix + "user:1") == 0, 20, what="the delete to reach seoul")


def django_session(location, action, argument):
    done = subprocess.run([sys.executable, str(INTEROP_DIR / "django_cache_session.py"), location, action, argument],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_django_cache_sessions_at_slash_one_federated_to_a_second_site(sites):
    seoul, lisbon = sites
    at_seoul = f"redis://127.0.0.1:{seoul.ports[seoul.names[0]]['client']}/1"
    at_lisbon = f"redis://127.0.0.1:{lisbon.ports[lisbon.names[1]]['client']}/1"
    created = django_session(at_seoul, "create", "user=ann")
    key = ":1:django.contrib.sessions.cache" + created["key"]
    assert client(seoul, 2, 1).exists(key) == 1
    wait_until(lambda: client(lisbon, 0, 1).exists(key) == 1, 20, what="the session to reach lisbon's database 1")
    assert django_session(at_lisbon, "load", created["key"])["data"] == {"user": "ann"}
    for site in (seoul, lisbon):
        assert client(site, 1, 0).exists(key) == 0
    at_lisbon_db0 = at_lisbon[:-2] + "/0"
    assert django_session(at_lisbon_db0, "load", created["key"])["data"] is None
