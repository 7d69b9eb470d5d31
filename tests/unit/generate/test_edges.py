"""The one record per edge (`stackgen/generate/edges.py`) is what render, renewal and verify read."""

from __future__ import annotations

import typing

import pytest

from stackgen.generate import edges
from stackgen.generate.render import Context, compose_document, render
from stackgen.operate import renewal
from stackgen.roles import infer_role
from stackgen.spec import Edge as SpecEdge
from stackgen.topology import Role
from tests.golden import golden_stack


def test_one_record_for_each_edge_the_spec_offers():
    assert set(edges.EDGES) == set(typing.get_args(SpecEdge))
    for name, entry in edges.EDGES.items():
        assert entry.name == name
        assert entry.image_contract().image  # the contract exists


@pytest.mark.parametrize("edge", sorted(edges.EDGES))
def test_render_writes_and_mounts_the_records_files(edge):
    stack = golden_stack(edge, "certbot-http01")
    entry = edges.edge(edge)
    rendered = {f.path for f in render(stack)}
    assert {f"edge/{c.name}" for c in entry.configs} | {"edge/entrypoint.sh"} <= rendered
    service = compose_document(Context(stack))["services"]["edge"]
    mounted = [v["target"].rsplit("/", 1)[-1] for v in service["volumes"] if v["target"].startswith(edges.EDGE_CONF_DIR)]
    assert mounted == list(entry.mounted)
    assert service["healthcheck"]["test"] == list(entry.healthcheck)
    assert service["stop_signal"] == entry.image_contract().stop_signal_name


@pytest.mark.parametrize("edge", sorted(edges.EDGES))
def test_the_entrypoint_uses_the_records_configs_and_signals(edge):
    stack = golden_stack(edge, "certbot-http01")
    entry = edges.edge(edge)
    script = next(f.content for f in render(stack) if f.path == "edge/entrypoint.sh").decode()
    assert f"FULL={entry.full_config}\n" in script and f"BOOT={entry.bootstrap_config}\n" in script
    assert {c.name for c in entry.configs} >= {entry.full_config, entry.bootstrap_config}


@pytest.mark.parametrize("edge", sorted(edges.EDGES))
def test_renewal_reloads_with_the_records_command(edge):
    expected = list(edges.edge(edge).reload_command) if edges.edge(edge).reload_command else None
    assert renewal.reload_command(edge) == expected


def test_one_deploy_hook_for_run_sh_and_renewal():
    stack = golden_stack("caddy", "certbot-http01")
    run_sh = next(f.content for f in render(stack) if f.path == "certbot/run.sh").decode()
    assert f'HOOK="{edges.DEPLOY_HOOK}"\n' in run_sh
    command = renewal.renew_command(stack, False)
    assert command[command.index("--deploy-hook") + 1] == edges.DEPLOY_HOOK


@pytest.mark.parametrize(("edge", "image"), [(e.name, image) for e in edges.EDGES.values() for image in e.images])
def test_verify_recognises_each_edges_images(edge, image):
    """roles.infer_role (vocabulary, below generate/) keeps its own list: held to the records here."""
    for reference in (image, f"{image}:1", f"docker.io/{image}:1" if "/" in image else f"docker.io/library/{image}:1"):
        assert infer_role(reference, {})[0] is Role.EDGE, reference
