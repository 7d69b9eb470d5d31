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
    from ruamel.yaml import YAML

    from stackgen.errors import StackgenError
    from stackgen.stackdir import SPEC_NAME, load_stack

    directory = directory.resolve()
    document = None
    compose_file = directory / "compose.yaml"
    if compose_file.is_file():
        try:
            document = YAML(typ="safe").load(compose_file.read_text())
        except Exception as exc:  # noqa: BLE001 - any YAML problem
            raise StackgenError(f"{compose_file}: not valid YAML ({exc.__class__.__name__})") from None
    if (directory / SPEC_NAME).is_file():
        stack = load_stack(directory)
        return Target(directory, project or stack.project, document, stack)
    if document is None:
        raise StackgenError(f"{directory}: neither stack.yaml nor compose.yaml found")
    name = project or (document or {}).get("name")
    if not name:
        raise StackgenError(f"{compose_file}: no top-level `name:`; give the compose project with --project")
    return Target(directory, str(name), document)


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
