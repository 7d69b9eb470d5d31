"""Reading files a user hands us (stack.yaml, compose files, .env and env files), bounded.

Why one function: every reader of user input needs the same guards, and each one that lacked them
was a way to hang or crash stackgen (`/dev/zero` as an env_file read until MemoryError, a symlink
loop, invalid UTF-8 or a NUL byte as a traceback). Here: regular files only (symlinks followed, a loop
named), a size cap read as a cap (never the whole of an endless file), and text decoding errors
reported with the line they are on.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# Far above any real compose file or env file (the largest in our corpus is a few KiB).
MAX_INPUT_BYTES = 8 * 1024 * 1024


class InputFileError(Exception):
    """A user file that cannot be read as text; `line` when the problem is at one."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def read_bytes(path: Path | str, limit: int = MAX_INPUT_BYTES) -> bytes:
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputFileError("symbolic link loop") from None
        raise InputFileError(f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError("not a regular file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise InputFileError(f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > limit:
        size = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"
        raise InputFileError(f"larger than {size}: not a file a person wrote for this")
    return raw


def decode(raw: bytes, *, lenient: bool = False) -> str:
    """UTF-8 (a BOM is dropped). `lenient` (env files, which Compose reads as bytes): undecodable bytes
    become U+FFFD instead of an error. A NUL is never text."""
    try:
        text = raw.decode("utf-8-sig", errors="replace" if lenient else "strict")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", line) from None
    if "\0" in text:
        raise InputFileError("a NUL character: not a text file", text[: text.index("\0")].count("\n") + 1)
    return text


def read_text(path: Path | str, limit: int = MAX_INPUT_BYTES, *, lenient: bool = False) -> str:
    return decode(read_bytes(path, limit), lenient=lenient)
