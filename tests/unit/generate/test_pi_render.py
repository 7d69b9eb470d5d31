"""Platform-specific rendering, read from the reference stacks in compose/ (their golden files):
amd64 (compose/caddy), arm64 (compose/pi), arm/v7 (compose/pi-armv7)."""

from __future__ import annotations

import pytest

from stackgen.generate.render import PLATFORM_SIZING
from tests import golden, invariants

CASES = {
    "caddy": ("linux/amd64", {"node-red": "512m", "edge": "256m", "certbot": "256m"}, {"max-size": "10m", "max-file": "3"}),
    "pi": ("linux/arm64", {"node-red": "384m", "edge": "128m", "certbot": "192m"}, {"max-size": "5m", "max-file": "2"}),
    "pi-armv7": ("linux/arm/v7", {"node-red": "256m", "edge": "96m", "certbot": "160m"}, {"max-size": "2m", "max-file": "2"}),
}


def compose(name: str) -> dict:
    """The golden compose.yaml on disk (test_render checks it is current)."""
    return invariants.load((golden.EXAMPLES / name / "compose.yaml").read_text())


@pytest.mark.parametrize("name", CASES)
def test_every_service_is_pinned_to_the_platform_and_sized_for_it(name):
    platform, memory, logs = CASES[name]
    services = compose(name)["services"]
    assert {s: services[s]["platform"] for s in services} == {s: platform for s in services}
    assert {s: services[s]["mem_limit"] for s in services} == memory
    assert all(services[s]["logging"]["options"] == logs for s in services), "log rotation sized for the medium (SD cards wear)"


def test_sizes_shrink_with_the_platform():
    """A Pi has less RAM than a server and an SD card that wears: never more on arm64 than amd64, never more on arm/v7 than arm64."""
    def megabytes(size: str) -> int:
        return int(size[:-1]) * (1024 if size.endswith("g") else 1)

    order = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    for key in ("node_red", "edge", "certbot", "log_size"):
        values = [megabytes(PLATFORM_SIZING[p][key]) for p in order]
        assert values == sorted(values, reverse=True), key


def test_node_red_heap_follows_the_memory_limit():
    heaps = {name: compose(name)["services"]["node-red"]["environment"]["NODE_OPTIONS"] for name in CASES}
    assert heaps == {"caddy": "--max-old-space-size=384", "pi": "--max-old-space-size=288", "pi-armv7": "--max-old-space-size=192"}


def test_arm_v7_example_images():
    """The images rendered for arm/v7 (each must publish arm/v7, or arm/v6 which runs there: `stackgen images check`)."""
    from stackgen.upstream.contracts import load_contract, runs_on

    services = compose("pi-armv7")["services"]
    node_red = load_contract("node-red")
    assert services["node-red"]["image"] == f"nodered/node-red:{node_red.tag_for('linux/arm/v7').tag}"
    assert node_red.tag_for("linux/arm/v7").major == 4 < node_red.tags[0].major, "Node-RED 5 dropped 32-bit ARM"
    assert services["edge"]["image"] == load_contract("nginx").reference("linux/arm/v7")
    assert services["certbot"]["image"] == load_contract("certbot").reference("linux/arm/v7")
    for name, contract in (("edge", "nginx"), ("certbot", "certbot")):
        tag = services[name]["image"].rpartition(":")[2]
        assert runs_on("linux/arm/v7", next(t.platforms for t in load_contract(contract).tags if t.tag == tag))
