"""The list of stackgen's commands, and `stackgen --help` / `--version` written from it without typer.

Why a list here: `stackgen --help` is the first thing a newcomer runs, and typer with rich needs
~100 ms to import and draw it. The typer app takes its description and its commands' one-line
summaries from `COMMANDS` (`stackgen.cli.app`), so the two helps cannot differ; a unit test holds
every registered command to this list.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "SUMMARY", "help_text", "summary", "version_text"]

SUMMARY = "Put Node-RED on the internet safely: render, verify and run a hardened stack."

# name -> one-line summary, in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "schema": "Print the JSON Schema of stack.yaml (for editors' YAML language servers).",
    "init": "Create a new stack: write stack.yaml, then render every file from it.",
    "generate": "Re-render every file from stack.yaml; never silently overwrites a hand edit.",
    "instance": "Add or remove a Node-RED instance (its own network, volume and secret; the edge routes its host names to it).",
    "up": "Start the stack, wait until every service is healthy, and say what failed if one does not.",
    "down": "Stop the stack. Volumes (your flows, your keys) are kept unless --volumes is given.",
    "verify": "Check compose files against stackgen's security model; exit 0 clean, 1 findings, 2 errors.",
    "rules": "List the rules `stackgen verify` applies, or explain one.",
    "supervise": "Watch the running stack: heal unhealthy containers, renew and check certificates, watch for drift, alert.",
    "status": "Services, health, restarts, backoff, certificate expiry, last verify and open alerts.",
    "renew": "Renew through the sidecar now, check the files, and confirm the edge serves the new certificate.",
    "backup": "Write one archive of Node-RED's /data, stack.yaml and the secrets (owners, modes, checksums kept).",
    "restore": "Verify an archive's checksums, then restore stack.yaml, secrets and volumes (never into a running stack).",
    "build": "Build the custom Node-RED image (base + node_red.extra_nodes, locked) for every target platform.",
    "doctor": "Check that this machine can build and run images for the target platforms (engine, builder, QEMU/binfmt).",
    "images": "Image platforms and digests.",
}


def summary(name: str) -> str:
    """A command's one-line summary (typer's `short_help`)."""
    return COMMANDS[name]


def version_text() -> str:
    from stackgen import __version__

    return f"stackgen {__version__}\n"


def help_text(width: int | None = None) -> str:
    """`stackgen --help`: usage, the options of `stackgen` itself, and the commands with their summaries."""
    import shutil
    import textwrap

    width = width or max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
    lines = ["Usage: stackgen [OPTIONS] COMMAND [ARGS]...", "", *textwrap.wrap(SUMMARY, width - 2, initial_indent="  ",
             subsequent_indent="  "), "", "Options:", "  --version  Print the version and exit.",
             "  --help     Show this message and exit.", "", "Commands:"]
    column = max(len(name) for name in COMMANDS) + 4
    for name, text in COMMANDS.items():
        wrapped = textwrap.wrap(text, max(20, width - column)) or [""]
        lines.append(f"  {name:<{column - 2}}{wrapped[0]}")
        lines += [" " * column + more for more in wrapped[1:]]
    lines += ["", "`stackgen COMMAND --help` explains a command."]
    return "\n".join(lines) + "\n"
