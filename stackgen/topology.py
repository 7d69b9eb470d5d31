"""The normalised model every rule judges: services, networks, volumes, mounts, ports.

Why this shape: a declared stack (compose files) and a running stack (the
engine) must end up in the *same* model so one set of rules judges both. So
nothing here knows about YAML: positions (`Source`) are optional on every
field, filled by the compose loader and left empty by an engine loader.
Plain dataclasses, not pydantic: `stackgen verify` must start fast.

Loaders: `stackgen.composefile.loader.load_compose` (files -> Topology). A loader
from `docker inspect` output builds the same classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

__all__ = [
    "Source",
    "Role",
    "Port",
    "Mount",
    "Tmpfs",
    "Device",
    "Healthcheck",
    "Logging",
    "Suppression",
    "NodeRedSettings",
    "Service",
    "Network",
    "Volume",
    "Topology",
    "normalise_cap",
    "image_parts",
]


class Source(NamedTuple):
    """Where something was written: file and 1-based line and column."""

    file: str
    line: int
    col: int = 1


class Role(str, Enum):
    """What a service is in stackgen's security model."""

    NODE_RED = "node-red"
    EDGE = "edge"
    CERTBOT = "certbot"  # the certificate writer: the only service that writes the key volume
    DATABASE = "database"  # a data store: never the edge, whatever the network shape says
    OTHER = "other"


_ROLE_ALIASES = {
    "node-red": Role.NODE_RED,
    "nodered": Role.NODE_RED,
    "node_red": Role.NODE_RED,
    "edge": Role.EDGE,
    "proxy": Role.EDGE,
    "reverse-proxy": Role.EDGE,
    "certbot": Role.CERTBOT,
    "cert-writer": Role.CERTBOT,
    "certificate-writer": Role.CERTBOT,
    "acme": Role.CERTBOT,
    "database": Role.DATABASE,
    "db": Role.DATABASE,
    "other": Role.OTHER,
}


def parse_role(value: object) -> Role | None:
    """A role name (or alias) -> Role; None when it is not one we know."""
    if not isinstance(value, str):
        return None
    return _ROLE_ALIASES.get(value.strip().lower())


@dataclass(slots=True)
class Port:
    """One published port: `host_ip:published -> target/protocol`."""

    target: int | None
    published: str | None  # None or "": a random host port, still published
    host_ip: str | None
    protocol: str = "tcp"
    src: Source | None = None

    @property
    def all_interfaces(self) -> bool:
        """True when the port listens on every host interface (no or wildcard host_ip)."""
        return self.host_ip in (None, "", "0.0.0.0", "::", "[::]")

    @property
    def host_port(self) -> int | None:
        """The first host port number, when fixed."""
        if not self.published:
            return None
        try:
            return int(str(self.published).split("-", 1)[0])
        except ValueError:
            return None

    def describe(self) -> str:
        host = f"{self.host_ip}:" if self.host_ip else ""
        published = self.published or "(random)"
        return f"{host}{published}->{self.target}/{self.protocol}"


@dataclass(slots=True)
class Mount:
    """A volume, bind mount or tmpfs mount inside a container."""

    type: str  # "volume" | "bind" | "tmpfs" | "npipe" | "image" | "cluster"
    source: str | None  # volume key (compose name) or absolute host path
    target: str
    read_only: bool = False
    propagation: str | None = None
    src: Source | None = None

    @property
    def is_bind(self) -> bool:
        return self.type == "bind"

    @property
    def is_volume(self) -> bool:
        return self.type == "volume" and bool(self.source)


@dataclass(slots=True)
class Tmpfs:
    """A `tmpfs:` entry with its mount options (`/tmp:exec,size=1m`)."""

    target: str
    options: tuple[str, ...] = ()
    src: Source | None = None


@dataclass(slots=True)
class Device:
    """A host device mapped into the container."""

    source: str
    target: str
    permissions: str = "rwm"
    src: Source | None = None


@dataclass(slots=True)
class Healthcheck:
    """The service's healthcheck; `disabled` for `disable: true` or `test: [NONE]`."""

    test: tuple[str, ...] = ()
    disabled: bool = False
    src: Source | None = None


@dataclass(slots=True)
class Logging:
    """The logging driver and its options."""

    driver: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    src: Source | None = None


@dataclass(slots=True)
class Suppression:
    """A rule switched off, always with a reason: where it came from and why."""

    rule: str
    reason: str
    scope: str  # "service" | "file" | "cli"
    service: str | None = None  # None: every service
    src: Source | None = None


@dataclass(slots=True)
class NodeRedSettings:
    """What a Node-RED service's settings.js says about its editor, as far as a loader could read it.

    `path` is the file inside the container (`--settings`, else the user directory's settings.js);
    `host_file` the host file it is bind-mounted from (named as findings name files), when known.
    `admin_auth` is None when the file was not read (in a volume or the image, outside the project,
    missing): unknown, not absent."""

    path: str
    host_file: str | None = None
    admin_auth: bool | None = None  # an uncommented `adminAuth` key with a value (not null/false)
    admin_root: str | None = None  # where the editor and admin API are served (`httpAdminRoot`, "/" by default)
    editor_off: bool = False  # `httpAdminRoot: false`: no editor and no admin API at all
    src: Source | None = None  # where adminAuth is set, when it is


@dataclass(slots=True)
class Service:
    """One service (container), normalised; every field in one canonical form."""

    name: str
    image: str | None = None
    build: bool = False
    role: Role = Role.OTHER
    role_from: str = "none"  # the evidence (`Evidence`: its kind, e.g. "image", with a `reason` for people)
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    group_add: tuple[str, ...] = ()
    privileged: bool = False
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    network_mode: str | None = None
    networks: tuple[str, ...] = ()  # network keys, as in the compose file
    ports: list[Port] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    tmpfs: list[Tmpfs] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    userns_mode: str | None = None
    cgroup: str | None = None
    cgroup_parent: str | None = None
    healthcheck: Healthcheck | None = None
    restart: str | None = None
    mem_limit: int | None = None  # bytes
    cpus: float | None = None
    pids_limit: int | None = None
    logging: Logging | None = None
    secrets: tuple[tuple[str, str], ...] = ()  # (secret name, target path)
    environment: dict[str, str | None] = field(default_factory=dict)
    env_src: dict[str, Source] = field(default_factory=dict)
    use_api_socket: bool = False
    node_red_settings: NodeRedSettings | None = None  # Node-RED only; filled by the compose loader
    extensions: dict[str, Any] = field(default_factory=dict)
    suppressions: list[Suppression] = field(default_factory=list)
    src: Source | None = None  # where the service is defined
    fields: dict[str, Source] = field(default_factory=dict)  # where each key is

    def at(self, *names: str) -> Source | None:
        """Position of the first of `names` that is set, else of the service itself."""
        for name in names:
            if name in self.fields:
                return self.fields[name]
        return self.src

    @property
    def role_reason(self) -> str:
        """Why the service has its role, for a person (`image nodered/node-red`)."""
        return getattr(self.role_from, "reason", None) or str(self.role_from)

    @property
    def image_name(self) -> str:
        """Repository path without registry, tag or digest (`nodered/node-red`)."""
        return image_parts(self.image or "")[1]


@dataclass(slots=True)
class Network:
    """A network: `internal` ones have no route outside the host."""

    key: str
    name: str
    internal: bool = False
    external: bool = False
    driver: str | None = None
    src: Source | None = None


@dataclass(slots=True)
class Volume:
    """A named volume."""

    key: str
    name: str
    external: bool = False
    driver: str | None = None
    driver_opts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    src: Source | None = None


@dataclass(slots=True)
class Topology:
    """The whole stack: what runs, on which networks, with which storage."""

    services: dict[str, Service] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    project: str | None = None
    files: tuple[str, ...] = ()
    suppressions: list[Suppression] = field(default_factory=list)  # file-level
    # What the file needs from elsewhere (a required variable, an external network it does not
    # declare): (message, where). Judged anyway; reported by SG043.
    missing_context: list[tuple[str, Source | None]] = field(default_factory=list)
    origin: str = "compose"  # "compose" | "engine"
    # For a running stack: what the compose file declares, so drift rules (SG2xx) can compare.
    declared: Topology | None = None

    # --- graph helpers, shared by the topology rules ---

    def members(self, network: str) -> list[Service]:
        """Services attached to `network` (by key)."""
        return [s for s in self.services.values() if network in s.networks]

    def is_internal(self, network: str) -> bool:
        net = self.networks.get(network)
        return bool(net and net.internal)

    def shared_networks(self, a: Service, b: Service) -> set[str]:
        return set(a.networks) & set(b.networks)

    def by_role(self, role: Role) -> list[Service]:
        return [s for s in self.services.values() if s.role is role]

    def mounts_of_volume(self, volume: str) -> Iterator[tuple[Service, Mount]]:
        for svc in self.services.values():
            for m in svc.mounts:
                if m.is_volume and m.source == volume:
                    yield svc, m


# --- helpers shared by loaders ------------------------------------------------


def image_parts(image: str) -> tuple[str | None, str, str | None, str | None]:
    """Split `registry/path:tag@digest` into (registry, path, tag, digest)."""
    digest = None
    at = image.rfind("@")
    if at >= 0 and ":" in image[at:]:
        digest = image[at + 1 :]
        image = image[:at]
    registry = None
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, image = first, rest
    tag = None
    name, colon, maybe_tag = image.rpartition(":")
    if colon and "/" not in maybe_tag:
        image, tag = name, maybe_tag
    if registry is None or registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        image = image.removeprefix("library/")
    return registry, image, tag, digest


def normalise_cap(cap: object) -> str:
    """`cap_sys_admin` / `CAP_SYS_ADMIN` / `SYS_ADMIN` -> `SYS_ADMIN`."""
    text = str(cap).strip().upper()
    return text if text == "ALL" else text.removeprefix("CAP_")
