"""The drift watch: live verification (`stackgen verify --live`'s rules, cheap probes) in a child process.

Why a child: the live verifier loads every rule, the compose loader and the probes; run every
few minutes inside a process that lives for months, that is memory held for nothing (and a
crash of the verifier must not take the healer with it). A child pays ~0.5 s of CPU per run.
So this module stays light when the supervisor imports it (the standard library, and that
lazily); the child runs it as `python -m stackgen.supervise.drift DIR PROBES`, and only `main()`
imports the verifier. The child prints one line of JSON: a list of findings, or
`{"unavailable": why}` when this installation has no live verification.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODULE = "stackgen.supervise.drift"


@dataclass
class DriftFinding:
    """A finding as the drift watch needs it (from stackgen.verify.report.Finding, or its JSON form)."""

    rule: str
    severity: str
    message: str
    service: str | None = None
    fix: str | None = None
    suppressed: bool = False


def child_command(directory: Path, probes: str) -> list[str]:
    """The child's command line (also what bench/heal_latency.py measures)."""
    return [sys.executable, "-m", MODULE, str(directory), probes]


def live_findings_in_child(directory: Path, probes: str, timeout: float = 600.0) -> list[DriftFinding] | dict[str, Any]:
    """`stackgen.live.checks.live_findings` (issue #5) in a child process: findings, or {"unavailable": why}."""
    import subprocess

    run = subprocess.run(child_command(directory, probes), capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        raise RuntimeError(f"live verification failed (exit {run.returncode}): {run.stderr.strip()[-400:]}")
    data = json.loads(run.stdout.strip().splitlines()[-1])
    if isinstance(data, dict):
        return data
    return [DriftFinding(d["rule"], d["severity"], d["message"], d.get("service"), d.get("fix"), bool(d.get("suppressed"))) for d in data]


def finding_id(finding: Any) -> str:
    """A stable id of one finding: rule, service and a digest of its message."""
    import hashlib

    digest = hashlib.sha256(f"{finding.rule}|{finding.service}|{finding.message}".encode()).hexdigest()[:10]
    return f"{finding.rule}:{finding.service or '-'}:{digest}"


def main(argv: list[str] | None = None) -> int:
    """The child: `python -m stackgen.supervise.drift DIR PROBES`; one JSON line on stdout."""
    directory, probes = argv if argv is not None else sys.argv[1:3]
    try:
        from stackgen.live.checks import live_findings
    except ImportError as exc:
        print(json.dumps({"unavailable": f"live verification is not available in this installation ({exc})"}))
        return 0
    from stackgen import engine as engines

    engine, path = engines.client(), Path(directory)
    if _is_swarm(path):
        findings = _swarm_findings(engine, path, probes)
    else:
        findings = live_findings(engine, path, probes=probes)
    print(json.dumps([f.to_dict() for f in findings]))
    return 0


def _is_swarm(directory: Path) -> bool:
    from stackgen.stackdir import StackDir

    return StackDir(directory).target == "swarm"


def _swarm_findings(engine: Any, directory: Path, probes: str) -> list[Any]:
    """A swarm stack is judged as `stackgen verify --live DIR` judges it: against compose.swarm.yaml (what was deployed),
    with a probe on one of its overlays run as a one-task service on a manager (live/swarm_probe.py: no container may
    join a stack's overlay). The drift watch's cheap probes (TLS, keys) never attach the edge to a probe network, so
    they never take the edge's published ports away (docs/swarm.md).

    What the stack file itself is found to have is not drift: on a swarm every service has SG011 (Swarm cannot set
    no-new-privileges), known when it was deployed and `verify`'s to report, not an alert on every service for as long
    as the stack runs. A live finding whose rule and service the static verification of compose.swarm.yaml also has
    comes back marked `baseline` and suppressed; anything the running stack adds (a port published by hand, a container
    joined to an overlay) alerts."""
    from stackgen import engine as engines
    from stackgen.live.checks import verify_live
    from stackgen.stackdir import StackDir
    from stackgen.verify.pipeline import verify

    stack_dir = StackDir(directory)
    if engines.swarm_role(engine) == "manager":
        from stackgen.live.swarm_probe import OverlayProbes

        engine = OverlayProbes(engine, stack_dir.project())
    findings = verify_live(engine, directory=directory, files=[stack_dir.swarm_path], probe_level=probes, fail_on=None).findings
    known = {(f.rule, f.service) for f in verify([stack_dir.swarm_path], fail_on=None).findings}
    for finding in findings:
        if (finding.rule, finding.service) in known and not finding.suppressed:
            finding.suppressed, finding.suppression_kind = True, "baseline"
            finding.suppression_reason = "the stack file has it too: known when it was deployed, not drift"
    return findings


if __name__ == "__main__":
    sys.exit(main())
