"""`stackgen verify` and `stackgen rules` through typer (a throwaway app + `register`) and the fast path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stackgen.cli.verify import fast_path, main, register

ROOT = Path(__file__).resolve().parents[3]
CLEAN = """\
services:
  app:
    image: x/app:1.0
    user: "1000"
"""
CRITICAL = """\
services:
  node-red:
    image: nodered/node-red:4.0.9
    ports: ["1880:1880"]
"""


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    register(app)
    return app


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"):
        monkeypatch.delenv(name, raising=False)


def run(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, list(args))


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_clean_file_exits_0(app) -> None:
    write("compose.yaml", CLEAN)
    result = run(app, "verify", "compose.yaml")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output


def test_findings_at_threshold_exit_1(app) -> None:
    write("compose.yaml", CRITICAL)
    result = run(app, "verify", "compose.yaml")
    assert result.exit_code == 1
    assert "SG102" in result.output and "compose.yaml:4" in result.output


def test_default_files_are_discovered(app) -> None:
    write("compose.yaml", CRITICAL)
    assert run(app, "verify").exit_code == 1


def test_fail_on_and_ignore(app) -> None:
    write("compose.yaml", CRITICAL)
    assert run(app, "verify", "--fail-on", "none").exit_code == 0
    ignored = run(app, "verify", "--ignore", "SG102", "--ignore", "SG020", "--ignore", "SG112", "--fail-on", "critical")
    assert ignored.exit_code == 0, ignored.output


def test_parse_error_exits_2_with_position(app) -> None:
    write("compose.yaml", "services:\n  a:\n    image: [x\n")
    result = run(app, "verify", "compose.yaml")
    assert result.exit_code == 2
    assert "compose.yaml:4:1: invalid YAML" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "--format", "xml", "compose.yaml"),
        ("verify", "--fail-on", "severe", "compose.yaml"),
        ("verify", "--ignore", "SG999", "compose.yaml"),
        ("verify", "missing.yaml"),
        ("rules", "SG999"),
    ],
)
def test_usage_errors_exit_2(app, args) -> None:
    write("compose.yaml", CLEAN)
    assert run(app, *args).exit_code == 2


def test_json_and_sarif_to_output_file(app) -> None:
    write("compose.yaml", CRITICAL)
    assert run(app, "verify", "--format", "json", "-o", "report.json").exit_code == 1
    data = json.loads(Path("report.json").read_text())
    assert any(f["rule"] == "SG102" for f in data["findings"])
    assert run(app, "verify", "--format", "sarif", "--output", "report.sarif").exit_code == 1
    assert json.loads(Path("report.sarif").read_text())["version"] == "2.1.0"


def test_multiple_files_env_file_and_profiles(app) -> None:
    write("compose.yaml", "services:\n  app:\n    image: x/app:${TAG}\n    user: '1000'\n")
    write("override.yaml", "services:\n  debug:\n    image: x/debug:1\n    user: root\n    profiles: [debug]\n")
    write("ci.env", "TAG=latest\n")
    args = ["verify", "-f", "compose.yaml", "-f", "override.yaml", "--env-file", "ci.env", "--format", "json"]
    plain = json.loads(run(app, *args).stdout)
    assert {(f["service"], f["rule"]) for f in plain["findings"]} >= {("app", "SG024")}
    assert not any(f["service"] == "debug" for f in plain["findings"])
    with_profile = json.loads(run(app, *args, "--profile", "debug").stdout)
    assert ("debug", "SG018") in {(f["service"], f["rule"]) for f in with_profile["findings"]}


def test_rules_list_and_explain(app) -> None:
    listing = run(app, "rules")
    assert listing.exit_code == 0
    assert "SG001" in listing.output and "SG110" in listing.output
    explained = run(app, "rules", "SG012")
    assert explained.exit_code == 0
    for part in ("SG012", "Why it matters", "Bad:", "Good:", "Fix:", "cap_drop: [ALL]"):
        assert part in explained.output
    assert "### SG018" in run(app, "rules", "root-user", "--format", "markdown").output
    assert json.loads(run(app, "rules", "--format", "json").output)[0]["id"] == "SG001"


def test_fast_path_matches_typer(capsys: pytest.CaptureFixture[str]) -> None:
    write("compose.yaml", CRITICAL)
    assert fast_path(["verify", "compose.yaml", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert any(f["rule"] == "SG102" for f in data["findings"])
    assert fast_path(["verify", "--fail-on", "none", "compose.yaml"]) == 0
    assert fast_path(["verify", "--bogus"]) == 2
    assert fast_path(["rules", "SG001"]) == 0
    assert fast_path(["verify", "--help"]) is None  # help is typer's
    assert fast_path(["generate"]) is None


def test_module_entry_point_runs_without_typer_or_pydantic(tmp_path: Path) -> None:
    write("compose.yaml", CRITICAL)
    code = (
        "import sys; from stackgen.cli.verify import main; rc = main(['verify', 'compose.yaml']); "
        "heavy = [m for m in ('typer', 'pydantic', 'docker', 'rich') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 1, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_main_help_goes_to_typer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--help"]) == 0
    assert "--fail-on" in capsys.readouterr().out


def test_console_entry_and_module_exit_codes_and_output(tmp_path: Path) -> None:
    write("compose.yaml", CRITICAL)
    env = {"PYTHONPATH": str(ROOT)}
    module = subprocess.run(
        [sys.executable, "-m", "stackgen", "verify", "compose.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert module.returncode == 1 and "SG102" in module.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "stackgen", "verify", "nope.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert bad.returncode == 2 and "nope.yaml" in bad.stderr
    code = "import sys; sys.argv = ['stackgen', 'rules']; from stackgen.cli import entry; entry()"
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert listed.returncode == 0 and "SG110" in listed.stdout


def test_compose_file_variable_names_the_default_files(tmp_path: Path) -> None:
    from stackgen.verify.pipeline import verify

    write("a.yaml", CLEAN)
    write("b.yaml", "services:\n  app:\n    user: root\n")
    result = verify(environ={"COMPOSE_FILE": "a.yaml:b.yaml"})
    assert result.topology.services["app"].user == "root"
    assert result.topology.files == ("a.yaml", "b.yaml")
