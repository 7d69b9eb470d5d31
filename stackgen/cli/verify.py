"""The `verify` and `rules` commands: `register(app)` adds them to stackgen's typer app.

Thin, like the rest of the CLI: parse options, call `stackgen.verify.pipeline`, print.

Why there is also an argparse path (`main`, `fast_path`): `stackgen verify` runs
in CI and pre-commit hooks, where start-up time is most of its time. Typer
builds a pydantic adapter per option (pydantic alone costs ~70 ms), so the
console entry point can hand `verify`/`rules` to `fast_path` before importing
typer. Both paths take the same options and call the same `execute_*`
functions; `--help` always goes to typer when it is there.
This module imports nothing heavy at import time.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["register", "execute_verify", "execute_rules", "fast_path", "entry", "main"]

FORMATS = ("text", "json", "sarif", "mermaid", "html")
RULE_FORMATS = ("text", "json", "markdown")


def _err(message: str) -> int:
    sys.stderr.write(message.rstrip("\n") + "\n")
    return 2


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
    """Run `stackgen verify` and print the report; returns the exit code (0, 1 or 2).

    `explain`: each service's role and why, before the findings (text) or as `services` (JSON)."""
    from stackgen import __version__
    from stackgen.composefile.yaml_loader import ComposeError
    from stackgen.verify.pipeline import UsageError, verify

    if output_format not in FORMATS:
        return _err(f"error: --format must be one of {', '.join(FORMATS)}")
    if each and explain:
        return _err("error: --explain judges one stack at a time (not with --each)")
    if each:
        from stackgen.verify import each as verify_each

        if not files:
            return _err("error: --each needs at least one file or directory")
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            return _err(f"error: {missing[0]}: no such file or directory")
        outcome = verify_each.verify_each(list(files), env_files=env_files, profiles=profiles, ignore=ignore, fail_on=fail_on)
        if not outcome.reports:
            return _err("error: --each: no compose files found (compose.yaml, docker-compose.yml, NAME.compose.yaml, ...)")
        text = verify_each.render(outcome, output_format, __version__, color=output is None and sys.stdout.isatty())
        return _write(text, output) or outcome.exit_code
    try:
        result = verify(
            files=list(files),
            env_files=list(env_files),
            profiles=list(profiles),
            ignore=list(ignore),
            fail_on=fail_on,
            project_dir=project_directory,
        )
    except (ComposeError, UsageError) as exc:
        return _err(f"error: {exc}")

    if output_format == "json":
        from stackgen.verify.report import render_json, role_entries

        text = render_json(result.findings, result.summary, __version__, services=role_entries(result.topology) if explain else None)
    elif output_format == "sarif":
        from stackgen.verify.report import render_sarif
        from stackgen.verify.rules import ALL_RULES

        text = render_sarif(result.findings, ALL_RULES, __version__)
    elif output_format == "mermaid":
        from stackgen.verify.mermaid import render_mermaid

        text = render_mermaid(result.topology, result.findings)
    elif output_format == "html":
        from stackgen.verify.html import render_html

        text = render_html(result.topology, result.findings, result.summary, exit_code=result.exit_code, tool_version=__version__)
    else:
        from stackgen.verify.report import render_text

        color = output is None and sys.stdout.isatty()
        text = render_text(result.findings, result.summary, color=color)
        if explain:
            from stackgen.verify.report import render_roles

            text = render_roles(result.topology) + text
    return _write(text, output) or result.exit_code


def _write(text: str, output: Path | None) -> int:
    """The report to -o FILE or stdout; 2 when it cannot be written, else 0."""
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            return _err(f"error: cannot write {output}: {exc.strerror or exc}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def execute_rules(rule_id: str | None = None, output_format: str = "text") -> int:
    """`stackgen rules [RULE]`: list the rules, or explain one; returns the exit code."""
    import json

    from stackgen.verify.rules import ALL_RULES, get_rule
    from stackgen.verify.rules.docs import rules_markdown

    if output_format not in RULE_FORMATS:
        return _err(f"error: --format must be one of {', '.join(RULE_FORMATS)}")
    if rule_id:
        rule = get_rule(rule_id)
        if rule is None:
            return _err(f"error: unknown rule {rule_id!r}; `stackgen rules` lists them")
        if output_format == "markdown":
            sys.stdout.write(rule.markdown())
        elif output_format == "json":
            sys.stdout.write(json.dumps(_rule_dict(rule), indent=2) + "\n")
        else:
            sys.stdout.write(rule.explain())
        return 0
    if output_format == "markdown":
        sys.stdout.write(rules_markdown())
    elif output_format == "json":
        sys.stdout.write(json.dumps([_rule_dict(r) for r in ALL_RULES], indent=2) + "\n")
    else:
        width = max(len(r.name) for r in ALL_RULES)
        for r in ALL_RULES:
            sys.stdout.write(f"{r.id}  {r.severity.value:<8}  {r.name:<{width}}  {r.title}\n")
        sys.stdout.write("\n`stackgen rules SG0xx` explains one rule.\n")
    return 0


def _rule_dict(rule: object) -> dict:
    keys = ("id", "name", "severity", "title", "why", "bad", "good", "fix", "compose_lint", "kics")
    out = {k: getattr(rule, k) for k in keys}
    out["bad"], out["good"] = rule.bad_example, rule.good_example  # type: ignore[attr-defined]
    out["severity"] = out["severity"].value
    out["compose_lint"], out["kics"] = list(out["compose_lint"]), list(out["kics"])
    return out


# --- typer -----------------------------------------------------------------------


def register(app: object) -> None:
    """Add `verify` and `rules` to stackgen's typer app."""
    from enum import Enum
    from typing import Annotated

    import typer

    class OutputFormat(str, Enum):
        text = "text"
        json = "json"
        sarif = "sarif"
        mermaid = "mermaid"
        html = "html"

    class FailOn(str, Enum):
        low = "low"
        medium = "medium"
        high = "high"
        critical = "critical"
        none = "none"

    class RulesFormat(str, Enum):
        text = "text"
        json = "json"
        markdown = "markdown"

    def verify_command(
        files: Annotated[
            list[Path] | None,
            typer.Argument(
                help="Compose files (default: compose.yaml etc. in the current directory).", show_default=False
            ),
        ] = None,
        file: Annotated[
            list[Path] | None,
            typer.Option("--file", "-f", help="Compose file; repeat to merge several, as `docker compose -f`."),
        ] = None,
        env_file: Annotated[
            list[Path] | None,
            typer.Option("--env-file", help="Variables for interpolation, instead of the project's .env; repeatable."),
        ] = None,
        profile: Annotated[
            list[str] | None, typer.Option("--profile", help="Enable a compose profile; repeatable.")
        ] = None,
        output_format: Annotated[
            OutputFormat, typer.Option("--format", help="text (people), json (scripts), sarif (code scanning), mermaid (the topology as a diagram), "
                              "html (one self-contained page: the topology drawn, findings on it; with --live, the reachability matrix).")
        ] = OutputFormat.text,
        fail_on: Annotated[
            FailOn, typer.Option("--fail-on", help="Exit 1 when a finding is at or above this severity (none: never).")
        ] = FailOn.high,
        ignore: Annotated[
            list[str] | None, typer.Option("--ignore", help="Suppress a rule (SG012 or SG012=reason); repeatable.")
        ] = None,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write the report to FILE instead of stdout.")
        ] = None,
        project_directory: Annotated[
            Path | None,
            typer.Option(
                "--project-directory", help="Base for relative paths and .env (default: the first file's directory)."
            ),
        ] = None,
        each: Annotated[
            bool, typer.Option("--each", help="Judge each stack found in the FILES/directories on its own, one report per stack.")
        ] = False,
        explain: Annotated[
            bool, typer.Option("--explain", help="Say each service's role (edge, node-red, certbot, database, other) and why: text and json.")
        ] = False,
        live: Annotated[
            bool, typer.Option("--live", help="Check the RUNNING stack (a stack directory, or --project): rules, drift, probes.")
        ] = False,
        project: Annotated[
            str | None, typer.Option("--project", help="--live: the compose project (default: from the stack directory).")
        ] = None,
        ca_file: Annotated[
            str | None, typer.Option("--ca-file", help="--live: CA bundle the served certificate must chain to (default: system store).")
        ] = None,
        min_days: Annotated[
            int, typer.Option("--min-days", help="--live: minimum days before the served certificate expires.")
        ] = 14,
        probes: Annotated[
            str, typer.Option("--probes", help="--live: all (matrix, egress, keys, TLS), cheap (keys, TLS) or none.")
        ] = "all",
    ) -> None:
        """Check compose files against stackgen's security model; exit 0 clean, 1 findings, 2 errors.

        With --live, check the running stack instead: the same rules on what the engine runs, drift from
        the file, and probes of what can reach what, the certificate served, and the auth enforced.
        """
        if live:
            from stackgen.live.checks import execute_live

            targets = list(file or []) + list(files or [])
            if len(targets) > 1:
                raise typer.Exit(_err("error: --live takes one stack directory or compose file"))
            if probes not in ("all", "cheap", "none"):
                raise typer.Exit(_err("error: --probes must be all, cheap or none"))
            raise typer.Exit(execute_live(targets[0] if targets else (None if project else Path(".")), project, ca_file,
                                          min_days, probes, output_format.value, fail_on.value, ignore or [], output))
        code = execute_verify(
            files=list(file or []) + list(files or []),
            env_files=env_file or [],
            profiles=profile or [],
            output_format=output_format.value,
            fail_on=fail_on.value,
            ignore=ignore or [],
            output=output,
            project_directory=project_directory,
            each=each,
            explain=explain,
        )
        raise typer.Exit(code)

    def rules_command(
        rule_id: Annotated[
            str | None, typer.Argument(help="A rule id (SG012) or name (root-user) to explain.", show_default=False)
        ] = None,
        output_format: Annotated[
            RulesFormat, typer.Option("--format", help="text, json or markdown (docs/rules.md).")
        ] = RulesFormat.text,
    ) -> None:
        """List the rules `stackgen verify` applies, or explain one."""
        raise typer.Exit(execute_rules(rule_id, output_format.value))

    app.command("verify")(verify_command)  # type: ignore[attr-defined]
    app.command("rules")(rules_command)  # type: ignore[attr-defined]


# --- argparse fast path ---------------------------------------------------------------


def _parser() -> object:
    import argparse

    parser = argparse.ArgumentParser(prog="stackgen", add_help=False)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", add_help=False)
    v.add_argument("files", nargs="*", type=Path)
    v.add_argument("-f", "--file", action="append", type=Path, default=[])
    v.add_argument("--env-file", action="append", type=Path, default=[])
    v.add_argument("--profile", action="append", default=[])
    v.add_argument("--format", dest="output_format", default="text")
    v.add_argument("--fail-on", default="high")
    v.add_argument("--ignore", action="append", default=[])
    v.add_argument("-o", "--output", type=Path)
    v.add_argument("--project-directory", type=Path)
    v.add_argument("--each", action="store_true")
    v.add_argument("--explain", action="store_true")
    r = sub.add_parser("rules", add_help=False)
    r.add_argument("rule_id", nargs="?")
    r.add_argument("--format", dest="output_format", default="text")
    return parser


def fast_path(argv: Sequence[str]) -> int | None:
    """Run `verify`/`rules` without typer; None when `argv` is something else (or asks for help)."""
    args = list(argv)
    if not args or args[0] not in ("verify", "rules") or any(a in ("-h", "--help", "--live") for a in args):
        return None  # --live needs the engine, typer and the rest: the full CLI
    parser = _parser()

    def usage_error(message: str) -> None:
        raise _Usage(message)

    parser.error = usage_error  # type: ignore[attr-defined]
    for action in parser._subparsers._group_actions[0].choices.values():  # type: ignore[attr-defined]
        action.error = usage_error
    try:
        ns = parser.parse_args(args)  # type: ignore[attr-defined]
    except _Usage as exc:
        return _err(f"error: {exc} (see `stackgen {args[0]} --help`)")
    if ns.command == "rules":
        return execute_rules(ns.rule_id, ns.output_format)
    return execute_verify(
        files=list(ns.file) + list(ns.files),
        env_files=ns.env_file,
        profiles=ns.profile,
        output_format=ns.output_format,
        fail_on=ns.fail_on,
        ignore=ns.ignore,
        output=ns.output,
        project_directory=ns.project_directory,
        each=ns.each,
        explain=ns.explain,
    )


class _Usage(Exception):
    pass


def entry() -> None:
    """A console-script target: `verify`/`rules` on the fast path, anything else to `stackgen.cli.app:app`.

    `[project.scripts] stackgen = "stackgen.cli.verify:entry"` makes `stackgen verify` skip
    typer/pydantic start-up (~0.13 s) while every other command behaves exactly as before.
    """
    _fast_exit(sys.argv[1:])
    from stackgen.cli.app import app

    app()


def _fast_exit(argv: Sequence[str]) -> None:
    """Run the fast path and leave the process at once; return only if `argv` is not ours.

    A one-shot process: garbage collection passes and the interpreter's teardown of
    every object of the model are pure cost (~20 ms on 200 services), so collection is
    off and the process ends with `os._exit` after flushing its output.
    """
    import gc
    import os

    gc.disable()
    try:
        code = fast_path(argv)
        if code is None:
            gc.enable()
            return
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `stackgen rules | head`: the reader left, nothing more to say
        os._exit(0)
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stackgen.cli.verify verify ...`: the fast path, typer only for help."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = fast_path(args)
    if code is not None:
        return code
    import typer

    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    try:
        app(args=args, prog_name="stackgen", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    _fast_exit(sys.argv[1:])
    sys.exit(main())
