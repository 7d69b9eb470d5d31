"""Published ports and networks, judged one service at a time (the graph is in topology_rules)."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Finding, Severity
from stackgen.topology import Port, Role, Service, Source, Topology
from stackgen.verify.rules.base import Rule

ALL_INTERFACES = Rule(
    id="SG020",
    name="all-interfaces",
    severity=Severity.MEDIUM,
    title="Port published on all interfaces",
    why="""A port without a host address is published on 0.0.0.0 (and ::), on every interface of the
    host, and Docker's rules bypass the host firewall. Only the edge should face the network, and
    it should say so explicitly; anything else should bind 127.0.0.1 or not publish at all.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            ports: ["1880:1880"]
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            ports: ["127.0.0.1:1880:1880"]
    """,
    fix="Bind to an address (`127.0.0.1:1880:1880`), or remove the port and reach the service "
    "through the edge; on the edge, write `host_ip: 0.0.0.0` to make the choice explicit.",
    compose_lint=("CL-0005",),
    kics=("Container Traffic Not Bound To Host Interface (451d79dc)",),
)


@ALL_INTERFACES.per_service
def _all_interfaces(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.network_mode == "host":
        return
    for p in svc.ports:
        if not p.all_interfaces:
            continue
        if svc.role is Role.EDGE and p.host_ip:  # the edge's explicit 0.0.0.0 is its job
            continue
        yield f"publishes {p.describe()} on all host interfaces", p.src or svc.at("ports")


PRIVILEGED_PORT = Rule(
    id="SG021",
    name="privileged-host-port",
    severity=Severity.LOW,
    title="Privileged host port published by a service other than the edge",
    why="""Host ports below 1024 are the well-known service ports (22, 80, 443, ...). A service other
    than the edge taking one is either competing with the edge or exposing a protocol that has no
    business facing the network.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            ports: ["127.0.0.1:80:8080"]
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            ports: ["127.0.0.1:8080:8080"]
    """,
    fix="Publish on a port >= 1024, or move the service behind the edge.",
    kics=("Privileged Ports Mapped In Container (bc2908f3)",),
)


@PRIVILEGED_PORT.per_service
def _privileged_port(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.role is Role.EDGE:
        return
    for p in svc.ports:
        if p.host_port is not None and 0 < p.host_port < 1024:
            yield f"publishes privileged host port {p.host_port}", p.src or svc.at("ports")


DUPLICATE_PORT = Rule(
    id="SG022",
    name="duplicate-host-port",
    severity=Severity.MEDIUM,
    title="Host port published twice",
    why="""Two services (or two entries) claiming the same host address and port cannot both start;
    which one wins depends on start order, so traffic meant for the edge can land elsewhere.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
            ports: ["443:443"]
          other:
            image: nginx:1.27
            ports: ["443:443"]
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4
            ports: ["443:443"]
    """,
    fix="Keep one publisher per host address and port; route the others through the edge.",
)


def _ip(p: Port) -> str:
    return "*" if p.all_interfaces else str(p.host_ip)


@DUPLICATE_PORT.checks
def _duplicate_port(topo: Topology) -> Iterator:
    seen: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for svc in topo.services.values():
        if svc.network_mode == "host":
            continue
        for p in svc.ports:
            port = p.host_port
            if port is None:
                continue
            ip = _ip(p)
            clash = [
                (name, other_ip)
                for name, other_ip in seen.get((p.protocol, port), [])
                if ip == other_ip or "*" in (ip, other_ip)
            ]
            if clash:
                owners = ", ".join(sorted({name for name, _ in clash}))
                yield DUPLICATE_PORT.finding(
                    svc, f"host port {port}/{p.protocol} is already published by {owners}", p.src or svc.at("ports")
                )
            seen.setdefault((p.protocol, port), []).append((svc.name, ip))


PORTS_UNDER_HOST = Rule(
    id="SG023",
    name="ports-ignored-host-network",
    severity=Severity.MEDIUM,
    title="`ports:` ignored under host networking",
    why="""With `network_mode: host` Docker ignores `ports:`: the service listens on whatever host
    interfaces it binds, usually all of them. The `127.0.0.1:` in the file is then a false promise.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            network_mode: host
            ports: ["127.0.0.1:8080:8080"]
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            ports: ["127.0.0.1:8080:8080"]
    """,
    fix="Drop host networking and keep `ports:`, or drop `ports:` and bind the address in the app's own config.",
)


@PORTS_UNDER_HOST.per_service
def _ports_under_host(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.network_mode == "host" and svc.ports:
        yield (
            "declares `ports:`, which host networking ignores (the app binds host interfaces directly)",
            svc.at("ports"),
        )


DEFAULT_NETWORK = Rule(
    id="SG039",
    name="default-network",
    severity=Severity.LOW,
    title="Services share the implicit default network",
    why="""Services with no `networks:` all land on the project's default network and can all reach
    each other. Naming networks (an internal one for Node-RED and the edge) is how the stack says who
    may talk to whom.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
          db:
            image: postgres:16
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
        networks:
          internal: {internal: true}
    """,
    fix="Declare networks and attach each service only to the ones it needs.",
    kics=("Networks Not Set (ce14a68b)",),
)


@DEFAULT_NETWORK.checks
def _default_network(topo: Topology) -> Iterator:
    if topo.is_internal("default"):
        return
    members = topo.members("default")
    if len(members) < 2:
        return
    for svc in members:
        others = ", ".join(s.name for s in members if s is not svc)
        yield DEFAULT_NETWORK.finding(svc, f"sits on the implicit default network with {others}", svc.at("networks"))


MISSING_CONTEXT = Rule(
    id="SG043",
    name="missing-context",
    severity=Severity.LOW,
    title="Judged without context defined elsewhere",
    why="""App-store and template files often use a network, a volume or a required variable that another
    file or the installer defines. Compose refuses such a file alone; stackgen judges it anyway, so a
    real flaw (Node-RED as root, 1880 published) is not hidden behind the missing context, and says
    what it assumed: an undefined network or volume is taken as external, a missing required variable
    as "0", a bare service body (no `services:` key, as forum posts and templates show it) as a
    one-service file, a Compose v1 file's top-level services as `services:`.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:5.0.7
            ports: ["${PORT:?set PORT}:1880"]
            networks: [proxy]
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:5.0.7
            networks: [internal]
        networks:
          internal:
            internal: true
    """,
    fix="Verify the stack with its context (`--env-file`, every `-f` file), or declare what the file uses.",
)


@MISSING_CONTEXT.checks
def _missing_context(topo: Topology) -> Iterator[Finding]:
    for message, where in topo.missing_context:
        yield MISSING_CONTEXT.finding(None, message, where)


RULES = (ALL_INTERFACES, PRIVILEGED_PORT, DUPLICATE_PORT, PORTS_UNDER_HOST, DEFAULT_NETWORK, MISSING_CONTEXT)
