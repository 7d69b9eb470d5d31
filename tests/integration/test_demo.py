"""`make demo`, as a new user runs it (issue 10, item 7): the `stackgen verify --live` command it prints
passes clean, run exactly as printed; and its edge is Caddy started by the rendered compose.yaml with
the upstream file capability on /usr/bin/caddy (what the kernel refuses after cap_drop: [ALL] unless
NET_BIND_SERVICE is added back). The demo runs in a temporary directory under a project of its own."""

from __future__ import annotations

import secrets
import shlex
import subprocess

import pytest

from scripts import demo
from stackgen.upstream.contracts import load_contract

pytestmark = pytest.mark.engine


def test_the_printed_live_check_passes_clean(engine, local_images, tmp_path, monkeypatch, capsys):
    project = f"sgdemo-{secrets.token_hex(3)}"
    monkeypatch.setattr(demo, "DEMO", tmp_path / "demo")
    monkeypatch.setattr(demo, "PROJECT", project)
    monkeypatch.setattr(demo, "PEBBLE", f"{project}-pebble")
    try:
        assert demo.up() == 0, capsys.readouterr()
        printed = capsys.readouterr().out
        line = next(line for line in printed.splitlines() if line.strip().startswith("live:"))
        command = shlex.split(line.split("live:", 1)[1])
        assert command[1:3] == ["verify", "--live"] and "--ca-file" in command, line
        result = subprocess.run(command, cwd=demo.ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "PASS no findings" in result.stdout, result.stdout + result.stderr
        edge = engine.containers.list(filters={"label": [f"com.docker.compose.project={project}",
                                                         "com.docker.compose.service=edge"]})[0]
        added = [cap.removeprefix("CAP_") for cap in edge.attrs["HostConfig"]["CapAdd"]]
        assert edge.attrs["HostConfig"]["CapDrop"] == ["ALL"] and added == ["NET_BIND_SERVICE"], edge.attrs["HostConfig"]
        code, caps = edge.exec_run(["getcap", "/usr/bin/caddy"])
        assert code == 0 and caps.decode().split()[1:] == [load_contract("caddy").main_binary.file_capabilities], caps
    finally:
        demo.down()
