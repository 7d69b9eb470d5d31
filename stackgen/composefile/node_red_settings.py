"""Node-RED's settings.js, read where a compose file mounts it: does it set `adminAuth`?

Why the loader reads it: whether Node-RED's editor asks for a login is written in settings.js, not in
the compose file, and a rule judges a `Topology` alone. So the loader finds the file the container
reads (`--settings FILE`, else `settings.js` in the user directory: `--userDir`, or `/data` in the
official image), follows the bind mount that provides it back to the host, and reads it only when it
is a regular file inside the project directory (next to the compose file) and small. What it records
is `NodeRedSettings` on the service; a file it cannot read stays unknown (`admin_auth=None`).

Conservative on purpose: JavaScript is not parsed, only stripped of comments; `adminAuth` counts when an
uncommented key (or `settings.adminAuth =`) outside a string gives it a value other than null, false,
undefined or 0. `httpAdminRoot` (else the older `httpRoot`) says where the editor lives when it is a
string literal; `false` turns the editor and admin API off.
"""

from __future__ import annotations

import bisect
import posixpath
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from stackgen.composefile.paths import _display, _real
from stackgen.topology import Mount, NodeRedSettings, Role, Source, Topology

__all__ = ["attach_node_red_settings", "settings_path", "read_settings", "strip_comments"]

DEFAULT_USER_DIR = "/data"  # the official image runs Node-RED with --userDir /data
WORKDIR = "/usr/src/node-red"
MAX_BYTES = 512 * 1024  # a settings.js is a few KiB; anything larger is not read

_ADMIN_AUTH = re.compile(r"(?<![\w$])([\"']?)adminAuth\1\s*(?::|=(?!=))\s*(\S?)")
_UNSET = re.compile(r"(?:null|false|undefined|0)(?![\w$])")
_ADMIN_ROOT = re.compile(r"(?<![\w$])([\"']?)httpAdminRoot\1\s*:\s*(\"[^\"\n]*\"|'[^'\n]*'|`[^`]*`|[^,}\n]+)")
_HTTP_ROOT = re.compile(r"(?<![\w$])([\"']?)httpRoot\1\s*:\s*(\"[^\"\n]*\"|'[^'\n]*'|`[^`]*`|[^,}\n]+)")


class ParsedSettings(NamedTuple):
    admin_auth: bool
    admin_auth_line: int | None
    admin_root: str | bool | None  # a path, False (no editor), None (an expression: unknown)


def attach_node_red_settings(topo: Topology, model: Mapping[str, Any], project: Path) -> None:
    """Give every Node-RED service of `topo` what its settings.js says (`Service.node_red_settings`)."""
    specs = model.get("services") or {}
    root = _real(project)
    for svc in topo.by_role(Role.NODE_RED):
        spec = specs.get(svc.name) or {}
        args = [*_args(spec.get("entrypoint")), *_args(spec.get("command"))]
        path = settings_path(args)
        host = _host_file(path, svc.mounts)
        settings = NodeRedSettings(path=path, host_file=_display(Path(host)) if host else None)
        text = _read(host, root) if host else None
        if text is not None:
            parsed = read_settings(text)
            settings.admin_auth = parsed.admin_auth
            settings.editor_off = parsed.admin_root is False
            settings.admin_root = parsed.admin_root if isinstance(parsed.admin_root, str) else None
            settings.src = Source(settings.host_file, parsed.admin_auth_line) if parsed.admin_auth_line else None
        svc.node_red_settings = settings


def settings_path(args: list[str]) -> str:
    """The settings file Node-RED reads, from its command line (`-s/--settings`, `-u/--userDir`)."""
    settings = _option(args, "-s", "--settings")
    if settings:  # a relative one is taken from the working directory (the official image's WORKDIR)
        return posixpath.normpath(posixpath.join(WORKDIR, settings))
    return posixpath.join(_option(args, "-u", "--userDir") or DEFAULT_USER_DIR, "settings.js")


def read_settings(text: str) -> ParsedSettings:
    """What a settings.js's text says: adminAuth (and its line), httpAdminRoot (or the older httpRoot)."""
    code, strings = strip_comments(text)

    def keys(pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        return (m for m in pattern.finditer(code) if not _inside(m.start(), strings))

    line = None
    for match in keys(_ADMIN_AUTH):
        if not _UNSET.match(code, match.start(2)):
            line = code.count("\n", 0, match.start()) + 1
            break
    root: str | bool | None = "/"  # Node-RED's default
    for pattern in (_HTTP_ROOT, _ADMIN_ROOT):  # httpAdminRoot wins over httpRoot
        for match in keys(pattern):
            value = match.group(2).strip()
            if value == "false":
                root = False
            elif value[:1] in "\"'`" and value[-1:] == value[:1] and len(value) > 1:
                root = "/" + value[1:-1].strip("/")
            else:  # an expression: where the editor lives is not known
                root = None
    return ParsedSettings(line is not None, line, root)


def strip_comments(text: str) -> tuple[str, list[tuple[int, int]]]:
    """JavaScript with its comments blanked (line breaks kept, so line numbers hold) and the spans of its
    string literals' contents. A quote opens a string only until the end of its line (template literals
    excepted), so one odd regex literal cannot hide the rest of the file."""
    out: list[str] = []
    strings: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c in "\"'`":
            j = i + 1
            while j < n and text[j] != c and (c == "`" or text[j] != "\n"):
                j += 2 if text[j] == "\\" else 1
            j = min(j, n)
            closed = j < n and text[j] == c
            strings.append((i + 1, j))
            out.append(text[i : j + 1] if closed else text[i:j])
            i = j + 1 if closed else j
        else:
            out.append(c)
            i += 1
    return "".join(out), strings


def _inside(pos: int, strings: list[tuple[int, int]]) -> bool:
    """Is `pos` inside the contents of one of the string literals (sorted spans)?"""
    idx = bisect.bisect_right(strings, (pos, len(strings) and strings[-1][1] + 1)) - 1
    return idx >= 0 and strings[idx][0] <= pos < strings[idx][1]


def _read(host: str, root: Path) -> str | None:
    """The file's text when it is a small regular file inside the project directory; else None."""
    real = _real(host)
    try:
        if real.is_relative_to(root) and real.is_file() and real.stat().st_size <= MAX_BYTES:
            return real.read_text(errors="replace")
    except OSError:
        pass
    return None


def _args(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError:
            return value.split()
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _option(args: list[str], short: str, long: str) -> str | None:
    """The value of the last `-x V`, `--long V` or `--long=V` in `args`."""
    found = None
    for idx, arg in enumerate(args):
        if arg in (short, long) and idx + 1 < len(args):
            found = args[idx + 1]
        elif arg.startswith(long + "="):
            found = arg.split("=", 1)[1]
    return found


def _host_file(path: str, mounts: list[Mount]) -> str | None:
    """The host file a container path comes from: the bind mount at it or at its closest parent."""
    best: Mount | None = None
    for m in mounts:
        target = m.target.rstrip("/") or "/"
        if (path == target or path.startswith(target.rstrip("/") + "/")) and (best is None or len(target) > len(best.target.rstrip("/"))):
            best = m
    if best is None or not best.is_bind or not best.source:
        return None
    rest = posixpath.relpath(path, best.target.rstrip("/") or "/")
    return best.source if rest == "." else str(Path(best.source) / rest)
