#!/usr/bin/env python3
"""Build the minimal multi-arch test base images offline, under QEMU emulation.

    python3 -m tests.images.multiarch.build [--force] [PLATFORM ...]   # default: linux/arm64 linux/arm/v7

Per platform: ``rootfs.sh`` makes a Debian rootfs tarball of ``packages.txt`` (Node.js only) for
the Debian architecture (arm64, armhf) with mmdebstrap, whose maintainer scripts run under QEMU;
then ``DOCKER_BUILDKIT=1 docker build --platform P`` of ``Dockerfile`` (``FROM scratch`` +
``ADD rootfs.tar /``) records the platform in ``stackgen-local/node-base:<os>-<arch>[-<variant>]``.

Cached like ``tests/images/build.py``: the image carries ``org.stackgen.recipe=<sha256>`` over
the recipe files, the platform, the suite and the host's Debian mirrors, and is reused while the
label matches; the rootfs tarball is kept under ``$STACKGEN_IMAGE_CACHE/multiarch/`` so that an
image removed from the engine is rebuilt in seconds, without emulation.

Importable: ``ensure_multiarch(platforms=None, force=False) -> {platform: BaseImage}``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.images.build import (
    CACHE_DIR,
    RECIPE_LABEL,
    REGISTRY,
    SUITE,
    BuildError,
    _docker_cli,
    _host_debian_mirrors,
)

HERE = Path(__file__).resolve().parent

BUILDER_VERSION = "1"
REPOSITORY = f"{REGISTRY}/node-base"
DEFAULT_PLATFORMS = ("linux/arm64", "linux/arm/v7")
DEBIAN_ARCH = {"linux/arm64": "arm64", "linux/arm/v7": "armhf", "linux/amd64": "amd64"}
RECIPE_FILES = ("packages.txt", "rootfs.sh", "Dockerfile")
WORK = CACHE_DIR / "multiarch"


@dataclass
class BaseImage:
    """One platform's base: its tag, id, whether it was rebuilt, and what that cost."""

    platform: str
    tag: str
    id: str
    cached: bool
    rootfs_seconds: float = 0.0  # mmdebstrap under emulation (0 when the tarball was cached)
    build_seconds: float = 0.0  # docker build (ADD + one emulated RUN)


def mirrors() -> list[str]:
    """The host's Debian mirror lines for the release suite only (no -updates, no -security).

    Why: the rootfs only has to run Node.js under emulation, and it must be reproducible from its
    cache key; the security suite's indexes for foreign architectures have been seen out of sync on
    the build machines' mirror ("File has unexpected size ... Mirror sync in progress?"), which
    would fail CI for updates this test does not need.
    """
    return [line for line in _host_debian_mirrors() if line.split()[2] == SUITE]


def tag_for(platform: str) -> str:
    return f"{REPOSITORY}:{platform.replace('/', '-')}"


def recipe_hash(platform: str) -> str:
    h = hashlib.sha256()
    h.update(f"stackgen-multiarch/{BUILDER_VERSION}\0{platform}\0{DEBIAN_ARCH[platform]}\0suite={SUITE}\0".encode())
    for line in mirrors():
        h.update(f"mirror={line}\0".encode())
    for name in RECIPE_FILES:
        h.update(name.encode() + b"\0" + hashlib.sha256((HERE / name).read_bytes()).digest())
    return h.hexdigest()


def _log(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def _lock():
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _inspect(tag: str) -> dict | None:
    proc = subprocess.run([_docker_cli(), "image", "inspect", tag], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]


def _rootfs(platform: str, label: str) -> tuple[Path, float]:
    """The rootfs tarball for `platform`: cached by recipe hash, else made by mmdebstrap under emulation."""
    arch = DEBIAN_ARCH[platform]
    tarball = WORK / f"rootfs-{arch}-{label[:16]}.tar"
    if tarball.is_file():
        return tarball, 0.0
    for old in WORK.glob(f"rootfs-{arch}-*.tar"):
        old.unlink()
    partial = tarball.with_suffix(".partial.tar")
    log_path = WORK / f"rootfs-{arch}.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.run(["bash", str(HERE / "rootfs.sh"), arch, str(partial), SUITE, *mirrors()],
                              stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(f"{platform}: mmdebstrap --arch={arch} failed (exit {proc.returncode}); is emulation set up "
                         f"(scripts/ensure-emulation.sh)? log {log_path}:\n" + "\n".join(tail))
    partial.rename(tarball)
    return tarball, time.monotonic() - started


def _build(platform: str, label: str, tarball: Path) -> float:
    context = WORK / f"context-{platform.replace('/', '-')}"
    if context.exists():
        for child in context.iterdir():
            child.unlink()
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_bytes((HERE / "Dockerfile").read_bytes())
    os.link(tarball, context / "rootfs.tar")  # same file system: no copy
    started = time.monotonic()
    proc = subprocess.run(
        [_docker_cli(), "build", "--progress=plain", "--network=none", "--platform", platform, "--label", f"{RECIPE_LABEL}={label}",
         "-t", tag_for(platform), str(context)],
        env=dict(os.environ, DOCKER_BUILDKIT="1"), capture_output=True, text=True,
    )
    (context / "rootfs.tar").unlink()
    if proc.returncode != 0:
        raise BuildError(f"{platform}: docker build failed (exit {proc.returncode}):\n" + "\n".join((proc.stdout + proc.stderr).splitlines()[-30:]))
    return time.monotonic() - started


def ensure_multiarch(platforms=None, force: bool = False) -> dict[str, BaseImage]:
    """Build (or reuse) the base image of each platform; returns {platform: BaseImage}."""
    wanted = list(platforms or DEFAULT_PLATFORMS)
    unknown = [p for p in wanted if p not in DEBIAN_ARCH]
    if unknown:
        raise BuildError(f"unknown platform(s) {unknown}; known: {sorted(DEBIAN_ARCH)}")
    result: dict[str, BaseImage] = {}
    with _lock():
        for platform in wanted:
            tag, label = tag_for(platform), recipe_hash(platform)
            current = _inspect(tag)
            if current and not force and (current["Config"].get("Labels") or {}).get(RECIPE_LABEL) == label:
                _log(f"{platform}: cached {tag} ({current['Id'][7:19]})")
                result[platform] = BaseImage(platform, tag, current["Id"], True)
                continue
            _log(f"{platform}: building {tag} ...")
            tarball, rootfs_seconds = _rootfs(platform, label)
            build_seconds = _build(platform, label, tarball)
            built = _inspect(tag)
            assert built is not None
            recorded = "/".join(p for p in (built["Os"], built["Architecture"], built.get("Variant", "")) if p)
            if recorded != platform:
                raise BuildError(f"{platform}: the engine recorded {tag} as {recorded}")
            if current and current["Id"] != built["Id"]:
                subprocess.run([_docker_cli(), "image", "rm", current["Id"]], capture_output=True)
            _log(f"{platform}: built {tag} ({built['Id'][7:19]}): rootfs {rootfs_seconds:.1f}s"
                 f"{' (cached tarball)' if not rootfs_seconds else ''}, docker build {build_seconds:.1f}s")
            result[platform] = BaseImage(platform, tag, built["Id"], False, rootfs_seconds, build_seconds)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the recipe label matches")
    parser.add_argument("platforms", nargs="*", metavar="PLATFORM", help=f"default: {' '.join(DEFAULT_PLATFORMS)}")
    args = parser.parse_args(argv)
    try:
        images = ensure_multiarch(args.platforms or None, force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({p: asdict(i) for p, i in images.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
