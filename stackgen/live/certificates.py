"""Certificates read in one place: the one an edge serves, fetched over TLS, parsed with `cryptography`.

Why one place: `verify --live` (does the served certificate name the domain, how long is
left), `stackgen renew` and the supervisor (which serial does the edge serve now, when does it
expire) all ask the same questions of the same handshake. They used to fetch it twice and parse
it two ways (a hand-written DER reader and `cryptography`); now both come here.

Like every probe, a fetch refuses an address outside loopback and the networks it is told
belong to the stack (`probes.check_target`). The certificate is read, not trusted: an
expired or self-signed one is reported as it is; whether it verifies is the caller's
separate question (`probes.https_request(..., verify=True)`).

(The files inside the certbot sidecar are read there, by `operate.renewal.FILE_CHECK`, so
the private key never leaves its volume.)
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

from stackgen.live.probes import check_target


class NoCertificate(OSError):
    """The handshake completed but the server sent no certificate."""


@dataclass(frozen=True)
class Certificate:
    """The facts stackgen reads from a certificate."""

    serial_number: int
    not_after: float  # epoch seconds
    names: tuple[str, ...]  # DNS names of the subjectAltName extension

    @property
    def serial(self) -> str:
        """The serial as `ssl.getpeercert()['serialNumber']` spells it (uppercase hex, even length)."""
        return normalise_serial(format(self.serial_number, "X"))

    def days_left(self, now: float | None = None) -> float:
        return (self.not_after - (time.time() if now is None else now)) / 86400


def normalise_serial(text: str) -> str:
    """Uppercase hex, even length: the form of `ssl.getpeercert()['serialNumber']`."""
    text = text.strip().upper().removeprefix("0X").lstrip("0") or "0"
    return text if len(text) % 2 == 0 else "0" + text


def parse_der(der: bytes) -> Certificate:
    """A DER certificate's serial, expiry and DNS names."""
    import datetime

    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    # cryptography >= 42 has the aware `not_valid_after_utc`; older ones a naive UTC datetime.
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=datetime.UTC)
    return Certificate(cert.serial_number, not_after.timestamp(), tuple(names))


def fetch_der(address: str, port: int, server_name: str, allowed_networks: Iterable[str] = (), timeout: float = 5.0) -> bytes:
    """The DER certificate served at `address:port` for `server_name` (SNI), unverified: any certificate is
    reported, valid or not. `OSError` (`ssl.SSLError`, `NoCertificate`) when there is none to read."""
    allowed = tuple(allowed_networks)
    check_target(address, allowed)
    context = ssl._create_unverified_context()  # noqa: S323 - the certificate itself is what is inspected
    with socket.create_connection((address, port), timeout) as raw, context.wrap_socket(raw, server_hostname=server_name) as sock:
        der = sock.getpeercert(binary_form=True)
    if not der:
        raise NoCertificate(f"{address}:{port} sent no certificate")
    return der


def fetch(address: str, port: int, server_name: str, allowed_networks: Iterable[str] = (), timeout: float = 5.0) -> Certificate:
    """The certificate served at `address:port` for `server_name`, parsed."""
    return parse_der(fetch_der(address, port, server_name, allowed_networks, timeout))
