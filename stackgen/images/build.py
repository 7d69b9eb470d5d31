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

Where it lives: `stackgen.images.plan` (base, lock, per-platform installs, Dockerfile),
`stackgen.images.run` (the docker CLI, its progress, the events and results), `stackgen.images.push`
(joining per-platform images into a manifest list); this module runs a build from stack.yaml to
`images.node_red`. Every name stays importable from here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stackgen.constants import BUILD_LABEL, NODE_RED_UID, PLATFORMS  # noqa: F401 (re-exported, as before the split)
from stackgen.errors import StackgenError
from stackgen.generate import files
from stackgen.generate.render import node_red_tag, templates  # noqa: F401 (re-exported, as before the split)
from stackgen.images.plan import (  # noqa: F401 (re-exported: callers and tests import the plan from here)
    _CHECK_JS,
    BUILD_DIR,
    CONTEXT_DIR,
    DOCKERIGNORE,
    GITIGNORE,
    NPM_CPU,
    Prepared,
    _npm,
    _run_npm,
    _write_generated,
    base_image,
    dockerfile,
    ensure_lock,
    healthcheck_command,
    install_for,
    install_scripts,
    lock_matches,
    npm_dependency,
    package_json,
    platform_dir,
    prepare,
)
from stackgen.images.push import _join, _join_with_cli  # noqa: F401 (re-exported)
from stackgen.images.registry import (  # noqa: F401 (re-exported, as before the split)
    DOCKER_LIST,
    Entry,
    ImageRef,
    Platform,
    Registry,
    RegistryError,
    check_registry_host,
    manifest_list,
)
from stackgen.images.run import (  # noqa: F401 (re-exported: callers and tests import the builder from here)
    _STEP,
    _STEP_ERROR,
    Builder,
    BuildError,
    BuildResult,
    Event,
    PlatformBuild,
    Progress,
    Reporter,
    Runner,
    _check_local_platform,
    _cli_candidates,
    _client_version,
    _common,
    _explain,
    _quiet,
    detect_builder,
    stream,
)

SUPPORTED = PLATFORMS


# --------------------------------------------------------------------------- the build

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
    if stack.instances is not None:  # per-instance images (instances[].image): not built yet, said plainly
        raise StackgenError(f"{directory}/stack.yaml: `stackgen build` builds the one Node-RED of a version 1 stack; with "
                            "instances, build the image elsewhere and set instances[].image")
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
