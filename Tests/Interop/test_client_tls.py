"""Client TLS (`clientTLS:`, Redis's `tls-port`): redis-py with `ssl=True` and `redis-cli
--tls` talk to the node's TLS port with a client certificate the configured CA signed; AUTH
works over it; a certificate from another CA, no certificate, and plaintext on the TLS port
are all refused without running anything. Every story runs twice: with the TLS sockets on the
loop that runs commands (`threads: 1`) and on two loops of their own (`threads: 3`)."""

import socket
import ssl
import subprocess

import pytest
import redis

from conftest import free_ports, wait_until
from federation import Process, run_cli


class TLSNode:
    def __init__(self, binary, workdir, password="s3cret", threads=1):
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.port, peer, federation, admin, self.tls_port = free_ports(5)
        self.topology = workdir / "topology.yaml"
        self.topology.write_text("\n".join([
            "federation: client-tls", "topologyVersion: 1", "defaults:", "  backupCount: 0", "  clusterClients: true", f"  threads: {threads}",
            "clientTLS:", "  directory: certs", "  ca: certs/ca.pem",
            "auth:", f"  password: {password}",
            "sites:", "  - name: local", "    id: 1", "    role: active", "    nodes:",
            "      - name: local-1", f"        client: 127.0.0.1:{self.port}", f"        peer: 127.0.0.1:{peer}",
            f"        federation: 127.0.0.1:{federation}", f"        admin: 127.0.0.1:{admin}", f"        clientTLS: 127.0.0.1:{self.tls_port}",
        ]) + "\n")
        self.certs = workdir / "certs"
        run_cli(binary, "certs", "init", "--topology", str(self.topology), "--out", str(self.certs))
        # Another CA's certificate, for the refusal.
        other = workdir / "other"
        other.mkdir()
        (other / "topology.yaml").write_text(self.topology.read_text())
        run_cli(binary, "certs", "init", "--topology", str(other / "topology.yaml"), "--out", str(other / "certs"))
        self.foreign = other / "certs"
        self.process = Process([binary, "node", "--topology", str(self.topology), "--node", "local-1"], workdir / "node.log").start()
        wait_until(self.accepts, 20, what="the TLS port to accept")

    def accepts(self):
        assert self.process.running(), self.process.log()
        try:
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.5):
                return True
        except OSError:
            return False

    def client(self, certificate="local-1", directory=None, **options):
        directory = directory or self.certs
        settings = {
            "host": "127.0.0.1", "port": self.tls_port, "ssl": True, "ssl_ca_certs": str(self.certs / "ca.pem"),
            "password": self.password, "socket_timeout": 5, "decode_responses": True,
        }
        if certificate:
            settings.update(ssl_certfile=str(directory / f"{certificate}.pem"), ssl_keyfile=str(directory / f"{certificate}.key"))
        settings.update(options)
        return redis.Redis(**settings)


@pytest.fixture(scope="module", params=[1, 3], ids=["threads-1", "threads-3"])
def tls_node(sessionfed_bin, tmp_path_factory, request):
    node = TLSNode(sessionfed_bin, tmp_path_factory.mktemp("client-tls"), threads=request.param)
    yield node
    code = node.process.stop()
    assert code == 0, f"the node exited {code} after SIGTERM:\n{node.process.log()[-3000:]}"


def test_redis_py_over_tls_with_a_client_certificate_and_auth(tls_node):
    client = tls_node.client()
    assert client.ping()
    assert client.set("session:tls", "over TLS")
    assert client.get("session:tls") == "over TLS"
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError), match="(?i)auth"):
        tls_node.client(password=None).get("session:tls")
    # The plaintext port serves the same data.
    plain = redis.Redis(host="127.0.0.1", port=tls_node.port, password=tls_node.password, decode_responses=True)
    assert plain.get("session:tls") == "over TLS"


def test_redis_cli_over_tls(tls_node):
    base = ["redis-cli", "-p", str(tls_node.tls_port), "--tls", "--cacert", str(tls_node.certs / "ca.pem"),
            "--cert", str(tls_node.certs / "local-1.pem"), "--key", str(tls_node.certs / "local-1.key"), "--no-auth-warning", "-a", tls_node.password]
    assert subprocess.run(base + ["SET", "cli:tls", "1"], capture_output=True, text=True, timeout=20).stdout.strip() == "OK"
    assert subprocess.run(base + ["GET", "cli:tls"], capture_output=True, text=True, timeout=20).stdout.strip() == "1"


def test_wrong_or_missing_client_certificate_refused(tls_node):
    with pytest.raises(redis.exceptions.ConnectionError):
        tls_node.client(directory=tls_node.foreign).ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        tls_node.client(certificate=None).ping()
    assert tls_node.client().ping(), "the node serves the next client"


def test_plaintext_on_the_tls_port_refused_and_nothing_runs(tls_node):
    with socket.create_connection(("127.0.0.1", tls_node.tls_port), timeout=5) as connection:
        connection.sendall(b"*3\r\n$3\r\nSET\r\n$9\r\nplaintext\r\n$1\r\nx\r\n")
        try:
            answer = connection.recv(1024)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    assert b"+OK" not in answer
    assert tls_node.client().get("plaintext") is None


def test_cluster_slots_over_tls_names_the_tls_port(tls_node):
    """A cluster client that came over TLS must be sent to TLS ports, one over plaintext to
    plaintext ports (Redis's tls-cluster): each connection is given its own kind."""
    over_tls = tls_node.client().execute_command("CLUSTER SLOTS")
    assert [(first, last, int(primary[1])) for first, last, primary, *_ in over_tls] == [(0, 16383, tls_node.tls_port)]
    plain = redis.Redis(host="127.0.0.1", port=tls_node.port, password=tls_node.password, decode_responses=True)
    assert [int(primary[1]) for _, _, primary, *_ in plain.execute_command("CLUSTER SLOTS")] == [tls_node.port]
