"""`stackgen instance add|remove` on a stack directory: the other instance's files, service and data untouched,
refusals that change nothing, the removed instance's data kept unless --drop-data, the last instance kept."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from stackgen import engine as engines
from stackgen.cli.app import app
from stackgen.constants import PROJECT_LABEL, VOLUME_LABEL
from stackgen.generate import passwords
from stackgen.stackdir import load_stack
from tests.support.fakes import FakeContainer, FakeEngine

runner = CliRunner()


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    """A version 1 stack, as `init` writes it (NGINX, the local CA)."""
    (tmp_path / "pw").write_text("correct horse battery\n")
    (tmp_path / "pw-lab").write_text("lab horse battery\n")
    directory = tmp_path / "home"
    result = runner.invoke(app, ["init", str(directory), "--non-interactive", "--domain", "nodered.example.org", "--email",
                                 "ops@example.org", "--edge", "nginx", "--tls-mode", "internal", "--project", "home",
                                 "--admin-password-file", str(tmp_path / "pw")])
    assert result.exit_code == 0, result.output
    return directory


class RemovableContainer(FakeContainer):
    def remove(self, force: bool = False, v: bool = False) -> None:
        self.engine.items.pop(self.name)
        self.engine.removed.append(self.name)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The project running: both instances' containers and volumes (and another project's), answering `client()`."""
    fake = FakeEngine(project="home")
    fake.removed = []
    for service in ("node-red", "node-red-lab", "edge", "certbot"):
        fake.join(RemovableContainer(service))
    fake.join(RemovableContainer("node-red-lab", project="other"))
    for volume in ("node-red-data", "node-red-lab-data", "certs"):
        fake.volumes.create(f"home_{volume}", labels={PROJECT_LABEL: "home", VOLUME_LABEL: volume})
    fake.volumes.create("other_node-red-lab-data", labels={PROJECT_LABEL: "other", VOLUME_LABEL: "node-red-lab-data"})
    monkeypatch.setattr(engines, "client", lambda timeout=60: fake)
    return fake


def digests(directory: Path, *parts: str) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for part in parts for p in sorted((directory / part).rglob("*")) if p.is_file()}


def compose_services(directory: Path) -> dict:
    return YAML(typ="safe").load((directory / "compose.yaml").read_text())["services"]


def add_lab(directory: Path, *extra: str):
    return runner.invoke(app, ["instance", "add", str(directory), "lab", "--domain", "lab.example.org", "--non-interactive",
                               "--admin-password-file", str(directory.parent / "pw-lab"), *extra])


def test_add_migrates_and_leaves_the_existing_instance_untouched(stack_dir: Path):
    mine = digests(stack_dir, "node-red") | digests(stack_dir, "secrets")
    service_before = compose_services(stack_dir)["node-red"]
    result = add_lab(stack_dir, "--editor-allow", "10.9.0.0/16", "--egress")
    assert result.exit_code == 0, result.output
    assert "format version 2" in result.output and "now also covers lab.example.org" in result.output
    # The existing instance: the same files, secret and service definition (so `up` does not recreate it).
    assert {k: v for k, v in (digests(stack_dir, "node-red") | digests(stack_dir, "secrets")).items() if k in mine} == mine
    assert compose_services(stack_dir)["node-red"] == service_before
    stack = load_stack(stack_dir)
    assert stack.version == 2 and [i.name for i in stack.instances] == ["node-red", "lab"]
    assert stack.domains == ["nodered.example.org", "lab.example.org"]
    lab = stack.instances[1]
    assert passwords.verify("lab horse battery", lab.admin_password_hash) and lab.egress and lab.editor.allow == ["10.9.0.0/16"]
    secret = stack_dir / "secrets" / "node_red_lab_credential_secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.read_bytes() != (stack_dir / "secrets" / "node_red_credential_secret").read_bytes()
    assert (stack_dir / "node-red-lab" / "settings.js").is_file()
    assert compose_services(stack_dir)["node-red-lab"]["networks"] == ["internal-lab", "egress-lab"]
    assert "lab horse" not in "".join(p.read_text() for p in stack_dir.rglob("*") if p.is_file() and "secrets" not in p.parts)


@pytest.mark.parametrize("args, words", [
    (["lab", "--domain", "other.example.org"], "NAME: instance 'lab' already exists"),
    (["lab2", "--domain", "nodered.example.org"], "--domain: nodered.example.org already routes to instance 'node-red'"),
    (["Lab2", "--domain", "lab2.example.org"], "NAME: 'Lab2': lowercase"),
    (["lab2", "--domain", "*.example.org"], "--domain: '*.example.org': an instance's host names are exact names"),
    (["lab2", "--domain", "lab2.example.org", "--editor-allow", "10.0.0.0/33"], "--editor-allow:"),
    (["lab2", "--domain", "lab2.example.org", "--node-red-version", "5.0"], "--node-red-version: must be a version"),
])
def test_refusals_name_the_flag_and_change_nothing(stack_dir: Path, args, words):
    assert add_lab(stack_dir).exit_code == 0
    before = digests(stack_dir, ".")
    result = runner.invoke(app, ["instance", "add", str(stack_dir), *args, "--non-interactive",
                                 "--admin-password-file", str(stack_dir.parent / "pw-lab")])
    assert result.exit_code == 2 and words in result.output, result.output
    assert digests(stack_dir, ".") == before


def test_a_hand_edit_in_the_way_stops_add_before_stack_yaml_changes(stack_dir: Path):
    conf = stack_dir / "edge" / "nginx.conf"
    conf.write_text(conf.read_text() + "# mine\n")
    spec = (stack_dir / "stack.yaml").read_bytes()
    result = add_lab(stack_dir)
    assert result.exit_code == 2 and "edge/nginx.conf" in result.output
    assert (stack_dir / "stack.yaml").read_bytes() == spec and not (stack_dir / "node-red-lab").exists()


def test_remove_keeps_the_data_and_stops_only_its_container(stack_dir: Path, engine: FakeEngine):
    assert add_lab(stack_dir).exit_code == 0
    mine = digests(stack_dir, "node-red")
    service_before = compose_services(stack_dir)["node-red"]
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab"])
    assert result.exit_code == 0, result.output
    assert engine.removed == ["home-node-red-lab-1"], "its container alone, not another project's"
    assert set(engine.volumes_by_name) == {"home_node-red-data", "home_node-red-lab-data", "home_certs", "other_node-red-lab-data"}
    assert "kept volume home_node-red-lab-data" in result.output and "docker volume rm home_node-red-lab-data" in result.output
    assert (stack_dir / "secrets" / "node_red_lab_credential_secret").exists()
    assert not (stack_dir / "node-red-lab").exists(), "its rendered files went with it"
    assert digests(stack_dir, "node-red") == mine and compose_services(stack_dir)["node-red"] == service_before
    stack = load_stack(stack_dir)
    assert [i.name for i in stack.instances] == ["node-red"] and stack.domains == ["nodered.example.org"]
    # Added again: the kept secret is its secret again (so the kept volume's credentials decrypt).
    secret = (stack_dir / "secrets" / "node_red_lab_credential_secret").read_bytes()
    assert add_lab(stack_dir).exit_code == 0
    assert (stack_dir / "secrets" / "node_red_lab_credential_secret").read_bytes() == secret


def test_remove_with_drop_data_deletes_its_volume_and_secret_only(stack_dir: Path, engine: FakeEngine):
    assert add_lab(stack_dir).exit_code == 0
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab", "--drop-data"])
    assert result.exit_code == 0, result.output
    assert set(engine.volumes_by_name) == {"home_node-red-data", "home_certs", "other_node-red-lab-data"}
    assert not (stack_dir / "secrets" / "node_red_lab_credential_secret").exists()
    assert (stack_dir / "secrets" / "node_red_credential_secret").exists()
    assert "deleted volume home_node-red-lab-data" in result.output


def test_drop_data_without_an_engine_refuses_before_anything_changes(stack_dir: Path, monkeypatch: pytest.MonkeyPatch):
    assert add_lab(stack_dir).exit_code == 0

    def down(timeout=60):
        raise engines.EngineUnavailable("no engine")
    monkeypatch.setattr(engines, "client", down)
    before = digests(stack_dir, ".")
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab", "--drop-data"])
    assert result.exit_code == 2 and "needs the Docker engine" in result.output
    assert digests(stack_dir, ".") == before
    plain = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab"])  # without an engine: files only, data kept
    assert plain.exit_code == 0 and "kept volume home_node-red-lab-data" in plain.output


def test_the_last_instance_and_unknown_ones_are_refused(stack_dir: Path, engine: FakeEngine):
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "node-red"])
    assert result.exit_code == 2 and "only Node-RED" in result.output
    assert add_lab(stack_dir).exit_code == 0
    unknown = runner.invoke(app, ["instance", "remove", str(stack_dir), "nope"])
    assert unknown.exit_code == 2 and "no instance 'nope' (instances: node-red, lab)" in unknown.output
    assert runner.invoke(app, ["instance", "remove", str(stack_dir), "node-red"]).exit_code == 0
    assert runner.invoke(app, ["instance", "remove", str(stack_dir), "lab"]).exit_code == 2
    assert engine.removed == ["home-node-red-1"] and "home_node-red-data" in engine.volumes_by_name


def test_add_with_a_path_shares_the_stacks_host_name_under_the_prefix(stack_dir: Path):
    result = runner.invoke(app, ["instance", "add", str(stack_dir), "lab", "--path", "/lab", "--non-interactive",
                                 "--admin-password-file", str(stack_dir.parent / "pw-lab")])
    assert result.exit_code == 0, result.output
    assert "served under /lab/ of nodered.example.org; its editor at /lab/editor" in result.output
    assert "shares nodered.example.org with instance node-red: one browser origin" in result.output
    stack = load_stack(stack_dir)
    assert stack.domains == ["nodered.example.org"] and stack.instances[1].domains == ["nodered.example.org"]
    settings = (stack_dir / "node-red-lab" / "settings.js").read_text()
    assert 'httpAdminRoot: "/lab/editor"' in settings and 'httpNodeRoot: "/lab/"' in settings
    assert 'httpNodeRoot: "/"' in (stack_dir / "node-red" / "settings.js").read_text()
    assert "/lab(?:/|$)" in (stack_dir / "edge" / "nginx.conf").read_text()


@pytest.mark.parametrize("args, words", [
    (["--path", "/editor"], "--path: /editor on nodered.example.org overlaps the editor of instance 'node-red'"),
    (["--path", "/"], "--path: `/` is the root of the host names"),
    (["--path", "/a/../b"], "--path: '/a/../b' is not a path prefix"),
    ([], "--domain: a host name for the instance, or a `path`"),
])
def test_path_refusals_name_the_flag_and_change_nothing(stack_dir: Path, args, words):
    before = digests(stack_dir, ".")
    result = runner.invoke(app, ["instance", "add", str(stack_dir), "lab", *args, "--non-interactive",
                                 "--admin-password-file", str(stack_dir.parent / "pw-lab")])
    assert result.exit_code == 2 and words in result.output, result.output
    assert digests(stack_dir, ".") == before


def certificate_names(directory: Path) -> list[str]:
    """The names the certificate is for: the local CA's DOMAINS (tls.mode internal), else certbot's -d arguments."""
    local_ca = directory / "certbot" / "local_ca.py"
    if local_ca.is_file():
        return json.loads(re.search(r"^DOMAINS = (.*)$", local_ca.read_text(), re.M).group(1))
    return [name.strip("'") for name in re.findall(r"-d (\S+)", (directory / "certbot" / "run.sh").read_text())]


def test_init_editor_host_is_a_certificate_name_or_refused_naming_the_flag(tmp_path: Path):
    (tmp_path / "pw").write_text("correct horse battery\n")
    base = ["init", "--non-interactive", "--domain", "nodered.example.org", "--email", "ops@example.org",
            "--admin-password-file", str(tmp_path / "pw")]
    refused = runner.invoke(app, [*base[:1], str(tmp_path / "a"), *base[1:], "--editor-host", "editor.example.org"])
    assert refused.exit_code == 2, refused.output
    assert "--editor-host: editor.example.org is not one of domains" in refused.output and "add it to domains" in refused.output
    assert not (tmp_path / "a").exists()
    made = runner.invoke(app, [*base[:1], str(tmp_path / "b"), *base[1:], "--domain", "editor.example.org",
                               "--editor-host", "editor.example.org"])
    assert made.exit_code == 0, made.output
    assert certificate_names(tmp_path / "b") == ["nodered.example.org", "editor.example.org"]
    assert "editor.example.org" in (tmp_path / "b" / "edge" / "Caddyfile").read_text()


def test_add_editor_host_joins_the_certificate_and_remove_takes_it_out(stack_dir: Path, engine: FakeEngine):
    result = add_lab(stack_dir, "--editor-host", "Lab-Editor.example.org")
    assert result.exit_code == 0, result.output
    assert "now also covers lab.example.org" in result.output and "now also covers lab-editor.example.org" in result.output
    assert certificate_names(stack_dir) == ["nodered.example.org", "lab.example.org", "lab-editor.example.org"]
    stack = load_stack(stack_dir)
    assert stack.instances[1].editor.host == "lab-editor.example.org" and stack.instances[1].domains == ["lab.example.org"]
    assert "lab-editor.example.org" in (stack_dir / "edge" / "nginx.conf").read_text()
    removed = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab"])
    assert removed.exit_code == 0, removed.output
    assert certificate_names(stack_dir) == ["nodered.example.org"]
    assert "lab-editor.example.org" not in (stack_dir / "edge" / "nginx.conf").read_text()


def test_add_refuses_a_bad_editor_host_naming_its_flag_and_changes_nothing(stack_dir: Path):
    before = digests(stack_dir, ".")
    for host, words in (("*.example.org", "--editor-host: '*.example.org' is not a host name"),
                        ("nodered.example.org", "--editor-host: nodered.example.org already routes to instance 'node-red'")):
        result = add_lab(stack_dir, "--editor-host", host)
        assert result.exit_code == 2 and words in result.output, result.output
    assert digests(stack_dir, ".") == before


def swarm_stack(directory: Path) -> None:
    """`directory` made a swarm stack as `generate --target swarm` does (compose.swarm.yaml beside compose.yaml)."""
    result = runner.invoke(app, ["generate", str(directory), "--target", "swarm"])
    assert result.exit_code == 0, result.output
    assert (directory / "compose.swarm.yaml").is_file()


def test_remove_on_a_swarm_stack_says_up_removes_the_service(stack_dir: Path, engine: FakeEngine):
    assert add_lab(stack_dir).exit_code == 0
    swarm_stack(stack_dir)
    assert "node-red-lab:" in (stack_dir / "compose.swarm.yaml").read_text()
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "stackgen up" in line]
    assert lines == [f"next: stackgen up {stack_dir}: swarm service home_node-red-lab keeps running until then "
                     "(up deploys with --prune, which removes it)"], result.output
    assert engine.removed == [], "Swarm would replace a removed task: the service is up's to remove"
    assert "stopped and removed" not in result.output
    # The stack file stays, without the instance: `up` deploys it to the swarm (not compose.yaml) and prunes the service.
    assert (stack_dir / "compose.swarm.yaml").is_file() and "node-red-lab" not in (stack_dir / "compose.swarm.yaml").read_text()


def test_add_on_a_swarm_stack_keeps_the_stack_file_current(stack_dir: Path):
    swarm_stack(stack_dir)
    result = add_lab(stack_dir)
    assert result.exit_code == 0, result.output
    assert "removed" not in result.output, result.output
    assert "node-red-lab:" in (stack_dir / "compose.swarm.yaml").read_text()


def test_drop_data_on_a_swarm_stack_is_refused_before_anything_changes(stack_dir: Path, engine: FakeEngine):
    assert add_lab(stack_dir).exit_code == 0
    swarm_stack(stack_dir)
    before = digests(stack_dir, ".")
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab", "--drop-data"])
    assert result.exit_code == 2 and "--drop-data on a swarm stack" in result.output and "stackgen up" in result.output, result.output
    assert digests(stack_dir, ".") == before and "home_node-red-lab-data" in engine.volumes_by_name


def test_remove_on_compose_says_what_it_stopped_and_what_up_does(stack_dir: Path, engine: FakeEngine):
    assert add_lab(stack_dir).exit_code == 0
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab"])
    assert result.exit_code == 0, result.output
    assert "stopped and removed container home-node-red-lab-1" in result.output
    assert result.output.splitlines()[-1] == f"next: stackgen up {stack_dir} (the edge stops routing to lab)"
    assert "no Docker engine answered" not in result.output


def test_remove_on_compose_without_an_engine_says_the_container_was_not_stopped(stack_dir: Path, monkeypatch: pytest.MonkeyPatch):
    assert add_lab(stack_dir).exit_code == 0

    def down(timeout=60):
        raise engines.EngineUnavailable("no engine")
    monkeypatch.setattr(engines, "client", down)
    result = runner.invoke(app, ["instance", "remove", str(stack_dir), "lab"])
    assert result.exit_code == 0, result.output
    assert ("no Docker engine answered: node-red-lab's container, if there is one, was not stopped, and `stackgen up` does "
            "not stop it: docker rm -f $(docker ps -aq --filter label=com.docker.compose.project=home "
            "--filter label=com.docker.compose.service=node-red-lab)") in result.output
