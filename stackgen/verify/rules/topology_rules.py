"""The stack as a graph (services x networks x volumes), judged against stackgen's security model.

1. Node-RED (a code-authoring service) sits on an internal network shared with the edge and
   nothing else reaches it; it publishes nothing (an egress-only network of its own is allowed).
2. The edge is the only service with published ports.
3. The certificate writer alone writes the key volume; the edge reads it read-only; nothing
   else mounts it; the writer never shares a network with Node-RED (those rules: `keystore`).
4. No container gets the engine socket (SG002).

Roles come from evidence (`roles.infer_role`, `assign_topology_roles`): `x-stackgen: {role: ...}`,
the `org.stackgen.role` label, the image, then the build context, command, healthcheck, served or
routed port 1880, name and mounts, and finally the stack's shape (its only publisher bridging into
internal networks is its edge). `stackgen verify --explain` says which evidence gave each role.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from stackgen.constants import UPSTREAM_LABEL
from stackgen.findings import Finding, Severity
from stackgen.topology import Role, Service, Source, Topology
from stackgen.verify.rules.base import Rule

ONLY_EDGE_PUBLISHES = Rule(
    id="SG101",
    name="ports-outside-edge",
    severity=Severity.HIGH,
    title="A service other than the edge publishes ports",
    why="""In stackgen's model the edge is the only door: it terminates TLS, authenticates and logs.
    A port published by any other service is a second door that skips all of that.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
            ports: ["443:443"]
          mqtt:
            image: eclipse-mosquitto:2
            ports: ["1883:1883"]
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4
            ports: ["443:443"]
          mqtt:
            image: eclipse-mosquitto:2
            networks: [internal]
        networks:
          internal: {internal: true}
    """,
    fix="Remove `ports:` from the service and route it through the edge (or bind it to 127.0.0.1 "
    "and suppress with a reason if it is an admin-only port).",
)


@ONLY_EDGE_PUBLISHES.per_service
def _only_edge(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.role in (Role.EDGE, Role.NODE_RED) or not svc.ports or svc.network_mode == "host":
        return
    listed = ", ".join(p.describe() for p in svc.ports[:3]) + (" ..." if len(svc.ports) > 3 else "")
    if svc.role is Role.DATABASE:  # no edge can front a database's protocol: this door opens on the data itself
        yield f"database publishes ports ({listed}): its data is reachable from the host's network, not only by the app", svc.at("ports")
        return
    yield f"publishes ports ({listed}) but is not the edge", svc.at("ports")


NODE_RED_PUBLISHED = Rule(
    id="SG102",
    name="node-red-published",
    severity=Severity.CRITICAL,
    title="Node-RED publishes ports",
    why="""Node-RED's editor is a code-execution service: whoever reaches port 1880 can deploy a flow
    that runs commands. Published, it is reachable without the edge's TLS and authentication, and
    internet scanners look for exactly this.""",
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
            networks: [internal]
          edge:
            image: caddy:2.8.4
            ports: ["443:443"]
            networks: [internal, public]
        networks:
          internal: {internal: true}
          public: {}
    """,
    fix="Remove Node-RED's `ports:`; put it on an internal network with the edge and let the edge proxy to it.",
)


@NODE_RED_PUBLISHED.per_service
def _node_red_published(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.role is Role.NODE_RED and svc.ports:
        listed = ", ".join(p.describe() for p in svc.ports)
        yield f"Node-RED publishes {listed}: its editor is reachable without the edge", svc.at("ports")


NODE_RED_SHARED_NETWORK = Rule(
    id="SG103",
    name="node-red-open-network",
    severity=Severity.CRITICAL,
    title="Node-RED on a non-internal network shared with other services",
    why="""A non-internal network routes to the outside and joins every service on it: Node-RED
    there can be reached by those services directly, not through the edge, and can reach them in
    turn. Node-RED belongs on an `internal: true` network with the edge; if it needs the internet,
    give it an egress network no other service joins.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [web]
          edge:
            image: caddy:2.8.4
            networks: [web]
        networks:
          web: {}
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal, egress]
          edge:
            image: caddy:2.8.4
            networks: [internal, public]
        networks:
          internal: {internal: true}
          egress: {}
          public: {}
    """,
    fix="Mark the shared network `internal: true`, or move Node-RED's outbound access to a network "
    "only Node-RED joins.",
)


@NODE_RED_SHARED_NETWORK.per_service
def _node_red_shared(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.role is not Role.NODE_RED:
        return
    if svc.network_mode in ("bridge", "default"):
        yield "Node-RED is on Docker's default bridge, shared with every container on the host", svc.at("network_mode")
    for net in svc.networks:
        if topo.is_internal(net):
            continue
        others = [s.name for s in topo.members(net) if s is not svc]
        if others:
            where = svc.at("networks")
            yield f"Node-RED shares non-internal network {net!r} with {', '.join(others)}", where


NODE_RED_BORROWED = Rule(
    id="SG104",
    name="node-red-borrowed-network",
    severity=Severity.CRITICAL,
    title="Node-RED joins another container's network namespace",
    why="""`network_mode: service:X` (or `container:X`) puts Node-RED inside X's network stack: it
    gets X's ports, X's networks and X's localhost, so everything that reaches X reaches Node-RED.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            network_mode: "service:vpn"
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
        networks:
          internal: {internal: true}
    """,
    fix="Give Node-RED its own networks (internal, plus an egress network of its own if it needs one).",
)


@NODE_RED_BORROWED.per_service
def _node_red_borrowed(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    mode = svc.network_mode or ""
    if svc.role is Role.NODE_RED and mode.startswith(("service:", "container:")):
        yield f"Node-RED runs in the network namespace of {mode.split(':', 1)[1]}", svc.at("network_mode")


NODE_RED_NEIGHBOUR = Rule(
    id="SG105",
    name="node-red-neighbour",
    severity=Severity.MEDIUM,
    title="A service other than the edge can reach Node-RED",
    why="""Only the edge should reach Node-RED: every other service on its network (a broker, a
    database, a dashboard) can open the editor port without the edge's TLS and authentication, so a
    compromise of that service is a compromise of Node-RED.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
          mqtt:
            image: eclipse-mosquitto:2
            networks: [internal]
        networks:
          internal: {internal: true}
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
          edge:
            image: caddy:2.8.4
            networks: [internal]
          mqtt:
            image: eclipse-mosquitto:2
            networks: [backend]
        networks:
          internal: {internal: true}
          backend: {internal: true}
    """,
    fix="Take the other service off Node-RED's networks. If Node-RED must talk to it (a broker, a "
    "database), both ends of a shared network can open connections: accept that explicitly with an "
    "x-stackgen ignore and a reason.",
)


@NODE_RED_NEIGHBOUR.checks
def _node_red_neighbour(topo: Topology) -> Iterator[Finding]:
    node_reds = topo.by_role(Role.NODE_RED)
    if not node_reds:
        return
    # network -> Node-RED services on it (one pass, not services x services)
    on_net: dict[str, list[Service]] = {}
    for nr in node_reds:
        for net in nr.networks:
            if topo.is_internal(net):
                on_net.setdefault(net, []).append(nr)
    names = {nr.name for nr in node_reds}
    for other in topo.services.values():
        if other.role in (Role.EDGE, Role.CERTBOT, Role.NODE_RED):
            continue
        mode = other.network_mode or ""
        if mode.partition(":")[0] in ("service", "container") and mode.partition(":")[2] in names:
            yield NODE_RED_NEIGHBOUR.finding(
                other, f"runs inside Node-RED's network namespace ({mode})", other.at("network_mode")
            )
            continue
        reached: dict[str, list[str]] = {}
        for net in other.networks:
            for nr in on_net.get(net, ()):
                reached.setdefault(nr.name, []).append(net)
        for nr_name, nets in reached.items():
            yield NODE_RED_NEIGHBOUR.finding(
                other,
                f"reaches Node-RED ({nr_name}) on internal network {', '.join(sorted(nets))}",
                other.at("networks"),
            )


BRIDGE = Rule(
    id="SG109",
    name="network-bridge",
    severity=Severity.HIGH,
    title="A service other than the edge bridges an internal and a routed network",
    why="""An `internal: true` network is private because nothing on it can route out. A service
    that joins both an internal network and a non-internal one is a way out of (and into) the
    private side; only the edge, whose job that is, should do it.""",
    bad="""
        services:
          helper:
            image: alpine:3.20
            networks: [internal, public]
        networks:
          internal: {internal: true}
          public: {}
    """,
    good="""
        services:
          helper:
            image: alpine:3.20
            networks: [internal]
        networks:
          internal: {internal: true}
          public: {}
    """,
    fix="Attach the service to one side only; if it needs the internet, it should not be on the internal network.",
)


@BRIDGE.per_service
def _bridge(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.role in (Role.EDGE, Role.NODE_RED):
        return
    internal = [n for n in svc.networks if topo.is_internal(n)]
    routed = [n for n in svc.networks if not topo.is_internal(n)]
    if internal and routed:
        yield (
            f"joins internal network {', '.join(internal)} and routed network {', '.join(routed)}",
            svc.at("networks"),
        )


EDGE_UNREACHABLE_UPSTREAM = Rule(
    id="SG110",
    name="edge-upstream-unreachable",
    severity=Severity.MEDIUM,
    title="Edge proxies to a service it shares no network with",
    why="""If the edge and its upstream share no network, the proxy cannot reach it the intended
    way; such stacks usually "work" because the upstream was published on the host instead, which
    is the exposure the edge was meant to remove.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
            labels: {org.stackgen.upstream: "node-red:1880"}
            networks: [public]
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
        networks:
          internal: {internal: true}
          public: {}
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4
            labels: {org.stackgen.upstream: "node-red:1880"}
            networks: [internal, public]
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
        networks:
          internal: {internal: true}
          public: {}
    """,
    fix="Attach the edge to the upstream's internal network.",
)

_HOST = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?([A-Za-z0-9._-]+)")


def upstreams(edge: Service, topo: Topology) -> Iterator[tuple[Service, Source | None]]:
    """Services the edge proxies to: stackgen's label or x-stackgen, Traefik, caddy-docker-proxy, nginx-proxy labels."""
    declared: list[str] = []
    label = edge.labels.get(UPSTREAM_LABEL)
    if label:
        declared += re.split(r"[,\s]+", label)
    ext = edge.extensions.get("x-stackgen")
    if isinstance(ext, Mapping) and ext.get("upstream"):
        value = ext["upstream"]
        declared += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    where = edge.at("labels", "x-stackgen")
    for entry in declared:
        m = _HOST.match(entry.strip())
        if m and m.group(1) in topo.services and m.group(1) != edge.name:
            yield topo.services[m.group(1)], where
    image = edge.image_name
    for svc in topo.services.values():
        if svc is not edge and _routed_by_labels(image, svc):
            yield svc, edge.at("networks")


def _routed_by_labels(edge_image: str, svc: Service) -> bool:
    """Does a label-driven proxy (Traefik, caddy-docker-proxy, nginx-proxy) route to `svc`?"""
    labels = svc.labels
    if "traefik" in edge_image:
        return labels.get("traefik.enable", "").lower() == "true" or any(k.startswith("traefik.http.") for k in labels)
    if "caddy-docker-proxy" in edge_image:
        return any(k == "caddy" or k.startswith("caddy.") for k in labels)
    if "nginx-proxy" in edge_image:
        return "VIRTUAL_HOST" in svc.environment
    return False


@EDGE_UNREACHABLE_UPSTREAM.checks
def _edge_upstream(topo: Topology) -> Iterator[Finding]:
    for edge in topo.by_role(Role.EDGE):
        if edge.network_mode:
            continue
        seen: set[str] = set()
        for target, where in upstreams(edge, topo):
            if target.name in seen or target.network_mode:
                continue
            seen.add(target.name)
            if not topo.shared_networks(edge, target):
                yield EDGE_UNREACHABLE_UPSTREAM.finding(
                    edge, f"proxies to {target.name} but shares no network with it", where
                )


NODE_RED_EXTERNAL_NETWORK = Rule(
    id="SG111",
    name="node-red-external-network",
    severity=Severity.HIGH,
    title="Node-RED on a network shared with other stacks",
    why="""A network declared `external` (or used without being declared here) belongs to no single
    stack: every container of every other stack attached to it reaches Node-RED's port 1880 directly,
    without the edge's TLS, headers or login throttle, and nothing in this file shows who they are.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:5.0.7
            networks: [proxy]
        networks:
          proxy:
            external: true
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
    fix="Attach Node-RED only to an internal network of this stack; put the edge (alone) on the shared network.",
)


@NODE_RED_EXTERNAL_NETWORK.per_service
def _node_red_external(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.role is not Role.NODE_RED:
        return
    for net in svc.networks:
        network = topo.networks.get(net)
        if network is not None and network.external:
            yield (f"Node-RED is on external network {network.name!r}: containers of other stacks on it reach "
                   f"port 1880 without the edge"), svc.at("networks")


RULES = (
    ONLY_EDGE_PUBLISHES,
    NODE_RED_PUBLISHED,
    NODE_RED_SHARED_NETWORK,
    NODE_RED_BORROWED,
    NODE_RED_NEIGHBOUR,
    BRIDGE,
    EDGE_UNREACHABLE_UPSTREAM,
    NODE_RED_EXTERNAL_NETWORK,
)
