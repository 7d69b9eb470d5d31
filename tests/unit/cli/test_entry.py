"""One entry point (`stackgen.cli:entry`, `python -m stackgen`), verify's options declared once, one output
writer and one error printer (issue 12). Start-up *time* is measured by bench/start_time.py, not here:
these tests hold the property that makes it fast — a command imports only what it needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from stackgen.cli import commands, main
from stackgen.cli.app import app
from stackgen.cli.errors import print_error
from stackgen.cli.output import emit
from stackgen.cli.verify import RULES, VERIFY

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("typer", "rich", "click", "pydantic", "jinja2", "docker", "cryptography", "bcrypt", "ruamel")
ONE_SERVICE = "services:\n  app:\n    image: x/app:1.0\n    user: '1000'\n"


def imported_by(tmp_path: Path, *args: str) -> tuple[int, list[str], str]:
    """Run `stackgen ARGS` in a fresh interpreter; its exit code, the heavy packages it imported, its stdout."""
    code = (
        "import sys\nfrom stackgen.cli import main\nrc = main(sys.argv[1:])\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "sys.stdout.write('\\nHEAVY ' + ','.join(heavy) + '\\n')\nsys.exit(rc)\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path, env=env)
    out, _, heavy = proc.stdout.rpartition("\nHEAVY ")
    return proc.returncode, [h for h in heavy.strip().split(",") if h], out


def test_help_and_version_import_nothing_heavy(tmp_path: Path) -> None:
    code, heavy, out = imported_by(tmp_path, "--help")
    assert (code, heavy) == (0, [])
    assert "Usage: stackgen" in out and "verify" in out
    code, heavy, out = imported_by(tmp_path, "--version")
    assert (code, heavy, out.strip()) == (0, [], "stackgen 0.1.0")


@pytest.mark.parametrize("extra", [(), ("--format", "json"), ("--format", "sarif"), ("--each",)])
def test_one_service_verify_imports_nothing_heavy(tmp_path: Path, extra: tuple[str, ...]) -> None:
    (tmp_path / "compose.yaml").write_text(ONE_SERVICE)
    code, heavy, _ = imported_by(tmp_path, "verify", "compose.yaml", *extra)
    assert code == 0
    assert heavy == [], f"`stackgen verify {' '.join(extra)}` imported {heavy}"


def test_verifying_known_images_imports_no_pydantic(tmp_path: Path) -> None:
    """SG042 reads the upstream contracts (the edge's file capabilities) without validating them with pydantic."""
    (tmp_path / "compose.yaml").write_text(
        "services:\n  edge:\n    image: caddy:2.11.7-alpine\n    cap_drop: [ALL]\n  n:\n    image: nginx:1\n    cap_drop: [ALL]\n"
    )
    code, heavy, out = imported_by(tmp_path, "verify", "compose.yaml", "--format", "json", "--fail-on", "none")
    assert code == 0 and heavy == []
    assert {f["service"] for f in json.loads(out)["findings"] if f["rule"] == "SG042"} == {"edge"}


def test_the_light_reading_of_file_capabilities_agrees_with_the_validated_contracts() -> None:
    from stackgen.upstream.contracts import all_contracts
    from stackgen.upstream.filecaps import image_file_capabilities

    first: dict[str, frozenset[str]] = {}
    for contract in all_contracts().values():
        first.setdefault(contract.image, contract.main_binary.capabilities)
    assert first and all(image_file_capabilities(image) == caps for image, caps in first.items())
    assert image_file_capabilities("example/unknown") == frozenset()


def test_rules_imports_nothing_heavy(tmp_path: Path) -> None:
    code, heavy, out = imported_by(tmp_path, "rules")
    assert (code, heavy) == (0, []) and "SG001" in out


def test_python_dash_m_stackgen_is_the_same_entry(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")}
    (tmp_path / "compose.yaml").write_text(ONE_SERVICE.replace("'1000'", "root"))
    run = subprocess.run([sys.executable, "-m", "stackgen", "verify", "--format", "json"], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert run.returncode == 1 and any(f["rule"] == "SG018" for f in json.loads(run.stdout)["findings"])
    version = subprocess.run([sys.executable, "-m", "stackgen", "--version"], capture_output=True, text=True, env=env)
    assert version.stdout == "stackgen 0.1.0\n"


def test_the_quick_help_lists_what_typer_registers() -> None:
    group = typer.main.get_command(app)
    listed = {name: cmd.get_short_help_str(limit=500) for name, cmd in group.commands.items()}
    assert listed == commands.COMMANDS, "stackgen --help (cli/commands.py) and the typer app disagree"
    assert group.help == commands.SUMMARY
    text = commands.help_text(width=200)
    assert all(f"  {name}" in text and summary in text for name, summary in commands.COMMANDS.items())


@pytest.mark.parametrize(("name", "table"), [("verify", VERIFY), ("rules", RULES)])
def test_typer_takes_every_option_of_the_table(name: str, table) -> None:
    command = typer.main.get_command(app).commands[name]
    declared = {param.name: param for param in command.params}
    for opt in table:
        param = declared[opt.name]
        assert set(param.opts) == set(opt.flags or (opt.name,)), opt.name
        assert opt.help in (getattr(param, "help", None) or opt.help)


def test_fast_path_and_typer_agree_on_live_only_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(ONE_SERVICE)
    # An option of --live alone goes to typer (which accepts it), not to an argparse error.
    assert main(["verify", "--probes", "cheap", "compose.yaml"]) == 0


def test_emit_replaces_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    target.write_text("old")
    assert emit("nouveau: é\n", target) == 0
    assert target.read_bytes() == "nouveau: é\n".encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"], "no temporary file left behind"


def test_emit_to_an_unwritable_place_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert emit("x", tmp_path / "missing" / "report.txt") == 2
    assert capsys.readouterr().err.startswith("error: cannot write ")


def test_one_error_format(capsys: pytest.CaptureFixture[str]) -> None:
    print_error("domains[0]: [bold]not markup[/bold]\n")
    assert capsys.readouterr().err == "error: domains[0]: [bold]not markup[/bold]\n"


def test_live_errors_exit_2_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--live", str(tmp_path / "nope")]) == 2
    assert "no such stack directory" in capsys.readouterr().err
