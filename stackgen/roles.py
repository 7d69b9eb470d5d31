"""Roles from evidence: which service is Node-RED, the edge, the certificate writer, a database.

A service's role is decided by the strongest evidence it shows: what the user states, then the image,
then what a locally built or renamed service still shows (build context, command, healthcheck, the
ports it serves or is routed to, its name, its mounts). The compose loader asks `infer_role` with what
only it knows (the build context, the command, `expose:`); `assign_topology_roles` asks again with what
only the whole service and the stack show (healthcheck, environment, routing labels, the network
shape), and the stronger answer wins. Every answer carries a short kind and a reason for a person.

Why apart from `topology`: the model is what every loader fills and every rule reads; this is one
judgment about it, with its own word lists and ranks, that only the loaders call.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

from stackgen.constants import CERT_DIRS, NODE_RED_PORT, ROLE_LABEL
from stackgen.topology import Mount, Role, Topology, image_parts, parse_role

__all__ = ["Evidence", "infer_role", "assign_topology_roles", "routed_by", "routed_ports"]

class Evidence(str):
    """What gave a service its role. The string itself is the short kind (`image`, `build`, `port 1880`,
    `topology`...), so `role_from == "image"` keeps working; `reason` says it for a person (`image
    nodered/node-red`, `build context ./node-red`); `rank` orders evidence, higher is stronger."""

    reason: str
    rank: int

    def __new__(cls, kind: str, reason: str | None = None, rank: int = 0) -> Evidence:
        self = super().__new__(cls, kind)
        self.reason = reason or kind
        self.rank = rank
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Evidence, (str(self), self.reason, self.rank))


# Ranks: the order in which `infer_role` looks, strongest last.
(R_NONE, R_ROUTED, R_TOPOLOGY, R_NAME_DB, R_PORT_DB, R_NAME_EDGE, R_MOUNTS_DB, R_MOUNTS_CERT, R_NAME_NODE_RED,
 R_PORT_1880, R_HEALTHCHECK, R_COMMAND, R_BUILD, R_IMAGE, R_LABEL, R_DECLARED) = range(16)

# Dedicated reverse proxies: the image is the edge even when it carries routing labels (Traefik routes
# its own dashboard). Plain web servers also serve sites *behind* an edge: routed by a label-driven
# proxy, they are its upstream.
_PROXY_IMAGES = {"traefik", "nginx-proxy", "nginx-proxy-manager", "caddy-docker-proxy", "swag"}
_WEB_SERVER_IMAGES = {"caddy", "nginx", "nginx-unprivileged", "openresty", "haproxy", "envoy"}
_CERTBOT_IMAGES = {"certbot", "acme.sh", "lego", "acme-companion", "letsencrypt-nginx-proxy-companion",
                   "docker-letsencrypt-nginx-proxy-companion"}

_NODE_RED_WORDS = ("node-red", "nodered", "node_red")
_EDGE_PROGRAMS = ("nginx", "caddy", "traefik", "haproxy")
_EDGE_NAMES = {"edge", "proxy", "reverse-proxy", "reverse_proxy", "reverseproxy", "rproxy", "caddy", "nginx",
               "traefik", "haproxy", "gateway", "ingress"}
_EDGE_NAME_WORDS = {"proxy", "rproxy", "reverseproxy", "caddy", "nginx", "traefik", "haproxy"}
# ...but a proxy of something else is not the edge: the engine socket, a database, an auth check, MQTT.
_NOT_EDGE_WORDS = ("socket", "docker", "sql", "auth", "mqtt", "squid", "cache", "exporter", "smtp", "imap")

_DATABASE_WORDS = {"postgres", "postgresql", "postgis", "mariadb", "mysql", "mongo", "mongodb", "redis", "valkey",
                   "keydb", "influxdb", "timescaledb", "couchdb", "cassandra", "percona"}
# Tools around a database are not the database: `mariadb-backup`, `postgres-exporter`, `mongo-express`...
_NOT_DATABASE_WORDS = {"backup", "exporter", "admin", "ui", "web", "gui", "operator", "express", "commander",
                       "insight", "proxy", "client", "sidecar", "dump", "manager", "browser", "sync", "tools"}
_DATABASE_PROGRAMS = {"postgres", "mysqld", "mariadbd", "mongod", "redis-server", "valkey-server", "keydb-server", "influxd"}
_DATABASE_PORTS = {5432: "PostgreSQL", 3306: "MySQL/MariaDB", 27017: "MongoDB", 6379: "Redis", 8086: "InfluxDB"}
_DATABASE_DIRS = {"/var/lib/postgresql/data", "/var/lib/postgresql", "/var/lib/mysql", "/data/db", "/var/lib/mongodb",
                  "/var/lib/influxdb", "/var/lib/influxdb2", "/var/lib/redis", "/bitnami/postgresql", "/bitnami/mariadb",
                  "/bitnami/mysql", "/bitnami/mongodb"}
_DATABASE_HEALTH = re.compile(
    r"\bpg_isready\b|\bmysqladmin\b|\bmariadb-admin\b|\bhealthcheck\.sh\b[^|;&]*--(?:connect|innodb)|\bredis-cli\b"
    r"|\bvalkey-cli\b|\bmongosh\b|\bmongo\b[^|;&]*--eval|\binflux\s+ping\b|:8086/(?:ping|health)"
)
_EDGE_HEALTH = re.compile(r"\bnginx\s+-t\b|\btraefik\s+healthcheck\b|\bcaddy\s+(?:validate|version)\b|:2019\b|\bhaproxy\s+-c\b")
_NODE_RED_HEALTH = re.compile(r":\s*1880(?!\d)|\bport\W{0,3}1880(?!\d)")
_TRAEFIK_ROUTES = ("traefik.http.routers.", "traefik.http.services.", "traefik.tcp.routers.", "traefik.tcp.services.",
                   "traefik.udp.", "traefik.frontend.", "traefik.backend", "traefik.port")
_UPSTREAMS = re.compile(r"\{\{\s*upstreams\s+(?:https?\s+)?(\d+)")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _database_word(text: str, extra: frozenset[str] = frozenset()) -> str | None:
    """The database a name or path names (`bin/mysql` -> mysql), unless it names a tool around one."""
    words = _words(text)
    if any(w in _NOT_DATABASE_WORDS for w in words):
        return None
    return next((w for w in words if w in _DATABASE_WORDS or w in extra), None)


def _edge_name(name: str) -> bool:
    lowered = name.lower()
    compact = re.sub(r"[^a-z0-9]", "", lowered)
    if lowered in _EDGE_NAMES:
        return True
    if any(w in compact for w in _NOT_EDGE_WORDS):
        return False
    return any(w in _EDGE_NAME_WORDS for w in _words(lowered)) or compact.endswith("proxy")


def routed_by(labels: Mapping[str, str], environment: Mapping[str, str | None] | None = None) -> str | None:
    """The label-driven proxy whose routing this service carries (so it is that proxy's upstream, not the
    edge): Traefik routers (not Traefik's own `api@internal` dashboard), caddy-docker-proxy's
    `{{upstreams}}`, nginx-proxy's VIRTUAL_HOST. None when it carries none."""
    traefik = {k: str(v) for k, v in labels.items() if k.startswith("traefik.")}
    if traefik and traefik.get("traefik.enable", "").strip().lower() != "false":
        own = any(v.strip().endswith("@internal") for v in traefik.values())
        routes = any(k.startswith(_TRAEFIK_ROUTES) for k in traefik)
        bare = traefik.get("traefik.enable", "").strip().lower() == "true" and set(traefik) <= {
            "traefik.enable", "traefik.docker.network"}
        if not own and (routes or bare):
            return "Traefik labels"
    if any("{{" in str(v) and _UPSTREAMS.search(str(v)) for k, v in labels.items() if k.split(".")[0].split("_")[0] == "caddy"):
        return "caddy-docker-proxy labels"
    if environment and environment.get("VIRTUAL_HOST"):
        return "nginx-proxy's VIRTUAL_HOST"
    return None


def routed_ports(labels: Mapping[str, str], environment: Mapping[str, str | None] | None = None) -> set[int]:
    """The container ports a label-driven proxy is told to route to."""
    found: set[int] = set()
    for key, value in labels.items():
        text = str(value).strip()
        routed = key.startswith("traefik.") and (key.endswith(".loadbalancer.server.port") or key == "traefik.port")
        if routed and text.isdigit():
            found.add(int(text))
        found.update(int(m) for m in _UPSTREAMS.findall(text))
    port = str((environment or {}).get("VIRTUAL_PORT") or "").strip()
    if port.isdigit():
        found.add(int(port))
    return found


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
    healthcheck: Iterable[str] = (),
    environment: Mapping[str, str | None] | None = None,
) -> tuple[Role, Evidence]:
    """A service's role and the evidence for it, strongest first: x-stackgen, the `org.stackgen.role` label,
    the image, the build context, the command, the healthcheck, the port it serves or is routed to (1880),
    its name, its mounts (a writable certificate directory, a database's data directory), a database's
    port. Routing labels of a label-driven proxy make a service that proxy's upstream, never the edge.
    The stack's shape adds one more (`assign_topology_roles`)."""
    mounts = list(mounts)
    role = parse_role(declared)
    if role:
        return role, Evidence("x-stackgen", f"stated: x-stackgen role {str(declared).strip()}", R_DECLARED)
    role = parse_role(labels.get(ROLE_LABEL))
    if role:
        return role, Evidence("label", f"label {ROLE_LABEL}={labels[ROLE_LABEL]}", R_LABEL)
    routed = routed_by(labels, environment)
    path = image_parts(image)[1] if image else ""
    if path:
        parts = path.lower().split("/")
        last = parts[-1]
        why = f"image {path}"
        if "node-red" in last or "nodered" in path.lower():
            return Role.NODE_RED, Evidence("image", why, R_IMAGE)
        if last in _CERTBOT_IMAGES or (len(parts) > 1 and parts[-2] == "certbot"):
            return Role.CERTBOT, Evidence("image", why, R_IMAGE)
        if last in _PROXY_IMAGES or (last in _WEB_SERVER_IMAGES and not routed):
            return Role.EDGE, Evidence("image", why, R_IMAGE)
        if last in _WEB_SERVER_IMAGES:
            return Role.OTHER, Evidence("image", f"{why}, routed by {routed}: an upstream of the edge", R_IMAGE)
        if _database_word(last):
            return Role.DATABASE, Evidence("image", why, R_IMAGE)
    if build:
        built = build.lower()
        why = f"build context {build.strip()}"
        if any(w in built for w in _NODE_RED_WORDS):
            return Role.NODE_RED, Evidence("build", why, R_BUILD)
        if not routed and any(w in built for w in _EDGE_PROGRAMS):
            return Role.EDGE, Evidence("build", why, R_BUILD)
        if _database_word(built):
            return Role.DATABASE, Evidence("build", why, R_BUILD)
    if command:
        lowered = command.lower()
        program = posixpath.basename(lowered.split()[0]) if lowered.split() else ""
        if "red.js" in lowered or any(w in lowered for w in _NODE_RED_WORDS):
            return Role.NODE_RED, Evidence("command", "command runs Node-RED (red.js)", R_COMMAND)
        if program in _DATABASE_PROGRAMS:
            return Role.DATABASE, Evidence("command", f"command runs {program}", R_COMMAND)
        if program in _EDGE_PROGRAMS and not routed:
            return Role.EDGE, Evidence("command", f"command runs {program}", R_COMMAND)
    test = " ".join(str(t) for t in healthcheck).lower()
    if test:
        if _NODE_RED_HEALTH.search(test):
            return Role.NODE_RED, Evidence("healthcheck", "healthcheck probes port 1880", R_HEALTHCHECK)
        if "/healthcheck.js" in test and any(m.target.rstrip("/") == "/data" for m in mounts):
            return Role.NODE_RED, Evidence(
                "healthcheck", "healthcheck runs /healthcheck.js (Node-RED's own) with its data at /data", R_HEALTHCHECK)
        found = _DATABASE_HEALTH.search(test)
        if found:
            return Role.DATABASE, Evidence("healthcheck", f"healthcheck runs {found.group(0).split()[0].strip(':')}", R_HEALTHCHECK)
        found = _EDGE_HEALTH.search(test)
        if found and not routed:
            what = "Caddy's admin API" if found.group(0) == ":2019" else found.group(0)
            return Role.EDGE, Evidence("healthcheck", f"healthcheck runs {what}", R_HEALTHCHECK)
    if NODE_RED_PORT in set(ports):
        return Role.NODE_RED, Evidence("port 1880", "serves port 1880 (published or exposed)", R_PORT_1880)
    if NODE_RED_PORT in routed_ports(labels, environment):
        return Role.NODE_RED, Evidence("port 1880", f"routed to port 1880 by {routed or 'labels'}", R_PORT_1880)
    lowered = (name or "").lower()
    if any(w in lowered for w in _NODE_RED_WORDS):
        return Role.NODE_RED, Evidence("name", f"service name {name}", R_NAME_NODE_RED)
    for m in mounts:
        if not m.read_only and m.target.rstrip("/") in CERT_DIRS:
            return Role.CERTBOT, Evidence("mounts", f"writes {m.target.rstrip('/')}", R_MOUNTS_CERT)
    for m in mounts:
        if m.target.rstrip("/") in _DATABASE_DIRS:
            return Role.DATABASE, Evidence("mounts", f"data directory {m.target.rstrip('/')}", R_MOUNTS_DB)
    if name and not routed and _edge_name(name):
        return Role.EDGE, Evidence("name", f"service name {name}", R_NAME_EDGE)
    for port in sorted(set(ports)):
        if port in _DATABASE_PORTS:
            return Role.DATABASE, Evidence("port", f"serves port {port} ({_DATABASE_PORTS[port]}'s)", R_PORT_DB)
    if name and _database_word(name, frozenset({"db", "database"})):
        return Role.DATABASE, Evidence("name", f"service name {name}", R_NAME_DB)
    if routed:
        return Role.OTHER, Evidence("routed", f"routed by {routed}: an upstream of the edge", R_ROUTED)
    what = f" (image {path})" if path else f" (build context {build.strip()})" if build else ""
    return Role.OTHER, Evidence("none", f"no evidence of a role{what}", R_NONE)


def assign_topology_roles(topo: Topology) -> None:
    """The second look at each service, with what only the whole service and the stack show: its
    healthcheck, environment and routing labels (the stronger evidence wins over the loader's), then the
    network shape: a stack's only publisher that also sits on an internal network is its edge, whatever
    its image. That is exactly the edge's place in the security model (and judging it as an edge keeps a
    generic, well-built web stack from failing as "publishes but is not the edge")."""
    for svc in topo.services.values():
        first = svc.role_from
        if str(first) in ("x-stackgen", "label"):
            continue
        health = svc.healthcheck.test if svc.healthcheck and not svc.healthcheck.disabled else ()
        role, evidence = infer_role(svc.image, svc.labels, None, svc.mounts, name=svc.name,
                                    ports=[p.target for p in svc.ports if p.target], healthcheck=health,
                                    environment=svc.environment)
        rank = getattr(first, "rank", -1)
        if evidence.rank > rank or (evidence.rank == rank and role is not svc.role):
            svc.role, svc.role_from = role, evidence
    publishers = [s for s in topo.services.values() if s.ports and s.network_mode != "host"]
    if len(publishers) != 1 or any(s.role is Role.EDGE for s in topo.services.values()):
        return
    only = publishers[0]
    internal = [n for n in only.networks if topo.is_internal(n)]
    routed = [n for n in only.networks if not topo.is_internal(n)]
    if only.role is Role.OTHER and internal and routed and not routed_by(only.labels, only.environment):
        def listed(nets: list[str]) -> str:
            return ("networks " if len(nets) > 1 else "network ") + ", ".join(f"`{n}`" for n in nets)

        only.role, only.role_from = Role.EDGE, Evidence(
            "topology", f"the only publisher, bridging internal {listed(internal)} and routed {listed(routed)}", R_TOPOLOGY)
