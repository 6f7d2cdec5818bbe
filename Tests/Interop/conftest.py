"""Fixtures that run a real `sessionfed node` process for the interop stories.

The binary comes from SESSIONFED_BIN (scripts/interop/run.sh sets it). Every node
listens on loopback ports picked fresh for it, gets its own topology file in a
temporary folder, and is stopped with SIGTERM at teardown: it must exit 0 within
10 s, otherwise it is killed and the test run fails.
"""

import os
import signal
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

INTEROP_DIR = Path(__file__).resolve().parent
STARTUP_DEADLINE_S = 20.0
SHUTDOWN_DEADLINE_S = 10.0


def free_ports(count):
    """Distinct free loopback TCP ports: bind port 0 (all at once), then close."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def wait_until(predicate, deadline_s, interval_s=0.02, what="condition"):
    """Short polling loop with a deadline; returns the predicate's truthy value."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(interval_s)


def raw_exchange(port, *commands, timeout=10.0):
    """Send RESP2 commands on one fresh connection and return each reply's first line.

    Used where a test needs the server's exact bytes (error texts), which client
    libraries reshape (redis-py strips "ERR ", for instance). Only simple replies
    (+, -, :) and bulk headers are returned as their first line; bulk payloads are
    returned in full as bytes.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        payload = b""
        for command in commands:
            parts = [part if isinstance(part, bytes) else str(part).encode() for part in command]
            payload += b"*%d\r\n" % len(parts)
            for part in parts:
                payload += b"$%d\r\n%s\r\n" % (len(part), part)
        sock.sendall(payload)
        reader = sock.makefile("rb")
        replies = []
        for _ in commands:
            replies.append(_read_reply(reader))
        return replies


def _read_reply(reader):
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise AssertionError(f"connection closed mid-reply: {line!r}")
    line = line[:-2]
    kind = line[:1]
    if kind in (b"+", b"-", b":"):
        return line.decode()
    if kind == b"$":
        length = int(line[1:])
        if length < 0:
            return None
        data = reader.read(length + 2)
        return data[:-2]
    if kind == b"*":
        count = int(line[1:])
        if count < 0:
            return None
        return [_read_reply(reader) for _ in range(count)]
    raise AssertionError(f"unexpected RESP2 reply line {line!r}")


def _yaml_string(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SessionfedNode:
    """One `sessionfed node` process on fresh loopback ports."""

    def __init__(self, binary, workdir, password=None, users=None, threads=1):
        self.binary = binary
        self.threads = threads
        self.workdir = Path(workdir)
        self.password = password
        self.users = dict(users or {})
        self.host = "127.0.0.1"
        self.port, self.peer_port, self.federation_port, self.admin_port = free_ports(4)
        self.topology = self.workdir / "topology.yaml"
        self.log_path = self.workdir / "node.log"
        self.process = None
        self._log = None

    def _topology_text(self):
        lines = [
            "federation: interop",
            "topologyVersion: 1",
            "defaults:",
            "  backupCount: 0",
            f"  threads: {self.threads}",
        ]
        if self.password is not None or self.users:
            lines.append("auth:")
            if self.password is not None:
                lines.append(f"  password: {_yaml_string(self.password)}")
            if self.users:
                lines.append("  users:")
                for name, password in self.users.items():
                    lines.append(f"    {name}: {_yaml_string(password)}")
        lines += [
            "sites:",
            "  - name: local",
            "    id: 1",
            "    role: active",
            "    nodes:",
            "      - name: local-1",
            f"        client: 127.0.0.1:{self.port}",
            f"        peer: 127.0.0.1:{self.peer_port}",
            f"        federation: 127.0.0.1:{self.federation_port}",
            f"        admin: 127.0.0.1:{self.admin_port}",
        ]
        return "\n".join(lines) + "\n"

    def start(self):
        self.topology.write_text(self._topology_text())
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [self.binary, "node", "--topology", str(self.topology), "--node", "local-1"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._accepts, STARTUP_DEADLINE_S, what=f"sessionfed to accept on port {self.port}")
        except BaseException:
            self._kill()
            raise AssertionError(f"sessionfed did not start; log:\n{self.log()}")
        return self

    def _accepts(self):
        if self.process.poll() is not None:
            raise AssertionError(
                f"sessionfed exited with {self.process.returncode} before listening; log:\n{self.log()}"
            )
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self):
        """SIGTERM; the node must exit 0 within 10 s (else SIGKILL and fail)."""
        if self.process is None:
            return
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=SHUTDOWN_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self._kill()
                pytest.fail(f"sessionfed did not exit within {SHUTDOWN_DEADLINE_S}s of SIGTERM; log:\n{self.log()}")
            assert code == 0, f"sessionfed exited with {code} after SIGTERM; log:\n{self.log()}"
        finally:
            self._kill()

    # Convenience for the stories.
    def redis(self, **kwargs):
        import redis

        # redis-py 8 defaults to RESP3; callers pass protocol=2 for RESP2.
        options = {"host": self.host, "port": self.port, "socket_timeout": 10, "decode_responses": True}
        if self.password is not None and "password" not in kwargs:
            options["password"] = self.password
        options.update(kwargs)
        return redis.Redis(**options)


@pytest.fixture(scope="session")
def sessionfed_bin():
    binary = os.environ.get("SESSIONFED_BIN")
    if not binary:
        pytest.fail("SESSIONFED_BIN must name the sessionfed binary (scripts/interop/run.sh sets it)")
    binary = str(Path(binary).resolve())
    if not os.access(binary, os.X_OK):
        pytest.fail(f"SESSIONFED_BIN={binary} is not an executable file")
    return binary


@pytest.fixture(scope="module")
def start_node(sessionfed_bin, tmp_path_factory):
    """Factory: start_node(password=None, users=None, threads=1) -> a running SessionfedNode.

    Every node started through it is stopped (and checked) when the module ends.
    """
    nodes = []

    def start(password=None, users=None, threads=1):
        node = SessionfedNode(sessionfed_bin, tmp_path_factory.mktemp("sessionfed"), password, users, threads)
        nodes.append(node)
        return node.start()

    yield start
    failures = []
    for node in reversed(nodes):
        try:
            node.stop()
        except BaseException as error:  # keep stopping the others
            failures.append(error)
    if failures:
        raise failures[0]


@pytest.fixture(scope="module")
def node(start_node):
    """A node without authentication, shared by one test module."""
    return start_node()


@pytest.fixture
def site_factory(sessionfed_bin, tmp_path_factory):
    """Makes sites of several real nodes (`cluster.Site`); stops them all at the end, each
    of which must exit 0 on SIGTERM."""
    from cluster import Site

    sites = []

    def make(**options):
        site = Site(sessionfed_bin, tmp_path_factory.mktemp("site"), **options)
        sites.append(site)
        return site

    def make_federated(**options):
        from cluster import federated_sites

        made = federated_sites(sessionfed_bin, tmp_path_factory.mktemp("sites"), **options)
        sites.extend(made)
        return made

    make.federated = make_federated
    yield make
    failures = []
    for site in sites:
        failures += site.stop_all()
    assert not failures, "\n".join(failures)


@pytest.fixture
def federation_factory(sessionfed_bin, tmp_path_factory):
    """Three-site federations of one node per site (federation.py), stopped at teardown."""
    from federation import Federation

    federations = []

    def make(**options):
        federation = Federation(sessionfed_bin, tmp_path_factory.mktemp("federation"), **options)
        federations.append(federation)
        return federation

    yield make
    failures = []
    for federation in federations:
        failures += federation.stop_all()
    assert not failures, "\n".join(failures)
