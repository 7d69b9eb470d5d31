"""The CLI through typer's runner: init, generate, schema, and the bad-input table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.generate import passwords
from tests import invariants

runner = CliRunner()


@pytest.fixture
def pw(tmp_path: Path) -> Path:
    path = tmp_path / "pw.txt"
    path.write_text("correct horse battery\n")
    return path


def init_args(directory: Path, pw: Path, *extra: str) -> list[str]:
    return [
        "init", str(directory), "--non-interactive", "--domain", "nodered.example.org",
        "--email", "ops@example.org", "--edge", "caddy", "--admin-password-file", str(pw), *extra,
    ]


def test_init_non_interactive_writes_a_safe_stack(tmp_path: Path, pw: Path):
    directory = tmp_path / "x"
    result = runner.invoke(app, init_args(directory, pw))
    assert result.exit_code == 0, result.output
    spec_text = (directory / "stack.yaml").read_text()
    assert "correct horse" not in spec_text
    stored_hash = spec_text.split("admin_password_hash: ")[1].split()[0]
    assert passwords.verify("correct horse battery", stored_hash)
    document = invariants.load((directory / "compose.yaml").read_text())
    assert invariants.check(document, bind_address="0.0.0.0", egress=False, edge_acme=False, sidecar=True) == []
    assert "correct horse" not in "".join(p.read_text() for p in directory.rglob("*") if p.is_file() and "secrets" not in p.parts)


def test_password_from_stdin(tmp_path: Path):
    directory = tmp_path / "x"
    args = ["init", str(directory), "--non-interactive", "--domain", "a.example.org", "--email", "a@example.org", "--admin-password-file", "-"]
    result = runner.invoke(app, args, input="from-stdin-pw\n")
    assert result.exit_code == 0, result.output
    stored = (directory / "stack.yaml").read_text().split("admin_password_hash: ")[1].split()[0]
    assert passwords.verify("from-stdin-pw", stored)


def test_interactive_prompts(tmp_path: Path):
    directory = tmp_path / "x"
    answers = "nodered.example.org\nops@example.org\nnginx\n\n\nsecret-password\nsecret-password\n\n"
    result = runner.invoke(app, ["init", str(directory)], input=answers)
    assert result.exit_code == 0, result.output
    assert "edge: nginx" in (directory / "stack.yaml").read_text()
    assert (directory / "edge" / "nginx.conf").exists()


def test_generate_reports_up_to_date_and_hand_edits(tmp_path: Path, pw: Path):
    directory = tmp_path / "x"
    assert runner.invoke(app, init_args(directory, pw)).exit_code == 0
    again = runner.invoke(app, ["generate", str(directory)])
    assert again.exit_code == 0 and "up to date" in again.output
    settings = directory / "node-red" / "settings.js"
    settings.write_text(settings.read_text().replace("audit: false", "audit: true"))
    (directory / "stack.yaml").write_text((directory / "stack.yaml").read_text().replace("pids_limit: 256", "pids_limit: 300"))
    stopped = runner.invoke(app, ["generate", str(directory)])
    assert stopped.exit_code == 2
    assert "node-red/settings.js" in stopped.output and "-        console: { level: \"info\", metrics: false, audit: true }" in stopped.output
    forced = runner.invoke(app, ["generate", str(directory), "--force"])
    assert forced.exit_code == 0 and "settings.js.bak" in forced.output


def test_schema_is_json():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "stackgen stack.yaml"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


BAD_INPUT = [
    (["--domain", "not_a_host!"], "--domain"),
    (["--domain", "*.example.org"], "--domain"),
    (["--http-port", "443"], "--https-port"),
    (["--http-port", "99999"], "--http-port"),
    (["--edge", "apache"], "--edge"),
    (["--tls-mode", "edge-acme", "--edge", "nginx"], "--tls-mode"),
    (["--email", "not-an-email"], "--email"),
    (["--bind-address", "everywhere"], "--bind-address"),
    (["--platform", "linux/mips"], "--platform"),
    (["--tls-mode", "files"], "--cert-file"),
    (["--image-edge", "UPPER CASE"], "--image-edge"),
    (["--http-port", "eighty"], "--http-port"),
    (["--no-such-flag"], "--no-such-flag"),
]


@pytest.mark.parametrize("extra, named", BAD_INPUT, ids=[" ".join(b[0]) for b in BAD_INPUT])
def test_bad_flags_exit_2_name_the_flag_and_write_nothing(tmp_path: Path, pw: Path, extra, named):
    directory = tmp_path / "x"
    args = init_args(directory, pw)
    for i in range(0, len(extra), 2):
        if extra[i] in args and i + 1 < len(extra):
            args[args.index(extra[i]) + 1] = extra[i + 1]
        else:
            args += extra[i : i + 2]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert not directory.exists()


def test_missing_password_in_non_interactive_mode(tmp_path: Path):
    directory = tmp_path / "x"
    args = ["init", str(directory), "--non-interactive", "--domain", "a.example.org", "--email", "a@example.org"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--admin-password-file" in result.output
    assert not directory.exists()


def test_missing_domain_in_non_interactive_mode(tmp_path: Path, pw: Path):
    result = runner.invoke(app, ["init", str(tmp_path / "x"), "--non-interactive", "--email", "a@example.org", "--admin-password-file", str(pw)])
    assert result.exit_code == 2 and "--domain" in result.output


def test_short_password_is_refused(tmp_path: Path):
    short = tmp_path / "short"
    short.write_text("abc\n")
    result = runner.invoke(app, init_args(tmp_path / "x", short))
    assert result.exit_code == 2 and "--admin-password-file" in result.output and "at least 8" in result.output


def test_unwritable_dir_non_root(tmp_path: Path, pw: Path, monkeypatch):
    """As a normal user: the access check refuses before anything is written."""
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    result = runner.invoke(app, init_args(locked / "x", pw))
    assert result.exit_code == 2 and f"{locked}: not writable" in result.output
    assert list(locked.iterdir()) == []


def test_unwritable_dir(tmp_path: Path, pw: Path):
    """A path under a regular file cannot be created: same error path as a read-only directory, also as root."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, init_args(blocker / "x", pw))
    assert result.exit_code == 2
    assert "not a directory" in result.output and str(blocker) in result.output
    assert blocker.read_text() == ""


def test_unwritable_dir_read_only_filesystem(tmp_path: Path, pw: Path):
    """/proc is never writable, even for root: init must stop before writing."""
    result = runner.invoke(app, init_args(Path("/proc/stackgen-test"), pw))
    assert result.exit_code == 2
    assert "/proc" in result.output


def test_bad_stack_yaml_names_file_and_line(tmp_path: Path, pw: Path):
    directory = tmp_path / "x"
    assert runner.invoke(app, init_args(directory, pw)).exit_code == 0
    spec = directory / "stack.yaml"
    spec.write_text(spec.read_text().replace("edge: caddy", "edge: caddy\nedgy: true"))
    before = _snapshot(directory)
    result = runner.invoke(app, ["generate", str(directory)])
    assert result.exit_code == 2
    assert f"{spec}:9: edgy: unknown key" in result.output
    assert _snapshot(directory) == before


def test_generate_without_spec(tmp_path: Path):
    result = runner.invoke(app, ["generate", str(tmp_path)])
    assert result.exit_code == 2 and "stack.yaml: not found" in result.output


def test_init_keeps_the_editor_private_by_default(tmp_path: Path, pw: Path):
    from stackgen.stackdir import load_stack

    directory = tmp_path / "x"
    result = runner.invoke(app, init_args(directory, pw))
    assert result.exit_code == 0, result.output
    editor = load_stack(directory).node_red.editor
    assert editor.path == "/editor" and not editor.open_to_everyone and "open to everyone" not in result.output


def test_init_editor_allow_flags_and_the_warning_when_open_to_everyone(tmp_path: Path, pw: Path):
    from stackgen.stackdir import load_stack

    directory = tmp_path / "x"
    result = runner.invoke(app, init_args(directory, pw, "--editor-allow", "192.168.1.0/24", "--editor-allow", "fd7a:115c:a1e0::/48"))
    assert result.exit_code == 0, result.output
    assert load_stack(directory).node_red.editor.allow == ["192.168.1.0/24", "fd7a:115c:a1e0::/48"]
    opened = runner.invoke(app, init_args(tmp_path / "y", pw, "--editor-allow", "everyone"))
    assert opened.exit_code == 0, opened.output
    assert load_stack(tmp_path / "y").node_red.editor.open_to_everyone
    assert "open to everyone" in opened.output


def test_init_refuses_a_bad_network_naming_the_flag(tmp_path: Path, pw: Path):
    result = runner.invoke(app, init_args(tmp_path / "x", pw, "--editor-allow", "10.0.0.0/33"))
    assert result.exit_code == 2 and "--editor-allow" in result.output
    host = runner.invoke(app, init_args(tmp_path / "y", pw, "--editor-host", "other.example.org"))
    assert host.exit_code == 2 and "--editor-host" in host.output


def test_init_asks_who_may_reach_the_editor(tmp_path: Path):
    directory = tmp_path / "x"
    answers = "nodered.example.org\nops@example.org\ncaddy\n\n\nsecret-password\nsecret-password\n10.0.0.0/8, 100.64.0.0/10\n"
    result = runner.invoke(app, ["init", str(directory)], input=answers)
    assert result.exit_code == 0, result.output
    from stackgen.stackdir import load_stack

    assert load_stack(directory).node_red.editor.allow == ["10.0.0.0/8", "100.64.0.0/10"]
