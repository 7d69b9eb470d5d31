"""The admin password: read it once, keep only its bcrypt hash.

Why: `stack.yaml` and `settings.js` are files users copy, back up and paste
into forums. Only a bcrypt hash (what Node-RED's adminAuth compares against)
may ever be written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bcrypt

from stackgen.errors import StackgenError

MIN_LENGTH = 8
ROUNDS = 10


def hash_password(password: str) -> str:
    """bcrypt hash in the `$2b$` form Node-RED accepts."""
    check_password(password, "password")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=ROUNDS)).decode()


def check_password(password: str, source: str) -> None:
    if len(password) < MIN_LENGTH:
        raise StackgenError(f"{source}: the admin password must have at least {MIN_LENGTH} characters")
    if len(password.encode()) > 72:
        raise StackgenError(f"{source}: the admin password must be at most 72 bytes (bcrypt's limit)")


def read_password_file(name: str) -> str:
    """The password from a file, or stdin for `-`; one trailing newline is not part of it."""
    source = "--admin-password-file"
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except OSError as exc:
        raise StackgenError(f"{source} {name}: cannot read ({exc.strerror})") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise StackgenError(f"{source} {name}: empty")
    check_password(password, f"{source} {name}")
    return password


def verify(password: str, hashed: str) -> bool:
    return bcrypt.checkpw(password.encode(), hashed.encode())
