"""verify on hostile files: a clear error naming the file (and line), exit 2 — never a hang or a traceback;
and what Compose accepts, accepted (issue 11, part 2: the file-reading class)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackgen.composefile.yaml_loader import ComposeError
from stackgen.verify.pipeline import verify

SERVICE = "services:\n  app:\n    image: alpine:3.20\n"


def compose(tmp_path: Path, text: str = SERVICE) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return path


def test_dev_zero_as_env_file_is_an_error_not_a_hang(tmp_path):
    path = compose(tmp_path, SERVICE + "    env_file: /dev/zero\n")
    with pytest.raises(ComposeError, match="env_file: not a regular file"):
        verify([path], project_dir=tmp_path)


def test_a_fifo_as_env_file_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.env")
    path = compose(tmp_path, SERVICE + "    env_file: pipe.env\n")
    with pytest.raises(ComposeError, match="not a regular file"):
        verify([path], project_dir=tmp_path)


def test_a_symlink_loop_is_named(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    with pytest.raises(ComposeError, match="symbolic link loop"):
        verify([tmp_path / "a.yaml"], project_dir=tmp_path)


@pytest.mark.parametrize(("data", "message", "line"), [(b"services:\n  app:\n    image: \xff\n", "not UTF-8 text", 3),
                                                       (b"services:\n\x00\n", "NUL character", 2)])
def test_bad_bytes_in_a_compose_file_name_the_line(tmp_path, data, message, line):
    path = tmp_path / "compose.yaml"
    path.write_bytes(data)
    with pytest.raises(ComposeError, match=message) as caught:
        verify([path], project_dir=tmp_path)
    assert caught.value.line == line


def test_a_latin1_byte_in_dotenv_is_accepted_as_compose_does(tmp_path):
    (tmp_path / ".env").write_bytes(b"GREETING=gr\xfc\xdf\nTAG=3.20\n")
    path = compose(tmp_path, "services:\n  app:\n    image: alpine:${TAG}\n")
    result = verify([path], project_dir=tmp_path, fail_on=None)
    assert result.topology.services["app"].image == "alpine:3.20"


def test_an_env_file_with_a_latin1_byte_is_read(tmp_path):
    (tmp_path / "app.env").write_bytes(b"NAME=caf\xe9\n")
    path = compose(tmp_path, SERVICE + "    env_file: app.env\n")
    verify([path], project_dir=tmp_path, fail_on=None)


def test_cli_exits_2_without_traceback(tmp_path):
    from typer.testing import CliRunner

    from stackgen.cli.app import app

    path = compose(tmp_path, SERVICE + "    env_file: /dev/zero\n")
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "not a regular file" in result.output


def bomb(levels: int = 8) -> str:
    lines = ["x-a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(levels):
        parent, name = chr(97 + i), chr(98 + i)
        lines.append(f"x-{name}: &{name} [" + ", ".join([f"*{parent}"] * 10) + "]")
    return "\n".join(lines) + f"\nservices:\n  app:\n    image: alpine:3.20\n    labels:\n      x: *{chr(97 + levels)}\n"


def test_an_alias_bomb_is_refused_with_its_line(tmp_path):
    text = bomb()
    assert len(text) < 1024
    with pytest.raises(ComposeError, match="excessive aliasing") as caught:
        verify([compose(tmp_path, text)], project_dir=tmp_path)
    assert caught.value.line is not None


def test_ordinary_anchors_and_merges_still_work(tmp_path):
    text = ("x-common: &common\n  restart: unless-stopped\n  read_only: true\n"
            "services:\n  a:\n    <<: *common\n    image: alpine:3.20\n  b:\n    <<: *common\n    image: alpine:3.20\n")
    result = verify([compose(tmp_path, text)], project_dir=tmp_path, fail_on=None)
    assert all(s.read_only for s in result.topology.services.values())


def test_a_template_missing_its_context_is_judged_and_its_flaws_reported(tmp_path):
    """An app-store file: a required port variable and an external network defined by the installer.
    Compose refuses it alone; stackgen reports the real flaws and says what it assumed."""
    text = ("services:\n  node-red:\n    image: nodered/node-red:5.0.7\n    user: root\n"
            "    ports: [\"${PORT:?set PORT}:1880\"]\n    networks: [proxy]\n")
    result = verify([compose(tmp_path, text)], project_dir=tmp_path)
    rules = {f.rule for f in result.findings if not f.suppressed}
    assert {"SG043", "SG102", "SG111"} <= rules
    assert result.exit_code == 1, "the exit code follows the findings, not the missing context"


@pytest.mark.parametrize("self_include", [True, False])
def test_include_cycles_are_named(tmp_path, self_include):
    if self_include:
        compose(tmp_path, "include:\n  - compose.yaml\n" + SERVICE)
        expected = "`include` cycle: .*compose.yaml -> .*compose.yaml"
    else:
        compose(tmp_path, "include:\n  - b.yaml\n" + SERVICE)
        (tmp_path / "b.yaml").write_text("include:\n  - compose.yaml\nservices:\n  b:\n    image: alpine:3.20\n")
        expected = "`include` cycle: .*compose.yaml -> .*b.yaml -> .*compose.yaml"
    with pytest.raises(ComposeError, match=expected):
        verify([tmp_path / "compose.yaml"], project_dir=tmp_path)


def test_an_included_file_twice_without_a_cycle_is_fine(tmp_path):
    (tmp_path / "common.yaml").write_text("services:\n  c:\n    image: alpine:3.20\n")
    (tmp_path / "b.yaml").write_text("include:\n  - common.yaml\nservices:\n  b:\n    image: alpine:3.20\n")
    compose(tmp_path, "include:\n  - b.yaml\n" + SERVICE)
    result = verify([tmp_path / "compose.yaml"], project_dir=tmp_path, fail_on=None)
    assert set(result.topology.services) == {"app", "b", "c"}
