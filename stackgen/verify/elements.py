"""Which element of the topology a finding concerns: shared by the pictures (Mermaid, HTML).

A `Finding` names a service (or none), because rules judge services and the text/JSON/SARIF
reports group by service. A picture has more places to put it: a finding about a network
(Node-RED on a shared routed network, a network that is not internal any more) belongs on that
network, and one about the key store (mounted by the wrong service, writable by the edge) on the
store, where someone looking at the diagram looks for it. This module decides that once, so both
renderers agree:

* store rules (key-volume and shared-volume rules, mount drift, key probes) go to the volume or
  key-store host directory of the mount the finding points at (its file:line:col is the mount's),
  else to the only key store the service mounts;
* network rules go to the network the message names (`network NAME`, `network 'NAME'`,
  `networks a, b`), among the networks of the finding's service;
* everything else, and anything that cannot be placed, stays on its service; findings without a
  service belong to the stack as a whole.

Storage is drawn as *stores*: named volumes that services mount, plus host directories that hold
TLS keys (`rules._keys`: a bind of `./letsencrypt` is as much the key store as a volume is).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from stackgen.findings import Finding
from stackgen.topology import Mount, Service, Topology

__all__ = ["Element", "Store", "STACK", "stores", "place", "placed", "worst", "NETWORK_RULES", "STORE_RULES"]

# Rules whose findings concern a network rather than the service that is on it.
NETWORK_RULES = frozenset({"SG039", "SG103", "SG105", "SG108", "SG111", "SG203", "SG207", "SG302"})
# Rules whose findings concern a store (named volume or key directory) rather than one service.
STORE_RULES = frozenset({"SG040", "SG106", "SG107", "SG208", "SG304"})


class Element(NamedTuple):
    """A thing in the picture: kind is service, network, volume (a named volume), hostdir or stack."""

    kind: str
    key: str


STACK = Element("stack", "")


@dataclass
class Store:
    """A named volume or a key-holding host directory, and who mounts it how."""

    element: Element
    label: str  # what a person reads: the volume key, or the host path as `./letsencrypt`
    key_store: bool = False  # holds TLS private keys
    mounts: list[tuple[Service, Mount]] = field(default_factory=list)


def _store_of(m: Mount) -> Element | None:
    from stackgen.verify.rules._hostpaths import norm

    if m.type == "volume" and m.source:
        return Element("volume", m.source)
    if m.type == "bind" and m.source:
        return Element("hostdir", norm(m.source))
    return None


def stores(topo: Topology) -> dict[Element, Store]:
    """Every store worth drawing, in a stable order: named volumes mounted by a service, and key directories.

    Other bind mounts (a config file, a data directory) are left out: they are the service's own
    business and would crowd the picture; the rules that judge them (host root, sensitive paths)
    put their findings on the service.
    """
    from stackgen.verify.rules._hostpaths import shown
    from stackgen.verify.rules._keys import key_stores

    keys = {Element("volume" if kind == "volume" else "hostdir", source) for kind, source in key_stores(topo)}
    found: dict[Element, Store] = {}
    for svc in sorted(topo.services.values(), key=lambda s: s.name):
        for m in svc.mounts:
            element = _store_of(m)
            if element is None or (element.kind == "hostdir" and element not in keys):
                continue
            store = found.get(element)
            if store is None:
                label = element.key if element.kind == "volume" else shown(element.key)
                store = found[element] = Store(element, label, element in keys)
            store.mounts.append((svc, m))
    return dict(sorted(found.items(), key=lambda item: (not item[1].key_store, item[0].kind, item[0].key)))


_NETWORK_LIST = re.compile(r"\bnetworks?\s+((?:['\"]?[^\s,'\"]+['\"]?)(?:,\s*['\"]?[^\s,'\"]+['\"]?)*)")


def _named_networks(message: str) -> list[str]:
    """Names the message lists after `network`/`networks`, in order."""
    names: list[str] = []
    for match in _NETWORK_LIST.finditer(message):
        names.extend(part.strip().strip("'\"") for part in match.group(1).split(","))
    return names


def _mentions(message: str, word: str) -> int:
    """Index of `word` as a whole name in `message` (names may hold `.`, `-`, `_`), or -1."""
    found = re.search(r"(?<![\w.-])" + re.escape(word) + r"(?![\w.-])", message)
    return found.start() if found else -1


def _place_network(topo: Topology, finding: Finding, svc: Service | None) -> Element | None:
    keys = [n for n in (svc.networks if svc else topo.networks) if n in topo.networks]
    if not keys:
        return None
    names = {k: {k, topo.networks[k].name} for k in keys}
    for listed in _named_networks(finding.message):
        for key in keys:
            if listed in names[key]:
                return Element("network", key)
    hits = []  # (where in the message, key): the network named first wins
    for key in keys:
        positions = [i for i in (_mentions(finding.message, name) for name in names[key]) if i >= 0]
        if positions:
            hits.append((min(positions), key))
    return Element("network", min(hits)[1]) if hits else None


def _place_store(topo: Topology, finding: Finding, svc: Service | None, drawn: dict[Element, Store]) -> Element | None:
    candidates = [svc] if svc else list(topo.services.values())
    if finding.file and finding.line:
        for s in candidates:
            for m in s.mounts:
                src = m.src
                if src and src.file == finding.file and src.line == finding.line and (not finding.col or src.col == finding.col):
                    element = _store_of(m)
                    if element in drawn:
                        return element
    if svc is None:
        return None
    mounted = [e for e in dict.fromkeys(_store_of(m) for m in svc.mounts) if e in drawn]
    named = [e for e in mounted if _mentions(finding.message, drawn[e].label) >= 0 or _mentions(finding.message, e.key) >= 0]
    if len(named) == 1:
        return named[0]
    keyed = [e for e in mounted if drawn[e].key_store]
    return keyed[0] if len(keyed) == 1 else None


def place(topo: Topology, finding: Finding, drawn: dict[Element, Store] | None = None) -> Element:
    """The one element `finding` is shown on (see the module docstring for the rules)."""
    svc = topo.services.get(finding.service) if finding.service else None
    element: Element | None = None
    if finding.rule in NETWORK_RULES:
        element = _place_network(topo, finding, svc)
    elif finding.rule in STORE_RULES:
        element = _place_store(topo, finding, svc, stores(topo) if drawn is None else drawn)
    if element is not None:
        return element
    if finding.service:
        return Element("service", finding.service)
    return STACK


def placed(topo: Topology, findings: Iterable[Finding], drawn: dict[Element, Store] | None = None) -> dict[Element, list[Finding]]:
    """Findings grouped by the element they are shown on, each group worst first."""
    drawn = stores(topo) if drawn is None else drawn
    groups: dict[Element, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(place(topo, finding, drawn), []).append(finding)
    for items in groups.values():
        items.sort(key=Finding.sort_key)
    return groups


def worst(findings: Sequence[Finding]) -> Finding | None:
    """The most severe of `findings` (None for none)."""
    return min(findings, key=Finding.sort_key, default=None)
