"""Several Node-RED instances in one stack: each on networks of its own (shared with the edge alone).

A stack with one Node-RED per site, customer or team (stack.yaml `instances`) gives each its own internal
network with the edge; SG105 judges the services that are not Node-RED, this judges Node-RED against Node-RED.
"""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Finding, Severity
from stackgen.topology import Role, Topology
from stackgen.verify.rules.base import Rule

INSTANCES_SHARE_NETWORK = Rule(
    id="SG113",
    name="node-red-instances-share-network",
    severity=Severity.HIGH,
    title="Two Node-RED instances share a network",
    why="""Each Node-RED is a code-execution service: a flow deployed in one can open connections. Two instances on
    one network reach each other's port 1880 directly, without the edge's TLS, editor gate or login throttle, so
    whoever controls one instance (its editor, a vulnerable node, a leaked password) can attack the other's editor
    and admin API from inside. Instances are separate to keep one site's or customer's failure from spreading.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:5.0.7
            networks: [internal]
          node-red-lab:
            image: nodered/node-red:5.0.7
            networks: [internal]
          edge:
            image: caddy:2.10.2
            networks: [internal, public]
        networks:
          internal: {internal: true}
          public: {}
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:5.0.7
            networks: [internal]
          node-red-lab:
            image: nodered/node-red:5.0.7
            networks: [internal-lab]
          edge:
            image: caddy:2.10.2
            networks: [internal, internal-lab, public]
        networks:
          internal: {internal: true}
          internal-lab: {internal: true}
          public: {}
    """,
    fix="Give each Node-RED its own internal network that only it and the edge join (stack.yaml `instances` does: "
    "`internal-<name>`), and its own egress network if it needs one. If one instance must call another, route it "
    "through the edge (HTTPS, the other's host name), or accept the link explicitly with an x-stackgen ignore and a reason.",
)


@INSTANCES_SHARE_NETWORK.checks
def _instances_share(topo: Topology) -> Iterator[Finding]:
    node_reds = topo.by_role(Role.NODE_RED)
    if len(node_reds) < 2:
        return
    on_net: dict[str, list[str]] = {}
    for nr in node_reds:
        if nr.network_mode in ("bridge", "default"):  # Docker's default bridge: every such container shares it
            on_net.setdefault("(default bridge)", []).append(nr.name)
        for net in nr.networks:
            on_net.setdefault(net, []).append(nr.name)
    for nr in node_reds:
        shared = {net: [other for other in names if other != nr.name] for net, names in on_net.items() if nr.name in names}
        for net, others in sorted(shared.items()):
            if others:
                where = nr.at("network_mode") if net == "(default bridge)" else nr.at("networks")
                yield INSTANCES_SHARE_NETWORK.finding(
                    nr, f"Node-RED shares network {net!r} with Node-RED {', '.join(others)}: each reaches the other's port 1880 "
                        "without the edge", where)


RULES = (INSTANCES_SHARE_NETWORK,)
