"""What the supervisor watches: a stack directory (stack.yaml), or a plain compose project (compose.yaml).

Why its own module: `stackgen status` needs the same answer (which project, which compose
document) without loading the supervisor, and the compose document is read once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Target:
    """The directory, its compose project and document, and the `Stack` when the directory holds stack.yaml."""

    directory: Path
    project: str
    document: dict[str, Any] | None
    stack: Any = None  # stackgen.spec.Stack when DIR holds stack.yaml

    @property
    def is_stack(self) -> bool:
        return self.stack is not None


def load_target(directory: Path, project: str | None = None) -> Target:
    """`DIR/stack.yaml` (a stackgen stack: everything is supervised) or just `DIR/compose.yaml` (healing only)."""
    from stackgen.stackdir import StackDir

    stack_dir = StackDir(directory.resolve())
    document = stack_dir.compose_document()  # first: a broken compose.yaml is named before the spec is read
    stack = stack_dir.stack_if_any()
    return Target(stack_dir.path, stack_dir.project(project), document, stack)


def refuse_swarm(directory: Path) -> None:
    """The supervisor heals containers by restarting them, which on a swarm is Swarm's own job: a second healer would
    fight the orchestrator (a restarted task container is one Swarm already replaces). Refused, saying what does work."""
    from stackgen.errors import StackgenError
    from stackgen.stackdir import StackDir

    if StackDir(directory).target == "swarm":
        raise StackgenError(
            f"{directory}: the stack's target is swarm: `stackgen supervise` watches compose projects only. Swarm restarts "
            "and replaces tasks itself (restart_policy, healthchecks); watch it with `stackgen status` (services, tasks, "
            "nodes) and `stackgen verify --live` on a schedule, renew with `stackgen renew`, back up with `stackgen backup`")


def dependents_from_compose(document: dict[str, Any] | None) -> dict[str, list[str]]:
    """{dependency: [services restarted with it]} from compose's `depends_on: {X: {restart: true}}`."""
    found: dict[str, list[str]] = {}
    for name, service in ((document or {}).get("services") or {}).items():
        depends = (service or {}).get("depends_on") or {}
        if isinstance(depends, dict):
            for dependency, options in depends.items():
                if isinstance(options, dict) and options.get("restart") is True:
                    found.setdefault(dependency, []).append(name)
    return found
