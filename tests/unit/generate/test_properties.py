"""Property: any valid Stack renders a compose file that keeps the security model."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackgen.generate.render import render
from stackgen.spec import Stack
from tests import invariants
from tests.golden import EXAMPLE_HASH

labels = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
hostnames = st.builds(lambda parts: ".".join(parts) + ".org", st.lists(labels, min_size=1, max_size=3))


@st.composite
def stacks(draw) -> Stack:
    edge = draw(st.sampled_from(["caddy", "nginx", "traefik"]))
    modes = ["certbot-http01", "certbot-dns01", "internal", "files"] + (["edge-acme"] if edge != "nginx" else [])
    mode = draw(st.sampled_from(modes))
    tls: dict = {"mode": mode, "renew_interval_hours": draw(st.integers(1, 24))}
    if mode == "certbot-dns01":
        tls.update(dns_provider=draw(st.sampled_from(["cloudflare", "route53", "rfc2136"])), dns_credentials_file="secrets/dns.ini")
    if mode == "files":
        tls.update(cert_file="tls/cert.pem", key_file="tls/key.pem")
    if mode in ("certbot-http01", "edge-acme") and draw(st.booleans()):
        tls.update(acme_directory="https://ca.internal.example/acme/directory", ca_bundle="ca.pem")
    http = draw(st.integers(1, 65535))
    https = draw(st.integers(1, 65535).filter(lambda p: p != http))
    domains = draw(st.lists(hostnames, min_size=1, max_size=3, unique=True))
    if mode == "certbot-dns01" and draw(st.booleans()):
        domains = ["*." + domains[0]] + domains[1:]
    return Stack.model_validate(
        {
            "project": draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)),
            "domains": domains,
            "email": "ops@example.org",
            "edge": edge,
            "tls": tls,
            "ports": {"bind_address": draw(st.sampled_from(["0.0.0.0", "127.0.0.1", "192.0.2.7", "::"])), "http": http, "https": https},
            "platform": draw(st.sampled_from(["linux/amd64", "linux/arm64", "linux/arm/v7"])),
            "node_red": {
                "admin_password_hash": EXAMPLE_HASH,
                "egress": draw(st.booleans()),
                "editor": {"enabled": draw(st.booleans()), "path": draw(st.sampled_from(["/", "/admin", "/red/editor"]))},
                "memory_limit": draw(st.one_of(st.none(), st.sampled_from(["128m", "1g", "700m"]))),
            },
            "timezone": draw(st.sampled_from(["Etc/UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"])),
        }
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_any_valid_stack_renders_a_compose_file_that_keeps_the_invariants(stack: Stack):
    compose = next(f for f in render(stack) if f.path == "compose.yaml")
    document = invariants.load(compose.content)
    problems = invariants.check(
        document,
        bind_address=stack.ports.bind_address,
        egress=stack.node_red.egress,
        edge_acme=stack.tls.mode == "edge-acme",
        sidecar=stack.tls.uses_sidecar,
    )
    assert problems == []
    published = sorted(int(p["published"]) for p in document["services"]["edge"]["ports"])
    assert published == sorted([stack.ports.http, stack.ports.https])
