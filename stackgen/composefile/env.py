"""Variables the way Compose reads them: `.env` files and `${VAR}` interpolation.

Why its own module: interpolation decides what a file *means* (`${PORT:-1880}`
is a published port), so it must follow Compose to the letter, and it is
easiest to test on its own. Supported: `$VAR`, `${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`,
nesting inside defaults, and `$$` as a literal `$`.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from stackgen.composefile.yaml_loader import ComposeError, PList, PMap, Pos

__all__ = ["parse_dotenv", "read_dotenv", "interpolate", "substitute", "InterpolationError"]

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


class InterpolationError(ValueError):
    """A `${VAR:?msg}` that is unset, or a malformed `${...}`."""


def substitute(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand variables in `text`; `lookup` returns None for an unset variable."""
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            j = text.find("$", i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            i = j
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                raise InterpolationError(f"invalid interpolation format: {text!r} (unclosed ${{)")
            out.append(_braced(text[i + 2 : end], text, lookup))
            i = end + 1
        else:
            m = _NAME.match(text, i + 1)
            if m:
                out.append(lookup(m.group()) or "")
                i = m.end()
            else:  # a lone `$` stays literal, as in Compose
                out.append("$")
                i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "$" and text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _braced(inner: str, whole: str, lookup: Callable[[str], str | None]) -> str:
    m = _NAME.match(inner)
    if not m:
        raise InterpolationError(
            f"invalid interpolation format: {whole!r}; you may need to escape any $ with another $"
        )
    name, rest = m.group(), inner[m.end() :]
    value = lookup(name)
    if not rest:
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise InterpolationError(
            f"invalid interpolation format: {whole!r}; you may need to escape any $ with another $"
        )
    empty_counts = op.startswith(":")
    missing = value is None or (empty_counts and value == "")
    kind = op[-1]
    if kind == "-":
        return substitute(arg, lookup) if missing else (value or "")
    if kind == "+":
        return "" if missing else substitute(arg, lookup)
    if missing:  # "?"
        detail = substitute(arg, lookup)
        raise InterpolationError(f"required variable {name} is missing a value" + (f": {detail}" if detail else ""))
    return value or ""


# What a file needs from elsewhere (a required variable, an undefined network or volume): collected
# while loading, so the file is still judged and the gap is reported as a finding (SG043), not a refusal.
MISSING_CONTEXT: contextvars.ContextVar[list | None] = contextvars.ContextVar("stackgen_missing_context", default=None)
# What a missing required variable is judged as: "0" reads as a number (ports) and as text.
UNSET_PLACEHOLDER = "0"


def note_missing_context(message: str, where: Pos | None) -> bool:
    """Record a gap when loading leniently; False when strict (the caller then raises)."""
    notes = MISSING_CONTEXT.get()
    if notes is None:
        return False
    notes.append((message, where))
    return True


def interpolate(value: object, lookup: Callable[[str], str | None], where: Pos | None = None) -> object:
    """Interpolate every string value (not keys) in a PMap/PList tree, in place."""
    if isinstance(value, str):
        try:
            return substitute(value, lookup)
        except InterpolationError as exc:
            if str(exc).startswith("required variable") and note_missing_context(
                f"{exc}: judged as {UNSET_PLACEHOLDER!r} (set it in .env or the environment)", where
            ):
                return substitute(value, lambda name: lookup(name) or UNSET_PLACEHOLDER)
            raise ComposeError.at(where, str(exc)) from None
    if isinstance(value, PMap):
        for key, item in value.items():
            if isinstance(item, (str, PMap, PList)):
                value[key] = interpolate(item, lookup, value.kpos.get(key, where))
        return value
    if isinstance(value, PList):
        for idx, item in enumerate(value):
            if isinstance(item, (str, PMap, PList)):
                pos = value.ipos[idx] if idx < len(value.ipos) else where
                value[idx] = interpolate(item, lookup, pos)
        return value
    return value


# --- .env files -------------------------------------------------------------

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:=|:\s)?\s*(.*)$", re.S)


def parse_dotenv(
    text: str,
    lookup: Callable[[str], str | None] | None = None,
    file: str = ".env",
) -> dict[str, str | None]:
    """Parse a `.env` file as Compose does: quotes, escapes, comments, `${VAR}`.

    A bare `KEY` line maps to None (inherit from the environment, for `env_file`).
    Earlier keys are visible to later ones; `lookup` supplies the rest.
    """
    result: dict[str, str | None] = {}

    def find(name: str) -> str | None:
        if name in result and result[name] is not None:
            return result[name]
        return lookup(name) if lookup else None

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        i += 1
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(raw)
        if not m:
            raise ComposeError(f"invalid line in env file: {stripped!r}", file, lineno, 1)
        key, rest = m.group(1), m.group(2)
        if "=" not in raw and ":" not in raw.split("#", 1)[0]:
            result[key] = None
            continue
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            while _unclosed(body, quote) and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            end = _quote_end(body, quote)
            if end < 0:
                raise ComposeError(f"unterminated quoted value for {key}", file, lineno, raw.find(quote) + 1)
            value = body[:end]
            if quote == '"':
                value = _unescape(value)
                value = _expand(value, find, file, lineno)
            result[key] = value
            continue
        value = rest
        hash_at = _inline_comment(value)
        if hash_at >= 0:
            value = value[:hash_at]
        value = value.strip()
        result[key] = _expand(value, find, file, lineno)
    return result


def _expand(value: str, find: Callable[[str], str | None], file: str, line: int) -> str:
    try:
        return substitute(value, find)
    except InterpolationError as exc:
        raise ComposeError(str(exc), file, line, 1) from None


def _inline_comment(value: str) -> int:
    for idx, ch in enumerate(value):
        if ch == "#" and (idx == 0 or value[idx - 1] in " \t"):
            return idx
    return -1


def _quote_end(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _unclosed(body: str, quote: str) -> bool:
    return _quote_end(body, quote) < 0


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$$"}


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPES:
            out.append(_ESCAPES[value[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def read_dotenv(
    path: Path, lookup: Callable[[str], str | None] | None = None, display: str | None = None
) -> dict[str, str | None]:
    """Read and parse one env file; `ComposeError` when it cannot be read."""
    from stackgen.inputfile import InputFileError, read_text

    name = display or str(path)
    try:
        # lenient: Compose takes an env file's bytes as they are (a Latin-1 byte is no error there)
        text = read_text(path, lenient=True)
    except InputFileError as exc:
        raise ComposeError(f"env file: {exc.message}", name, exc.line, 1 if exc.line else None) from None
    return parse_dotenv(text, lookup, name)


def chain(*layers: Mapping[str, str | None]) -> Callable[[str], str | None]:
    """A lookup that tries each mapping in order (first wins)."""

    def lookup(name: str) -> str | None:
        for layer in layers:
            value = layer.get(name)
            if value is not None:
                return value
        return None

    return lookup
