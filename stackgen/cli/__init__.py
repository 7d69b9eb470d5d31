"""stackgen's command line. `entry` is the one entry point: the `stackgen` console script and `python -m stackgen`.

Thin on purpose: parse, call a subsystem, print. Start-up is part of every command's time, so this
module decides what to import from the arguments alone:
- `stackgen --help` / `--version`: answered from `stackgen.cli.commands` (no typer, no rich);
- `stackgen verify ...` / `rules ...`: argparse from the commands' own option tables (`stackgen.cli.verify`);
- anything else, and any `--help` of a command: the typer app (`stackgen.cli.app:app`), which
  imports each subsystem only inside the command that needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["entry", "main"]


def _quick(args: list[str]) -> int | None:
    """The commands answered without typer; None for the others."""
    if args in (["--help"], ["--version"]):
        from stackgen.cli import commands

        sys.stdout.write(commands.help_text() if args == ["--help"] else commands.version_text())
        return 0
    from stackgen.cli.verify import fast_path

    return fast_path(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (argv without the program name) in this process; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = _quick(args)
    if code is not None:
        return code
    from stackgen.cli.app import app

    try:
        app(args=args, prog_name="stackgen", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def entry() -> None:
    """The console script: the quick commands leave at once, the others run in typer as before.

    A quick command is a one-shot process: garbage collection passes and the interpreter's teardown
    of every object of the model are pure cost (~20 ms on 200 services), so collection is off and
    the process ends with `os._exit` after flushing its output. Typer's commands (the supervisor's
    threads, `up`'s live display) keep the ordinary exit.
    """
    import gc
    import os

    gc.disable()
    try:
        code = _quick(sys.argv[1:])
        if code is not None:
            sys.stdout.flush()
            sys.stderr.flush()
    except BrokenPipeError:  # `stackgen rules | head`: the reader left, nothing more to say
        os._exit(0)
    if code is not None:
        os._exit(code)
    gc.enable()
    from stackgen.cli.app import app

    app()
