"""The corpus: realistic compose files, hardened and insecure, each with its expected findings.

`tests/corpus/NAME.compose.yaml` goes with `NAME.expected.json`:
`{"services": {service: [rule ids]}, "suppressed": {service: [rule ids]}}` (active findings
per service; suppressed ones listed apart). The rendered reference stacks in `compose/`
must stay free of anything at or above `high`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackgen.verify.pipeline import verify

ROOT = Path(__file__).resolve().parents[3]
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.compose.yaml"))
RENDERED = sorted((ROOT / "compose").glob("*/compose.yaml"))


def by_service(findings, suppressed: bool) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for f in findings:
        if f.suppressed == suppressed:
            out.setdefault(f.service or "(stack)", set()).add(f.rule)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("path", CORPUS, ids=[p.name.removesuffix(".compose.yaml") for p in CORPUS])
def test_corpus_expected_findings(path: Path) -> None:
    expected = json.loads(path.with_name(path.name.replace(".compose.yaml", ".expected.json")).read_text())
    result = verify([path], environ={})
    active = by_service(result.findings, suppressed=False)
    wanted = {k: v for k, v in expected["services"].items() if v}
    assert active == wanted
    assert set(expected["services"]) == set(result.topology.services)
    assert by_service(result.findings, suppressed=True) == expected.get("suppressed", {})


def test_corpus_covers_the_headline_cases() -> None:
    """The cases the corpus exists for: forum Node-RED, Traefik with the socket, a hardened stack."""
    names = {p.name.removesuffix(".compose.yaml") for p in CORPUS}
    assert {"forum-nodered", "traefik-socket", "hardened"} <= names
    forum = json.loads((ROOT / "tests/corpus/forum-nodered.expected.json").read_text())["services"]["node-red"]
    assert {"SG102", "SG018", "SG020"} <= set(forum)
    traefik = json.loads((ROOT / "tests/corpus/traefik-socket.expected.json").read_text())["services"]["traefik"]
    assert "SG002" in traefik
    hardened = json.loads((ROOT / "tests/corpus/hardened.expected.json").read_text())["services"]
    assert not any(hardened.values())


GOLDEN = sorted((ROOT / "tests" / "golden").glob("*/compose.yaml"))


@pytest.mark.parametrize("path", RENDERED + GOLDEN, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in RENDERED + GOLDEN])
def test_rendered_stacks_verify_clean_at_low(path: Path) -> None:
    """Every stack stackgen renders (compose/ and every edge x TLS mode) is clean at --fail-on low."""
    result = verify([path], environ={}, fail_on="low")
    assert result.exit_code == 0, [(f.service, f.rule, f.message) for f in result.findings if not f.suppressed]
    assert all(f.suppressed for f in result.findings)
