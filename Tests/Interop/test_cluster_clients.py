"""Cluster-aware clients on a site of three real nodes (`defaults.clusterClients: true`).

A client in cluster mode (redis-py's RedisCluster, node-redis's createCluster,
redis-benchmark --cluster, `sessionfed bench --cluster`) reads the slot map (CLUSTER SLOTS /
SHARDS / NODES) and sends each key to its partition's primary, which then runs it without a
forwarding hop. A command that reaches another node (a client acting on an older map) is
forwarded as any client's is: never answered MOVED, never refused. Without the setting a
node answers CLUSTER as a standalone Redis does.
"""

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from conftest import wait_until
from test_site_replication import clients, partition_of, primaries, slot
from test_sorted_sets import reference  # noqa: F401 (a fixture: a redis-server of its own)

NODE_SCRIPT = Path(__file__).with_name("node_redis_cluster.js")
NODE_PATH = "/usr/share/nodejs:/usr/lib/nodejs"


CLUSTER_CLIENTS = {"clusterClients": "true"}


def settled_site(site_factory):
    """A converged site with cluster clients served, where every node leads partitions and
    no placement move is under way or left to start, so the map a client reads stays the map
    the site routes by."""
    site = site_factory(defaults=CLUSTER_CLIENTS)
    site.start_all()
    site.wait_converged()

    def settled():
        view = site.converged()
        moves = view and view.get("rebalancing", {})
        return view and moves.get("moving", 1) == 0 and moves.get("left", 1) == 0 and len(set(primaries(site).values())) == 3

    wait_until(settled, 30, interval_s=0.1, what="every node to lead partitions and no placement move left")
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
    assert standalone[names[1]].execute_command("CLUSTER HELP")[0].startswith("CLUSTER <subcommand>")
    try:
        standalone[names[1]].execute_command("CLUSTER KEYSLOT")
        raise AssertionError("CLUSTER KEYSLOT without a key was answered")
    except redis.ResponseError as error:
        assert str(error) == "wrong number of arguments for 'cluster|keyslot' command", error
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
    # /metrics says what /status says, for an alert on forwarding.
    for node in names:
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{site.ports[node]['admin']}/metrics", timeout=5).read().decode()
        counted = [line for line in metrics.splitlines() if line.startswith("sessionfed_commands_forwarded_total")]
        assert counted and float(counted[0].split()[-1]) == site.status(node)["dataPlane"]["forwarded"], counted


def test_a_key_sent_to_another_node_is_forwarded_not_redirected(site_factory):
    """A key sent to a node that is not its primary (what a cluster client with an older map
    does) is answered there, through a forward: `redis-cli -c` would follow a MOVED or ASK
    and say so."""
    site = settled_site(site_factory)
    table = primaries(site)
    key = next(f"stale:{index}" for index in range(1000) if table[partition_of(f"stale:{index}")] == site.names[0])
    wrong = site.names[1]
    before = site.status(wrong)["dataPlane"]["forwarded"]
    done = subprocess.run(["redis-cli", "-c", "-p", str(site.ports[wrong]["client"]), "SET", key, "v"], capture_output=True, text=True, timeout=10)
    assert done.stdout.strip() == "OK" and "Redirected" not in done.stdout + done.stderr, done
    assert site.status(wrong)["dataPlane"]["forwarded"] == before + 1
    assert clients(site)[site.names[2]].get(key) == "v"


def test_without_the_setting_a_node_answers_cluster_as_a_standalone_redis(site_factory):
    """Clients that probe for cluster mode (CLUSTER SLOTS, READONLY) must keep seeing a
    standalone server after an upgrade, word for word as redis-server answers."""
    site = site_factory()
    site.start_all()
    site.wait_converged()
    client = clients(site)[site.names[0]]
    for command in (("CLUSTER", "SLOTS"), ("CLUSTER", "NODES"), ("READONLY",)):
        try:
            client.execute_command(*command)
            raise AssertionError(f"{command} was answered")
        except redis.ResponseError as error:
            assert str(error) == "This instance has cluster support disabled", (command, error)
    assert client.info("cluster")["cluster_enabled"] == 0
    try:
        RedisCluster(host="127.0.0.1", port=site.ports[site.names[0]]["client"]).ping()
        raise AssertionError("a cluster client connected to a site that does not serve cluster clients")
    except redis.exceptions.RedisClusterException as error:
        assert "cluster" in str(error).lower(), error


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
    # Every primary ran its share of the writes (DBSIZE would count the whole site).
    replicated = [site.status(node)["dataPlane"]["writesReplicated"] for node in site.names]
    assert sum(replicated) >= 3000 and all(count > 300 for count in replicated), replicated


def test_sessionfed_bench_in_cluster_mode_against_a_standalone_redis_says_why(reference, sessionfed_bin):
    done = run_bench(sessionfed_bin, "--cluster", "--port", str(reference), "--requests", "10")
    assert done.returncode != 0
    assert "cluster support disabled" in done.stderr, done.stderr


def test_sessionfed_bench_in_cluster_mode_with_too_few_keys_for_every_primary_says_so(site_factory, sessionfed_bin):
    site = settled_site(site_factory)
    done = run_bench(sessionfed_bin, "--cluster", "--port", str(site.ports[site.names[0]]["client"]), "--keyspace", "1", "--requests", "10")
    assert done.returncode != 0
    assert "use a larger --keyspace" in done.stderr, done.stderr


def test_sessionfed_bench_against_a_port_nobody_listens_on_says_so(sessionfed_bin):
    from conftest import free_ports
    (port,) = free_ports(1)
    for mode in ([], ["--cluster"]):
        done = run_bench(sessionfed_bin, *mode, "--port", str(port), "--requests", "10")
        assert done.returncode == 1, (mode, done)
        assert "Connection refused" in done.stderr and "crashed" not in done.stderr, (mode, done.stderr[-2000:])
