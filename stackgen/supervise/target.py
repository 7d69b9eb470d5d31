"""What the supervisor watches: a stack directory (stack.yaml; on compose or on a swarm), or a plain compose project.

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
    swarm: bool = False  # deployed to Docker Swarm (StackDir.target): Swarm heals its tasks, the supervisor watches

    @property
    def is_stack(self) -> bool:
        return self.stack is not None


def load_target(directory: Path, project: str | None = None) -> Target:
    """`DIR/stack.yaml` (a stackgen stack: everything is supervised) or just `DIR/compose.yaml` (healing only)."""
    from stackgen.stackdir import StackDir

    stack_dir = StackDir(directory.resolve())
    document = stack_dir.compose_document()  # first: a broken compose.yaml is named before the spec is read
    stack = stack_dir.stack_if_any()
    return Target(stack_dir.path, stack_dir.project(project), document, stack, stack_dir.target == "swarm")


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
