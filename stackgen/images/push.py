"""Joining per-platform images into one manifest list, for builds without buildx.

Why this exists: a BuildKit build without buildx makes one image per platform, pushed as
`TAG-<platform>`; the stack needs one reference for all of them. The manifest list is written through
the registry API (anonymous, as `stackgen.images.registry` speaks it), or with `docker manifest`
and the CLI's credentials when the registry wants them. Kept apart from building
(`stackgen.images.run`, `stackgen.images.build`): it reads and writes a registry, not the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from stackgen.images.registry import DOCKER_LIST, Entry, ImageRef, Registry, RegistryError, manifest_list
from stackgen.images.run import Builder, BuildError, BuildResult, Event, PlatformBuild, Reporter, Runner


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
