"""Judging a TLS scan against Mozilla's intermediate profile, on constructed sslyze-like results (no network)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace as NS

import pytest

from stackgen.live import tls_profile
from stackgen.live.probes import ForbiddenTarget
from stackgen.live.tls_profile import TlsObservation, from_sslyze, judge

GOOD = dict(
    versions={"TLSv1.2", "TLSv1.3"},
    ciphers={"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    ciphersuites={"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"},
    curves={"X25519", "prime256v1", "secp384r1"},
    certificate_type="ecdsa", certificate_curve="prime256v1", signature="ecdsa-with-SHA256", lifespan_days=90,
    chain_verified=True, hsts_max_age=31536000, hsts_checked=True,
)


def failing(**changes) -> dict[str, str]:
    return {c.name: c.detail for c in judge(TlsObservation(**{**GOOD, **changes})) if not c.ok}


def test_the_profile_passes():
    criteria = judge(TlsObservation(**GOOD))
    assert all(c.ok for c in criteria), [c for c in criteria if not c.ok]
    assert {c.name for c in criteria} == {"protocols", "ciphers", "tls13 ciphersuites", "curves", "certificate type",
                                          "certificate lifespan", "certificate chain", "hsts"}
    assert all(c.fix for c in criteria)


@pytest.mark.parametrize(("changes", "criterion", "words"), [
    ({"versions": {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}}, "protocols", "should refuse TLSv1, TLSv1.1"),
    ({"versions": {"SSLv3", "TLSv1.2"}}, "protocols", "SSLv3"),
    ({"versions": {"TLSv1.3"}}, "protocols", "missing TLSv1.2"),
    ({"ciphers": {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}}, "ciphers", "AES_128_CBC_SHA"),
    ({"ciphers": {"TLS_RSA_WITH_AES_128_GCM_SHA256"}}, "ciphers", "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    ({"ciphersuites": {"TLS_AES_128_CCM_SHA256"}}, "tls13 ciphersuites", "CCM"),
    ({"curves": {"X25519", "secp256r1", "X448", "secp521r1"}}, "curves", "X448, secp521r1"),
    ({"certificate_type": "rsa", "certificate_curve": None, "rsa_bits": 1024, "signature": "sha256WithRSAEncryption"},
     "certificate type", "1024 bits"),
    ({"certificate_curve": "secp521r1"}, "certificate type", "secp521r1"),
    ({"certificate_type": "Ed25519PublicKey"}, "certificate type", "Ed25519"),
    ({"signature": "sha1WithRSAEncryption"}, "certificate type", "sha1"),
    ({"chain_verified": False}, "certificate chain", "does not verify"),
    ({"hsts_max_age": None}, "hsts", "no Strict-Transport-Security"),
    ({"hsts_max_age": 86400}, "hsts", "max-age=86400"),
    ({"smallest_dh_bits": 1024}, "dh parameters", "1024"),
])
def test_each_deviation(changes, criterion, words):
    problems = failing(**changes)
    assert set(problems) == {criterion}, problems
    assert words in problems[criterion]


def test_lifespan_is_judged_but_advisory():
    lifespan = next(c for c in judge(TlsObservation(**{**GOOD, "lifespan_days": 1825})) if c.name == "certificate lifespan")
    assert not lifespan.ok and lifespan.advisory and lifespan.detail == "1825 days"


def test_rsa_2048_and_the_secg_curve_name_pass():
    assert not failing(certificate_type="rsa", rsa_bits=2048, certificate_curve=None, signature="sha256WithRSAEncryption",
                       curves={"secp256r1", "x25519"})


def suites(*names, key=None):
    return [NS(cipher_suite=NS(name=n), ephemeral_key=key) for n in names]


def attempt(supported: bool, accepted=()):
    return NS(result=NS(is_tls_version_supported=supported, accepted_cipher_suites=list(accepted)))


def test_from_sslyze_reads_a_scan_result():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90)).sign(key, hashes.SHA384()))
    dh = type("DhEphemeralKeyInfo", (), {"size": 1024})()
    scan = NS(
        ssl_2_0_cipher_suites=attempt(False), ssl_3_0_cipher_suites=attempt(False),
        tls_1_0_cipher_suites=attempt(True, suites("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")),
        tls_1_1_cipher_suites=attempt(False),
        tls_1_2_cipher_suites=attempt(True, suites("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256") + suites("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", key=dh)),
        tls_1_3_cipher_suites=attempt(True, suites("TLS_AES_128_GCM_SHA256")),
        elliptic_curves=NS(result=NS(supported_curves=[NS(name="X25519"), NS(name="secp256r1")])),
        certificate_info=NS(result=NS(certificate_deployments=[NS(received_certificate_chain=[cert], verified_certificate_chain=None)])),
    )
    obs = from_sslyze(scan)
    assert obs.versions == {"TLSv1", "TLSv1.2", "TLSv1.3"}
    assert obs.ciphers == {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"}
    assert obs.ciphersuites == {"TLS_AES_128_GCM_SHA256"}
    assert obs.curves == {"X25519", "prime256v1"}
    assert (obs.certificate_type, obs.certificate_curve, obs.signature, obs.lifespan_days) == ("ecdsa", "secp384r1", "ecdsa-with-SHA384", 90)
    assert obs.chain_verified is False and obs.smallest_dh_bits == 1024
    assert set(failing(**{k: getattr(obs, k) for k in GOOD if k not in ("hsts_max_age", "hsts_checked")})) == {
        "protocols", "ciphers", "certificate chain"}


def test_hsts_max_age():
    assert tls_profile.hsts_max_age("max-age=31536000; includeSubDomains") == 31536000
    assert tls_profile.hsts_max_age('includeSubDomains; max-age="600"') == 600
    assert tls_profile.hsts_max_age("max-age=abc") is None and tls_profile.hsts_max_age(None) is None


def test_scans_only_our_addresses():
    with pytest.raises(ForbiddenTarget):
        tls_profile.observe("203.0.113.5", 443, "edge.example.org")


def test_live_probe_reports_each_deviation_on_the_edge(monkeypatch):
    from stackgen.live import checks, probes
    from stackgen.topology import Port, Role, Service, Topology

    edge = Service(name="edge", image="caddy", role=Role.EDGE, ports=[Port(target=443, published="8443", host_ip="127.0.0.1")])
    ctx = checks.LiveContext(engine=None, project="p", observed=Topology(services={"edge": edge}), declared=None, networks={},
                             domains=["nodered.example.org"])
    monkeypatch.setattr(probes, "https_request", lambda *a, **k: probes.Response(200, {"strict-transport-security": "max-age=600"}, b""))
    seen = {}

    def scan(address, port, name, **kwargs):
        seen.update(address=address, port=port, name=name, **kwargs)
        return judge(TlsObservation(**{**GOOD, "hsts_max_age": kwargs["hsts_max_age"], "curves": {"X25519", "X448"},
                                       "lifespan_days": 1825}))

    monkeypatch.setattr(tls_profile, "check", scan)
    checks.tls_profile_probe(ctx)
    assert (seen["address"], seen["port"], seen["name"], seen["hsts_max_age"]) == ("127.0.0.1", 8443, "nodered.example.org", 600)
    assert sorted((f.rule, f.service, f.message.split(":")[1].split()[1]) for f in ctx.findings) == [
        ("SG312", "edge", "curves"), ("SG312", "edge", "hsts")]
    assert all(f.message.startswith("127.0.0.1:8443 ") and "(fix: " in f.message for f in ctx.findings)
    lifespan = next(c for c in ctx.checks if c.name == "TLS profile: certificate lifespan")
    assert lifespan.ok and "advisory" in lifespan.detail
