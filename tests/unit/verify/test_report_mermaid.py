"""`verify --format mermaid`: the topology as a diagram (issue 11, part 6, the Mermaid half)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.verify.mermaid import render_mermaid
from stackgen.verify.pipeline import verify

ROOT = Path(__file__).resolve().parents[3]


def test_reference_stack_diagram_shows_networks_roles_ports_and_the_key_volume():
    result = verify([ROOT / "compose" / "caddy" / "compose.yaml"], fail_on=None)
    text = render_mermaid(result.topology, result.findings)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert sum(1 for line in lines if line.strip().startswith("subgraph ")) == sum(1 for line in lines if line.strip() == "end") == 2
    assert 'network internal (internal)' in text and 'network public (routed)' in text
    assert '[["node-red · node-red"]]' in text and '{{"edge · edge"}}' in text
    assert re.search(r'host -->\|"0\.0\.0\.0:443-&gt;8443/tcp"\| svc_internal__edge', text)
    assert re.search(r'svc_internal__edge ---\|"ro"\| vol_certs', text) and re.search(r'svc_public__certbot ---\|"rw"\| vol_certs', text)
    assert "style" not in text, "a clean stack has nothing marked"


def test_a_weak_stack_marks_the_services_with_serious_findings(tmp_path):
    (tmp_path / "compose.yaml").write_text('services:\n  nr:\n    image: nodered/node-red:5.0.7\n    ports: ["1880:1880"]\n')
    result = verify([tmp_path / "compose.yaml"], project_dir=tmp_path, fail_on=None)
    text = render_mermaid(result.topology, result.findings)
    assert "style svc_default__nr stroke:#c00" in text


def test_hostile_names_cannot_change_the_diagram(tmp_path):
    (tmp_path / "compose.yaml").write_text('services:\n  a:\n    image: alpine:3.20\n    networks: [x]\n'
                                           'networks:\n  x:\n    name: \'evil"] --> y["\'\n')
    result = verify([tmp_path / "compose.yaml"], project_dir=tmp_path, fail_on=None)
    text = render_mermaid(result.topology, result.findings)
    for line in text.splitlines():
        assert line.count('"') % 2 == 0, line


def test_cli_prints_mermaid():
    result = CliRunner().invoke(app, ["verify", str(ROOT / "compose" / "nginx" / "compose.yaml"), "--format", "mermaid"])
    assert result.exit_code == 0 and result.output.startswith("flowchart LR")


def test_serious_findings_mark_the_network_they_concern():
    result = verify([ROOT / "tests" / "corpus" / "npm-shared-certs.compose.yaml"], fail_on=None)
    text = render_mermaid(result.topology, result.findings)
    assert "style net_proxy stroke:#c00" in text, "SG103 (Node-RED on a shared routed network) is the network's"
    assert "style svc_proxy__node_red stroke:#c00" in text, "services are marked as before"
