"""A running edge against Mozilla's "intermediate" server-side TLS profile (guidelines 5.7).

The profile, from https://ssl-config.mozilla.org/guidelines/5.7.json (`configurations.intermediate`; the
same file sslyze ships as `sslyze/mozilla_tls_profile/5.7.json`): TLS 1.2 and 1.3 only; for TLS 1.2 the
ECDHE (and DHE) AES-GCM and ChaCha20-Poly1305 suites; the three TLS 1.3 suites; key exchange groups
X25519, prime256v1 (secp256r1) and secp384r1; an ECDSA (P-256/P-384) or RSA (>= 2048 bits) certificate
signed with SHA-256 or better, living at most 366 days; DH groups of >= 2048 bits. The header part is
HSTS, which we hold to the Observatory's six months (the profile suggests two years). The certificate's
lifespan is the CA's choice, not the edge's (Let's Encrypt issues 90 days, the test CA pebble five years):
it is judged and shown, but `advisory`, never a finding.

Two halves: `observe` scans with sslyze (a library; imported only when a scan runs, so `stackgen`'s
start stays fast) an address we own (loopback or one of our networks: `probes.check_target`), and
`judge` is pure: a `TlsObservation` in, one `Criterion` per rule of the profile out, each with a fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.live.probes import check_target

PROFILE_VERSION = "5.7"
VERSIONS = frozenset({"TLSv1.2", "TLSv1.3"})
CIPHERS = frozenset({  # IANA names, TLS 1.2
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
})
CIPHERSUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})
CURVES = frozenset({"X25519", "prime256v1", "secp384r1"})
CERTIFICATE_TYPES = frozenset({"ecdsa", "rsa"})
CERTIFICATE_CURVES = frozenset({"prime256v1", "secp384r1"})
CERTIFICATE_SIGNATURES = frozenset({"sha256WithRSAEncryption", "ecdsa-with-SHA256", "ecdsa-with-SHA384", "ecdsa-with-SHA512"})
RSA_KEY_SIZE = 2048
DH_PARAM_SIZE = 2048
MAXIMUM_CERTIFICATE_LIFESPAN = 366
HSTS_MIN_AGE = 15_552_000  # six months, as the Observatory counts them

_CURVE_ALIASES = {"secp256r1": "prime256v1", "x25519": "X25519", "x448": "X448"}
_VERSION_NAMES = (("ssl_2_0_cipher_suites", "SSLv2"), ("ssl_3_0_cipher_suites", "SSLv3"), ("tls_1_0_cipher_suites", "TLSv1"),
                  ("tls_1_1_cipher_suites", "TLSv1.1"), ("tls_1_2_cipher_suites", "TLSv1.2"), ("tls_1_3_cipher_suites", "TLSv1.3"))


def curve_name(name: str) -> str:
    """One spelling per curve (Mozilla's: prime256v1, X25519)."""
    return _CURVE_ALIASES.get(name, _CURVE_ALIASES.get(name.lower(), name))


@dataclass
class TlsObservation:
    """What the edge accepted, as a scan saw it."""

    versions: set[str] = field(default_factory=set)  # SSLv2 .. TLSv1.3
    ciphers: set[str] = field(default_factory=set)  # TLS <= 1.2 suites, IANA names
    ciphersuites: set[str] = field(default_factory=set)  # TLS 1.3 suites
    curves: set[str] = field(default_factory=set)  # key exchange groups
    certificate_type: str | None = None  # "rsa", "ecdsa" or the key class name
    rsa_bits: int | None = None
    certificate_curve: str | None = None
    signature: str | None = None
    lifespan_days: int | None = None
    chain_verified: bool | None = None  # None: not asked
    smallest_dh_bits: int | None = None
    hsts_max_age: int | None = None  # None: no header (or not asked: see `hsts_checked`)
    hsts_checked: bool = False


@dataclass
class Criterion:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    advisory: bool = False  # decided by someone other than the edge's config (the CA): shown, never a finding

    def to_dict(self) -> dict[str, Any]:
        return {"criterion": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix, "advisory": self.advisory}


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def judge(obs: TlsObservation) -> list[Criterion]:
    """One criterion per rule of the intermediate profile."""
    out: list[Criterion] = []
    extra = obs.versions - VERSIONS
    missing = VERSIONS - obs.versions
    out.append(Criterion(
        "protocols", not extra and "TLSv1.2" in obs.versions,
        f"accepted {_listed(obs.versions)}" + (f"; should refuse {_listed(extra)}" if extra else "")
        + (f"; missing {_listed(missing)}" if missing else ""),
        "accept TLS 1.2 and 1.3 only (Caddy: protocols tls1.2 tls1.3; nginx: ssl_protocols TLSv1.2 TLSv1.3; "
        "Traefik: minVersion: VersionTLS12)"))
    extra = obs.ciphers - CIPHERS
    out.append(Criterion(
        "ciphers", not extra, f"TLS 1.2 suites outside the profile: {_listed(extra)}" if extra else f"{len(obs.ciphers)} suites, all in the profile",
        "offer only ECDHE/DHE with AES-GCM or ChaCha20-Poly1305 (nginx: ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:"
        "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
        "ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305)"))
    extra = obs.ciphersuites - CIPHERSUITES
    out.append(Criterion(
        "tls13 ciphersuites", not extra, f"outside the profile: {_listed(extra)}" if extra else _listed(obs.ciphersuites),
        "offer only TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256"))
    curves = {curve_name(c) for c in obs.curves}
    extra = curves - CURVES
    out.append(Criterion(
        "curves", not extra, f"groups outside the profile: {_listed(extra)}" if extra else f"groups {_listed(curves)}",
        "offer only X25519, prime256v1 and secp384r1 (nginx: ssl_ecdh_curve X25519:prime256v1:secp384r1; "
        "Traefik: curvePreferences)"))
    if obs.smallest_dh_bits is not None:
        out.append(Criterion("dh parameters", obs.smallest_dh_bits >= DH_PARAM_SIZE, f"smallest DH group {obs.smallest_dh_bits} bits",
                             f"use DH groups of at least {DH_PARAM_SIZE} bits (RFC 7919 ffdhe2048)"))
    problems = []
    if obs.certificate_type not in CERTIFICATE_TYPES:
        problems.append(f"key type {obs.certificate_type or 'unknown'} (expected ECDSA or RSA)")
    if obs.certificate_type == "rsa" and (obs.rsa_bits or 0) < RSA_KEY_SIZE:
        problems.append(f"RSA key of {obs.rsa_bits} bits (minimum {RSA_KEY_SIZE})")
    if obs.certificate_type == "ecdsa" and curve_name(obs.certificate_curve or "") not in CERTIFICATE_CURVES:
        problems.append(f"ECDSA key on {obs.certificate_curve} (expected prime256v1 or secp384r1)")
    if obs.signature is not None and obs.signature not in CERTIFICATE_SIGNATURES:
        problems.append(f"signed with {obs.signature}")
    out.append(Criterion(
        "certificate type", not problems,
        "; ".join(problems) or f"{obs.certificate_type} {obs.rsa_bits or obs.certificate_curve or ''}".strip() + f", {obs.signature}",
        "issue an ECDSA P-256 (or RSA 2048+) certificate signed with SHA-256 (certbot: --key-type ecdsa)"))
    if obs.lifespan_days is not None:
        out.append(Criterion(
            "certificate lifespan", obs.lifespan_days <= MAXIMUM_CERTIFICATE_LIFESPAN, f"{obs.lifespan_days} days",
            f"use certificates valid for at most {MAXIMUM_CERTIFICATE_LIFESPAN} days (ACME CAs issue 90)", advisory=True))
    if obs.chain_verified is not None:
        out.append(Criterion("certificate chain", obs.chain_verified, "verifies" if obs.chain_verified else "does not verify",
                             "serve the full chain of a CA clients trust"))
    if obs.hsts_checked:
        ok = obs.hsts_max_age is not None and obs.hsts_max_age >= HSTS_MIN_AGE
        out.append(Criterion(
            "hsts", ok, "no Strict-Transport-Security header" if obs.hsts_max_age is None else f"max-age={obs.hsts_max_age}",
            f"send Strict-Transport-Security: max-age=31536000 (at least {HSTS_MIN_AGE}, six months)"))
    return out


# --- sslyze ------------------------------------------------------------------------------------------------


class ScanFailed(RuntimeError):
    """sslyze could not connect or a scan command errored."""


def from_sslyze(scan: Any) -> TlsObservation:
    """A `TlsObservation` from sslyze's `AllScanCommandsAttempts` (`ServerScanResult.scan_result`)."""
    obs = TlsObservation()
    for attribute, version in _VERSION_NAMES:
        attempt = getattr(scan, attribute, None)
        result = getattr(attempt, "result", None)
        if result is None:
            continue
        if result.is_tls_version_supported:
            obs.versions.add(version)
        for accepted in result.accepted_cipher_suites:
            (obs.ciphersuites if version == "TLSv1.3" else obs.ciphers).add(accepted.cipher_suite.name)
            key = accepted.ephemeral_key
            if key is not None and type(key).__name__ == "DhEphemeralKeyInfo":
                obs.smallest_dh_bits = min(obs.smallest_dh_bits or key.size, key.size)
    curves = getattr(getattr(scan, "elliptic_curves", None), "result", None)
    if curves is not None:
        obs.curves = {curve_name(c.name) for c in (curves.supported_curves or [])}
    info = getattr(getattr(scan, "certificate_info", None), "result", None)
    if info is not None and info.certificate_deployments:
        deployment = info.certificate_deployments[0]
        _certificate_facts(obs, deployment.received_certificate_chain[0])
        obs.chain_verified = deployment.verified_certificate_chain is not None
    return obs


def _certificate_facts(obs: TlsObservation, cert: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    key = cert.public_key()
    if isinstance(key, EllipticCurvePublicKey):
        obs.certificate_type, obs.certificate_curve = "ecdsa", curve_name(key.curve.name)
    elif isinstance(key, RSAPublicKey):
        obs.certificate_type, obs.rsa_bits = "rsa", key.key_size
    else:
        obs.certificate_type = type(key).__name__
    obs.signature = getattr(cert.signature_algorithm_oid, "_name", None) or cert.signature_algorithm_oid.dotted_string
    obs.lifespan_days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days


def observe(address: str, port: int, server_name: str, *, ca_file: str | None = None, allowed_networks: Iterable[str] = (),
            timeout: int = 5) -> TlsObservation:
    """Scan `address:port` (SNI `server_name`) with sslyze: versions, suites, groups, certificate."""
    check_target(address, allowed_networks)
    from sslyze import (
        ScanCommand,
        ScanCommandAttemptStatusEnum,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )
    from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument

    commands = {ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES, ScanCommand.TLS_1_0_CIPHER_SUITES,
                ScanCommand.TLS_1_1_CIPHER_SUITES, ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
                ScanCommand.ELLIPTIC_CURVES, ScanCommand.CERTIFICATE_INFO}
    extra = ScanCommandsExtraArguments(certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca_file))) if ca_file else None
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=server_name, port=port, ip_address=address),
        network_configuration=ServerNetworkConfiguration(tls_server_name_indication=server_name, network_timeout=timeout),
        scan_commands=commands,
        **({"scan_commands_extra_arguments": extra} if extra else {}),
    )
    scanner = Scanner(per_server_concurrent_connections_limit=4)
    scanner.queue_scans([request])
    for result in scanner.get_results():
        if result.scan_status != ServerScanStatusEnum.COMPLETED:
            raise ScanFailed(f"{address}:{port}: {result.connectivity_error_trace or result.scan_status}")
        for command in commands:
            attempt = getattr(result.scan_result, command.value)
            if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED:
                raise ScanFailed(f"{address}:{port}: {command.value} {attempt.status.value}: {attempt.error_reason}")
        return from_sslyze(result.scan_result)
    raise ScanFailed(f"{address}:{port}: no scan result")


def check(address: str, port: int, server_name: str, *, hsts_max_age: int | None = None, hsts_checked: bool = False,
          ca_file: str | None = None, allowed_networks: Iterable[str] = ()) -> list[Criterion]:
    """Scan and judge; the HSTS criterion from a header the caller read (sslyze is not asked for HTTP)."""
    obs = observe(address, port, server_name, ca_file=ca_file, allowed_networks=allowed_networks)
    obs.hsts_max_age, obs.hsts_checked = hsts_max_age, hsts_checked
    return judge(obs)


def hsts_max_age(value: str | None) -> int | None:
    """max-age of one Strict-Transport-Security value (None when absent or unreadable)."""
    if not value:
        return None
    for part in value.split(";"):
        key, _, number = part.strip().partition("=")
        if key.strip().lower() == "max-age":
            try:
                return int(number.strip().strip('"'))
            except ValueError:
                return None
    return None
