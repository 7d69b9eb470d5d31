"""`stackgen instance add|remove`: several Node-RED instances in one stack. `register(app)` adds them.

Thin, like the rest of the CLI: parse, call `stackgen.instances.manage`, print. Errors name the flag the user typed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from stackgen.cli.commands import summary
from stackgen.cli.errors import fail
from stackgen.errors import StackgenError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Which flag sets which field of the new instance (edit.add_instance names them `instance.*`).
FLAG_OF_FIELD = {
    ("instance", "name"): "NAME",
    ("instances", "name"): "NAME",
    ("instances",): "NAME",
    ("instance", "domains"): "--domain",
    ("instance", "path"): "--path",
    ("domains",): "--domain",
    ("instance", "admin_user"): "--admin-user",
    ("instance", "admin_password_hash"): "--admin-password-file",
    ("instance", "editor", "path"): "--editor-path",
    ("instance", "editor", "allow"): "--editor-allow",
    ("instance", "editor", "host"): "--editor-host",
    ("instance", "egress"): "--egress",
    ("instance", "version"): "--node-red-version",
    ("instance", "memory_limit"): "--memory-limit",
    ("instance", "image"): "--image",
}


def _flag(loc: tuple) -> str:
    names = tuple(p for p in loc if isinstance(p, str))
    while names:
        if names in FLAG_OF_FIELD:
            return FLAG_OF_FIELD[names]
        names = names[:-1]
    from stackgen.errors import dotted

    return dotted(loc)


def add(
    directory: Annotated[Path, typer.Argument(help="Stack directory holding stack.yaml.")],
    name: Annotated[str, typer.Argument(help="Instance name: lowercase letters and digits, words joined by hyphens (service node-red-NAME).")],
    domain: Annotated[list[str] | None, typer.Option("--domain", "-d", help="Host name routed to this instance (repeat for more); "
                                                                            "added to the certificate unless a wildcard covers it. "
                                                                            "With --path and no --domain: the stack's first host name.")] = None,
    path: Annotated[str | None, typer.Option("--path", help="Serve it under this URL path prefix (such as /lab) of its host names, "
                                                            "which other instances may share: editor at PATH/editor, endpoints under PATH/.")] = None,
    admin_user: Annotated[str, typer.Option(help="The instance's editor user.")] = "admin",
    admin_password_file: Annotated[str | None, typer.Option(help="File holding the instance's admin password ('-' = stdin). "
                                                                  "Only its bcrypt hash is stored.")] = None,
    editor_path: Annotated[str | None, typer.Option(help="URL path of its editor and admin API (default /editor).")] = None,
    editor_allow: Annotated[list[str] | None, typer.Option("--editor-allow", help="Client network (CIDR) that may reach its editor; "
                                                                                  "repeat for more. 'private' (default), 'everyone'.")] = None,
    editor_host: Annotated[str | None, typer.Option(help="A host name that is its editor's alone; added to the certificate "
                                                        "unless a wildcard covers it.")] = None,
    egress: Annotated[bool, typer.Option("--egress/--no-egress", help="Let it open outbound connections (its own egress network).")] = False,
    node_red_version: Annotated[str | None, typer.Option(help="Node-RED version (image tag) of this instance.")] = None,
    memory_limit: Annotated[str | None, typer.Option(help="Memory limit such as 512m.")] = None,
    image: Annotated[str | None, typer.Option(help="Image override for this instance (name[:tag][@sha256:digest]).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite files edited by hand (each kept as a .bak backup).")] = False,
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="Fail instead of prompting for the password.")] = False,
) -> None:
    """Add a Node-RED instance: its own network, volume, secret and password; the edge routes its host names (or a path
    prefix of them, --path) to it."""
    from stackgen.generate import passwords
    from stackgen.instances import manage

    with _refusals_named():
        if admin_password_file is not None:
            password = passwords.read_password_file(admin_password_file)
        elif non_interactive:
            raise fail("--admin-password-file: required with --non-interactive (the admin password is never a flag)")
        else:
            password = typer.prompt(f"Admin password of instance {name}", hide_input=True, confirmation_prompt=True)
            passwords.check_password(password, "admin password")
        editor: dict[str, object] = {}
        if editor_path is not None:
            editor["path"] = editor_path
        if editor_host is not None:
            editor["host"] = editor_host
        if editor_allow:
            editor["allow"] = _allow_networks(editor_allow)
        settings: dict[str, object] = {"admin_user": admin_user, "admin_password_hash": passwords.hash_password(password),
                                       "editor": editor, "egress": egress}
        if node_red_version is not None:
            settings["version"] = node_red_version
        if memory_limit is not None:
            settings["memory_limit"] = memory_limit
        if image is not None:
            settings["image"] = image
        if path is not None:
            settings["path"] = path
        outcome = manage.add(directory, name, domain or [], settings, force=force)
    inst = next(i for i in outcome.stack.instances or [] if i.name == name)
    out.print(f"[green]added[/] instance {name}: service {inst.service}, network {inst.internal_network}, volume {inst.data_volume}",
              highlight=False)
    if inst.path:
        out.print(f"served under {inst.path}/ of {', '.join(inst.hosts)}; its editor at {inst.editor_root}", highlight=False)
    _report(directory, outcome)
    out.print(f"next: [bold]stackgen up {directory}[/] (starts {inst.service}; the edge is recreated, the other instances are not)")


def remove(
    directory: Annotated[Path, typer.Argument(help="Stack directory holding stack.yaml.")],
    name: Annotated[str, typer.Argument(help="The instance to remove.")],
    drop_data: Annotated[bool, typer.Option("--drop-data", help="Also delete its data volume (flows, credentials, nodes) and "
                                                                "its credential secret. Default: both are kept.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite files edited by hand (each kept as a .bak backup).")] = False,
) -> None:
    """Remove a Node-RED instance from the stack; its data volume and secret are kept unless --drop-data."""
    from stackgen.instances import manage

    with _refusals_named():
        outcome = manage.remove(directory, name, drop_data=drop_data, force=force)
    out.print(f"[green]removed[/] instance {name} from {directory}/stack.yaml", highlight=False)
    for container in outcome.stopped:
        out.print(f"[yellow]stopped and removed[/] container {container}", highlight=False)
    _report(directory, outcome)
    for item in outcome.dropped:
        out.print(f"[red]deleted[/] {item}", highlight=False)
    for item in outcome.kept:
        out.print(f"[green]kept[/] {item}", highlight=False)
    service = outcome.removed.service
    if outcome.target == "swarm":
        out.print(f"next: [bold]stackgen up {directory}[/]: swarm service {outcome.stack.project}_{service} keeps running until "
                  "then (up deploys with --prune, which removes it)", highlight=False)
        return
    if not outcome.engine_answered:
        project = outcome.stack.project
        err.print(f"[yellow]warning:[/] no Docker engine answered: {service}'s container, if there is one, was not stopped, and "
                  f"`stackgen up` does not stop it: docker rm -f $(docker ps -aq --filter label=com.docker.compose.project={project} "
                  f"--filter label=com.docker.compose.service={service})", highlight=False)
    out.print(f"next: [bold]stackgen up {directory}[/] (the edge stops routing to {name})")


@contextmanager
def _refusals_named() -> Iterator[None]:
    """add and remove alike: a spec refusal names its flag, hand-edited files show their diff, any other refusal its
    message; each exits 2 having written nothing."""
    from stackgen.generate import files
    from stackgen.instances.edit import SpecEditError

    try:
        yield
    except SpecEditError as exc:
        raise fail(f"{_flag(exc.loc)}: {exc.message}") from None
    except files.HandEditError as exc:
        for item in exc.plan.conflicts:
            err.print(item.diff(), markup=False, highlight=False)
        raise fail(str(exc)) from None
    except StackgenError as exc:
        raise fail(str(exc)) from None

def _allow_networks(values: list[str]) -> list[str]:
    from stackgen.spec import allow_networks

    return allow_networks(values)


def _report(directory: Path, outcome) -> None:
    from stackgen.cli.app import _report as report_files

    report_files(directory, outcome.generated)
    for note in outcome.notes:
        out.print(f"[yellow]note[/] {note}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `instance add` and `instance remove` to stackgen's app."""
    instance_app = typer.Typer(help=summary("instance"), no_args_is_help=True)
    instance_app.command("add")(add)
    instance_app.command("remove")(remove)
    app.add_typer(instance_app, name="instance")
