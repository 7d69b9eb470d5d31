"""`stackgen build`: the custom Node-RED image (base + extra nodes), for every target platform.

Why an image and not run-time installs: a hardened Node-RED (read-only root, no write access to
its own code) cannot install nodes from the editor, and on a Pi a run-time `npm install` is slow
and fragile. The extra nodes are baked in, pinned by a lock file.

How the nodes get in (the lock file is the user's to commit):
* `DIR/node-red/package.json` lists `node_red.extra_nodes`; `package-lock.json` beside it is made
  once by `npm install --package-lock-only` on the host and reused while the list is unchanged.
* Per platform, the host's npm runs `npm ci --omit=dev --ignore-scripts --os=linux --cpu=<arch>`
  into `DIR/node-red/.build/<os>-<arch><variant>/`: resolution and download happen once, natively,
  and platform-specific optional dependencies are chosen for the target.
* The Dockerfile copies them to `/usr/src/node_modules` (Node-RED scans node_modules directories
  above its install) as root-owned files; only packages whose lock entry says `hasInstallScript`
  are rebuilt inside the image, under emulation, with the base image's npm.

How it is built:
* buildx present: one `docker buildx build --platform a,b` (pushed, or loaded for one platform).
* otherwise: one BuildKit build per platform (`DOCKER_BUILDKIT=1`, Docker 20.10's CLI; foreign
  platforms run under QEMU), each pushed as `TAG-<platform>`, then joined into a manifest list
  written through the registry API (or `docker manifest` when the registry wants credentials).
Progress is reported per platform; a failure names the platform and the step.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.constants import BUILD_LABEL, NODE_RED_UID, PLATFORMS
from stackgen.errors import StackgenError
from stackgen.generate import files
from stackgen.generate.render import node_red_tag, templates
from stackgen.images.registry import (
    DOCKER_LIST,
    Entry,
    ImageRef,
    Platform,
    Registry,
    RegistryError,
    check_registry_host,
    manifest_list,
)

CONTEXT_DIR = "node-red"
BUILD_DIR = ".build"
NPM_CPU = {"amd64": "x64", "arm64": "arm64", "arm": "arm", "386": "ia32"}
SUPPORTED = PLATFORMS


class BuildError(StackgenError):
    """A build step failed; names the platform and the step."""

    def __init__(self, message: str, platform: str | None = None, step: str | None = None, log: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.platform = platform
        self.step = step
        self.log = log
        self.reason = reason


# --------------------------------------------------------------------------- events


@dataclass
class Event:
    """Progress of one platform's build: kind is step, log, done, push or note."""

    platform: str
    kind: str
    text: str


Reporter = Callable[[Event], None]


def _quiet(_: Event) -> None:
    pass


# --------------------------------------------------------------------------- inputs


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


def npm_dependency(spec: str) -> tuple[str, str]:
    """`name` or `name@range` (scoped names too) -> (name, range); no range means npm's `latest`."""
    at = spec.rfind("@")
    if at > 0:
        return spec[:at], spec[at + 1 :]
    return spec, "latest"


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


def prepare(directory: Path, stack: Any, platforms: Sequence[Platform], base: str) -> Prepared:
    """Write the build context under DIR/node-red: lock, per-platform node_modules, Dockerfile, ignore files."""
    context = directory / CONTEXT_DIR
    context.mkdir(parents=True, exist_ok=True)
    nodes = list(stack.node_red.extra_nodes)
    rebuild: list[str] = []
    lock_bytes = b""
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


# --------------------------------------------------------------------------- the docker CLI


@dataclass(frozen=True)
class Builder:
    """How this machine builds: `buildx` (one multi-platform build) or `buildkit` (one BuildKit build per platform)."""

    kind: str
    cli: str
    version: str = ""


def _cli_candidates() -> list[str]:
    found = [os.environ.get("STACKGEN_DOCKER_CLI") or "", shutil.which("docker") or "", "/usr/bin/docker", "/usr/local/bin/docker"]
    result, seen = [], set()
    for path in found:
        if path and os.access(path, os.X_OK):
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                result.append(path)
    return result


def _client_version(cli: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str:
    proc = run([cli, "--version"], capture_output=True, text=True)
    match = re.search(r"version (\d+\.\d+\.\d+)", proc.stdout or "")
    return match.group(1) if match else ""


def detect_builder(candidates: Sequence[str] | None = None, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Builder:
    """buildx when any docker CLI has it; else a CLI older than 23 (whose `docker build` does BuildKit without buildx)."""
    clis = list(candidates) if candidates is not None else _cli_candidates()
    if not clis:
        raise StackgenError("no docker CLI found: install docker (Debian: apt-get install docker.io)")
    for cli in clis:
        if run([cli, "buildx", "version"], capture_output=True, text=True).returncode == 0:
            return Builder("buildx", cli, _client_version(cli, run))
    for cli in clis:
        version = _client_version(cli, run)
        if version and int(version.split(".")[0]) < 23:
            return Builder("buildkit", cli, version)
    raise StackgenError(
        "no docker CLI here can build for another platform: install the buildx plugin "
        "(docker-buildx-plugin, or Debian's docker-buildx), or use a Docker 20.10 CLI (BuildKit without buildx)"
    )


Runner = Callable[[list[str], dict[str, str], Callable[[str], None]], int]


def stream(command: list[str], env: dict[str, str], on_line: Callable[[str], None]) -> int:
    """Run `command`, handing each output line (stdout and stderr merged) to `on_line`; returns the exit code."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        on_line(line.rstrip("\n"))
    return proc.wait()


_STEP = re.compile(r"^#(\d+) (\[[^\]]+\] .*)$")
_STEP_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")


@dataclass
class Progress:
    """Follows BuildKit's plain progress output: which step runs, which failed, the last lines."""

    steps: dict[str, str] = field(default_factory=dict)
    current: str | None = None
    failed: str | None = None
    error: str | None = None
    tail: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str | None:
        """Record one line; returns the step title when the line starts a new step."""
        self.tail = (self.tail + [line])[-40:]
        if match := _STEP.match(line):
            number, title = match.groups()
            if number not in self.steps:
                self.steps[number] = title
                self.current = title
                return title
        elif match := _STEP_ERROR.match(line):
            self.failed = self.steps.get(match.group(1), f"#{match.group(1)}")
            self.error = match.group(2)
        elif line.startswith(("error:", "ERROR:")) and not self.error:
            self.error = line.split(":", 1)[1].strip()
        return None

    def failure(self, platform: str) -> BuildError:
        step = self.failed or self.current or "(before the first step)"
        reason = self.error or "see the log"
        return BuildError(f"{platform}: build failed at step {step}: {reason}", platform, step, "\n".join(self.tail), reason)


# --------------------------------------------------------------------------- the build


@dataclass
class PlatformBuild:
    platform: Platform
    seconds: float
    digest: str = ""
    reference: str = ""


@dataclass
class BuildResult:
    reference: str  # what the stack should run: REF@sha256:<list digest>, or the local tag
    builder: Builder
    platforms: list[PlatformBuild]
    list_digest: str | None = None
    manifest: bytes = b""
    written: str | None = None  # images.node_red value written into stack.yaml


def default_repository(stack: Any) -> str:
    return f"stackgen/{stack.project}-node-red"


def image_name(registry: str | None, repository: str) -> str:
    """With a registry: HOST/REPO. Without: `localhost/REPO`, a name no public registry can answer for."""
    return f"{registry or 'localhost'}/{repository}"


def parse_platforms(values: Sequence[str], default: str) -> list[Platform]:
    """--platform values (repeatable, or comma-separated) -> platforms, in order, without repeats."""
    raw = [v for value in (values or [default]) for v in value.split(",") if v.strip()]
    result: list[Platform] = []
    for value in raw:
        try:
            platform = Platform.parse(value)
        except ValueError as exc:
            raise StackgenError(f"--platform: {exc}") from None
        if str(platform) not in SUPPORTED:
            raise StackgenError(f"--platform: {value!r} is not one of {', '.join(SUPPORTED)}")
        if platform not in result:
            result.append(platform)
    return result


def build(
    directory: Path,
    platforms: Sequence[str] = (),
    registry: str | None = None,
    base: str | None = None,
    repository: str | None = None,
    tag: str | None = None,
    no_cache: bool = False,
    write: bool = True,
    report: Reporter = _quiet,
    builder: Builder | None = None,
    runner: Runner = stream,
    registry_factory: Callable[[str], Registry] = Registry,
) -> BuildResult:
    """Build the custom Node-RED image for `platforms` (default: the spec's), push and join it when a registry is given."""
    from stackgen.stackdir import load_stack

    stack = load_stack(directory)
    targets = parse_platforms(platforms, stack.platform)
    if registry:
        registry = check_registry_host(registry)
    if len(targets) > 1 and not registry:
        raise StackgenError(
            f"--registry: building for {len(targets)} platforms needs a registry (a manifest list lives in one), "
            "e.g. --registry 127.0.0.1:5000"
        )
    base_ref = base_image(stack, base)
    try:
        ImageRef.parse(base_ref)
    except ValueError as exc:
        raise StackgenError(f"--base: {exc}") from None
    prepared = prepare(directory, stack, targets, base_ref)
    name = image_name(registry, repository or default_repository(stack))
    final_tag = tag or f"{node_red_tag(stack)}-{prepared.digest[:12]}"
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", final_tag):
        raise StackgenError(f"--tag: {final_tag!r} is not a valid image tag")
    reference = f"{name}:{final_tag}"
    chosen = builder or detect_builder()
    report(Event("*", "note", f"builder: {chosen.kind} ({chosen.cli} {chosen.version}); base {base_ref}; "
                              f"platforms {', '.join(map(str, targets))}; image {reference}"))
    if chosen.kind == "buildx":
        result = _build_buildx(chosen, prepared, targets, reference, registry, no_cache, report, runner, registry_factory)
    else:
        result = _build_per_platform(chosen, prepared, targets, reference, registry, no_cache, report, runner, registry_factory)
    if write:
        result.written = _write_image(directory, result.reference)
    return result


def _common(prepared: Prepared) -> list[str]:
    """Label the image with its inputs' digest; RUN steps get no network unless native nodes must be rebuilt
    (those may download prebuilt binaries or headers)."""
    args = ["--label", f"{BUILD_LABEL}={prepared.digest}"]
    if not prepared.rebuild:
        args.append("--network=none")
    return args


def _build_per_platform(builder: Builder, prepared: Prepared, targets: Sequence[Platform], reference: str, registry: str | None,
                        no_cache: bool, report: Reporter, runner: Runner, registry_factory: Callable[[str], Registry]) -> BuildResult:
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    builds: list[PlatformBuild] = []
    for platform in targets:
        name = str(platform)
        local = reference if len(targets) == 1 and not registry else f"{reference}-{platform.slug}"
        command = [builder.cli, "build", "--progress=plain", "--platform", name, "-f", str(prepared.dockerfile),
                   "-t", local, *_common(prepared)]
        if no_cache:
            command.append("--no-cache")
        command.append(str(prepared.context))
        progress = Progress()

        def on_line(line: str, progress: Progress = progress, name: str = name) -> None:
            step = progress.feed(line)
            report(Event(name, "step" if step else "log", step or line))

        started = time.monotonic()
        report(Event(name, "note", "building"))
        if runner(command, env, on_line) != 0:
            raise _explain(progress.failure(name), prepared.base)
        seconds = time.monotonic() - started
        _check_local_platform(builder, local, platform, runner, env)
        item = PlatformBuild(platform, seconds, reference=local)
        report(Event(name, "done", f"built {local} in {seconds:.1f}s"))
        if registry:
            push_log = Progress()
            report(Event(name, "push", f"pushing {local}"))
            if runner([builder.cli, "push", local], env, lambda line, p=push_log, n=name: (p.feed(line), report(Event(n, "log", line)))) != 0:
                last = push_log.tail[-1] if push_log.tail else "no output"
                raise BuildError(f"{name}: push of {local} failed: {last}", name, "push", "\n".join(push_log.tail))
        builds.append(item)
    if not registry:
        return BuildResult(reference, builder, builds)
    return _join(builder, reference, builds, env, runner, report, registry_factory)


def _explain(error: BuildError, base: str) -> BuildError:
    """Say plainly what BuildKit's words mean for the most common failure: the base lacks the platform."""
    if "no match for platform in manifest" in error.reason:
        error.args = (f"{error.platform}: the base image {base} has no {error.platform} image (step {error.step}: {error.reason})",)
    return error


def _check_local_platform(builder: Builder, local: str, platform: Platform, runner: Runner, env: dict[str, str]) -> None:
    """The engine's record of what was built: a builder that ignored --platform is caught here."""
    lines: list[str] = []
    command = [builder.cli, "image", "inspect", "--format", "{{.Os}} {{.Architecture}} {{.Variant}}", local]
    if runner(command, env, lines.append) != 0:
        raise BuildError(f"{platform}: built image {local} not found in the engine: {' '.join(lines)[-300:]}", str(platform), "inspect")
    fields = ((lines[-1] if lines else "").split() + ["", "", ""])[:3]
    got = Platform.of(*fields)
    if got != platform:
        raise BuildError(f"{platform}: the engine recorded {local} as {got}: the builder ignored --platform", str(platform), "inspect")


def _join(builder: Builder, reference: str, builds: list[PlatformBuild], env: dict[str, str], runner: Runner,
          report: Reporter, registry_factory: Callable[[str], Registry]) -> BuildResult:
    """Join the pushed per-platform images into one manifest list at `reference`."""
    ref = ImageRef.parse(reference)
    registry = registry_factory(ref.api_host)
    tag = ref.tag or "latest"
    try:
        entries = []
        for build in builds:
            media_type, digest, size = registry.descriptor(ref.repository, f"{tag}-{build.platform.slug}")
            build.digest = digest
            entries.append(Entry(build.platform, digest, media_type, size))
        body = manifest_list(entries, DOCKER_LIST)
        digest = registry.put_manifest(ref.repository, tag, body, DOCKER_LIST)
    except RegistryError as exc:
        if "authentication required" not in str(exc) and "denied" not in str(exc):
            raise
        report(Event("*", "note", f"{exc}: joining with `docker manifest` (the CLI's credentials)"))
        return _join_with_cli(builder, reference, builds, env, runner)
    report(Event("*", "done", f"manifest list {reference}@{digest} ({', '.join(str(b.platform) for b in builds)})"))
    return BuildResult(f"{reference}@{digest}", builder, builds, digest, body)


def _join_with_cli(builder: Builder, reference: str, builds: list[PlatformBuild], env: dict[str, str], runner: Runner) -> BuildResult:
    lines: list[str] = []
    commands = [[builder.cli, "manifest", "create", "--amend", reference, *(b.reference for b in builds)]]
    for build in builds:
        annotate = [builder.cli, "manifest", "annotate", "--os", build.platform.os, "--arch", build.platform.architecture]
        if build.platform.variant:
            annotate += ["--variant", build.platform.variant]
        commands.append(annotate + [reference, build.reference])
    commands.append([builder.cli, "manifest", "push", "--purge", reference])
    for command in commands:
        if runner(command, env, lines.append) != 0:
            raise BuildError(f"joining the platforms failed: {' '.join(command[1:4])}: {lines[-1] if lines else 'no output'}", None, "manifest")
    digest = next((m.group(0) for line in reversed(lines) if (m := re.search(r"sha256:[a-f0-9]{64}", line))), None)
    if not digest:
        raise BuildError("`docker manifest push` printed no digest", None, "manifest")
    return BuildResult(f"{reference}@{digest}", builder, builds, digest)


def _build_buildx(builder: Builder, prepared: Prepared, targets: Sequence[Platform], reference: str, registry: str | None,
                  no_cache: bool, report: Reporter, runner: Runner, registry_factory: Callable[[str], Registry]) -> BuildResult:
    names = ",".join(str(p) for p in targets)
    command = [builder.cli, "buildx", "build", "--progress=plain", "--platform", names, "-f", str(prepared.dockerfile),
               "-t", reference, *_common(prepared), "--push" if registry else "--load"]
    if no_cache:
        command.append("--no-cache")
    command.append(str(prepared.context))
    progress = Progress()
    by_platform = {str(p): p for p in targets}

    def on_line(line: str) -> None:
        step = progress.feed(line)
        # buildx prefixes a step with its platform: "#7 [linux/arm64 2/4] RUN ...".
        match = re.match(r"^\[([a-z0-9/]+) ", step or "")
        report(Event(match.group(1) if match and match.group(1) in by_platform else "*", "step" if step else "log", step or line))

    started = time.monotonic()
    if runner(command, dict(os.environ), on_line) != 0:
        step = progress.failed or progress.current or ""
        match = re.match(r"^\[([a-z0-9/]+) ", step)
        raise progress.failure(match.group(1) if match else names)
    seconds = time.monotonic() - started
    builds = [PlatformBuild(p, seconds) for p in targets]
    if not registry:
        return BuildResult(reference, builder, builds)
    ref = ImageRef.parse(reference)
    info_registry = registry_factory(ref.api_host)
    manifest = info_registry.manifest(ref.repository, ref.tag or "latest")
    report(Event("*", "done", f"{reference}@{manifest.digest} ({names}) in {seconds:.1f}s"))
    return BuildResult(f"{reference}@{manifest.digest}", builder, builds, manifest.digest, manifest.body)


def _write_image(directory: Path, reference: str) -> str:
    """Point `images.node_red` at the built image (stack.yaml stays 0600); `generate` then renders it."""
    from stackgen.stackdir import SPEC_NAME, dump_stack, load_stack

    stack = load_stack(directory)
    stack.images.node_red = reference
    files.write_atomic(directory / SPEC_NAME, dump_stack(stack), 0o600)
    return reference
