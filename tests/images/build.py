#!/usr/bin/env python3
"""Build the local test images offline (no registry is reachable: nothing is ever pulled).

    python3 tests/images/build.py [--force] [NAME ...]

Images (all tagged ``stackgen-local/<name>:latest``):

* ``base``: a Debian bookworm rootfs made by ``mmdebstrap --variant=minbase`` from the host's
  Debian mirrors (``base/packages.txt``, ``base/rootfs.sh``), piped into ``docker import``.
* ``node-red``, ``caddy``, ``nginx``, ``certbot``, ``pebble``: thin images ``FROM`` the base
  (``<name>/Dockerfile``), built with the engine's classic builder and ``pull=False``.
  Node-RED comes from ``npm ci --omit=dev`` of ``node-red/package-lock.json`` on the host, in a
  build context under the cache dir (``$STACKGEN_IMAGE_CACHE``, default /var/cache/stackgen-images).

Every image carries the label ``org.stackgen.recipe=<sha256>`` over its recipe files and its
base's, so a change of the base recipe rebuilds everything. An image whose label (and base id)
still matches is reused ("cached"). Needs a Docker engine, mmdebstrap and npm
(``scripts/ensure-engine.sh`` provides the first two).

Importable: ``ensure_images(names=None, force=False) -> {name: image id}`` and ``IMAGES``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGISTRY = "stackgen-local"
RECIPE_LABEL = "org.stackgen.recipe"
BASE_ID_LABEL = "org.stackgen.base-id"
# Bump when build.py itself changes what goes into an image: every image is then rebuilt.
BUILDER_VERSION = "1"
SUITE = "bookworm"
CACHE_DIR = Path(os.environ.get("STACKGEN_IMAGE_CACHE", "/var/cache/stackgen-images"))

BASE = "base"
BASE_IMAGE = f"{REGISTRY}/{BASE}:latest"
# The service images (all built FROM the base).
IMAGES: dict[str, str] = {
    name: f"{REGISTRY}/{name}:latest" for name in ("node-red", "caddy", "nginx", "certbot", "pebble")
}
ALL_IMAGES: dict[str, str] = {BASE: BASE_IMAGE, **IMAGES}

_SKIP_PARTS = {"__pycache__", "node_modules"}


class BuildError(RuntimeError):
    pass


def pinned(name: str) -> str:
    """The image's content tag (`stackgen-local/node-red:r-<recipe hash>`): what stacks under test use,
    so their compose files name an exact build rather than a floating `latest`."""
    return f"{REGISTRY}/{name}:r-{recipe_hash(name)[:12]}"


def _log(msg: str) -> None:
    print(msg, flush=True)


def _docker_cli() -> str:
    # Debian's 20.10 CLI does BuildKit/classic builds without buildx; a newer CLI may want buildx.
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if not found:
        raise BuildError("no docker CLI found (run scripts/ensure-engine.sh)")
    return found


# --------------------------------------------------------------------------- apt sources


def _host_debian_mirrors(suite: str = SUITE) -> list[str]:
    """One-line apt entries for ``suite`` (+ -updates, -security) from the host's apt config.

    Only what apt on this machine already uses (sources.list, *.list, *.sources), only Debian
    suites of that release, component main. Empty list: let mmdebstrap use its defaults.
    """
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    entries: list[tuple[str, str]] = []
    apt = Path("/etc/apt")
    files = [apt / "sources.list"] + sorted((apt / "sources.list.d").glob("*"))
    for path in files:
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name.endswith(".list"):
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 4 and line[0] == "deb" and line[2] in wanted and "main" in line[3:]:
                    entries.append((line[1], line[2]))
        elif path.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "").split():
                    continue
                if "main" not in fields.get("components", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    for s in fields.get("suites", "").split():
                        if s in wanted:
                            entries.append((uri, s))
    seen: list[str] = []
    for uri, s in entries:
        line = f"deb {uri} {s} main"
        if line not in seen:
            seen.append(line)
    return seen


# --------------------------------------------------------------------------- recipe hashes


def _recipe_files(name: str) -> list[Path]:
    root = HERE / name
    if not root.is_dir():
        raise BuildError(f"no recipe directory {root}")
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not (_SKIP_PARTS & set(p.relative_to(root).parts))
    )


def recipe_hash(name: str) -> str:
    h = hashlib.sha256()
    h.update(f"stackgen-images/{BUILDER_VERSION}\0{name}\0".encode())
    if name == BASE:
        h.update(f"suite={SUITE}\0".encode())
        for line in _host_debian_mirrors():
            h.update(f"mirror={line}\0".encode())
    else:
        h.update(f"base={recipe_hash(BASE)}\0".encode())
    for path in _recipe_files(name):
        h.update(str(path.relative_to(HERE)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


# --------------------------------------------------------------------------- builders


def _client():
    import docker  # the SDK; imported late so --help works without it

    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine
        raise BuildError(f"no Docker engine answers ({exc}); run scripts/ensure-engine.sh") from exc
    return client


def _image(client, tag: str):
    import docker

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def _build_base(client, label: str) -> None:
    if not shutil.which("mmdebstrap"):
        raise BuildError("mmdebstrap is not installed (run scripts/ensure-engine.sh)")
    mirrors = _host_debian_mirrors()
    tmp_tag = f"{REGISTRY}/{BASE}:building-{os.getpid()}"
    log_path = CACHE_DIR / "base-build.log"
    env = dict(os.environ, DOCKER_CLI=_docker_cli())
    with open(log_path, "wb") as log:
        proc = subprocess.run(
            ["bash", str(HERE / BASE / "rootfs.sh"), tmp_tag, label, SUITE, *mirrors],
            stdout=log, stderr=subprocess.STDOUT, env=env, check=False,
        )
    if proc.returncode != 0:
        with contextlib.suppress(Exception):
            client.images.remove(tmp_tag, force=True)
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(f"base: mmdebstrap | docker import failed (exit {proc.returncode}), "
                         f"log {log_path}:\n" + "\n".join(tail))
    image = client.images.get(tmp_tag)
    image.tag(f"{REGISTRY}/{BASE}", "latest")
    client.images.remove(tmp_tag)  # untag only: the image stays as :latest


def _npm_context() -> Path:
    """Build context for node-red: Dockerfile + app/{package*.json,node_modules}."""
    src = HERE / "node-red"
    ctx = CACHE_DIR / "node-red"
    app = ctx / "app"
    app.mkdir(parents=True, exist_ok=True)
    lock_hash = hashlib.sha256(
        (src / "package.json").read_bytes() + b"\0" + (src / "package-lock.json").read_bytes()
    ).hexdigest()
    marker = app / ".stackgen-npm-ci"
    if not (marker.is_file() and marker.read_text().strip() == lock_hash and (app / "node_modules").is_dir()):
        npm = shutil.which("npm")
        if not npm:
            raise BuildError("npm is not installed on the host (needed for the node-red image)")
        for f in ("package.json", "package-lock.json"):
            shutil.copy2(src / f, app / f)
        marker.unlink(missing_ok=True)
        t0 = time.monotonic()
        proc = subprocess.run(
            [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=app, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise BuildError(f"node-red: npm ci failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        marker.write_text(lock_hash + "\n")
        _log(f"  node-red: npm ci --omit=dev in {time.monotonic() - t0:.1f}s ({app})")
    shutil.copy2(src / "Dockerfile", ctx / "Dockerfile")
    return ctx


def _build_thin(client, name: str, label: str, base_id: str) -> None:
    import docker

    context = _npm_context() if name == "node-red" else HERE / name
    tag = ALL_IMAGES[name]
    output: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(context), tag=tag, pull=False, rm=True, forcerm=True, decode=True,
            labels={RECIPE_LABEL: label, BASE_ID_LABEL: base_id},
        ):
            if "stream" in chunk:
                output.append(chunk["stream"])
            if "error" in chunk:
                raise BuildError(f"{name}: build failed: {chunk['error']}\n" + "".join(output[-40:]))
    except docker.errors.APIError as exc:
        raise BuildError(f"{name}: build failed: {exc}\n" + "".join(output[-40:])) from exc


# --------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def _lock():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_images(names=None, force: bool = False) -> dict[str, str]:
    """Build (or reuse) the named images, and the base they need. Returns {name: image id}.

    ``names``: iterable of keys of ALL_IMAGES (default: all). ``force``: rebuild the named
    images even when cached (``force`` with no names rebuilds everything, the base included).
    """
    wanted = list(ALL_IMAGES) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in ALL_IMAGES]
    if unknown:
        raise BuildError(f"unknown image(s) {unknown}; known: {sorted(ALL_IMAGES)}")
    forced = set(wanted) if force else set()
    order = [BASE] + [n for n in wanted if n != BASE]
    client = _client()
    result: dict[str, str] = {}
    replaced: list[str] = []
    t_all = time.monotonic()
    with _lock():
        base_id = ""
        for name in order:
            tag = ALL_IMAGES[name]
            label = recipe_hash(name)
            old = _image(client, tag)
            labels = (old.labels or {}) if old else {}
            fresh = bool(old) and labels.get(RECIPE_LABEL) == label and (
                name == BASE or labels.get(BASE_ID_LABEL) == base_id
            )
            if fresh and name not in forced:
                _log(f"{name}: cached {tag} ({old.short_id})")
            else:
                t0 = time.monotonic()
                _log(f"{name}: building {tag} ...")
                if name == BASE:
                    _build_base(client, label)
                else:
                    _build_thin(client, name, label, base_id)
                new = client.images.get(tag)
                if old and old.id != new.id:
                    replaced.append(old.id)
                _log(f"{name}: built {tag} ({new.short_id}) in {time.monotonic() - t0:.1f}s")
            image = client.images.get(tag)
            repository, _, content_tag = pinned(name).rpartition(":")
            image.tag(repository, content_tag)
            if name == BASE:
                base_id = image.id
            result[name] = image.id
        # Drop superseded images that nothing tags any more (children first).
        for old_id in reversed(replaced):
            with contextlib.suppress(Exception):
                client.images.remove(old_id, noprune=False)
    _log(f"images ready in {time.monotonic() - t_all:.1f}s")
    return {n: result[n] for n in order if n in wanted or n == BASE}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the recipe label matches")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"images to build ({', '.join(ALL_IMAGES)}); default all")
    args = parser.parse_args(argv)
    try:
        ids = ensure_images(args.names or None, force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({ALL_IMAGES[n]: i for n, i in ids.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
