"""`stackgen backup` and `restore`: the user's data in one archive, owners and modes kept, checksummed.

What goes in (`PROJECT-YYYYmmddTHHMMSSZ.tar.gz`, mode 0600):

    stack/stack.yaml, stack/secrets/...    the spec and the secrets (as on disk: owner, mode)
    volumes/node-red-data/...              Node-RED's /data (flows, credentials, installed nodes)
    volumes/certs/... (--include-keys)     the certificate volume (edge-acme: edge-data), private keys included
    manifest.json (last member)            every entry: path, type, size, sha256, mode, uid, gid, link target

Why through the engine and not the host's /var/lib/docker: volumes may live on
any driver, and the engine's archive API gives each file with its owner and
mode exactly (a throwaway container, created but never started, mounts the
volume read-only). Why the manifest is last: the archive is written in one
streaming pass (constant memory for any size of /data), and `restore` reads
the whole archive and checks every checksum before it touches anything.

Restore refuses to write a volume that a container uses (a running stack, or
a stopped one: run `stackgen down DIR` first), and refuses a non-empty volume
unless `--force` (which replaces its content). Afterwards it renders the stack
directory from the restored stack.yaml (`stackgen generate`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from stackgen import engine as engines
from stackgen.constants import HELPER_LABEL, RESTORED_FROM_LABEL
from stackgen.errors import StackgenError

FORMAT = "stackgen-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BACKUP_DIR = "backups"
HELPER_MOUNT = "/stackgen-backup"
DATA_VOLUMES = {"node-red-data": "node-red"}  # volume -> service whose image reads it
KEY_VOLUMES = {"certs": "certbot", "edge-data": "edge"}
_NAME = re.compile(r"^(?P<project>.+)-(?P<stamp>\d{8}T\d{6}Z)\.tar\.gz$")


class BackupError(StackgenError):
    pass


@dataclass
class BackupResult:
    path: Path
    size: int
    files: int
    volumes: list[str]
    not_included: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    directory: Path
    project: str
    files: list[str]
    volumes: list[str]
    warnings: list[str] = field(default_factory=list)


# --- helpers ---------------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the engine's archive stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class _Hashing(io.RawIOBase):
    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data


def _entry(info: tarfile.TarInfo, digest: str | None = None) -> dict[str, Any]:
    kind = "file" if info.isreg() else "dir" if info.isdir() else "symlink" if info.issym() else "other"
    entry: dict[str, Any] = {"path": info.name, "type": kind, "mode": f"{info.mode & 0o7777:04o}", "uid": info.uid, "gid": info.gid}
    if kind == "file":
        entry.update(size=info.size, sha256=digest)
    elif kind == "symlink":
        entry["target"] = info.linkname
    return entry


def _stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


def volume_name(engine, project: str, volume: str) -> str | None:
    """The engine's name of the compose volume `volume` of `project`, or None if it does not exist."""
    found = engines.project_volumes(engine, project, volume)
    if found:
        return found[0].name
    try:
        return engine.volumes.get(f"{project}_{volume}").name
    except engines.NotFound:
        return None


def _helper(engine, image: str, volume: str, read_only: bool):
    """A container that is created, never started: the engine's archive API reaches the volume through it."""
    try:
        return engine.containers.create(
            image, command=["true"], entrypoint=[], network_disabled=True, labels={HELPER_LABEL: "backup"},
            volumes={volume: {"bind": f"{HELPER_MOUNT}/vol", "mode": "ro" if read_only else "rw"}},
        )
    except engines.ImageNotFound:
        raise BackupError(f"image {image} is not on this machine; it is needed to reach volume {volume}") from None


def _stack_images(stack) -> dict[str, str]:
    """Image per service (several Node-RED instances: each instance's service its own)."""
    from stackgen.generate.render import default_images

    return default_images(stack)


def data_volumes(stack) -> dict[str, str]:
    """Node-RED's data volumes -> the service whose image reads each (several instances: one each)."""
    if stack.instances is None:
        return dict(DATA_VOLUMES)
    return {inst.data_volume: inst.service for inst in stack.instances}


def _secret_files(directory: Path, stack) -> tuple[list[Path], list[str]]:
    """Secret files inside DIR (DIR/secrets/ and the spec's secret files); paths outside DIR are reported, not taken."""
    found: list[Path] = []
    outside: list[str] = []
    secrets_dir = directory / "secrets"
    if secrets_dir.is_dir():
        found.append(secrets_dir)
        found += sorted(p for p in secrets_dir.rglob("*"))
    for value in (*(inst.credential_secret_file for inst in stack.node_reds), stack.tls.dns_credentials_file):
        if not value:
            continue
        path = Path(value) if value.startswith("/") else directory / value
        try:
            path.resolve().relative_to(directory.resolve())
        except ValueError:
            outside.append(str(path))
            continue
        if path.exists() and path not in found:
            found.append(path)
    for value in (stack.tls.cert_file, stack.tls.key_file, stack.tls.ca_bundle):
        if value:
            outside.append(value)
    return found, outside


# --- backup ----------------------------------------------------------------------------


def create(engine, directory: Path, *, output: Path | None = None, output_dir: Path | None = None, include_keys: bool = False,
           clock=time.time) -> BackupResult:
    """Write one archive of the stack's data; atomically (a partial archive never carries the final name)."""
    from stackgen.stackdir import StackDir

    stack_dir = StackDir(directory.resolve())
    directory = stack_dir.path
    stack = stack_dir.stack
    project = stack.project
    now = clock()
    if output is None:
        output_dir = output_dir or directory / BACKUP_DIR
        output_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(output_dir, 0o700)
        output = output_dir / f"{project}-{_stamp(now)}.tar.gz"
    output.parent.mkdir(parents=True, exist_ok=True)
    volumes = data_volumes(stack)
    if include_keys:
        volumes.update(KEY_VOLUMES)
    images = _stack_images(stack)
    entries: list[dict[str, Any]] = []
    taken: list[str] = []
    fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
                files, outside = _secret_files(directory, stack)
                for path in [stack_dir.spec_path, *files]:
                    arcname = "stack/" + path.relative_to(directory).as_posix()
                    info = archive.gettarinfo(str(path), arcname)
                    if info.isreg():
                        with open(path, "rb") as handle:
                            hashing = _Hashing(handle)
                            archive.addfile(info, hashing)
                        entries.append(_entry(info, hashing.digest.hexdigest()))
                    elif info.isdir():
                        archive.addfile(info)
                        entries.append(_entry(info))
                for volume, service in volumes.items():
                    name = volume_name(engine, project, volume)
                    if name is None:
                        if volume in data_volumes(stack):
                            raise BackupError(f"volume {project}_{volume} not found: has the stack ever run?")
                        continue
                    entries += _add_volume(engine, archive, images[service], name, volume)
                    taken.append(volume)
                manifest = {
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "project": project,
                    "created": datetime.fromtimestamp(now, UTC).isoformat(),
                    "stackgen": _version(),
                    "include_keys": include_keys,
                    "volumes": taken,
                    "not_included": outside,
                    "entries": entries,
                }
                data = (json.dumps(manifest, indent=1) + "\n").encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(data), 0o600, int(now)
                archive.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, output)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return BackupResult(output, output.stat().st_size, sum(1 for e in entries if e["type"] == "file"), taken, outside)


def _add_volume(engine, archive: tarfile.TarFile, image: str, name: str, volume: str) -> list[dict[str, Any]]:
    helper = _helper(engine, image, name, read_only=True)
    entries = []
    try:
        stream, _ = helper.get_archive(f"{HELPER_MOUNT}/vol")
        with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as source:
            for info in source:
                head, _, rest = info.name.partition("/")
                if head != "vol":
                    continue
                info.name = f"volumes/{volume}" + (f"/{rest}" if rest else "")
                if info.isreg():
                    hashing = _Hashing(source.extractfile(info))
                    archive.addfile(info, hashing)
                    entries.append(_entry(info, hashing.digest.hexdigest()))
                elif info.isdir() or info.issym():
                    archive.addfile(info)
                    entries.append(_entry(info))
                # sockets, fifos, devices: not data; left out
    finally:
        helper.remove(force=True, v=True)  # v: the image may declare VOLUMEs (certbot does)
    return entries


def _version() -> str:
    from stackgen import __version__

    return __version__


def prune(output_dir: Path, project: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives of `project` in `output_dir` (only names stackgen gave them)."""
    archives = sorted(
        (p for p in output_dir.glob(f"{project}-*.tar.gz") if (m := _NAME.match(p.name)) and m.group("project") == project),
        key=lambda p: p.name,
    )
    removed = archives[:-keep] if keep > 0 else archives
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


# --- verify and restore --------------------------------------------------------------------


def _safe(name: str) -> bool:
    if name.startswith("/") or "\\" in name:
        return False
    parts = name.split("/")
    return ".." not in parts and all(parts)


def verify_archive(path: Path) -> dict[str, Any]:
    """Read the whole archive; every member must be listed in the manifest with the same checksum, owner and mode."""
    seen: dict[str, dict[str, Any]] = {}
    manifest = None
    try:
        # gzip.open, not tarfile's own "r|gz": GzipFile raises at a missing end-of-stream marker, where tarfile
        # ends its iteration quietly when a truncated stream stops at a member boundary.
        with gzip.open(path, "rb") as compressed, tarfile.open(fileobj=compressed, mode="r|") as archive:
            for info in archive:
                if info.name == MANIFEST:
                    manifest = json.loads(archive.extractfile(info).read())
                    continue
                if not _safe(info.name) or not (info.name.startswith("stack/") or info.name.startswith("volumes/")):
                    raise BackupError(f"{path}: unexpected member {info.name!r}")
                if not (info.isreg() or info.isdir() or info.issym()):
                    raise BackupError(f"{path}: {info.name}: unsupported member type")
                if info.issym():
                    _check_link(info)
                digest = None
                if info.isreg():
                    digest = hashlib.sha256()
                    handle = archive.extractfile(info)
                    for chunk in iter(lambda handle=handle: handle.read(1 << 20), b""):
                        digest.update(chunk)
                    digest = digest.hexdigest()
                seen[info.name] = _entry(info, digest)
            while compressed.read(1 << 20):  # to the gzip stream's end: a truncated one raises EOFError here
                pass
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise BackupError(f"{path}: not a readable backup archive ({exc.__class__.__name__}: {exc})") from None
    if manifest is None or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: no stackgen manifest: not a stackgen backup")
    if manifest.get("version") != FORMAT_VERSION:
        raise BackupError(f"{path}: backup format version {manifest.get('version')} is not supported")
    listed = {e["path"]: e for e in manifest["entries"]}
    missing = sorted(set(listed) - set(seen))
    extra = sorted(set(seen) - set(listed))
    changed = sorted(name for name in set(listed) & set(seen) if listed[name] != seen[name])
    if missing or extra or changed:
        detail = "; ".join(
            part for part in (
                f"missing: {', '.join(missing[:5])}" if missing else "",
                f"not in the manifest: {', '.join(extra[:5])}" if extra else "",
                f"checksum, owner or mode differs: {', '.join(changed[:5])}" if changed else "",
            ) if part
        )
        raise BackupError(f"{path}: the archive does not match its manifest ({detail}); nothing was restored")
    return manifest


def _check_link(info: tarfile.TarInfo) -> None:
    """A symlink must stay inside its own volume (certbot's live/ -> ../../archive/ links do)."""
    parts = info.name.split("/")
    root = "/".join(parts[:2]) if parts[0] == "volumes" else "stack"
    if info.linkname.startswith("/"):
        raise BackupError(f"{info.name}: absolute symlink target {info.linkname!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(info.name), info.linkname))
    if resolved != root and not resolved.startswith(root + "/"):
        raise BackupError(f"{info.name}: symlink leaves its volume ({info.linkname!r})")


def _users_of(engine, volume: str) -> list:
    return engine.containers.list(all=True, ignore_removed=True, filters={"volume": volume})


def _is_empty(engine, image: str, volume: str) -> bool:
    helper = _helper(engine, image, volume, read_only=True)
    try:
        stream, _ = helper.get_archive(f"{HELPER_MOUNT}/vol")
        with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as source:
            return sum(1 for _ in source) <= 1
    finally:
        helper.remove(force=True, v=True)  # v: the image may declare VOLUMEs (certbot does)


def restore(engine, archive_path: Path, directory: Path, *, force: bool = False) -> RestoreResult:
    """Verify, then restore stack.yaml, the secrets and the volumes of a backup into DIR."""
    from stackgen import stackdir
    from stackgen.generate import files as files_mod
    from stackgen.generate import workflow

    manifest = verify_archive(archive_path)
    project = manifest["project"]
    directory = directory.resolve()
    warnings: list[str] = []
    # The spec in the archive decides images and names.
    spec_text = None
    with tarfile.open(archive_path, mode="r|gz") as archive:
        for info in archive:
            if info.name == f"stack/{stackdir.SPEC_NAME}":
                spec_text = archive.extractfile(info).read()
                break
    if spec_text is None:
        raise BackupError(f"{archive_path}: no stack.yaml in the backup")
    stack = stackdir.parse_stack(spec_text.decode(), archive_path / stackdir.SPEC_NAME)
    if stack.project != project:
        raise BackupError(f"{archive_path}: manifest project {project} differs from stack.yaml's {stack.project}")
    current = stackdir.StackDir(directory).spec_path
    if current.exists() and current.read_bytes() != spec_text and not force:
        raise BackupError(f"{current}: exists and differs from the backup's; use --force to replace it (a .bak is kept)")
    images = _stack_images(stack)
    service_of = {**data_volumes(stack), **KEY_VOLUMES}
    # Every check before the first write.
    plan: dict[str, tuple[str | None, str]] = {}
    for volume in manifest["volumes"]:
        name = volume_name(engine, project, volume)
        image = images[service_of[volume]]
        if name is not None:
            users = _users_of(engine, name)
            running = [c.name for c in users if c.status == "running"]
            if running:
                raise BackupError(f"volume {name} is in use by running container(s) {', '.join(running)}: "
                                  f"stop the stack first (stackgen down {directory})")
            if users:
                raise BackupError(f"volume {name} is still attached to container(s) {', '.join(c.name for c in users)}: "
                                  f"remove them first (stackgen down {directory})")
            if not _is_empty(engine, image, name) and not force:
                raise BackupError(f"volume {name} is not empty; use --force to replace its content with the backup's")
        plan[volume] = (name, image)
    # Stack files.
    written: list[str] = []
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, mode="r|gz") as archive:
        spools: dict[str, tuple[Any, tarfile.TarFile]] = {}
        try:
            for info in archive:
                if info.name.startswith("stack/"):
                    written += _restore_file(archive, info, directory, files_mod)
                elif info.name.startswith("volumes/"):
                    _, volume, *rest = info.name.split("/", 2)
                    if volume not in spools:
                        # Both stay open across the loop (one spool per volume); closed in the `finally` below.
                        spool = tempfile.TemporaryFile()  # noqa: SIM115
                        spools[volume] = (spool, tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT))  # noqa: SIM115
                    info.name = "vol" + (f"/{rest[0]}" if rest else "")
                    spools[volume][1].addfile(info, archive.extractfile(info) if info.isreg() else None)
            restored = []
            for volume, (spool, writer) in spools.items():
                writer.close()
                spool.seek(0)
                name, image = plan[volume]
                if name is not None and force:
                    engine.volumes.get(name).remove()
                name = f"{project}_{volume}"
                engine.volumes.create(name, labels=engines.volume_labels(project, volume, **{RESTORED_FROM_LABEL: archive_path.name}))
                helper = _helper(engine, image, name, read_only=False)
                try:
                    if not helper.put_archive(HELPER_MOUNT, spool):
                        raise BackupError(f"the engine refused to write volume {name}")
                finally:
                    helper.remove(force=True, v=True)  # v: the image may declare VOLUMEs (certbot does)
                restored.append(volume)
        finally:
            for spool, writer in spools.values():
                writer.close()
                spool.close()
    try:
        result = workflow.generate(directory)
        warnings += result.warnings
    except StackgenError as exc:
        warnings.append(f"restored, but `stackgen generate {directory}` failed: {exc}")
    for path in manifest.get("not_included") or []:
        warnings.append(f"{path}: outside the stack directory, not in the backup: put it back by hand")
    return RestoreResult(directory, project, written, restored, warnings)


def _restore_file(archive: tarfile.TarFile, info: tarfile.TarInfo, directory: Path, files_mod) -> list[str]:
    relative = info.name.removeprefix("stack/")
    target = directory / relative
    if info.isdir():
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, info.mode & 0o7777)
        _chown(target, info)
        return []
    if not info.isreg():
        return []
    data = archive.extractfile(info).read()
    if target.exists() and target.read_bytes() != data:
        os.replace(target, files_mod.backup_path(target))
    files_mod.write_atomic(target, data, info.mode & 0o7777)
    _chown(target, info)
    return [relative]


def _chown(path: Path, info: tarfile.TarInfo) -> None:
    if os.geteuid() == 0:
        os.chown(path, info.uid, info.gid)
