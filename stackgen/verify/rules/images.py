"""Image references: a floating tag is a different program tomorrow."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology, image_parts
from stackgen.verify.rules.base import Rule

LATEST = Rule(
    id="SG024",
    name="image-latest",
    severity=Severity.MEDIUM,
    title="Image tag missing or `latest`",
    why="""Without a version tag (or with `latest`), every pull may bring a different release: an
    unreviewed Node-RED or proxy upgrade, or a compromised tag, goes live on the next restart.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:latest
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    fix="Pin a release tag (better: tag and digest, `image: name:1.2.3@sha256:...`).",
    compose_lint=("CL-0004",),
)


@LATEST.per_service
def _latest(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if not svc.image or svc.build:
        return
    _, _, tag, digest = image_parts(svc.image)
    if digest:
        return
    if tag is None:
        yield f"image {svc.image} has no tag (means `latest`)", svc.at("image")
    elif tag == "latest":
        yield f"image {svc.image} uses the floating `latest` tag", svc.at("image")


NO_DIGEST = Rule(
    id="SG025",
    name="image-no-digest",
    severity=Severity.LOW,
    title="Image tag without digest",
    why="""A tag can be moved by whoever controls the registry repository; a digest cannot. Pinning
    `@sha256:` makes the running code exactly the code that was reviewed.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4@sha256:6d3c0e5b1e6b3a4f1c2d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b
    """,
    fix="Append the digest: `docker buildx imagetools inspect IMAGE:TAG` prints it.",
    compose_lint=("CL-0019",),
)


@NO_DIGEST.per_service
def _no_digest(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if not svc.image or svc.build:
        return
    _, _, tag, digest = image_parts(svc.image)
    if digest is None and tag not in (None, "latest"):
        yield f"image {svc.image} is pinned by tag only, not by digest", svc.at("image")


RULES = (LATEST, NO_DIGEST)
