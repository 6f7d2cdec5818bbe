"""PHP sessions through phpredis' session handler (Debian php-cli + php-redis) on sessionfed.

Each `php` run is one request of the same app; they share the session through the server.

Locking (redis.session.locking_enabled=1) works as on Redis: phpredis takes its lock with
`SET PHPREDIS_SESSION:<id>_LOCK <token> NX [PX ms]` and releases it with
`EVALSHA <sha1> 1 <lock> <token>` (then `EVAL <script> ...` if the SHA1 is unknown).
sessionfed runs no Lua, but recognises this one compare-and-delete script by its SHA1 or
its text and runs it natively: every request leaves no lock behind and raises no warning.
A request that finds the lock held by another request (a concurrent one) behaves as on
Redis: it reads, warns that it could not lock, and its write is refused.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import raw_exchange

SCRIPT = Path(__file__).with_name("php_session.php")
LOCK_EXPIRE_S = 30


@pytest.fixture(scope="module")
def php():
    binary = shutil.which("php")
    assert binary, "php is not installed (scripts/interop/run.sh installs php-cli and php-redis)"
    modules = subprocess.run([binary, "-m"], capture_output=True, text=True, timeout=30).stdout.split()
    assert "redis" in modules, "the php-redis extension is not loaded"
    return binary


@pytest.fixture
def store(node):
    client = node.redis()
    yield client
    client.close()


def request(php, node, action, session_id=None, lock_expire=LOCK_EXPIRE_S, extra_ini=(), extra_args=()):
    done = finished(start_request(php, node, action, session_id, lock_expire, extra_ini, extra_args))
    return done


def start_request(php, node, action, session_id=None, lock_expire=LOCK_EXPIRE_S, extra_ini=(), extra_args=()):
    """One PHP request, started and not waited for (see `finished`)."""
    ini = {
        "session.save_handler": "redis",
        "session.save_path": f"tcp://127.0.0.1:{node.port}",
        "redis.session.locking_enabled": "1",
        "redis.session.lock_expire": str(lock_expire),
        "display_errors": "stderr",
        "log_errors": "0",
        "error_reporting": "-1",
        **dict(extra_ini),
    }
    args = [php]
    for name, value in ini.items():
        args += ["-d", f"{name}={value}"]
    args += [str(SCRIPT), action] + ([session_id] if session_id else []) + list(extra_args)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process):
    """The report of a request started by `start_request`, once it ended."""
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 0, f"php failed ({process.returncode}): {stdout}\n{stderr}"
    # Every warning is caught by the script's error handler and reported in its JSON.
    assert stderr == ""
    return json.loads(stdout.strip().splitlines()[-1])


def session_key(session_id):
    return f"PHPREDIS_SESSION:{session_id}"


def lock_key(session_id):
    return f"PHPREDIS_SESSION:{session_id}_LOCK"


def test_lock_release_script_runs_natively_and_others_are_refused(node):
    """The exact replies to phpredis' two release attempts, and to any other script."""
    import hashlib

    body = 'if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end'
    sha = hashlib.sha1(body.encode()).hexdigest()
    assert sha == "b70c2384248f88e6b75b9f89241a180f856ad852"
    lock = f"PHPREDIS_SESSION:{uuid_hex()}_LOCK"
    replies = raw_exchange(
        node.port,
        ["SET", lock, "secret", "NX", "PX", "30000"],
        ["EVALSHA", sha, "1", lock, "not-mine"],
        ["EVALSHA", sha, "1", lock, "secret"],
        ["EVAL", body, "1", lock, "secret"],
        ["EVALSHA", "0" * 40, "1", lock, "secret"],
        ["EVAL", "return 1", "0"],
    )
    assert replies == [
        "+OK", ":0", ":1", ":0",
        "-NOSCRIPT No matching script. Please use EVAL.",
        "-ERR scripting is not supported by this server: sessionfed does not run Lua scripts",
    ]


def uuid_hex():
    import uuid

    return uuid.uuid4().hex


def test_php_session_story(php, node, store):
    # Request 1 (login): a new session is written with SETEX; the lock is released.
    created = request(php, node, "create")
    assert created["start"] is True and created["write_close"] is True
    first = created["id"]
    assert created["warnings"] == []
    assert store.get(session_key(first)) == 'user|s:3:"ann";cart|a:2:{i:0;i:1;i:1;i:2;}'
    assert 1400 <= store.ttl(session_key(first)) <= 1440  # session.gc_maxlifetime
    assert store.exists(lock_key(first)) == 0

    # Request 2: reads the session.
    read = request(php, node, "read", first)
    assert read["data"] == {"user": "ann", "cart": [1, 2]}
    assert read["warnings"] == []

    # Request 3: privilege change, session_regenerate_id(true) deletes the old session.
    regenerated = request(php, node, "regenerate", first)
    assert regenerated["regenerate"] is True and regenerated["warnings"] == []
    second = regenerated["new_id"]
    assert second != first
    assert store.exists(session_key(first)) == 0
    assert store.exists(session_key(second)) == 1
    assert store.exists(lock_key(first), lock_key(second)) == 0

    read = request(php, node, "read", second)
    assert read["data"] == {"user": "ann", "cart": [1, 2], "role": "admin"}
    assert read["warnings"] == []

    # Request 5 (logout): session_destroy() deletes the session.
    logout = request(php, node, "logout", second)
    assert logout["destroy"] is True and logout["warnings"] == []
    assert logout["data"] == {"user": "ann", "cart": [1, 2], "role": "admin"}
    assert store.exists(session_key(second), lock_key(second)) == 0
    assert store.keys("PHPREDIS_SESSION:*") == []

    # A later request with the old id finds nothing (phpredis then writes that empty
    # session back under the id it was given, as with Redis; clean it up).
    gone = request(php, node, "read", second)
    assert gone["data"] == []
    store.delete(session_key(second), lock_key(second))


def test_php_request_while_another_holds_the_lock(php, node, store):
    """A request that finds the session locked by another reads, but its write is refused."""
    first = request(php, node, "create")["id"]
    # Another request of the same session holds the lock.
    assert store.set(lock_key(first), "another-request", px=10_000) is True
    update = request(php, node, "update", first)
    assert update["warnings"] == [
        "session_start(): Acquire of session lock was not successful",
        "session_write_close(): Failed to write session data (redis). Please verify that the current "
        f"setting of session.save_path is correct (tcp://127.0.0.1:{node.port})",
    ]
    assert update["data"] == {"user": "ann", "cart": [1, 2]}
    # PHP 8.2's session_write_close() still returns true; only the warning tells.
    assert update["write_close"] is True
    assert store.get(session_key(first)) == 'user|s:3:"ann";cart|a:2:{i:0;i:1;i:1;i:2;}'
    # It did not release the other request's lock (the compare-and-delete saw another token).
    assert store.get(lock_key(first)) == "another-request"
    # Once the other request released it, the same update goes through.
    store.delete(lock_key(first))
    update = request(php, node, "update", first)
    assert update["warnings"] == [] and update["write_close"] is True
    assert store.get(session_key(first)).endswith("seen|b:1;")
    assert store.exists(lock_key(first)) == 0
    assert store.delete(session_key(first)) == 1


def test_php_cli_default_lock_is_released_too(php, node, store):
    """lock_expire=0 and php-cli's max_execution_time=0 give the lock no expiry: released
    all the same at the end of each request."""
    first = request(php, node, "create", lock_expire=0)["id"]
    assert store.exists(lock_key(first)) == 0
    read = request(php, node, "read", first, lock_expire=0)
    assert read["warnings"] == [] and read["data"] == {"user": "ann", "cart": [1, 2]}
    assert store.exists(lock_key(first)) == 0
    assert store.delete(session_key(first)) == 1


def test_two_concurrent_requests_of_one_session_both_write(php, node, store):
    """phpredis' locking on: the second request waits for the first's lock, then takes it.

    Each request holds the session for 300 ms; they start together. Both must write (the
    session ends with both visits), neither may warn (no "Failed to release session lock",
    no failed acquire), and no lock is left behind.
    """
    first = request(php, node, "create")["id"]
    # phpredis retries the lock every lock_wait_time microseconds, lock_retries times.
    wait = [("redis.session.lock_retries", "200"), ("redis.session.lock_wait_time", "20000")]
    running = [start_request(php, node, "visit", first, extra_ini=wait, extra_args=[name]) for name in ("left", "right")]
    reports = [finished(process) for process in running]
    for report in reports:
        assert report["start"] is True and report["write_close"] is True, report
        assert report["warnings"] == [], report
    seen = sorted(len(report["data"]["visits"]) for report in reports)
    assert seen == [1, 2], f"the second request read the first one's write: {reports}"
    final = request(php, node, "read", first)["data"]
    assert sorted(final["visits"]) == ["left", "right"], final
    assert store.exists(lock_key(first)) == 0
    store.delete(session_key(first))
