"""`stackgen build` of a version 2 stack, for real: two instances, only one of which declares an extra node.

The build runs with the real engine (linux/amd64, native, no registry) FROM the local Node-RED twin
(`stackgen-local/node-red`, its content tag: nothing is pulled). As in test_pi.py, the only traffic leaving the
machine is npm fetching the extra node on the host during the build (the lock and `npm ci`); the container of the
result runs with no network. Checked: the built image holds the node where Node-RED resolves it, stack.yaml points
that instance (and only it) at the image, the other instance keeps the official image, and `generate` renders each
instance with its own. Under CI=true a missing engine fails (conftest), never skips.
"""

from __future__ import annotations

import json
import time

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.spec import Stack
from stackgen.stackdir import dump_stack, load_stack
from stackgen.upstream.contracts import load_contract
from tests.integration.conftest import _unavailable

pytestmark = pytest.mark.engine

HASH = "$2b$10$8Rl3dm2WS59eF2aCdMwpQeBH22YmBKPmoeO.UTSxEMBtlgrKOYLfS"
EXTRA_NODE, EXTRA_VERSION = "node-red-node-random", "0.4.1"  # pinned: the lock is made afresh each run


@pytest.fixture(scope="module")
def node_red_base(engine) -> str:
    """The Node-RED twin's content tag (built from tests/images once, cached by recipe hash)."""
    from tests.images.build import ensure_images, pinned

    try:
        ensure_images(["node-red"])
    except Exception as exc:  # noqa: BLE001 - any failure here means no base to build from
        _unavailable(f"building the local Node-RED test image failed: {exc}")
    return pinned("node-red")


@pytest.fixture(scope="module")
def built(engine, node_red_base, tmp_path_factory):
    """`stackgen build DIR` of a two-instance stack (site: nothing to build; lab: one extra node), then `generate`."""
    directory = tmp_path_factory.mktemp("instances") / "stack"
    directory.mkdir()
    spec = {"version": 2, "project": "sgbuild2", "domains": ["site.example.org", "lab.example.org"], "email": "ops@example.org",
            "instances": [{"name": "site", "domains": ["site.example.org"], "admin_password_hash": HASH},
                          {"name": "lab", "domains": ["lab.example.org"], "admin_password_hash": HASH,
                           "extra_nodes": [f"{EXTRA_NODE}@{EXTRA_VERSION}"], "base_image": node_red_base}]}
    (directory / "stack.yaml").write_bytes(dump_stack(Stack.model_validate(spec)))
    before = {tag for image in engine.images.list() for tag in image.tags}
    runner = CliRunner()
    refused = runner.invoke(app, ["generate", str(directory)])
    assert refused.exit_code != 0 and "instances[1].image is unset" in refused.output, refused.output
    started = time.monotonic()
    result = runner.invoke(app, ["build", str(directory)])
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    print(f"\nstackgen build (two instances, one built, linux/amd64): {seconds:.1f}s")
    generated = runner.invoke(app, ["generate", str(directory)])
    assert generated.exit_code == 0, generated.output
    yield directory, result.output
    for image in engine.images.list():
        for tag in image.tags:
            if tag not in before and tag.startswith("localhost/stackgen/sgbuild2-"):
                engine.images.remove(tag)


def test_only_the_instance_with_an_extra_node_gets_an_image(built):
    directory, output = built
    stack = load_stack(directory)
    site, lab = stack.instances
    assert lab.image and lab.image.startswith("localhost/stackgen/sgbuild2-node-red:"), output
    assert f"stack.yaml: instances[1].image = {lab.image}" in output
    assert site.image is None and "skipped instance site: nothing to build" in output
    assert json.loads((directory / "node-red-lab" / "package.json").read_text())["dependencies"] == {EXTRA_NODE: EXTRA_VERSION}
    assert (directory / "node-red-lab" / "package-lock.json").is_file() and not (directory / "node-red-site" / "Dockerfile").exists()


def test_the_built_image_holds_the_node_where_node_red_resolves_it(built, engine):
    directory, _ = built
    reference = load_stack(directory).instances[1].image
    script = (f"const p=require.resolve('{EXTRA_NODE}/package.json',{{paths:['/usr/src/node-red']}});"
              "const fs=require('fs');const s=fs.statSync(p);"
              "console.log(JSON.stringify({path:p,version:require(p).version,uid:s.uid,nodes:require(p)['node-red']}))")
    out = engine.containers.run(reference, ["node", "-e", script], entrypoint=[], network_mode="none", remove=True).decode()
    found = json.loads(out.strip().splitlines()[-1])
    assert found["path"] == f"/usr/src/node_modules/{EXTRA_NODE}/package.json"
    assert found["version"] == EXTRA_VERSION and found["nodes"], found
    assert found["uid"] == 0, "baked-in code is root's: the uid-1000 Node-RED cannot change it"
    labels = engine.images.get(reference).labels
    assert labels["org.stackgen.extra-nodes"] == EXTRA_NODE


def test_generate_renders_each_instance_with_its_own_image(built):
    directory, _ = built
    stack = load_stack(directory)
    services = YAML(typ="safe").load((directory / "compose.yaml").read_text())["services"]
    assert services["node-red-lab"]["image"] == stack.instances[1].image
    official = load_contract("node-red").image
    assert services["node-red-site"]["image"] == f"{official}:{load_contract('node-red').tag_for(stack.platform).tag}"

