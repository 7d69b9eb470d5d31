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
`images.node_red`, or for a version 2 stack to each `instances[].image` (`build_stack`: one plan per Node-RED
through `Stack.view`, so an instance is built exactly as a one-instance stack is). Every name stays importable from here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.constants import BUILD_LABEL, NODE_RED_UID, PLATFORMS  # noqa: F401 (re-exported, as before the split)
from stackgen.errors import StackgenError
from stackgen.generate import files
from stackgen.generate.custom_images import context_name, needs_build
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
from stackgen.spec.instances import DEFAULT_INSTANCE

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


@dataclass
class ImagePlan:
    """The build of one Node-RED's image, planned: its context written, its reference chosen. `view` is the version 1
    stack of that Node-RED alone (a version 2 stack's instance through `Stack.view`), so one plan serves both formats."""

    view: Any
    prepared: Prepared
    targets: list[Platform]
    reference: str
    registry: str | None
    instance: str  # the instance's name (a version 1 stack's Node-RED is `node-red`)
    inputs: tuple[Any, ...]  # what the plan read from stack.yaml: a write must find it unchanged


@dataclass
class ImageBuild:
    """One image built, and the Node-REDs that run it (several when their inputs are identical: one tag, one build)."""

    result: BuildResult
    instances: list[str]
    fields: list[str] = field(default_factory=list)  # the stack.yaml fields written: images.node_red, instances[i].image


@dataclass
class StackBuild:
    """What `stackgen build` did for a stack: the images built, and the instances skipped with the reason."""

    images: list[ImageBuild]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    several: bool = False  # a version 2 stack (instances)


def image_inputs(view: Any) -> tuple[Any, ...]:
    """The settings an image is built from; a hand edit of any of them while building makes the image stale."""
    node_red = view.node_red
    return tuple(node_red.extra_nodes), node_red.base_image, node_red.version, tuple(healthcheck_command(view))


def plan_image(directory: Path, view: Any, targets: list[Platform], registry: str | None, base: str | None = None,
               repository: str | None = None, tag: str | None = None, context_name: str = CONTEXT_DIR) -> ImagePlan:
    """Plan for one Node-RED: its base, build context (under DIR/`context_name`) and the reference it will have.

    The tag is `<node-red version>-<digest of the inputs>`: identical inputs give an identical reference, which is
    what lets instances with the same nodes, base and platforms share one image."""
    base_ref = base_image(view, base)
    try:
        ImageRef.parse(base_ref)
    except ValueError as exc:
        raise StackgenError(f"--base: {exc}") from None
    prepared = prepare(directory, view, targets, base_ref, context_name)
    name = image_name(registry, repository or default_repository(view))
    final_tag = tag or f"{node_red_tag(view)}-{prepared.digest[:12]}"
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", final_tag):
        raise StackgenError(f"--tag: {final_tag!r} is not a valid image tag")
    instance = getattr(view.node_red, "name", DEFAULT_INSTANCE)
    return ImagePlan(view, prepared, list(targets), f"{name}:{final_tag}", registry, instance, image_inputs(view))


def run_build(plan: ImagePlan, builder: Builder, no_cache: bool = False, report: Reporter = _quiet, runner: Runner = stream,
              registry_factory: Callable[[str], Registry] = Registry) -> BuildResult:
    """Build a planned image for its platforms: buildx in one go, or one BuildKit build per platform (then joined)."""
    report(Event("*", "note", f"builder: {builder.kind} ({builder.cli} {builder.version}); base {plan.prepared.base}; "
                              f"platforms {', '.join(map(str, plan.targets))}; image {plan.reference}"))
    run = _build_buildx if builder.kind == "buildx" else _build_per_platform
    return run(builder, plan.prepared, plan.targets, plan.reference, plan.registry, no_cache, report, runner, registry_factory)


def _targets(stack: Any, platforms: Sequence[str], registry: str | None) -> tuple[list[Platform], str | None]:
    targets = parse_platforms(platforms, stack.platform)
    if registry:
        registry = check_registry_host(registry)
    if len(targets) > 1 and not registry:
        raise StackgenError(
            f"--registry: building for {len(targets)} platforms needs a registry (a manifest list lives in one), "
            "e.g. --registry 127.0.0.1:5000"
        )
    return targets, registry


def _selected(directory: Path, stack: Any, names: Sequence[str]) -> list[Any]:
    """The instances --instance names (all when none), in stack.yaml's order; an unknown name is refused."""
    known = [inst.name for inst in stack.node_reds]
    if names and stack.instances is None:
        raise StackgenError(f"--instance: {directory}/stack.yaml is a version 1 stack (one Node-RED, `node_red`); "
                            "--instance chooses among the instances of a version 2 stack")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StackgenError(f"--instance: no instance named {unknown[0]!r} in {directory}/stack.yaml (instances: {', '.join(known)})")
    return [inst for inst in stack.node_reds if not names or inst.name in names]


def _for(names: list[str], report: Reporter) -> Reporter:
    """Progress of an instance's build, its platforms labelled with the instance (`lab linux/arm64`)."""
    label = "+".join(names)
    return lambda event: report(Event(f"{label} {event.platform}" if event.platform != "*" else label, event.kind, event.text))


def build_stack(
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
    instances: Sequence[str] = (),
) -> StackBuild:
    """Build the custom Node-RED image of every Node-RED that needs one, and point stack.yaml at each.

    Version 1: the one Node-RED, always (as before: base + extra nodes, even none). Version 2: each instance (or those
    `instances` names) that declares extra_nodes or base_image (or all chosen ones with --base); the others are
    skipped with the reason. Each instance's context is its own directory (DIR/node-red-<name>/; DIR/node-red/ for
    the instance called node-red), and instances whose plans come out identical (same nodes and lock, base,
    healthcheck and platforms: the same reference) share one build. Images are written to stack.yaml only when every
    build succeeded."""
    from stackgen.stackdir import load_stack

    stack = load_stack(directory)
    targets, registry = _targets(stack, platforms, registry)
    several = stack.instances is not None
    plans: list[ImagePlan] = []
    skipped: list[tuple[str, str]] = []
    for node_red in _selected(directory, stack, instances):
        if several and not needs_build(node_red) and base is None:
            skipped.append((node_red.name, f"nothing to build (no extra_nodes, no base_image): it runs {_runs(stack, node_red)}"))
            continue
        view = stack.view(node_red) if several else stack
        try:
            plans.append(plan_image(directory, view, targets, registry, base, repository, tag,
                                    context_name(node_red) if several else CONTEXT_DIR))
        except StackgenError as exc:
            raise _naming(exc, [node_red.name]) if several else exc from None
    groups: dict[str, list[ImagePlan]] = {}
    for plan in plans:
        groups.setdefault(plan.reference, []).append(plan)
    if tag and len({p.prepared.digest for p in plans}) > 1:
        raise StackgenError(f"--tag: {len({p.prepared.digest for p in plans})} different images to build (instances "
                            f"{', '.join(p.instance for p in plans)}), one tag names one image: leave --tag out (each gets a tag "
                            "from its inputs) or choose one instance with --instance")
    for name, why in skipped:
        report(Event(name, "note", why))
    chosen = (builder or detect_builder()) if plans else None
    built: list[ImageBuild] = []
    for members in groups.values():
        names = [p.instance for p in members]
        assert chosen is not None
        try:
            result = run_build(members[0], chosen, no_cache, _for(names, report) if several else report, runner, registry_factory)
        except StackgenError as exc:
            raise _naming(exc, names) if several else exc from None
        built.append(ImageBuild(result, names))
    if write and built:
        _write_images(directory, [(plan, image) for image in built for plan in plans if plan.instance in image.instances], several)
    return StackBuild(built, skipped, several)


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
    """The one image of a version 1 stack (`build_stack` for any stack): built for `platforms` (default: the spec's),
    pushed and joined when a registry is given, written to images.node_red unless `write` is false."""
    done = build_stack(directory, platforms, registry, base, repository, tag, no_cache, write, report, builder, runner, registry_factory)
    if len(done.images) != 1:
        raise StackgenError(f"{directory}/stack.yaml: {len(done.images)} images built; build_stack reports each")
    return done.images[0].result


def _runs(stack: Any, node_red: Any) -> str:
    from stackgen.generate.render import default_images

    return default_images(stack.view(node_red))["node-red"]


def _naming(exc: StackgenError, names: list[str]) -> StackgenError:
    """The same error, its message naming the instance(s) whose build failed (a BuildError keeps platform, step, log)."""
    exc.args = (f"instance {', '.join(names)}: {exc}",)
    return exc


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


def _write_images(directory: Path, done: Sequence[tuple[ImagePlan, ImageBuild]], several: bool) -> None:
    """Point each built Node-RED at its image: `images.node_red` (version 1) or `instances[i].image`; stack.yaml stays
    0600 and is replaced atomically, once, after every build succeeded.

    stack.yaml is read again here, not the copy the build began with: a hand edit made while building is kept. If the
    edit changed what an image was built from (its extra_nodes, base_image, version, editor path), or removed the
    instance, nothing is written: that image would be stale, and the next build (all cached) makes the right one."""
    from stackgen.stackdir import SPEC_NAME, dump_stack, load_stack

    stack = load_stack(directory)
    if (stack.instances is not None) != several:
        raise StackgenError(f"{directory / SPEC_NAME}: changed format while building (now version {stack.version}): nothing written")
    current = {inst.name: (i, inst) for i, inst in enumerate(stack.node_reds)}
    changes: list[tuple[str, int, str, ImageBuild]] = []
    for plan, image in done:
        if plan.instance not in current:
            raise StackgenError(f"{directory / SPEC_NAME}: instance {plan.instance} is no longer in it (edited while building): "
                                f"nothing written ({image.result.reference} is built)")
        index, node_red = current[plan.instance]
        view = stack.view(node_red) if several else stack
        settings, field_name = (f"instances[{index}]", f"instances[{index}].image") if several else ("node_red", "images.node_red")
        if image_inputs(view) != plan.inputs:
            raise StackgenError(f"{directory / SPEC_NAME}: {settings} changed while building (extra_nodes, base_image, version or "
                                f"editor path): {image.result.reference} was built from the old settings; nothing written. "
                                "Build again (cached steps are quick)")
        changes.append((plan.instance, index, field_name, image))
    for _name, index, field_name, image in changes:
        if stack.instances is not None:
            stack.instances[index].image = image.result.reference
        else:
            stack.images.node_red = image.result.reference
            image.result.written = image.result.reference
        image.fields.append(field_name)
    files.write_atomic(directory / SPEC_NAME, dump_stack(stack), 0o600)
