"""What the supervisor knows, kept across its own restarts: one small JSON file, written atomically.

Why a file at all: a supervisor restarted by systemd (or upgraded) must not
forget that a container already crash-looped four times, or send every open
alert again. Why JSON and not SQLite: the whole state is a few kilobytes,
rewritten as one document (write to a temporary file, fsync, rename), so a
crash leaves the old or the new version, never half of one; and `status` or a
user can read it with any tool.

Layout (`DIR/.stackgen-supervisor/`, mode 0700):
    state.json       this state (0600)
    supervisor.jsonl the JSON-lines log (every decision and alert)
    lock             held (flock) by the running supervisor: one per stack directory
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from stackgen.errors import StackgenError
from stackgen.generate.files import write_atomic
from stackgen.stackdir import STATE_DIR  # the state directory's name: one home, StackDir's

STATE_NAME = "state.json"
LOG_NAME = "supervisor.jsonl"
LOCK_NAME = "lock"
STATE_VERSION = 1


def empty_state() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "project": None,
        "supervisor": {},  # pid, started, host
        "services": {},  # key -> HealPolicy record (see supervisor.ServiceRecord)
        "alerts": {},  # key -> open alert
        "renewal": {},  # last_run, last_status, last_message, next_at, failures
        "certificate": {},  # serial, not_after, checked_at, error, probe_failures
        "verify": {},  # last_run, next_at, active (finding keys), error
        "backup": {},  # last_run, last_archive, next_at, error
        "updated": None,
    }


class StateError(StackgenError):
    """The state file is unreadable, or another supervisor holds the stack directory."""


class StateStore:
    """Load, hold and atomically save the supervisor's state for one stack directory."""

    def __init__(self, directory: Path) -> None:
        self.root = directory / STATE_DIR
        self.path = self.root / STATE_NAME
        self.log_path = self.root / LOG_NAME
        self._lock_fd: int | None = None
        self.warning: str | None = None
        self.data = self.load()
        self._saved = self._content()

    def ensure_dir(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def load(self) -> dict[str, Any]:
        base = empty_state()
        if not self.path.exists():
            return base
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            # A corrupt file cannot come from our atomic writes; keep it for a human and start afresh.
            broken = self.path.with_name(STATE_NAME + ".corrupt")
            try:
                os.replace(self.path, broken)
            except OSError:
                pass
            self.warning = f"{self.path}: unreadable ({exc}); kept as {broken.name}, starting from an empty state"
            return base
        if not isinstance(loaded, dict) or loaded.get("version") != STATE_VERSION:
            raise StateError(f"{self.path}: not a stackgen supervisor state (version {STATE_VERSION}); delete it to start over")
        for key, value in base.items():
            loaded.setdefault(key, copy.deepcopy(value))
        return loaded

    def _content(self) -> str:
        return json.dumps({k: v for k, v in self.data.items() if k != "updated"}, sort_keys=True, default=str)

    def save(self, force: bool = False, stamp: float | None = None) -> bool:
        """Write the state if it changed (or `force`), stamped `updated`. Returns whether it wrote."""
        text = self._content()
        if text == self._saved and not force:
            return False
        if stamp is not None:
            self.data["updated"] = stamp
        self.ensure_dir()
        write_atomic(self.path, (json.dumps(self.data, indent=1, sort_keys=True) + "\n").encode(), 0o600)
        self._saved = text
        return True

    def acquire(self) -> None:
        """Hold the directory's lock for this process's lifetime (released on exit, even on a crash)."""
        self.ensure_dir()
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.data.get("supervisor", {}).get("pid")
            raise StateError(f"{self.root.parent}: another stackgen supervisor is running for this stack (pid {holder})") from None
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def locked_by_other(self) -> bool:
        """Is a supervisor running for this directory (someone holds the lock)? For `status`."""
        path = self.root / LOCK_NAME
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def read_state(directory: Path) -> dict[str, Any]:
    """The state as last saved (for `status`), or an empty state."""
    path = directory / STATE_DIR / STATE_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return empty_state()
    return data if isinstance(data, dict) else empty_state()
