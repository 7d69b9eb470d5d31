"""The verify pipeline: topology -> rules (+ probes) -> suppressions -> findings -> exit code.

Why a module of its own: one pipeline for every way a stack is judged. `verify` loads compose
files into a Topology; live verification (`stackgen.live.checks`) observes the running engine into
one; both hand it to `verify_topology`, the one public place where suppressions are checked and
applied and the fail-on threshold decides the exit code. The CLI stays a thin shell around it.

Exit codes: 0 clean (nothing at or above `fail_on`), 1 findings at or above it,
2 usage or load errors (raised as `ComposeError`/`UsageError` for the caller).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackgen.composefile.loader import find_compose_files, load_compose
from stackgen.composefile.yaml_loader import ComposeError
from stackgen.findings import Finding, Severity
from stackgen.topology import Suppression, Topology
from stackgen.verify.report import Summary, fails, summarise
from stackgen.verify.rules import ALL_RULES, get_rule, run_rules

__all__ = [
    "EXIT_CLEAN",
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "ComposeError",
    "Policy",
    "UsageError",
    "VerifyResult",
    "parse_cli_ignore",
    "parse_fail_on",
    "verify",
    "verify_topology",
]

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageError(ValueError):
    """A bad option value; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class Policy:
    """What the user asked of a verification: rules ignored on the command line, and where failure starts."""

    ignores: tuple[Suppression, ...] = ()
    fail_on: Severity | None = Severity.HIGH

    @classmethod
    def parse(cls, ignore: Sequence[str] = (), fail_on: str | Severity | None = "high") -> Policy:
        """From the options' text (`--ignore SG012=reason`, `--fail-on high`); raises UsageError."""
        threshold = fail_on if isinstance(fail_on, Severity) or fail_on is None else parse_fail_on(fail_on)
        return cls(ignores=tuple(parse_cli_ignore(i) for i in ignore), fail_on=threshold)


@dataclass
class VerifyResult:
    topology: Topology
    findings: list[Finding]
    summary: Summary
    exit_code: int


def parse_fail_on(text: str | None) -> Severity | None:
    """`high` -> Severity.HIGH; `none`/`never` -> None (never fail)."""
    if text is None:
        return Severity.HIGH
    if text.strip().lower() in ("none", "never", "off"):
        return None
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc} or none") from None


def parse_cli_ignore(text: str) -> Suppression:
    """`SG012`, `SG012=reason` or `SG012:reason` -> a command-line suppression."""
    rule, sep, reason = text.replace("=", ":", 1).partition(":")
    found = get_rule(rule)
    if found is None:
        raise UsageError(f"--ignore: unknown rule {rule.strip()!r} (see `stackgen rules`)")
    return Suppression(found.id, reason.strip() if sep and reason.strip() else "ignored on the command line", "cli")


def verify(
    files: Sequence[str | Path] = (),
    env_files: Sequence[str | Path] = (),
    profiles: Sequence[str] = (),
    ignore: Sequence[str] = (),
    fail_on: str | Severity | None = "high",
    environ: Mapping[str, str] | None = None,
    project_dir: str | Path | None = None,
) -> VerifyResult:
    """Verify compose files (or the ones `docker compose` would pick in the working directory)."""
    policy = Policy.parse(ignore, fail_on)
    paths = list(files) or _default_files(environ, project_dir)
    topo = load_compose(paths, env_files, profiles, environ, project_dir)
    return verify_topology(topo, policy)


def _default_files(environ: Mapping[str, str] | None, project_dir: str | Path | None) -> list[Path]:
    """What `docker compose` reads without `-f`: $COMPOSE_FILE, else compose.yaml (+ override)."""
    import os

    listed = (os.environ if environ is None else environ).get("COMPOSE_FILE")
    if listed:
        return [Path(p) for p in listed.split(os.pathsep) if p]
    return find_compose_files(Path(project_dir) if project_dir else None)


def verify_topology(
    topo: Topology, policy: Policy = Policy(), probes: Callable[[], Iterable[Finding]] | None = None
) -> VerifyResult:
    """Run every rule on a Topology (and `probes`, if given), apply suppressions, decide the exit code.

    `probes` is live verification's hook: called after the suppressions are checked and the rules
    have run, its findings are suppressed, sorted and counted exactly like the rules' own. The
    suppressions are checked first so that a typo in one fails before anything slow runs.
    """
    _check_suppressions(topo)
    findings = run_rules(topo, ALL_RULES)
    if probes is not None:
        findings += probes()
    _suppress(findings, topo, policy.ignores)
    findings.sort(key=Finding.sort_key)
    summary = summarise(findings, policy.fail_on, topo.files, len(topo.services))
    return VerifyResult(topo, findings, summary, EXIT_FINDINGS if fails(findings, policy.fail_on) else EXIT_CLEAN)


def _check_suppressions(topo: Topology) -> None:
    """An ignore naming no known rule is a typo that would hide nothing: refuse it."""
    entries = list(topo.suppressions)
    for svc in topo.services.values():
        entries += svc.suppressions
    for sup in entries:
        rule = get_rule(sup.rule)
        if rule is None:
            raise ComposeError.at(sup.src, f"x-stackgen.ignore: unknown rule {sup.rule!r} (see `stackgen rules`)")
        sup.rule = rule.id


def _suppress(findings: list[Finding], topo: Topology, cli: Sequence[Suppression]) -> None:
    for f in findings:
        svc = topo.services.get(f.service or "")
        candidates = list(svc.suppressions) if svc else []
        candidates += [s for s in topo.suppressions if s.service in (None, f.service)]
        candidates += list(cli)
        for sup in candidates:
            if sup.rule == f.rule:
                f.suppressed = True
                f.suppression_kind = sup.scope
                f.suppression_reason = sup.reason
                break
