"""A local federation of real `sessionfed node` processes for the federation stories.

Every site has one node on fresh loopback ports. With `tls=True` the certificates come
from `sessionfed certs init`. With `proxies=True` every directed link runs through a
`wan-proxy` (delay, cut, blackhole, restore; the project's test tool, built next to `sessionfed`): each node gets its own topology
file in which the other sites' federation addresses are the proxies in front of them.
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_ports, wait_until

SITES = ("seoul", "tokyo", "frankfurt")


def node_lines(name, ports, federation_port=None, voter=True):
    """One node's entry in a topology file's `nodes:` list."""
    return [
        f"      - name: {name}",
        f"        client: 127.0.0.1:{ports['client']}",
        f"        peer: 127.0.0.1:{ports['peer']}",
        f"        federation: 127.0.0.1:{federation_port or ports['federation']}",
        f"        admin: 127.0.0.1:{ports['admin']}",
    ] + ([] if voter else ["        voter: false"])


def run_cli(binary, *arguments, check=True):
    """Runs a `sessionfed` subcommand; raises with its output when it fails and `check`."""
    result = subprocess.run([binary, *arguments], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"sessionfed {' '.join(arguments)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class Process:
    def __init__(self, argv, log_path):
        self.argv = argv
        self.log_path = Path(log_path)
        self.handle = None
        self._log = None
        self.terminated = False

    def start(self):
        self._log = open(self.log_path, "ab")
        self.terminated = False
        self.handle = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def running(self):
        return self.handle is not None and self.handle.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self):
        """SIGKILL: no shutdown, no flush (a crash)."""
        if self.running():
            self.handle.send_signal(signal.SIGKILL)
            self.handle.wait()
        self._close()

    def terminate(self):
        """SIGTERM without waiting (a node then drains before it exits)."""
        if self.running():
            self.handle.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, deadline_s=10.0):
        """SIGTERM; returns the exit code (kills after the deadline and returns None)."""
        if not self.running():
            self._close()
            return self.handle.returncode if self.handle else 0
        if not self.terminated:
            # (A second SIGTERM would cut a drain short.)
            self.handle.send_signal(signal.SIGTERM)
        try:
            return self.handle.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._close()

    def _close(self):
        if self._log is not None:
            self._log.close()
            self._log = None


def wan_proxy_binary(sessionfed_binary):
    """The `wan-proxy` test tool: WAN_PROXY_BIN, else the one built next to `sessionfed`."""
    path = Path(os.environ.get("WAN_PROXY_BIN") or Path(sessionfed_binary).with_name("wan-proxy"))
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"no wan-proxy at {path}: build it with the same configuration as sessionfed "
            "(`swift build --product wan-proxy`, adding `-c release --scratch-path ...` as used), "
            "or set WAN_PROXY_BIN"
        )
    return str(path)


class Federation:
    def __init__(self, binary, workdir, tls=True, proxies=False, delay_ms=0, defaults=None, federation="interop-federation", roles=None):
        """`roles`: site name -> `active` or `passive` (default: every site active)."""
        self.binary = binary
        self.roles = roles or {}
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.proxies = proxies
        self.federation = federation
        self.defaults = {"partitions": 16, "backupCount": 0, "batchIntervalMilliseconds": 5, "startupSyncTimeoutMilliseconds": 30000}
        self.defaults.update(defaults or {})
        # All in one call: ports taken in separate calls can repeat.
        pairs = [(a, b) for a in SITES for b in SITES if a != b] if proxies else []
        ports = free_ports(4 * len(SITES) + 2 * len(pairs))
        self.ports = {site: dict(zip(("client", "peer", "federation", "admin"), ports[4 * index:4 * index + 4])) for index, site in enumerate(SITES)}
        spare = ports[4 * len(SITES):]
        self.proxy_ports = {pair: {"listen": spare[2 * index], "control": spare[2 * index + 1]} for index, pair in enumerate(pairs)}
        self.nodes = {}
        self.proxy_processes = {}
        self.topology = self.workdir / "topology.yaml"
        self.topology.write_text(self.topology_text())
        if tls:
            self.run_cli("certs", "init", "--topology", str(self.topology), "--out", str(self.workdir / "certs"))
        for site in SITES:
            (self.workdir / f"topology-{site}.yaml").write_text(self.topology_text(seen_from=site))
        if proxies:
            for (a, b), ports in self.proxy_ports.items():
                argv = [
                    wan_proxy_binary(binary), "--listen", f"127.0.0.1:{ports['listen']}",
                    "--target", f"127.0.0.1:{self.ports[b]['federation']}",
                    "--control", f"127.0.0.1:{ports['control']}", "--delay-ms", str(delay_ms),
                ]
                process = Process(argv, self.workdir / f"proxy-{a}-{b}.log").start()
                self.proxy_processes[(a, b)] = process
                wait_until(lambda p=ports["control"]: self._accepts(p), 10, what=f"proxy {a}->{b}")

    def topology_text(self, seen_from=None):
        lines = [f"federation: {self.federation}", "topologyVersion: 1", "defaults:"]
        lines += [f"  {key}: {value}" for key, value in self.defaults.items()]
        lines.append("links: mesh")
        if self.tls:
            lines += ["tls:", "  ca: certs/ca.pem", "  directory: certs"]
        lines.append("sites:")
        for index, site in enumerate(SITES):
            ports = self.ports[site]
            federation = ports["federation"]
            if seen_from is not None and seen_from != site and self.proxies:
                federation = self.proxy_ports[(seen_from, site)]["listen"]
            lines += [f"  - name: {site}", f"    id: {index + 1}", f"    role: {self.roles.get(site, 'active')}", "    nodes:"]
            lines += node_lines(f"{site}-1", ports, federation)
        return "\n".join(lines) + "\n"

    def run_cli(self, *arguments, check=True):
        return run_cli(self.binary, *arguments, check=check)

    # Nodes

    def start(self, site, wait_healthy=True):
        argv = [self.binary, "node", "--topology", str(self.workdir / f"topology-{site}.yaml"), "--node", f"{site}-1"]
        process = Process(argv, self.workdir / f"{site}.log").start()
        self.nodes[site] = process
        wait_until(lambda: self._listening(site), 20, what=f"{site} to listen")
        if wait_healthy:
            wait_until(lambda: self.healthy(site), 30, what=f"{site} to report healthy")
        return process

    def start_all(self):
        for site in SITES:
            self.start(site, wait_healthy=False)
        for site in SITES:
            wait_until(lambda s=site: self.healthy(s), 30, what=f"{site} to report healthy")

    def _listening(self, site):
        process = self.nodes[site]
        if not process.running():
            raise AssertionError(f"{site} exited with {process.handle.returncode}; log:\n{process.log()}")
        return self._accepts(self.ports[site]["client"])

    @staticmethod
    def _accepts(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self, site):
        self.nodes[site].kill()

    def stop_all(self):
        """SIGTERM every node (each must exit 0) and proxy; returns failure messages."""
        failures = []
        for site, process in self.nodes.items():
            code = process.stop()
            if code != 0 and code != -signal.SIGKILL:
                failures.append(f"{site} exited with {code} after SIGTERM; log tail:\n{process.log()[-3000:]}")
        for process in self.proxy_processes.values():
            process.kill()
        return failures

    def log(self, site):
        return self.nodes[site].log()

    # Clients and state

    def redis(self, site, **kwargs):
        import redis

        options = {"host": "127.0.0.1", "port": self.ports[site]["client"], "socket_timeout": 10, "decode_responses": True}
        options.update(kwargs)
        return redis.Redis(**options)

    def http(self, site, path):
        url = f"http://127.0.0.1:{self.ports[site]['admin']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def healthy(self, site):
        try:
            status, _ = self.http(site, "/healthz")
        except OSError:
            return False
        return status == 200

    def status(self, site):
        status, body = self.http(site, "/status")
        assert status == 200, f"/status of {site} answered {status}"
        return json.loads(body)

    def link(self, site, to):
        for link in self.status(site)["federationLinks"]:
            if link["site"] == to:
                return link
        raise AssertionError(f"{site} has no link to {to}")

    def proxy(self, a, b, command):
        with socket.create_connection(("127.0.0.1", self.proxy_ports[(a, b)]["control"]), timeout=5) as sock:
            sock.sendall(command.encode() + b"\n")
            answer = sock.makefile("rb").readline().decode().strip()
        assert answer.startswith("ok"), f"proxy {a}->{b} '{command}': {answer}"
        return answer

    def cut(self, a, b):
        self.proxy(a, b, "cut")
        self.proxy(b, a, "cut")

    def restore(self, a, b):
        self.proxy(a, b, "restore")
        self.proxy(b, a, "restore")

    def quiet(self):
        """Every link connected with nothing unacknowledged, and equal Merkle roots."""
        statuses = [self.status(site) for site in SITES]
        for status in statuses:
            for link in status["federationLinks"]:
                if not link["connected"] or link["needsResync"] or link["lagDeltas"] != 0 or link["resyncInProgress"]:
                    return False
        return len({status["merkleRoot"] for status in statuses}) == 1

    def wait_quiet(self, deadline_s=30):
        try:
            wait_until(self.quiet, deadline_s, interval_s=0.1, what="the federation to converge")
        except AssertionError:
            report = self.run_cli("status", "--topology", str(self.topology), check=False).stdout
            raise AssertionError(f"the federation did not converge within {deadline_s}s:\n{report}")

    def dump(self, site):
        """Every visible key with its type, value and absolute expiry (ms)."""
        client = self.redis(site)
        data = {}
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == "hash":
                value = client.hgetall(key)
            elif kind == "set":
                value = sorted(client.smembers(key))
            elif kind == "string":
                value = client.get(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                continue
            data[key] = (kind, value, client.pexpiretime(key))
        return data
