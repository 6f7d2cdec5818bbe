"""PHP sessions through phpredis' session handler (Debian php-cli + php-redis) on sessionfed.

Each `php` run is one request of the same app; they share the session through the server.

What happens with locking (redis.session.locking_enabled=1), observed and asserted here:
phpredis takes its lock with `SET PHPREDIS_SESSION:<id>_LOCK <secret> NX [PX ms]`, which
works, and releases it with `EVALSHA <sha> 1 <lock> <secret>`, then `EVAL <script> ...` when
that fails. sessionfed runs no Lua: EVALSHA answers `NOSCRIPT No matching script. Please use
EVAL.` and EVAL answers `ERR scripting is not supported by this server: sessionfed does not
run Lua scripts`. So:
  * every release raises the PHP warning "<function>(): Failed to release session lock"
    (once per release attempt: session_regenerate_id(true) and session_destroy() try twice);
  * the `_LOCK` key stays until its own expiry (redis.session.lock_expire, or
    max_execution_time when that is 0; with both 0, as in php-cli by default, it never
    expires and stays until deleted);
  * a request for the same session while the lock lives warns "session_start(): Acquire of
    session lock was not successful", still reads the data, but its write is refused:
    session_write_close() returns false with "Failed to write session data (redis). Please
    verify that the current setting of session.save_path is correct (...)" (the function
    still returns true), and the stored data is unchanged.
The session story itself (write, read, regenerate, destroy) still works.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import raw_exchange, wait_until

SCRIPT = Path(__file__).with_name("php_session.php")
LOCK_EXPIRE_S = 1
RELEASE_FAILED = "Failed to release session lock"


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


def request(php, node, action, session_id=None, lock_expire=LOCK_EXPIRE_S, extra_ini=()):
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
    args += [str(SCRIPT), action] + ([session_id] if session_id else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"php failed ({done.returncode}): {done.stdout}\n{done.stderr}"
    # Every warning is caught by the script's error handler and reported in its JSON.
    assert done.stderr == ""
    return json.loads(done.stdout.strip().splitlines()[-1])


def session_key(session_id):
    return f"PHPREDIS_SESSION:{session_id}"


def lock_key(session_id):
    return f"PHPREDIS_SESSION:{session_id}_LOCK"


def wait_lock_expired(store, session_id, lock_expire=LOCK_EXPIRE_S):
    """The unreleased lock lapses by its own expiry; poll for it (bounded)."""
    wait_until(lambda: store.exists(lock_key(session_id)) == 0, lock_expire + 4, 0.05, "the session lock to expire")


def test_server_refuses_the_lock_release_script(node):
    """Why phpredis cannot release its lock: the exact replies to its two attempts."""
    replies = raw_exchange(
        node.port,
        ["EVALSHA", "0" * 40, "1", "PHPREDIS_SESSION:x_LOCK", "secret"],
        ["EVAL", 'if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end', "1", "PHPREDIS_SESSION:x_LOCK", "secret"],
    )
    assert replies == [
        "-NOSCRIPT No matching script. Please use EVAL.",
        "-ERR scripting is not supported by this server: sessionfed does not run Lua scripts",
    ]


def test_php_session_story(php, node, store):
    # Request 1 (login): a new session is written with SETEX.
    created = request(php, node, "create")
    assert created["start"] is True and created["write_close"] is True
    first = created["id"]
    assert created["warnings"] == [f"session_write_close(): {RELEASE_FAILED}"]
    assert store.get(session_key(first)) == 'user|s:3:"ann";cart|a:2:{i:0;i:1;i:1;i:2;}'
    assert 1400 <= store.ttl(session_key(first)) <= 1440  # session.gc_maxlifetime
    # The lock was not released: it stays until its expiry.
    assert 0 < store.pttl(lock_key(first)) <= LOCK_EXPIRE_S * 1000
    wait_lock_expired(store, first)

    # Request 2: reads the session.
    read = request(php, node, "read", first)
    assert read["data"] == {"user": "ann", "cart": [1, 2]}
    assert read["warnings"] == [f"session_write_close(): {RELEASE_FAILED}"]
    wait_lock_expired(store, first)

    # Request 3: privilege change, session_regenerate_id(true) deletes the old session.
    regenerated = request(php, node, "regenerate", first)
    assert regenerated["regenerate"] is True
    second = regenerated["new_id"]
    assert second != first
    assert regenerated["warnings"] == [
        f"session_regenerate_id(): {RELEASE_FAILED}",
        f"session_regenerate_id(): {RELEASE_FAILED}",
        f"session_write_close(): {RELEASE_FAILED}",
    ]
    assert store.exists(session_key(first)) == 0
    assert store.exists(session_key(second)) == 1
    # Both the old and the new id's locks are left behind.
    assert store.exists(lock_key(first), lock_key(second)) == 2
    wait_lock_expired(store, first)
    wait_lock_expired(store, second)

    read = request(php, node, "read", second)
    assert read["data"] == {"user": "ann", "cart": [1, 2], "role": "admin"}
    wait_lock_expired(store, second)

    # Request 5 (logout): session_destroy() deletes the session.
    logout = request(php, node, "logout", second)
    assert logout["destroy"] is True
    assert logout["data"] == {"user": "ann", "cart": [1, 2], "role": "admin"}
    assert logout["warnings"] == [f"session_destroy(): {RELEASE_FAILED}", f"session_destroy(): {RELEASE_FAILED}"]
    assert store.exists(session_key(second)) == 0
    assert store.exists(lock_key(second)) == 1
    wait_lock_expired(store, second)
    assert store.keys("PHPREDIS_SESSION:*") == []

    # A later request with the old id finds nothing (phpredis then writes that empty
    # session back under the id it was given, as with Redis; clean it up).
    gone = request(php, node, "read", second)
    assert gone["data"] == []
    store.delete(session_key(second), lock_key(second))


def test_php_request_while_lock_is_left_behind(php, node, store):
    """The next request within lock_expire cannot lock: it reads, but its write is refused."""
    lock_expire = 3  # room for a slow machine between the two requests
    first = request(php, node, "create", lock_expire=lock_expire)["id"]
    assert store.exists(lock_key(first)) == 1
    update = request(php, node, "update", first, lock_expire=lock_expire)
    assert update["warnings"] == [
        "session_start(): Acquire of session lock was not successful",
        "session_write_close(): Failed to write session data (redis). Please verify that the current "
        f"setting of session.save_path is correct (tcp://127.0.0.1:{node.port})",
    ]
    assert update["data"] == {"user": "ann", "cart": [1, 2]}
    # PHP 8.2's session_write_close() still returns true; only the warning tells.
    assert update["write_close"] is True
    assert store.get(session_key(first)) == 'user|s:3:"ann";cart|a:2:{i:0;i:1;i:1;i:2;}'
    # Once the lock lapses, the same update goes through.
    wait_lock_expired(store, first, lock_expire)
    update = request(php, node, "update", first, lock_expire=lock_expire)
    assert update["warnings"] == [f"session_write_close(): {RELEASE_FAILED}"]
    assert update["write_close"] is True
    assert store.get(session_key(first)).endswith("seen|b:1;")
    assert store.delete(session_key(first), lock_key(first)) == 2


def test_php_cli_default_lock_never_expires(php, node, store):
    """lock_expire=0 and php-cli's max_execution_time=0: the lock gets no expiry and stays."""
    first = request(php, node, "create", lock_expire=0)["id"]
    assert store.pttl(lock_key(first)) == -1
    assert request(php, node, "read", first, lock_expire=0)["warnings"] == [
        "session_start(): Acquire of session lock was not successful"
    ]
    # With max_execution_time set (as under php-fpm), the lock lives that long instead.
    second = request(php, node, "create", lock_expire=0, extra_ini={"max_execution_time": "30"})["id"]
    assert 29_000 < store.pttl(lock_key(second)) <= 30_000
    assert store.delete(session_key(first), lock_key(first), session_key(second), lock_key(second)) == 4
