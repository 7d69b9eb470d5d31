"""A bare service fragment is judged, its missing `services:` reported (issue 11, part 4); a file that is no
compose file at all is still a clear exit-2 error; a file Compose accepts without services is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.composefile.loader import load_model
from stackgen.composefile.yaml_loader import ComposeError
from stackgen.verify.pipeline import verify


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def missing_context(result) -> list[str]:
    return [f.message for f in result.findings if f.rule == "SG043"]


SERVICE_BODY = """\
image: nodered/node-red:5.0.7
user: root
ports: ["1880:1880"]
volumes:
  - /var/run/docker.sock:/var/run/docker.sock
environment:
  TZ: Europe/Berlin
"""


def test_a_service_body_alone_is_judged_as_one_service_named_after_its_file(tmp_path):
    result = verify([write(tmp_path, "node-red.yaml", SERVICE_BODY)], project_dir=tmp_path)
    assert list(result.topology.services) == ["node-red"]
    rules = {f.rule: f for f in result.findings if not f.suppressed}
    assert {"SG002", "SG018", "SG102"} <= set(rules), "the fragment's real flaws are reported"
    assert rules["SG002"].line == 5 and rules["SG018"].line == 2, "at the fragment's own lines"
    (note,) = missing_context(result)
    assert "no `services:` section" in note and "'node-red'" in note and "bare service fragment" in note
    assert rules["SG043"].line == 1
    assert result.exit_code == 1, "the exit code follows the findings"


def test_a_fragment_takes_its_container_name_as_the_service_name(tmp_path):
    text = "container_name: flows\nimage: nodered/node-red:5.0.7\n"
    result = verify([write(tmp_path, "docker-compose.yml", text)], project_dir=tmp_path, fail_on=None)
    assert list(result.topology.services) == ["flows"]


def test_a_compose_v1_file_is_judged_with_its_v1_keys_read_as_todays(tmp_path):
    text = ("web:\n  image: nginx:1.27\n  net: host\n  log_driver: syslog\n  ports: [\"80:80\"]\n"
            "nodered:\n  image: nodered/node-red:3.1\n  privileged: true\n")
    result = verify([write(tmp_path, "docker-compose.yml", text)], project_dir=tmp_path)
    services = result.topology.services
    assert sorted(services) == ["nodered", "web"]
    assert services["web"].network_mode == "host" and services["web"].logging.driver == "syslog"
    rules = {(f.rule, f.service) for f in result.findings}
    assert {("SG001", "nodered"), ("SG006", "web")} <= rules
    host = next(f for f in result.findings if f.rule == "SG006")
    assert host.line == 3, "`net: host` is blamed where it is written"
    (note,) = missing_context(result)
    assert "Compose v1 file of 2 service(s), nodered, web" in note and "net -> network_mode" in note


def test_a_file_of_networks_alone_is_accepted_as_compose_does(tmp_path):
    result = verify([write(tmp_path, "networks.yaml", "name: x\nnetworks:\n  proxy: {}\n")], project_dir=tmp_path)
    assert result.topology.services == {} and result.exit_code == 0
    assert ["no `services:` section: no service to judge" in m for m in missing_context(result)] == [True]


def test_an_included_file_without_services_adds_no_note(tmp_path):
    write(tmp_path, "nets.yaml", "networks:\n  proxy: {}\n")
    path = write(tmp_path, "compose.yaml", "include: [nets.yaml]\nservices:\n  app:\n    image: alpine:3.20\n    networks: [proxy]\n")
    assert missing_context(verify([path], project_dir=tmp_path, fail_on=None)) == []


@pytest.mark.parametrize(("text", "message"), [
    ("project: p\ndomains: [nodered.example.org]\nemail: ops@example.org\nnode_red: {}\n", "this is a stackgen stack.yaml"),
    ("foo:\n  bar: 1\n", "unknown top-level key 'foo'"),
    ("web:\n  ports: [\"80:80\"]\n", "unknown top-level key 'web'"),  # no image or build: not a service
    ("image: alpine\nservers: 3\n", "unknown top-level key 'image'"),  # a key no service has
    ("apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n", "unknown top-level key 'apiVersion'"),
])
def test_a_file_that_is_neither_a_compose_file_nor_a_fragment_exits_2(tmp_path, text, message):
    path = write(tmp_path, "input.yaml", text)
    with pytest.raises(ComposeError, match=message) as caught:
        verify([path], project_dir=tmp_path)
    assert caught.value.file and caught.value.line == 1
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_loading_strictly_still_refuses_a_fragment(tmp_path):
    """The lenient reading is verify's (missing context is reported); strict loading keeps Compose's error."""
    with pytest.raises(ComposeError, match="unknown top-level key 'image'"):
        load_model([write(tmp_path, "node-red.yaml", SERVICE_BODY)], environ={})


def test_the_cli_judges_a_fragment(tmp_path):
    path = write(tmp_path, "node-red.yaml", SERVICE_BODY)
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 1, result.output
    assert "SG043" in result.output and "SG102" in result.output
