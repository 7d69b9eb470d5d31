"""The drift watch's child process and the seams of the supervisor (no engine)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stackgen.supervise import drift
from stackgen.supervise.jobs import JOBS
from stackgen.supervise.outcomes import SECTIONS


def test_the_supervisor_does_not_load_the_verifier():
    """Why the drift check is a child: the long-lived process never imports the rules, the loader or the probes."""
    code = "import json, sys, stackgen.supervise.supervisor; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    heavy = [m for m in loaded if m.startswith(("stackgen.live", "stackgen.verify", "stackgen.composefile", "stackgen.topology"))]
    assert not heavy, heavy


def test_the_child_is_a_module_run_with_this_python(tmp_path, monkeypatch):
    assert drift.child_command(tmp_path, "cheap") == [sys.executable, "-m", "stackgen.supervise.drift", str(tmp_path), "cheap"]
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    with pytest.raises(RuntimeError, match=r"(?s)live verification failed \(exit 1\).*no Docker engine answers"):
        drift.live_findings_in_child(tmp_path, "cheap", timeout=120)


def test_the_child_prints_findings_as_one_json_line(tmp_path, monkeypatch, capsys):
    from stackgen import engine
    from stackgen.live import checks
    from stackgen.verify.report import Finding, Severity

    seen = []

    def live_findings(client, directory, probes):
        seen.append((client, directory, probes))
        return [Finding("SG201", Severity.HIGH, "rogue", "remove it", service="rogue")]

    monkeypatch.setattr(checks, "live_findings", live_findings)
    monkeypatch.setattr(engine, "client", lambda: "client")
    assert drift.main([str(tmp_path), "cheap"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert seen == [("client", tmp_path, "cheap")]
    assert [(f["rule"], f["severity"], f["service"]) for f in printed] == [("SG201", "high", "rogue")]


def test_finding_ids_are_stable_and_name_rule_and_service():
    a = drift.DriftFinding("SG201", "high", "container rogue is not declared", "rogue")
    assert drift.finding_id(a) == drift.finding_id(drift.DriftFinding("SG201", "medium", a.message, "rogue"))
    assert drift.finding_id(a).startswith("SG201:rogue:") and drift.finding_id(drift.DriftFinding("SG001", "low", "x")).startswith("SG001:-:")


def test_every_job_has_a_state_section_and_an_outcome():
    assert set(JOBS) == set(SECTIONS) == {"renewal", "cert_check", "verify", "backup"}
    assert all(name == job.name for name, job in JOBS.items())
