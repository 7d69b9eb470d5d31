"""`supervise --install-systemd`, `status`, and the supervisor commands' errors, through typer's runner (no engine)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.generate import workflow
from stackgen.supervise.config import Settings
from stackgen.supervise.state import StateStore
from stackgen.supervise.systemd import unit_text
from tests.golden import golden_stack

runner = CliRunner()


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")


@pytest.fixture
def stack_dir(tmp_path) -> Path:
    directory = tmp_path / "stack"
    workflow.init(directory, golden_stack("caddy", "certbot-http01"))
    return directory


def test_install_systemd_writes_a_hardened_unit(stack_dir, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    (stack_dir / "supervise.yaml").write_text("expiry_days: 30\n")
    result = runner.invoke(app, ["supervise", str(stack_dir), "--install-systemd", "--unit-dir", str(units),
                                 "--backoff-base", "30s", "--webhook-url", "https://ntfy.example.org/topic", "--webhook-format", "ntfy"])
    assert result.exit_code == 0, result.output
    unit = units / "stackgen-supervise-golden-caddy-certbot-http01.service"
    assert f"wrote {unit}" in result.output and "systemctl enable --now" in result.output
    text = unit.read_text()
    assert unit.stat().st_mode & 0o777 == 0o644
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(f"supervise {stack_dir.resolve()} --backoff-base 30s --webhook-url https://ntfy.example.org/topic --webhook-format ntfy")
    assert "expiry" not in exec_start, "settings from supervise.yaml stay in the file, not frozen into the unit"
    for line in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", f"ReadWritePaths={stack_dir.resolve()}",
                 "CapabilityBoundingSet=CAP_DAC_READ_SEARCH", "PrivateDevices=yes", "After=docker.service network-online.target"):
        assert line in text.splitlines(), line
    assert "docker.sock" not in text


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / "stackgen-supervise-p.service"
    unit.write_text(unit_text(tmp_path, "p", Settings(webhook_url="http://127.0.0.1:9/%x y"), executable=["/bin/true"], user="sg"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if str(unit) in line and "docker.service" not in line]
    assert result.returncode == 0 and not problems, result.stderr
    text = unit.read_text()
    assert 'User=sg' in text and "SupplementaryGroups=docker" in text and "CapabilityBoundingSet=\n" in text + "\n"
    assert '"http://127.0.0.1:9/%%x y"' in text, "systemd specifiers and spaces are quoted"


def test_status_without_an_engine_shows_the_supervisor_state(stack_dir, no_engine):
    store = StateStore(stack_dir)
    store.data["services"] = {"node-red": {"attempt": 2, "failed": True, "restarts": [], "status": "running", "health": "unhealthy"}}
    store.data["alerts"] = {"crash_loop:node-red": {"kind": "crash_loop", "severity": "critical", "summary": "node-red: crash loop",
                                                    "opened_at": 1.0}}
    store.data["verify"] = {"last_run": 2.0, "findings": 0}
    store.save(force=True)
    result = runner.invoke(app, ["status", str(stack_dir)])
    assert result.exit_code == 0, result.output
    assert "supervisor: not running" in result.output and "no Docker engine answers" in result.output
    assert "gave up" in result.output and "[critical] crash_loop:node-red: node-red: crash loop" in result.output
    assert "last verify" in result.output
    result = runner.invoke(app, ["status", str(stack_dir), "--json"])
    data = json.loads(result.output)
    assert data["services"]["node-red"]["failed"] is True and data["services"]["edge"]["state"] == "absent"
    assert set(data) >= {"services", "certificate", "renewal", "verify", "backup", "alerts", "supervisor"}


def test_supervise_refuses_bad_settings_and_missing_directories(tmp_path, stack_dir):
    result = runner.invoke(app, ["supervise", str(stack_dir), "--backoff-base", "soon"])
    assert result.exit_code == 2 and "not a duration" in result.output
    result = runner.invoke(app, ["supervise", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "neither stack.yaml nor compose.yaml" in result.output
    result = runner.invoke(app, ["supervise", str(stack_dir), "--webhook-token-file", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "cannot read the webhook token" in result.output


def test_backup_and_restore_need_an_engine(stack_dir, no_engine, tmp_path):
    result = runner.invoke(app, ["backup", str(stack_dir)])
    assert result.exit_code == 2 and "no Docker engine answers" in result.output
    result = runner.invoke(app, ["restore", str(tmp_path / "x.tar.gz"), str(tmp_path / "d")])
    assert result.exit_code == 2
