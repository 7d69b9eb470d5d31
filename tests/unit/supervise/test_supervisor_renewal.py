"""Renewal logic with a fake engine: outcomes, the explicit reload fallback, and the DER parser (no engine)."""

from __future__ import annotations

import json
import ssl
import subprocess
from datetime import UTC, datetime

import pytest

from stackgen.operate import renewal
from tests.golden import golden_stack
from tests.support.fakes import FakeContainer, FakeEngine


def make_cert(tmp_path, days: int = 30, serial: str = "0x0a1b2c3d4e"):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", str(days), "-subj", "/CN=nodered.example.org", "-set_serial", serial],
        check=True, capture_output=True,
    )
    return cert


def test_der_parser_agrees_with_openssl_and_ssl(tmp_path):
    cert = make_cert(tmp_path, days=30, serial="0x00ff0a1b2c3d4e")
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    serial, not_after = renewal.parse_certificate(der)
    decoded = ssl._ssl._test_decode_cert(str(cert))  # CPython's own decoder, as a reference
    assert serial == decoded["serialNumber"] == "FF0A1B2C3D4E"
    assert not_after == ssl.cert_time_to_seconds(decoded["notAfter"])
    assert 29 < (not_after - datetime.now(UTC).timestamp()) / 86400 <= 30


def test_der_parser_generalized_time(tmp_path):
    cert = make_cert(tmp_path, days=365 * 40)  # beyond 2049: GeneralizedTime
    serial, not_after = renewal.parse_certificate(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert datetime.fromtimestamp(not_after, UTC).year >= 2050


@pytest.mark.parametrize(("raw", "expected"), [("a1b", "0A1B"), ("0x00FF", "FF"), ("0", "00"), ("DEADBEEF", "DEADBEEF")])
def test_serial_normalisation(raw, expected):
    assert renewal.normalise_serial(raw) == expected


# --- renew() against a fake engine ---------------------------------------------------------


class World:
    """A sidecar whose renew can succeed or fail, files that can be good or bad, an edge that may reload."""

    def __init__(self, monkeypatch, *, renew_code=0, renews=True, key_matches=True, picks_up=True, reload_code=0, reload_works=True):
        self.files_serial = "0A"
        self.served_serial = "0A"
        self.renew_code = renew_code
        self.renews = renews
        self.key_matches = key_matches
        self.picks_up = picks_up
        self.reload_code = reload_code
        self.reload_works = reload_works
        self.certbot = FakeContainer("certbot", exec=self.certbot_exec)
        self.edge = FakeContainer("edge", exec=self.edge_exec)
        self.engine = FakeEngine([self.certbot, self.edge], project=STACK.project)
        monkeypatch.setattr(renewal, "served_certificate", self.served)
        monkeypatch.setattr(renewal.time, "sleep", lambda s: None)

    def served(self, engine, stack, project):
        if self.picks_up:
            self.served_serial = self.files_serial
        return renewal.ServedCert(self.served_serial, 2_000_000_000.0, "127.0.0.1", 8443)

    def certbot_exec(self, command):
        if command[0] == "python3":
            return 0, json.dumps({"serial": self.files_serial, "not_after": 2_000_000_000.0, "names": ["nodered.example.org", "flows.example.org"],
                                  "key_matches": self.key_matches}), ""
        if self.renew_code:
            return self.renew_code, "", "Failed to renew certificate nodered.example.org with error: connection refused"
        if self.renews:
            self.files_serial = "0B"
        return 0, "Congratulations, all renewals succeeded", ""

    def edge_exec(self, command):
        if self.reload_code == 0 and self.reload_works:
            self.served_serial = self.files_serial
        return self.reload_code, "", "" if self.reload_code == 0 else "Error: loading new config: certificate is invalid"


STACK = golden_stack("caddy", "certbot-http01")


def run(world, **kw):
    return renewal.renew(world.engine, STACK, STACK.project, reload_wait=0.01, **kw)


def test_renewed_and_served_by_itself(monkeypatch):
    world = World(monkeypatch)
    outcome = run(world, force=True)
    assert outcome.status == "renewed" and outcome.reloaded == "by-itself"
    assert outcome.before.serial == "0A" and outcome.after.serial == "0B"
    renew = [c for c in world.certbot.calls if c[0] == "certbot"][0]
    assert "--force-renewal" in renew and "--no-random-sleep-on-renew" in renew
    assert renew[renew.index("--cert-name") + 1] == "nodered.example.org"
    assert not world.edge.calls


def test_explicit_reload_when_the_edge_did_not_notice(monkeypatch):
    world = World(monkeypatch, picks_up=False)
    outcome = run(world)
    assert outcome.status == "renewed" and outcome.reloaded == "explicit"
    assert world.edge.calls[0][:2] == ["caddy", "reload"] and "--force" in world.edge.calls[0]


def test_failed_reload_keeps_the_old_certificate_and_says_so(monkeypatch):
    world = World(monkeypatch, picks_up=False, reload_code=1)
    outcome = run(world)
    assert outcome.status == "reload_failed"
    assert outcome.after.serial == "0A"
    assert "still serves serial 0A" in outcome.message and "certificate is invalid" in outcome.message


def test_certbot_failure_is_reported_with_the_serial_still_served(monkeypatch):
    world = World(monkeypatch, renew_code=1)
    outcome = run(world, force=True)
    assert outcome.status == "failed"
    assert "connection refused" in outcome.message and "still serves serial 0A" in outcome.message


def test_not_due(monkeypatch):
    world = World(monkeypatch, renews=False)
    assert run(world).status == "not_due"


def test_broken_files_are_not_reloaded(monkeypatch):
    world = World(monkeypatch, key_matches=False, picks_up=False)
    outcome = run(world)
    assert outcome.status == "invalid" and "does not match" in outcome.message
    assert not world.edge.calls


def test_no_sidecar_modes_are_skipped(monkeypatch):
    world = World(monkeypatch)
    stack = golden_stack("caddy", "edge-acme")
    assert renewal.renew(world.engine, stack, stack.project).status == "skipped"


def test_reload_commands():
    assert renewal.reload_command("caddy") == ["caddy", "reload", "--config", "/tmp/stackgen/Caddyfile", "--adapter", "caddyfile", "--force"]
    assert "nginx -e stderr -c /tmp/stackgen/nginx.conf -s reload" in renewal.reload_command("nginx")[2]
    assert renewal.reload_command("traefik") is None
    assert renewal.renew_command(golden_stack("nginx", "internal"), True) == ["python3", "/etc/stackgen/certbot/local_ca.py"]


def test_probe_target_prefers_loopback():
    stack = golden_stack("caddy", "certbot-http01")
    assert renewal.probe_target(None, stack, stack.project) == ("127.0.0.1", 443, [])
    stack.ports.bind_address = "127.0.0.2"
    assert renewal.probe_target(None, stack, stack.project)[0] == "127.0.0.2"
    assert renewal.probe_name(golden_stack("caddy", "certbot-dns01")) == "stackgen-probe.example.org"


def test_the_file_check_runs_in_a_sidecar_like_python(tmp_path):
    """FILE_CHECK is what runs inside the sidecar: run it here against real files (needs cryptography)."""
    pytest.importorskip("cryptography")
    import sys

    live = tmp_path / "live"
    live.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(live / "privkey.pem"),
         "-out", str(live / "fullchain.pem"), "-days", "10", "-subj", "/CN=x", "-addext", "subjectAltName=DNS:x.example.org",
         "-set_serial", "0x1234"],
        check=True, capture_output=True,
    )
    out = subprocess.run([sys.executable, "-c", renewal.FILE_CHECK, str(live)], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["serial"] == "1234" and data["key_matches"] is True and data["names"] == ["x.example.org"]
    assert "BEGIN" not in out, "no key material leaves the sidecar"
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(other)], check=True)
    (live / "privkey.pem").write_bytes(other.read_bytes())
    data = json.loads(subprocess.run([sys.executable, "-c", renewal.FILE_CHECK, str(live)], capture_output=True, text=True).stdout)
    assert data["key_matches"] is False


def test_edge_tls_port_matches_the_renderer():
    from stackgen.generate import render

    assert renewal.HTTPS_INSIDE == render.HTTPS_INSIDE
