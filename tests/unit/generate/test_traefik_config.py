"""Traefik's rendered configuration: router rules in v3 syntax, and what the entrypoint relies on.

Traefik v3 compares Host() literally, so `*.example.org` must become a HostRegexp (a Go regexp,
which for these patterns means what Python's `re` does). The rule strings are read back from the
parsed YAML, so the YAML escaping is checked along with the rule.
"""

from __future__ import annotations

import re

import pytest
import yaml

from stackgen.generate.render import render
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH, golden_stack

MATCHER = re.compile(r"^(Host|HostRegexp)\(`([^`]*)`\)$")


def traefik_stack(domains: list[str], mode: str = "certbot-dns01") -> Stack:
    tls: dict = {"mode": mode}
    if mode == "certbot-dns01":
        tls.update(dns_provider="cloudflare", dns_credentials_file="secrets/cloudflare.ini")
    elif mode == "files":
        tls.update(cert_file="tls/fullchain.pem", key_file="tls/privkey.pem")
    return Stack.model_validate(
        {"project": "rules", "domains": domains, "email": "ops@example.org", "edge": "traefik", "tls": tls,
         "node_red": {"admin_password_hash": EXAMPLE_HASH}}
    )


def rendered(stack: Stack) -> dict[str, str]:
    return {f.path: f.content.decode() for f in render(stack)}


def dynamic(stack: Stack, bootstrap: bool = False) -> dict:
    return yaml.safe_load(rendered(stack)["edge/dynamic.bootstrap.yml" if bootstrap else "edge/dynamic.yml"])


def matchers(rule: str) -> list[tuple[str, str]]:
    found = []
    for part in rule.split(" || "):
        match = MATCHER.match(part)
        assert match, f"unexpected matcher {part!r} in {rule!r}"
        found.append((match.group(1), match.group(2)))
    return found


def host_rule(stack: Stack) -> str:
    return dynamic(stack)["http"]["routers"]["node-red"]["rule"]


def routes(rule: str, host: str) -> bool:
    """What Traefik v3 does with the (lowercased, port-less) request host."""
    for kind, value in matchers(rule):
        if kind == "Host" and host == value:
            return True
        if kind == "HostRegexp" and re.search(value, host):
            return True
    return False


# --- 4. router rules --------------------------------------------------------------------------


def test_a_plain_domain_is_a_host_matcher():
    rule = host_rule(traefik_stack(["nodered.example.org"], mode="certbot-http01"))
    assert matchers(rule) == [("Host", "nodered.example.org")]


def test_several_domains_are_alternatives():
    rule = host_rule(traefik_stack(["nodered.example.org", "flows.example.net", "a.b.example.com"], mode="certbot-http01"))
    assert matchers(rule) == [("Host", "nodered.example.org"), ("Host", "flows.example.net"), ("Host", "a.b.example.com")]
    assert routes(rule, "flows.example.net") and not routes(rule, "example.net")


@pytest.mark.parametrize("mode", ["certbot-dns01", "files"])
def test_a_wildcard_domain_is_a_hostregexp_for_one_label(mode):
    rule = host_rule(traefik_stack(["*.example.org", "example.org"], mode=mode))
    kinds = matchers(rule)
    assert kinds[0] == ("HostRegexp", r"^[a-z0-9-]+\.example\.org$")
    assert kinds[1] == ("Host", "example.org")
    assert "Host(`*." not in rule, "v3 would compare the asterisk literally"
    wildcard = kinds[0][1]
    re.compile(wildcard)
    assert re.search(wildcard, "sub.example.org")
    assert re.search(wildcard, "node-red-2.example.org")
    for host in ("example.org", "a.b.example.org", "evil-example.org", "subxexample.org", "sub.example.org.evil.net",
                 "sub.example.orgx", ".example.org"):
        assert not re.search(wildcard, host), host
    assert routes(rule, "example.org"), "the apex through its own Host()"


def test_the_wildcard_regexp_survives_yaml():
    """Single-quoted YAML: the backslashes reach Traefik once each (double quotes would need them doubled)."""
    text = rendered(traefik_stack(["*.example.org"]))["edge/dynamic.yml"]
    line = next(line for line in text.splitlines() if "HostRegexp" in line)
    assert line.strip() == r"rule: 'HostRegexp(`^[a-z0-9-]+\.example\.org$`)'"
    assert host_rule(traefik_stack(["*.example.org"])) == r"HostRegexp(`^[a-z0-9-]+\.example\.org$`)"


def test_wildcard_domain_of_a_deeper_zone():
    rule = host_rule(traefik_stack(["*.lab.home.example.org", "nodered.example.org"]))
    wildcard = matchers(rule)[0][1]
    assert re.search(wildcard, "x.lab.home.example.org")
    assert not re.search(wildcard, "lab.home.example.org") and not re.search(wildcard, "xlab.home.example.org")
    assert matchers(rule)[1] == ("Host", "nodered.example.org")


def test_bootstrap_and_full_files_route_the_same_hosts():
    stack = traefik_stack(["*.example.org", "example.org"])
    assert dynamic(stack)["http"]["routers"]["node-red"]["rule"] == dynamic(stack, bootstrap=True)["http"]["routers"]["node-red"]["rule"]


# --- 3. what the entrypoint relies on ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["certbot-http01", "certbot-dns01", "internal", "files", "edge-acme"])
def test_every_dynamic_file_carries_its_generation_router(mode):
    stack = golden_stack("traefik", mode)
    for bootstrap in (False, True):
        config = dynamic(stack, bootstrap)
        router = config["http"]["routers"]["stackgen-generation"]
        assert router == {"entryPoints": ["ping"], "rule": "Path(`/stackgen/generation/@GENERATION@`)", "service": "ping@internal"}


@pytest.mark.parametrize("mode", ["certbot-http01", "certbot-dns01", "internal", "files"])
def test_traefik_reads_only_the_entrypoints_checked_copies(mode):
    stack = golden_stack("traefik", mode)
    tls = dynamic(stack)["tls"]
    copy = {"certFile": "/tmp/stackgen/tls/@GENERATION@.crt", "keyFile": "/tmp/stackgen/tls/@GENERATION@.key"}
    assert tls["certificates"] == [copy]
    assert tls["stores"]["default"]["defaultCertificate"] == copy
    assert tls["options"]["default"]["sniStrict"] is True, "a pair Traefik rejects must not fall back to its own certificate"
    assert "certificates" not in dynamic(stack, bootstrap=True).get("tls", {})
    files = rendered(stack)
    entrypoint = files["edge/entrypoint.sh"]
    assert "STATE=/tmp/stackgen\n" in entrypoint and '"$STATE/tls/$NEXT.crt"' in entrypoint


def test_the_entrypoint_asks_the_ping_entry_point_that_traefik_listens_on():
    files = rendered(golden_stack("traefik", "certbot-http01"))
    static = yaml.safe_load(files["edge/traefik.yml"])
    address = static["entryPoints"][static["ping"]["entryPoint"]]["address"]
    assert address.startswith("127.0.0.1:"), "loopback only"
    assert f"PING=http://{address}\n" in files["edge/entrypoint.sh"]
    assert static["providers"]["file"]["directory"] == "/tmp/stackgen/dynamic"


def test_traefik_finishes_in_flight_requests_within_the_entrypoints_grace():
    files = rendered(golden_stack("traefik", "certbot-http01"))
    static = yaml.safe_load(files["edge/traefik.yml"])
    grace = int(re.search(r"STACKGEN_STOP_GRACE_SECONDS:-(\d+)", files["edge/entrypoint.sh"]).group(1))
    for name in ("web", "websecure"):
        timeout = static["entryPoints"][name]["transport"]["lifeCycle"]["graceTimeOut"]
        assert re.fullmatch(r"\d+s", timeout) and int(timeout[:-1]) < grace < 10
