"""The build plan for `stackgen build`: the base image, the npm lock, per-platform node_modules and the Dockerfile.

Why this exists: everything that goes into the image is decided and written here, on the host, before
any builder runs: `package.json` from `node_red.extra_nodes`, the lock npm makes once, one `npm ci`
per target platform, the generated Dockerfile (never written over one stackgen did not write) and
the digest over all of it that names the tag. Kept apart from running the builders
(`stackgen.images.run`) and joining platforms (`stackgen.images.push`) so that it is tested without
an engine. Its names stay importable from `stackgen.images.build`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackgen.constants import NODE_RED_UID
from stackgen.errors import StackgenError
from stackgen.generate import files
from stackgen.generate.custom_images import npm_dependency  # one reading of an extra_nodes entry, for generate and build
from stackgen.generate.render import templates
from stackgen.upstream.platforms import Platform

CONTEXT_DIR = "node-red"
BUILD_DIR = ".build"
NPM_CPU = {"amd64": "x64", "arm64": "arm64", "arm": "arm", "386": "ia32"}


def base_image(stack: Any, override: str | None = None) -> str:
    """What the custom image starts FROM: --base, the spec's `node_red.base_image` when it has one, else the
    official image render would use for this platform.

    Never `images.node_red`: that is what the stack runs, i.e. (after a build) this build's output.
    """
    if override or getattr(stack.node_red, "base_image", None):
        return override or stack.node_red.base_image
    from stackgen.generate.render import default_images

    official = stack.model_copy(update={"images": stack.images.model_copy(update={"node_red": None})})
    return default_images(official)["node-red"]  # whatever tag render picks for the platform


def package_json(project: str, extra_nodes: Sequence[str]) -> bytes:
    dependencies = dict(sorted(npm_dependency(n) for n in extra_nodes))
    document = {
        "name": f"{project}-node-red-nodes",
        "version": "1.0.0",
        "private": True,
        "description": "Extra Node-RED nodes baked into the image by `stackgen build` (from stack.yaml node_red.extra_nodes)",
        "dependencies": dependencies,
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def lock_matches(package: bytes, lock_path: Path) -> bool:
    """True when the lock was made for exactly these dependencies (then npm is not asked again)."""
    try:
        lock = json.loads(lock_path.read_text())
        root = lock["packages"][""]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (root.get("dependencies") or {}) == json.loads(package)["dependencies"]


def install_scripts(lock: dict[str, Any]) -> list[str]:
    """Packages (by name) whose install runs scripts: native code that must be built for the target."""
    names = []
    for path, entry in (lock.get("packages") or {}).items():
        if path and entry.get("hasInstallScript") and not entry.get("dev"):
            names.append(entry.get("name") or path.rsplit("node_modules/", 1)[-1])
    return sorted(set(names))


def platform_dir(platform: Platform) -> str:
    """The directory name the Dockerfile expects: ${TARGETOS}-${TARGETARCH}${TARGETVARIANT}."""
    return f"{platform.os}-{platform.architecture}{platform.variant}"


def _npm() -> str:
    found = shutil.which("npm")
    if not found:
        raise StackgenError("npm not found on this machine: it is needed to lock and fetch node_red.extra_nodes (install nodejs/npm)")
    return found


def _run_npm(args: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run([_npm(), *args, "--no-audit", "--no-fund", "--loglevel=error"], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
        raise StackgenError(f"{what} failed (npm exit {proc.returncode}) in {cwd}:\n" + "\n".join(detail))


def ensure_lock(context: Path, project: str, extra_nodes: Sequence[str]) -> dict[str, Any]:
    """Write package.json; make package-lock.json with npm when it is missing or stale. Returns the lock."""
    package = package_json(project, extra_nodes)
    package_path, lock_path = context / "package.json", context / "package-lock.json"
    if not package_path.exists() or package_path.read_bytes() != package:
        files.write_atomic(package_path, package)
    if not lock_matches(package, lock_path):
        _run_npm(["install", "--package-lock-only", "--ignore-scripts"], context, "locking node_red.extra_nodes (npm install --package-lock-only)")
        if not lock_matches(package, lock_path):
            raise StackgenError(f"{lock_path}: npm wrote a lock that does not match package.json")
    return json.loads(lock_path.read_text())


def install_for(context: Path, platform: Platform) -> Path:
    """`npm ci` of the lock for one target platform into .build/<dir>/node_modules (reused while the lock is unchanged)."""
    target = context / BUILD_DIR / platform_dir(platform)
    lock = (context / "package-lock.json").read_bytes()
    cpu = NPM_CPU.get(platform.architecture, platform.architecture)
    stamp = hashlib.sha256(lock + f"\0{platform.os}\0{cpu}".encode()).hexdigest()
    marker = target / ".stackgen-npm-ci"
    if marker.is_file() and marker.read_text().strip() == stamp and (target / "node_modules").is_dir():
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy2(context / "package.json", target / "package.json")
    shutil.copy2(context / "package-lock.json", target / "package-lock.json")
    _run_npm(["ci", "--omit=dev", "--ignore-scripts", f"--os={platform.os}", f"--cpu={cpu}"], target,
             f"{platform}: fetching the extra nodes (npm ci)")
    (target / "node_modules").mkdir(exist_ok=True)
    marker.write_text(stamp + "\n")
    return target


# The build-time check, run by the image's own node (under emulation for foreign platforms).
_CHECK_JS = (
    "const e=process.env,want={amd64:'x64',arm64:'arm64',arm:'arm',386:'ia32'}[e.TARGETARCH]||e.TARGETARCH;"
    "if(want&&process.arch!==want){console.error('stackgen: node reports '+process.arch+' but the target is '"
    "+e.TARGETOS+'/'+e.TARGETARCH+(e.TARGETVARIANT?'/'+e.TARGETVARIANT:''));process.exit(1)}"
    "const fs=require('fs');for(const n of process.argv.slice(1)){const f='/usr/src/node_modules/'+n+'/package.json';"
    "if(!fs.existsSync(f)){console.error('stackgen: extra node '+n+' is missing');process.exit(1)}"
    "const p=JSON.parse(fs.readFileSync(f,'utf8'));"
    "console.log('stackgen: '+n+'@'+p.version+(p['node-red']?'':' (declares no Node-RED nodes)'))}"
    "console.log('stackgen: node '+process.version+' '+process.arch)"
)


def healthcheck_command(stack: Any) -> list[str]:
    """The same check the rendered compose file runs, so the image is healthy-checked even outside the stack."""
    from stackgen.generate.render import Context, node_red_service

    test = node_red_service(Context(stack), "unused")["healthcheck"]["test"]
    return list(test[1:]) if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]


def dockerfile(stack: Any, base: str, nodes: Sequence[str], rebuild: Sequence[str], lock_digest: str) -> bytes:
    names = [npm_dependency(n)[0] for n in nodes]
    check = json.dumps(["node", "-e", _CHECK_JS, *names])
    text = templates().get_template("node-red/Dockerfile.j2").render(
        base=base,
        nodes=names,
        rebuild=list(rebuild),
        check=check,
        uid=NODE_RED_UID,
        healthcheck=json.dumps(healthcheck_command(stack)),
        lock_digest=lock_digest,
    )
    return text.encode()


DOCKERIGNORE = b"# Generated by `stackgen build`: the build context holds only what the Dockerfile copies.\n*\n!package.json\n!package-lock.json\n!.build\n"
GITIGNORE = b"# Generated by `stackgen build`: per-platform npm installs (package.json and package-lock.json belong in git).\n.build/\n"


@dataclass
class Prepared:
    """A ready build context."""

    context: Path
    dockerfile: Path
    base: str
    nodes: list[str]
    rebuild: list[str]
    digest: str  # over everything that goes into the image: names the tag


def prepare(directory: Path, stack: Any, platforms: Sequence[Platform], base: str, context_name: str = CONTEXT_DIR) -> Prepared:
    """Write the build context of the stack's one Node-RED under DIR/`context_name` (DIR/node-red for a version 1
    stack; an instance's is its service's directory, of a version 1 view of it): lock, per-platform node_modules,
    Dockerfile, ignore files. package.json is written even without nodes: it is what `generate` compares
    extra_nodes with to tell an image built before the nodes changed."""
    context = directory / context_name
    context.mkdir(parents=True, exist_ok=True)
    nodes = list(stack.node_red.extra_nodes)
    rebuild: list[str] = []
    lock_bytes = b""
    if not nodes:
        package = package_json(stack.project, nodes)
        if not (context / "package.json").exists() or (context / "package.json").read_bytes() != package:
            files.write_atomic(context / "package.json", package)
    if nodes:
        lock = ensure_lock(context, stack.project, nodes)
        rebuild = install_scripts(lock)
        lock_bytes = (context / "package-lock.json").read_bytes()
        for platform in platforms:
            install_for(context, platform)
    lock_digest = "sha256:" + hashlib.sha256(lock_bytes).hexdigest() if nodes else "none"
    content = dockerfile(stack, base, nodes, rebuild, lock_digest)
    path = context / "Dockerfile"
    _write_generated(path, content, context / BUILD_DIR / "Dockerfile.sha256")
    for name, data in ((".dockerignore", DOCKERIGNORE), (".gitignore", GITIGNORE)):
        if not (context / name).exists() or (context / name).read_bytes() != data:
            files.write_atomic(context / name, data)
    digest = hashlib.sha256(content + b"\0" + lock_bytes + b"\0" + ",".join(map(str, platforms)).encode()).hexdigest()
    return Prepared(context, path, base, nodes, rebuild, digest)


def _write_generated(path: Path, content: bytes, record: Path) -> None:
    """Write a generated file, but never over one stackgen did not write (or that was edited since).

    `record` holds the hash of what stackgen last wrote; a file on disk matching neither that
    nor the new content is someone's own work.
    """
    if path.exists():
        current = path.read_bytes()
        written = record.read_text().strip() if record.exists() else None
        if current != content and files.sha256(current) != written:
            raise StackgenError(f"{path}: not the Dockerfile stackgen generated (edited by hand, or your own); "
                                "stackgen build regenerates it from stack.yaml: move the change there, or move the file away")
        if current == content and written == files.sha256(content):
            return
    files.write_atomic(path, content)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(files.sha256(content) + "\n")
