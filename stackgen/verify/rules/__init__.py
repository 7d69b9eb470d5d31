"""The rule registry: every check `stackgen verify` runs (yamllint's shape: a list, nothing else).

A rule (as in yamllint and ruff) is a small object with an id (`SG` + number,
never reused), a slug `name`, a severity, a title, *why* it matters (tied to
stackgen's security model), a bad and a good example, and the fix. Its check
reads only a `Topology`, so the same rule judges a compose file and a running
engine. `Rule` lives in `base` (a leaf: rule modules import it from there, never
from this package); modules group small families; `ALL_RULES` is the ordered
registry; `docs` writes docs/rules.md from it.

Numbering: SG0xx judge one container's hardening; SG1xx judge the topology
(who can reach Node-RED, who holds the keys); SG2xx judge drift of a running
stack from its file; SG3xx are the outcomes of `verify --live`'s probes.
"""

from __future__ import annotations

from collections.abc import Iterable

from stackgen.findings import Finding
from stackgen.topology import Topology
from stackgen.verify.rules import (
    capabilities,
    credentials,
    drift,
    editor_exposure,
    images,
    instance_rules,
    isolation,
    keystore,
    live_probes,
    logging_rules,
    mounts,
    namespaces,
    networking,
    resources,
    topology_rules,
    user,
)
from stackgen.verify.rules.base import Rule

__all__ = ["Rule", "ALL_RULES", "RETIRED", "get_rule", "run_rules"]

# Every module that holds rules; adding a family is one line here.
MODULES = (
    isolation,
    mounts,
    namespaces,
    capabilities,
    user,
    networking,
    images,
    credentials,
    resources,
    logging_rules,
    topology_rules,
    instance_rules,
    editor_exposure,
    keystore,
    drift,
    live_probes,
)

# Ids that were used once and must never be given to another rule.
RETIRED: frozenset[str] = frozenset()

ALL_RULES: tuple[Rule, ...] = tuple(sorted((rule for module in MODULES for rule in module.RULES), key=lambda r: r.id))
_BY_KEY = {r.id: r for r in ALL_RULES} | {r.name: r for r in ALL_RULES}


def get_rule(key: str) -> Rule | None:
    """A rule by id (`SG012`, case-insensitive) or by name (`root-user`)."""
    key = key.strip()
    return _BY_KEY.get(key.upper()) or _BY_KEY.get(key.lower())


def run_rules(topo: Topology, rules: Iterable[Rule] = ALL_RULES) -> list[Finding]:
    """Every finding of every rule, unsorted and unsuppressed."""
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(rule.run(topo))
    return findings
