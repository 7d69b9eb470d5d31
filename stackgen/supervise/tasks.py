"""The watching rules for a swarm stack, pure: task lists, task-container events and a clock in; decisions out.

Why a second policy and not HealPolicy with restarts switched off: on a swarm the healer is Swarm. It restarts a task
whose process exits and replaces one whose healthcheck fails (the old task ends `failed`, a new task takes its slot),
on any node the placement allows. A supervisor restarting a task container would fight it: the restart races Swarm's
own replacement, and a container Swarm has already given up is not the service any more. So on a swarm the
supervisor only *watches* what Swarm does and says when Swarm's healing is not enough:

* each failed or rejected task is recorded once (`task_replaced` in the log: the task, its error, whether Swarm
  replaced it for being unhealthy), informational, never a webhook: a replacement is Swarm doing its job;
* `crash_loop_restarts` failed tasks of one service within `crash_loop_window` -> one `crash_loop` alert (Swarm keeps
  retrying; the alert says so), resolved once its task has run (healthy) for `stable_after` with no new failure;
* a service with replicas wanted and no running task for `no_task_after` -> one `no_task` alert, resolved when a task
  runs (a replacement in progress is not an outage: it has that long);
* `health_status: unhealthy` of a task container on this node is logged (`task_unhealthy`): Swarm replaces it.

The crash-loop count accumulates task ids across resyncs (`seen`), because Swarm keeps only a few tasks per slot
(`task-history-retention-limit`, 5 by default): the count cannot be read off one task list. Never emits a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stackgen import engine as engines
from stackgen.supervise.alerts import AlertBook
from stackgen.supervise.config import Settings, format_duration
from stackgen.supervise.policy import Decision

FAILED = ("failed", "rejected")  # a task Swarm gave up and replaces (`complete` is an exit 0, `shutdown` an update)
CURRENT = ("running", "ready")  # desired states of the tasks that are the service now


@dataclass
class TaskView:
    """One task, as the policy needs it (from operate.swarm.Task)."""

    id: str
    state: str
    desired: str
    at: float | None = None  # when it reached `state`
    error: str = ""
    exit_code: int | None = None
    health: str | None = None
    node: str | None = None
    container: str | None = None

    @classmethod
    def from_task(cls, task: Any) -> TaskView:
        return cls(task.id, task.state, task.desired, task.updated or task.created, task.error or task.message or "",
                   task.exit_code, task.health, task.node, task.container)

    @property
    def unhealthy(self) -> bool:
        return "unhealthy" in self.error


@dataclass
class ServiceTasks:
    """One service of the stack file: its wanted replicas (None: not deployed) and its tasks."""

    service: str
    replicas: int | None
    tasks: list[TaskView] = field(default_factory=list)


@dataclass
class TaskEvent:
    """An engine event about the stack: a task container on this node, or a service (`container` empty)."""

    service: str
    action: str
    container: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_engine(cls, event: dict[str, Any], project: str) -> TaskEvent | None:
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        action = event.get("Action") or event.get("status") or ""
        if event.get("Type") == "container":
            service = engines.swarm_service_key(attributes, project)
            return cls(service, action, actor.get("ID", ""), attributes) if service else None
        if event.get("Type") == "service":  # service events carry the name alone, not the service's labels
            name = attributes.get("name") or ""
            return cls(engines.stack_key(name, project), action, "", attributes) if name.startswith(f"{project}_") else None
        return None


@dataclass
class SwarmRecord:
    """What the watcher knows about one service. The keys `status` reads are the compose record's (status, health,
    restarts, failed, ...): `restarts` here are Swarm's replacements (`by: swarm`), never the supervisor's."""

    status: str | None = None  # the current task's state; `none` without a task, `absent` when not deployed
    health: str | None = None
    task: str | None = None
    container: str | None = None  # the current task's container, when it runs on this node
    node: str | None = None
    running_since: float | None = None
    restarts: list[dict[str, Any]] = field(default_factory=list)  # {"at", "by": "swarm", "task", "error", "unhealthy"}
    seen: dict[str, float] = field(default_factory=dict)  # failed task id -> when it failed (counted once)
    failed: bool = False  # a crash loop is open
    failed_at: float | None = None
    no_task_since: float | None = None

    PERSISTED = ("status", "health", "task", "container", "node", "running_since", "restarts", "seen", "failed", "failed_at", "no_task_since")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PERSISTED}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwarmRecord:
        return cls(**{k: v for k, v in data.items() if k in cls.PERSISTED})


class TaskPolicy:
    """The swarm watching rules (module docstring). Same inputs as HealPolicy: observe, resync, tick."""

    def __init__(self, settings: Settings, alerts: AlertBook, records: dict[str, dict[str, Any]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.s = settings
        self.alerts = alerts
        self.clock = clock
        self.records: dict[str, SwarmRecord] = {k: SwarmRecord.from_dict(v) for k, v in (records or {}).items()}

    def record(self, service: str) -> SwarmRecord:
        return self.records.setdefault(service, SwarmRecord())

    # -- inputs --

    def observe(self, event: TaskEvent) -> list[Decision]:
        """Task-container events on this node. The task lists (resync) say what Swarm made of them."""
        out: list[Decision] = []
        if not event.container:
            return [_log(event.service, "service_event", action=event.action)]
        r = self.record(event.service)
        if event.action.startswith("health_status"):
            status = event.action.split(":", 1)[1].strip() if ":" in event.action else ""
            if r.container in (None, event.container):  # not a replaced task's container, still dying
                r.health = status or r.health
            if status == "unhealthy":
                out.append(_log(event.service, "task_unhealthy", level="warning", container=event.container[:12],
                                why="Swarm replaces an unhealthy task itself: the supervisor does not restart it"))
        return out + self.tick()

    def resync(self, services: Iterable[ServiceTasks]) -> list[Decision]:
        """The stack's task lists as a manager shows them now."""
        now = self.clock()
        out: list[Decision] = []
        for item in services:
            r = self.record(item.service)
            window_start = now - self.s.crash_loop_window
            r.seen = {task: at for task, at in r.seen.items() if at >= window_start}
            r.restarts = [x for x in r.restarts if x["at"] >= window_start]
            for task in sorted(item.tasks, key=lambda t: t.at or 0):
                at = task.at or now
                if task.state in FAILED and task.id not in r.seen and at >= window_start:
                    r.seen[task.id] = at
                    r.restarts.append({"at": at, "by": "swarm", "task": task.id[:12], "error": task.error,
                                       "unhealthy": task.unhealthy})
                    out.append(_log(item.service, "task_replaced", level="warning", task=task.id[:12], state=task.state,
                                    error=task.error, exit_code=task.exit_code, unhealthy=task.unhealthy, node=task.node,
                                    failed_tasks_in_window=len(r.restarts),
                                    why="Swarm replaces a failed task itself: the supervisor does not restart it"))
            out += self._current(item, r, now)
            out += self._check_loop(item.service, r)
        return out + self.tick()

    def tick(self) -> list[Decision]:
        """Outages that lasted `no_task_after`, crash loops that became stable."""
        now = self.clock()
        out: list[Decision] = []
        for service, r in self.records.items():
            if r.no_task_since is not None and now - r.no_task_since >= self.s.no_task_after:
                alert = self.alerts.open(
                    f"no_task:{service}", "no_task", "critical",
                    f"{service}: no running task for {now - r.no_task_since:.0f}s (current task: {r.status or 'none'}); "
                    "Swarm has not brought it back", service, {"since": r.no_task_since, "state": r.status})
                if alert:
                    out += [_log(service, "no_task", level="error", seconds=round(now - r.no_task_since)), Decision("alert", service, alert=alert)]
            if r.failed and self._stable(r, now):
                r.failed, r.failed_at = False, None
                r.restarts = []
                why = f"its task has run for {format_duration(self.s.stable_after)} with no failure"
                out.append(_log(service, "crash_loop_cleared", why=why))
                resolved = self.alerts.resolve(f"crash_loop:{service}", f"{service}: no longer crash-looping ({why})")
                if resolved:
                    out.append(Decision("alert", service, alert=resolved))
        return out

    def next_deadline(self) -> float | None:
        now = self.clock()
        times = []
        for service, r in self.records.items():
            if r.no_task_since is not None and not self.alerts.is_open(f"no_task:{service}"):
                times.append(r.no_task_since + self.s.no_task_after)
            if r.failed and r.running_since is not None and r.running_since + self.s.stable_after > now:
                times.append(r.running_since + self.s.stable_after)
        return min(times) if times else None

    def dump(self) -> dict[str, dict[str, Any]]:
        return {key: r.to_dict() for key, r in sorted(self.records.items())}

    # -- rules --

    def _current(self, item: ServiceTasks, r: SwarmRecord, now: float) -> list[Decision]:
        """The service's current task: running (since when), or none -> the no-task clock runs."""
        out: list[Decision] = []
        current = [t for t in item.tasks if t.desired in CURRENT]
        running = sorted((t for t in current if t.state == "running"), key=lambda t: t.at or 0, reverse=True)
        newest = max(current, key=lambda t: t.at or 0, default=None)
        task = running[0] if running else newest
        if task is not None and task.id != r.task:
            r.running_since = None
        r.task, r.node, r.container = (task.id, task.node, task.container) if task else (None, None, None)
        r.status = "absent" if item.replicas is None else (task.state if task else "none")
        r.health = task.health if task else None
        if running or item.replicas == 0:
            r.running_since = r.running_since or (running[0].at if running else None) or now
            if r.no_task_since is not None:
                r.no_task_since = None
                resolved = self.alerts.resolve(f"no_task:{item.service}", f"{item.service}: a task runs again")
                if resolved:
                    out.append(Decision("alert", item.service, alert=resolved))
        else:
            r.running_since = None
            r.no_task_since = r.no_task_since or now
        return out

    def _check_loop(self, service: str, r: SwarmRecord) -> list[Decision]:
        if r.failed or len(r.restarts) < self.s.crash_loop_restarts:
            return []
        r.failed, r.failed_at = True, self.clock()
        window = format_duration(self.s.crash_loop_window)
        last = r.restarts[-1]
        summary = (f"{service}: crash loop, {len(r.restarts)} failed tasks within {window} (last: {last['error'] or 'no error given'}); "
                   "Swarm keeps replacing them (its restart policy), the supervisor does not intervene")
        alert = self.alerts.open(f"crash_loop:{service}", "crash_loop", "critical", summary, service,
                                 {"failed_tasks": len(r.restarts), "window_seconds": self.s.crash_loop_window, "by": {"swarm": len(r.restarts)},
                                  "tasks": [x["task"] for x in r.restarts], "last_error": last["error"]})
        out = [_log(service, "crash_loop", level="error", failed_tasks=len(r.restarts))]
        if alert:
            out.append(Decision("alert", service, alert=alert))
        return out

    def _stable(self, r: SwarmRecord, now: float) -> bool:
        if r.status != "running" or r.running_since is None or r.health not in (None, "healthy"):
            return False
        last_failure = max((x["at"] for x in r.restarts), default=0.0)
        return now - r.running_since >= self.s.stable_after and r.running_since >= last_failure


def _log(key: str, event: str, level: str = "info", **fields: Any) -> Decision:
    return Decision("log", key, level=level, event=event, fields={k: v for k, v in fields.items() if v is not None})
