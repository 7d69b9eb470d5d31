"""Reports: the JSON schema, SARIF 2.1.0 validity, text grouping, exit codes, suppressions."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from stackgen import __version__
from stackgen.findings import Severity
from stackgen.verify.pipeline import UsageError, parse_cli_ignore, parse_fail_on, verify
from stackgen.verify.report import render_json, render_sarif, render_text
from stackgen.verify.rules import ALL_RULES

ROOT = Path(__file__).resolve().parents[3]
SARIF_SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())

STACK = """\
services:
  node-red:
    image: nodered/node-red:latest
    user: root
    ports: ["1880:1880"]
    x-stackgen:
      ignore:
        - rule: SG024
          reason: pinned by the deploy script
  helper:
    image: x/helper:1.0
    user: "1000"
    read_only: true
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
"""


@pytest.fixture
def result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(STACK)
    return verify([tmp_path / "compose.yaml"], environ={}, ignore=["SG029=CPU is not scarce here"])


def test_json_schema(result) -> None:
    data = json.loads(render_json(result.findings, result.summary, __version__))
    assert data["version"] == 1 and data["tool"] == {"name": "stackgen", "version": __version__}
    keys = {
        "rule",
        "title",
        "severity",
        "service",
        "file",
        "line",
        "col",
        "message",
        "fix",
        "suppressed",
        "suppression",
    }
    assert all(set(f) == keys for f in data["findings"])
    assert set(data["summary"]) == {
        "total",
        "active",
        "suppressed",
        "by_severity",
        "fail_on",
        "failed",
        "files",
        "services",
    }
    assert data["summary"]["failed"] is True and data["summary"]["fail_on"] == "high"
    assert data["summary"]["files"] == ["compose.yaml"]
    ports = next(f for f in data["findings"] if f["rule"] == "SG102")
    assert (ports["service"], ports["file"], ports["line"], ports["severity"]) == (
        "node-red",
        "compose.yaml",
        5,
        "critical",
    )
    severities = [Severity(f["severity"]).rank for f in data["findings"]]
    assert severities == sorted(severities, reverse=True)  # worst first


def test_suppressed_findings_stay_in_json(result) -> None:
    data = json.loads(render_json(result.findings, result.summary, __version__))
    suppressed = {(f["service"], f["rule"]): f["suppression"] for f in data["findings"] if f["suppressed"]}
    assert suppressed[("node-red", "SG024")] == {"kind": "service", "reason": "pinned by the deploy script"}
    assert suppressed[("helper", "SG029")] == {"kind": "cli", "reason": "CPU is not scarce here"}
    assert data["summary"]["suppressed"] == len(suppressed)


def test_sarif_is_valid_2_1_0_and_marks_suppressions(result) -> None:
    log = json.loads(render_sarif(result.findings, ALL_RULES, __version__))
    jsonschema.Draft4Validator.check_schema(SARIF_SCHEMA)
    jsonschema.Draft4Validator(SARIF_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [r.id for r in ALL_RULES]
    results = run["results"]
    assert len(results) == len(result.findings)
    by_rule = {(r["properties"]["service"], r["ruleId"]): r for r in results}
    top = by_rule[("node-red", "SG102")]
    assert top["level"] == "error"
    assert top["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "compose.yaml"
    assert top["locations"][0]["physicalLocation"]["region"]["startLine"] == 5
    assert run["tool"]["driver"]["rules"][top["ruleIndex"]]["id"] == "SG102"
    assert by_rule[("node-red", "SG024")]["suppressions"] == [
        {"kind": "inSource", "justification": "pinned by the deploy script"}
    ]
    assert by_rule[("helper", "SG029")]["suppressions"][0]["kind"] == "external"
    severity = {r["id"]: float(r["properties"]["security-severity"]) for r in run["tool"]["driver"]["rules"]}
    assert severity["SG102"] >= 9.0 and 7.0 <= severity["SG018"] < 9.0


def test_sarif_for_a_clean_run_is_valid() -> None:
    log = json.loads(render_sarif([], ALL_RULES, __version__))
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    assert log["runs"][0]["results"] == []


def test_text_is_grouped_worst_service_first(result) -> None:
    text = render_text(result.findings, result.summary)
    lines = text.splitlines()
    assert lines[0].startswith("node-red (")
    helper = lines.index(next(line for line in lines if line.startswith("helper (")))
    assert lines[1].startswith("  CRITICAL ") and lines[2].strip().startswith("fix:")
    assert any("CRITICAL SG102" in line and line.endswith("compose.yaml:5") for line in lines[1:helper])
    assert helper > 1
    assert "SG024" not in text.split("\n\n")[0]  # suppressed findings are not listed
    assert lines[-1].startswith("FAIL ") and "3 suppressed" in lines[-1]


def test_text_with_colour_uses_rich(result) -> None:
    text = render_text(result.findings, result.summary, color=True)
    assert "\x1b[" in text and "SG102" in text


@pytest.mark.parametrize(("fail_on", "code"), [("critical", 1), ("high", 1), ("none", 0)])
def test_exit_codes_follow_fail_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str, code: int) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(STACK)
    assert verify([tmp_path / "compose.yaml"], environ={}, fail_on=fail_on).exit_code == code


def test_medium_only_passes_at_high_and_fails_at_medium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: x/a:1\n    user: '1000'\n")
    path = tmp_path / "compose.yaml"
    assert verify([path], environ={}, fail_on="high").exit_code == 0
    assert verify([path], environ={}, fail_on="medium").exit_code == 1


def test_option_parsing() -> None:
    assert parse_fail_on("HIGH") is Severity.HIGH and parse_fail_on("none") is None
    with pytest.raises(UsageError):
        parse_fail_on("severe")
    assert parse_cli_ignore("root-user").rule == "SG018"
    assert parse_cli_ignore("SG012:reason here").reason == "reason here"
    with pytest.raises(UsageError):
        parse_cli_ignore("SG999")
