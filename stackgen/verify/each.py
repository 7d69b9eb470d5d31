"""`stackgen verify --each PATH...`: many independent stacks in one process, one report per stack.

Why: `verify a.yaml b.yaml` merges the files as repeated `-f` does (one project). A repository of
home-lab stacks is many projects; one process per file pays the interpreter start each time.
A stack here is what `docker compose` would load in its directory: a compose file plus the override
file beside a default-named one. Directories are searched (hidden directories and node_modules
skipped); a stack that cannot be read is reported as an error for that file, and the others are
still judged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.composefile.loader import DEFAULT_FILES, find_compose_files

# Besides the default names: `name.compose.yaml`, `name-compose.yml`, ... (not override files).
_SUFFIXES = (".yaml", ".yml")
_SKIP_DIRS = {"node_modules", "__pycache__"}


@dataclass
class StackReport:
    file: Path
    files: list[Path]
    result: Any = None  # VerifyResult
    error: str | None = None


@dataclass
class EachResult:
    reports: list[StackReport] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if any(r.error for r in self.reports):
            return 2
        return 1 if any(r.result.exit_code for r in self.reports) else 0


def _is_compose_name(name: str) -> bool:
    if name in DEFAULT_FILES:
        return True
    if ".override." in name:
        return False
    stem = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s)), None)
    return bool(stem) and (stem.endswith(".compose") or stem.endswith("-compose"))


def _walk(directory: Path) -> Iterator[Path]:
    for entry in sorted(directory.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            if not entry.name.startswith(".") and entry.name not in _SKIP_DIRS:
                yield from _walk(entry)
        elif entry.is_file() and _is_compose_name(entry.name):
            yield entry


def stacks(paths: Sequence[Path]) -> list[list[Path]]:
    """Each stack's files: a named file alone, or a default-named one with its override."""
    found: list[list[Path]] = []
    for path in paths:
        candidates = list(_walk(path)) if path.is_dir() else [path]
        for candidate in candidates:
            group = [candidate]
            if candidate.name in DEFAULT_FILES:
                # what `docker compose` loads in that directory: its default file and the override
                loaded = find_compose_files(candidate.parent)
                if loaded and loaded[0] == candidate:
                    group = loaded
            if group not in found:
                found.append(group)
    return found


def verify_each(paths: Sequence[Path], *, env_files=(), profiles=(), ignore=(), fail_on: str = "high") -> EachResult:
    from stackgen.composefile.yaml_loader import ComposeError
    from stackgen.errors import StackgenError
    from stackgen.verify.pipeline import UsageError, verify

    outcome = EachResult()
    for group in stacks(paths):
        report = StackReport(group[0], group)
        try:
            report.result = verify(files=group, env_files=list(env_files), profiles=list(profiles), ignore=list(ignore),
                                   fail_on=fail_on, project_dir=group[0].parent)
        except (ComposeError, StackgenError, UsageError) as exc:
            report.error = str(exc)
        outcome.reports.append(report)
    return outcome


def render(outcome: EachResult, output_format: str, version: str, color: bool = False) -> str:
    from stackgen.verify.report import render_json, render_sarif, render_text

    if output_format == "json":
        files = []
        for r in outcome.reports:
            entry: dict[str, Any] = {"file": str(r.file), "files": [str(f) for f in r.files]}
            if r.error:
                entry["error"] = r.error
            else:
                entry["report"] = json.loads(render_json(r.result.findings, r.result.summary, version))
                entry["exit_code"] = r.result.exit_code
            files.append(entry)
        return json.dumps({"tool": "stackgen", "version": version, "files": files, "exit_code": outcome.exit_code}, indent=2) + "\n"
    if output_format == "html":  # one page, a section per stack, each with its own picture
        from stackgen.verify.html import Section, render_sections

        sections = [
            Section(str(r.file), error=r.error) if r.error else
            Section(", ".join(str(f) for f in r.files), r.result.topology, r.result.findings, r.result.summary, r.result.exit_code)
            for r in outcome.reports
        ]
        return render_sections(sections, f"stackgen verify --each: {len(sections)} stacks", version, intro=_tally(outcome))
    if output_format == "sarif":
        from stackgen.verify.report import file_uri
        from stackgen.verify.rules import ALL_RULES

        findings = [f for r in outcome.reports if r.result for f in r.result.findings]
        log = json.loads(render_sarif(findings, ALL_RULES, version))
        run = log["runs"][0]
        run["artifacts"] = [{"location": {"uri": file_uri(str(f))}} for r in outcome.reports for f in r.files]
        notes = [{"level": "error", "message": {"text": r.error},
                  "locations": [{"physicalLocation": {"artifactLocation": {"uri": file_uri(str(r.file))}}}]}
                 for r in outcome.reports if r.error]
        run["invocations"] = [{"executionSuccessful": not notes, "toolExecutionNotifications": notes}]
        return json.dumps(log, indent=2) + "\n"
    parts = []
    for r in outcome.reports:
        parts.append(f"== {r.file}\n")
        parts.append(f"error: {r.error}\n" if r.error else render_text(r.result.findings, r.result.summary, color=color))
        parts.append("\n")
    parts.append(_tally(outcome) + "\n")
    return "".join(parts)


def _tally(outcome: EachResult) -> str:
    errors = sum(1 for r in outcome.reports if r.error)
    failing = sum(1 for r in outcome.reports if r.result and r.result.exit_code)
    return f"{len(outcome.reports)} stacks: {len(outcome.reports) - errors - failing} pass, {failing} fail, {errors} could not be read"
