"""Writing generated files safely: atomically, with the right modes, never over a hand edit.

Why: a half-written compose file or a clobbered hand edit is how home-lab
stacks break. Every write goes to a temporary file in the same directory and
is renamed into place. A lock file records the hash of what stackgen wrote,
so `generate` can tell "stackgen's old output" (safe to replace) from "the
user changed this" (stop and show the diff, or back it up with --force).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from stackgen.errors import StackgenError

LOCK_NAME = ".stackgen.lock"
LOCK_VERSION = 1


@dataclass(frozen=True)
class RenderedFile:
    """One output file: path relative to the stack directory, bytes, mode."""

    path: str
    content: bytes
    mode: int = 0o644

    @property
    def digest(self) -> str:
        return sha256(self.content)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Action(Enum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"  # edited by hand since stackgen wrote it
    REMOVE = "remove"  # stackgen wrote it before, no longer rendered, untouched
    ORPHAN = "orphan"  # no longer rendered, but edited by hand: kept


@dataclass
class PlannedFile:
    """What `generate` will do with one path, and why."""

    path: str
    action: Action
    new: RenderedFile | None = None
    current: bytes | None = None

    def diff(self) -> str:
        """Unified diff from what is on disk to what stackgen would write."""
        old = (self.current or b"").decode("utf-8", "replace").splitlines(keepends=True)
        new = (self.new.content if self.new else b"").decode("utf-8", "replace").splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, f"{self.path} (on disk)", f"{self.path} (stackgen)"))


@dataclass
class Plan:
    """The full set of planned actions for one stack directory."""

    root: Path
    files: list[PlannedFile] = field(default_factory=list)

    def of(self, action: Action) -> list[PlannedFile]:
        return [f for f in self.files if f.action is action]

    @property
    def conflicts(self) -> list[PlannedFile]:
        return self.of(Action.CONFLICT)


class HandEditError(StackgenError):
    """Generated files were edited by hand; nothing was written."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        names = ", ".join(f.path for f in plan.conflicts)
        super().__init__(
            f"{names}: edited by hand since stackgen generated it; nothing was written. "
            "Move the change into stack.yaml, or run `stackgen generate --force` (the edited file is kept as a .bak backup)."
        )


def read_lock(root: Path) -> dict[str, str]:
    """Hashes of the files stackgen last wrote, by relative path."""
    path = root / LOCK_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError
        return {str(k): str(v) for k, v in files.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise StackgenError(f"{path}: not a stackgen lock file ({exc.__class__.__name__}); delete it to start over") from None


def lock_bytes(files: list[RenderedFile]) -> bytes:
    data = {"version": LOCK_VERSION, "files": {f.path: f.digest for f in sorted(files, key=lambda f: f.path)}}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def plan(root: Path, rendered: list[RenderedFile]) -> Plan:
    """Compare rendered output with the directory and the lock; write nothing."""
    lock = read_lock(root)
    result = Plan(root)
    names = set()
    for new in sorted(rendered, key=lambda f: f.path):
        names.add(new.path)
        target = root / new.path
        current = target.read_bytes() if target.is_file() else None
        if current is None:
            action = Action.CREATE
        elif sha256(current) == new.digest:
            action = Action.UNCHANGED
        elif lock.get(new.path) == sha256(current):
            action = Action.UPDATE
        else:
            action = Action.CONFLICT
        result.files.append(PlannedFile(new.path, action, new, current))
    for old_path, old_digest in sorted(lock.items()):
        if old_path in names:
            continue
        target = root / old_path
        if not target.is_file():
            continue
        current = target.read_bytes()
        action = Action.REMOVE if sha256(current) == old_digest else Action.ORPHAN
        result.files.append(PlannedFile(old_path, action, None, current))
    return result


def backup_path(target: Path) -> Path:
    """`x.bak`, or `x.bak.N` when earlier backups exist: a backup never overwrites a backup."""
    candidate = target.with_name(target.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = target.with_name(f"{target.name}.bak.{n}")
        n += 1
    return candidate


def apply(the_plan: Plan, rendered: list[RenderedFile], force: bool = False) -> list[Path]:
    """Carry out a plan. Stages every file first, so a failure leaves the old files in place.

    Returns the backups made (only with `force`).
    """
    if the_plan.conflicts and not force:
        raise HandEditError(the_plan)
    root = the_plan.root
    staged: list[tuple[Path, Path]] = []
    backups: list[Path] = []
    try:
        for item in the_plan.files:
            if item.action in (Action.CREATE, Action.UPDATE, Action.CONFLICT):
                assert item.new is not None
                staged.append((stage(root / item.path, item.new.content, item.new.mode), root / item.path))
            elif item.action is Action.UNCHANGED and item.new is not None:
                os.chmod(root / item.path, item.new.mode)
        staged.append((stage(root / LOCK_NAME, lock_bytes(rendered), 0o644), root / LOCK_NAME))
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise StackgenError(f"{exc.filename or root}: cannot write ({exc.strerror}); nothing was changed") from None
    for item in the_plan.conflicts:
        target = root / item.path
        backup = backup_path(target)
        os.replace(target, backup)
        backups.append(backup)
    for tmp, target in staged:
        os.replace(tmp, target)
    for item in the_plan.of(Action.REMOVE):
        (root / item.path).unlink(missing_ok=True)
    return backups


def stage(target: Path, content: bytes, mode: int) -> Path:
    """Write `content` to a temporary file beside `target` with `mode`, fsynced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def write_atomic(target: Path, content: bytes, mode: int = 0o644) -> None:
    """Replace `target` in one rename: readers see the old or the new file, never half of one."""
    os.replace(stage(target, content, mode), target)


def ensure_secret(target: Path, make: callable[[], bytes], owner_uid: int | None = None) -> tuple[bool, str | None]:
    """Create a secret file (mode 0600) if it is missing; tighten its mode if it is looser.

    Compose bind-mounts file secrets as they are on the host (it cannot set their
    owner or mode), so the container's user must own the file. When stackgen runs as
    root it hands the file to `owner_uid`; otherwise it returns a warning to print.
    Returns (created, warning).
    """
    created = False
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o700)
        write_atomic(target, make(), 0o600)
        created = True
    stat = target.stat()
    if stat.st_mode & 0o077:
        os.chmod(target, 0o600)
    warning = None
    if owner_uid is not None and stat.st_uid != owner_uid:
        if os.geteuid() == 0:
            os.chown(target, owner_uid, -1)
        else:
            warning = (
                f"{target}: owned by uid {stat.st_uid}, but the container reads it as uid {owner_uid}; "
                f"run `sudo chown {owner_uid} {target}`"
            )
    return created, warning
