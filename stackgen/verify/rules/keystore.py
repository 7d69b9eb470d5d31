"""Who may touch the TLS key store: the certificate writer alone writes it, the edge reads it, nothing
else mounts it, and the writer never shares a network with Node-RED (stackgen's security model, part 3).

Apart from the other graph rules (`topology_rules`) because they read the stack through its key
stores (`_keys.key_mounts`: volumes and host directories holding `/etc/letsencrypt` and the like),
which is what `elements.py` draws their findings on.
"""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Finding, Severity
from stackgen.topology import Role, Topology
from stackgen.verify.rules._hostpaths import shown
from stackgen.verify.rules._keys import key_mounts
from stackgen.verify.rules.base import Rule

KEY_FOREIGN_MOUNT = Rule(
    id="SG106",
    name="key-volume-mounted",
    severity=Severity.CRITICAL,
    title="TLS key store mounted by a service other than the certificate writer and the edge",
    why="""The key volume holds the site's private keys. Only the certificate writer (certbot)
    needs to write it and only the edge needs to read it; any other service that mounts it,
    Node-RED above all, can steal the keys and impersonate the site.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            volumes: ["certs:/certs:ro"]
          certbot:
            image: certbot/certbot:v2.11.0
            volumes: ["certs:/etc/letsencrypt"]
        volumes:
          certs: {}
    """,
    good="""
        services:
          certbot:
            image: certbot/certbot:v2.11.0
            volumes: ["certs:/etc/letsencrypt"]
          edge:
            image: caddy:2.8.4
            volumes: ["certs:/etc/letsencrypt:ro"]
        volumes:
          certs: {}
    """,
    fix="Remove the key volume (or key directory bind) from this service.",
)


@KEY_FOREIGN_MOUNT.checks
def _key_foreign(topo: Topology) -> Iterator[Finding]:
    for svc, m in key_mounts(topo):
        if svc.role in (Role.CERTBOT, Role.EDGE):
            continue
        store = f"volume {m.source}" if m.type == "volume" else f"host directory {shown(m.source)}"
        who = "Node-RED" if svc.role is Role.NODE_RED else svc.name
        yield KEY_FOREIGN_MOUNT.finding(svc, f"{who} mounts the TLS key store ({store}) at {m.target}", m.src)


KEY_WRITABLE_EDGE = Rule(
    id="SG107",
    name="key-volume-writable-edge",
    severity=Severity.HIGH,
    title="Edge mounts the TLS key store writable",
    why="""The edge is the internet-facing service, the most likely to be compromised. Mounted
    read-only, the keys can be read but not replaced; writable, a compromised edge can swap the
    certificate the whole site presents, or plant files certbot's hooks will run.""",
    bad="""
        services:
          edge:
            image: nginx:1.27
            volumes: ["certs:/etc/letsencrypt"]
        volumes:
          certs: {}
    """,
    good="""
        services:
          edge:
            image: nginx:1.27
            volumes: ["certs:/etc/letsencrypt:ro"]
        volumes:
          certs: {}
    """,
    fix="Add `:ro` (or `read_only: true`) to the edge's key mount; let the certificate writer alone write it.",
)


@KEY_WRITABLE_EDGE.checks
def _key_writable_edge(topo: Topology) -> Iterator[Finding]:
    for svc, m in key_mounts(topo):
        if svc.role is Role.EDGE and not m.read_only:
            store = f"volume {m.source}" if m.type == "volume" else f"host directory {shown(m.source)}"
            yield KEY_WRITABLE_EDGE.finding(
                svc, f"edge mounts the TLS key store ({store}) writable at {m.target}", m.src
            )


CERTBOT_NEAR_NODE_RED = Rule(
    id="SG108",
    name="certbot-near-node-red",
    severity=Severity.HIGH,
    title="Certificate writer shares a network with Node-RED",
    why="""The certificate writer holds the private keys read-write. On a network with Node-RED, a
    malicious flow can attack it directly; keeping them apart means the keys are two compromises
    away from Node-RED, not one.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
          certbot:
            image: certbot/certbot:v2.11.0
            networks: [internal, public]
        networks:
          internal: {internal: true}
          public: {}
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
          certbot:
            image: certbot/certbot:v2.11.0
            networks: [public]
        networks:
          internal: {internal: true}
          public: {}
    """,
    fix="Attach the certificate writer only to the public (egress) network the ACME client needs.",
)


@CERTBOT_NEAR_NODE_RED.checks
def _certbot_near(topo: Topology) -> Iterator[Finding]:
    for cb in topo.by_role(Role.CERTBOT):
        for nr in topo.by_role(Role.NODE_RED):
            shared = sorted(topo.shared_networks(cb, nr))
            if shared:
                yield CERTBOT_NEAR_NODE_RED.finding(
                    cb,
                    f"certificate writer shares network {', '.join(shared)} with Node-RED ({nr.name})",
                    cb.at("networks"),
                )


RULES = (KEY_FOREIGN_MOUNT, KEY_WRITABLE_EDGE, CERTBOT_NEAR_NODE_RED)
