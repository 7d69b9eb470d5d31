"""Certificates read in one place (`stackgen/live/certificates.py`): a served certificate, fetched over TLS
from loopback and parsed with `cryptography`, agrees with CPython's own decoder."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime

import pytest

from stackgen.live import certificates
from stackgen.live.probes import ForbiddenTarget


def make_cert(tmp_path, days: int = 30, serial: str = "0x00ff0a1b2c3d4e", names: str = "DNS:nodered.example.org"):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", str(days), "-subj", "/CN=nodered.example.org", "-set_serial", serial,
         *(["-addext", f"subjectAltName={names}"] if names else [])],
        check=True, capture_output=True,
    )
    return cert, key


def test_parse_agrees_with_cpython(tmp_path):
    cert, _ = make_cert(tmp_path, names="DNS:nodered.example.org,DNS:*.example.org")
    parsed = certificates.parse_der(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    decoded = ssl._ssl._test_decode_cert(str(cert))
    assert parsed.serial == decoded["serialNumber"] == "FF0A1B2C3D4E"
    assert parsed.serial_number == 0xFF0A1B2C3D4E
    assert parsed.not_after == ssl.cert_time_to_seconds(decoded["notAfter"])
    assert parsed.names == ("nodered.example.org", "*.example.org")
    assert 29 < parsed.days_left() <= 30


def test_parse_without_names_and_past_2049(tmp_path):
    cert, _ = make_cert(tmp_path, days=365 * 40, names="")
    parsed = certificates.parse_der(ssl.PEM_cert_to_DER_cert(cert.read_text()))
    assert parsed.names == ()
    assert datetime.fromtimestamp(parsed.not_after, UTC).year >= 2050


@pytest.mark.parametrize(("raw", "expected"), [("a1b", "0A1B"), ("0x00FF", "FF"), ("0", "00"), ("DEADBEEF", "DEADBEEF")])
def test_serial_normalisation(raw, expected):
    assert certificates.normalise_serial(raw) == expected


def test_fetch_reads_the_served_certificate_unverified(tmp_path):
    cert, key = make_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        served = certificates.fetch("127.0.0.1", port, "nodered.example.org")
    finally:
        thread.join(5)
        listener.close()
    assert served == certificates.parse_der(ssl.PEM_cert_to_DER_cert(cert.read_text()))


def test_fetch_refuses_an_address_we_do_not_own():
    with pytest.raises(ForbiddenTarget):
        certificates.fetch("192.0.2.1", 443, "example.org")
