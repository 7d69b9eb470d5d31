"""stack.yaml from anywhere (a forum, a colleague) gets a clear error, fast: never a hang or a traceback."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.errors import StackgenError
from stackgen.stackdir import MAX_SPEC_BYTES, load_stack

BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)]
) + "\n"


def write(tmp_path, data: bytes):
    (tmp_path / "stack.yaml").write_bytes(data)
    return tmp_path


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    assert len(BOMB) < 1024
    start = time.monotonic()
    with pytest.raises(StackgenError, match="expands to more than .* values"):
        load_stack(write(tmp_path, BOMB.encode()))
    assert time.monotonic() - start < 5, "bounded, not exponential (a generous bound: this is no benchmark)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"project: p\nemail: \xff\n", r"stack.yaml:2: not UTF-8 text \(byte 0xff\)"),
        (b"project: p\n\nemail: a\x00b\n", r"stack.yaml:3: a NUL character"),
        (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", r"stack.yaml: nested too deeply|stack.yaml:1"),
        (b"x" * (MAX_SPEC_BYTES + 10), r"larger than 256 KiB"),
    ],
)
def test_broken_files_name_file_and_line(tmp_path, data, message):
    with pytest.raises(StackgenError, match=message):
        load_stack(write(tmp_path, data))


def test_not_a_regular_file(tmp_path):
    (tmp_path / "stack.yaml").mkdir()
    with pytest.raises(StackgenError, match="not a regular file"):
        load_stack(tmp_path)


def test_generate_exits_2_with_the_error_and_no_traceback(tmp_path):
    write(tmp_path, BOMB.encode())
    result = CliRunner().invoke(app, ["generate", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "expands to more than" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "compose.yaml").exists(), "nothing half-written"
