"""How Compose names and resolves paths: the default file names, a file as findings name it, and
bind-mount sources made absolute (`~` with the HOME of the environment being loaded)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


_OVERRIDES = (
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)


def _real(path: Path | str) -> Path:
    """The path with symlinks resolved, never raising: a symlink loop stays as it is and is named
    when the file is read (Path.resolve raises RuntimeError on loops)."""
    return Path(os.path.realpath(path))


def find_compose_files(directory: Path | None = None) -> list[Path]:
    """The files `docker compose` would read in `directory`: the first default, plus its override."""
    directory = directory or Path.cwd()
    for name in DEFAULT_FILES:
        path = directory / name
        if path.is_file():
            found = [path]
            for override in _OVERRIDES:
                if (directory / override).is_file():
                    found.append(directory / override)
                    break
            return found
    return []


def _display(path: Path) -> str:
    """How a file is named in findings: relative to the working directory when below it."""
    try:
        absolute = _real(path)
        rel = absolute.relative_to(_real(Path.cwd()))
        return str(rel)
    except ValueError:
        return str(_real(path)) if not path.is_absolute() else str(path)


def _windows_path(text: str) -> bool:
    """`C:\\x` or `C:/x`: a Windows drive path (Compose also reads `v:/x` this way)."""
    return len(text) > 2 and text[0].isascii() and text[0].isalpha() and text[1] == ":" and text[2] in "\\/"


def _is_path(source: str) -> bool:
    return source.startswith((".", "/", "~", "\\")) or _windows_path(source)


# `~` in bind mounts expands with HOME from the environment being loaded (which tests and
# callers pass explicitly), not necessarily the process's own; set by `load_model`.
_HOME: list[str | None] = [None]


def _abs_path(source: str, base: Path) -> str:
    if source.startswith("~"):
        home = _HOME[0]
        if home and (source == "~" or source.startswith("~/")):
            return os.path.normpath(home + source[1:])
        return os.path.expanduser(source)
    if _windows_path(source) or source.startswith("\\"):
        return source
    if source.startswith("/"):
        return os.path.normpath(source) if source != "/" else "/"
    return os.path.normpath(str(base / source))

