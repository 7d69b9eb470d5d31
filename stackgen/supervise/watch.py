"""What the supervisor watches, and who heals: chosen once, by where the stack runs.

Why one object per target: the supervisor's main loop, its jobs (renewal, certificate check, drift, backup), alerts,
state file and `status` are the same for a compose project and a swarm stack; what differs is what the engine is
asked and who repairs a broken service.

* `ContainerWatch` (compose): the project's container events drive `HealPolicy`, which restarts unhealthy containers
  (policy.py); a resync reads the containers.
* `SwarmWatch` (swarm): Swarm restarts and replaces tasks itself, so the supervisor must not (a second healer fights
  the orchestrator). Events of the stack's task containers on this node (the stack namespace label) and of its
  services, plus the task lists a manager keeps (read every `swarm_poll` by events.TaskPoller and after each event),
  drive `TaskPolicy` (tasks.py), which records and alerts and never decides a restart.

Each has: `heals` (may the main loop restart containers), `filters()` (one event stream each: the first one
reports the connection), `parse(event)`, `snapshot(client)` (what a resync starts from), `summary(snapshot)` (the
`resynced` log line), `poll` (seconds between snapshots; None: events are the whole story) and `policy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from stackgen import engine as engines
from stackgen.constants import PROJECT_LABEL, STACK_NAMESPACE_LABEL
from stackgen.errors import StackgenError
from stackgen.supervise.alerts import AlertBook
from stackgen.supervise.config import Settings
from stackgen.supervise.events import WATCHED_ACTIONS, observe
from stackgen.supervise.policy import ContainerEvent, HealPolicy, Observed
from stackgen.supervise.target import Target, dependents_from_compose
from stackgen.supervise.tasks import CURRENT, ServiceTasks, TaskEvent, TaskPolicy, TaskView

SERVICE_ACTIONS = ["create", "update", "remove"]


class ContainerWatch:
    """A compose project: container events and the containers' state; the supervisor heals (HealPolicy)."""

    heals = True
    unit = "containers"
    poll: float | None = None

    def __init__(self, target: Target, settings: Settings, book: AlertBook, records: dict[str, Any], clock: Callable[[], float]) -> None:
        self.project = target.project
        self.policy = HealPolicy(settings, book, dependents_from_compose(target.document), records, clock)

    def filters(self) -> list[dict[str, Any]]:
        return [{"type": "container", "label": [f"{PROJECT_LABEL}={self.project}"], "event": WATCHED_ACTIONS}]

    @staticmethod
    def parse(event: dict[str, Any]) -> ContainerEvent | None:
        return ContainerEvent.from_engine(event)

    def snapshot(self, client: Any) -> list[Observed]:
        return observe(client, self.project)

    @staticmethod
    def summary(snapshot: list[Observed]) -> dict[str, str]:
        return {o.key: f"{o.status}/{o.health or '-'}" for o in snapshot}


class SwarmWatch:
    """A swarm stack: task-container and service events, and the task lists; Swarm heals, the supervisor watches."""

    heals = False
    unit = "services"

    def __init__(self, target: Target, settings: Settings, book: AlertBook, records: dict[str, Any], clock: Callable[[], float]) -> None:
        self.project = target.project
        self.names = list(((target.document or {}).get("services") or {}).keys())
        self.poll: float | None = settings.swarm_poll
        self.policy = TaskPolicy(settings, book, records, clock)

    def filters(self) -> list[dict[str, Any]]:
        # Service events carry the service's name alone (not its labels): a label filter would drop every one of them,
        # so they come on a stream of their own and `parse` keeps the stack's by name.
        return [{"type": "container", "label": [f"{STACK_NAMESPACE_LABEL}={self.project}"], "event": WATCHED_ACTIONS},
                {"type": "service", "event": SERVICE_ACTIONS}]

    def parse(self, event: dict[str, Any]) -> TaskEvent | None:
        return TaskEvent.from_engine(event, self.project)

    def snapshot(self, client: Any) -> list[ServiceTasks]:
        """Every service of the stack file (a missing one: not deployed) and any other of the stack, with its tasks."""
        from stackgen.operate import swarm

        if engines.swarm_role(client) != "manager":
            raise StackgenError(f"the engine at {engines.engine_url()} is not a swarm manager: only a manager lists the stack's "
                                "tasks; run the supervisor on a manager (or point DOCKER_HOST at one)")
        found = swarm.stack_tasks(client, self.project)
        names = self.names + sorted(set(found) - set(self.names))
        return [ServiceTasks(name, found[name][0], [TaskView.from_task(t) for t in found[name][1]]) if name in found
                else ServiceTasks(name, None) for name in names]

    @staticmethod
    def summary(snapshot: list[ServiceTasks]) -> dict[str, str]:
        out = {}
        for item in snapshot:
            current = sorted((t for t in item.tasks if t.desired in CURRENT), key=lambda t: (t.state == "running", t.at or 0))
            task = current[-1] if current else None
            out[item.service] = "absent" if item.replicas is None else f"{task.state}/{task.health or '-'}" if task else "none"
        return out


Watch = ContainerWatch | SwarmWatch


def watch_for(target: Target, settings: Settings, book: AlertBook, records: dict[str, Any],
              clock: Callable[[], float] = time.time) -> Watch:
    """The watch for where the stack runs (`StackDir.target`)."""
    kind = SwarmWatch if target.swarm else ContainerWatch
    return kind(target, settings, book, records, clock)
