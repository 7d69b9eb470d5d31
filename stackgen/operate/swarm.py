"""`stackgen up`, `down` and `status` on Docker Swarm: compose.swarm.yaml deployed as a stack, watched until it converges.

Why its own module: a swarm stack is services and their tasks, not containers. Swarm schedules, restarts and replaces
tasks itself (a task that fails or turns unhealthy is replaced by a new one, on any node its placement allows), so
"did it come up" is read from the tasks: each service's current task running (Swarm holds a task with a healthcheck
in `starting` until it is healthy) with the health its container reports, and "why not" from the tasks that failed
since `up` began (their error: `No such image`, `non-zero exit (1)`, `unhealthy container`, `no suitable node`)
and the service's logs, which a manager gathers from every node.

What `up` checks before it deploys: the engine is a swarm manager, compose.swarm.yaml is current, and every node
label the file pins a stateful service with is on a node (a task whose placement no node meets waits forever).
`docker stack deploy --prune`: the file is the whole stack, so a service no longer in it (an instance removed) goes.
`down` is `docker stack rm`, then waits until this node's task containers and the stack's networks are gone;
Swarm never removes a stack's volumes: `--volumes` removes the ones on this node (other nodes keep theirs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen import engine as engines
from stackgen.errors import StackgenError
from stackgen.stackdir import SWARM_NAME, StackDir

__all__ = ["FAILURES", "RESOLVE_IMAGE", "Task", "down", "service_states", "stack_tasks", "status", "up"]

RESOLVE_IMAGE = ("always", "changed", "never")  # `docker stack deploy --resolve-image`
FAILURES = 2  # failed tasks of one service since `up` began: it will not come up by itself (Swarm retries every 5 s)
_FAILED = ("failed", "rejected", "orphaned")
_UPDATE_FAILED = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


class NotASwarm(StackgenError):
    """The engine is not a swarm manager (or not in a swarm at all)."""


@dataclass
class Task:
    """One task of a swarm service, as `status` shows it."""

    id: str
    service: str
    slot: int | None
    state: str  # new, pending, assigned, preparing, starting, running, complete, shutdown, failed, rejected, ...
    desired: str  # running, shutdown, ...
    node: str | None
    error: str = ""
    message: str = ""
    exit_code: int | None = None
    created: float | None = None
    container: str | None = None
    health: str | None = None  # from the container when it runs on this node; else inferred from the task's state
    updated: float | None = None  # when the task reached its state (a failure counts then, not when the task was made)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id[:12], "slot": self.slot, "state": self.state, "desired": self.desired, "node": self.node,
                "health": self.health, "error": self.error or None, "message": self.message, "exit_code": self.exit_code,
                "created": self.created}


def _node_names(engine) -> dict[str, str]:
    try:
        return {node.id: (node.attrs.get("Description") or {}).get("Hostname") or node.id[:12] for node in engine.nodes.list()}
    except Exception:  # noqa: BLE001 - names are a nicety
        return {}


def _has_healthcheck(spec: dict[str, Any]) -> bool:
    check = (((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Healthcheck") or {})
    return bool(check.get("Test")) and check["Test"][:1] != ["NONE"]


def _health(engine, container_id: str | None, state: str, healthcheck: bool) -> str | None:
    """The task container's health on this node; from another node, what its state implies (Swarm marks a task with a
    healthcheck `running` once it is healthy, `starting` until then)."""
    if container_id:
        try:
            attrs = engine.containers.get(container_id).attrs
            health = (attrs.get("State") or {}).get("Health")
            return health.get("Status") if health else None
        except Exception:  # noqa: BLE001 - on another node, or gone meanwhile
            pass
    if not healthcheck:
        return None
    return {"running": "healthy", "starting": "starting"}.get(state)


def tasks(engine, service, nodes: dict[str, str], project: str) -> list[Task]:
    """The service's tasks (the history Swarm keeps too), newest first."""
    spec = service.attrs.get("Spec") or {}
    healthcheck = _has_healthcheck(spec)
    name = engines.stack_key(spec.get("Name") or service.name, project)
    found = []
    for raw in service.tasks():
        status = raw.get("Status") or {}
        container = (status.get("ContainerStatus") or {})
        state = status.get("State") or "new"
        found.append(Task(
            id=raw.get("ID", ""), service=name, slot=raw.get("Slot"), state=state, desired=raw.get("DesiredState") or "",
            node=nodes.get(raw.get("NodeID") or "", raw.get("NodeID") or None), error=status.get("Err") or "",
            message=status.get("Message") or "", exit_code=container.get("ExitCode"),
            created=engines.parse_time(raw.get("CreatedAt")), container=container.get("ContainerID") or None,
            health=_health(engine, container.get("ContainerID"), state, healthcheck) if state in ("running", "starting") else None,
            updated=engines.parse_time(status.get("Timestamp")),
        ))
    return sorted(found, key=lambda t: t.created or 0, reverse=True)


def stack_tasks(engine, project: str) -> dict[str, tuple[int, list[Task]]]:
    """Each deployed service of the stack (by its key): its desired replicas and its tasks, newest first (what the
    supervisor's resync of a swarm stack reads)."""
    nodes = _node_names(engine)
    found = {}
    for service in engines.stack_services(engine, project):
        found[engines.stack_key(service.name, project)] = (_replicas(service.attrs.get("Spec") or {}), tasks(engine, service, nodes, project))
    return found


def _replicas(spec: dict[str, Any]) -> int:
    mode = spec.get("Mode") or {}
    return int((mode.get("Replicated") or {}).get("Replicas", 1)) if "Replicated" in mode or not mode else 1


@dataclass
class _Seen:
    """One service as the wait loop sees it: its state in `up`'s words, and what failed since `up` began."""

    state: Any  # lifecycle.ServiceState
    failures: list[Task] = field(default_factory=list)
    update: str = ""  # the service's update state and message, when an update failed
    id: str = ""


def _observe(engine, project: str, names: list[str], since: float | None) -> dict[str, _Seen]:
    from stackgen.operate.lifecycle import ServiceState

    services = {engines.stack_key(s.name, project): s for s in engines.stack_services(engine, project)}
    nodes = _node_names(engine)
    seen: dict[str, _Seen] = {}
    for name in names:
        service = services.get(name)
        if service is None:
            seen[name] = _Seen(ServiceState(name, "absent", detail="not deployed"))
            continue
        spec = service.attrs.get("Spec") or {}
        found = tasks(engine, service, nodes, project)
        current = [t for t in found if t.desired in ("running", "ready")]
        task = current[0] if current else (found[0] if found else None)
        if task is None:
            state = ServiceState(name, "pending", detail="no task scheduled yet")
        else:
            state = ServiceState(name, task.state, health=task.health, exit_code=task.exit_code, started_at=task.created)
            state.node = task.node
            running = [t for t in current if t.state == "running"]
            if task.state != "running":
                state.detail = task.error or (task.message if task.message not in ("", task.state) else "")
                if task.state == "starting" and not state.detail:
                    state.detail = "waiting for its health check (Swarm holds a task in starting until it is healthy)"
            elif len(running) < _replicas(spec):
                state.state, state.detail = "starting", f"{len(running)} of {_replicas(spec)} tasks running"
        failures = [t for t in found if t.state in _FAILED and (since is None or (t.created or 0) >= since - 1)]
        update = (service.attrs.get("UpdateStatus") or {})
        broken = ""
        if update.get("State") in _UPDATE_FAILED and (since is None or (engines.parse_time(update.get("StartedAt")) or 0) >= since - 1):
            broken = f"update {update['State']}: {update.get('Message') or ''}".strip()
        if update.get("State") in ("updating", "rollback_started") and state.state == "running":
            state.state, state.detail = "updating", update.get("Message") or "update in progress"
        seen[name] = _Seen(state, failures, broken, service.id)
    return seen


def service_states(engine, project: str, names: list[str]) -> dict[str, Any]:
    """{service: lifecycle.ServiceState} of the stack's services: what `up` shows while it waits."""
    return {name: seen.state for name, seen in _observe(engine, project, names, None).items()}


def logs(engine, service_id: str, lines: int = 30) -> str:
    """The service's last log lines (a manager gathers them from every node)."""
    if not service_id:
        return ""
    try:
        output = engine.api.service_logs(service_id, stdout=True, stderr=True, tail=lines)
        return b"".join(output).decode("utf-8", "replace") if not isinstance(output, bytes) else output.decode("utf-8", "replace")
    except Exception as exc:  # noqa: BLE001 - logs are a help, not the verdict
        return f"(no logs: {exc})"


def _why(failed: list[Task]) -> str:
    last = failed[0]
    said = last.error or last.message or f"exit code {last.exit_code}"
    return f"{said} ({len(failed)} failed tasks since up began; Swarm keeps replacing it)"


# --- up ---------------------------------------------------------------------------------------


def require_manager(engine) -> None:
    role = engines.swarm_role(engine)
    if role != "manager":
        where = engines.engine_url()
        hint = ("run it on a manager (or point DOCKER_HOST at one)" if role == "worker"
                else "make it one with `docker swarm init` (a single node), or point DOCKER_HOST at a manager")
        raise NotASwarm(f"the engine at {where} is not a swarm manager ({role}): a stack with target swarm deploys to one; {hint}")


def missing_labels(engine, document: dict[str, Any]) -> list[str]:
    """The node labels compose.swarm.yaml pins stateful services with that no node carries."""
    wanted = [pin.get("label") for pin in ((document.get("x-stackgen") or {}).get("placement") or []) if pin.get("label")]
    have: set[str] = set()
    for node in engine.nodes.list():
        have |= {key for key, value in ((node.attrs.get("Spec") or {}).get("Labels") or {}).items() if value == "true"}
    return [label for label in wanted if label not in have]


def _this_node(engine) -> str:
    return ((engine.info() or {}).get("Swarm") or {}).get("NodeID") or "NODE"


def up(directory: Path, timeout: float = 300, on_progress: Callable[[dict[str, Any]], None] | None = None,
       poll: float = 0.5, resolve_image: str = "always"):
    """Deploy compose.swarm.yaml as stack PROJECT and wait until every service converged, or say why not."""
    from stackgen.operate.lifecycle import StackFailed, UpResult

    if resolve_image not in RESOLVE_IMAGE:
        raise StackgenError(f"--resolve-image: {resolve_image!r} is not one of {', '.join(RESOLVE_IMAGE)}")
    stack_dir = StackDir(directory)
    project = stack_dir.project()
    document = _swarm_document(stack_dir)
    names = list(document.get("services") or {})
    engine = engines.client()
    require_manager(engine)
    missing = missing_labels(engine, document)
    if missing:
        node = _this_node(engine)
        commands = "; ".join(f"docker node update --label-add {label}=true {node}" for label in missing)
        raise StackgenError(f"no node carries {', '.join(missing)}: the services pinned to it would wait forever for a node. "
                            f"Label the node that holds their volumes (on one host: this one): {commands}")
    start, wall_start = time.monotonic(), time.time()
    deployed = engines.docker_cli("stack", "deploy", "--prune", "--resolve-image", resolve_image, "-c", SWARM_NAME, project,
                                  cwd=stack_dir.path, check=False, timeout=timeout)
    if deployed.returncode != 0:
        raise StackFailed(f"docker stack deploy failed ({deployed.returncode}): {(deployed.stderr or deployed.stdout).strip()[-2000:]}",
                          None, "")
    notes = [line for line in (deployed.stderr or "").splitlines() if line.strip() and "--detach" not in line
             and "future release" not in line and "background" not in line]
    while True:
        seen = _observe(engine, project, names, wall_start)
        current = {name: s.state for name, s in seen.items()}
        if on_progress:
            on_progress(current)
        for name, s in seen.items():
            if s.update:
                raise StackFailed(f"{name}: {s.update}", name, logs(engine, s.id))
            if len(s.failures) >= FAILURES:
                raise StackFailed(f"{name}: {_why(s.failures)}", name, logs(engine, s.id))
        if all(s.ready for s in current.values()):
            return UpResult(project, current, time.monotonic() - start, "not-applicable", notes)
        if time.monotonic() - start > timeout:
            waiting = [s for s in current.values() if not s.ready]
            name = waiting[0].name if waiting else None
            detail = "; ".join(f"{s.name}: {s.state}/{s.health or '-'} {s.detail}".rstrip() for s in waiting)
            raise StackFailed(f"not converged after {timeout:.0f}s: {detail}", name, logs(engine, seen[name].id) if name else "")
        time.sleep(poll)


def _swarm_document(stack_dir: StackDir) -> dict[str, Any]:
    from ruamel.yaml import YAML

    if not stack_dir.swarm_path.is_file():
        raise StackgenError(f"{stack_dir.swarm_path}: not found: run `stackgen generate {stack_dir.path} --target swarm` first")
    try:
        document = YAML(typ="safe").load(stack_dir.swarm_path.read_text())
    except Exception as exc:  # noqa: BLE001 - any YAML problem
        raise StackgenError(f"{stack_dir.swarm_path}: not valid YAML ({exc.__class__.__name__})") from None
    return document if isinstance(document, dict) else {}


# --- down -------------------------------------------------------------------------------------


@dataclass
class DownResult:
    project: str
    removed: bool  # there was a stack to remove
    volumes_removed: list[str] = field(default_factory=list)
    volumes_kept: list[str] = field(default_factory=list)
    seconds: float = 0.0


def down(directory: Path, volumes: bool = False, timeout: float = 120, poll: float = 0.5) -> DownResult:
    """`docker stack rm`, then wait until this node's task containers and the stack's networks are gone. Swarm keeps
    volumes: with `volumes`, this node's are removed (each other node keeps its own)."""
    stack_dir = StackDir(directory)
    project = stack_dir.project()
    engine = engines.client()
    require_manager(engine)
    start = time.monotonic()
    present = bool(engines.stack_services(engine, project)) or bool(engine.networks.list(filters=engines.stack_filter(project)))
    if present:
        engines.docker_cli("stack", "rm", project, check=False, timeout=timeout)

    def gone() -> bool:
        return not (engines.stack_services(engine, project)
                    or engine.containers.list(all=True, ignore_removed=True, filters=engines.stack_filter(project))
                    or engine.networks.list(filters=engines.stack_filter(project)))

    while not gone():
        if time.monotonic() - start > timeout:
            left = [c.name for c in engine.containers.list(all=True, ignore_removed=True, filters=engines.stack_filter(project))]
            left += [n.name for n in engine.networks.list(filters=engines.stack_filter(project))]
            raise StackgenError(f"stack {project}: still there after {timeout:.0f}s: {', '.join(left) or 'its services'}")
        time.sleep(poll)
    result = DownResult(project, present)
    for volume in engine.volumes.list(filters=engines.stack_filter(project)):
        if volumes:
            volume.remove()
            result.volumes_removed.append(volume.name)
        else:
            result.volumes_kept.append(volume.name)
    result.seconds = time.monotonic() - start
    return result


# --- status -----------------------------------------------------------------------------------


def status(engine, project: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Each service of the stack with its tasks (the current ones first): state, health, node, error."""
    nodes = _node_names(engine)
    services = {engines.stack_key(s.name, project): s for s in engines.stack_services(engine, project)}
    report = []
    for name in list(names or []) + sorted(set(services) - set(names or [])):
        service = services.get(name)
        if service is None:
            report.append({"service": name, "replicas": "0/0", "image": None, "ports": [], "tasks": [], "deployed": False})
            continue
        spec = service.attrs.get("Spec") or {}
        found = tasks(engine, service, nodes, project)
        current = [t for t in found if t.desired in ("running", "ready")]
        history = [t for t in found if t not in current][:3]
        image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
        ports = [f"{p.get('PublishedPort')}->{p.get('TargetPort')}/{p.get('Protocol', 'tcp')} ({p.get('PublishMode', 'ingress')})"
                 for p in ((spec.get("EndpointSpec") or {}).get("Ports") or [])]
        running = sum(1 for t in current if t.state == "running")
        report.append({"service": name, "replicas": f"{running}/{_replicas(spec)}", "image": image, "ports": ports,
                       "tasks": [t.to_dict() for t in current + history], "deployed": True})
    return report
