"""node-redis v4 (Debian `node-redis`, run by `node`) telling a connect-redis-like session story."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("node_redis_session.js")
# Debian installs node-redis under /usr/share/nodejs, which a non-Debian node does not search.
NODE_PATH = "/usr/share/nodejs:/usr/lib/nodejs"


@pytest.fixture(scope="module")
def auth_node(start_node):
    return start_node(password="s3cret", users={"app": "apppass"})


def run_story(port, **credentials):
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed (scripts/interop/run.sh installs nodejs and node-redis)"
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    options = {"port": port, "prefix": f"sess:{uuid.uuid4().hex[:6]}:", "oldId": old, "newId": new, **credentials}
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    done = subprocess.run(
        [node, str(SCRIPT), json.dumps(options)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, f"node failed ({done.returncode}): {done.stdout}\n{done.stderr}"
    return options, json.loads(done.stdout.strip().splitlines()[-1])


def check_story(options, out):
    prefix = options["prefix"]
    old, new = prefix + options["oldId"], prefix + options["newId"]
    session = '{"cookie":{"maxAge":1800000},"user":"ann"}'
    assert out["ping"] == "PONG"
    assert out["clientName"] == "interop-node"
    assert out["set"] == "OK"
    assert out["get"] == session
    assert 1790 <= out["ttl"] <= 1800
    assert out["expire"] is True
    assert 3590 <= out["ttlAfterTouch"] <= 3600
    assert out["scan"] == [old]
    assert out["mget"] == [session]
    assert out["rename"] == "OK"
    assert out["getOld"] is None
    assert out["getNew"] == session
    assert 3590 <= out["ttlNew"] <= 3600
    assert out["multi"] == [1, True, session]
    assert out["del"] == 2
    assert out["existsAfter"] == 0
    assert out["getAfter"] is None
    assert out["renameMissing"] == "ERR no such key"
    assert out["errors"] == []


def test_node_redis_session_story(node):
    options, out = run_story(node.port)
    check_story(options, out)
    assert node.redis().exists(options["prefix"] + options["newId"]) == 0


def test_node_redis_with_password(auth_node):
    options, out = run_story(auth_node.port, password="s3cret")
    check_story(options, out)


def test_node_redis_with_acl_user(auth_node):
    options, out = run_story(auth_node.port, username="app", password="apppass")
    check_story(options, out)


def test_node_redis_wrong_password(auth_node):
    node = shutil.which("node")
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    options = {"port": auth_node.port, "prefix": "sess:", "oldId": "a", "newId": "b", "username": "app", "password": "bad"}
    done = subprocess.run(
        [node, str(SCRIPT), json.dumps(options)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "fatal": "WRONGPASS invalid username-password pair or user is disabled."
    }
