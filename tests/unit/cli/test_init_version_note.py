"""`init` says which Node-RED an arm/v7 stack gets and why (issue 10, item 4: "... and `init` says so")."""

from __future__ import annotations

from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.upstream.contracts import load_contract

runner = CliRunner()


def test_init_on_armv7_names_the_node_red_it_pins_and_why(tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("correct horse battery\n")
    contract = load_contract("node-red")
    for platform, noted in (("linux/arm/v7", True), ("linux/arm64", False)):
        directory = tmp_path / platform.replace("/", "-")
        result = runner.invoke(app, ["init", str(directory), "--non-interactive", "--domain", "nodered.example.org",
                                     "--email", "ops@example.org", "--admin-password-file", str(pw), "--platform", platform])
        assert result.exit_code == 0, result.output
        output = " ".join(result.output.split())
        assert ("publishes no linux/arm/v7 image" in output) is noted, output
        if noted:
            assert f"pins {contract.tag_for('linux/arm/v7').version}" in output
            assert f"nodered/node-red:{contract.tag_for('linux/arm/v7').tag}" in (directory / "compose.yaml").read_text()
