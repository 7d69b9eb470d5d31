"""The normalised model every rule judges: services, networks, volumes, mounts, ports.

Why this shape: a declared stack (compose files) and a running stack (the
engine) must end up in the *same* model so one set of rules judges both. So
nothing here knows about YAML: positions (`Source`) are optional on every
field, filled by the compose loader and left empty by an engine loader.
Plain dataclasses, not pydantic: `stackgen verify` must start fast.

Loaders: `stackgen.compose_loader.load_compose` (files -> Topology). A loader
from `docker inspect` output builds the same classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
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
    "Service",
    "Network",
    "Volume",
    "Topology",
    "infer_role",
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
    OTHER = "other"


ROLE_LABEL = "org.stackgen.role"
UPSTREAM_LABEL = "org.stackgen.upstream"

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
class Service:
    """One service (container), normalised; every field in one canonical form."""

    name: str
    image: str | None = None
    build: bool = False
    role: Role = Role.OTHER
    role_from: str = "none"  # "x-stackgen" | "label" | "image" | "mounts" | "none"
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


_EDGE_IMAGES = {
    "caddy",
    "traefik",
    "nginx",
    "nginx-unprivileged",
    "openresty",
    "haproxy",
    "envoy",
    "nginx-proxy",
    "nginx-proxy-manager",
    "caddy-docker-proxy",
    "swag",
}
_CERTBOT_IMAGES = {"certbot", "acme.sh", "lego"}
CERT_DIRS = ("/etc/letsencrypt", "/etc/acme", "/acme.sh", "/etc/lego", "/.lego")


_NODE_RED_WORDS = ("node-red", "nodered", "node_red")
_EDGE_NAMES = {"edge", "proxy", "reverse-proxy", "reverse_proxy", "reverseproxy", "rproxy", "caddy", "nginx",
               "traefik", "haproxy", "gateway", "ingress"}
NODE_RED_PORT = 1880


def infer_role(
    image: str | None,
    labels: Mapping[str, str],
    declared: object = None,
    mounts: Iterable[Mount] = (),
    *,
    name: str | None = None,
    build: str | None = None,
    command: str | None = None,
    ports: Iterable[int] = (),
) -> tuple[Role, str]:
    """A service's role and what told us, strongest evidence first: x-stackgen, labels, the image, then
    what a locally built or renamed service still shows (its build context, command, Node-RED's port
    1880, its name), then a writable certificate directory. The stack's shape adds one more (an only
    publisher bridging into internal networks is the edge: `assign_topology_roles`)."""
    role = parse_role(declared)
    if role:
        return role, "x-stackgen"
    role = parse_role(labels.get(ROLE_LABEL))
    if role:
        return role, "label"
    if image:
        _, path, _, _ = image_parts(image)
        parts = path.lower().split("/")
        last = parts[-1]
        if "node-red" in last or "nodered" in path.lower():
            return Role.NODE_RED, "image"
        if last in _CERTBOT_IMAGES or (len(parts) > 1 and parts[-2] == "certbot"):
            return Role.CERTBOT, "image"
        if last in _EDGE_IMAGES:
            return Role.EDGE, "image"
    built = (build or "").lower()
    if any(w in built for w in _NODE_RED_WORDS):
        return Role.NODE_RED, "build"
    if command and ("red.js" in command or any(w in command.lower() for w in _NODE_RED_WORDS)):
        return Role.NODE_RED, "command"
    if NODE_RED_PORT in set(ports):
        return Role.NODE_RED, "port 1880"
    lowered = (name or "").lower()
    if any(w in lowered for w in _NODE_RED_WORDS):
        return Role.NODE_RED, "name"
    for m in mounts:
        if not m.read_only and m.target.rstrip("/") in CERT_DIRS:
            return Role.CERTBOT, "mounts"
    if lowered in _EDGE_NAMES or any(w in built for w in ("nginx", "caddy", "traefik", "haproxy")):
        return Role.EDGE, "name" if lowered in _EDGE_NAMES else "build"
    return Role.OTHER, "none"


def assign_topology_roles(topo: Topology) -> None:
    """A stack's only publisher that also sits on an internal network is its edge, whatever its image:
    that is exactly the edge's place in the security model (and judging it as an edge keeps a
    generic, well-built web stack from failing as "publishes but is not the edge")."""
    publishers = [s for s in topo.services.values() if s.ports and s.network_mode != "host"]
    if len(publishers) != 1 or any(s.role is Role.EDGE for s in topo.services.values()):
        return
    only = publishers[0]
    if only.role is Role.OTHER and any(topo.is_internal(n) for n in only.networks) and any(
        not topo.is_internal(n) for n in only.networks
    ):
        only.role, only.role_from = Role.EDGE, "topology"


def normalise_cap(cap: object) -> str:
    """`cap_sys_admin` / `CAP_SYS_ADMIN` / `SYS_ADMIN` -> `SYS_ADMIN`."""
    text = str(cap).strip().upper()
    return text if text == "ALL" else text.removeprefix("CAP_")
