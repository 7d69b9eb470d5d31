"""A stack directory: what one holds (`StackDir`), and its spec read and written (`stack.yaml`).

Why its own module, in the vocabulary: `up`, `backup`, `renew`, `verify --live`, `images` and the
supervisor all ask "what is in this directory" (its spec, its compose document, its project, where
the supervisor keeps state): `StackDir` answers once, the same way for all. The spec is read with
positions (errors name the file and line) and bounded against hostile input. Writing the directory
from its spec (`init`, `generate`) is `stackgen.generate.workflow`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from stackgen.errors import StackgenError, format_spec_error
from stackgen.spec import Stack

SPEC_NAME = "stack.yaml"
COMPOSE_NAME = "compose.yaml"  # what `generate` writes, and what `up`, `verify --live` and `supervise` read
SWARM_NAME = "compose.swarm.yaml"  # what `generate --target swarm` also writes: the stack file `up` deploys to a swarm
STATE_DIR = ".stackgen-supervisor"  # the supervisor's state, log and lock (mode 0700)
SPEC_HEADER = (
    "# stackgen stack: the source of truth for every file in this directory.\n"
    "# Edit it, then run `stackgen generate .`. Format: `stackgen schema` (JSON Schema).\n"
)


class StackDir:
    """One stack directory: a stackgen stack (`stack.yaml` and what it renders) or a plain compose
    project (`compose.yaml` alone, which the supervisor and `verify --live` also accept).

    The spec and the compose document are each read once, on first use, and kept.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stack: Stack | None = None
        self._document: dict[str, Any] | None = None
        self._document_read = False

    def __repr__(self) -> str:
        return f"StackDir({str(self.path)!r})"

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_NAME

    @property
    def compose_path(self) -> Path:
        return self.path / COMPOSE_NAME

    @property
    def swarm_path(self) -> Path:
        return self.path / SWARM_NAME

    @property
    def target(self) -> str:
        """`swarm` when the stack lives on Docker Swarm (stack.yaml says `target: swarm`, or the last `generate` wrote
        compose.swarm.yaml: it removes one no longer asked for), else `compose`."""
        if self.swarm_path.is_file():
            return "swarm"
        return "swarm" if self.has_spec and self.stack.target == "swarm" else "compose"

    @property
    def deployed_path(self) -> Path:
        """The file the running stack was made from: compose.swarm.yaml on a swarm, compose.yaml otherwise."""
        return self.swarm_path if self.target == "swarm" else self.compose_path

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    @property
    def has_spec(self) -> bool:
        return self.spec_path.is_file()

    @property
    def has_compose(self) -> bool:
        return self.compose_path.is_file()

    @property
    def stack(self) -> Stack:
        """The validated spec; `StackgenError` naming the file and line when it is missing or wrong."""
        if self._stack is None:
            self._stack = load_stack(self.path)
        return self._stack

    def stack_if_any(self) -> Stack | None:
        """The spec when the directory holds `stack.yaml`; None for a plain compose project."""
        return self.stack if self.has_spec else None

    def compose_document(self) -> dict[str, Any] | None:
        """`compose.yaml` as plain data (None when absent or empty); invalid YAML is a `StackgenError`."""
        if not self._document_read:
            if self.has_compose:
                from ruamel.yaml import YAML

                try:
                    self._document = YAML(typ="safe").load(self.compose_path.read_text())
                except Exception as exc:  # noqa: BLE001 - any YAML problem
                    raise StackgenError(f"{self.compose_path}: not valid YAML ({exc.__class__.__name__})") from None
            self._document_read = True
        return self._document

    def project(self, override: str | None = None) -> str:
        """The compose project: `override` (`--project`), else the spec's, else compose.yaml's `name:`."""
        if self.has_spec:
            return override or self.stack.project
        document = self.compose_document()
        if document is None:
            raise StackgenError(f"{self.path}: neither stack.yaml nor compose.yaml found")
        name = override or (document if isinstance(document, dict) else {}).get("name")
        if not name:
            raise StackgenError(f"{self.compose_path}: no top-level `name:`; give the compose project with --project")
        return str(name)


def load_stack(directory: Path) -> Stack:
    """Read and validate `DIR/stack.yaml`; errors name the file and line."""
    from stackgen.inputfile import InputFileError, read_text

    path = directory / SPEC_NAME
    if not path.exists() and not path.is_symlink():
        raise StackgenError(f"{path}: not found (create one with `stackgen init {directory}`)")
    try:
        text = read_text(path, MAX_SPEC_BYTES)
    except InputFileError as exc:
        where = f"{path}:{exc.line}" if exc.line else str(path)
        raise StackgenError(f"{where}: {exc.message}") from None
    return parse_stack(text, path)


# Bounds for hostile or broken input: a real stack.yaml is well under 4 KiB and 100 values.
MAX_SPEC_BYTES = 256 * 1024
MAX_SPEC_VALUES = 20_000


# ruamel's scanner is quadratic in the depth of flow collections (`[[[[...`): 1000 levels took 1.5 s. A stack
# description has two; brackets are counted before parsing (quoted or not: no stack.yaml value holds any).
MAX_SPEC_FLOW_DEPTH = 64
_BRACKETS = re.compile(r"[\[\]{}\n]")


def _check_flow_depth(text: str, path: Path) -> None:
    depth, line = 0, 1
    for match in _BRACKETS.finditer(text):
        char = match.group()
        if char == "\n":
            line += 1
        elif char in "[{":
            depth += 1
            if depth > MAX_SPEC_FLOW_DEPTH:
                raise StackgenError(f"{path}:{line}: nested more than {MAX_SPEC_FLOW_DEPTH} brackets deep: "
                                    "not a stack description")
        else:
            depth = max(depth - 1, 0)


def parse_stack(text: str, path: Path) -> Stack:
    _check_flow_depth(text, path)
    try:
        document = YAML(typ="rt").load(text)
    except RecursionError:
        raise StackgenError(f"{path}: nested too deeply to be a stack description") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise StackgenError(f"{where}: not valid YAML: {exc.problem}") from None
    except ReaderError as exc:  # a control character: its offset, not a mark
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise StackgenError(f"{path}:{line}: not valid YAML: {exc.reason} (character {char})" if line
                            else f"{path}: not valid YAML: {exc.reason}") from None
    except (YAMLError, ValueError, IndexError, TypeError, AttributeError, KeyError) as exc:
        # ruamel's scanner and constructor raise these on some invalid input (`"\U0011ffff"`, `!!int x`,
        # `0x_`): the file is at fault, so the user gets what the parser said, never a traceback.
        raise StackgenError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise StackgenError(f"{path}:1: expected a mapping of stack settings")
    budget = [MAX_SPEC_VALUES]
    try:
        plain = _plain(document, budget)
    except _TooLarge:
        raise StackgenError(f"{path}: expands to more than {MAX_SPEC_VALUES} values (YAML aliases?); "
                            "a stack description has a few dozen") from None
    except RecursionError:
        raise StackgenError(f"{path}: nested too deeply to be a stack description") from None
    try:
        return Stack.model_validate(plain)
    except ValidationError as exc:
        raise StackgenError(format_spec_error(exc, path, document)) from None


class _TooLarge(Exception):
    pass


def _plain(node: Any, budget: list[int]) -> Any:
    """ruamel's round-trip types -> plain Python, so pydantic sees ordinary values.

    `budget`: values left to produce. YAML aliases share nodes, and expanding them here is what a
    1 KB "billion laughs" file turns into billions of values: counting stops it at once."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, dict):
        return {str(k): _plain(v, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, budget) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def dump_stack(stack: Stack) -> bytes:
    """`stack.yaml` text: every setting spelled out, so users see the knobs they have."""
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    buffer.write(SPEC_HEADER)
    data = stack.model_dump(mode="json", exclude_none=True)
    # Each instance starts with what a reader looks for: its name and host names (the model lists them last).
    data["instances"] = [{"name": e.pop("name"), "domains": e.pop("domains"), **e} for e in data.get("instances", [])] or None
    yaml.dump({key: value for key, value in data.items() if value is not None}, buffer)
    return buffer.getvalue().encode()
