"""The `verify` and `rules` commands: their options (declared once, in `VERIFY` and `RULES`), and what they run.

Thin, like the rest of the CLI: parse, call `stackgen.verify.pipeline` (or `stackgen.verify.each`,
or `stackgen.live.checks`), hand the result to the one output writer (`stackgen.cli.output`).
`register(app)` adds both commands to the typer app; `fast_path` parses them with argparse from
the same tables, without importing typer (see `stackgen.cli.options` for why).
This module imports nothing heavy at import time.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from stackgen.cli.errors import EXIT_USAGE, report_error, user_errors
from stackgen.cli.options import Opt, argparse_parser, typer_command
from stackgen.cli.output import FORMATS, color_for, emit, render, render_each
from stackgen.findings import SEVERITY_NAMES

__all__ = ["RULES", "VERIFY", "execute_live", "execute_rules", "execute_verify", "fast_path", "main", "register"]

RULE_FORMATS = ("text", "json", "markdown")
FAIL_ON = (*SEVERITY_NAMES, "none")  # low, medium, high, critical (stackgen.findings), none
PROBES = ("all", "cheap", "none")

VERIFY = (
    Opt("files", (), "Compose files (default: compose.yaml etc. in the current directory).", Path, many=True),
    Opt("file", ("--file", "-f"), "Compose file; repeat to merge several, as `docker compose -f`.", Path, many=True),
    Opt("env_file", ("--env-file",), "Variables for interpolation, instead of the project's .env; repeatable.", Path, many=True),
    Opt("profile", ("--profile",), "Enable a compose profile; repeatable.", many=True),
    Opt("output_format", ("--format",), "text (people), json (scripts), sarif (code scanning), mermaid (the topology as a "
        "diagram), html (one self-contained page: the topology drawn, findings on it; with --live, the reachability matrix).",
        default="text", choices=FORMATS),
    Opt("fail_on", ("--fail-on",), "Exit 1 when a finding is at or above this severity (none: never).", default="high", choices=FAIL_ON),
    Opt("ignore", ("--ignore",), "Suppress a rule (SG012 or SG012=reason); repeatable.", many=True),
    Opt("output", ("--output", "-o"), "Write the report to FILE instead of stdout.", Path),
    Opt("project_directory", ("--project-directory",), "Base for relative paths and .env (default: the first file's directory).", Path),
    Opt("each", ("--each",), "Judge each stack found in the FILES/directories on its own, one report per stack.", bool, False),
    Opt("explain", ("--explain",), "Say each service's role (edge, node-red, certbot, database, other) and why: text and json.", bool, False),
    Opt("live", ("--live",), "Check the RUNNING stack (a stack directory, or --project): rules, drift, probes.", bool, False, fast=False),
    Opt("project", ("--project",), "--live: the compose project (default: from the stack directory).", fast=False),
    Opt("ca_file", ("--ca-file",), "--live: CA bundle the served certificate must chain to (default: system store).", fast=False),
    Opt("min_days", ("--min-days",), "--live: minimum days before the served certificate expires.", int, 14, fast=False),
    Opt("probes", ("--probes",), "--live: all (matrix, egress, keys, TLS, headers, editor gate, login shield), cheap (keys, TLS) or none.",
        default="all", fast=False),
)

RULES = (
    Opt("rule_id", (), "A rule id (SG012) or name (root-user) to explain."),
    Opt("output_format", ("--format",), "text, json or markdown (docs/rules.md).", default="text", choices=RULE_FORMATS),
)


def verify_command(
    files: Sequence[Path] = (), file: Sequence[Path] = (), env_file: Sequence[Path] = (), profile: Sequence[str] = (),
    output_format: str = "text", fail_on: str = "high", ignore: Sequence[str] = (), output: Path | None = None,
    project_directory: Path | None = None, each: bool = False, explain: bool = False, live: bool = False,
    project: str | None = None, ca_file: str | None = None, min_days: int = 14, probes: str = "all",
) -> int:
    """Check compose files against stackgen's security model; exit 0 clean, 1 findings, 2 errors.

    With --live, check the running stack instead: the same rules on what the engine runs, drift from
    the file, and probes of what can reach what, the certificate served, and the auth enforced.
    """
    targets = list(file) + list(files)
    if live:
        if len(targets) > 1:
            return report_error("--live takes one stack directory or compose file")
        if probes not in PROBES:
            return report_error("--probes must be all, cheap or none")
        target = targets[0] if targets else (None if project else Path("."))
        return execute_live(target, project, ca_file, min_days, probes, output_format, fail_on, list(ignore), output)
    return execute_verify(targets, env_file, profile, output_format, fail_on, ignore, output, project_directory, each, explain)


def rules_command(rule_id: str | None = None, output_format: str = "text") -> int:
    """List the rules `stackgen verify` applies, or explain one."""
    return execute_rules(rule_id, output_format)


def execute_verify(
    files: Sequence[Path] = (),
    env_files: Sequence[Path] = (),
    profiles: Sequence[str] = (),
    output_format: str = "text",
    fail_on: str = "high",
    ignore: Sequence[str] = (),
    output: Path | None = None,
    project_directory: Path | None = None,
    each: bool = False,
    explain: bool = False,
) -> int:
    """Run `stackgen verify` (or `--each`) and write the report; returns the exit code (0, 1 or 2).

    `explain`: each service's role and why, before the findings (text) or as `services` (JSON)."""
    if output_format not in FORMATS:
        return report_error(f"--format must be one of {', '.join(FORMATS)}")
    if each and explain:
        return report_error("--explain judges one stack at a time (not with --each)")
    if each:
        return _execute_each(files, env_files, profiles, output_format, fail_on, ignore, output)
    from stackgen.verify.pipeline import verify

    try:
        result = verify(files=list(files), env_files=list(env_files), profiles=list(profiles), ignore=list(ignore),
                        fail_on=fail_on, project_dir=project_directory)
    except user_errors() as exc:
        return report_error(str(exc))
    text = render(result, output_format, color=color_for(output), explain=explain)
    return emit(text, output) or result.exit_code


def _execute_each(files, env_files, profiles, output_format, fail_on, ignore, output) -> int:
    from stackgen.verify.each import verify_each

    if not files:
        return report_error("--each needs at least one file or directory")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        return report_error(f"{missing[0]}: no such file or directory")
    outcome = verify_each(list(files), env_files=env_files, profiles=profiles, ignore=ignore, fail_on=fail_on)
    if not outcome.reports:
        return report_error("--each: no compose files found (compose.yaml, docker-compose.yml, NAME.compose.yaml, ...)")
    return emit(render_each(outcome, output_format, color=color_for(output)), output) or outcome.exit_code


def execute_live(
    target: Path | None,
    project: str | None,
    ca_file: str | None,
    min_days: int,
    probe_level: str,
    output_format: str,
    fail_on: str,
    ignore: Sequence[str],
    output: Path | None,
) -> int:
    """`stackgen verify --live`: observe, probe and judge the running stack, write the report; the exit code."""
    from stackgen import engine as engines
    from stackgen.live import checks

    if output_format not in FORMATS:
        return report_error(f"--format must be one of {', '.join(FORMATS)}")
    directory, files = None, None
    if target is not None:
        if target.is_dir():
            directory = target
            from stackgen.stackdir import StackDir

            stack_dir = StackDir(target)
            if stack_dir.target == "swarm":  # the running stack was deployed from the stack file: drift is judged against it
                files = [stack_dir.swarm_path]
        elif target.is_file():
            directory, files = target.parent, [target]
        else:
            return report_error(f"{target}: no such stack directory or compose file")
    try:
        engine = engines.client()
        if engines.swarm_role(engine) == "manager":  # a probe on a swarm stack's overlay must be a service (live/swarm_probe.py)
            from stackgen.live.swarm_probe import OverlayProbes
            from stackgen.stackdir import StackDir

            engine = OverlayProbes(engine, project or (StackDir(directory).project() if directory is not None else "verify"))
        result = checks.verify_live(engine, directory=directory, project=project, files=files, ca_file=ca_file,
                                    min_days=min_days, probe_level=probe_level, ignore=list(ignore), fail_on=fail_on)
    except user_errors() as exc:
        return report_error(str(exc))
    return emit(render(result, output_format, color=color_for(output)), output) or result.exit_code


def execute_rules(rule_id: str | None = None, output_format: str = "text") -> int:
    """`stackgen rules [RULE]`: list the rules, or explain one; returns the exit code."""
    import json

    from stackgen.verify.rules import ALL_RULES, get_rule
    from stackgen.verify.rules.docs import rules_markdown

    if output_format not in RULE_FORMATS:
        return report_error(f"--format must be one of {', '.join(RULE_FORMATS)}")
    if rule_id:
        rule = get_rule(rule_id)
        if rule is None:
            return report_error(f"unknown rule {rule_id!r}; `stackgen rules` lists them")
        if output_format == "markdown":
            text = rule.markdown()
        elif output_format == "json":
            text = json.dumps(_rule_dict(rule), indent=2) + "\n"
        else:
            text = rule.explain()
        return emit(text, None)
    if output_format == "markdown":
        text = rules_markdown()
    elif output_format == "json":
        text = json.dumps([_rule_dict(r) for r in ALL_RULES], indent=2) + "\n"
    else:
        width = max(len(r.name) for r in ALL_RULES)
        text = "".join(f"{r.id}  {r.severity.value:<8}  {r.name:<{width}}  {r.title}\n" for r in ALL_RULES)
        text += "\n`stackgen rules SG0xx` explains one rule.\n"
    return emit(text, None)


def _rule_dict(rule: object) -> dict:
    keys = ("id", "name", "severity", "title", "why", "bad", "good", "fix", "compose_lint", "kics")
    out = {k: getattr(rule, k) for k in keys}
    out["bad"], out["good"] = rule.bad_example, rule.good_example  # type: ignore[attr-defined]
    out["severity"] = out["severity"].value
    out["compose_lint"], out["kics"] = list(out["compose_lint"]), list(out["kics"])
    return out


def register(app: object) -> None:
    """Add `verify` and `rules` to a typer app, their options from `VERIFY` and `RULES`."""
    from stackgen.cli.commands import summary

    for name, (function, options) in _TABLES.items():
        app.command(name, short_help=summary(name))(typer_command(function, options))  # type: ignore[attr-defined]


# --- the fast path ---------------------------------------------------------------------------

_TABLES = {"verify": (verify_command, VERIFY), "rules": (rules_command, RULES)}


def fast_path(argv: Sequence[str]) -> int | None:
    """Run `verify`/`rules` without typer; None when `argv` is something else, asks for help, or needs --live."""
    args = list(argv)
    if not args or args[0] not in _TABLES:
        return None
    command, table = _TABLES[args[0]]
    typer_only = {flag for opt in table if not opt.fast for flag in opt.flags} | {"-h", "--help"}
    if any(a.split("=", 1)[0] in typer_only for a in args):
        return None  # help is typer's; --live needs the engine, typer and the rest: the full CLI
    try:
        namespace = argparse_parser("stackgen", {name: t for name, (_, t) in _TABLES.items()}).parse_args(args)
    except ValueError as exc:
        return report_error(f"{exc} (see `stackgen {args[0]} --help`)", EXIT_USAGE)
    values = {opt.name: getattr(namespace, opt.name) for opt in table if opt.fast}
    return command(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """`stackgen` as a function (argv without the program name): the exit code. The same as `stackgen.cli.main`."""
    from stackgen.cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)
