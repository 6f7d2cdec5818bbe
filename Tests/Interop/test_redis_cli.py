"""redis-cli (Debian redis-tools) telling the session story through subprocesses."""

import shutil
import subprocess
import uuid

import pytest


@pytest.fixture(scope="module")
def auth_node(start_node):
    return start_node(password="s3cret", users={"app": "apppass"})


def cli(node, *args, stdin=None, auth=(), extra=()):
    binary = shutil.which("redis-cli")
    assert binary, "redis-cli is not installed (scripts/interop/run.sh installs redis-tools)"
    done = subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(node.port), *auth, *extra, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done


def out(node, *args, **kwargs):
    done = cli(node, *args, **kwargs)
    assert done.returncode == 0, f"redis-cli {args} failed: {done.stdout}{done.stderr}"
    return done.stdout.rstrip("\n")


def test_session_story_one_command_each(node):
    old, new = f"session:{uuid.uuid4().hex}", f"session:{uuid.uuid4().hex}"
    assert out(node, "PING") == "PONG"
    # Login.
    assert out(node, "SET", old, '{"user":"ann"}', "EX", "1800", "NX") == "OK"
    assert out(node, "SET", old, "again", "EX", "1800", "NX") == ""  # nil: already there
    # Read.
    assert out(node, "GET", old) == '{"user":"ann"}'
    assert 1790 <= int(out(node, "TTL", old)) <= 1800
    # Regenerate.
    assert out(node, "RENAME", old, new) == "OK"
    assert out(node, "EXISTS", old) == "0"
    assert out(node, "GET", new) == '{"user":"ann"}'
    # Errors are printed as "(error) ..." only on a terminal; piped, redis-cli prints the bare text.
    assert out(node, "RENAME", old, new) == "ERR no such key"
    # Logout.
    assert out(node, "DEL", new) == "1"
    assert out(node, "EXISTS", new) == "0"
    assert out(node, "GET", new) == ""


def test_hash_session_and_raw_output(node):
    key = f"spring:session:sessions:{uuid.uuid4().hex}"
    assert out(node, "HSET", key, "creationTime", "1700000000000", "sessionAttr:user", "ann") == "2"
    assert out(node, "PEXPIRE", key, "1800000") == "1"
    assert out(node, "--no-raw", "HGETALL", key).splitlines() == [
        '1) "creationTime"',
        '2) "1700000000000"',
        '3) "sessionAttr:user"',
        '4) "ann"',
    ]
    assert out(node, "HGET", key, "sessionAttr:user") == "ann"
    assert out(node, "DEL", key) == "1"
    assert out(node, "--no-raw", "HGETALL", key) == "(empty array)"


def test_multi_command_stdin_session(node):
    """Several commands on one connection, read from stdin (one per line), including a transaction."""
    key = f"session:{uuid.uuid4().hex}"
    script = "\n".join(
        [
            f"SET {key} ann EX 600",
            f"GET {key}",
            "MULTI",
            f"INCR {key}:hits",
            f"EXPIRE {key}:hits 600",
            "EXEC",
            f"RENAME {key} {key}:new",
            f"GET {key}:new",
            f"DEL {key}:new {key}:hits",
            f"EXISTS {key}:new",
        ]
    ) + "\n"
    assert out(node, stdin=script).splitlines() == [
        "OK",
        "ann",
        "OK",
        "QUEUED",
        "QUEUED",
        "1",
        "1",
        "OK",
        "ann",
        "2",
        "0",
    ]


def test_pipe_mass_insert(node):
    """`redis-cli --pipe`: many sessions written in one pipelined stream, then removed the same way."""
    prefix = f"session:pipe:{uuid.uuid4().hex[:8]}:"
    count = 500

    def resp(*parts):
        return f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)

    writes = "".join(resp("SET", f"{prefix}{i}", f"user-{i}", "EX", "600") for i in range(count))
    done = cli(node, "--pipe", stdin=writes)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"errors: 0, replies: {count}" in done.stdout
    assert out(node, "GET", f"{prefix}{count - 1}") == f"user-{count - 1}"
    assert len(out(node, "KEYS", f"{prefix}*").splitlines()) == count

    removes = "".join(resp("DEL", f"{prefix}{i}") for i in range(count)) + resp("RENAME", f"{prefix}0", "x")
    done = cli(node, "--pipe", stdin=removes)
    # --pipe prints the error reply on stderr, counts it, and exits 1 as with Redis.
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == "ERR no such key\n"
    assert f"errors: 1, replies: {count + 1}" in done.stdout
    assert out(node, "KEYS", f"{prefix}*") == ""


def test_auth_with_user_and_pass(auth_node):
    key = f"session:{uuid.uuid4().hex}"
    as_app = ("--user", "app", "--pass", "apppass", "--no-auth-warning")
    assert out(auth_node, "SET", key, "ann", "EX", "60", auth=as_app) == "OK"
    assert out(auth_node, "GET", key, auth=("-a", "s3cret", "--no-auth-warning")) == "ann"
    assert out(auth_node, "--pipe", stdin=f"DEL {key}\r\n", auth=as_app).endswith("errors: 0, replies: 1")

    # Without credentials: NOAUTH.
    assert out(auth_node, "GET", key) == "NOAUTH Authentication required."
    # With wrong ones: redis-cli reports the AUTH failure on stderr, then the command is refused.
    done = cli(auth_node, "GET", key, auth=("--user", "app", "--pass", "wrong", "--no-auth-warning"))
    assert done.stderr.strip() == "AUTH failed: WRONGPASS invalid username-password pair or user is disabled."
    assert done.stdout.strip() == "NOAUTH Authentication required."
