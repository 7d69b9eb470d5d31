"""The user's `stack.yaml`, as strict pydantic models.

Why strict: `stack.yaml` is the single source of truth for a security-relevant
deployment. A typo such as `egres: true` silently ignored would be worse than
an error, so every model forbids unknown keys, and every field carries a
description (the JSON Schema that editors use is generated from these models).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stackgen.constants import EDGES, PLATFORMS, TLS_MODES
from stackgen.upstream.contracts import load_contract

SPEC_VERSION = 1

# The choices are written once, in stackgen.constants (the CLI offers the same lists without pydantic).
Edge = Literal[EDGES]  # type: ignore[valid-type]  # caddy, nginx, traefik
TlsMode = Literal[TLS_MODES]  # type: ignore[valid-type]  # certbot-http01, certbot-dns01, edge-acme, internal, files
Platform = Literal[PLATFORMS]  # type: ignore[valid-type]  # linux/amd64, linux/arm64, linux/arm/v7
# Only providers with an official certbot plugin image (certbot/dns-<name>): the list is the
# upstream contract's (stackgen/upstream/contracts/certbot-dns.yaml), so the two cannot drift apart.
DnsProvider = Literal[tuple(p.provider for p in load_contract("certbot-dns").plugins)]  # type: ignore[valid-type]

# Where a stack runs: compose.yaml alone, or also compose.swarm.yaml (stackgen/generate/swarm.py).
TARGETS = ("compose", "swarm")
Target = Literal[TARGETS]  # type: ignore[valid-type]

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# Every pattern below is applied with `fullmatch`, never `match`: a pattern's `$` also matches before a
# trailing newline, and `ops@example.org\n` got through to break settings.js, the Caddyfile and Traefik's
# YAML (found by tests/unit/generate/test_render_hostile.py).
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^(\*\.)?({_LABEL}\.)+{_LABEL}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Conservative on purpose: the address reaches shell scripts, a Caddyfile and Traefik's YAML. Letters,
# digits and . _ % + - before the @, a host name after it (quoting guards the scripts too).
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
# https URL without characters that mean something in a shell, a Caddyfile ({placeholders}) or YAML.
_ACME_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+=,-]*)?$")
# Host paths that reach edge configs (Caddyfile, nginx.conf, Traefik YAML) and scripts.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+@-]+$")
_BCRYPT = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([-.][A-Za-z0-9.]+)?$")
# repository[:tag][@sha256:digest]; deliberately conservative.
_IMAGE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
_NPM_PACKAGE = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9.^~<>=*|-]+)?$")
_EDITOR_PATH = re.compile(r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$")
_TIMEZONE = re.compile(r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
# A path-routed instance's prefix: segments of letters, digits and . _ ~ -, none starting with a dot (so no `.` or
# `..` segment, nothing an edge or a browser would resolve away), no empty segment.
_ROUTE_PATH = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")
_MAX_ROUTE_PATH = 64


class FieldError(ValueError):
    """A cross-field error that knows which field to blame.

    Pydantic reports errors raised in model validators at the model's own
    location; users need the field. `errors.py` reads `loc` back out.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Tls(StrictModel):
    """How the certificate and its private key are obtained, and by whom."""

    mode: TlsMode = Field(
        "certbot-http01",
        description=(
            "certbot-http01: a certbot sidecar obtains the certificate by HTTP-01 through the edge (default). "
            "certbot-dns01: certbot by DNS-01 (needed for wildcards). "
            "edge-acme: Caddy/Traefik obtain it themselves; trade-off: the internet-facing edge then holds the key. "
            "internal: a local CA in the sidecar (LAN only, browsers must trust its root). "
            "files: bring your own certificate and key."
        ),
    )
    acme_directory: str | None = Field(
        None,
        description="ACME directory URL. Default: Let's Encrypt (or its staging with `staging: true`). Any URL for a private CA.",
    )
    staging: bool = Field(False, description="Use Let's Encrypt's staging directory (untrusted certificates, generous rate limits).")
    ca_bundle: str | None = Field(
        None,
        description="PEM file (relative to the stack directory) of CA certificates trusted for the ACME directory's TLS: "
        "a private CA such as step-ca or pebble.",
    )
    dns_provider: DnsProvider | None = Field(None, description="certbot DNS plugin for certbot-dns01 (those with an official certbot/dns-* image).")
    dns_credentials_file: str | None = Field(
        None,
        description="certbot-dns01: the DNS plugin's credentials file (mounted as a compose secret, never copied into compose.yaml). "
        "route53: an AWS shared credentials file (boto3 reads it; the plugin has no credentials option). "
        "certbot reads it as uid 0 without capabilities, so `generate` makes it root-owned, mode 0600 (when run as root; else it says how).",
    )
    cert_file: str | None = Field(None, description="files mode: PEM certificate chain.")
    key_file: str | None = Field(None, description="files mode: PEM private key.")
    renew_interval_hours: int = Field(12, ge=1, le=24, description="How often the sidecar checks for renewal.")

    @field_validator("acme_directory")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not _ACME_URL.fullmatch(value):
            raise ValueError("must be an https:// URL of letters, digits and . _ ~ % / + = , - (no quotes, spaces, $, {}, ;)")
        return value

    @field_validator("cert_file", "key_file", "ca_bundle", "dns_credentials_file")
    @classmethod
    def _safe_path(cls, value: str | None) -> str | None:
        if value is not None and not _SAFE_PATH.fullmatch(value):
            raise ValueError("a path of letters, digits and . _ / + @ - only (it reaches configuration files and scripts)")
        return value

    @model_validator(mode="after")
    def _mode_requirements(self) -> Self:
        if self.mode == "certbot-dns01" and (self.dns_provider is None or self.dns_credentials_file is None):
            missing = "dns_provider" if self.dns_provider is None else "dns_credentials_file"
            raise FieldError((missing,), "certbot-dns01 needs dns_provider and dns_credentials_file")
        if self.mode == "files" and (self.cert_file is None or self.key_file is None):
            raise FieldError(("cert_file" if self.cert_file is None else "key_file",), "files mode needs cert_file and key_file")
        if self.mode == "files":
            for name in ("cert_file", "key_file"):
                parent = posixpath.dirname(posixpath.normpath(getattr(self, name)))
                if parent in ("", ".", "/"):
                    raise FieldError(
                        (name,),
                        "must be inside a directory of its own, such as tls/fullchain.pem: the edge mounts that "
                        "directory read-only (a mounted single file never sees a renewal that replaces it), and "
                        "the stack directory or / must not be mounted into the edge",
                    )
        if self.mode != "files" and (self.cert_file or self.key_file):
            raise FieldError(("cert_file" if self.cert_file else "key_file",), "cert_file/key_file are only used in files mode")
        if self.staging and self.acme_directory is not None:
            raise FieldError(("staging",), "staging and acme_directory are exclusive: staging selects Let's Encrypt's staging directory")
        return self

    @property
    def directory_url(self) -> str:
        """The ACME directory actually used."""
        if self.acme_directory:
            return self.acme_directory
        return LETS_ENCRYPT_STAGING if self.staging else LETS_ENCRYPT

    @property
    def uses_certbot(self) -> bool:
        """True when the certbot sidecar talks to an ACME CA."""
        return self.mode in ("certbot-http01", "certbot-dns01")

    @property
    def uses_sidecar(self) -> bool:
        """True when a separate container (not the edge) writes the key."""
        return self.mode in ("certbot-http01", "certbot-dns01", "internal")


class Ports(StrictModel):
    """Where the edge listens on the host."""

    bind_address: str = Field("0.0.0.0", description="Host address the edge's ports are published on (0.0.0.0 = every interface).")
    http: int = Field(80, ge=1, le=65535, description="Host port for HTTP (redirects to HTTPS; serves the ACME challenge).")
    https: int = Field(443, ge=1, le=65535, description="Host port for HTTPS.")

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        if "%" in value:
            # Python accepts any text as an IPv6 scope (`fe80::1%$(id)`); Docker takes no scope in a port binding.
            raise ValueError(f"{value!r}: an address with a scope (%zone) cannot be a published port's host address")
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.http == self.https:
            raise FieldError(("https",), f"http and https cannot share port {self.http}")
        return self


def _image(value: str | None) -> str | None:
    if value is not None and not _IMAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not an image reference (name[:tag][@sha256:digest])")
    return value


class Images(StrictModel):
    """Image overrides per service: a tag or a digest. Unset means stackgen's pinned default."""

    node_red: str | None = Field(None, description="Node-RED image.")
    edge: str | None = Field(None, description="Edge image (Caddy, NGINX or Traefik, as `edge` says).")
    certbot: str | None = Field(None, description="Certificate sidecar image (certbot, or its DNS-plugin variant).")

    _check = field_validator("node_red", "edge", "certbot")(classmethod(lambda cls, v: _image(v)))


class BasicAuth(StrictModel):
    """A user name and a bcrypt hash, as Node-RED's httpNodeAuth takes them."""

    user: str = Field(..., description="User name.")
    password_hash: str = Field(..., description="bcrypt hash of the password (never the password itself).")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _USERNAME.fullmatch(value):
            raise ValueError("letters, digits and ._@- only, at most 64")
        return value

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not _BCRYPT.fullmatch(value):
            raise ValueError("must be a bcrypt hash ($2b$...)")
        return value


# Who may reach the editor by default: loopback, RFC 1918, the CGNAT range (Tailscale), IPv6 ULA.
PRIVATE_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
# Everyone: the two networks that open the editor to the internet.
EVERYONE = ("0.0.0.0/0", "::/0")
# At most this many networks: each becomes a line in the edge's config.
_MAX_ALLOW = 64


class Editor(StrictModel):
    """Node-RED's editor and admin API (httpAdminRoot): everything under `path`, and everything on `host`.

    The edge answers 403 to editor traffic from a client address outside `allow`; HTTP-in endpoints
    and the dashboard (httpNodeRoot, `/`) stay public.
    """

    enabled: bool = Field(True, description="Serve the flow editor and admin API. Off: flows are fixed, nothing can be authored remotely.")
    path: str = Field(
        "/editor",
        description="URL path of the editor and its admin API (httpAdminRoot: /editor/flows, /editor/comms, /editor/auth/...). "
        "The edge matches this one prefix. `/` makes the whole site the editor's: then nothing is public.",
    )
    allow: list[str] = Field(
        default_factory=lambda: list(PRIVATE_NETWORKS),
        description="Client networks (CIDR, IPv4 or IPv6) that may reach the editor and admin API; others get 403 from the edge. "
        "Default: private and VPN ranges only (loopback, RFC 1918, 100.64.0.0/10 as Tailscale uses, fc00::/7). "
        "[0.0.0.0/0, ::/0] opens the editor to everyone (the password is then its only guard).",
    )
    host: str | None = Field(
        None,
        description="A host name that is the editor's alone: every request to it is editor traffic (held to `allow`). "
        "Must be one of `domains`, or a name a wildcard in `domains` covers (the certificate must cover it).",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _EDITOR_PATH.fullmatch(value):
            raise ValueError("must be an absolute URL path such as /editor or /admin")
        return value

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("an empty list locks everyone out of the editor: set enabled: false instead")
        if len(value) > _MAX_ALLOW:
            raise ValueError(f"at most {_MAX_ALLOW} networks")
        cleaned: list[str] = []
        for raw in value:
            # Digits, hex, `:`, `.` and `/` only (fullmatch): no scope (%eth0), no space, nothing a config reads as syntax.
            if not re.fullmatch(r"[0-9A-Fa-f:./]+", raw):
                raise ValueError(f"{raw!r} is not a network such as 192.168.0.0/16 or fd00::/8")
            try:
                network = ipaddress.ip_network(raw, strict=False)  # 10.1.2.3/8 is 10.0.0.0/8; a bare address is /32 or /128
            except ValueError:
                raise ValueError(f"{raw!r} is not a network such as 192.168.0.0/16 or fd00::/8") from None
            if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
                raise ValueError(f"{raw!r}: write IPv4-mapped networks as IPv4 (the edges see IPv4 clients as IPv4)")
            name = str(network)
            if name in cleaned:
                raise ValueError(f"{raw!r}: duplicate network ({name})")
            cleaned.append(name)
        return cleaned

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().lower().rstrip(".")
        if len(name) > 253 or name.startswith("*.") or not _HOSTNAME.fullmatch(name) or _is_ip_like(name):
            raise ValueError(f"{value!r} is not a host name (no wildcard, no IP address)")
        return name

    @property
    def open_to_everyone(self) -> bool:
        """True when `allow` holds all of IPv4 and all of IPv6."""
        return all(net in self.allow for net in EVERYONE)


class LoginShield(StrictModel):
    """The login shield (docs/shield.md): failed logins counted per client address, in Node-RED, from the
    address the edge asserts; after `attempts` failures within `window_seconds`, that address's login attempts
    get 429 for `ban_seconds`. Only login attempts are refused; other addresses are never affected."""

    enabled: bool = Field(True, description="Count failed logins per client address and ban addresses that guess.")
    attempts: int = Field(5, ge=1, le=100, description="Failed logins from one address (IPv6: one /64) that start a ban.")
    window_seconds: int = Field(600, ge=10, le=86400, description="The failures counted are those of the last this many seconds.")
    ban_seconds: int = Field(900, ge=10, le=604800, description="How long a banned address's login attempts get 429.")
    max_clients: int = Field(10000, ge=100, le=1000000, description="Addresses remembered at most (the table is bounded; the oldest go first).")


class NodeRed(StrictModel):
    """The Node-RED service: the weakest part, so the most constrained."""

    version: str | None = Field(
        None,
        description="Node-RED version (image tag of the default image). Unset: the version stackgen pins for the platform "
        "(Node-RED 5 publishes no 32-bit ARM image, so linux/arm/v7 gets the newest 4.1.x).",
    )
    admin_user: str = Field("admin", description="Editor/admin API user name.")
    admin_password_hash: str = Field(..., description="bcrypt hash of the admin password. `stackgen init` makes it; the password is never stored.")
    credential_secret_file: str = Field(
        "secrets/node_red_credential_secret",
        description="File holding Node-RED's credentialSecret (encrypts flow credentials). Created with mode 0600 when missing; "
        "reaches the container as a compose secret.",
    )
    http_node_auth: BasicAuth | None = Field(None, description="Basic auth in front of HTTP-in nodes and the dashboard (httpNodeAuth).")
    editor: Editor = Field(default_factory=Editor, description="The flow editor.")
    extra_nodes: list[str] = Field(
        default_factory=list,
        description="Extra npm node packages, baked into a custom image by `stackgen build` (a read-only Node-RED cannot install at run time).",
    )
    base_image: str | None = Field(
        None,
        description="Image `stackgen build` starts FROM (default: the official Node-RED image for the platform). "
        "The built image is written to images.node_red.",
    )
    egress: bool = Field(
        False,
        description="Let Node-RED open connections to the outside (an egress-only network nobody else joins). Default: no route out at all.",
    )
    memory_limit: str | None = Field(None, description="Memory limit such as 512m. Default depends on platform.")
    pids_limit: int = Field(256, ge=32, le=32768, description="Maximum processes/threads.")
    login_shield: LoginShield = Field(
        default_factory=LoginShield,
        description="Failed logins (editor, and HTTP-in basic auth) limited per client address: 429 with Retry-After after a few.",
    )

    @property
    def route_prefix(self) -> str:
        """The URL path prefix it is served under: '' (the root of its host names); a path-routed instance's `path`."""
        return ""

    @property
    def editor_root(self) -> str:
        """The editor's URL path (Node-RED's httpAdminRoot): `editor.path` under the route prefix (`/lab` + `/editor`;
        the editor at `/` of a path-routed instance is its whole prefix, `/lab`)."""
        if not self.route_prefix:
            return self.editor.path
        return (self.route_prefix + self.editor.path).rstrip("/")

    @property
    def node_root(self) -> str:
        """Node-RED's httpNodeRoot: HTTP-in endpoints and the dashboard, `/` or the route prefix (`/lab/`)."""
        return self.route_prefix + "/"

    @field_validator("credential_secret_file")
    @classmethod
    def _secret_path(cls, value: str) -> str:
        # It reaches compose.yaml, where Compose would interpolate a `$`.
        if not _SAFE_PATH.fullmatch(value):
            raise ValueError("a path of letters, digits and . _ / + @ - only (it reaches compose.yaml)")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.fullmatch(value):
            raise ValueError("must be a version such as 5.0.7")
        return value

    @field_validator("base_image")
    @classmethod
    def _base_image(cls, value: str | None) -> str | None:
        return _image(value)

    @field_validator("admin_user")
    @classmethod
    def _admin_user(cls, value: str) -> str:
        if not _USERNAME.fullmatch(value):
            raise ValueError("letters, digits and ._@- only, at most 64")
        return value

    @field_validator("admin_password_hash")
    @classmethod
    def _admin_hash(cls, value: str) -> str:
        if not _BCRYPT.fullmatch(value):
            raise ValueError("must be a bcrypt hash ($2b$...); `stackgen init` makes one from the password")
        return value

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE.fullmatch(value):
            raise ValueError("must be a size such as 512m or 1g")
        return value

    @field_validator("extra_nodes")
    @classmethod
    def _nodes(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _NPM_PACKAGE.fullmatch(name):
                raise ValueError(f"{name!r} is not an npm package name")
        if len(set(value)) != len(value):
            raise ValueError("duplicate packages")
        return value


# Several Node-RED instances (format version 2). The instance a version 1 file describes is named `node-red`,
# and keeps the names such a stack always had (service node-red, network internal, volume node-red-data).
DEFAULT_INSTANCE = "node-red"
MAX_INSTANCES = 32
# A Compose service, network, volume and secret name, a directory and an NGINX variable (with - as _) once
# prefixed: lowercase letters and digits in words joined by single hyphens, at most 24.
_INSTANCE_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def instance_service(name: str) -> str:
    """The Compose service (and configuration directory) of the instance called `name`."""
    return DEFAULT_INSTANCE if name == DEFAULT_INSTANCE else f"{DEFAULT_INSTANCE}-{name}"


class Instance(NodeRed):
    """One Node-RED of several: the `node_red` settings, plus a name, the host names routed to it and its image.

    Each instance gets its own internal network shared only with the edge, its own data volume, credential
    secret and admin password: no instance can reach another."""

    name: str = Field(
        ...,
        description="Instance name: lowercase letters and digits, words joined by single hyphens (at most 24). Its service is "
        "`node-red-<name>` (`node-red` keeps the names of a one-instance stack), its volume `<service>-data`, its network `internal-<name>`.",
    )
    domains: list[str] = Field(
        ..., min_length=1,
        description="Host names the edge routes to this instance (no wildcard; no name of another instance). "
        "Each must be one of the stack's `domains` or covered by a wildcard there: the one certificate covers them all.",
    )
    path: str | None = Field(
        None,
        description="A URL path prefix such as /lab: the instance is served under it on each of its host names (editor at "
        "<path><editor.path>, HTTP-in endpoints and dashboard under <path>/), so several instances can share one host name. "
        "Node-RED knows it (httpAdminRoot, httpNodeRoot), the edge passes paths through unchanged. Unset: the root of its host "
        "names, which one instance at most may own per host name. Prefixes on one host name must not nest. Matched without "
        "regard to case. Instances on one host name share a browser origin: see the README.",
    )
    image: str | None = Field(
        None, description="Image override for this instance (what `images.node_red` is to a one-instance stack). Unset: the official image of `version`.",
    )
    credential_secret_file: str = Field(
        "secrets/node_red_credential_secret",
        description="File holding this instance's credentialSecret. Default: secrets/<service with _>_credential_secret "
        "(secrets/node_red_<name>_credential_secret); no two instances share one.",
    )

    @model_validator(mode="before")
    @classmethod
    def _secret_default(cls, data: object) -> object:
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str) and _INSTANCE_NAME.fullmatch(name) and "credential_secret_file" not in data:  # else `name` is blamed
            data = {**data, "credential_secret_file": "secrets/" + instance_service(data["name"]).replace("-", "_") + "_credential_secret"}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 24 or not _INSTANCE_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: lowercase letters and digits, words joined by single hyphens, starting with a letter, at most 24")
        return value

    @field_validator("domains")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        cleaned = []
        for raw in value:
            name = raw.strip().lower().rstrip(".")
            if name.startswith("*."):
                raise ValueError(f"{raw!r}: an instance's host names are exact names (a wildcard belongs in the stack's domains, the certificate)")
            if len(name) > 253 or not _HOSTNAME.fullmatch(name) or _is_ip_like(name):
                raise ValueError(f"{raw!r} is not a valid host name")
            cleaned.append(name)
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("duplicate domain")
        return cleaned

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return _image(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = value[:-1] if value.endswith("/") and value != "/" else value
        if cleaned == "/":
            raise ValueError("`/` is the root of the host names: leave path out for that")
        if len(cleaned) > _MAX_ROUTE_PATH or not _ROUTE_PATH.fullmatch(cleaned):
            raise ValueError(f"{value!r} is not a path prefix such as /lab: segments of letters, digits and . _ ~ - "
                             f"(none starting with a dot), at most {_MAX_ROUTE_PATH} characters")
        return cleaned.lower()  # the edges match it without regard to case, as Node-RED does: one spelling

    @property
    def route_prefix(self) -> str:
        return self.path or ""

    @property
    def service(self) -> str:
        return instance_service(self.name)

    @property
    def is_default(self) -> bool:
        """The instance of a one-instance stack keeps that stack's names."""
        return self.name == DEFAULT_INSTANCE

    @property
    def data_volume(self) -> str:
        return f"{self.service}-data"

    @property
    def secret_name(self) -> str:
        """The compose secret (always mounted as /run/secrets/node_red_credential_secret inside)."""
        return self.service.replace("-", "_") + "_credential_secret"

    @property
    def internal_network(self) -> str:
        return "internal" if self.is_default else f"internal-{self.name}"

    @property
    def egress_network(self) -> str:
        return "egress" if self.is_default else f"egress-{self.name}"

    @property
    def hosts(self) -> list[str]:
        """Every host name routed to this instance: its domains, and its editor's host."""
        extra = self.editor.host
        return list(self.domains) + ([extra] if extra and extra not in self.domains else [])


class Logging(StrictModel):
    """Container log rotation (json-file). Unset values depend on platform: SD cards wear out."""

    max_size: str | None = Field(None, description="Size of one log file before rotation, such as 10m.")
    max_files: int | None = Field(None, ge=1, le=20, description="Rotated files kept per container.")

    @field_validator("max_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE.fullmatch(value):
            raise ValueError("must be a size such as 10m")
        return value


class Stack(StrictModel):
    """A Node-RED stack: Node-RED behind an edge, with a certificate sidecar."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        json_schema_extra={"$id": "https://stackgen.dev/schema/stack-v1.json", "title": "stackgen stack.yaml"},
    )

    version: Literal[1, 2] = Field(
        SPEC_VERSION,
        description="Version of this file's format: 1, one Node-RED (`node_red`); 2, several (`instances`).",
    )
    project: str = Field(..., description="Compose project name (lowercase letters, digits, - and _).")
    domains: list[str] = Field(
        ..., min_length=1,
        description="Host names the edge serves; the first names the certificate, which covers them all. With `instances`, "
        "every instance's host names must be here (or under a wildcard here), and every name here belongs to an instance.",
    )
    email: str = Field(..., description="ACME account e-mail (expiry notices).")
    edge: Edge = Field("caddy", description="The edge proxy: the only published service.")
    tls: Tls = Field(default_factory=Tls, description="Certificates.")
    ports: Ports = Field(default_factory=Ports, description="Published ports of the edge.")
    platform: Platform = Field("linux/amd64", description="Target platform (Raspberry Pi: linux/arm64 or linux/arm/v7).")
    images: Images = Field(default_factory=Images, description="Image overrides.")
    node_red: NodeRed | None = Field(None, description="Node-RED (version 1: the stack's one instance). Required in version 1.")
    instances: list[Instance] | None = Field(
        None, min_length=1, max_length=MAX_INSTANCES,
        description="Version 2: several Node-RED instances behind the one edge and certificate, each isolated from the others. "
        "Required in version 2 (instead of `node_red`).",
    )
    timezone: str = Field("Etc/UTC", description="TZ of the containers.")
    logging: Logging = Field(default_factory=Logging, description="Log rotation.")
    target: Target = Field(
        "compose",
        description="Where the stack runs. compose: compose.yaml (`stackgen up`). swarm: compose.yaml and compose.swarm.yaml, "
        "a stack file for `docker stack deploy` (docs/swarm.md says what Swarm cannot express). "
        "`stackgen generate --target` overrides it for one run.",
    )

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: object) -> object:
        if value not in TARGETS:
            raise ValueError(f"{value!r} is not a target: compose (compose.yaml) or swarm (compose.swarm.yaml, for docker stack deploy)")
        return value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _PROJECT.fullmatch(value):
            raise ValueError("lowercase letters, digits, - and _, starting with a letter or digit")
        return value

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        cleaned = []
        for raw in value:
            name = raw.strip().lower().rstrip(".")
            if len(name) > 253 or not _HOSTNAME.fullmatch(name):
                raise ValueError(f"{raw!r} is not a valid host name")
            if _is_ip_like(name):
                raise ValueError(f"{raw!r} is an IP address, not a host name")
            cleaned.append(name)
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("duplicate domain")
        return cleaned

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError(f"{value!r} is not an e-mail address stackgen accepts (letters, digits and . _ % + - before the @, a host name after it)")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if not _TIMEZONE.fullmatch(value):
            raise ValueError(f"{value!r} is not a time zone name such as Europe/Berlin")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Self:
        """Version 1 has `node_red`, version 2 `instances`: each refuses the other's key, naming it."""
        if self.version == 1:
            if self.instances is not None:
                raise FieldError(("instances",), "several Node-RED instances need `version: 2` (a version 1 file has `node_red`)")
            if self.node_red is None:
                raise FieldError(("node_red",), "required (or, with version: 2, `instances`)")
        else:
            if self.node_red is not None:
                raise FieldError(("node_red",), "version 2 lists `instances` (each holds these settings); it has no `node_red`")
            if self.instances is None:
                raise FieldError(("instances",), "required with version: 2 (a list of Node-RED instances)")
            if self.images.node_red is not None:
                raise FieldError(("images", "node_red"), "version 2: each instance has its own image (instances[].image)")
        return self

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        wildcard = [d for d in self.domains if d.startswith("*.")]
        if wildcard and self.tls.mode not in ("certbot-dns01", "files"):
            where = ("domains", self.domains.index(wildcard[0]))
            raise FieldError(where, f"wildcard domain {wildcard[0]} needs tls.mode certbot-dns01 (HTTP-01 cannot prove a wildcard)")
        for where, node_red, image in self._node_red_settings():
            if node_red.version and not image:
                major = int(node_red.version.split(".", 1)[0])
                contract = load_contract("node-red")
                platforms = contract.platforms_of_major(major)
                if platforms is not None and not contract.major_runs_on(major, self.platform):
                    newest = load_contract("node-red").tag_for(self.platform).tag
                    raise FieldError(
                        (*where, "version"),
                        f"Node-RED {major}.x publishes no {self.platform} image (only {', '.join(sorted(platforms))}); "
                        f"use {newest} or leave version unset",
                    )
            editor_host = node_red.editor.host
            if editor_host is not None and not any(_covers(d, editor_host) for d in self.domains):
                raise FieldError(
                    (*where, "editor", "host"),
                    f"{editor_host} is not one of domains, nor covered by a wildcard in domains: the certificate would not cover it",
                )
        if self.instances is not None:
            self._check_instances(self.instances)
        if self.tls.mode == "edge-acme" and self.edge == "nginx":
            raise FieldError(("tls", "mode"), "edge-acme needs an edge with a built-in ACME client (caddy or traefik); nginx has none")
        return self

    @property
    def cert_name(self) -> str:
        """certbot's lineage name: the first domain without a wildcard prefix."""
        return self.domains[0].removeprefix("*.")

    def _node_red_settings(self) -> list[tuple[tuple[str | int, ...], NodeRed, str | None]]:
        """(where in the file, settings, image override) of each Node-RED."""
        if self.instances is not None:
            return [(("instances", i), inst, inst.image) for i, inst in enumerate(self.instances)]
        return [(("node_red",), self.node_red, self.images.node_red)] if self.node_red is not None else []

    def _check_instances(self, instances: list[Instance]) -> None:
        """Names and secrets each belong to one instance. Host names: one instance at most owns the root of each, others
        share it under prefixes that do not nest (nor hold the root owner's editor); an editor host is its instance's
        alone. The certificate covers every host name, and every name it is for reaches an instance."""
        routed: dict[str, list[int]] = {}  # host name -> the instances served on it
        editor_hosts: dict[str, int] = {}
        seen_names: set[str] = set()
        seen_secrets: dict[str, str] = {}
        for i, inst in enumerate(instances):
            if inst.name in seen_names:
                raise FieldError(("instances", i, "name"), f"duplicate instance name {inst.name!r}")
            seen_names.add(inst.name)
            if inst.credential_secret_file in seen_secrets:
                raise FieldError(("instances", i, "credential_secret_file"),
                                 f"{inst.credential_secret_file} is already instance {seen_secrets[inst.credential_secret_file]}'s: "
                                 "each instance has its own credential secret")
            seen_secrets[inst.credential_secret_file] = inst.name
            fields: list[tuple[tuple[str | int, ...], str]] = [(("instances", i, "domains", j), h) for j, h in enumerate(inst.domains)]
            if inst.editor.host is not None:
                fields.append((("instances", i, "editor", "host"), inst.editor.host))
            for where, host in fields:
                others = [k for k in routed.get(host, []) if k != i]
                if host in editor_hosts and editor_hosts[host] != i:
                    raise FieldError(where, f"{host} already routes to instance {instances[editor_hosts[host]].name!r} (its editor host, "
                                            "all of it editor traffic)")
                if where[2] == "editor" and others:
                    raise FieldError(where, f"{host} already routes to instance {instances[others[0]].name!r}: an editor host "
                                            "is its instance's alone")
                if where[2] == "editor" and host in inst.domains:
                    continue  # one of its own names, checked as such
                for k in others:
                    _check_shared_host(instances, host, i, k, where)
                if where[2] == "domains" and not any(_covers(d, host) for d in self.domains):
                    raise FieldError(where, f"{host} is not one of the stack's domains, nor covered by a wildcard there: "
                                            "the certificate would not cover it (add it to domains)")
                routed.setdefault(host, []).append(i)
            if inst.editor.host is not None:
                editor_hosts[inst.editor.host] = i
        for k, domain in enumerate(self.domains):
            if not domain.startswith("*.") and domain not in routed:
                raise FieldError(("domains", k), f"{domain} routes to no instance: add it to an instance's domains, or remove it")

    @property
    def node_reds(self) -> list[Instance]:
        """Every Node-RED of the stack: `instances`, or (version 1) `node_red` as the instance named node-red, serving every domain."""
        if self.instances is not None:
            return list(self.instances)
        assert self.node_red is not None, "validated: version 1 has node_red"
        if isinstance(self.node_red, Instance):  # a view (`view`): that instance
            return [self.node_red]
        return [Instance.model_construct(**dict(self.node_red), name=DEFAULT_INSTANCE, domains=list(self.domains), image=self.images.node_red)]

    def view(self, instance: Instance) -> Stack:
        """This stack as a version 1 stack of `instance` alone: what its settings.js and its service are rendered from
        (a copy, not validated again: every part of it already was)."""
        images = self.images.model_copy(update={"node_red": instance.image})
        return self.model_copy(update={"version": 1, "instances": None, "node_red": instance, "images": images})


def _nested(a: str, b: str) -> bool:
    """True when path prefixes `a` and `b` (lowercase, no trailing slash) are one, or one holds the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _check_shared_host(instances: list[Instance], host: str, i: int, k: int, where: tuple[str | int, ...]) -> None:
    """Instance `i` joins instance `k` on `host`: one of them at most at the root, prefixes that do not nest, and no
    prefix over the root owner's editor (its paths are that Node-RED's own: they would stop reaching it)."""
    inst, other = instances[i], instances[k]
    if not inst.path and not other.path:
        raise FieldError(where, f"{host} already routes to instance {other.name!r} (at its root): give one of them a `path` "
                                "to share the host name")
    if inst.path and other.path and _nested(inst.path, other.path):
        raise FieldError(("instances", i, "path"), f"{inst.path} on {host} overlaps {other.path} of instance {other.name!r}: "
                                                   "the prefixes on one host name must not nest")
    root, prefixed, blame = (other, inst, i) if inst.path else (inst, other, k)
    editor = root.editor.path.lower()
    if root.editor.enabled and editor != "/" and prefixed.path and _nested(prefixed.path, editor):
        raise FieldError(("instances", blame, "path"), f"{prefixed.path} on {host} overlaps the editor of instance {root.name!r} "
                                                       f"({root.editor.path}): its paths would no longer reach it")


def _covers(domain: str, name: str) -> bool:
    """True when a certificate for `domain` (a name or `*.` one label) covers `name`."""
    if domain.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == domain[2:]
    return domain == name


def _is_ip_like(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return all(part.isdigit() for part in name.split("."))
