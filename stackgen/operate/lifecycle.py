"""`stackgen up` and `down`: run the stack through Compose, wait for health, explain failures.

Why not just `docker compose up --wait`: a user whose stack does not come up
needs to see which service waits for what, and the failing service's last log
lines, not a bare exit code. And `up` applies the host firewall rule that
closes the internal network's host-gateway hole (see firewall.py).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen import engine as engines
from stackgen.errors import StackgenError
from stackgen.generate import files
from stackgen.generate.render import Context
from stackgen.operate import firewall
from stackgen.spec import Stack
from stackgen.stackdir import StackDir


@dataclass
class ServiceState:
    """What one service is doing, in words a user can act on."""

    name: str
    state: str = "absent"  # absent | created | running | restarting | exited | dead
    health: str | None = None  # starting | healthy | unhealthy | None (no healthcheck)
    detail: str = ""
    exit_code: int | None = None
    started_at: float | None = None  # epoch seconds of the container's last start
    node: str | None = None  # a swarm task's node (its host name)

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in ("healthy", None)

    @property
    def failed(self) -> bool:
        """Exited, crash-looping (restarting) or unhealthy: during `up`, each means it will not come up by itself."""
        return self.state in ("exited", "dead", "restarting") or self.health == "unhealthy"


@dataclass
class UpResult:
    project: str
    states: dict[str, ServiceState]
    seconds: float
    firewall: str  # applied | unavailable | already | not-applicable (a swarm: no bridge to close)
    notes: list[str] = field(default_factory=list)


class StackFailed(StackgenError):
    """A service failed to become healthy; carries its last log lines."""

    def __init__(self, message: str, service: str | None, logs: str) -> None:
        super().__init__(message)
        self.service = service
        self.logs = logs


def ensure_current(directory: Path) -> None:
    """Refuse to run files that stack.yaml no longer describes (or that are missing); compose.swarm.yaml too on a swarm."""
    stack_dir = StackDir(directory)
    stack = stack_dir.stack
    from stackgen.generate.render import render

    rendered = render(stack)
    if stack_dir.target == "swarm":
        from stackgen.generate.workflow import with_swarm_file

        rendered, _ = with_swarm_file(stack, directory, rendered)
    plan = files.plan(directory, rendered)
    stale = [f.path for f in plan.files if f.action in (files.Action.CREATE, files.Action.UPDATE)]
    if stale:
        raise StackgenError(f"{directory}: {', '.join(stale)} not up to date with stack.yaml: run `stackgen generate {directory}` first")


def states(engine, project: str, document: dict[str, Any]) -> dict[str, ServiceState]:
    found = {name: ServiceState(name) for name in document["services"]}
    for container in engines.project_containers(engine, project):
        name = engines.service_of(container)
        if name not in found:
            continue
        attrs = container.attrs.get("State", {})
        state = ServiceState(name, attrs.get("Status", "absent"), started_at=engines.parse_time(attrs.get("StartedAt")))
        health = attrs.get("Health")
        if health:
            state.health = health.get("Status")
            log = health.get("Log") or []
            if log and state.health != "healthy":
                output = (log[-1].get("Output") or "").strip().splitlines()
                state.detail = output[-1] if output else f"health check exit code {log[-1].get('ExitCode')}"
        if state.state in ("exited", "dead", "restarting"):
            state.exit_code = attrs.get("ExitCode")
        found[name] = state
    for name, state in found.items():
        if state.state == "absent":
            deps = list(document["services"][name].get("depends_on") or {})
            waiting = [d for d in deps if not found.get(d, ServiceState(d)).ready]
            state.detail = f"waiting for {', '.join(waiting)} to be healthy" if waiting else "being created"
        elif state.state == "running" and state.health == "starting":
            state.detail = state.detail or "health check starting"
    return found


def blamed_service(stderr: str, project: str, current: dict[str, ServiceState]) -> str | None:
    """The service compose's error names (`container PROJECT-SERVICE-1 is unhealthy`), else the first
    one not ready. By the time compose gives up, a restarted container may look healthy-pending again,
    so compose's own words are the better witness."""
    for match in re.finditer(rf"container {re.escape(project)}[-_](.+?)[-_]\d+\b", stderr):
        if match.group(1) in current:
            return match.group(1)
    waiting = [s for s in current.values() if not s.ready]
    return waiting[0].name if waiting else None


def exit_codes_since(engine, project: str, service: str, since: float) -> list[int]:
    """The exit code of every time the service's container died since `since` (epoch seconds), oldest first.

    Why the engine's events: a container under a restart policy is running again (exit code reset to
    0, health back to "starting") by the time compose gives up on it, so its current state no longer
    shows why it failed; the `die` events keep each exit code."""
    filters = {"type": ["container"], "event": ["die"], **engines.label_filter(project, service=service)}
    codes = []
    for event in engine.api.events(since=int(since), until=int(time.time()) + 1, filters=filters, decode=True):
        code = (event.get("Actor") or {}).get("Attributes", {}).get("exitCode")
        if code is not None and str(code).lstrip("-").isdigit():
            codes.append(int(code))
    return codes


def why_failed(engine, project: str, service: str, since: float, fallback: str) -> str:
    """`exited with code N` (and how often it was restarted) when the service died since `up` began, else `fallback`."""
    codes = exit_codes_since(engine, project, service, since)
    if not codes:
        return fallback
    if len(codes) == 1:
        return f"exited with code {codes[0]}"
    return f"keeps restarting (last exit code {codes[-1]}, {len(codes)} exits since up began)"


def logs(engine, project: str, service: str, lines: int = 30) -> str:
    container = engines.service_container(engine, project, service, all_=True)
    return container.logs(tail=lines).decode("utf-8", "replace") if container is not None else ""


def firewall_rule(directory: Path) -> firewall.FirewallRule:
    return firewall_rules(StackDir(directory).stack)[0]


def firewall_rules(stack: Stack) -> list[firewall.FirewallRule]:
    """One rule per Node-RED internal network (several instances: one bridge each)."""
    return [firewall.FirewallRule(route.bridge, stack.project) for route in Context(stack).routes]


def _apply_all(rules: list[firewall.FirewallRule]) -> bool:
    return all([firewall.apply(rule) for rule in rules])  # a list: every rule is tried


def up(
    directory: Path,
    timeout: float = 300,
    on_progress: Callable[[dict[str, ServiceState]], None] | None = None,
    poll: float = 0.5,
    resolve_image: str = "always",
) -> UpResult:
    """Start the stack and wait until every service is healthy, or explain why not. A stack whose target is swarm is
    deployed to the swarm (operate/swarm.py; `resolve_image` is `docker stack deploy --resolve-image`)."""
    ensure_current(directory)
    stack_dir = StackDir(directory)
    if stack_dir.target == "swarm":
        from stackgen.operate import swarm

        return swarm.up(directory, timeout=timeout, on_progress=on_progress, poll=poll, resolve_image=resolve_image)
    stack = stack_dir.stack
    document = stack_dir.compose_document() or {}
    engine = engines.client()
    start = time.monotonic()
    wall_start = time.time()
    command = engines.compose_command() + ["-f", str(stack_dir.compose_path), "up", "-d"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    firewall_state = "pending"
    rules = firewall_rules(stack)
    try:
        while True:
            code = process.poll()  # first: states read after it are at least as new as compose's verdict
            current = states(engine, stack.project, document)
            if on_progress:
                on_progress(current)
            if firewall_state == "pending" and any(s.state != "absent" for s in current.values()):
                firewall_state = "applied" if _apply_all(rules) else "unavailable"
            # While compose still acts, only containers started since `up` began are judged: one the user
            # stopped earlier (or one about to be recreated) still shows an old state compose will change.
            failed = [s for s in current.values() if s.failed and (code is not None or (s.started_at or 0) >= wall_start - 1)]
            if failed:
                bad = failed[0]
                why = {
                    "exited": f"exited with code {bad.exit_code}",
                    "dead": f"exited with code {bad.exit_code}",
                    "restarting": f"keeps restarting (last exit code {bad.exit_code})",
                }.get(bad.state, f"unhealthy: {bad.detail}")
                raise StackFailed(f"{bad.name} {why}", bad.name, logs(engine, stack.project, bad.name))
            if code not in (None, 0):
                stderr = process.stderr.read() if process.stderr else ""
                name = blamed_service(stderr, stack.project, current)
                said = f"docker compose up failed: {stderr.strip()[-1500:]}"
                if name:
                    state = current[name]
                    fallback = f"unhealthy: {state.detail}" if state.health == "unhealthy" and state.detail else "did not start"
                    said = f"{name} {why_failed(engine, stack.project, name, wall_start - 1, fallback)}\n{said}"
                raise StackFailed(said, name, logs(engine, stack.project, name) if name else "")
            if code == 0 and all(s.ready for s in current.values()):
                if firewall_state == "pending":
                    firewall_state = "applied" if _apply_all(rules) else "unavailable"
                return UpResult(stack.project, current, time.monotonic() - start, firewall_state)
            if time.monotonic() - start > timeout:
                waiting = [s for s in current.values() if not s.ready]
                name = waiting[0].name if waiting else None
                detail = "; ".join(f"{s.name}: {s.state}/{s.health or '-'} {s.detail}" for s in waiting)
                raise StackFailed(f"not healthy after {timeout:.0f}s: {detail}", name, logs(engine, stack.project, name) if name else "")
            time.sleep(poll)
    finally:
        if process.poll() is None and time.monotonic() - start > timeout:
            process.terminate()


def down(directory: Path, volumes: bool = False):
    """Stop and remove the stack's containers and networks; volumes (the user's data) only when asked. A swarm stack:
    `docker stack rm` (operate/swarm.py), whose result says which volumes were kept or removed on this node."""
    stack_dir = StackDir(directory)
    if stack_dir.target == "swarm":
        from stackgen.operate import swarm

        return swarm.down(directory, volumes=volumes)
    stack = stack_dir.stack
    args = ["down", "--timeout", "10"] + (["--volumes"] if volumes else [])
    engines.compose(directory, *args)
    for rule in firewall_rules(stack):
        firewall.remove(rule)
