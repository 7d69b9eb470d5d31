"""The Pi commands' bad-input table: one clear line naming the flag, file or image; exit 2 for usage, 1 for a failed check."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.spec import Stack
from stackgen.stackdir import dump_stack

runner = CliRunner()
HASH = "$2b$10$8Rl3dm2WS59eF2aCdMwpQeBH22YmBKPmoeO.UTSxEMBtlgrKOYLfS"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """These tests may talk HTTP to loopback only: a lookup of a public registry fails the test loudly."""
    import socket

    from stackgen.images.registry import is_loopback

    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        if not is_loopback(str(address[0])):
            raise AssertionError(f"test tried to connect to {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    stack = Stack.model_validate({"project": "pi", "domains": ["nodered.example.org"], "email": "a@example.org",
                                  "platform": "linux/arm64", "node_red": {"admin_password_hash": HASH}})
    (tmp_path / "stack.yaml").write_bytes(dump_stack(stack))
    return tmp_path


def test_commands_are_registered():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("images", "build", "doctor"):
        assert name in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["images", "check", "{dir}", "--registry", "http://127.0.0.1:5000"], "--registry: 'http://127.0.0.1:5000' is not HOST[:PORT]"),
        (["images", "check", "{dir}", "--platform", "linux/s390"], "--platform: 'linux/s390' is not one of linux/amd64, linux/arm64, linux/arm/v7"),
        (["images", "check", "{dir}", "--source", "cloud"], "--source: 'cloud' is not one of auto, registry, engine"),
        (["images", "check", "{dir}", "--format", "xml"], "--format: 'xml' is not one of text, json"),
        (["images", "check", "{dir}", "--platform", "linux/arm/v7", "--pin", "--registry", "127.0.0.1:1"], "--pin: the check is for linux/arm/v7"),
        (["images", "check", "{dir}/nowhere"], "nowhere/stack.yaml: not found"),
        (["build", "{dir}", "--platform", "linux/riscv64"], "--platform: 'linux/riscv64' is not one of"),
        (["build", "{dir}", "--platform", "linux/arm64", "--platform", "linux/arm/v7"], "--registry: building for 2 platforms needs a registry"),
        (["build", "{dir}", "--registry", "127.0.0.1:5000/x"], "--registry:"),
        (["doctor", "--platform", "arm64"], "--platform: 'arm64' is not a platform"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(stack_dir, args, message):
    result = runner.invoke(app, [a.replace("{dir}", str(stack_dir)) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1


def test_build_with_a_bad_base_names_the_flag(stack_dir):
    result = runner.invoke(app, ["build", str(stack_dir), "--base", "Not An Image"])
    assert result.exit_code == 2 and "--base:" in result.output


def test_unreachable_registry_is_exit_1_naming_it(stack_dir):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = runner.invoke(app, ["images", "check", str(stack_dir), "--registry", f"127.0.0.1:{port}", "--source", "registry"])
    assert result.exit_code == 1, result.output
    assert f"registry 127.0.0.1:{port}: unreachable (connection refused" in result.output
    assert "Traceback" not in result.output
