"""`stackgen build` of a version 2 stack, without an engine: which instances are planned and skipped, `--instance`,
per-instance build contexts, shared images for identical inputs, the writes to stack.yaml (instances[].image, never
over a hand edit made while building), the refusals; and `generate` refusing a Node-RED whose declared extra nodes
its image cannot hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.errors import StackgenError
from stackgen.generate import workflow
from stackgen.images import build
from stackgen.images.registry import Registry
from stackgen.spec import Stack
from stackgen.stackdir import dump_stack, load_stack
from stackgen.upstream.contracts import load_contract
from tests.support.fakes import FakeRegistry
from tests.unit.images.test_build import HASH, FakeDocker

BUILDKIT = build.Builder("buildkit", "/usr/bin/docker", "20.10.24")
OFFICIAL = load_contract("node-red").image


def two_instances(**lab) -> dict:
    """A version 2 stack: `site` (nothing to build) and `lab` (whatever `lab` says)."""
    return {"version": 2, "project": "farm", "domains": ["site.example.org", "lab.example.org"], "email": "a@example.org",
            "instances": [{"name": "site", "domains": ["site.example.org"], "admin_password_hash": HASH},
                          {"name": "lab", "domains": ["lab.example.org"], "admin_password_hash": HASH, **lab}]}


def write(directory: Path, spec: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.yaml").write_bytes(dump_stack(Stack.model_validate(spec)))
    return directory


@pytest.fixture
def no_npm(monkeypatch):
    """Extra nodes without npm: the lock 'npm' writes is the package.json's dependencies, the install an empty tree."""
    from stackgen.images import plan

    def fake_npm(args, cwd, what):
        if args[0] == "install":
            package = json.loads((cwd / "package.json").read_text())
            (cwd / "package-lock.json").write_text(json.dumps({"name": package["name"], "lockfileVersion": 3, "packages": {
                "": {"dependencies": package["dependencies"]},
                **{f"node_modules/{n}": {"version": "1.0.0"} for n in package["dependencies"]}}}))
        else:
            (cwd / "node_modules").mkdir(exist_ok=True)

    monkeypatch.setattr(plan, "_run_npm", fake_npm)


def built_tags(docker: FakeDocker) -> list[str]:
    return [c[c.index("-t") + 1] for c, _ in docker.commands if c[1] == "build"]


def test_only_the_instance_with_extra_nodes_is_built_into_its_own_context(tmp_path, no_npm):
    directory = write(tmp_path / "s", two_instances(extra_nodes=["node-red-node-random@0.4.1"]))
    docker, events = FakeDocker(FakeRegistry()), []
    done = build.build_stack(directory, [], builder=BUILDKIT, runner=docker, report=events.append)
    assert [(name, why.split(":")[0]) for name, why in done.skipped] == [("site", "nothing to build (no extra_nodes, no base_image)")]
    assert f"it runs {OFFICIAL}:" in done.skipped[0][1]
    assert len(built_tags(docker)) == 1 and built_tags(docker)[0].startswith("localhost/stackgen/farm-node-red:")
    build_command = next(c for c, _ in docker.commands if c[1] == "build")
    assert build_command[-1] == str(directory / "node-red-lab"), "each instance builds in its own service's directory"
    assert json.loads((directory / "node-red-lab" / "package.json").read_text())["dependencies"] == {"node-red-node-random": "0.4.1"}
    assert (directory / "node-red-lab" / "Dockerfile").is_file() and not (directory / "node-red-site").exists()
    assert not (directory / "node-red").exists(), "the version 1 context is not used by a version 2 stack"
    stack = load_stack(directory)
    assert stack.instances[1].image == done.images[0].result.reference == built_tags(docker)[0]
    assert stack.instances[0].image is None, "the instance with nothing to build keeps the official image"
    assert done.images[0].fields == ["instances[1].image"] and done.images[0].instances == ["lab"]
    assert {e.platform for e in events if e.kind in ("step", "done")} == {"lab linux/amd64"}, "progress names the instance"
    assert any(e.platform == "site" and e.kind == "note" for e in events)


def test_instance_chooses_and_an_unknown_name_is_refused_naming_the_flag(tmp_path, no_npm):
    spec = two_instances(extra_nodes=["node-red-node-random"])
    spec["instances"][0]["base_image"] = "example.org/my/node-red:5"
    directory = write(tmp_path / "s", spec)
    docker = FakeDocker(FakeRegistry())
    done = build.build_stack(directory, [], builder=BUILDKIT, runner=docker, instances=["site"])
    assert [i for image in done.images for i in image.instances] == ["site"] and not done.skipped
    assert "FROM example.org/my/node-red:5" in (directory / "node-red-site" / "Dockerfile").read_text()
    assert load_stack(directory).instances[1].image is None, "lab was not chosen: untouched"
    with pytest.raises(StackgenError, match=r"--instance: no instance named 'shop' in .*stack.yaml \(instances: site, lab\)"):
        build.build_stack(directory, [], builder=BUILDKIT, runner=docker, instances=["shop"])


def test_instance_on_a_version_1_stack_is_refused(tmp_path):
    from tests.unit.images.test_build import make_stack

    (tmp_path / "stack.yaml").write_bytes(dump_stack(make_stack()))
    with pytest.raises(StackgenError, match="--instance: .* is a version 1 stack"):
        build.build_stack(tmp_path, [], builder=BUILDKIT, runner=FakeDocker(FakeRegistry()), instances=["node-red"])


def test_nothing_to_build_builds_nothing_and_writes_nothing(tmp_path):
    directory = write(tmp_path / "s", two_instances())
    before = (directory / "stack.yaml").read_bytes()
    docker = FakeDocker(FakeRegistry())
    done = build.build_stack(directory, [], builder=BUILDKIT, runner=docker)
    assert done.images == [] and [name for name, _ in done.skipped] == ["site", "lab"]
    assert docker.commands == [] and (directory / "stack.yaml").read_bytes() == before


def test_identical_instances_share_one_build(tmp_path, no_npm):
    spec = two_instances(extra_nodes=["node-red-node-random@0.4.1"])
    spec["instances"][0]["extra_nodes"] = ["node-red-node-random@0.4.1"]
    directory = write(tmp_path / "s", spec)
    docker = FakeDocker(FakeRegistry())
    done = build.build_stack(directory, [], builder=BUILDKIT, runner=docker)
    assert len(built_tags(docker)) == 1, "same nodes, lock, base, healthcheck, platform: one tag, one build"
    assert done.images[0].instances == ["site", "lab"] and done.images[0].fields == ["instances[0].image", "instances[1].image"]
    stack = load_stack(directory)
    assert stack.instances[0].image == stack.instances[1].image == built_tags(docker)[0]


def test_different_nodes_give_different_images_and_tag_is_refused_for_them(tmp_path, no_npm):
    spec = two_instances(extra_nodes=["node-red-node-random@0.4.1"])
    spec["instances"][0]["extra_nodes"] = ["node-red-node-ping@0.3.3"]
    directory = write(tmp_path / "s", spec)
    docker = FakeDocker(FakeRegistry())
    build.build_stack(directory, [], builder=BUILDKIT, runner=docker)
    assert len(set(built_tags(docker))) == 2
    with pytest.raises(StackgenError, match="--tag: 2 different images to build"):
        build.build_stack(directory, [], tag="mine", builder=BUILDKIT, runner=docker)
    build.build_stack(directory, [], tag="mine", builder=BUILDKIT, runner=docker, instances=["lab"])
    assert load_stack(directory).instances[1].image == "localhost/stackgen/farm-node-red:mine"


def test_several_platforms_push_and_join_per_instance(tmp_path, no_npm):
    directory = write(tmp_path / "s", two_instances(extra_nodes=["node-red-node-random@0.4.1"], path=None))
    fake_registry = FakeRegistry()
    docker = FakeDocker(fake_registry)
    done = build.build_stack(directory, ["linux/arm64", "linux/arm/v7"], registry="127.0.0.1:5000", builder=BUILDKIT, runner=docker,
                             registry_factory=lambda h: Registry(h, transport=fake_registry))
    assert [t.rsplit("-", 2)[-2:] for t in built_tags(docker)] == [["linux", "arm64"], ["arm", "v7"]]
    reference = load_stack(directory).instances[1].image
    assert reference == done.images[0].result.reference and re.search(r"@sha256:[0-9a-f]{64}$", reference)
    assert (directory / "node-red-lab" / ".build" / "linux-arm64" / "node_modules").is_dir()
    assert (directory / "node-red-lab" / ".build" / "linux-armv7" / "node_modules").is_dir()


def test_a_failure_names_the_instance_and_writes_nothing(tmp_path, no_npm):
    spec = two_instances(extra_nodes=["node-red-node-random"])
    spec["instances"][0]["extra_nodes"] = ["node-red-node-ping"]
    directory = write(tmp_path / "s", spec)
    before = (directory / "stack.yaml").read_bytes()

    class FailsSecond(FakeDocker):
        def __call__(self, command, env, on_line):
            if command[1] == "build" and command[-1].endswith("node-red-lab"):
                on_line('#5 [2/2] RUN ["node", "-e", "..."]')
                on_line("#5 ERROR: process did not complete successfully: exit code: 1")
                return 1
            return super().__call__(command, env, on_line)

    with pytest.raises(build.BuildError) as caught:
        build.build_stack(directory, [], builder=BUILDKIT, runner=FailsSecond(FakeRegistry()))
    assert str(caught.value).startswith("instance lab: linux/amd64") and caught.value.platform == "linux/amd64"
    assert caught.value.step == '[2/2] RUN ["node", "-e", "..."]'
    assert (directory / "stack.yaml").read_bytes() == before, "site's image was built, but nothing is written unless all were"


def test_a_hand_edit_while_building_is_kept_and_a_stale_image_not_written(tmp_path, no_npm):
    directory = write(tmp_path / "s", two_instances(extra_nodes=["node-red-node-random@0.4.1"]))

    class EditsMeanwhile(FakeDocker):
        def __init__(self, registry, change):
            super().__init__(registry)
            self.change = change

        def __call__(self, command, env, on_line):
            if command[1] == "build":
                stack = load_stack(directory)
                self.change(stack)
                (directory / "stack.yaml").write_bytes(dump_stack(stack))
            return super().__call__(command, env, on_line)

    def other_setting(stack):
        stack.instances[0].memory_limit = "300m"

    build.build_stack(directory, [], builder=BUILDKIT, runner=EditsMeanwhile(FakeRegistry(), other_setting))
    stack = load_stack(directory)
    assert stack.instances[0].memory_limit == "300m", "stack.yaml is read again before writing: the hand edit stays"
    assert stack.instances[1].image is not None

    def new_node(stack):
        stack.instances[1].extra_nodes = ["node-red-node-random@0.4.1", "node-red-node-ping@0.3.3"]

    image_before = stack.instances[1].image
    stack.instances[1].extra_nodes = ["node-red-node-random@0.4.0"]
    (directory / "stack.yaml").write_bytes(dump_stack(stack))
    with pytest.raises(StackgenError, match=r"instances\[1\] changed while building .* nothing written"):
        build.build_stack(directory, [], builder=BUILDKIT, runner=EditsMeanwhile(FakeRegistry(), new_node))
    assert load_stack(directory).instances[1].image == image_before
    assert load_stack(directory).instances[1].extra_nodes == ["node-red-node-random@0.4.1", "node-red-node-ping@0.3.3"]


def test_the_version_1_layout_is_unchanged(tmp_path, no_npm):
    from tests.unit.images.test_build import make_stack

    (tmp_path / "stack.yaml").write_bytes(dump_stack(make_stack("linux/amd64", extra_nodes=["node-red-node-random@0.4.1"])))
    docker = FakeDocker(FakeRegistry())
    done = build.build_stack(tmp_path, [], builder=BUILDKIT, runner=docker)
    assert next(c for c, _ in docker.commands if c[1] == "build")[-1] == str(tmp_path / "node-red")
    assert done.images[0].fields == ["images.node_red"] and not done.several and not done.skipped
    assert load_stack(tmp_path).images.node_red == done.images[0].result.reference == done.images[0].result.written


# ----------------------------------------------------------------------------- the CLI


def test_cli_builds_skips_with_a_note_and_says_what_it_wrote(tmp_path, no_npm, monkeypatch):
    from stackgen.cli.app import app

    directory = write(tmp_path / "s", two_instances(extra_nodes=["node-red-node-random@0.4.1"]))
    real, docker = build.build_stack, FakeDocker(FakeRegistry())
    monkeypatch.setattr(build, "build_stack", lambda *args, **kwargs: real(*args, **kwargs, builder=BUILDKIT, runner=docker))
    result = CliRunner().invoke(app, ["build", str(directory)])
    assert result.exit_code == 0, result.output
    assert "skipped instance site: nothing to build" in result.output
    assert re.search(r"built localhost/stackgen/farm-node-red:\S+ for instance lab", result.output)
    assert f"stack.yaml: instances[1].image = {load_stack(directory).instances[1].image}" in result.output
    assert "next: stackgen generate" in result.output
    refused = CliRunner().invoke(app, ["build", str(directory), "--instance", "nope"])
    assert refused.exit_code == 2 and "--instance: no instance named 'nope'" in refused.output


# ----------------------------------------------------------------------------- generate: never silently without the nodes


@pytest.mark.parametrize(("lab", "image", "message"), [
    ({"extra_nodes": ["node-red-node-random@0.4.1"]}, None,
     r"stack.yaml:\d+: instances\[1\].extra_nodes declares node-red-node-random@0.4.1, but instances\[1\].image is unset"),
    ({"extra_nodes": ["node-red-node-random@0.4.1"]}, f"docker.io/{OFFICIAL}:5.0.7@sha256:" + "a" * 64,
     r"instances\[1\].image is the official image"),
    ({"base_image": "example.org/my/node-red:5"}, None, r"instances\[1\].base_image is example.org/my/node-red:5, but .* unset"),
])
def test_generate_refuses_an_instance_whose_image_lacks_its_declared_nodes(tmp_path, lab, image, message):
    spec = two_instances(**lab, **({"image": image} if image else {}))
    directory = write(tmp_path / "s", spec)
    with pytest.raises(StackgenError, match=message) as caught:
        workflow.generate(directory)
    assert "stackgen build" in str(caught.value) and "--instance lab" in str(caught.value)
    assert not (directory / "compose.yaml").exists(), "nothing written"


def test_generate_refuses_a_version_1_stack_without_its_built_image(tmp_path):
    from tests.unit.images.test_build import make_stack

    (tmp_path / "stack.yaml").write_bytes(dump_stack(make_stack(extra_nodes=["node-red-node-random"])))
    with pytest.raises(StackgenError, match=r"stack.yaml:\d+: node_red.extra_nodes declares node-red-node-random, but images.node_red is unset"):
        workflow.generate(tmp_path)


def test_generate_refuses_an_image_built_before_the_nodes_changed(tmp_path, no_npm):
    directory = write(tmp_path / "s", two_instances(extra_nodes=["node-red-node-random@0.4.1"]))
    build.build_stack(directory, [], builder=BUILDKIT, runner=FakeDocker(FakeRegistry()))
    workflow.generate(directory)  # built: fine
    stack = load_stack(directory)
    stack.instances[1].extra_nodes = ["node-red-node-random@0.4.1", "node-red-node-ping@0.3.3"]
    (directory / "stack.yaml").write_bytes(dump_stack(stack))
    with pytest.raises(StackgenError, match=r"instances\[1\].extra_nodes .* was built from node-red-lab/package.json, "
                                            r"which lists node-red-node-random: extra_nodes changed since the last build"):
        workflow.generate(directory)
    build.build_stack(directory, [], builder=BUILDKIT, runner=FakeDocker(FakeRegistry()))
    workflow.generate(directory)


def test_generate_renders_each_instance_with_its_own_image(tmp_path, no_npm):
    from ruamel.yaml import YAML

    directory = write(tmp_path / "s", two_instances(extra_nodes=["node-red-node-random@0.4.1"]))
    done = build.build_stack(directory, [], builder=BUILDKIT, runner=FakeDocker(FakeRegistry()))
    workflow.generate(directory)
    services = YAML(typ="safe").load((directory / "compose.yaml").read_text())["services"]
    assert services["node-red-lab"]["image"] == done.images[0].result.reference
    assert services["node-red-site"]["image"].startswith(f"{OFFICIAL}:")


def test_pin_leaves_an_instance_awaiting_its_build_unpinned(tmp_path):
    from stackgen.images.check import check_images, pin, stack_images
    from stackgen.images.registry import Platform
    from stackgen.instances.edit import add_instance
    from tests.golden import EXAMPLE_HASH
    from tests.unit.images.test_images import NODE_RED_TAG, mirror, stack

    two = add_instance(stack(), "lab", ["lab.example.org"], {"admin_password_hash": EXAMPLE_HASH, "version": NODE_RED_TAG,
                                                             "extra_nodes": ["node-red-node-random"]}).stack
    (tmp_path / "stack.yaml").write_bytes(dump_stack(two))
    fake, digests = mirror()
    checks = check_images(stack_images(two), Platform.parse("linux/arm64"), registry="127.0.0.1:5000",
                          registry_factory=lambda h: Registry(h, transport=fake))
    notes: list[str] = []
    written = pin(tmp_path, checks, notes)
    pinned = load_stack(tmp_path)
    assert pinned.instances[1].image is None and "instances[1].image" not in written, "the official image is lab's base, not its image"
    assert pinned.instances[0].image == f"{OFFICIAL}:{NODE_RED_TAG}@{digests[OFFICIAL]['linux/arm64']}"
    assert notes and notes[0].startswith("node-red-lab: not pinned")
