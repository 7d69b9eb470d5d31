"""`stackgen verify --format mermaid`: the topology as a Mermaid flowchart, for a README or an issue.

What it draws is what the security model is about: which services sit on which networks (internal
ones marked), what is published to the host, which volumes each service mounts (read-only or
writable), and each service's role; services with active findings at high or critical are marked, and
so are the networks and volumes such a finding concerns (`report_elements.placed`, the placement the
HTML report uses too).
Names are quoted and escaped, so a hostile service or network name cannot change the diagram.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stackgen.findings import Finding, Severity
from stackgen.topology import Role, Topology
from stackgen.verify.elements import placed

_ROLE_SHAPE = {Role.NODE_RED: ("[[", "]]"), Role.EDGE: ("{{", "}}"), Role.CERTBOT: ("[/", "/]"),
               Role.DATABASE: ("[(", ")]"), Role.OTHER: ("[", "]")}


def _id(prefix: str, name: str) -> str:
    return prefix + "_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(text: str) -> str:
    """Mermaid label text in double quotes: quotes and markup as entities."""
    return '"' + text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;") + '"'


def render_mermaid(topo: Topology, findings: Sequence[Finding] = ()) -> str:
    serious = [f for f in findings if not f.suppressed and f.severity in (Severity.HIGH, Severity.CRITICAL)]
    bad = {f.service for f in serious}
    lines = ["flowchart LR"]
    declared: set[str] = set()
    published = [s for s in topo.services.values() if s.ports]
    if published:
        lines.append(f"  host({_label('host ports')})")
    for key, network in sorted(topo.networks.items()):
        kind = "internal" if network.internal else ("external" if network.external else "routed")
        lines.append(f"  subgraph {_id('net', key)}[{_label(f'network {key} ({kind})')}]")
        for svc in sorted(topo.members(key), key=lambda s: s.name):
            open_, close = _ROLE_SHAPE[svc.role]
            lines.append(f"    {_id('svc', key + '__' + svc.name)}{open_}{_label(f'{svc.name} · {svc.role.value}')}{close}")
        lines.append("  end")
    for svc in sorted(topo.services.values(), key=lambda s: s.name):
        nodes = [_id("svc", n + "__" + svc.name) for n in svc.networks if n in topo.networks]
        if not nodes:
            nodes = [_id("svc", svc.name)]
            open_, close = _ROLE_SHAPE[svc.role]
            lines.append(f"  {nodes[0]}{open_}{_label(f'{svc.name} · {svc.role.value} · no network')}{close}")
        for a, b in zip(nodes, nodes[1:], strict=False):  # neighbours
            lines.append(f"  {a} -.-|{_label('same container')}| {b}")
        for port in svc.ports:
            lines.append(f"  host -->|{_label(port.describe())}| {nodes[0]}")
        for mount in svc.mounts:
            if mount.type == "volume" and mount.source:
                vid = _id("vol", mount.source)
                if vid not in declared:
                    declared.add(vid)
                    lines.append(f"  {vid}[({_label('volume ' + mount.source)})]")
                lines.append(f"  {nodes[0]} ---|{_label('ro' if mount.read_only else 'rw')}| {vid}")
        if svc.name in bad:
            lines.extend(f"  style {n} stroke:#c00,stroke-width:3px" for n in nodes)
    for element in sorted(placed(topo, serious)):
        if element.kind == "network" and element.key in topo.networks:
            lines.append(f"  style {_id('net', element.key)} stroke:#c00,stroke-width:3px")
        elif element.kind == "volume" and _id("vol", element.key) in declared:
            lines.append(f"  style {_id('vol', element.key)} stroke:#c00,stroke-width:3px")
    return "\n".join(lines) + "\n"
