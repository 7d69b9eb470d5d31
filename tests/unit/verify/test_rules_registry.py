"""The registry: ids, names, documentation, coverage of compose-lint and KICS, docs/rules.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from stackgen.topology import Topology
from stackgen.verify.rules import ALL_RULES, RETIRED, get_rule
from stackgen.verify.rules.docs import rules_markdown

ROOT = Path(__file__).resolve().parents[3]

# compose-lint 0.36's rules and KICS's docker-compose queries (by id prefix): each must be
# covered by at least one stackgen rule (docs/rules.md says which, and how closely).
COMPOSE_LINT = [f"CL-{n:04d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 16, 17, 18, 19, 20, 21, 22)] + [
    f"CL-{n:04d}" for n in (24, 25, 26, 27, 28, 29, 30)
]
KICS = [
    "4d9f44c6",  # Cgroup Not Default
    "ce76b7d0",  # Container Capabilities Unrestricted
    "451d79dc",  # Container Traffic Not Bound To Host Interface
    "6b610c50",  # Cpus Not Limited
    "404fde2c",  # Default Seccomp Profile Disabled
    "d6355c88",  # Docker Socket Mounted In Container
    "698ed579",  # Healthcheck Not Set
    "4f31dd9f",  # Host Namespace is Shared
    "bb9ac4f7",  # Memory Not Limited
    "ce14a68b",  # Networks Not Set
    "27fcc7d6",  # No New Privileges Not Set
    "221e0658",  # Pids Limit Not Set
    "ae5b6871",  # Privileged Containers Enabled
    "bc2908f3",  # Privileged Ports Mapped In Container
    "2fc99041",  # Restart Policy On Failure Not Set To 5
    "610e266e",  # Security Opt Not Set
    "baa3890f",  # Shared Host IPC Namespace
    "071a71ff",  # Shared Host Network Namespace
    "8af7162d",  # Shared Host User Namespace
    "8c978947",  # Shared Volumes Between Containers
    "1c1325ff",  # Volume Has Sensitive Host Directory
    "baa452f0",  # Volume Mounted In Multiple Containers (propagation)
]


def test_ids_are_well_formed_unique_and_never_reused() -> None:
    ids = [r.id for r in ALL_RULES]
    assert all(re.fullmatch(r"SG\d{3}", i) for i in ids)
    assert len(ids) == len(set(ids))
    assert not set(ids) & RETIRED
    assert ids == sorted(ids)


def test_names_are_unique_slugs() -> None:
    names = [r.name for r in ALL_RULES]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9-]+", n) for n in names)


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r.id for r in ALL_RULES])
def test_every_rule_is_documented(rule) -> None:
    for field in ("title", "why", "fix"):
        assert len(getattr(rule, field)) > 10, field
    if rule.kind == "static":
        assert rule.bad_example.startswith("services:") and rule.good_example.startswith("services:")
    else:
        assert rule.bad_example and rule.good_example
    assert rule.kind in ("static", "drift", "probe")
    assert (rule.check is not None) == (rule.kind != "probe")
    assert rule.id in rule.explain() and rule.title in rule.markdown()


def test_lookup_by_id_or_name() -> None:
    assert get_rule("SG018") is get_rule("sg018") is get_rule("root-user")
    assert get_rule("SG999") is None


def test_rules_run_on_an_empty_topology() -> None:
    for rule in ALL_RULES:
        assert rule.run(Topology()) == []


@pytest.mark.parametrize("cl", COMPOSE_LINT)
def test_compose_lint_rule_is_covered(cl: str) -> None:
    assert any(cl in r.compose_lint for r in ALL_RULES), cl


@pytest.mark.parametrize("kics", KICS)
def test_kics_query_is_covered(kics: str) -> None:
    assert any(kics in q for r in ALL_RULES for q in r.kics), kics


def test_docs_rules_md_is_current() -> None:
    doc = ROOT / "docs" / "rules.md"
    assert doc.read_text() == rules_markdown(), "regenerate: python -m stackgen.verify.rules > docs/rules.md"


def test_rules_read_only_the_topology() -> None:
    """Rules must judge a Topology alone (the engine loader will build one without YAML)."""
    forbidden = {"stackgen.composefile.loader", "stackgen.composefile.yaml_loader", "stackgen.composefile.env", "yaml", "ruamel"}
    for path in (ROOT / "stackgen" / "rules").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module not in forbidden, (path.name, node.module)
            elif isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & forbidden, path.name
