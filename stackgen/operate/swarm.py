"""`stackgen up`, `down` and `status` on Docker Swarm: compose.swarm.yaml deployed as a stack, watched until it converges.

Why its own module: a swarm stack is services and their tasks, not containers. Swarm schedules, restarts and replaces
tasks itself (a task that fails or turns unhealthy is replaced by a new one, on any node its placement allows), so
"did it come up" is read from the tasks: each service's current task running (Swarm holds a task with a healthcheck
in `starting` until it is healthy) with the health its container reports, and "why not" from the tasks that failed
since `up` began (their error: `No such image`, `non-zero exit (1)`, `unhealthy container`, `no suitable node`)
and the service's logs, which a manager gathers from every node.

What `up` checks before it deploys: the engine is a swarm manager, compose.swarm.yaml is current, every node label
the file pins a stateful service with is on a node (a task whose placement no node meets waits forever), and no overlay
already deployed is encrypted where the file says plain (`docker stack deploy` keeps an existing network as it is).
`docker stack deploy --prune`: the file is the whole stack, so a service no longer in it (an instance removed) goes.
After the tasks converge, `up` checks the one path the stack exists for: from inside the edge's task container, with
the edge image's own HTTP client, a request to each instance over their overlay (`reach`). Healthy tasks do not prove
it: an encrypted overlay between two nodes, one of whose kernels lacks IPsec ESP, deploys healthy and drops every
packet between them (docs/swarm.md).
`down` is `docker stack rm`, then waits until this node's task containers and the stack's networks are gone;
Swarm never removes a stack's volumes: `--volumes` removes the ones on this node (other nodes keep theirs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen import engine as engines
from stackgen.constants import NODE_RED_PORT, ROLE_LABEL, UPSTREAM_LABEL
from stackgen.errors import StackgenError
from stackgen.operate.lifecycle import UpResult
from stackgen.operate.renewal import _exec as exec_in  # the exec-and-decode helper renewal runs its commands with
from stackgen.stackdir import SWARM_NAME, StackDir
from stackgen.upstream.contracts import edge_contract

__all__ = ["FAILURES", "REACH_SECONDS", "RESOLVE_IMAGE", "Reach", "ReachCheck", "SwarmUpResult", "Task", "down", "reach",
           "service_states", "stack_tasks", "status", "up"]

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
    task: Task | None = None  # its current task


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
        seen[name] = _Seen(state, failures, broken, service.id, task)
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
    from stackgen.operate.lifecycle import StackFailed

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
    kept, notes = overlays_kept_as_deployed(engine, project, document)
    if kept:
        raise StackgenError(
            f"{', '.join(kept)}: deployed encrypted, and compose.swarm.yaml now renders it without encryption "
            "(swarm.encrypted_overlays: false), but `docker stack deploy` keeps a network that exists as it is: "
            f"the change would not apply. Remove the stack first (volumes stay): `stackgen down {stack_dir.path}`, "
            f"then `stackgen up {stack_dir.path}`")
    start, wall_start = time.monotonic(), time.time()
    deployed = engines.docker_cli("stack", "deploy", "--prune", "--resolve-image", resolve_image, "-c", SWARM_NAME, project,
                                  cwd=stack_dir.path, check=False, timeout=timeout)
    if deployed.returncode != 0:
        raise StackFailed(f"docker stack deploy failed ({deployed.returncode}): {(deployed.stderr or deployed.stdout).strip()[-2000:]}",
                          None, "")
    notes += [line for line in (deployed.stderr or "").splitlines() if line.strip() and "--detach" not in line
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
            converged = time.monotonic() - start
            check = reach(engine, project, document, seen, _editor_roots(stack_dir), _node_name(engine), bound=REACH_SECONDS)
            if check.unreachable:
                raise StackFailed(check.failure(stack_dir.path), check.unreachable[0].instance, check.instance_logs(engine, seen))
            return SwarmUpResult(project, current, converged, "not-applicable", notes, reach=check)
        if time.monotonic() - start > timeout:
            waiting = [s for s in current.values() if not s.ready]
            name = waiting[0].name if waiting else None
            detail = "; ".join(f"{s.name}: {s.state}/{s.health or '-'} {s.detail}".rstrip() for s in waiting)
            raise StackFailed(f"not converged after {timeout:.0f}s: {detail}", name, logs(engine, seen[name].id) if name else "")
        time.sleep(poll)


# --- up: does the edge reach each instance? ----------------------------------------------------

REACH_SECONDS = 10.0  # how long the edge gets to reach every instance, once the tasks converged (a task just started on
# another node takes a moment to be known to the edge's node); a blackholed overlay never answers within it
_TRY_SECONDS = 3  # one request's timeout (the client's own option), inside the edge
# The edge image's HTTP client (its contract's tools): the command for a URL, and whether what it said is an HTTP answer.
# busybox wget exits 1 on a 4xx/5xx ("server returned error: HTTP/1.1 404 Not Found"): still the instance answering.
_CLIENTS: dict[str, tuple[Callable[[str], list[str]], Callable[[int, str], bool]]] = {
    "wget": (lambda url: ["wget", "-q", "-T", str(_TRY_SECONDS), "-O", "/dev/null", url],
             lambda code, said: code == 0 or "server returned error: HTTP/" in said),
    "curl": (lambda url: ["curl", "-sS", "-o", "/dev/null", "-m", str(_TRY_SECONDS), "-w", "%{http_code}", url],
             lambda code, said: code == 0 and said.strip()[:3].isdigit() and said.strip()[:3] != "000"),
}


@dataclass
class Reach:
    """One request from inside the edge's task container to one instance over their overlay."""

    instance: str  # its service key
    url: str
    node: str | None  # the node its task runs on
    networks: list[str]  # the overlays it shares with the edge (stack file keys)
    encrypted: list[str]  # those of them that are encrypted on the engine
    answered: bool = False
    said: str = ""  # the client's last words when nothing answered
    seconds: float = 0.0


@dataclass
class ReachCheck:
    """Whether the edge reaches every instance: made from inside its task container, which must be on this node."""

    edge: str | None = None  # the edge's service key
    edge_node: str | None = None
    this_node: str | None = None
    client: str = ""
    reaches: list[Reach] = field(default_factory=list)
    skipped: str = ""  # why the check was not made (a warning: nothing was proven)
    seconds: float = 0.0
    bound: float = REACH_SECONDS

    @property
    def unreachable(self) -> list[Reach]:
        return [r for r in self.reaches if not r.answered]

    def summary(self) -> str:
        """The happy path, in one line."""
        names = ", ".join(f"{r.instance} ({'this node' if r.node == self.edge_node else f'node {r.node}'})" for r in self.reaches)
        return f"the edge reaches every instance over its overlay: {names} answered in {self.seconds:.1f}s"

    def failure(self, directory: Path | str) -> str:
        """Which instances the edge cannot reach, where each runs, and the likely cause and fix."""
        lines = [f"the edge ({self.edge}, on node {self.edge_node}) gets no answer from "
                 f"{'instance ' if len(self.unreachable) == 1 else 'instances '}{', '.join(r.instance for r in self.unreachable)} "
                 f"within {self.bound:.0f}s, although every task runs healthy (a request over their overlay from inside the "
                 f"edge's task container, with its {self.client}; any HTTP answer would do):"]
        for r in self.unreachable:
            where = "the same node as the edge" if r.node == self.edge_node else f"node {r.node}"
            lines.append(f"  {r.instance} runs on {where}: {r.url}: {r.said or 'no answer'}")
        across = [r for r in self.unreachable if r.node != self.edge_node]
        blackholed = [r for r in across if r.encrypted]
        if blackholed:
            nets = sorted({n for r in blackholed for n in r.encrypted})
            lines += [
                f"Likely cause: {', '.join(nets)} {'is' if len(nets) == 1 else 'are'} encrypted (IPsec ESP between the nodes) and a "
                f"node's kernel has no IPsec ESP ({self.edge_node} or {', '.join(sorted({str(r.node) for r in blackholed}))}): the "
                "overlay deploys and every task runs healthy, but the engine could not add the security associations and every "
                "packet between the nodes is dropped, silently. Check on each node: `grep CONFIG_INET_ESP /boot/config-$(uname -r)` "
                "(or `zcat /proc/config.gz | grep INET_ESP`); the engine's log says `Failed Adding ... SA: function not implemented`.",
                "Fix: give every node a kernel with ESP (`modprobe esp4` where it is a module); or, only where the network between "
                "the nodes is yours alone, set `swarm: {encrypted_overlays: false}` in stack.yaml, then "
                f"`stackgen generate {directory}`, `stackgen down {directory}` (a deployed network keeps its encryption) and "
                f"`stackgen up {directory}`. That exposes everything on the stack's overlays between the nodes (the edge to each "
                "Node-RED: passwords, session tokens, flows) as plain VXLAN, readable and injectable by anyone on that path "
                "(docs/swarm.md, \"What Swarm does not give\").",
            ]
        plain = [r for r in across if not r.encrypted]
        if plain:
            lines.append(f"Across nodes ({', '.join(r.instance for r in plain)}, unencrypted overlay): the nodes must reach each "
                         "other on UDP 4789 (VXLAN) and TCP/UDP 7946 at the addresses they advertise "
                         "(`docker node inspect NODE --format '{{.Status.Addr}}'`); a firewall between them drops it silently.")
        if any(r.node == self.edge_node for r in self.unreachable):
            lines.append("On the edge's own node: the instance's task is healthy but does not answer on its port over the "
                         "overlay (its log lines follow).")
        return "\n".join(lines)

    def instance_logs(self, engine, seen: dict[str, _Seen]) -> str:
        """The log lines of an instance on the edge's node that did not answer (across nodes, its logs say nothing)."""
        same = [r for r in self.unreachable if r.node == self.edge_node and r.instance in seen]
        return logs(engine, seen[same[0].instance].id) if same else ""


def _role(service: dict[str, Any]) -> dict[str, str]:
    labels = service.get("labels") or (service.get("deploy") or {}).get("labels") or {}
    return labels if isinstance(labels, dict) else dict(item.split("=", 1) for item in labels if "=" in item)


def _service_networks(service: dict[str, Any]) -> list[str]:
    networks = service.get("networks") or []
    return list(networks) if isinstance(networks, (dict, list)) else []


def _encrypted(engine, project: str, document: dict[str, Any]) -> dict[str, bool]:
    """Each overlay of the stack file: encrypted on the engine (the deployed network's options; the file's when it is
    not deployed). The overlay driver encrypts when the option is there at all, whatever its value."""
    deployed = {engines.stack_key(n.name, project): "encrypted" in (n.attrs.get("Options") or {})
                for n in engine.networks.list(filters=engines.stack_filter(project))}
    return {key: deployed.get(key, "encrypted" in ((spec or {}).get("driver_opts") or {}))
            for key, spec in (document.get("networks") or {}).items()}


def overlays_kept_as_deployed(engine, project: str, document: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Stack overlays already deployed whose encryption is not the stack file's: `docker stack deploy` keeps a network
    that exists as it is. (Deployed encrypted, file plain: the switch would not apply, `up` refuses; deployed plain,
    file encrypted: a note, the traffic is not encrypted.)"""
    try:
        networks = engine.networks.list(filters=engines.stack_filter(project))
    except Exception:  # noqa: BLE001 - a check before deploying, not the verdict
        return [], []
    wanted = {key: "encrypted" in ((spec or {}).get("driver_opts") or {}) for key, spec in (document.get("networks") or {}).items()}
    refuse, notes = [], []
    for network in networks:
        key = engines.stack_key(network.name, project)
        if key not in wanted:
            continue
        encrypted = "encrypted" in (network.attrs.get("Options") or {})
        if encrypted and not wanted[key]:
            refuse.append(network.name)
        elif wanted[key] and not encrypted:
            notes.append(f"network {network.name} exists unencrypted and compose.swarm.yaml wants it encrypted: `docker stack "
                         "deploy` keeps it as it is, so its traffic between nodes stays unencrypted until `stackgen down` and `up`")
    return refuse, notes


def _http_client(document: dict[str, Any]) -> str | None:
    """The HTTP client the edge's image has, by its contract's tools (every edge's has busybox wget)."""
    name = (document.get("x-stackgen") or {}).get("edge")
    try:
        tools = edge_contract(name).tool_names if name else frozenset(_CLIENTS)
    except Exception:  # noqa: BLE001 - an edge without a contract: try what every Alpine/busybox image has
        tools = frozenset({"wget"})
    return next((client for client in _CLIENTS if client in tools), None)


def _editor_roots(stack_dir: StackDir) -> dict[str, str]:
    """Each instance's service: the path to ask it for (its editor's root; any answer will do)."""
    try:
        return {inst.service: inst.editor_root for inst in stack_dir.stack.node_reds}
    except Exception:  # noqa: BLE001 - without the spec, `/` is as good a question
        return {}


def _node_name(engine) -> str | None:
    node = ((engine.info() or {}).get("Swarm") or {}).get("NodeID")
    return _node_names(engine).get(node, node) if node else None


def reach(engine, project: str, document: dict[str, Any], seen: dict[str, _Seen], roots: dict[str, str],
          this_node: str | None, bound: float = REACH_SECONDS, pause: float = 0.5) -> ReachCheck:
    """From inside the edge's task container (on this node), with its image's own HTTP client, a request to each
    instance the edge forwards to (its `org.stackgen.upstream` label), over their overlay; any HTTP answer counts.
    Each instance is asked again until `bound` runs out. An edge elsewhere: `skipped` says so (nothing proven)."""
    services = document.get("services") or {}
    edges = [key for key, spec in services.items() if _role(spec or {}).get(ROLE_LABEL) == "edge"]
    check = ReachCheck(this_node=this_node, bound=bound)
    if not edges:
        return check
    check.edge = edge = edges[0]
    upstreams = [u.strip() for u in (_role(services[edge]).get(UPSTREAM_LABEL) or "").split(",") if u.strip()]
    if not upstreams:
        return check
    task = seen[edge].task if edge in seen else None
    check.edge_node = task.node if task else None
    if task is None or task.node != this_node:
        check.skipped = (f"not checked that the edge reaches each instance: its task runs on node {check.edge_node}, not on this "
                         f"one ({this_node}); the check runs inside the edge's task container. On {check.edge_node}: "
                         f"`docker exec $(docker ps -q -f label=com.docker.swarm.service.name={project}_{edge}) "
                         f"wget -q -O /dev/null http://{upstreams[0]}/`")
        return check
    try:
        container = engine.containers.get(task.container) if task.container else None
    except Exception:  # noqa: BLE001 - replaced meanwhile
        container = None
    client = _http_client(document)
    if container is None or client is None:
        check.skipped = ("not checked that the edge reaches each instance: "
                         + ("its task container is gone" if container is None else "its image has neither wget nor curl"))
        return check
    check.client = client
    encrypted = _encrypted(engine, project, document)
    edge_networks = set(_service_networks(services[edge]))
    for upstream in upstreams:
        host, _, port = upstream.rpartition(":")
        instance = host or upstream
        shared = [n for n in _service_networks(services.get(instance) or {}) if n in edge_networks]
        url = f"http://{instance}:{port or NODE_RED_PORT}{roots.get(instance, '/')}"
        node = seen[instance].state.node if instance in seen else None
        check.reaches.append(Reach(instance, url, node, shared, [n for n in shared if encrypted.get(n)]))
    command, answered = _CLIENTS[client]
    began = time.monotonic()
    deadline = began + bound

    def ask(target: Reach) -> None:
        while True:
            try:
                code, out, err = exec_in(container, command(target.url))
            except Exception as exc:  # noqa: BLE001 - an exec that fails is no answer
                code, out, err = -1, "", f"exec failed: {exc}"
            said = (out + err).strip()
            if answered(code, said):
                target.answered, target.seconds = True, time.monotonic() - began
                return
            target.said = said.splitlines()[-1] if said else f"exit {code}"
            if time.monotonic() + pause >= deadline:
                target.seconds = time.monotonic() - began
                return
            time.sleep(pause)

    with ThreadPoolExecutor(max_workers=min(8, len(check.reaches))) as pool:
        list(pool.map(ask, check.reaches))
    check.seconds = time.monotonic() - began
    return check


@dataclass
class SwarmUpResult(UpResult):
    """`up` on a swarm: what `UpResult` says, and whether the edge reaches every instance."""

    reach: ReachCheck | None = None


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
