"""Active checks against a running stack: TLS, HTTP, websockets, raw TCP reachability.

Why here and small: `up`'s demo output, the integration tests, `verify --live`
and the supervisor all ask the same questions of a live edge ("which
certificate does it serve for this name?", "does /comms upgrade?"). Every
probe refuses a target outside loopback and the networks it is told belong to
the stack: stackgen never sends traffic anywhere else.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import os
import re
import socket
import ssl
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field


class ForbiddenTarget(ValueError):
    """A probe was aimed outside loopback and the stack's own networks."""


def check_target(address: str, allowed_networks: Iterable[str] = ()) -> None:
    """Loopback, or inside one of `allowed_networks` (CIDRs of networks the stack or the test created)."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback:
        return
    for cidr in allowed_networks:
        if ip in ipaddress.ip_network(cidr, strict=False):
            return
    raise ForbiddenTarget(f"{address}: not loopback and not in the stack's networks {list(allowed_networks)}; refusing to probe it")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    certificate: dict = field(default_factory=dict)  # ssl's getpeercert() form, when TLS was verified
    tls_version: str | None = None
    header_lines: list[tuple[str, str]] = field(default_factory=list)  # every header as sent, repeats kept (`headers` keeps the last)

    @property
    def serial(self) -> str | None:
        return self.certificate.get("serialNumber")

    @property
    def names(self) -> list[str]:
        return [value for kind, value in self.certificate.get("subjectAltName", ()) if kind == "DNS"]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address with a chosen SNI name, so probes need no DNS."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(server_name, port, context=context, timeout=timeout)
        self._address = address
        self._server_name = server_name
        self._ctx = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(raw, server_hostname=self._server_name)


def tls_context(cafile: str | None, minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None, verify: bool | None = None) -> ssl.SSLContext:
    """Verifying against `cafile` (or the system store with `verify=True`); unverified when neither is asked."""
    verify = bool(cafile) if verify is None else verify
    context = ssl.create_default_context(cafile=cafile) if verify else ssl._create_unverified_context()  # noqa: S323
    if minimum:
        context.minimum_version = minimum
    if maximum:
        context.maximum_version = maximum
    return context


def https_request(
    address: str,
    port: int,
    server_name: str,
    path: str = "/",
    *,
    cafile: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
    allowed_networks: Iterable[str] = (),
    verify: bool | None = None,
) -> Response:
    """One HTTPS request to `address:port` with SNI and Host = `server_name`."""
    check_target(address, allowed_networks)
    context = tls_context(cafile, verify=verify)
    connection = _PinnedHTTPSConnection(address, port, server_name, context, timeout)
    try:
        connection.request(method, path, body=body, headers={"Host": server_name, "Connection": "close", **(headers or {})})
        sock = connection.sock  # read the TLS facts now: the response closes the socket
        cert = sock.getpeercert() if context.verify_mode == ssl.CERT_REQUIRED else {}
        version = sock.version()
        response = connection.getresponse()
        data = response.read()
        lines = response.getheaders()
        return Response(response.status, {k.lower(): v for k, v in lines}, data, cert or {}, version, lines)
    finally:
        connection.close()


def http_request(address: str, port: int, host: str, path: str = "/", *, timeout: float = 5.0, allowed_networks: Iterable[str] = ()) -> Response:
    """One plain HTTP request (the edge's port 80 side)."""
    check_target(address, allowed_networks)
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = connection.getresponse()
        lines = response.getheaders()
        return Response(response.status, {k.lower(): v for k, v in lines}, response.read(), header_lines=lines)
    finally:
        connection.close()


def websocket_upgrade(
    address: str, port: int, server_name: str, path: str, *,
    cafile: str | None = None, timeout: float = 5.0, allowed_networks: Iterable[str] = (),
) -> int:
    """Status of a websocket handshake through TLS (101 = upgraded)."""
    check_target(address, allowed_networks)
    raw = socket.create_connection((address, port), timeout)
    with tls_context(cafile).wrap_socket(raw, server_hostname=server_name) as sock:
        key = base64.b64encode(os.urandom(16)).decode()  # RFC 6455: 16 random bytes
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: https://{server_name}\r\n\r\n"
        )
        sock.sendall(request.encode())
        head = sock.recv(1024).decode("latin-1")
    return int(head.split(" ", 2)[1]) if head.startswith("HTTP/") else 0


def tls_handshake(address: str, port: int, server_name: str, version: ssl.TLSVersion, *, timeout: float = 5.0, allowed_networks: Iterable[str] = ()) -> bool:
    """Does the server accept a handshake pinned to exactly `version`?"""
    check_target(address, allowed_networks)
    context = ssl._create_unverified_context()  # noqa: S323 - only the protocol version is under test
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # old versions are exactly what is probed
            context.minimum_version = version
            context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return False
    try:
        with socket.create_connection((address, port), timeout) as raw, context.wrap_socket(raw, server_hostname=server_name):
            return True
    except (ssl.SSLError, OSError):
        return False


def tcp_open(address: str, port: int, *, timeout: float = 2.0, allowed_networks: Iterable[str] = ()) -> bool:
    """Can a TCP connection be opened from here?"""
    check_target(address, allowed_networks)
    try:
        with socket.create_connection((address, port), timeout):
            return True
    except OSError:
        return False


# --- Node-RED's own answer, and probe paths in messages ---------------------------------------------------------

PROBE_PATH = re.compile(r"stackgen-probe-[0-9a-f]+")


def stable(text: str) -> str:
    """`text` with every random probe path (`stackgen-probe-<hex>`) written `stackgen-probe-…`: a finding's message is
    its identity (the supervisor's drift ids digest it), so it names the probe path without its random part."""
    return PROBE_PATH.sub("stackgen-probe-…", text)


def own_answer(get_status: int, get_body: str | bytes, challenge: str | None,
               options: tuple[int, str | bytes] | None) -> tuple[bool | None, str]:
    """Was a GET of a path nobody serves answered by Node-RED itself? (verdict, what was seen)

    Node-RED's own answer is Express's 404 `Cannot GET <path>`. With `http_node_auth` (httpNodeAuth) every path under
    httpNodeRoot meets basic auth first: 401 with `WWW-Authenticate: Basic`, which an edge's own basic auth answers
    alike. Node-RED's basic auth (red.js basicAuthMiddleware, and the shield.js stackgen renders in its place) lets
    OPTIONS through (CORS preflights carry no credentials), so an OPTIONS to the same path gets Express's own
    `Cannot OPTIONS <path>`: Node-RED answered, behind its auth. `options`: that OPTIONS's (status, body); the verdict
    is None when a basic challenge came and no OPTIONS was asked (the caller must ask it)."""
    text = get_body.decode("utf-8", "replace") if isinstance(get_body, bytes) else get_body
    if get_status == 404 and "Cannot GET" in text:
        return True, "404 Cannot GET (Node-RED's own)"
    if get_status != 401 or not (challenge or "").lower().startswith("basic"):
        return False, f"{get_status}"
    if options is None:
        return None, f"401 ({challenge}): not yet confirmed as Node-RED's (no OPTIONS asked)"
    status, body = options
    said = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if status == 404 and "Cannot OPTIONS" in said:
        return True, "401 basic auth (httpNodeAuth); OPTIONS, which it lets through, got Node-RED's own 404 Cannot OPTIONS"
    return False, f"401 ({challenge}), and OPTIONS {status or 'no answer'}, not Node-RED's own 404: a basic auth other than Node-RED's"
