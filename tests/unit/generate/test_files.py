"""Generated files: atomic writes, modes, and never losing a hand edit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stackgen.errors import StackgenError
from stackgen.generate import files, workflow
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH


def make_stack(**extra) -> Stack:
    spec = {"project": "home", "domains": ["nodered.example.org"], "email": "ops@example.org", "node_red": {"admin_password_hash": EXAMPLE_HASH}}
    spec.update(extra)
    return Stack.model_validate(spec)


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "stack"
    workflow.init(directory, make_stack())
    return directory


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_spec_secret_and_every_file_with_modes(stack_dir: Path):
    assert mode(stack_dir / "stack.yaml") == 0o600
    assert mode(stack_dir / "secrets") == 0o700
    secret = stack_dir / "secrets" / "node_red_credential_secret"
    assert mode(secret) == 0o600
    assert len(secret.read_text().strip()) == 64
    assert mode(stack_dir / "certbot" / "run.sh") == 0o755
    assert mode(stack_dir / "compose.yaml") == 0o644
    assert secret.read_text().strip() not in (stack_dir / "compose.yaml").read_text()
    if os.geteuid() == 0:
        assert secret.stat().st_uid == 1000, "the container's user (uid 1000) must own the bind-mounted secret"


def test_generate_again_changes_nothing(stack_dir: Path):
    before = {p: p.read_bytes() for p in stack_dir.rglob("*") if p.is_file()}
    result = workflow.generate(stack_dir)
    assert {f.action for f in result.plan.files} == {files.Action.UNCHANGED}
    assert {p: p.read_bytes() for p in stack_dir.rglob("*") if p.is_file()} == before


def test_secret_is_kept_across_generates(stack_dir: Path):
    secret = (stack_dir / "secrets" / "node_red_credential_secret").read_bytes()
    workflow.generate(stack_dir)
    assert (stack_dir / "secrets" / "node_red_credential_secret").read_bytes() == secret


def test_spec_change_updates_untouched_files(stack_dir: Path):
    spec = stack_dir / "stack.yaml"
    spec.write_text(spec.read_text().replace("edge: caddy", "edge: nginx"))
    result = workflow.generate(stack_dir)
    assert (stack_dir / "edge" / "nginx.conf").exists()
    assert not (stack_dir / "edge" / "Caddyfile").exists(), "stackgen's own untouched output is removed when no longer rendered"
    assert files.Action.REMOVE in {f.action for f in result.plan.files}


def test_hand_edit_stops_generate_and_names_the_file(stack_dir: Path):
    caddyfile = stack_dir / "edge" / "Caddyfile"
    caddyfile.write_text(caddyfile.read_text() + "\n# my tweak\n")
    spec = stack_dir / "stack.yaml"
    spec.write_text(spec.read_text().replace("timezone: Etc/UTC", "timezone: Europe/Berlin"))
    compose_before = (stack_dir / "compose.yaml").read_bytes()
    with pytest.raises(files.HandEditError) as caught:
        workflow.generate(stack_dir)
    assert "edge/Caddyfile" in str(caught.value)
    assert "+# my tweak" not in caught.value.plan.conflicts[0].diff()
    assert "-# my tweak" in caught.value.plan.conflicts[0].diff()
    assert "# my tweak" in caddyfile.read_text(), "the edit is still there"
    assert (stack_dir / "compose.yaml").read_bytes() == compose_before, "nothing else was written either"


def test_force_keeps_a_backup_of_the_edit(stack_dir: Path):
    caddyfile = stack_dir / "edge" / "Caddyfile"
    edited = caddyfile.read_text() + "\n# my tweak\n"
    caddyfile.write_text(edited)
    result = workflow.generate(stack_dir, force=True)
    assert result.backups == [stack_dir / "edge" / "Caddyfile.bak"]
    assert (stack_dir / "edge" / "Caddyfile.bak").read_text() == edited
    assert "# my tweak" not in caddyfile.read_text()
    caddyfile.write_text(edited + "# again\n")
    workflow.generate(stack_dir, force=True)
    assert (stack_dir / "edge" / "Caddyfile.bak.1").read_text() == edited + "# again\n", "a backup never overwrites a backup"


def test_edited_file_no_longer_rendered_is_kept(stack_dir: Path):
    caddyfile = stack_dir / "edge" / "Caddyfile"
    caddyfile.write_text("# mine now\n")
    spec = stack_dir / "stack.yaml"
    spec.write_text(spec.read_text().replace("edge: caddy", "edge: nginx"))
    result = workflow.generate(stack_dir)
    assert caddyfile.read_text() == "# mine now\n"
    assert [f.path for f in result.plan.of(files.Action.ORPHAN)] == ["edge/Caddyfile"]


def test_write_failure_leaves_old_files(stack_dir: Path, monkeypatch):
    spec = stack_dir / "stack.yaml"
    spec.write_text(spec.read_text().replace("timezone: Etc/UTC", "timezone: Europe/Berlin"))
    before = {p: p.read_bytes() for p in stack_dir.rglob("*") if p.is_file()}
    real_stage = files.stage
    calls = {"n": 0}

    def flaky(target, content, mode):
        calls["n"] += 1
        if calls["n"] == 2:  # compose.yaml staged, then the lock fails
            raise OSError(28, "No space left on device", str(target))
        return real_stage(target, content, mode)

    monkeypatch.setattr(files, "stage", flaky)
    with pytest.raises(StackgenError, match="nothing was changed"):
        workflow.generate(stack_dir)
    after = {p: p.read_bytes() for p in stack_dir.rglob("*") if p.is_file()}
    assert after == before
    assert not list(stack_dir.rglob("*.tmp"))


def test_missing_referenced_file_is_an_error_naming_the_field(tmp_path: Path):
    stack = make_stack(tls={"mode": "files", "cert_file": "tls/cert.pem", "key_file": "tls/key.pem"})
    with pytest.raises(StackgenError, match="tls.cert_file: file not found"):
        workflow.init(tmp_path / "s", stack)
    assert not (tmp_path / "s").exists()


def test_init_refuses_an_existing_stack(stack_dir: Path):
    with pytest.raises(StackgenError, match="already exists"):
        workflow.init(stack_dir, make_stack())


def test_corrupt_lock_is_reported(stack_dir: Path):
    (stack_dir / files.LOCK_NAME).write_text("{not json")
    with pytest.raises(StackgenError, match=r"\.stackgen\.lock: not a stackgen lock file"):
        workflow.generate(stack_dir)


def test_atomic_write_replaces_in_one_step(tmp_path: Path):
    target = tmp_path / "f"
    files.write_atomic(target, b"one", 0o600)
    files.write_atomic(target, b"two", 0o644)
    assert target.read_bytes() == b"two" and mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
