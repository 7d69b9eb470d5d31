"""Certificate renewal through the sidecar, checked end to end: files, edge reload, served serial.

Why the supervisor drives it although the sidecar has its own loop: a renewal
that fails inside a container is silent (the old certificate keeps working for
weeks, until the browser warns). Run from here, every run has an outcome:
the new files are checked (inside the sidecar: the key never leaves its
volume, only "the key matches the certificate: yes/no" does), the edge must
then serve the new serial (it reloads by itself when the file changes; if it
did not, an explicit graceful reload is tried, and a failed reload leaves the
old certificate served), and the served certificate's expiry is alerted on
whatever the reason it is old.

Nothing here sends traffic anywhere but loopback or the stack's own network:
the TLS probe goes to the edge's published port on 127.0.0.1 (or, when the
edge publishes on one specific non-loopback address, to the edge container
itself on the stack's `public` network).
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from stackgen import engine as engines
from stackgen.constants import HTTPS_INSIDE  # the edge's TLS port inside its container
from stackgen.generate.edges import DEPLOY_HOOK, edge
from stackgen.live import certificates
from stackgen.live.certificates import normalise_serial

LIVE_DIR = "/etc/letsencrypt/live"

# Runs inside the sidecar (python3 + cryptography, as in certbot's images). Prints facts, never key material.
FILE_CHECK = r"""
import datetime, json, sys
out = {}
try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    live = sys.argv[1]
    with open(live + "/fullchain.pem", "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    with open(live + "/privkey.pem", "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    after = getattr(cert, "not_valid_after_utc", None)
    if after is None:
        after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    out["serial"] = format(cert.serial_number, "X")
    out["not_after"] = after.timestamp()
    out["key_matches"] = key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        out["names"] = san.get_values_for_type(x509.DNSName)
    except Exception:
        out["names"] = []
except Exception as exc:
    out["error"] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


class RenewalError(Exception):
    pass


# --- the served certificate ---------------------------------------------------------


@dataclass
class ServedCert:
    serial: str
    not_after: float
    address: str
    port: int

    @property
    def days_left(self) -> float:
        return (self.not_after - time.time()) / 86400


def parse_certificate(der: bytes) -> tuple[str, float]:
    """Serial (normalised hex) and notAfter (epoch seconds) of a DER certificate (read by `live.certificates`)."""
    cert = certificates.parse_der(der)
    return cert.serial, cert.not_after


def probe_name(stack) -> str:
    first = stack.domains[0]
    return "stackgen-probe." + first[2:] if first.startswith("*.") else first


def probe_target(engine, stack, project: str) -> tuple[str, int, list[str]]:
    """Where to reach the edge's TLS port from this host: (address, port, networks the probe may enter)."""
    bind = ipaddress.ip_address(stack.ports.bind_address)
    if bind.is_unspecified:
        return ("::1" if bind.version == 6 else "127.0.0.1"), stack.ports.https, []
    if bind.is_loopback:
        return str(bind), stack.ports.https, []
    # One specific host address: talk to the edge container itself on the stack's public network.
    networks = engines.project_networks(engine, project, "public")
    if not networks:
        raise RenewalError(f"network {project}_public not found: is the stack up?")
    network = networks[0]
    network.reload()
    subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
    edge = find_service(engine, project, "edge")
    if edge is None:
        raise RenewalError("the edge container is not running")
    address = edge.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    return address, HTTPS_INSIDE, [subnet]


def served_certificate(engine, stack, project: str) -> ServedCert:
    address, port, allowed = probe_target(engine, stack, project)
    try:
        cert = certificates.fetch(address, port, probe_name(stack), allowed)
    except certificates.NoCertificate as exc:
        raise RenewalError(str(exc)) from None
    except (OSError, ssl.SSLError) as exc:
        raise RenewalError(f"TLS probe of {address}:{port} failed: {exc.__class__.__name__}: {exc}") from None
    return ServedCert(cert.serial, cert.not_after, address, port)


# --- the files in the sidecar's volume -----------------------------------------------


@dataclass
class FileCert:
    serial: str | None = None
    not_after: float | None = None
    names: list[str] = field(default_factory=list)
    key_matches: bool | None = None
    error: str | None = None

    def problems(self, stack, now: float) -> list[str]:
        if self.error:
            return [self.error]
        found = []
        if not self.key_matches:
            found.append("the private key does not match the certificate")
        if self.not_after is not None and self.not_after <= now:
            found.append("the certificate has already expired")
        wanted = set(stack.domains)
        if self.names and not wanted <= set(self.names):
            found.append(f"the certificate does not name {', '.join(sorted(wanted - set(self.names)))}")
        return found


def find_service(engine, project: str, service: str):
    """The running container of `service` (the engine facade's look-up), or None."""
    return engines.service_container(engine, project, service)


def _exec(container, command: list[str], user: str | None = None) -> tuple[int, str, str]:
    result = container.exec_run(command, user=user or "", demux=True)
    out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
    return result.exit_code, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")


def certificate_files(certbot, stack) -> FileCert:
    code, out, err = _exec(certbot, ["python3", "-c", FILE_CHECK, f"{LIVE_DIR}/{stack.cert_name}"])
    try:
        data = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return FileCert(error=f"cannot check the files in the sidecar (exit {code}): {(err or out).strip()[-300:]}")
    if data.get("serial"):
        data["serial"] = normalise_serial(data["serial"])
    return FileCert(**{k: v for k, v in data.items() if k in FileCert.__dataclass_fields__})


# --- renewal --------------------------------------------------------------------------


@dataclass
class RenewalOutcome:
    status: str  # renewed | not_due | failed | invalid | reload_failed | busy | skipped
    message: str
    before: ServedCert | None = None
    after: ServedCert | None = None
    files: FileCert | None = None
    output: str = ""
    seconds: float = 0.0
    reloaded: str | None = None  # by-itself | explicit

    def to_log(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "served_before": self.before.serial if self.before else None,
            "served_after": self.after.serial if self.after else None,
            "files_serial": self.files.serial if self.files else None,
            "not_after": (self.after or self.before).not_after if (self.after or self.before) else None,
            "reloaded": self.reloaded,
            "seconds": round(self.seconds, 2),
            "output_tail": self.output.strip().splitlines()[-6:] if self.output else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def renew_command(stack, force: bool) -> list[str]:
    if stack.tls.mode == "internal":
        return ["python3", "/etc/stackgen/certbot/local_ca.py"]
    from stackgen.generate.render import CERTBOT_LOG_BACKUPS

    command = ["certbot", "renew", "--non-interactive", "--no-random-sleep-on-renew", "--cert-name", stack.cert_name,
               "--max-log-backups", str(CERTBOT_LOG_BACKUPS), "--deploy-hook", DEPLOY_HOOK]
    return command + (["--force-renewal"] if force else [])


def reload_command(edge_name: str) -> list[str] | None:
    """A graceful reload of the edge's active config, as its entrypoint does it (None: Traefik watches its files)."""
    command = edge(edge_name).reload_command
    return list(command) if command is not None else None


def _served_or_none(engine, stack, project: str) -> ServedCert | None:
    try:
        return served_certificate(engine, stack, project)
    except RenewalError:
        return None


def _wait_served(engine, stack, project: str, serial: str, seconds: float, stop: threading.Event | None) -> ServedCert | None:
    deadline = time.monotonic() + seconds
    last = None
    while True:
        last = _served_or_none(engine, stack, project) or last
        if last is not None and last.serial == serial:
            return last
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            return last
        time.sleep(0.5)


def renew(engine, stack, project: str, *, force: bool = False, reload_wait: float = 15.0, timeout: float = 300.0,
          stop: threading.Event | None = None) -> RenewalOutcome:
    """One renewal run through the sidecar, checked until the edge serves the result."""
    started = time.monotonic()

    def outcome(status: str, message: str, **kw: Any) -> RenewalOutcome:
        return RenewalOutcome(status, message, seconds=time.monotonic() - started, **kw)

    if not stack.tls.uses_sidecar:
        return outcome("skipped", f"tls.mode {stack.tls.mode}: no sidecar renews this certificate")
    certbot = find_service(engine, project, "certbot")
    if certbot is None:
        return outcome("failed", "the certbot sidecar is not running: no renewal is possible")
    before = _served_or_none(engine, stack, project)
    files_before = certificate_files(certbot, stack)
    code, out, err = _exec(certbot, renew_command(stack, force))
    output = (out + err).strip()
    if code != 0:
        if "Another instance of Certbot is already running" in output:
            return outcome("busy", "the sidecar's own renewal is running; trying again later", before=before, output=output)
        after = _served_or_none(engine, stack, project)
        still = f"; the edge still serves serial {after.serial}" if after else ""
        return outcome("failed", f"certbot renew failed (exit {code}): {_last_line(output)}{still}",
                       before=before, after=after, files=files_before, output=output)
    files = certificate_files(certbot, stack)
    if files.serial is not None and files.serial == files_before.serial:
        return outcome("not_due", "nothing to renew yet", before=before, after=before, files=files, output=output)
    problems = files.problems(stack, time.time())
    if problems:
        after = _served_or_none(engine, stack, project)
        return outcome("invalid", f"the renewed files are not usable: {'; '.join(problems)}"
                       + (f"; the edge keeps serving serial {after.serial}" if after else ""),
                       before=before, after=after, files=files, output=output)
    assert files.serial is not None
    after = _wait_served(engine, stack, project, files.serial, reload_wait, stop)
    if after is not None and after.serial == files.serial:
        return outcome("renewed", f"the edge serves the new serial {files.serial}", before=before, after=after, files=files,
                       output=output, reloaded="by-itself")
    command = reload_command(stack.edge)
    reload_error = "the edge did not pick up the new files"
    if command is not None:
        edge = find_service(engine, project, "edge")
        if edge is None:
            reload_error = "the edge container is not running"
        else:
            rc, rout, rerr = _exec(edge, command)
            if rc != 0:
                reload_error = f"edge reload failed (exit {rc}): {_last_line(rout + rerr)}"
            else:
                after = _wait_served(engine, stack, project, files.serial, max(5.0, reload_wait / 2), stop)
                if after is not None and after.serial == files.serial:
                    return outcome("renewed", f"the edge serves the new serial {files.serial} (after an explicit reload)",
                                   before=before, after=after, files=files, output=output, reloaded="explicit")
                reload_error = "the edge reloaded but still serves the old certificate"
    old = f"serial {after.serial}" if after else "no certificate (probe failed)"
    return outcome("reload_failed", f"new certificate {files.serial} is in the volume, but the edge still serves {old}: {reload_error}",
                   before=before, after=after, files=files, output=output)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    interesting = [line for line in lines if "error" in line.lower() or "fail" in line.lower()]
    return (interesting or lines or ["(no output)"])[-1][:300]
