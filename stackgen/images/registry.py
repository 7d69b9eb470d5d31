"""Which platforms an image really has, and the digest of each: read from its manifest.

Why this exists: Raspberry Pi stacks break when an image silently stops publishing
their architecture (Node-RED's `latest` lost arm/v7 for a while; 32-bit images vanish).
A tag says nothing about platforms; the manifest list (OCI index or Docker manifest
list) does. Reading it before `up`, and pinning the digest of the platform's manifest
into `stack.yaml`, means a later tag change can neither drop the platform nor swap the
image unnoticed.

Two sources:
* a registry, through the HTTP API v2 (anonymous bearer tokens as Docker Hub wants them;
  plain HTTP only for loopback registries);
* the local engine's image, when present (what Compose would run without pulling).

Pure parts (references, platforms, index parsing, matching) are separate from I/O so
that unit tests use recorded JSON; `Registry` takes a transport that tests replace.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import re
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from stackgen.errors import StackgenError
from stackgen.upstream.platforms import Platform, compatibility  # noqa: F401 (re-exported: the registry speaks in platforms)

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


class RegistryError(StackgenError):
    """A registry answered, but not with what was asked for."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"registry {host}: {message}")
        self.host = host


class RegistryUnreachable(RegistryError):
    """No answer at all (refused, no route, name not resolved, TLS failure, timeout)."""


class ManifestNotFound(RegistryError):
    """The registry has no manifest for this reference (404)."""


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


# --------------------------------------------------------------------------- registry client


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


Transport = Callable[[str, str, dict[str, str], bytes | None, float], Response]


def http_transport(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float) -> Response:
    """One HTTP exchange with http.client; no redirects followed (the caller decides, and drops auth)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


@dataclass
class Manifest:
    media_type: str
    digest: str
    body: bytes
    document: dict[str, Any]


@dataclass
class Registry:
    """A registry's HTTP API v2: read manifests and blobs, write manifests (and blobs, for tests)."""

    host: str
    timeout: float = 15.0
    transport: Transport = http_transport
    scheme: str = ""
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.scheme:
            self.scheme = "http" if is_loopback(self.host) else "https"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"

    # -- plumbing

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Response:
        try:
            return self.transport(method, url, headers, body, self.timeout)
        except ssl.SSLError as exc:
            raise RegistryUnreachable(self.host, f"TLS failed ({exc.reason or exc})") from None
        except socket.gaierror:
            raise RegistryUnreachable(self.host, "unreachable (name does not resolve)") from None
        except TimeoutError:
            raise RegistryUnreachable(self.host, f"unreachable (no answer within {self.timeout:g}s)") from None
        except ConnectionRefusedError:
            raise RegistryUnreachable(self.host, f"unreachable (connection refused at {self.base})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryUnreachable(self.host, f"unreachable ({exc.__class__.__name__}: {exc})") from None

    def request(self, method: str, path: str, repository: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, push: bool = False, follow: bool = True) -> Response:
        """One API call, with an anonymous bearer token fetched on the first 401, and redirects followed."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        sent = dict(headers or {})
        if scope in self._tokens:
            sent["Authorization"] = f"Bearer {self._tokens[scope]}"
        response = self._exchange(method, url, sent, body)
        if response.status == 401 and "Authorization" not in sent:
            token = self._token(response.headers.get("www-authenticate", ""), scope)
            if token:
                self._tokens[scope] = token
                sent["Authorization"] = f"Bearer {token}"
                response = self._exchange(method, url, sent, body)
        hops = 0
        while follow and response.status in (301, 302, 303, 307, 308) and "location" in response.headers and hops < 5:
            hops += 1
            target = urllib.parse.urljoin(url, response.headers["location"])
            if urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(url).netloc:
                sent.pop("Authorization", None)  # blob storage behind a redirect must not get our token
            url = target
            if response.status == 303 or (response.status in (301, 302) and method not in ("GET", "HEAD")):
                method, body = "GET", None
            response = self._exchange(method, url, sent, body)
        if response.status == 401:
            raise RegistryError(self.host, f"authentication required for {repository} (stackgen reads anonymously: is the image private?)")
        if response.status == 403:
            raise RegistryError(self.host, f"access to {repository} denied")
        return response

    def _token(self, challenge: str, scope: str) -> str | None:
        """Docker Hub style: `Bearer realm=...,service=...` -> GET realm?service=&scope= -> token."""
        if not challenge.lower().startswith("bearer "):
            return None
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.get("realm")
        if not realm:
            return None
        query = {"scope": params.get("scope") or scope}
        if "service" in params:
            query["service"] = params["service"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        realm_host = urllib.parse.urlsplit(realm).netloc
        try:
            response = self.transport("GET", url, {}, None, self.timeout)
        except OSError as exc:
            raise RegistryUnreachable(realm_host, f"token service unreachable ({exc.__class__.__name__})") from None
        if response.status != 200:
            raise RegistryError(self.host, f"token service {realm_host} refused an anonymous token (HTTP {response.status})")
        try:
            data = json.loads(response.body)
        except ValueError:
            raise RegistryError(self.host, f"token service {realm_host} sent no JSON") from None
        return data.get("token") or data.get("access_token")

    # -- reads

    def ping(self) -> None:
        """Raise RegistryUnreachable unless /v2/ answers (200, or 401 from a registry that wants a token)."""
        response = self._exchange("GET", self.base + "/v2/", {}, None)
        if response.status not in (200, 401):
            raise RegistryError(self.host, f"/v2/ answered HTTP {response.status}: not a registry?")

    def manifest(self, repository: str, reference: str) -> Manifest:
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", repository, {"Accept": ACCEPT})
        if response.status == 404:
            raise ManifestNotFound(self.host, f"no manifest {repository}:{reference}" if not reference.startswith("sha256:")
                                   else f"no manifest {repository}@{reference}")
        if response.status != 200:
            raise RegistryError(self.host, f"manifest {repository}:{reference}: HTTP {response.status} {_short(response.body)}")
        digest = sha256_digest(response.body)
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(self.host, f"manifest {repository}@{reference}: content hashes to {digest} (corrupt or tampered)")
        try:
            document = json.loads(response.body)
        except ValueError:
            raise RegistryError(self.host, f"manifest {repository}:{reference} is not JSON") from None
        return Manifest(media_type_of(document, response.headers.get("content-type")), digest, response.body, document)

    def blob(self, repository: str, digest: str) -> bytes:
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}", repository)
        if response.status != 200:
            raise RegistryError(self.host, f"blob {repository}@{digest}: HTTP {response.status}")
        if sha256_digest(response.body) != digest:
            raise RegistryError(self.host, f"blob {repository}@{digest}: content does not match its digest")
        return response.body

    def inspect(self, ref: ImageRef) -> ImageInfo:
        """Every platform of `ref` with its manifest digest (one extra blob read for single-platform images)."""
        manifest = self.manifest(ref.repository, ref.reference)
        source = f"registry {self.host}"
        if manifest.media_type in LIST_TYPES:
            return ImageInfo(ref, source, parse_index(manifest.document), manifest.digest, manifest.media_type)
        if manifest.media_type in IMAGE_TYPES:
            config_digest = (manifest.document.get("config") or {}).get("digest")
            if not config_digest:
                raise RegistryError(self.host, f"manifest {ref.repository}:{ref.reference} has no config")
            config = json.loads(self.blob(ref.repository, config_digest))
            entry = Entry(platform_of_config(config), manifest.digest, manifest.media_type, len(manifest.body))
            return ImageInfo(ref, source, [entry], None, manifest.media_type)
        if manifest.media_type == DOCKER_SCHEMA1 or manifest.document.get("schemaVersion") == 1:
            arch = manifest.document.get("architecture", "")
            entry = Entry(Platform.of("linux", arch), manifest.digest, DOCKER_SCHEMA1, len(manifest.body))
            return ImageInfo(ref, source, [entry], None, DOCKER_SCHEMA1)
        raise RegistryError(self.host, f"manifest {ref.repository}:{ref.reference} has unknown media type {manifest.media_type!r}")

    def descriptor(self, repository: str, reference: str) -> tuple[str, str, int]:
        """(media type, digest, size) of a manifest, as a manifest list needs them."""
        manifest = self.manifest(repository, reference)
        return manifest.media_type, manifest.digest, len(manifest.body)

    # -- writes

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}", repository,
                                {"Content-Type": media_type}, body, push=True)
        if response.status not in (200, 201):
            raise RegistryError(self.host, f"PUT manifest {repository}:{reference}: HTTP {response.status} {_short(response.body)}")
        digest = sha256_digest(body)
        answered = response.headers.get("docker-content-digest")
        if answered and answered != digest:
            raise RegistryError(self.host, f"PUT manifest {repository}:{reference}: registry stored {answered}, expected {digest}")
        return digest

    def put_blob(self, repository: str, data: bytes) -> str:
        """Monolithic upload (POST then PUT ?digest=); returns the digest. Skips blobs already there."""
        digest = sha256_digest(data)
        head = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", repository, push=True)
        if head.status == 200:
            return digest
        start = self.request("POST", f"/v2/{repository}/blobs/uploads/", repository, push=True, follow=False)
        if start.status != 202 or "location" not in start.headers:
            raise RegistryError(self.host, f"blob upload to {repository}: HTTP {start.status}")
        location = urllib.parse.urljoin(self.base + "/", start.headers["location"])
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        done = self.request("PUT", location, repository, {"Content-Type": "application/octet-stream"}, data, push=True, follow=False)
        if done.status != 201:
            raise RegistryError(self.host, f"blob upload to {repository}: HTTP {done.status} {_short(done.body)}")
        return digest


def _short(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text[:200]


# --------------------------------------------------------------------------- local engine


def engine_image(engine: Any, ref: ImageRef) -> ImageInfo | None:
    """The local engine's image for `ref` (one platform: the one it was built or pulled for), or None.

    The digest reported is the repository digest the engine recorded when it pulled or pushed
    the image; an image only built locally has none (it cannot be pinned until pushed).
    """
    from stackgen import engine as engines  # here, not at the top: `images check` without --local needs no engine

    try:
        image = engine.images.get(ref.original)
    except engines.ImageNotFound:
        return None
    attrs = image.attrs
    platform = Platform.of(attrs.get("Os", ""), attrs.get("Architecture", ""), attrs.get("Variant", ""))
    digest = ref.digest
    for item in attrs.get("RepoDigests") or []:
        repo, _, candidate = item.partition("@")
        try:
            other = ImageRef.parse(repo)
        except ValueError:
            continue
        if digest is None and (other.registry, other.repository) == (ref.registry, ref.repository):
            digest = candidate
    entry = Entry(platform, digest or "", "", 0)
    return ImageInfo(ref, "local engine", [entry], None, "")


# --------------------------------------------------------------------------- stack checks


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


def pin(directory: Any, checks: list[ImageCheck]) -> dict[str, str]:
    """Write each checked image's platform digest into `stack.yaml` (`images.<service>`); returns field -> reference.

    Refuses when any check failed: pinning half a stack that cannot run on its platform helps nobody.
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
    for check in checks:
        reference = check.pinned()
        assert reference
        setattr(stack.images, SERVICE_FIELDS[check.service], reference)
        written[f"images.{SERVICE_FIELDS[check.service]}"] = reference
    files.write_atomic(directory / SPEC_NAME, dump_stack(stack), 0o600)
    return written
