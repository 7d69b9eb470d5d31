"""A stack's images judged for its target platform, and pinned into `stack.yaml`: `stackgen images check`.

Why this exists: the verdict per service (ok, ok on an older ARM variant, missing, error) and
the pinning of platform digests are policy over the registry client, not part of it. Kept apart
from `stackgen.images.registry` (which only reads and writes manifests) so that each stays short,
and so that a check never raises for one image's problem: each service gets its own verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stackgen.errors import StackgenError
from stackgen.generate.custom_images import awaits_build
from stackgen.images.references import Entry, ImageInfo, ImageRef
from stackgen.images.registry import Registry, RegistryError, RegistryUnreachable, engine_image
from stackgen.upstream.platforms import Platform

SERVICE_FIELDS = {"node-red": "node_red", "edge": "edge", "certbot": "certbot"}


@dataclass
class ImageCheck:
    """The verdict for one service's image on the target platform."""

    service: str
    image: str
    target: Platform
    source: str = ""
    entry: Entry | None = None
    rank: int | None = None
    available: list[Platform] = field(default_factory=list)
    list_digest: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.entry is not None

    @property
    def digest(self) -> str | None:
        return self.entry.digest if self.entry and self.entry.digest else None

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        if self.entry is None:
            return "missing"
        return "ok" if self.rank == 0 else f"ok ({self.entry.platform})"

    @property
    def note(self) -> str:
        if self.error:
            return self.error
        if self.entry is None:
            offered = ", ".join(str(p) for p in self.available) or "no platform"
            return f"{self.image} has no {self.target} image (offers: {offered})"
        if self.rank:
            return f"{self.entry.platform} image, runs on {self.target}"
        return ""

    def pinned(self) -> str | None:
        return ImageRef.parse(self.image).pinned(self.digest) if self.ok and self.digest else None

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "image": self.image,
            "platform": str(self.target),
            "status": "ok" if self.ok else ("error" if self.error else "missing"),
            "matched": str(self.entry.platform) if self.entry else None,
            "digest": self.digest,
            "list_digest": self.list_digest,
            "available": [str(p) for p in self.available],
            "source": self.source,
            "message": self.note or None,
            "pinned": self.pinned(),
        }


def stack_images(stack: Any) -> dict[str, str]:
    """Service -> image for the services the stack actually renders (certbot only with a sidecar)."""
    from stackgen.generate.render import default_images

    images = default_images(stack)
    if not stack.tls.uses_sidecar:
        images.pop("certbot", None)
    return images


def check_images(
    images: dict[str, str],
    target: Platform,
    registry: str | None = None,
    source: str = "auto",
    engine: Any = None,
    registry_factory: Callable[[str], Registry] = Registry,
) -> list[ImageCheck]:
    """Check every image for `target`. Never raises for one image's problem: each gets its verdict.

    source: "registry" (the image's own registry, or `registry` for all), "engine" (the local
    engine's image only), "auto" (registry first; the engine's image when the registry cannot
    answer for it). A registry that failed to answer is not asked again for the next image.
    """
    clients: dict[str, Registry] = {}
    dead: dict[str, str] = {}
    results = []
    for service, image in images.items():
        check = ImageCheck(service, image, target)
        results.append(check)
        try:
            ref = ImageRef.parse(image)
        except ValueError as exc:
            check.error = str(exc)
            continue
        info: ImageInfo | None = None
        problem: str | None = None
        if source in ("auto", "registry"):
            host = registry or ref.api_host
            target_ref = ref.on(registry) if registry else ref
            if host in dead:
                problem = dead[host]
            else:
                client = clients.setdefault(host, registry_factory(host))
                try:
                    info = client.inspect(target_ref)
                except RegistryUnreachable as exc:
                    dead[host] = problem = str(exc)
                except RegistryError as exc:
                    problem = str(exc)
        if info is None and (source == "engine" or (source == "auto" and engine is not None)):
            info = engine_image(engine, ref) if engine is not None else None
            if info is None and source == "engine":
                problem = f"{image}: not in the local engine"
            elif info is not None and problem:
                info.source = f"local engine ({problem})"
        if info is None:
            check.error = problem or f"{image}: not found"
            continue
        check.source = info.source
        check.available = info.platforms
        check.list_digest = info.list_digest
        chosen = info.select(target)
        if chosen:
            check.entry, check.rank = chosen
    return results


def pin(directory: Any, checks: list[ImageCheck], notes: list[str] | None = None) -> dict[str, str]:
    """Write each checked image's platform digest into `stack.yaml` (`images.<service>`); returns field -> reference.

    Refuses when any check failed: pinning half a stack that cannot run on its platform helps nobody. A Node-RED
    that declares extra_nodes (or base_image) and has no built image yet is not pinned (a note in `notes` says so):
    what was checked for it is the official image, its build's base, and pinning that as what it runs would make it
    run without its nodes (`generate` refuses such a stack).
    """
    from pathlib import Path

    from stackgen.generate import files
    from stackgen.stackdir import SPEC_NAME, dump_stack, load_stack

    bad = [c for c in checks if not c.ok]
    if bad:
        raise StackgenError(f"not pinning: {', '.join(c.image for c in bad)} failed the check")
    unpinnable = [c for c in checks if not c.digest]
    if unpinnable:
        raise StackgenError(f"not pinning: {', '.join(c.image for c in unpinnable)} has no registry digest (built locally and never pushed?)")
    directory = Path(directory)
    stack = load_stack(directory)
    written = {}
    instances = {inst.service: i for i, inst in enumerate(stack.instances or [])}  # several Node-RED: instances[].image
    unbuilt = {node_red.service for node_red in stack.node_reds if awaits_build(node_red)}
    for check in checks:
        reference = check.pinned()
        assert reference
        if check.service in unbuilt:
            if notes is not None:
                notes.append(f"{check.service}: not pinned: it declares extra_nodes or base_image and has no built image yet; "
                             f"{check.image} is its build's base (`stackgen build` sets its image)")
            continue
        if check.service in instances:
            stack.instances[instances[check.service]].image = reference
            written[f"instances[{instances[check.service]}].image"] = reference
            continue
        setattr(stack.images, SERVICE_FIELDS[check.service], reference)
        written[f"images.{SERVICE_FIELDS[check.service]}"] = reference
    files.write_atomic(directory / SPEC_NAME, dump_stack(stack), 0o600)
    return written
