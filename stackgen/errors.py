"""Turning failures into one-line messages that name the field or file:line.

Why its own module: the CLI, `generate` and `init` all report spec errors, and
users act on the location (`stack.yaml:12: tls.mode: ...`), so the mapping
from a pydantic error to a place in the user's file lives in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic costs ~35 ms at start-up: `stackgen verify` needs the errors, not pydantic
    from pydantic import ValidationError


class StackgenError(Exception):
    """An error the user can fix; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class SpecProblem:
    """One validation problem: where (dotted field path) and what."""

    loc: tuple[str | int, ...]
    message: str

    @property
    def field(self) -> str:
        return dotted(self.loc)


def dotted(loc: Iterable[str | int]) -> str:
    """`("domains", 0)` -> `domains[0]`, `("tls", "mode")` -> `tls.mode`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def problems(error: ValidationError) -> list[SpecProblem]:
    """Flatten a pydantic error, restoring the field blamed by a `FieldError`."""
    found = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        message = err["msg"]
        cause = (err.get("ctx") or {}).get("error")
        extra_loc = getattr(cause, "loc", None)
        if extra_loc:
            loc = loc + tuple(extra_loc)
        if err["type"] == "value_error" and message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (not part of stack.yaml's format; see `stackgen schema`)"
        if err["type"] == "missing":
            message = "required"
        found.append(SpecProblem(loc, message))
    return found


def line_of(document: Any, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of `loc` in a ruamel round-trip document, or the nearest parent's line."""
    best: int | None = None
    node = document
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, Mapping) and part in node:
                if lc is not None:
                    best = lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                if lc is not None:
                    best = lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return best


def format_spec_error(error: ValidationError, path: Path | None = None, document: Any = None) -> str:
    """All problems, one line each: `stack.yaml:12: tls.mode: message`."""
    lines = []
    for problem in problems(error):
        where = ""
        if path is not None:
            line = line_of(document, problem.loc) if document is not None else None
            where = f"{path}:{line}: " if line else f"{path}: "
        lines.append(f"{where}{problem.field}: {problem.message}")
    return "\n".join(lines)
