"""Every rule fires on its documented bad example and stays quiet on its good one.

The examples are the rules' user documentation (`stackgen rules SG0xx`, docs/rules.md),
so this also keeps the documentation honest. Each example is written to a compose
file and goes through the whole pipeline (load -> rules -> suppressions).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.verify.pipeline import verify
from stackgen.verify.rules import ALL_RULES
from stackgen.verify.rules.base import Rule


def active_rules(tmp_path: Path, text: str) -> set[str]:
    path = tmp_path / "compose.yaml"
    path.write_text(text + "\n")
    result = verify([path], environ={})
    return {f.rule for f in result.findings if not f.suppressed}


STATIC = [r for r in ALL_RULES if r.kind == "static"]  # drift and probe rules: tests/unit/live/test_live.py


@pytest.mark.parametrize("rule", STATIC, ids=[r.id for r in STATIC])
def test_rule_fires_on_bad_example(rule: Rule, tmp_path: Path) -> None:
    assert rule.id in active_rules(tmp_path, rule.bad_example)


@pytest.mark.parametrize("rule", STATIC, ids=[r.id for r in STATIC])
def test_rule_is_quiet_on_good_example(rule: Rule, tmp_path: Path) -> None:
    assert rule.id not in active_rules(tmp_path, rule.good_example)
