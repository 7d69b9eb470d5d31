"""The one error printer of the command line, and the exit codes every command shares.

Why one: each command used to print its errors its own way (three printers, two with rich markup,
one of them reading brackets in a message as markup). Now every error is one line on stderr,
`error: message`, with "error:" in bold red on a terminal; the message is never interpreted.

Exit codes, for every command: 0 clean, 1 findings (or a failed check, build or start),
2 bad input or usage. Imports nothing heavy: `stackgen verify` uses it on its fast path.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

__all__ = ["EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_USAGE", "fail", "print_error", "report_error", "user_errors"]

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def print_error(message: str) -> None:
    """`error: message` on stderr; "error:" bold red when stderr is a terminal (and NO_COLOR is unset)."""
    stream = sys.stderr
    colour = stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    label = "\x1b[1;31merror:\x1b[0m" if colour else "error:"
    stream.write(f"{label} {message.rstrip()}\n")
    stream.flush()


def report_error(message: str, code: int = EXIT_USAGE) -> int:
    """Print an error and return its exit code (for the functions that return one)."""
    print_error(message)
    return code


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print an error and return the `typer.Exit` to raise (for typer commands)."""
    import typer

    print_error(message)
    return typer.Exit(code)


def user_errors() -> tuple[type[Exception], ...]:
    """The errors a user can fix (a bad file, option or stack): printed as one line, exit 2."""
    from stackgen.composefile.yaml_loader import ComposeError
    from stackgen.errors import StackgenError
    from stackgen.verify.pipeline import UsageError

    return (StackgenError, ComposeError, UsageError)
