"""Images of several instances: each instance's service is checked on its own, `--pin` writes instances[].image,
backup reads each instance's volume with its own image; `stackgen build` builds only instances that need an image
(tests/unit/images/test_build_instances.py has the rest)."""

from __future__ import annotations

import pytest

from stackgen.errors import StackgenError
from stackgen.generate.render import default_images
from stackgen.images import build
from stackgen.images.check import check_images, pin, stack_images
from stackgen.images.registry import Platform, Registry
from stackgen.instances.edit import add_instance
from stackgen.operate.backup import data_volumes
from stackgen.stackdir import dump_stack, load_stack
from tests.golden import EXAMPLE_HASH
from tests.unit.images.test_images import NODE_RED_TAG, mirror, stack


def two():
    return add_instance(stack(), "lab", ["lab.example.org"], {"admin_password_hash": EXAMPLE_HASH, "version": NODE_RED_TAG}).stack


def test_each_instance_service_has_its_image():
    images = stack_images(two())
    assert list(images) == ["node-red", "node-red-lab", "edge", "certbot"]
    assert images["node-red-lab"] == f"nodered/node-red:{NODE_RED_TAG}"
    lab = two().model_copy(deep=True)
    lab.instances[1].image = "registry.example/me/lab:1"
    assert default_images(lab)["node-red-lab"] == "registry.example/me/lab:1" and default_images(lab)["node-red"] != "registry.example/me/lab:1"


def test_pin_writes_each_instance_its_own_digest(tmp_path):
    (tmp_path / "stack.yaml").write_bytes(dump_stack(two()))
    fake, digests = mirror()
    checks = check_images(stack_images(two()), Platform.parse("linux/arm64"), registry="127.0.0.1:5000",
                          registry_factory=lambda h: Registry(h, transport=fake))
    written = pin(tmp_path, checks)
    pinned = load_stack(tmp_path)
    expected = f"nodered/node-red:{NODE_RED_TAG}@{digests['nodered/node-red']['linux/arm64']}"
    assert [i.image for i in pinned.instances] == [expected, expected]
    assert written["instances[1].image"] == expected and pinned.images.node_red is None
    assert written["images.edge"] == pinned.images.edge


def test_backup_reads_every_instance_volume():
    assert data_volumes(two()) == {"node-red-data": "node-red", "node-red-lab-data": "node-red-lab"}
    assert data_volumes(stack()) == {"node-red-data": "node-red"}


def test_build_of_instances_without_extra_nodes_builds_nothing(tmp_path):
    (tmp_path / "stack.yaml").write_bytes(dump_stack(two()))
    before = (tmp_path / "stack.yaml").read_bytes()
    done = build.build_stack(tmp_path, builder=build.Builder("buildkit", "docker"), runner=lambda *_: 1)
    assert done.images == [] and [name for name, _ in done.skipped] == ["node-red", "lab"]
    assert (tmp_path / "stack.yaml").read_bytes() == before
    with pytest.raises(StackgenError, match="0 images built"):
        build.build(tmp_path, builder=build.Builder("buildkit", "docker"), runner=lambda *_: 1)
