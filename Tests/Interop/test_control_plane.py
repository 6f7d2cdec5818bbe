"""Control-plane stories: a site of three real nodes on loopback, peers over mutual TLS.

The Raft leader is killed with SIGKILL, nodes are frozen with SIGSTOP and thawed with
SIGCONT; every check reads the nodes' own /status (and `sessionfed status`).
"""

import json
import re
import socket
import time

import pytest

from conftest import wait_until
from cluster import Site, moved_away


def member_states(control):
    return {member["name"]: member["state"] for member in control["members"]}


def test_killed_leader_is_replaced_within_two_seconds_and_its_partitions_move(site_factory):
    site = site_factory()
    site.start_all()
    before = site.wait_converged()
    old = before["leader"]
    held = [row for row in before["partitionTable"] if row["primary"] == old or old in row["backups"]]
    assert held, f"the leader {old} holds no partition: {before['partitionTable']}"
    survivors = [node for node in site.names if node != old]
    # Leases: every partition has exactly one node acting as its primary.
    wait_until(lambda: site.acting_primaries(site.names) == len(before["partitionTable"]), 5, what="leases to cover every partition")

    killed_at = time.monotonic()
    site.kill(old)
    elected = None
    while time.monotonic() - killed_at < 5 and elected is None:
        view = site.leader_view(survivors)
        if view and view["term"] > before["term"]:
            elected = (time.monotonic() - killed_at, view)
        time.sleep(0.02)
    assert elected, "no new leader within 5 s of the SIGKILL"
    took, view = elected
    # The election timeout is 1000-1500 ms; DESIGN.md: a new leader within 2 s.
    assert took < 2.0, f"the new leader took {took:.3f} s"
    assert view["leader"] in survivors

    def reassigned():
        control = site.leader_view(survivors)
        return control if control and moved_away(control, old) else None

    after = wait_until(reassigned, 10, what=f"the committed map to move {old}'s partitions")
    epochs = {row["partition"]: row["epoch"] for row in before["partitionTable"]}
    for row in after["partitionTable"]:
        assert row["primary"] in survivors and set(row["backups"]) <= set(survivors)
        if before["partitionTable"][row["partition"]]["primary"] == old:
            # A promotion fences the old primary with a new epoch.
            assert row["epoch"] > epochs[row["partition"]], row
    # The other survivor applied the same map.
    def same_map():
        views = [site.control(node) or {} for node in survivors]
        return len({json.dumps((view.get("commitIndex"), view.get("partitionTable"))) for view in views}) == 1

    wait_until(same_map, 5, what="both survivors to apply the same map")
    wait_until(lambda: site.acting_primaries(survivors) == len(before["partitionTable"]), 5, what="the survivors' leases to cover every partition")

    # The status command names the new leader; --json carries the same view.
    report = site.run_cli("status", "--topology", str(site.topology)).stdout
    assert f"control plane of seoul: leader {after['leader']}" in report, report
    assert re.search(rf"^{old}\s+down\s", report, re.M), report
    reports = json.loads(site.run_cli("status", "--topology", str(site.topology), "--json").stdout)
    assert {r["node"]: (r["status"] or {}).get("controlPlane", {}).get("leader") for r in reports if r["reachable"]} == {node: after["leader"] for node in survivors}

    # The killed node comes back as a new incarnation and gets partitions again.
    site.start(old)
    back = site.wait_converged()
    member = next(m for m in back["members"] if m["name"] == old)
    assert member["state"] == "up"
    assert member["incarnation"] != next(m for m in before["members"] if m["name"] == old)["incarnation"]
    assert back["term"] == after["term"], "the returning node disturbed the leader"
    # Rebalancing hands it primaries step by step (copy, catch up, switch): usually within a
    # second or two; one CI run once took over 10 s, so the bound is wide and a timeout
    # prints the site's state for the rebalancing work to look into.
    try:
        wait_until(lambda: ((site.leader_view() or {}).get("partitions", {}).get("primaries", {}).get(old, 0) > 0), 30, what=f"{old} to lead partitions again")
    except AssertionError:
        report = site.run_cli("status", "--topology", str(site.topology), check=False).stdout
        raise AssertionError(f"{old} leads no partition 30 s after its return:\n{report}\n{old}'s log tail:\n{site.log(old)[-4000:]}")


def test_frozen_follower_steps_back_in_without_disrupting_the_leader(site_factory):
    site = site_factory()
    site.start_all()
    before = site.wait_converged()
    leader = before["leader"]
    follower = next(node for node in site.names if node != leader)

    site.freeze(follower)
    try:
        wait_until(lambda: member_states(site.control(leader) or {"members": []}).get(follower) == "down", 5, what=f"{leader} to mark {follower} down")
        time.sleep(4)
        during = site.control_eventually(leader)
        assert during["role"] == "leader" and during["term"] == before["term"]
    finally:
        site.thaw(follower)

    after = site.wait_converged()
    # Pre-vote: the thawed node could not win a pre-vote while the leader is heard, so
    # nobody's term moved and the leader never changed.
    assert after["leader"] == leader and after["term"] == before["term"]
    assert site.control_eventually(follower)["term"] == before["term"]
    assert site.control_eventually(leader)["leaderChanges"] == before["leaderChanges"]
    assert member_states(after)[follower] == "up"


def test_frozen_leader_steps_down_and_follows_the_new_one(site_factory):
    site = site_factory()
    site.start_all()
    before = site.wait_converged()
    old = before["leader"]
    others = [node for node in site.names if node != old]

    site.freeze(old)
    try:
        replaced = wait_until(lambda: site.leader_view(others), 5, what="a new leader while the old one is frozen")
        assert replaced["term"] > before["term"]
        time.sleep(max(0.0, 5 - 1.5))
    finally:
        site.thaw(old)

    after = site.wait_converged()
    assert after["leader"] == replaced["leader"], "the thawed old leader disrupted the new one"
    assert after["term"] == replaced["term"]
    thawed = site.control_eventually(old)
    assert thawed["role"] == "follower" and thawed["leader"] == replaced["leader"]
    # Caught up: converged means every node applied the leader's commit index.
    assert member_states(after)[old] == "up"


def test_garbage_on_the_peer_port_closes_only_that_connection(site_factory):
    site = site_factory(tls=False)
    site.start_all()
    before = site.wait_converged()
    target = before["leader"]
    closed_before = site.control_eventually(target)
    with socket.create_connection(("127.0.0.1", site.ports[target]["peer"]), timeout=5) as sock:
        sock.sendall(b"\x00\x00\x00\x05hello world, not a frame")
        sock.settimeout(5)
        data = sock.recv(4096)
        while data:
            data = sock.recv(4096)
    after = site.wait_converged()
    assert after["leader"] == target and after["term"] == before["term"]
    now = site.control_eventually(target)
    closed = lambda view: view["peerMalformedFrames"] + view["peerHandshakesRefused"]
    assert closed(now) == closed(closed_before) + 1, "the garbage connection was not counted"
