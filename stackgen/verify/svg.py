"""The topology drawn as one inline SVG: the host's ports and the stores, services, networks, and a badge of
findings on each element (for the HTML report, `verify --format html`).

Why apart from the page: most of the report is this geometry (where each box and line goes), and the page
around it (sections, findings, the live matrix) reads better without it. Every input string is escaped in
one function, `escape`, which the page uses too; ids are counters (`Ids`), never input text.

Layout (left to right): the host (published ports) and storage (volumes, key directories) --
services -- networks. Lines: port -> service (red when on all interfaces), store -> service
(labelled rw/ro; writable is solid), service -> network (internal networks are dashed).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stackgen.findings import Finding, Severity
from stackgen.topology import Port, Topology
from stackgen.verify.elements import Element, Store

__all__ = ["Ids", "escape", "topology_svg", "ROLE_COLOR", "ROLE_ORDER", "ROLE_LEGEND", "OTHER_COLOR", "SEV_SHORT"]


def escape(value: object) -> str:
    """The one escape: text and attribute values alike (quotes included)."""
    return html.escape(str(value), quote=True)



_e = escape  # short, as the drawing calls it on every label


# --- geometry -------------------------------------------------------------------------------

MARGIN = 24
LEFT_W, SVC_W, NET_W = 310, 270, 260
GAP = 150  # between columns, where the lines run
X_LEFT = MARGIN
X_SVC = X_LEFT + LEFT_W + GAP
X_NET = X_SVC + SVC_W + GAP
WIDTH = X_NET + NET_W + MARGIN
TOP = 56  # below the column headings
SVC_H, NET_H, STORE_H = 80, 76, 62
PORT_H, HOST_HEAD = 30, 34
V_GAP = 30
CHAR = 0.62  # average glyph width of the fonts below, in em: enough to truncate conservatively

# By role *value*: a role added to `topology.Role` is drawn (grey, last) before it has a colour here.
ROLE_COLOR = {"node-red": "#8f0000", "edge": "#0969da", "certbot": "#1a7f37", "database": "#8250df", "other": "#6e7781"}
ROLE_ORDER = {"edge": 0, "node-red": 1, "certbot": 2, "database": 3}
ROLE_LEGEND = {"certbot": "certbot (key writer)"}
OTHER_COLOR = "#6e7781"
SEV_SHORT = {Severity.CRITICAL: "crit", Severity.HIGH: "high", Severity.MEDIUM: "med", Severity.LOW: "low"}


def _fit(text: str, width: float, size: float) -> str:
    """`text` cut with an ellipsis to fit `width` px at font `size` (SVG text does not wrap)."""
    room = max(1, int(width / (size * CHAR)))
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


@dataclass
class _Box:
    element: Element
    x: float
    y: float
    w: float
    h: float
    left: list[tuple[float, Any]] = field(default_factory=list)  # (other end's y, link) entering on the left
    right: list[tuple[float, Any]] = field(default_factory=list)

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def anchor(self, side: str, link: Any) -> float:
        """The y where `link` meets this box: links on one side are spread out, in the order of their other ends."""
        ends = sorted(self.left if side == "left" else self.right, key=lambda item: item[0])
        index = next(i for i, (_, other) in enumerate(ends) if other is link)
        return self.y + (index + 1) * self.h / (len(ends) + 1)


def _stack(items: list[tuple[float, Any, float]], top: float) -> dict[Any, float]:
    """Place boxes (wanted centre y, key, height) top-down in order of wanted y, without overlap."""
    placed_at: dict[Any, float] = {}
    floor = top
    for want, key, height in sorted(items, key=lambda item: item[0]):
        y = max(floor, want - height / 2)
        placed_at[key] = y
        floor = y + height + V_GAP
    return placed_at


def _port_text(port: Port) -> str:
    host = port.host_ip or "0.0.0.0"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    published = port.published or "random"
    return f"{host}:{published} → {port.target}/{port.protocol}"


class Ids:
    """Element ids for one section: counters, never names (names come from the input)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ids: dict[Element, str] = {}

    def __call__(self, element: Element) -> str:
        if element not in self.ids:
            self.ids[element] = f"{self.prefix}-{element.kind}-{len(self.ids)}"
        return self.ids[element]


def topology_svg(topo: Topology, groups: dict[Element, list[Finding]], drawn: dict[Element, Store], ids: Ids) -> str:
    """The topology as inline SVG, with a severity badge on each element that has active findings."""
    services = sorted(topo.services.values(), key=lambda s: (ROLE_ORDER.get(s.role.value, 9), s.name))
    ports = [(svc, port) for svc in services for port in svc.ports]
    svc_links = {s.name: [n for n in s.networks if n in topo.networks] for s in services}

    # services first, in role order; their heights grow with the lines they take
    incoming = {s.name: sum(1 for _ in s.ports) for s in services}
    for store in drawn.values():
        for svc, _ in store.mounts:
            incoming[svc.name] += 1
    boxes: dict[Element, _Box] = {}
    y = TOP
    for svc in services:
        height = max(SVC_H, 15 * (max(incoming[svc.name], len(svc_links[svc.name])) + 1))
        boxes[Element("service", svc.name)] = _Box(Element("service", svc.name), X_SVC, y, SVC_W, height)
        y += height + V_GAP
    centre = {name: boxes[Element("service", name)].cy for name in topo.services}

    # networks beside the services on them
    wanted = []
    for key in sorted(topo.networks):
        members = [centre[s.name] for s in services if key in svc_links[s.name]]
        wanted.append((sum(members) / len(members) if members else 10**6, Element("network", key), NET_H))
    for element, y in _stack(wanted, TOP).items():
        boxes[element] = _Box(element, X_NET, y, NET_W, NET_H)

    # the host's ports and the stores, beside the services they lead to
    host = Element("host", "")
    left = []
    if ports:
        host_h = HOST_HEAD + len(ports) * (PORT_H + 6) + 4
        left.append((sum(centre[s.name] for s, _ in ports) / len(ports), host, host_h))
    for element, store in drawn.items():
        users = [centre[s.name] for s, _ in store.mounts]
        left.append((sum(users) / len(users), element, STORE_H))
    for element, y in _stack(left, TOP).items():
        height = next(h for _, e, h in left if e == element)
        boxes[element] = _Box(element, X_LEFT, y, LEFT_W, height)

    # links, registered on both ends first so anchors can be spread
    links: list[tuple[str, Any, _Box, _Box, dict[str, Any]]] = []  # (kind, id, from, to, data)
    port_y: dict[int, float] = {}
    if ports:
        hb = boxes[host]
        for i, (svc, port) in enumerate(ports):
            py = hb.y + HOST_HEAD + i * (PORT_H + 6) + PORT_H / 2
            port_y[i] = py
            link = ("port", i)
            boxes[Element("service", svc.name)].left.append((py, link))
            links.append(("port", link, hb, boxes[Element("service", svc.name)], {"port": port, "y": py}))
    for element, store in drawn.items():
        sb = boxes[element]
        for svc, mount in store.mounts:
            tb = boxes[Element("service", svc.name)]
            link = ("mount", id(mount))
            tb.left.append((sb.cy, link))
            sb.right.append((tb.cy, link))
            links.append(("mount", link, sb, tb, {"mount": mount, "store": store}))
    for svc in services:
        sb = boxes[Element("service", svc.name)]
        for key in svc_links[svc.name]:
            nb = boxes[Element("network", key)]
            link = ("net", svc.name, key)
            sb.right.append((nb.cy, link))
            nb.left.append((sb.cy, link))
            links.append(("net", link, sb, nb, {"network": topo.networks[key]}))

    flagged_mounts = {
        (f.file, f.line) for element, items in groups.items() if element.kind in ("volume", "hostdir") for f in items if not f.suppressed
    }
    height = max([b.y + b.h for b in boxes.values()] + [TOP + SVC_H]) + MARGIN
    out = [
        f'<svg class="topology" viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" '
        f'height="{height:.0f}" role="img" aria-label="stack topology">',
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker>'
        '<marker id="arrow-open" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#d1242f"/></marker>'
        "</defs>",
        f'<text class="colhead" x="{X_LEFT}" y="28">host: published ports · storage</text>',
        f'<text class="colhead" x="{X_SVC}" y="28">services</text>',
        f'<text class="colhead" x="{X_NET}" y="28">networks</text>',
    ]

    # lines under the boxes
    for kind, link, a, b, data in links:
        if kind == "port":
            x1, y1 = a.x + a.w - 12, data["y"]
            x2, y2 = b.x, b.anchor("left", link)
            open_all = data["port"].all_interfaces
            cls = "link port all" if open_all else "link port"
            marker = "arrow-open" if open_all else "arrow"
            out.append(f'<path class="{cls}" data-service="{_e(b.element.key)}" d="{_curve(x1, y1, x2 - 2, y2)}" '
                       f'marker-end="url(#{marker})"/>')
        elif kind == "mount":
            mount, store = data["mount"], data["store"]
            x1, y1 = a.x + a.w, a.anchor("right", link)
            x2, y2 = b.x, b.anchor("left", link)
            mode = "ro" if mount.read_only else "rw"
            classes = ["link", "mount", mode]
            if store.key_store:
                classes.append("key")
            if mount.src and (mount.src.file, mount.src.line) in flagged_mounts:
                classes.append("flagged")
            tip = f"{mount.target} ({mode})"
            cls = " ".join(classes)
            out.append(f'<path class="{cls}" data-service="{_e(b.element.key)}" data-store="{_e(store.element.key)}" '
                       f'd="{_curve(x1, y1, x2, y2)}"><title>{_e(tip)}</title></path>')
            out.append(f'<text class="mode {mode}" x="{x2 - 8:.1f}" y="{y2 - 4:.1f}" text-anchor="end">{mode}</text>')
        else:
            x1, y1 = a.x + a.w, a.anchor("right", link)
            x2, y2 = b.x, b.anchor("left", link)
            cls = "link net internal" if data["network"].internal else "link net"
            out.append(f'<path class="{cls}" data-service="{_e(a.element.key)}" data-network="{_e(b.element.key)}" '
                       f'd="{_curve(x1, y1, x2, y2)}"/>')

    # boxes
    if ports:
        hb = boxes[host]
        out.append(f'<g class="host" id="{ids(host)}">')
        out.append(f'<rect class="hostbox" x="{hb.x}" y="{hb.y:.1f}" width="{hb.w}" height="{hb.h:.1f}" rx="10"/>')
        out.append(f'<text class="name" x="{hb.x + 12}" y="{hb.y + 22:.1f}">host</text>')
        out.append(f'<text class="sub" x="{hb.x + hb.w - 12}" y="{hb.y + 22:.1f}" text-anchor="end">published ports</text>')
        for i, (svc, port) in enumerate(ports):
            py = port_y[i] - PORT_H / 2
            cls = "port all" if port.all_interfaces else "port"
            label = _port_text(port)
            tip = f"{svc.name}: {port.describe()}"
            out.append(f'<g class="{cls}" data-service="{_e(svc.name)}"><title>{_e(tip)}</title>')
            out.append(f'<rect x="{hb.x + 10}" y="{py:.1f}" width="{hb.w - 22}" height="{PORT_H}" rx="6"/>')
            tag_w = 86 if port.all_interfaces else 0
            out.append(f'<text class="label" x="{hb.x + 18}" y="{py + 19:.1f}">{_e(_fit(label, hb.w - 40 - tag_w, 12))}</text>')
            if port.all_interfaces:
                out.append(f'<text class="alltag" x="{hb.x + hb.w - 20}" y="{py + 19:.1f}" text-anchor="end">all interfaces</text>')
            out.append("</g>")
        out.append("</g>")
    for element, store in drawn.items():
        b = boxes[element]
        kind = "volume" if element.kind == "volume" else "host dir"
        cls = "store key" if store.key_store else "store"
        tip = f"{kind} {store.label}"
        out.append(f'<g class="{cls}" id="{ids(element)}" data-kind="{element.kind}" data-key="{_e(element.key)}"><title>{_e(tip)}</title>')
        out.append(f'<rect x="{b.x}" y="{b.y:.1f}" width="{b.w}" height="{b.h}" rx="14"/>')
        tag = "key store · TLS keys" if store.key_store else ""
        out.append(f'<text class="name" x="{b.x + 14}" y="{b.y + 24:.1f}">{_e(_fit(store.label, b.w - 28, 14))}</text>')
        out.append(f'<text class="sub" x="{b.x + 14}" y="{b.y + 45:.1f}">{kind}</text>')
        if tag:
            out.append(f'<text class="keytag" x="{b.x + b.w - 12}" y="{b.y + 45:.1f}" text-anchor="end">{tag}</text>')
        out.append(_badge(groups.get(element, ()), b, ids(element)))
        out.append("</g>")
    for svc in services:
        element = Element("service", svc.name)
        b = boxes[element]
        color = ROLE_COLOR.get(svc.role.value, OTHER_COLOR)
        extras = [f"user {svc.user}" if svc.user else "user: image default"]
        if svc.network_mode:
            extras.append(f"network_mode {svc.network_mode}")
        if svc.privileged:
            extras.append("privileged")
        image = svc.image or "built locally"
        tip = f"{svc.name} ({svc.role.value}): {image}"
        out.append(f'<g class="service role-{svc.role.value}" id="{ids(element)}" data-key="{_e(svc.name)}" data-role="{svc.role.value}">'
                   f"<title>{_e(tip)}</title>")
        out.append(f'<rect class="box" x="{b.x}" y="{b.y:.1f}" width="{b.w}" height="{b.h:.1f}" rx="8"/>')
        out.append(f'<rect class="roleband" x="{b.x}" y="{b.y:.1f}" width="8" height="{b.h:.1f}" fill="{color}"/>')
        out.append(f'<text class="name" x="{b.x + 18}" y="{b.y + 24:.1f}">{_e(_fit(svc.name, b.w - 110, 14))}</text>')
        out.append(f'<text class="role" x="{b.x + b.w - 12}" y="{b.y + 24:.1f}" text-anchor="end" fill="{color}">{svc.role.value}</text>')
        out.append(f'<text class="sub" x="{b.x + 18}" y="{b.y + 44:.1f}">{_e(_fit(image, b.w - 30, 12))}</text>')
        out.append(f'<text class="sub" x="{b.x + 18}" y="{b.y + 62:.1f}">{_e(_fit(" · ".join(extras), b.w - 30, 12))}</text>')
        out.append(_badge(groups.get(element, ()), b, ids(element)))
        out.append("</g>")
    for key in sorted(topo.networks):
        element = Element("network", key)
        network = topo.networks[key]
        b = boxes[element]
        kind = "internal" if network.internal else ("external" if network.external else "routed")
        out.append(f'<g class="network {kind}" id="{ids(element)}" data-key="{_e(key)}" data-internal="{str(network.internal).lower()}">'
                   f'<title>{_e(f"network {key} ({network.name}): {kind}")}</title>')
        out.append(f'<rect class="box" x="{b.x}" y="{b.y:.1f}" width="{b.w}" height="{b.h}" rx="8"/>')
        out.append(f'<text class="name" x="{b.x + 14}" y="{b.y + 24:.1f}">{_e(_fit(key, b.w - 100, 14))}</text>')
        out.append(f'<text class="kindtag {kind}" x="{b.x + b.w - 12}" y="{b.y + 24:.1f}" text-anchor="end">{kind}</text>')
        sub = "no route outside the host" if network.internal else ("shared with other stacks" if network.external else "routes outside the host")
        out.append(f'<text class="sub" x="{b.x + 14}" y="{b.y + 45:.1f}">{_e(_fit(network.name, b.w - 28, 12))}</text>')
        out.append(f'<text class="sub" x="{b.x + 14}" y="{b.y + 63:.1f}">{sub}</text>')
        out.append(_badge(groups.get(element, ()), b, ids(element)))
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (x1 + x2) / 2
    return f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"


def _badge(findings: Iterable[Finding], box: _Box, element_id: str) -> str:
    """Severity counts on the element's top edge, linking to its findings below the picture."""
    active = [f for f in findings if not f.suppressed]
    if not active:
        return ""
    counts = [(sev, sum(1 for f in active if f.severity is sev)) for sev in reversed(Severity)]
    counts = [(sev, n) for sev, n in counts if n]
    tip = "; ".join(f"{f.rule} {f.severity.value}: {f.message}" for f in sorted(active, key=Finding.sort_key))
    parts = [f'<a class="badge" href="#f-{element_id}"><title>{_e(tip)}</title>']
    pills = [(sev, f"{n} {SEV_SHORT[sev]}") for sev, n in counts]  # worst first, right-aligned on the box
    widths = [14 + len(text) * 6.6 for _, text in pills]
    x = box.x + box.w - 8 - sum(widths) - 4 * (len(pills) - 1)
    for (sev, text), width in zip(pills, widths, strict=True):
        parts.append(f'<rect class="sev-{sev.value}" x="{x:.1f}" y="{box.y - 14:.1f}" width="{width:.1f}" height="20" rx="10"/>')
        parts.append(f'<text x="{x + width / 2:.1f}" y="{box.y:.1f}" text-anchor="middle">{text}</text>')
        x += width + 4
    parts.append("</a>")
    return "".join(parts)
