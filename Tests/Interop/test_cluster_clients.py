"""Cluster-aware clients on a site of three real nodes.

A client in cluster mode (redis-py's RedisCluster, node-redis's createCluster, redis-cli -c,
redis-benchmark --cluster) reads the slot map (CLUSTER SLOTS / SHARDS / NODES) and sends each
key to its partition's primary, which then runs it without a forwarding hop. A client that
acts on an older map is forwarded as any client is: never told MOVED, never refused.
"""

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from conftest import wait_until
from test_site_replication import clients, partition_of, primaries, slot
from test_sorted_sets import reference  # noqa: F401 (a fixture: a redis-server of its own)

NODE_SCRIPT = Path(__file__).with_name("node_redis_cluster.js")
NODE_PATH = "/usr/share/nodejs:/usr/lib/nodejs"


def settled_site(site_factory):
    """A converged site where every node leads partitions and no partition is moving, so the
    map a client reads stays the map the site routes by."""
    site = site_factory()
    site.start_all()
    site.wait_converged()
    wait_until(lambda: len(set(primaries(site).values())) == 3, 20, what="every node to lead partitions")

    def settled():
        before = primaries(site)
        time.sleep(0.3)
        return before == primaries(site) and site.converged()

    wait_until(settled, 20, interval_s=0.1, what="the partition table to stop changing")
    return site


def forwarded(site):
    return sum(site.status(node)["dataPlane"]["forwarded"] for node in site.running())


def slot_map(client):
    """CLUSTER SLOTS as slot -> primary port."""
    owner = {}
    for first, last, primary, *replicas in client.execute_command("CLUSTER SLOTS"):
        for each in range(first, last + 1):
            assert each not in owner, f"slot {each} listed twice"
            owner[each] = int(primary[1])
    return owner


def test_redis_py_cluster_client_sends_each_key_to_its_primary(site_factory):
    site = settled_site(site_factory)
    names = site.names
    port_of = {node: site.ports[node]["client"] for node in names}
    standalone = clients(site)

    # The map every node gives is the partition table the site routes by, covering every slot.
    table = primaries(site)
    for node in names:
        owner = slot_map(standalone[node])
        assert len(owner) == 16384
        for each in range(0, 16384, 97):
            assert owner[each] == port_of[table[each * 16 // 16384]], (node, each)
    info = standalone[names[0]].execute_command("CLUSTER INFO")
    info = info if isinstance(info, dict) else dict(line.split(":", 1) for line in info.strip().splitlines())
    assert info["cluster_state"] == "ok" and info["cluster_slots_assigned"] == "16384", info
    assert standalone[names[1]].execute_command("CLUSTER KEYSLOT", "spring:session:sessions:{abc}x") == slot("{abc}")
    # redis-py parses CLUSTER NODES into address -> fields.
    described = standalone[names[2]].execute_command("CLUSTER NODES")
    myself = [fields for fields in described.values() if "myself" in fields["flags"]]
    assert len(described) == 3 and len(myself) == 1, described
    assert myself[0]["node_id"] == standalone[names[2]].execute_command("CLUSTER MYID")
    assert standalone[names[0]].info("cluster")["cluster_enabled"] == 1

    # Through the cluster client, no command needs a hop: each reached its primary.
    before = forwarded(site)
    cluster = RedisCluster(host="127.0.0.1", port=port_of[names[0]], decode_responses=True)
    try:
        for index in range(300):
            assert cluster.set(f"session:{index}", f"value{index}") is True
            assert cluster.hset(f"spring:session:sessions:{index}", mapping={"creationTime": str(index), "sessionAttr:user": f"u{index}"}) == 2
        for index in range(300):
            assert cluster.get(f"session:{index}") == f"value{index}"
        assert cluster.mget_nonatomic([f"session:{index}" for index in range(10)]) == [f"value{index}" for index in range(10)]
        assert forwarded(site) == before, "a cluster client's command was forwarded although the map had not changed"
        assert primaries(site) == table
    finally:
        cluster.close()

    # The same store for clients in standalone mode on any node (those are forwarded).
    for node in names:
        assert standalone[node].get("session:7") == "value7"
        assert standalone[node].hgetall("spring:session:sessions:9") == {"creationTime": "9", "sessionAttr:user": "u9"}
    assert forwarded(site) > before


def test_a_client_with_a_stale_map_is_forwarded_not_redirected(site_factory):
    """A key sent to a node that is not its primary (as a cluster client does before it
    learns of a failover) is answered, not met with MOVED or ASK."""
    site = settled_site(site_factory)
    table = primaries(site)
    key = next(f"stale:{index}" for index in range(1000) if table[partition_of(f"stale:{index}")] == site.names[0])
    wrong = site.names[1]
    done = subprocess.run(["redis-cli", "-c", "-p", str(site.ports[wrong]["client"]), "SET", key, "v"], capture_output=True, text=True, timeout=10)
    assert done.stdout.strip() == "OK", done
    assert clients(site)[wrong].get(key) == "v"


def test_cluster_client_follows_a_killed_primary_and_loses_no_acknowledged_write(site_factory):
    site = settled_site(site_factory)
    table = primaries(site)
    leader = site.leader_view()["leader"]
    victim = next(node for node in site.names if node != leader)
    start_port = site.ports[leader]["client"]
    acknowledged, errors, stop = {}, [], threading.Event()
    after_kill = []

    def write():
        cluster = RedisCluster(host="127.0.0.1", port=start_port, decode_responses=True, socket_timeout=5)
        counter = 0
        while not stop.is_set():
            counter += 1
            key = f"k:{counter % 200}"
            try:
                if cluster.set(key, counter):
                    acknowledged[key] = counter
                    if killed_at and time.monotonic() > killed_at[0] and table[partition_of(key)] == victim:
                        after_kill.append(key)
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterError, redis.exceptions.RedisClusterException) as error:
                # What an application does: report, wait a little, carry on.
                errors.append(str(error))
                time.sleep(0.1)
        cluster.close()

    killed_at = []
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(1.0)
    site.kill(victim)
    killed_at.append(time.monotonic())
    wait_until(lambda: after_kill, 30, interval_s=0.1, what="a cluster-client write to a partition of the killed node")
    stop.set()
    writer.join(20)
    site.wait_converged()
    # The map no longer names the killed node, and every acknowledged write is there.
    survivor = next(node for node in site.running())
    owners = set(slot_map(clients(site)[survivor]).values())
    assert site.ports[victim]["client"] not in owners
    for node in site.running():
        reader = clients(site)[node]
        lost = [key for key, value in acknowledged.items() if int(reader.get(key) or 0) < value]
        assert not lost, f"{node} lost acknowledged writes: {lost[:10]}"


def test_node_redis_cluster_client(site_factory):
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed (scripts/interop/run.sh installs nodejs and node-redis)"
    site = settled_site(site_factory)
    before = forwarded(site)
    options = {"port": site.ports[site.names[1]]["client"], "prefix": "sess:cluster:"}
    done = subprocess.run([node, str(NODE_SCRIPT), json.dumps(options)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, NODE_PATH=NODE_PATH))
    assert done.returncode == 0, f"node failed ({done.returncode}): {done.stdout}\n{done.stderr}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["masters"] == 3, out
    assert out["sets"] == 100 and out["gets"] == 100, out
    assert out["errors"] == [], out
    assert forwarded(site) == before
    assert clients(site)[site.names[0]].get("sess:cluster:42") == "value42"


def test_redis_benchmark_in_cluster_mode(site_factory):
    site = settled_site(site_factory)
    before = forwarded(site)
    done = subprocess.run(["redis-benchmark", "--cluster", "-p", str(site.ports[site.names[0]]["client"]), "-t", "set,get", "-n", "3000", "-c", "6", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done
    assert "Cluster has 3 master nodes" in done.stdout, done.stdout
    assert "SET:" in done.stdout and "GET:" in done.stdout, done.stdout
    assert forwarded(site) == before


def run_bench(site_or_binary, *arguments):
    return subprocess.run([site_or_binary, "bench", "--json", *arguments], capture_output=True, text=True, timeout=120)


def test_sessionfed_bench_in_cluster_mode_sends_each_write_to_its_primary(site_factory, sessionfed_bin):
    site = settled_site(site_factory)
    before = forwarded(site)
    done = run_bench(sessionfed_bin, "--cluster", "--port", str(site.ports[site.names[2]]["client"]), "--requests", "3000", "--clients", "6")
    assert done.returncode == 0, done
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cluster"] is True and result["requests"] == 3000 and result["errors"] == 0, result
    assert forwarded(site) == before
    # The keys are spread over every primary, as without --cluster.
    assert all(clients(site)[node].dbsize() > 0 for node in site.names)
    assert sum(site.status(node)["dataPlane"]["writesReplicated"] for node in site.names) >= 3000


def test_sessionfed_bench_in_cluster_mode_against_a_standalone_redis_says_why(reference, sessionfed_bin):
    done = run_bench(sessionfed_bin, "--cluster", "--port", str(reference), "--requests", "10")
    assert done.returncode != 0
    assert "cluster support disabled" in done.stderr, done.stderr


def test_sessionfed_bench_against_a_port_nobody_listens_on_says_so(sessionfed_bin):
    from conftest import free_ports
    (port,) = free_ports(1)
    for mode in ([], ["--cluster"]):
        done = run_bench(sessionfed_bin, *mode, "--port", str(port), "--requests", "10")
        assert done.returncode == 1, (mode, done)
        assert "Connection refused" in done.stderr and "crashed" not in done.stderr, (mode, done.stderr[-2000:])
