"""`init` says which Node-RED an arm/v7 stack gets and why (issue 10, item 4: "... and `init` says so"), and the note
agrees with the contract, the one place the version lives (no second copy of the arm/v7 version in code or docs)."""

from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.generate.context import version_notes
from stackgen.spec import Stack
from stackgen.upstream.contracts import load_contract

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]
ARMV7 = "linux/arm/v7"


def _stack(platform: str, **node_red) -> Stack:
    return Stack.model_validate({
        "project": "p", "domains": ["nodered.example.org"], "email": "ops@example.org", "platform": platform,
        "node_red": {"admin_password_hash": "$2b$10$" + "a" * 53, **node_red},
    })


def test_init_on_armv7_names_the_node_red_it_pins_and_why(tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("correct horse battery\n")
    contract = load_contract("node-red")
    for platform, noted in ((ARMV7, True), ("linux/arm64", False)):
        directory = tmp_path / platform.replace("/", "-")
        result = runner.invoke(app, ["init", str(directory), "--non-interactive", "--domain", "nodered.example.org",
                                     "--email", "ops@example.org", "--admin-password-file", str(pw), "--platform", platform])
        assert result.exit_code == 0, result.output
        output = " ".join(result.output.split())
        assert ("publishes no linux/arm/v7 image" in output) is noted, output
        if noted:
            assert f"pins Node-RED {contract.tag_for(ARMV7).version}" in output
            assert f"nodered/node-red:{contract.tag_for(ARMV7).tag}" in (directory / "compose.yaml").read_text()


def test_the_armv7_note_says_what_the_contract_says():
    """Version, image, Node.js major and its end of life, and what a 64-bit OS gets: each from the contract."""
    contract = load_contract("node-red")
    newest, chosen = contract.tags[0], contract.tag_for(ARMV7)
    assert chosen is not newest and ARMV7 not in newest.platforms
    (note,) = version_notes(_stack(ARMV7))
    assert f"Node-RED {newest.major} publishes no {ARMV7} image" in note
    assert f"pins Node-RED {chosen.version} ({contract.image}:{chosen.tag})" in note
    assert f"the newest {'.'.join(chosen.version.split('.')[:2])}.x" in note
    assert chosen.runtime is not None and chosen.runtime.end_of_life is not None
    assert f"runs on {chosen.runtime.name} {chosen.runtime.major}" in note
    eol = chosen.runtime.end_of_life.isoformat()
    assert (f"past end of life upstream since {eol}" in note) is (chosen.runtime.end_of_life <= date.today())
    assert f"a 64-bit OS (linux/arm64) gets Node-RED {newest.version}" in note
    assert len(note) < 400, "keep it short"
    # The user's own choice gets no note: a version, or an image.
    assert version_notes(_stack(ARMV7, version="4.1.0")) == []
    assert version_notes(_stack("linux/arm64")) == version_notes(_stack("linux/amd64")) == []


# Where the arm/v7 version may be written: the contract; what is rendered from it (checked against it by the golden and
# example tests); the twin that runs it (its recipe names the npm package; test_node_red_4_1 checks it against the
# contract); and README (its version and twin tables: checked below).
ALLOWED = (
    re.compile(r"stackgen/upstream/contracts/node-red\.yaml$"),
    re.compile(r"compose/[^/]+/"),
    re.compile(r"tests/golden/"),
    re.compile(r"tests/images/node-red-4\.1/"),
    re.compile(r"README\.md$"),
)


def test_the_armv7_version_is_written_only_in_the_contract_and_what_derives_from_it():
    contract = load_contract("node-red")
    version, tag = contract.tag_for(ARMV7).version, contract.tag_for(ARMV7).tag
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    found = []
    for name in listed:
        path = ROOT / name
        if not path.is_file() or path.is_symlink() or any(a.search(name) for a in ALLOWED):
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if re.search(rf"(?<![\d.]){re.escape(version)}(?![\d])", text):
            found.append(name)
    assert not found, f"{version} written outside the contract: {found}"
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if version in line]
    row = next(line for line in rows if line.startswith(f"| Node-RED on `{ARMV7}` |"))
    twin = [line for line in rows if line.startswith("| `stackgen-local/node-red-4.1` |")]
    assert len(twin) == 1 and f"`{contract.image}:{tag}`" in twin[0], twin
    assert len(rows) == 2, f"README names {version} outside its version table's row and the twin table's: {rows}"
    assert f"`{contract.image}:{tag}`" in row, row
    assert f"Node.js {contract.tag_for(ARMV7).runtime.major}" in row, row
