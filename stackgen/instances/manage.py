"""`stackgen instance add|remove` carried out on a stack directory: stack.yaml, the rendered files, and (remove)
the instance's container, never another instance's files or data.

Order, so that a refusal leaves the directory as it was: the new spec is validated and rendered, the plan is
checked for hand edits, and only then are stack.yaml and the files written (`generate` makes the new instance's
credential secret). Adding touches no file of an existing instance: their settings and services render to the
same bytes, so `up` recreates only the edge (and starts the new instance).

Removing keeps the instance's data unless asked: its volume (flows, credentials, installed nodes) and its
credential secret file (without which the credentials in that volume cannot be decrypted) stay, and the result
says where. Its container, now no service of the stack, would keep running on its old network, so it is
stopped and removed when an engine answers. With `drop_data`, the volume and the secret go too, and only once
the container is gone. The last instance is never removed.

On a swarm stack (`target: swarm`, or compose.swarm.yaml from `generate --target swarm`, which add and remove keep
current) the instance is a service Swarm keeps running, and would restart if its task were removed: it stays until
the next `stackgen up` (`docker stack deploy --prune`), and the result says so. `drop_data` is refused there: the
service holds its volume until then, and each node has its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.errors import StackgenError
from stackgen.generate import files, workflow
from stackgen.generate.render import render
from stackgen.instances.edit import Edited, add_instance, remove_instance
from stackgen.spec import Instance, Stack
from stackgen.stackdir import SPEC_NAME, StackDir, dump_stack


@dataclass
class Outcome:
    """What an add or remove did."""

    stack: Stack
    generated: workflow.GenerateResult
    notes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # data left in place, and how to drop it
    dropped: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # containers removed
    target: str = "compose"  # where the stack runs (StackDir.target)
    engine_answered: bool = True  # remove: False when no engine answered (its container, if any, was not stopped)
    removed: Instance | None = None


def _write(directory: Path, edited: Edited, force: bool, target: str) -> workflow.GenerateResult:
    """stack.yaml and every rendered file (compose.swarm.yaml too on a swarm stack), or nothing when a hand edit is
    in the way (without force)."""
    workflow.check_references(edited.stack, directory)
    rendered = render(edited.stack)
    if target == "swarm":
        rendered, _ = workflow.with_swarm_file(edited.stack, directory, rendered)
    plan = files.plan(directory, rendered)
    if plan.conflicts and not force:
        raise files.HandEditError(plan)
    files.write_atomic(directory / SPEC_NAME, dump_stack(edited.stack), 0o600)
    return workflow.generate(directory, force=force, stack=edited.stack, target=target)


def add(directory: Path, name: str, domains: list[str], settings: dict[str, Any], force: bool = False) -> Outcome:
    """Add instance `name` on `domains` with `settings` (its node_red settings: admin_password_hash at least)."""
    stack_dir = StackDir(directory)
    edited = add_instance(stack_dir.stack, name, domains, settings)
    generated = _write(directory, edited, force, stack_dir.target)
    return Outcome(edited.stack, generated, list(edited.notes), target=stack_dir.target)


def remove(directory: Path, name: str, drop_data: bool = False, force: bool = False, engine: Any = None) -> Outcome:
    """Remove instance `name`: from stack.yaml and the rendered files, its container from the engine (when one
    answers, or `engine` is given); its data volume and secret file only with `drop_data`."""
    stack_dir = StackDir(directory)
    stack, target = stack_dir.stack, stack_dir.target
    edited = remove_instance(stack, name)
    gone = edited.removed
    assert gone is not None
    volume = f"{stack.project}_{gone.data_volume}"
    if target == "swarm" and drop_data:
        raise StackgenError(f"--drop-data on a swarm stack: service {stack.project}_{gone.service} keeps using volume {volume} "
                            f"until `stackgen up {directory}` removes it, and each node has its own copy: remove the instance "
                            f"without --drop-data, run up, then `docker volume rm {volume}` on each node")
    if engine is None and target != "swarm":  # a swarm service is the next up's to remove (its task would be replaced)
        engine = _engine(required=drop_data)
    generated = _write(directory, edited, force, target)
    own_dir = directory / gone.service
    if own_dir.is_dir() and not any(own_dir.iterdir()):  # its files went with it (those edited by hand stay)
        own_dir.rmdir()
    outcome = Outcome(edited.stack, generated, list(edited.notes), target=target, engine_answered=engine is not None,
                      removed=gone)
    secret = _in(directory, gone.credential_secret_file)
    if engine is not None and target != "swarm":
        outcome.stopped = _remove_container(engine, stack.project, gone)
        outcome.dropped += [f"network {name}" for name in _remove_networks(engine, stack.project, gone)]
    if drop_data:
        from stackgen import engine as engines

        for found in engines.project_volumes(engine, stack.project, gone.data_volume):
            try:
                found.remove()
            except engines.APIError as exc:
                raise StackgenError(f"volume {found.name}: not deleted ({exc}); the instance is out of stack.yaml, its data stays") from None
            outcome.dropped.append(f"volume {found.name}")
        if secret.exists():
            secret.unlink()
            outcome.dropped.append(f"secret {secret}")
    else:
        outcome.kept.append(f"volume {volume} (its flows, credentials and nodes; delete it with `docker volume rm {volume}`)")
        if secret.exists():
            outcome.kept.append(f"secret {secret} (decrypts the credentials in that volume)")
        outcome.notes.append(f"`stackgen instance add {directory} {name} ...` later picks the kept volume and secret up again")
    return outcome


def _in(directory: Path, value: str) -> Path:
    return Path(value) if value.startswith("/") else directory / value


def _engine(required: bool) -> Any:
    """The engine, or None when none answers and nothing needs it (the container is then the user's to stop)."""
    from stackgen import engine as engines

    try:
        return engines.client(timeout=10)
    except engines.EngineUnavailable:
        if required:
            raise StackgenError("--drop-data deletes the instance's volume: it needs the Docker engine, and none answers") from None
        return None


def _remove_container(engine: Any, project: str, gone: Instance) -> list[str]:
    from stackgen import engine as engines

    removed = []
    for container in engine.containers.list(all=True, ignore_removed=True, filters=engines.label_filter(project, service=gone.service)):
        container.remove(force=True)  # its data lives in the volume; the volume stays unless drop_data
        removed.append(container.name)
    return removed


def _remove_networks(engine: Any, project: str, gone: Instance) -> list[str]:
    """The instance's own networks: nothing but the edge joins them, and Compose removes a network only with the whole
    stack, so a network no longer declared would outlive the instance. The edge leaves it first (the next `up`
    recreates the edge without it anyway; its route to the instance is gone with the container)."""
    from stackgen import engine as engines

    removed: list[str] = []
    if not hasattr(engine, "networks"):  # an engine double without networks
        return removed
    for key in (gone.internal_network, gone.egress_network):
        for network in engines.project_networks(engine, project, key):
            try:
                network.reload()
                for container in (network.attrs.get("Containers") or {}):
                    network.disconnect(container, force=True)
                network.remove()
                removed.append(network.name)
            except engines.APIError:
                pass  # still in use by something else: it stays, and `down` removes it with the stack
    return removed
