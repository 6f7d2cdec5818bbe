"""One site of several real `sessionfed node` processes on loopback, for control-plane stories.

Every node gets fresh loopback ports; with `tls=True` the peer connections use mutual TLS
with certificates from `sessionfed certs init`. Nodes can be killed (SIGKILL), frozen
(SIGSTOP) and thawed (SIGCONT); `/status` shows each node's view of the control plane.
"""

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_ports, wait_until
from federation import Process, node_lines, run_cli


def topology_text(federation, defaults, tls, sites, version=1):
    lines = [f"federation: {federation}", f"topologyVersion: {version}", "defaults:"]
    lines += [f"  {key}: {value}" for key, value in defaults.items()]
    if tls:
        lines += ["tls:", "  ca: certs/ca.pem", "  directory: certs"]
    lines += ["sites:"]
    for site in sites:
        lines += site.site_lines()
    return "\n".join(lines) + "\n"


def federated_sites(binary, workdir, names=("seoul", "lisbon"), nodes=3, tls=True, defaults=None):
    """Sites of several nodes each in one federation (a mesh), sharing one topology file."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    topology = workdir / "topology.yaml"
    merged = dict(SITE_DEFAULTS)
    merged.update({"batchIntervalMilliseconds": 5})
    merged.update(defaults or {})
    ports = free_ports(4 * nodes * len(names))
    sites = [
        Site(binary, workdir, nodes, tls, merged, name=name, site_id=index + 1, topology=topology, ports=ports[4 * nodes * index:4 * nodes * (index + 1)])
        for index, name in enumerate(names)
    ]
    topology.write_text(topology_text("federated-site-stories", merged, tls, sites))
    if tls:
        run_cli(binary, "certs", "init", "--topology", str(topology), "--out", str(workdir / "certs"))
    return sites


def moved_away(control, node):
    """Whether this control-plane view has `node` down and none of its copies left."""
    down = any(member["name"] == node and member["state"] == "down" for member in control["members"])
    return down and all(row["primary"] not in (None, node) and node not in row["backups"] for row in control["partitionTable"])


SITE_DEFAULTS = {"partitions": 16, "backupCount": 1, "electionTimeoutMilliseconds": 1000, "failureTimeoutMilliseconds": 1000}


class Site:
    def __init__(self, binary, workdir, nodes=3, tls=True, defaults=None, name="seoul", site_id=1, topology=None, ports=None, non_voters=0):
        """`topology`: a file shared with other sites (see `federated_sites`), written by the
        caller; without it the site writes its own, alone in it. `ports`: four per node, taken
        in one `free_ports` call with the other sites' (ports taken in separate calls can
        repeat)."""
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.name = name
        self.site_id = site_id
        self.names = [f"{name}-{index + 1}" for index in range(nodes)]
        # The last `non_voters` nodes follow the control plane without voting: the site
        # bootstraps without them (a node added for scale-out).
        self.non_voters = set(self.names[len(self.names) - non_voters:]) if non_voters else set()
        self.defaults = dict(SITE_DEFAULTS)
        self.defaults.update(defaults or {})
        ports = list(ports or free_ports(4 * nodes))
        self.ports = {node: dict(zip(("client", "peer", "federation", "admin"), ports[4 * index:4 * index + 4])) for index, node in enumerate(self.names)}
        self.processes = {}
        self.frozen = set()
        if topology is not None:
            self.topology = topology
            return
        self.topology = self.workdir / "topology.yaml"
        self.topology.write_text(topology_text("control-plane-stories", self.defaults, tls, [self]))
        if tls:
            self.run_cli("certs", "init", "--topology", str(self.topology), "--out", str(self.workdir / "certs"))

    def site_lines(self, listed=None):
        lines = [f"  - name: {self.name}", f"    id: {self.site_id}", "    role: active", "    nodes:"]
        for node in listed or self.names:
            lines += node_lines(node, self.ports[node], voter=node not in self.non_voters)
        return lines

    def write_topology(self, version, listed):
        """Another version of this site's own topology listing only `listed` (same ports and
        certificates); returns its path, for `start(node, topology=...)`."""
        path = self.workdir / f"topology-v{version}.yaml"
        site = self

        class Listed:
            def site_lines(self):
                return site.site_lines(listed)

        path.write_text(topology_text("control-plane-stories", self.defaults, self.tls, [Listed()], version=version))
        return path

    def run_cli(self, *arguments, check=True):
        return run_cli(self.binary, *arguments, check=check)

    # Processes

    def start(self, node, topology=None):
        argv = [self.binary, "node", "--topology", str(topology or self.topology), "--node", node]
        self.processes[node] = Process(argv, self.workdir / f"{node}.log").start()
        wait_until(lambda: self._answers(node), 20, what=f"{node} to serve /status")

    def start_all(self):
        for node in self.names:
            self.start(node)

    def _answers(self, node):
        process = self.processes[node]
        if not process.running():
            raise AssertionError(f"{node} exited with {process.handle.returncode}; log:\n{process.log()}")
        return self.control(node) is not None

    def kill(self, node):
        self.processes[node].kill()

    def freeze(self, node):
        self.processes[node].handle.send_signal(signal.SIGSTOP)
        self.frozen.add(node)

    def thaw(self, node):
        self.processes[node].handle.send_signal(signal.SIGCONT)
        self.frozen.discard(node)

    def stop_all(self):
        """SIGTERM every node (each must exit 0); returns failure messages."""
        failures = []
        for node in list(self.frozen):
            self.thaw(node)
        # All at once, as a whole deployment is deleted: every node drains, finds every other
        # one leaving too, and exits promptly.
        for process in self.processes.values():
            process.terminate()
        for node, process in self.processes.items():
            code = process.stop()
            if code != 0 and code != -signal.SIGKILL:
                failures.append(f"{node} exited with {code} after SIGTERM; log tail:\n{process.log()[-3000:]}")
        return failures

    def log(self, node):
        return self.processes[node].log()

    # State

    def status(self, node, timeout=1.0):
        url = f"http://127.0.0.1:{self.ports[node]['admin']}/status"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return json.loads(response.read())
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def control(self, node, timeout=1.0):
        status = self.status(node, timeout)
        # A node that has just started serves /status before its control plane runs.
        return status.get("controlPlane") if status else None

    def acting_primaries(self, nodes):
        """Partitions the given nodes act as primary for under a valid lease, summed."""
        return sum((self.control(node) or {}).get("actingPrimaries", 0) for node in nodes)

    def running(self):
        return [node for node in self.names if node in self.processes and self.processes[node].running() and node not in self.frozen]

    def leader_view(self, among=None):
        """The control plane of a node (among `among`) that says it is the leader, or None."""
        for node in among or self.running():
            control = self.control(node)
            if control and control["role"] == "leader":
                return control
        return None

    def converged(self):
        """One leader that every running node follows at the same commit index, every
        running node an up member, every partition with a primary and no degraded partition.
        Returns the leader's view it checked (or False)."""
        views = {node: self.control(node) for node in self.running()}
        if any(view is None for view in views.values()):
            return False
        leaders = [node for node, view in views.items() if view["role"] == "leader"]
        if len(leaders) != 1:
            return False
        leader = views[leaders[0]]
        states = {member["name"]: member["state"] for member in leader["members"]}
        if any(states.get(node) != "up" for node in views):
            return False
        partitions = leader["partitions"]
        if partitions["withoutPrimary"] or partitions["degraded"]:
            return False
        if all(view.get("leader") == leaders[0] and view["commitIndex"] == leader["commitIndex"] for view in views.values()):
            return leader
        return False

    def wait_converged(self, deadline_s=20):
        try:
            return wait_until(self.converged, deadline_s, interval_s=0.05, what="the site's control plane to converge")
        except AssertionError:
            report = self.run_cli("status", "--topology", str(self.topology), check=False).stdout
            raise AssertionError(f"the control plane did not converge within {deadline_s}s:\n{report}")

    def control_eventually(self, node, deadline_s=5):
        """The node's control-plane view, retrying while /status does not answer in time."""
        return wait_until(lambda: self.control(node), deadline_s, what=f"{node} to answer /status")
