"""Real home-lab compose files and what a correct judgment of each is (issue 11, part 3).

`tests/corpus/realworld/NAME.compose.yaml` is a public compose file, reduced to the keys stackgen
judges (its header names the repository, path and commit). `NAME.expected.json` is its hand label:

    {"source": {"repo", "path", "commit"},
     "roles": {service: "edge" | "node-red" | "certbot" | "database" | "other"},
     "must": {service: [rule ids]},          # real problems stackgen has to report
     "may": {service: [rule ids]},           # true, but not worth requiring (or the model's choice)
     "must_not": {service: [rule ids]},      # false positives a wrong role produced, or would
     "known_false_positives": {service: [rule ids]},  # wrong, still reported, not a role question
     "notes": "why"}

The role-dependent rules (`JUDGED`) are labelled exhaustively: each of their findings is in `must`,
`may` or a false positive. Other rules (hardening: capabilities, limits, users...) do not depend on
roles; only those named in `must` are scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus" / "realworld"

# Rules whose verdict depends on which service is the edge, Node-RED, the certificate writer or a database.
JUDGED = frozenset({"SG020", "SG021", "SG040"} | {f"SG1{n:02d}" for n in range(1, 13)})


@dataclass
class Case:
    name: str
    path: Path
    source: dict[str, str]
    roles: dict[str, str]
    must: set[tuple[str, str]]
    may: set[tuple[str, str]]
    must_not: set[tuple[str, str]]
    known: set[tuple[str, str]]
    notes: str = ""


def _pairs(table: dict[str, list[str]] | None) -> set[tuple[str, str]]:
    return {(service, rule) for service, rules in (table or {}).items() for rule in rules}


def cases() -> list[Case]:
    out = []
    for path in sorted(CORPUS.glob("*.compose.yaml")):
        name = path.name.removesuffix(".compose.yaml")
        data = json.loads(path.with_name(f"{name}.expected.json").read_text())
        out.append(Case(name, path, data["source"], data["roles"], _pairs(data.get("must")), _pairs(data.get("may")),
                        _pairs(data.get("must_not")), _pairs(data.get("known_false_positives")), data.get("notes", "")))
    return out


@dataclass
class Score:
    """One file judged against its label."""

    case: Case
    reported: set[tuple[str, str]]  # active (service, rule) findings
    roles: dict[str, str]  # service -> role the verifier gave
    catches: set[tuple[str, str]] = field(default_factory=set)
    misses: set[tuple[str, str]] = field(default_factory=set)
    false_positives: set[tuple[str, str]] = field(default_factory=set)
    role_errors: dict[str, tuple[str, str]] = field(default_factory=dict)  # service -> (expected, given)

    @property
    def judged(self) -> set[tuple[str, str]]:
        return {pair for pair in self.reported if pair[1] in JUDGED}


def score(case: Case, reported: set[tuple[str, str]], roles: dict[str, str]) -> Score:
    result = Score(case, reported, roles)
    result.catches = case.must & reported
    result.misses = case.must - reported
    judged = {pair for pair in reported if pair[1] in JUDGED}
    result.false_positives = (judged - case.must - case.may) | (case.must_not & reported)
    result.role_errors = {s: (want, roles.get(s, "?")) for s, want in case.roles.items() if roles.get(s) != want}
    return result


def measure(case: Case) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """Verify one file with whichever `stackgen` is importable: active findings and roles."""
    from stackgen.verify.pipeline import verify

    result = verify([case.path], environ={}, fail_on=None)
    reported = {(f.service or "(stack)", f.rule) for f in result.findings if not f.suppressed}
    return reported, {name: svc.role.value for name, svc in result.topology.services.items()}
