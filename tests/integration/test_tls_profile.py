"""sslyze against a real TLS server of ours on loopback: the intermediate profile passes, a weakened one fails."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("sslyze")

from stackgen.live import tls_profile  # noqa: E402
from stackgen.live.probes import ForbiddenTarget  # noqa: E402

NAME = "edge.stackgen.test"
INTERMEDIATE = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")


def certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and an ECDSA P-256 leaf for NAME signed by it, 90 days, SHA-256: (CA, chain, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, public_key, signer, *, ca: bool):
        issuer_key = signer.public_key()
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=89 if not ca else 365))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        else:
            builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("stackgen test CA", "stackgen test CA", ca_key.public_key(), ca_key, ca=True)
    leaf = build(NAME, "stackgen test CA", key.public_key(), ca_key, ca=False)
    pem = serialization.Encoding.PEM
    ca_path, chain_path, key_path = directory / "ca.pem", directory / "chain.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    chain_path.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_path, chain_path, key_path


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A loopback TLS listener that completes handshakes and answers one HTTP response."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=31536000\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def context(cert: Path, key: Path, *, minimum=ssl.TLSVersion.TLSv1_2, ciphers: str = INTERMEDIATE, curve: str | None = "prime256v1"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = minimum
    ctx.set_ciphers(ciphers)
    if curve:
        ctx.set_ecdh_curve(curve)
    return ctx


def failed(criteria) -> dict[str, str]:
    return {c.name: c.detail for c in criteria if not c.ok}


def test_intermediate_profile_passes(tmp_path):
    ca, cert, key = certificate(tmp_path)
    with tls_server(context(cert, key)) as port:
        criteria = tls_profile.check("127.0.0.1", port, NAME, ca_file=str(ca), hsts_max_age=31536000, hsts_checked=True)
    assert not failed(criteria), failed(criteria)
    names = {c.name for c in criteria}
    assert {"protocols", "ciphers", "tls13 ciphersuites", "curves", "certificate type", "certificate lifespan", "hsts"} <= names


def test_a_weak_cipher_fails(tmp_path):
    ca, cert, key = certificate(tmp_path)
    with tls_server(context(cert, key, ciphers=INTERMEDIATE + ":ECDHE-ECDSA-AES128-SHA")) as port:
        problems = failed(tls_profile.check("127.0.0.1", port, NAME, ca_file=str(ca)))
    assert "ciphers" in problems and "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" in problems["ciphers"], problems


def test_an_extra_curve_fails(tmp_path):
    ca, cert, key = certificate(tmp_path)
    with tls_server(context(cert, key, curve="secp521r1")) as port:
        problems = failed(tls_profile.check("127.0.0.1", port, NAME, ca_file=str(ca)))
    assert "curves" in problems and "secp521r1" in problems["curves"], problems


def test_old_protocols_fail_where_local_openssl_allows_them(tmp_path):
    ca, cert, key = certificate(tmp_path)
    try:
        ctx = context(cert, key, minimum=ssl.TLSVersion.TLSv1, ciphers=INTERMEDIATE + ":ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("the local OpenSSL cannot enable TLS 1.0")
    with tls_server(ctx) as port:
        problems = failed(tls_profile.check("127.0.0.1", port, NAME, ca_file=str(ca)))
    if "protocols" not in problems:
        pytest.skip("the local OpenSSL refused TLS 1.0/1.1 at run time")
    assert "TLSv1" in problems["protocols"]


def test_only_our_addresses_are_scanned():
    with pytest.raises(ForbiddenTarget):
        tls_profile.observe("192.0.2.10", 443, NAME)


# --- our reference stack (real engine, local twin images) ----------------------------------------------------


def _wait_for_https(stack, seconds: float = 90) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            stack.https("/")
            return
        except (OSError, ssl.SSLError):
            time.sleep(0.5)
    raise AssertionError("the edge did not serve HTTPS again")


@pytest.mark.engine
def test_caddy_stack_meets_the_profile_and_a_weakened_one_does_not(engine, local_images, tmp_path):
    from stackgen.live.checks import verify_live
    from tests.integration.harness import start_stack, stop_stack

    stack = start_stack(engine, tmp_path, "caddy")
    try:
        try:
            stack.network("public").disconnect(stack.pebble)
        except Exception:  # noqa: BLE001 - already gone
            pass
        criteria = tls_profile.check("127.0.0.1", stack.https_port, stack.domain, ca_file=str(stack.issuing_root))
        assert not [c for c in criteria if not c.ok and not c.advisory], criteria

        caddyfile = stack.directory / "edge" / "Caddyfile"
        text = caddyfile.read_text()
        weak = "protocols tls1.2 tls1.3\n\t\tciphers TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n\t\tcurves secp521r1 x25519"
        assert "protocols tls1.2 tls1.3" in text and "\timport security_headers\n" in text
        caddyfile.write_text(text.replace("protocols tls1.2 tls1.3", weak, 1).replace("\timport security_headers\n", "", 1))
        stack.container("edge").restart(timeout=5)
        _wait_for_https(stack)
        result = verify_live(engine, directory=stack.directory, ca_file=str(stack.issuing_root), fail_on=None)
        messages = [f.message for f in result.findings if f.rule == "SG312"]
        assert any("ciphers:" in m and "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" in m for m in messages), messages
        assert any("curves:" in m and "secp521r1" in m for m in messages), messages
        graded = [f.message for f in result.findings if f.rule == "SG311"]
        # Without the edge's headers: no HSTS anywhere; the endpoint is not refused framing and the editor has no
        # nosniff (the editor keeps Node-RED's own CSP, frame-ancestors 'none' included).
        assert graded and all("strict-transport-security" in m for m in graded), graded
        assert any("x-frame-options" in m for m in graded) and any("x-content-type-options" in m for m in graded), graded
    finally:
        stop_stack(stack)
