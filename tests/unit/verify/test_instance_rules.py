"""verify sees instance-to-instance separation: a rendered two-instance stack verifies clean for every edge x TLS
mode, and the same stack broken by hand so that two instances share a network is flagged (SG113) on both."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from stackgen.findings import Finding
from stackgen.generate.render import render
from stackgen.topology import Role
from stackgen.verify.pipeline import verify
from tests.golden import combos
from tests.unit.generate.test_instances_render import two


def write_stack(directory: Path, edge: str, mode: str) -> Path:
    for item in render(two(edge, mode)):
        path = directory / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.content)
    return directory / "compose.yaml"


def findings(compose: Path) -> list[Finding]:
    return [f for f in verify([compose], environ={}).findings if not f.suppressed]


def edit(compose: Path, change) -> None:
    yaml = YAML()
    document = yaml.load(compose.read_text())
    change(document)
    with compose.open("w") as handle:
        yaml.dump(document, handle)


@pytest.mark.parametrize("combo", combos(), ids="-".join)
def test_a_rendered_two_instance_stack_verifies_clean(tmp_path, combo):
    compose = write_stack(tmp_path, *combo)
    result = verify([compose], environ={})
    assert [f"{f.rule} {f.service}: {f.message}" for f in result.findings if not f.suppressed] == []
    roles = {name: svc.role for name, svc in result.topology.services.items()}
    assert roles["node-red"] is Role.NODE_RED and roles["node-red-lab"] is Role.NODE_RED


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_two_instances_on_one_network_are_flagged(tmp_path, edge):
    compose = write_stack(tmp_path, edge, "certbot-http01")
    edit(compose, lambda doc: doc["services"]["node-red-lab"]["networks"].append("internal"))
    found = [f for f in findings(compose) if f.rule == "SG113"]
    assert sorted(f.service for f in found) == ["node-red", "node-red-lab"]
    assert all("'internal'" in f.message for f in found)
    assert {f.rule for f in findings(compose)} == {"SG113"}, "SG113 alone names it: the other rules see an edge and Node-REDs"


def test_a_shared_egress_network_is_flagged_too(tmp_path):
    compose = write_stack(tmp_path, "caddy", "internal")
    edit(compose, lambda doc: doc["services"]["node-red"]["networks"].append("egress-lab"))
    found = [f for f in findings(compose) if f.rule == "SG113"]
    assert sorted(f.service for f in found) == ["node-red", "node-red-lab"] and "'egress-lab'" in found[0].message


def test_two_node_reds_of_someone_elses_file_on_the_default_network(tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  flows-a:\n    image: nodered/node-red:5.0.7\n  flows-b:\n    image: nodered/node-red:5.0.7\n")
    assert sorted(f.service for f in findings(compose) if f.rule == "SG113") == ["flows-a", "flows-b"]


def test_one_node_red_is_never_flagged_and_the_link_can_be_accepted(tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  node-red:\n    image: nodered/node-red:5.0.7\n    networks: [internal]\n"
                       "networks:\n  internal: {internal: true}\n")
    assert not [f for f in findings(compose) if f.rule == "SG113"]
    linked = write_stack(tmp_path / "linked", "nginx", "internal")
    reason = {"ignore": [{"rule": "SG113", "reason": "lab calls node-red's HTTP-in API directly, by design"}]}

    def link(doc):
        doc["services"]["node-red-lab"]["networks"].append("internal")
        for name in ("node-red", "node-red-lab"):
            doc["services"][name]["x-stackgen"] = reason
    edit(linked, link)
    result = verify([linked], environ={})
    assert [f.rule for f in result.findings if f.rule == "SG113" and f.suppressed] == ["SG113", "SG113"]
    assert not [f for f in result.findings if f.rule == "SG113" and not f.suppressed]
