"""`stackgen verify --each`: many independent stacks in one call, one report per stack (issue 11, part 5)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.verify.each import stacks, verify_each
from stackgen.verify.pipeline import verify

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "a").mkdir()
    shutil.copy(CORPUS / "hardened.compose.yaml", tmp_path / "a" / "compose.yaml")
    (tmp_path / "a" / "compose.override.yaml").write_text("services:\n  node-red:\n    privileged: true\n")
    (tmp_path / "b").mkdir()
    shutil.copy(CORPUS / "forum-nodered.compose.yaml", tmp_path / "b" / "docker-compose.yml")
    (tmp_path / "c").mkdir()
    shutil.copy(CORPUS / "iotstack.compose.yaml", tmp_path / "c" / "iot.compose.yaml")
    (tmp_path / "c" / "broken.compose.yaml").write_text("services: 3\n")
    for skipped in (".git", "node_modules"):
        (tmp_path / skipped).mkdir()
        shutil.copy(CORPUS / "host-root.compose.yaml", tmp_path / skipped / "compose.yaml")
    (tmp_path / "c" / "notes.yaml").write_text("not: compose\n")
    return tmp_path


def test_stacks_are_found_as_compose_would_load_them(repo):
    found = [[p.relative_to(repo).as_posix() for p in group] for group in stacks([repo])]
    assert found == [["a/compose.yaml", "a/compose.override.yaml"], ["b/docker-compose.yml"],
                     ["c/broken.compose.yaml"], ["c/iot.compose.yaml"]]


def test_each_stack_is_judged_alone_and_an_unreadable_one_does_not_stop_the_rest(repo):
    outcome = verify_each([repo])
    by_file = {r.file.relative_to(repo).as_posix(): r for r in outcome.reports}
    assert "must be a mapping" in by_file["c/broken.compose.yaml"].error
    alone = verify([repo / "b" / "docker-compose.yml"], project_dir=repo / "b")
    assert [f.to_dict() for f in by_file["b/docker-compose.yml"].result.findings] == [f.to_dict() for f in alone.findings]
    merged = by_file["a/compose.yaml"].result.findings
    assert any(f.rule == "SG001" or "privileged" in f.message for f in merged), "the override is merged into its base"
    assert outcome.exit_code == 2, "a stack that cannot be read makes the run an error"


def test_cli_json_reports_per_file_and_exit_codes(repo):
    (repo / "c" / "broken.compose.yaml").unlink()
    result = CliRunner().invoke(app, ["verify", "--each", str(repo), "--format", "json"])
    data = json.loads(result.output)
    assert [Path(f["file"]).name for f in data["files"]] == ["compose.yaml", "docker-compose.yml", "iot.compose.yaml"]
    assert result.exit_code == data["exit_code"] == 1


def test_sarif_carries_every_file(repo, tmp_path):
    import jsonschema

    out = tmp_path / "report.sarif"
    result = CliRunner().invoke(app, ["verify", "--each", str(repo), "--format", "sarif", "-o", str(out)])
    assert result.exit_code == 2
    log = json.loads(out.read_text())
    schema = json.loads((Path(__file__).resolve().parents[2] / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(log, schema)
    run = log["runs"][0]
    uris = {a["location"]["uri"] for a in run["artifacts"]}
    assert {u.rsplit("/", 1)[-1] for u in uris} >= {"compose.yaml", "docker-compose.yml", "iot.compose.yaml", "broken.compose.yaml"}
    located = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].rsplit("/", 1)[-1] for r in run["results"] if "locations" in r}
    assert {"docker-compose.yml", "iot.compose.yaml"} <= located
    assert run["invocations"][0]["executionSuccessful"] is False


def test_each_needs_paths_that_exist(tmp_path):
    result = CliRunner().invoke(app, ["verify", "--each", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or directory" in result.output
    result = CliRunner().invoke(app, ["verify", "--each", str(tmp_path)])
    assert result.exit_code == 2 and "no compose files found" in result.output
