"""Real home-lab compose files, judged against their hand labels (tests/realworld.py explains the format):
every service gets its labelled role, every `must` finding is reported, no `must_not` finding is, and the
role-dependent rules report nothing the labels call wrong except the known false positives.
`bench/verify_precision.py` prints the same counts as a table, for this checkout and older ones."""

from __future__ import annotations

import json
import re

import pytest

from stackgen.verify.pipeline import verify
from tests.realworld import CORPUS, JUDGED, cases, measure, score

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_realworld_file_is_judged_as_labelled(case) -> None:
    reported, roles = measure(case)
    result = score(case, reported, roles)
    assert not result.role_errors, f"roles (expected, given): {result.role_errors}"
    assert not result.misses, f"real problems not reported: {sorted(result.misses)}"
    assert not case.must_not & reported, f"false positives reported: {sorted(case.must_not & reported)}"
    assert result.false_positives <= case.known, f"unlabelled role-dependent findings: {sorted(result.false_positives - case.known)}"
    assert case.known <= reported, f"a known false positive is gone: drop it from the label ({sorted(case.known - reported)})"


def test_corpus_is_real_and_fully_labelled() -> None:
    assert len(CASES) >= 20
    repos = set()
    for case in CASES:
        header = case.path.read_text().splitlines()[0]
        match = re.match(r"# Source: (\S+), (\S+) @ ([0-9a-f]{40})$", header)
        assert match, f"{case.name}: the first line names the source repository, path and commit"
        assert case.source == {"repo": match.group(1), "path": match.group(2), "commit": match.group(3)}
        repos.add(case.source["repo"])
        services = set(verify([case.path], environ={}, fail_on=None).topology.services)
        assert set(case.roles) == services, f"{case.name}: every service has a labelled role"
        labelled = case.must | case.may | case.must_not | case.known
        assert {s for s, _ in labelled} <= services, f"{case.name}: labels name only its services"
        assert not (case.must | case.may) & (case.must_not | case.known), f"{case.name}: a finding is either right or wrong"
        assert all(rule in JUDGED for _, rule in case.must_not | case.known | case.may), case.name
    assert len(repos) >= 10, "from many projects, not one"
    assert {p.name.removesuffix(".expected.json") for p in CORPUS.glob("*.expected.json")} == {c.name for c in CASES}
    for path in CORPUS.glob("*.expected.json"):
        assert set(json.loads(path.read_text())) <= {"source", "roles", "must", "may", "must_not", "known_false_positives", "notes"}
