"""The `supervise`, `status`, `renew`, `backup` and `restore` commands: `register(app)` adds them.

Thin, like the rest of the CLI: parse, call stackgen.supervise (supervisor, status) / operate (renewal, backup), print.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from stackgen.cli.commands import summary
from stackgen.cli.errors import fail as _fail
from stackgen.errors import StackgenError


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "-"
    delta = now - ts
    if delta < 0:
        return "in " + _span(-delta)
    return _span(delta) + " ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}" if unit != "d" else f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def register(app: typer.Typer) -> None:  # noqa: C901 - one function per command, nested for lazy imports
    """Add `supervise`, `status`, `renew`, `backup`, `restore` to stackgen's typer app."""

    @app.command(short_help=summary("supervise"))
    def supervise(
        directory: Annotated[Path, typer.Argument(help="Stack directory (or a directory with a compose.yaml: health healing only).")] = Path("."),
        project: Annotated[str | None, typer.Option(help="Compose project (default: from stack.yaml or compose.yaml).")] = None,
        backoff_base: Annotated[str | None, typer.Option(help="Delay before a container's 2nd restart; doubles each time. [default: 10s]")] = None,
        backoff_cap: Annotated[str | None, typer.Option(help="Longest delay between restarts. [default: 5m]")] = None,
        crash_loop_restarts: Annotated[int | None, typer.Option(help="Restarts within --crash-loop-window that mean a crash loop. [default: 5]")] = None,
        crash_loop_window: Annotated[str | None, typer.Option(help="Window of the crash-loop count. [default: 30m]")] = None,
        stable_after: Annotated[str | None, typer.Option(help="Healthy this long: backoff and crash loop reset. [default: 10m]")] = None,
        stop_timeout: Annotated[str | None, typer.Option(help="Grace period of a restart's stop. [default: 10s]")] = None,
        ignore_service: Annotated[list[str] | None, typer.Option(help="Never restart this service (repeatable).")] = None,
        no_task_after: Annotated[str | None, typer.Option(help="Swarm: alert when a service has had no running task this long. [default: 1m]")] = None,
        swarm_poll: Annotated[str | None, typer.Option(help="Swarm: time between reads of the stack's task lists. [default: 30s]")] = None,
        renew: Annotated[bool | None, typer.Option("--renew/--no-renew", help="Run certificate renewal on a schedule. [default: on]")] = None,
        renew_interval: Annotated[str | None, typer.Option(help="Time between renewal runs. [default: 12h]")] = None,
        renew_jitter: Annotated[str | None, typer.Option(help="Random extra delay of each renewal run. [default: 1h]")] = None,
        cert_check_interval: Annotated[str | None, typer.Option(help="Time between probes of the served certificate. [default: 1h]")] = None,
        expiry_days: Annotated[float | None, typer.Option(help="Alert when the served certificate expires within this many days. [default: 14]")] = None,
        verify_interval: Annotated[str | None, typer.Option(help="Time between live verifications, 0 = off. [default: 15m]")] = None,
        drift_min_severity: Annotated[str | None, typer.Option(help="Lowest finding severity that alerts. [default: medium]")] = None,
        webhook_url: Annotated[str | None, typer.Option(help="POST alerts to this URL.")] = None,
        webhook_format: Annotated[str | None, typer.Option(help="generic, ntfy or gotify. [default: generic]")] = None,
        webhook_token_file: Annotated[Path | None, typer.Option(help="File with the webhook's token (never on the command line).")] = None,
        webhook_retries: Annotated[int | None, typer.Option(help="Retries of a failed delivery. [default: 4]")] = None,
        backup_interval: Annotated[str | None, typer.Option(help="Time between scheduled backups, 0 = off. [default: 0]")] = None,
        backup_keep: Annotated[int | None, typer.Option(help="Scheduled backups kept. [default: 7]")] = None,
        backup_dir: Annotated[Path | None, typer.Option(help="Where scheduled backups go. [default: DIR/backups]")] = None,
        backup_include_keys: Annotated[bool | None, typer.Option("--backup-include-keys/--no-backup-include-keys",
                                                                      help="Scheduled backups include the private keys.")] = None,
        engine_alert_after: Annotated[str | None, typer.Option(help="Alert when the engine is unreachable this long. [default: 2m]")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="Do not echo the JSON-lines log to stdout "
                                                       "(it is always written to DIR/.stackgen-supervisor/).")] = False,
        install_systemd: Annotated[bool, typer.Option("--install-systemd",
                                                                 help="Write a hardened systemd unit running this command, and say how to enable it.")] = False,
        unit_dir: Annotated[Path, typer.Option(help="--install-systemd: where the unit goes.")] = Path("/etc/systemd/system"),
        unit_user: Annotated[str | None, typer.Option(help="--install-systemd: run as this user (in the docker group) instead of root.")] = None,
    ) -> None:
        """Watch the running stack: heal unhealthy containers (on a swarm: watch Swarm heal its tasks), renew and check
        certificates, watch for drift, alert."""
        from stackgen.supervise.config import load_settings

        overrides: dict[str, Any] = {
            "backoff_base": backoff_base, "backoff_cap": backoff_cap, "crash_loop_restarts": crash_loop_restarts,
            "crash_loop_window": crash_loop_window, "stable_after": stable_after, "stop_timeout": stop_timeout,
            "ignore_services": ignore_service or None, "no_task_after": no_task_after, "swarm_poll": swarm_poll, "renew": renew,
            "renew_interval": renew_interval,
            "renew_jitter": renew_jitter, "cert_check_interval": cert_check_interval, "expiry_days": expiry_days,
            "verify_interval": verify_interval, "drift_min_severity": drift_min_severity, "webhook_url": webhook_url,
            "webhook_format": webhook_format, "webhook_token_file": webhook_token_file, "webhook_retries": webhook_retries,
            "backup_interval": backup_interval, "backup_keep": backup_keep, "backup_dir": backup_dir,
            "backup_include_keys": backup_include_keys, "engine_alert_after": engine_alert_after,
        }
        try:
            settings = load_settings(directory, overrides)
            from stackgen.supervise.supervisor import Supervisor, load_target, run_foreground

            if install_systemd:
                from stackgen.supervise import systemd

                target = load_target(directory, project)
                # The unit repeats only the options given here: DIR/supervise.yaml stays the place to edit.
                given = load_settings(Path("/nonexistent-stackgen-dir"), overrides)
                path = systemd.install(target.directory, target.project, given, unit_dir, unit_user)
                typer.echo(f"wrote {path}")
                typer.echo(f"enable it: {systemd.enable_hint(path)}")
                return
            supervisor = Supervisor(directory, settings, project=project, log_stream=None if quiet else sys.stdout)
        except (StackgenError, OSError) as exc:
            raise _fail(str(exc)) from None
        try:
            code = run_foreground(supervisor)
        except StackgenError as exc:
            raise _fail(str(exc)) from None
        raise typer.Exit(code)

    @app.command(short_help=summary("status"))
    def status(
        directory: Annotated[Path, typer.Argument(help="Stack directory.")] = Path("."),
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Services, health, restarts, backoff, certificate expiry, last verify and open alerts."""
        try:
            from stackgen.supervise.status import collect_status

            report = collect_status(directory)
        except StackgenError as exc:
            raise _fail(str(exc)) from None
        if as_json:
            typer.echo(json.dumps(report, indent=2, sort_keys=True))
            return
        print_status(report)

    @app.command("renew", short_help=summary("renew"))
    def renew_command(
        directory: Annotated[Path, typer.Argument(help="Stack directory.")] = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Renew even if the certificate is not due (certbot --force-renewal).")] = False,
    ) -> None:
        """Renew through the sidecar now, check the files, and confirm the edge serves the new certificate."""
        from stackgen import engine as engines
        from stackgen.operate import renewal
        from stackgen.stackdir import load_stack

        try:
            stack = load_stack(directory)
            outcome = renewal.renew(engines.client(timeout=360), stack, stack.project, force=force)
        except StackgenError as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"{outcome.status}: {outcome.message}")
        if outcome.status in ("failed", "invalid", "reload_failed"):
            if outcome.output:
                typer.echo(outcome.output[-2000:], err=True)
            raise typer.Exit(1)

    @app.command(short_help=summary("backup"))
    def backup(
        directory: Annotated[Path, typer.Argument(help="Stack directory.")] = Path("."),
        include_keys: Annotated[bool, typer.Option("--include-keys", help="Also the certificate volume (private keys): keep the archive safe.")] = False,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Archive path. [default: DIR/backups/PROJECT-TIME.tar.gz]")] = None,
        keep: Annotated[int | None, typer.Option(help="Afterwards, keep only the newest N archives in the backup directory.")] = None,
    ) -> None:
        """Write one archive of Node-RED's /data, stack.yaml and the secrets (owners, modes, checksums kept)."""
        from stackgen import engine as engines
        from stackgen.operate import backup as backups

        try:
            result = backups.create(engines.client(), directory, output=output, include_keys=include_keys)
            removed = backups.prune(result.path.parent, backups_project(directory), keep) if keep else []
        except StackgenError as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"wrote {result.path} ({result.size} bytes, {result.files} files; volumes: {', '.join(result.volumes)})")
        if include_keys:
            typer.echo("it holds private keys: keep it where only you can read it (mode 0600)")
        for path in result.not_included:
            typer.echo(f"note: {path} is outside the stack directory and not in the archive", err=True)
        for path in removed:
            typer.echo(f"removed old backup {path}")

    @app.command(short_help=summary("restore"))
    def restore(
        archive: Annotated[Path, typer.Argument(help="Archive written by `stackgen backup`.")],
        directory: Annotated[Path, typer.Argument(help="Stack directory to restore into.")],
        force: Annotated[bool, typer.Option("--force", help="Replace a different stack.yaml (kept as .bak) and non-empty volumes.")] = False,
    ) -> None:
        """Verify an archive's checksums, then restore stack.yaml, secrets and volumes (never into a running stack)."""
        from stackgen import engine as engines
        from stackgen.operate import backup as backups

        try:
            result = backups.restore(engines.client(), archive, directory, force=force)
        except StackgenError as exc:
            raise _fail(str(exc)) from None
        typer.echo(f"restored {result.project} into {result.directory}: files {', '.join(result.files) or '-'}; "
                   f"volumes {', '.join(result.volumes) or '-'}")
        for warning in result.warnings:
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(f"next: stackgen up {directory}")


def backups_project(directory: Path) -> str:
    from stackgen.stackdir import load_stack

    return load_stack(directory).project


# --- status --------------------------------------------------------------------------------


def print_swarm(out, services: list[dict[str, Any]]) -> None:
    """A swarm stack's services, each with its tasks (current first): state, health, node, error."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="swarm services and tasks", expand=False)
    for column in ("service", "replicas", "task", "state", "desired", "health", "node", "error"):
        table.add_column(column)
    colour = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}
    for service in services:
        rows = service["tasks"] or [{"id": "-", "state": "not deployed" if not service["deployed"] else "no task", "desired": "-",
                                     "health": None, "node": None, "error": None}]
        for i, task in enumerate(rows):
            health = task.get("health") or "-"
            table.add_row(escape(service["service"]) if i == 0 else "", service["replicas"] if i == 0 else "", escape(str(task["id"])),
                          escape(str(task["state"])), escape(str(task.get("desired") or "-")),
                          f"[{colour.get(health, 'white')}]{escape(health)}[/]", escape(str(task.get("node") or "-")),
                          escape(str(task.get("error") or "")))
    out.print(table)
    ports = [f"{s['service']}: {', '.join(s['ports'])}" for s in services if s["ports"]]
    if ports:
        out.print(escape("published: " + "; ".join(ports)), highlight=False)


def print_status(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console(soft_wrap=True)
    now = time.time()
    sup = report["supervisor"]
    running = "[green]running[/]" if sup.get("running") else "[yellow]not running[/]"
    out.print(f"[bold]{report['project']}[/] ({report['directory']})  supervisor: {running}"
              + (f", pid {sup.get('pid')}, started {_ago(sup.get('started'), now)}" if sup.get("running") else ""))
    if report["engine"] != "connected":
        out.print(f"[red]engine:[/] {escape(str(report['engine']))}", highlight=False)
    table = Table(expand=False)
    for column in ("service", "state", "health", "restarts", "backoff", "note"):
        table.add_column(column)
    colour = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}
    for name, svc in report["services"].items():
        health = svc["health"] or "-"
        if svc["failed"] and report.get("healer") == "swarm":
            backoff, note = "[red]crash loop[/]", "Swarm keeps replacing its tasks: see its task errors below"
        elif svc["failed"]:
            backoff, note = "[red]gave up[/]", "crash loop: restart it by hand once fixed"
        elif svc["next_restart_at"]:
            backoff, note = f"restart {_ago(svc['next_restart_at'], now)}", f"attempt {svc['attempt'] + 1}"
        else:
            backoff, note = (f"level {svc['attempt']}" if svc["attempt"] else "-"), ""
        if svc["stopped_by_user"]:
            note = "stopped by the user: left alone"
        restarts = f"{svc['restarts']}" + (f" (engine: {svc['engine_restarts']})" if svc.get("engine_restarts") else "")
        table.add_row(escape(name), escape(str(svc["state"])), f"[{colour.get(health, 'white')}]{escape(health)}[/]", restarts, backoff, note)
    out.print(table)
    if report.get("swarm") is not None:
        print_swarm(out, report["swarm"])
    cert = report["certificate"]
    if cert.get("not_after"):
        days = (cert["not_after"] - now) / 86400
        when = datetime.fromtimestamp(cert["not_after"], UTC).strftime("%Y-%m-%d")
        style = "red" if days < 14 else "green"
        out.print(f"certificate: serial {cert.get('serial')}, expires [{style}]{when} (in {days:.0f} days)[/]", highlight=False)
    elif cert.get("live_error") or cert.get("error"):
        out.print(f"certificate: [red]{escape(str(cert.get('live_error') or cert.get('error')))}[/]", highlight=False)
    renewal = report["renewal"]
    if renewal.get("last_run") or renewal.get("next_at"):
        out.print(escape(f"renewal: last {_ago(renewal.get('last_run'), now)} ({renewal.get('last_status', '-')}), "
                         f"next {_ago(renewal.get('next_at'), now)}"), highlight=False)
    verify = report["verify"]
    if verify.get("unavailable"):
        out.print(f"last verify: unavailable ({escape(verify['unavailable'])})", highlight=False)
    elif verify.get("last_run"):
        out.print(f"last verify: {_ago(verify['last_run'], now)}, {verify.get('findings', 0)} finding(s)"
                  + (f", error: {escape(verify['error'])}" if verify.get("error") else ""), highlight=False)
    else:
        out.print("last verify: never")
    if report["backup"].get("last_run"):
        detail = report["backup"].get("last_archive") or report["backup"].get("error") or ""
        out.print(f"last backup: {_ago(report['backup']['last_run'], now)} {escape(detail)}", highlight=False)
    alerts = report["alerts"]
    if alerts:
        out.print(f"[bold red]open alerts ({len(alerts)}):[/]")
        for key, alert in sorted(alerts.items()):
            line = f"  [{alert.get('severity')}] {key}: {alert.get('summary')} (since {_ago(alert.get('opened_at'), now)})"
            out.print(escape(line), highlight=False)
    else:
        out.print("open alerts: none")
