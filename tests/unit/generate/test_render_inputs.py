"""Rendered inputs reach running containers; files-mode mounts; secrets certbot must read."""

from __future__ import annotations

import os
import stat

import pytest

from stackgen.generate.render import INPUTS_LABEL, Context, compose_document, render
from stackgen.spec import Stack
from tests.golden import combos, golden_stack


def labels(stack: Stack) -> dict[str, str]:
    return {name: svc["labels"][INPUTS_LABEL] for name, svc in compose_document(Context(stack))["services"].items()}


def changed(before: Stack, after: Stack) -> set[str]:
    old, new = labels(before), labels(after)
    return {name for name in new if old.get(name) != new[name]}


def test_every_service_carries_an_inputs_label_and_rendering_is_stable():
    for edge, mode in combos():
        stack = golden_stack(edge, mode)
        assert all(len(value) == 16 for value in labels(stack).values())
        assert render(stack) == render(golden_stack(edge, mode))


def test_a_settings_change_recreates_node_red_only():
    stack = golden_stack("caddy", "certbot-http01")
    edited = stack.model_copy(deep=True)
    edited.node_red.admin_user = "ops"
    assert changed(stack, edited) == {"node-red"}


def test_an_editor_path_change_recreates_node_red_and_the_edge_that_gates_it():
    stack = golden_stack("caddy", "certbot-http01")
    edited = stack.model_copy(deep=True)
    edited.node_red.editor.path = "/admin"
    assert changed(stack, edited) == {"node-red", "edge"}


def test_a_renewal_interval_change_recreates_certbot_only():
    stack = golden_stack("nginx", "certbot-http01")
    edited = stack.model_copy(deep=True)
    edited.tls.renew_interval_hours = 6
    assert changed(stack, edited) == {"certbot"}


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_a_domain_change_reaches_edge_and_certbot(edge):
    stack = golden_stack(edge, "certbot-http01")
    edited = stack.model_copy(deep=True)
    edited.domains = [*stack.domains, "more.example.org"]
    assert {"edge", "certbot"} <= changed(stack, edited)
    assert "node-red" not in changed(stack, edited)


def test_the_label_covers_exactly_the_mounted_rendered_files():
    """Editing any one rendered file a service mounts changes that service's label, and no other's."""
    from stackgen.generate.render import config_files, stamp_inputs

    stack = golden_stack("caddy", "certbot-http01")
    ctx = Context(stack)
    base = config_files(ctx)
    reference = compose_document(ctx, base)["services"]
    for index, rendered in enumerate(base):
        mounted_by = {
            name for name, svc in reference.items()
            if any(m.get("source") == "./" + rendered.path for m in svc["volumes"])
        }
        edited = list(base)
        edited[index] = type(rendered)(rendered.path, rendered.content + b"\n# edit\n", rendered.mode)
        services = compose_document(ctx, edited)["services"]
        moved = {name for name in services if services[name]["labels"][INPUTS_LABEL] != reference[name]["labels"][INPUTS_LABEL]}
        assert moved == mounted_by, rendered.path
    assert stamp_inputs is not None


# --- files mode: directories, never single files ---------------------------------------------


def test_files_mode_mounts_directories_read_only():
    stack = golden_stack("nginx", "files")
    edge = compose_document(Context(stack))["services"]["edge"]
    binds = [m for m in edge["volumes"] if m["type"] == "bind" and "tls" in m["target"]]
    assert binds == [{"type": "bind", "source": "./tls", "target": "/etc/stackgen/tls", "read_only": True}]
    ctx = Context(stack)
    assert (ctx.cert_path, ctx.key_path) == ("/etc/stackgen/tls/fullchain.pem", "/etc/stackgen/tls/privkey.pem")


def test_files_mode_with_cert_and_key_in_different_directories():
    data = golden_stack("caddy", "files").model_dump(mode="json")
    data["tls"].update(cert_file="/etc/ssl/site/cert.pem", key_file="keys/site.key")
    ctx = Context(Stack.model_validate(data))
    assert ctx.tls_file_mounts == [("/etc/ssl/site", "/etc/stackgen/tls/cert"), ("keys", "/etc/stackgen/tls/key")]
    assert (ctx.cert_path, ctx.key_path) == ("/etc/stackgen/tls/cert/cert.pem", "/etc/stackgen/tls/key/site.key")
    rendered = {f.path: f.content.decode() for f in render(ctx.s)}
    assert "/etc/stackgen/tls/cert/cert.pem" in rendered["edge/Caddyfile"]


# --- DNS credentials: certbot (uid 0, no capabilities) must be able to read them -------------


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")
def test_generate_hands_dns_credentials_to_certbots_uid(tmp_path):
    from stackgen.generate import workflow
    from stackgen.generate.render import CERTBOT_UID

    credentials = tmp_path / "secrets" / "cloudflare.ini"
    credentials.parent.mkdir()
    credentials.write_text("dns_cloudflare_api_token = x\n")
    os.chown(credentials, 1000, 1000)
    credentials.chmod(0o644)
    stack = golden_stack("nginx", "certbot-dns01")
    workflow.init(tmp_path / "stack", stack.model_copy(update={"tls": stack.tls.model_copy(update={"dns_credentials_file": str(credentials)})}))
    info = credentials.stat()
    assert info.st_uid == CERTBOT_UID and stat.S_IMODE(info.st_mode) == 0o600
