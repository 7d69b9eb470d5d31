"""The typer app: `init`, `generate`, `up`, `down`, `schema` here, the other families added by their modules' `register`.

Thin on purpose: parse, call a module, print. Reached through `stackgen.cli.entry` for every command
that is not answered without typer (see `stackgen.cli`); subsystems are imported inside the commands.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from stackgen import __version__
from stackgen.cli.commands import SUMMARY, summary
from stackgen.cli.errors import fail
from stackgen.constants import EDGES, PLATFORMS, TLS_MODES
from stackgen.errors import StackgenError, problems

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(
    name="stackgen",
    help=SUMMARY,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


# Which init flag sets which spec field: errors name the flag the user typed.
FLAG_OF_FIELD = {
    ("project",): "--project",
    ("domains",): "--domain",
    ("email",): "--email",
    ("edge",): "--edge",
    ("tls", "mode"): "--tls-mode",
    ("tls", "acme_directory"): "--acme-directory",
    ("tls", "staging"): "--staging",
    ("tls", "ca_bundle"): "--ca-bundle",
    ("tls", "dns_provider"): "--dns-provider",
    ("tls", "dns_credentials_file"): "--dns-credentials-file",
    ("tls", "cert_file"): "--cert-file",
    ("tls", "key_file"): "--key-file",
    ("ports", "bind_address"): "--bind-address",
    ("ports", "http"): "--http-port",
    ("ports", "https"): "--https-port",
    ("platform",): "--platform",
    ("images", "node_red"): "--image-node-red",
    ("images", "edge"): "--image-edge",
    ("images", "certbot"): "--image-certbot",
    ("node_red", "admin_user"): "--admin-user",
    ("node_red", "admin_password_hash"): "--admin-password-file",
    ("node_red", "editor", "path"): "--editor-path",
    ("node_red", "editor", "allow"): "--editor-allow",
    ("node_red", "editor", "host"): "--editor-host",
    ("node_red", "egress"): "--egress",
    ("timezone",): "--timezone",
}


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"stackgen {__version__}")
        raise typer.Exit(0)


@app.command(short_help=summary("schema"))
def schema() -> None:
    """Print the JSON Schema of stack.yaml (for editors' YAML language servers)."""
    from stackgen.spec import Stack

    print(json.dumps(Stack.model_json_schema(), indent=2, sort_keys=True))


def _flag_for(loc: tuple) -> str:
    names = tuple(p for p in loc if isinstance(p, str))
    while names:
        if names in FLAG_OF_FIELD:
            return FLAG_OF_FIELD[names]
        names = names[:-1]
    return ".".join(str(p) for p in loc) or "(stack)"


def _default_project(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", directory.resolve().name.lower()).strip("-_")
    return name or "nodered"


@app.command(short_help=summary("init"))
def init(
    directory: Annotated[Path, typer.Argument(help="Stack directory to create (stack.yaml and everything rendered from it).")],
    domain: Annotated[list[str] | None, typer.Option("--domain", "-d", help="Host name to serve (repeat for more).")] = None,
    email: Annotated[str | None, typer.Option(help="ACME account e-mail.")] = None,
    edge: Annotated[str | None, typer.Option(help="Edge proxy: caddy, nginx or traefik.")] = None,
    tls_mode: Annotated[str | None, typer.Option(help="certbot-http01, certbot-dns01, edge-acme, internal or files.")] = None,
    platform: Annotated[str | None, typer.Option(help="linux/amd64, linux/arm64 (Pi, 64-bit) or linux/arm/v7 (Pi, 32-bit).")] = None,
    project: Annotated[str | None, typer.Option(help="Compose project name (default: the directory's name).")] = None,
    admin_user: Annotated[str, typer.Option(help="Node-RED editor user.")] = "admin",
    admin_password_file: Annotated[str | None, typer.Option(help="File holding the admin password ('-' = stdin). Only its bcrypt hash is stored.")] = None,
    acme_directory: Annotated[str | None, typer.Option(help="ACME directory URL (private CA). Default: Let's Encrypt.")] = None,
    staging: Annotated[bool, typer.Option(help="Let's Encrypt staging.")] = False,
    ca_bundle: Annotated[Path | None, typer.Option(help="CA bundle (PEM) trusted for the ACME directory (private CA).")] = None,
    dns_provider: Annotated[str | None, typer.Option(help="certbot DNS plugin (certbot-dns01).")] = None,
    dns_credentials_file: Annotated[Path | None, typer.Option(help="DNS plugin credentials (certbot-dns01).")] = None,
    cert_file: Annotated[Path | None, typer.Option(help="Certificate chain (files mode).")] = None,
    key_file: Annotated[Path | None, typer.Option(help="Private key (files mode).")] = None,
    bind_address: Annotated[str, typer.Option(help="Host address the edge publishes on.")] = "0.0.0.0",
    http_port: Annotated[int, typer.Option(help="Host HTTP port.")] = 80,
    https_port: Annotated[int, typer.Option(help="Host HTTPS port.")] = 443,
    egress: Annotated[bool, typer.Option("--egress/--no-egress", help="Allow Node-RED outbound connections.")] = False,
    editor_path: Annotated[str | None, typer.Option(help="URL path of the Node-RED editor and admin API (default /editor).")] = None,
    editor_allow: Annotated[
        list[str] | None,
        typer.Option(
            "--editor-allow",
            help="Client network (CIDR) that may reach the editor; repeat for more. 'private' = loopback, RFC 1918, "
            "100.64.0.0/10 (Tailscale), fc00::/7 (the default); 'everyone' = 0.0.0.0/0 and ::/0.",
        ),
    ] = None,
    editor_host: Annotated[str | None, typer.Option(help="A host name (one of the domains, or covered by a wildcard) that is the editor's alone.")] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of the containers.")] = "Etc/UTC",
    image_node_red: Annotated[str | None, typer.Option(help="Node-RED image override.")] = None,
    image_edge: Annotated[str | None, typer.Option(help="Edge image override.")] = None,
    image_certbot: Annotated[str | None, typer.Option(help="Certificate sidecar image override.")] = None,
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="Fail instead of prompting for anything missing.")] = False,
) -> None:
    """Create a new stack: write stack.yaml, then render every file from it."""
    from pydantic import ValidationError

    from stackgen.generate import passwords, workflow
    from stackgen.spec import Stack

    def ask(flag: str, text: str, value, default=None, choices: tuple[str, ...] | None = None):
        if value is not None:
            return value
        if non_interactive:
            if default is not None:
                return default
            raise fail(f"{flag}: required with --non-interactive")
        prompt_text = text + (f" ({'/'.join(choices)})" if choices else "")
        answer = typer.prompt(prompt_text, default=default)
        if choices and answer not in choices:
            raise fail(f"{flag}: {answer!r} is not one of {', '.join(choices)}")
        return answer

    try:
        domains = domain or [ask("--domain", "Domain for Node-RED", None)]
        email_value = ask("--email", "E-mail for the ACME account", email)
        edge_value = ask("--edge", "Edge proxy", edge, "caddy", EDGES)
        tls_value = ask("--tls-mode", "Certificate mode", tls_mode, "certbot-http01", TLS_MODES)
        platform_value = ask("--platform", "Platform", platform, "linux/amd64", PLATFORMS)
        if admin_password_file is not None:
            password = passwords.read_password_file(admin_password_file)
        elif non_interactive:
            raise fail("--admin-password-file: required with --non-interactive (the admin password is never a flag)")
        else:
            password = typer.prompt("Node-RED admin password", hide_input=True, confirmation_prompt=True)
            passwords.check_password(password, "admin password")
        if editor_allow:
            allow = _allow_networks(editor_allow)
        elif non_interactive:
            allow = None
        else:
            answer = typer.prompt(
                "Networks that may reach the editor (CIDRs, comma-separated; 'private' = LAN and VPN ranges, 'everyone')",
                default="private",
            )
            allow = _allow_networks([part for part in re.split(r"[,\s]+", answer) if part])
        editor: dict[str, object] = {"host": editor_host}
        if editor_path is not None:
            editor["path"] = editor_path
        if allow is not None:
            editor["allow"] = allow
        spec = {
            "project": project or _default_project(directory),
            "domains": domains,
            "email": email_value,
            "edge": edge_value,
            "tls": {
                "mode": tls_value,
                "acme_directory": acme_directory,
                "staging": staging,
                "ca_bundle": _abs(ca_bundle),
                "dns_provider": dns_provider,
                "dns_credentials_file": _abs(dns_credentials_file),
                "cert_file": _abs(cert_file),
                "key_file": _abs(key_file),
            },
            "ports": {"bind_address": bind_address, "http": http_port, "https": https_port},
            "platform": platform_value,
            "images": {"node_red": image_node_red, "edge": image_edge, "certbot": image_certbot},
            "node_red": {
                "admin_user": admin_user,
                "admin_password_hash": passwords.hash_password(password),
                "editor": editor,
                "egress": egress,
            },
            "timezone": timezone,
        }
        try:
            stack = Stack.model_validate(spec)
        except ValidationError as exc:
            first = problems(exc)[0]
            raise fail(f"{_flag_for(first.loc)}: {first.message}") from None
        result = workflow.init(directory, stack)
    except StackgenError as exc:
        raise fail(str(exc)) from None
    out.print(f"[green]created[/] {directory}/stack.yaml")
    _report(directory, result)
    if stack.node_red.editor.enabled and stack.node_red.editor.open_to_everyone:
        err.print("[yellow]warning:[/] the editor and admin API are open to everyone (node_red.editor.allow has 0.0.0.0/0 and ::/0): "
                  "the admin password is their only guard. Narrow it to your LAN or VPN (--editor-allow private).", highlight=False)
    from stackgen.generate.render import version_notes

    for note in version_notes(stack):
        out.print(f"[yellow]note[/] {note}", highlight=False)
    out.print(f"next: [bold]stackgen up {directory}[/]  (or docker compose -f {directory}/compose.yaml up -d --wait)")


def _allow_networks(values: list[str]) -> list[str]:
    from stackgen.spec import allow_networks

    return allow_networks(values)


def _abs(path: Path | None) -> str | None:
    return str(path.resolve()) if path is not None else None


def _report(directory: Path, result) -> None:
    from stackgen.generate.files import Action

    for item in result.plan.files:
        label = {
            Action.CREATE: "[green]created[/]",
            Action.UPDATE: "[yellow]updated[/]",
            Action.CONFLICT: "[red]overwrote (backup kept)[/]",
            Action.REMOVE: "[yellow]removed[/]",
            Action.ORPHAN: "[red]kept (edited, no longer generated)[/]",
        }.get(item.action)
        if label:
            out.print(f"{label} {directory}/{item.path}", highlight=False)
    for path in result.secrets_created:
        out.print(f"[green]created secret[/] {path} (0600)", highlight=False)
    for backup in result.backups:
        out.print(f"[yellow]backup[/] {backup}", highlight=False)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command(short_help=summary("generate"))
def generate(
    directory: Annotated[Path, typer.Argument(help="Stack directory holding stack.yaml.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite files edited by hand (each is kept as a .bak backup).")] = False,
    target: Annotated[
        str | None,
        typer.Option(help="compose, or swarm: also write compose.swarm.yaml for `docker stack deploy` (docs/swarm.md). "
                     "Default: stack.yaml's `target`."),
    ] = None,
) -> None:
    """Re-render every file from stack.yaml; never silently overwrites a hand edit."""
    from stackgen.generate import files, workflow
    from stackgen.spec import TARGETS

    if target is not None and target not in TARGETS:
        raise fail(f"--target: {target!r} is not a target: {' or '.join(TARGETS)}")
    try:
        result = workflow.generate(directory, force=force, target=target)
    except files.HandEditError as exc:
        for item in exc.plan.conflicts:
            err.print(item.diff(), markup=False, highlight=False)
        raise fail(str(exc)) from None
    except StackgenError as exc:
        raise fail(str(exc)) from None
    _report(directory, result)
    changed = [f for f in result.plan.files if f.action is not files.Action.UNCHANGED]
    if not changed:
        out.print("up to date")
    if any(f.path == "compose.swarm.yaml" and f.new is not None for f in result.plan.files):
        out.print(f"swarm: label the nodes its header names, then [bold]docker stack deploy -c {directory}/compose.swarm.yaml STACK[/]",
                  highlight=False)


def _progress_table(current) -> Table:
    from rich.table import Table

    table = Table(title="stackgen up", expand=False)
    for column in ("service", "state", "health", "waiting for"):
        table.add_column(column)
    colour = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}
    for state in current.values():
        health = state.health or ("-" if state.state != "running" else "no check")
        table.add_row(state.name, state.state, f"[{colour.get(health, 'white')}]{health}[/]", state.detail)
    return table


@app.command(short_help=summary("up"))
def up(
    directory: Annotated[Path, typer.Argument(help="Stack directory.")] = Path("."),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service to be healthy.")] = 300.0,
    resolve_image: Annotated[str, typer.Option(help="Swarm only: `docker stack deploy --resolve-image` (always, changed or never: "
                                                    "never deploys the tags as written, asking no registry).")] = "always",
) -> None:
    """Start the stack, wait until every service is healthy, and say what failed if one does not."""
    from rich.live import Live

    from stackgen.operate import lifecycle

    try:
        with Live(console=err, refresh_per_second=4, transient=not err.is_terminal) as live:
            result = lifecycle.up(directory, timeout=timeout, on_progress=lambda s: live.update(_progress_table(s)),
                                  resolve_image=resolve_image)
    except lifecycle.StackFailed as exc:
        if exc.logs:
            err.print(f"[bold]last log lines of {exc.service}:[/]")
            err.print(exc.logs, markup=False, highlight=False)
        raise fail(str(exc), 1) from None
    except StackgenError as exc:
        raise fail(str(exc)) from None
    from stackgen.generate.render import Context
    from stackgen.stackdir import load_stack

    stack = load_stack(directory)
    ctx = Context(stack)
    if result.firewall == "not-applicable":  # a swarm stack
        out.print(f"[green]up[/] {result.project}: deployed to the swarm, every service converged (tasks running and healthy) "
                  f"in {result.seconds:.1f}s", highlight=False)
        reach = getattr(result, "reach", None)  # swarm.SwarmUpResult: whether the edge reaches every instance
        if reach is not None and reach.skipped:
            err.print(f"[yellow]warning:[/] {reach.skipped}", highlight=False)
        elif reach is not None and reach.reaches:
            out.print(reach.summary(), highlight=False)
        for note in result.notes:
            err.print(f"[yellow]note:[/] {note}", markup=True, highlight=False)
    else:
        out.print(f"[green]up[/] {result.project}: every service healthy in {result.seconds:.1f}s")
    for inst in stack.node_reds:  # several instances: each one's editor on its first host name
        host = stack.domains[0] if stack.instances is None else inst.hosts[0]
        named = f"instance {inst.name}: " if stack.instances is not None else ""
        out.print(f"{named}open https://{host}{ctx.https_port_suffix}{inst.editor_root} (user {inst.admin_user})", highlight=False)
    if result.firewall == "not-applicable":
        out.print("host firewall: none needed for the internal overlays (an internal overlay has no gateway to the host)")
        for inst in stack.node_reds:
            if inst.egress:
                err.print(f"[yellow]warning:[/] {inst.service} has egress: its overlay's gateway (docker_gwbridge) reaches the "
                          "services this host listens on; firewall them on the host (docs/swarm.md)", highlight=False)
        return
    bridges = ", ".join(route.bridge for route in ctx.routes)
    what = "Node-RED's internal network" if len(ctx.routes) == 1 else "each Node-RED instance's internal network"
    if result.firewall == "applied":
        out.print(f"host firewall: traffic between the host and bridge {bridges} ({what}) is dropped")
    else:
        fixes = "; ".join(rule.fix for rule in lifecycle.firewall_rules(stack))
        err.print(f"[yellow]warning:[/] could not close the host-gateway hole of {bridges} (needs root and iptables): "
                  f"Node-RED can reach services the host listens on. Fix: {fixes}")


@app.command(short_help=summary("down"))
def down(
    directory: Annotated[Path, typer.Argument(help="Stack directory.")] = Path("."),
    volumes: Annotated[bool, typer.Option("--volumes", help="Also delete the volumes: Node-RED's flows and the certificates and keys.")] = False,
) -> None:
    """Stop the stack. Volumes (your flows, your keys) are kept unless --volumes is given."""
    from stackgen.operate import lifecycle

    try:
        result = lifecycle.down(directory, volumes=volumes)
    except StackgenError as exc:
        raise fail(str(exc)) from None
    if result is None:
        out.print("down" + (" (volumes deleted)" if volumes else " (volumes kept)"))
        return
    # A swarm stack: `docker stack rm` never removes volumes, and each node has its own.
    said = "down" if result.removed else f"down: no stack {result.project} on this swarm"
    out.print(f"{said} (services, networks, configs and secrets of stack {result.project} removed in {result.seconds:.1f}s)"
              if result.removed else said, highlight=False)
    if result.volumes_removed:
        out.print(f"volumes deleted on this node: {', '.join(result.volumes_removed)} (other nodes keep theirs: "
                  "`docker volume rm` there)", highlight=False)
    elif result.volumes_kept:
        out.print(f"volumes kept (Swarm never removes a stack's volumes): {', '.join(result.volumes_kept)}; "
                  "--volumes deletes this node's", highlight=False)


# Command families that live in their own modules, each with `register(app)`.
COMMAND_MODULES = ("stackgen.cli.verify", "stackgen.cli.supervise", "stackgen.cli.images", "stackgen.cli.instance")


def _register_optional() -> None:
    """Add the command families found in this installation (a missing module is skipped, a broken one is an error)."""
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_optional()
