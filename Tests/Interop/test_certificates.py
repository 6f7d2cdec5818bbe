"""Certificates: `certs init --ca-key-out` keeps the CA key apart; `certs rotate` issues new
node certificates from the existing CA; SIGHUP makes every node load them while writes go on,
and no federation link drops. `/metrics` shows each certificate's expiry."""

import re
import signal
import threading
import time

import redis

from conftest import wait_until
from federation import SITES, run_cli


def expiry(federation, site, certificate="node"):
    status, body = federation.http(site, "/metrics")
    match = re.search(rf'^sessionfed_certificate_expiry_timestamp_seconds{{certificate="{certificate}"}} (\S+)$', body.decode(), re.M)
    return float(match.group(1)) if match else None


def test_init_keeps_the_ca_key_apart(sessionfed_bin, tmp_path):
    topology = tmp_path / "topology.yaml"
    topology.write_text("\n".join([
        "federation: keys", "topologyVersion: 1", "sites:", "  - name: a", "    id: 1", "    nodes:",
        "      - name: a-1", "        client: 127.0.0.1:1", "        peer: 127.0.0.1:2", "        federation: 127.0.0.1:3", "        admin: 127.0.0.1:4",
    ]) + "\n")
    result = run_cli(sessionfed_bin, "certs", "init", "--topology", str(topology), "--out", str(tmp_path / "certs"), "--ca-key-out", str(tmp_path / "offline" / "ca.key"))
    assert f"wrote the CA private key: {tmp_path / 'offline' / 'ca.key'}" in result.stdout, result.stdout
    assert not (tmp_path / "certs" / "ca.key").exists() and (tmp_path / "offline" / "ca.key").exists()
    assert (tmp_path / "offline" / "ca.key").stat().st_mode & 0o077 == 0, "the CA key is readable by its owner only"
    rotated = run_cli(sessionfed_bin, "certs", "rotate", "--topology", str(topology), "--out", str(tmp_path / "certs"), "--ca-key", str(tmp_path / "offline" / "ca.key"), "--days", "7")
    assert "wrote new certificates and keys for 1 node(s)" in rotated.stdout, rotated.stdout
    refused = run_cli(sessionfed_bin, "certs", "rotate", "--topology", str(topology), "--out", str(tmp_path / "certs"), check=False)
    assert refused.returncode != 0 and "cannot read the CA key" in refused.stderr, refused.stderr


def test_rotate_and_sighup_reload_under_federation_load_drop_no_link(federation_factory):
    federation = federation_factory(proxies=True, delay_ms=5)
    federation.start_all()
    federation.wait_quiet(30)
    errors, written = [], []
    stopping = threading.Event()

    def write():
        client = federation.redis("seoul")
        number = 0
        while not stopping.is_set():
            try:
                client.set(f"rotate:{number}", number)
                written.append(number)
                number += 1
            except redis.exceptions.RedisError as error:
                errors.append(error)
            time.sleep(0.002)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    connects = {(site, other): federation.link(site, other)["statistics"]["connects"] for site in SITES for other in SITES if other != site}
    before = {site: expiry(federation, site) for site in SITES}
    assert all(before.values()), f"/metrics shows the node certificate's expiry: {before}"
    assert expiry(federation, "seoul", "ca")
    run_cli(federation.binary, "certs", "rotate", "--topology", str(federation.topology), "--out", str(federation.workdir / "certs"), "--days", "30")
    for site in SITES:
        federation.nodes[site].handle.send_signal(signal.SIGHUP)
    month = time.time() + 30 * 86_400
    wait_until(lambda: all(abs(expiry(federation, site) - month) < 7_200 for site in SITES), 10, what="every node to load the 30-day certificate")
    time.sleep(1)
    after = {(site, other): federation.link(site, other)["statistics"]["connects"] for site in SITES for other in SITES if other != site}
    assert after == connects, "no federation link was dropped by the reload"
    # A new connection handshakes with the new certificates.
    federation.cut("seoul", "tokyo")
    federation.restore("seoul", "tokyo")
    wait_until(lambda: federation.link("seoul", "tokyo")["statistics"]["connects"] > connects[("seoul", "tokyo")] and federation.link("seoul", "tokyo")["connected"], 20,
               what="seoul to reconnect to tokyo with the new certificate")
    stopping.set()
    writer.join(5)
    assert not errors, errors[:3]
    federation.wait_quiet(30)
    tokyo = federation.redis("tokyo")
    assert tokyo.get(f"rotate:{written[-1]}") == str(written[-1]) and tokyo.get("rotate:0") == "0"
    for site in SITES:
        assert "certificates reloaded" in federation.log(site)
