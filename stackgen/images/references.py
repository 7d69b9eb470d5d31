"""Image references, manifests and the documents they list: the pure half of reading an image's platforms.

Why this exists: parsing `nodered/node-red:4.0.9@sha256:...` the way registries need it, telling a
manifest list from a single manifest, reading an index's platforms and writing one are all free of
I/O. Kept apart from the HTTP client (`stackgen.images.registry`) and the stack checks
(`stackgen.images.check`) so that unit tests feed them recorded JSON, and `build` can write a
manifest list without caring how it reaches a registry. Everything here is re-exported by
`stackgen.images.registry`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from stackgen.errors import StackgenError
from stackgen.upstream.platforms import Platform, compatibility

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
LIST_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class ImageRef:
    """An image reference, split the way registries need it.

    `original` keeps what the user wrote (for messages and for pinning: a pinned reference is
    the user's own spelling plus `@sha256:...`).
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None
    original: str

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        ref = text.strip()
        if not ref or any(c.isspace() for c in ref):
            raise ValueError(f"{text!r} is not an image reference")
        name, digest = (ref.split("@", 1) + [None])[:2] if "@" in ref else (ref, None)
        if digest is not None and not _DIGEST.match(digest):
            raise ValueError(f"{text!r}: digest must be sha256:<64 hex digits>")
        tag = None
        colon, slash = name.rfind(":"), name.rfind("/")
        if colon > slash:
            name, tag = name[:colon], name[colon + 1 :]
        first, sep, rest = name.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
        else:
            registry, repository = DOCKER_HUB, name
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and "/" not in repository:
            repository = "library/" + repository
        if not repository or not re.fullmatch(r"[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*", repository):
            raise ValueError(f"{text!r}: {repository!r} is not a repository name")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, repository, tag, digest, ref)

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one (the tag is then ignored, as docker does)."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def without_digest(self) -> str:
        return self.original.split("@", 1)[0]

    def pinned(self, digest: str) -> str:
        """The user's spelling with the digest: `nodered/node-red:4.0.9@sha256:...`."""
        return f"{self.without_digest}@{digest}"

    def on(self, host: str) -> ImageRef:
        """The same repository path on another registry (a mirror or a local copy).

        Docker Hub's official images keep their `library/` prefix, as pull-through mirrors
        store them.
        """
        return replace(self, registry=host)

    def __str__(self) -> str:
        return self.original


def check_registry_host(text: str) -> str:
    """`HOST[:PORT]` or a usage error: a URL scheme or a path here is a mistake worth naming."""
    value = text.strip()
    match = _HOST.match(value)
    if "://" in value or "/" in value or not match:
        raise StackgenError(f"--registry: {text!r} is not HOST[:PORT] (no scheme, no path), e.g. 127.0.0.1:5000")
    if match.group(2) and not 0 < int(match.group(2)[1:]) < 65536:
        raise StackgenError(f"--registry: port {match.group(2)[1:]} out of range")
    return value


def is_loopback(host: str) -> bool:
    """Registries on loopback speak plain HTTP (as docker allows for 127.0.0.0/8); all others HTTPS."""
    name = host
    if name.startswith("["):
        name = name[1 : name.index("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- manifests


@dataclass(frozen=True)
class Entry:
    """One platform's manifest: what a pull for that platform fetches."""

    platform: Platform
    digest: str
    media_type: str
    size: int


@dataclass
class ImageInfo:
    """Every platform an image reference offers, and where that was read."""

    ref: ImageRef
    source: str
    entries: list[Entry]
    list_digest: str | None = None  # the index / manifest list itself, when there is one
    media_type: str = ""

    @property
    def platforms(self) -> list[Platform]:
        return sorted({e.platform for e in self.entries if e.platform.known})

    def select(self, target: Platform) -> tuple[Entry, int] | None:
        """The best entry for `target` (exact first, then the nearest older ARM variant)."""
        ranked = [(rank, e) for e in self.entries if (rank := compatibility(target, e.platform)) is not None]
        if not ranked:
            return None
        rank, entry = min(ranked, key=lambda item: item[0])
        return entry, rank


def parse_index(document: dict[str, Any]) -> list[Entry]:
    """Entries of an OCI index or Docker manifest list; entries without a platform are skipped."""
    entries = []
    for item in document.get("manifests") or []:
        platform = item.get("platform") or {}
        if not platform.get("architecture") or not platform.get("os"):
            continue
        entries.append(
            Entry(
                Platform.of(platform["os"], platform["architecture"], platform.get("variant", "")),
                item["digest"],
                item.get("mediaType", ""),
                int(item.get("size", 0)),
            )
        )
    return entries


def platform_of_config(config: dict[str, Any]) -> Platform:
    """An image's platform from its config blob (what `docker inspect` shows as Os/Architecture/Variant)."""
    return Platform.of(config.get("os", ""), config.get("architecture", ""), config.get("variant", ""))


def media_type_of(document: dict[str, Any], header: str | None) -> str:
    """The manifest's type: the document's own `mediaType` wins over Content-Type (OCI makes it optional)."""
    declared = document.get("mediaType")
    if declared:
        return declared
    if header:
        return header.split(";", 1)[0].strip()
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document:
        return OCI_MANIFEST
    return ""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_list(entries: Iterable[Entry], media_type: str = DOCKER_LIST) -> bytes:
    """A manifest list / OCI index document over per-platform manifests (stable key order)."""
    manifests = []
    for entry in entries:
        platform: dict[str, str] = {"architecture": entry.platform.architecture, "os": entry.platform.os}
        if entry.platform.variant:
            platform["variant"] = entry.platform.variant
        manifests.append({"mediaType": entry.media_type, "size": entry.size, "digest": entry.digest, "platform": platform})
    document = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    return json.dumps(document, indent=3).encode()
