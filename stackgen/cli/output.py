"""The one output writer of `stackgen verify`: a result in text, JSON, SARIF, mermaid or HTML, to stdout or `-o FILE`.

Why one: plain verify, `--each` and `--live` print the same findings model; each used to choose its
renderer and write `-o` itself, and the copies drifted (live wrote `-o` non-atomically and without
catching errors). Here a result goes through `render` (or `render_each`) and then `emit`.
A live result (`stackgen.live.checks.LiveResult`) is a verify result plus the reachability matrix,
the probes' checks and the time taken; every format shows those extras where it has a place for them.
Renderers are imported only for the format asked for: start-up time is most of a CI run's time.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from stackgen.cli.errors import EXIT_USAGE, report_error

__all__ = ["FORMATS", "color_for", "emit", "render", "render_checks", "render_each", "render_matrix"]

FORMATS = ("text", "json", "sarif", "mermaid", "html")


def color_for(output: Path | None) -> bool:
    """Colour only for a person: stdout, and a terminal."""
    return output is None and sys.stdout.isatty()


def render(result: Any, output_format: str, *, color: bool = False, explain: bool = False) -> str:
    """A verify result (static or live) in `output_format`; `explain` adds each service's role (text, json)."""
    from stackgen import __version__

    live = getattr(result, "matrix", None) is not None
    if output_format == "json":
        from stackgen.verify.report import render_json, role_entries

        services = role_entries(result.topology) if explain else None
        text = render_json(result.findings, result.summary, __version__, services=services)
        if not live:
            return text
        data = json.loads(text)
        data["live"] = result.to_dict()
        return json.dumps(data, indent=2) + "\n"
    if output_format == "sarif":
        from stackgen.verify.report import render_sarif
        from stackgen.verify.rules import ALL_RULES

        return render_sarif(result.findings, ALL_RULES, __version__)
    if output_format == "mermaid":
        from stackgen.verify.mermaid import render_mermaid

        return render_mermaid(result.topology, result.findings)
    if output_format == "html":  # live: the observed topology drawn, its findings on it, and the matrix
        from stackgen.verify.html import render_html

        extras = {"matrix": result.cells(), "checks": result.checks, "seconds": result.seconds} if live else {}
        return render_html(result.topology, result.findings, result.summary, exit_code=result.exit_code,
                           tool_version=__version__, **extras)
    from stackgen.verify.report import render_roles, render_text

    text = render_text(result.findings, result.summary, color=color)
    if explain:
        text = render_roles(result.topology) + text
    if live:
        text += "\n" + render_matrix(result, color=color) + "\n" + render_checks(result)
        text += f"live verify of {result.topology.project}: {result.seconds:.1f}s\n"
    return text


def render_each(outcome: Any, output_format: str, *, color: bool = False) -> str:
    """`verify --each`: one report per stack, in one document."""
    from stackgen import __version__
    from stackgen.verify.each import render as render_stacks

    return render_stacks(outcome, output_format, __version__, color=color)


def emit(text: str, output: Path | None) -> int:
    """The report to `-o FILE` or stdout; 0, or 2 when the file cannot be written.

    A file is replaced atomically (written beside it, then renamed): a reader, or a CI step that
    uploads it, never sees half a report, and a failed write leaves the old one. Always UTF-8.
    Something that is not a regular file (`-o /dev/stdout`, a pipe) is written in place.
    """
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    try:
        _write_atomic(output, text.encode("utf-8"))
    except OSError as exc:
        return report_error(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE)
    return 0


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        special = not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        special = False
    if special:
        with open(path, "wb") as stream:
            stream.write(data)
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for a plain write
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- live verify's extras, as text ------------------------------------------------------------


def render_matrix(result: Any, color: bool = False) -> str:
    """The reachability matrix as a table: expected vs observed, mismatches marked."""
    cells = result.cells()
    if not cells:
        return ""
    if color:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="reachability (TCP connect)")
        for column in ("target", "address", "from", "expected", "observed", ""):
            table.add_column(column)
        for c in cells:
            style = "" if c.ok else "bold red"
            table.add_row(f"{c.service}:{c.port}", f"{c.address} ({c.via})", c.vantage, c.expected or "-", c.observed,
                          "ok" if c.ok else "MISMATCH", style=style)
        console = Console(record=True, width=120, force_terminal=True)
        with console.capture() as capture:
            console.print(table)
        return capture.get()
    rows = [("target", "address", "from", "expected", "observed", "")]
    rows += [(f"{c.service}:{c.port}", f"{c.address} ({c.via})", c.vantage, c.expected or "-", c.observed,
              "ok" if c.ok else "MISMATCH") for c in cells]
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["reachability (TCP connect)"] + ["  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def render_checks(result: Any) -> str:
    """The probes that are not matrix cells: one line each, ok or FAIL."""
    lines = ["probes"]
    for check in result.checks:
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    return "\n".join(lines) + "\n"
