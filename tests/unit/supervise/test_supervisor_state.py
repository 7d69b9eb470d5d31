"""The supervisor's state file, its lock, and its settings (durations, supervise.yaml, CLI overrides)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stackgen.errors import StackgenError
from stackgen.supervise.config import Settings, format_duration, load_settings, non_default_options, parse_duration
from stackgen.supervise.state import StateError, StateStore, read_state


def test_state_round_trip_is_atomic_and_private(tmp_path):
    store = StateStore(tmp_path)
    store.data["services"]["node-red"] = {"attempt": 2, "restarts": [{"at": 1.0, "by": "supervisor"}]}
    store.data["alerts"]["crash_loop:node-red"] = {"kind": "crash_loop"}
    assert store.save(stamp=5.0)
    assert not store.save(stamp=6.0), "unchanged content is not rewritten (only the stamp would differ)"
    assert (store.root.stat().st_mode & 0o777) == 0o700
    assert (store.path.stat().st_mode & 0o777) == 0o600
    again = StateStore(tmp_path)
    assert again.data["services"]["node-red"]["attempt"] == 2
    assert again.data["alerts"] == {"crash_loop:node-red": {"kind": "crash_loop"}}
    assert again.data["updated"] == 5.0
    assert not list(store.root.glob("*.tmp")), "no temporary file left behind"


def test_corrupt_state_is_kept_aside_and_replaced(tmp_path):
    store = StateStore(tmp_path)
    store.save(force=True)
    store.path.write_text("{not json")
    fresh = StateStore(tmp_path)
    assert fresh.warning and "corrupt" in fresh.warning
    assert fresh.data["services"] == {}
    assert (store.root / "state.json.corrupt").exists()


def test_foreign_version_is_refused(tmp_path):
    store = StateStore(tmp_path)
    store.ensure_dir()
    store.path.write_text(json.dumps({"version": 99}))
    with pytest.raises(StateError):
        StateStore(tmp_path)


def test_one_supervisor_per_directory(tmp_path):
    first = StateStore(tmp_path)
    first.acquire()
    try:
        assert first.locked_by_other()
        code = (
            "import sys; from pathlib import Path; from stackgen.supervise.state import StateStore, StateError\n"
            f"try:\n    StateStore(Path({str(tmp_path)!r})).acquire()\nexcept StateError as e:\n    print(e); sys.exit(3)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd())
        assert result.returncode == 3 and "another stackgen supervisor" in result.stdout
    finally:
        first.release()
    assert not first.locked_by_other()


def test_read_state_without_a_file(tmp_path):
    assert read_state(tmp_path)["alerts"] == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("12h", 43200), ("1d", 86400), ("1.5s", 1.5), ("250ms", 0.25), (7, 7)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-1s", "1w", "", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration():
    assert [format_duration(v) for v in (300, 43200, 86400, 1.5, 10)] == ["5m", "12h", "1d", "1.5s", "10s"]


def test_backoff_schedule():
    s = Settings(backoff_base="2s", backoff_cap="10s")
    assert [s.backoff(n) for n in range(6)] == [0, 2, 4, 8, 10, 10]


def test_settings_file_then_cli(tmp_path):
    (tmp_path / "supervise.yaml").write_text("backoff-base: 30s\nexpiry_days: 20\nwebhook_format: ntfy\n")
    settings = load_settings(tmp_path, {"expiry_days": 7, "backoff_cap": None})
    assert settings.backoff_base == 30 and settings.expiry_days == 7 and settings.webhook_format == "ntfy"
    assert settings.backoff_cap == 300


def test_settings_file_errors_name_the_file_and_key(tmp_path):
    (tmp_path / "supervise.yaml").write_text("backof_base: 3s\n")
    with pytest.raises(StackgenError, match=r"supervise.yaml: backof_base"):
        load_settings(tmp_path)
    (tmp_path / "supervise.yaml").write_text("backoff_base: soon\n")
    with pytest.raises(StackgenError, match="not a duration"):
        load_settings(tmp_path)
    with pytest.raises(StackgenError, match="webhook_url"):
        load_settings(tmp_path / "none", {"webhook_url": "ftp://x"})


def test_non_default_options_round_trip():
    settings = Settings(backoff_base="30s", renew=False, ignore_services=["edge"], webhook_url="http://127.0.0.1:9/x", expiry_days=21)
    args = non_default_options(settings)
    assert args == ["--backoff-base", "30s", "--ignore-service", "edge", "--no-renew", "--expiry-days", "21.0",
                    "--webhook-url", "http://127.0.0.1:9/x"]
