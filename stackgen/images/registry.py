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

Split three ways: `stackgen.images.references` (references, manifest documents: pure),
this module (the HTTP client and the local engine's image), `stackgen.images.check` (a stack's
images judged for its platform, and pinned). The reference names stay importable from here.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stackgen.errors import StackgenError
from stackgen.images.references import (  # noqa: F401 (re-exported: callers read references through the registry)
    _DIGEST,
    _HOST,
    ACCEPT,
    DOCKER_HUB,
    DOCKER_HUB_API,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    IMAGE_TYPES,
    LIST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Entry,
    ImageInfo,
    ImageRef,
    check_registry_host,
    is_loopback,
    manifest_list,
    media_type_of,
    parse_index,
    platform_of_config,
    sha256_digest,
)
from stackgen.upstream.platforms import Platform, compatibility  # noqa: F401 (re-exported: the registry speaks in platforms)


class RegistryError(StackgenError):
    """A registry answered, but not with what was asked for."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"registry {host}: {message}")
        self.host = host


class RegistryUnreachable(RegistryError):
    """No answer at all (refused, no route, name not resolved, TLS failure, timeout)."""


class ManifestNotFound(RegistryError):
    """The registry has no manifest for this reference (404)."""


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
