"""One Node-RED's settings (`NodeRed`: what `node_red` holds in a version 1 file, and every instance of version 2):
its admin user, the editor and its gate (`Editor`), the login shield, basic auth in front of its endpoints, hardening."""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator

from stackgen.spec.base import (
    _BCRYPT,
    _EDITOR_PATH,
    _HOSTNAME,
    _NPM_PACKAGE,
    _SAFE_PATH,
    _SIZE,
    _USERNAME,
    _VERSION,
    StrictModel,
    _image,
    _is_ip_like,
)


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
# The words `init --editor-allow` and `instance add --editor-allow` take besides CIDRs.
ALLOW_WORDS = {"private": PRIVATE_NETWORKS, "everyone": EVERYONE}


def allow_networks(values: list[str]) -> list[str]:
    """--editor-allow values (each may list several, comma- or space-separated): CIDRs, or the words `private` and
    `everyone`; the CIDRs are validated where they land (`Editor.allow`), naming the field."""
    networks: list[str] = []
    for value in values:
        for part in (p for p in re.split(r"[,\s]+", value) if p):
            networks.extend(ALLOW_WORDS.get(part.lower(), (part,)))
    return networks


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
