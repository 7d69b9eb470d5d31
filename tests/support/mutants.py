"""Mutants of input files for the fuzz tests (issue 11, part 2): compose files, stack.yaml, `.env`.

A mutant is a corpus file with one to four operators applied, each named, so a crash is reported by
the class of input that caused it. Structured operators work on the parsed document (wrong types at
any path, deleted, renamed or copied keys, deep nesting); text operators work on the YAML text
(byte flips, truncation, duplicated lines, hostile snippets, broken indentation and escapes). The
generator is a `random.Random(seed)`: the same seed gives the same mutants, so CI runs the same inputs.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

HUGE = "x" * 200_000
# Values of every type, and strings that mean something to YAML, Compose, a shell or a template.
VALUES: list[Any] = [
    None, 0, 1, -1, 31, 65536, 2**70, 1.5, float("inf"), True, False, "", "x", " ", "0", "true", "null", "~", "1:2:3",
    "80:80", "0.0.0.0:80:80/udp", "/", "/var/run/docker.sock:/var/run/docker.sock", "../../etc:/etc", "a" * 300, HUGE,
    "ü∂\u202e", "\x00", "a\x00b", "\t", "\r\n", "${UNSET}", "${UNSET:?required}", "${UNSET:-${NESTED:-x}}", "${", "$", "$$",
    "${A:-", "$(id)", "`id`", "{{ .X }}", "\\", "\\q", [], [None], [1, "a", None], [[[]]], {}, {"a": 1}, {"": None},
    {"source": {"x": 1}}, {"target": None}, [{"a": None}], {"<<": 1}, {"x-stackgen": {"ignore": "all"}},
]
KEYS = ["image", "ports", "volumes", "networks", "environment", "services", "user", "privileged", "x-stackgen",
        "extends", "include", "build", "tls", "mode", "domains", "node_red", "", "0", "null", "<<", "a" * 200]
SNIPPETS = ["\t", "\x00", "\xff", "\ufeff", "{", "}", "[", "]", "&a ", "*a", "*undefined", "!!python/object:os.system ",
            "!!binary ", "<<: *a\n", "%YAML 1.1\n", "---\n", "...\n", "? ", ": ", "- ", "#", "'", '"', "|\n", ">-\n",
            "\\x", '"\\q"', "${", "$${X}", "\r", "\x85", "\u2028", "!reset ", "!override ", "&a [*a]", "@", "`"]


@dataclass
class Mutant:
    source: str
    text: str | bytes
    operators: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "+".join(self.operators) or "original"


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in list(node.items()):
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for idx, value in enumerate(node):
            yield from _paths(value, prefix + (idx,))


def _parent(doc: Any, path: tuple) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


def _get(doc: Any, path: tuple) -> Any:
    node = doc
    for part in path:
        node = node[part]
    return node


def _nested(depth: int, leaf: Any, rng: random.Random) -> Any:
    for _ in range(depth):
        leaf = [leaf] if rng.random() < 0.5 else {"k": leaf}
    return leaf


# --- structured operators: (rng, document) -> document ----------------------------------------------


def wrong_type(rng: random.Random, doc: Any) -> Any:
    paths = list(_paths(doc))
    path = rng.choice(paths)
    value = copy.deepcopy(rng.choice(VALUES))
    if not path:
        return value
    _parent(doc, path)[path[-1]] = value
    return doc


def delete_key(rng: random.Random, doc: Any) -> Any:
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return doc
    path = rng.choice(paths)
    del _parent(doc, path)[path[-1]]
    return doc


def rename_key(rng: random.Random, doc: Any) -> Any:
    paths = [p for p in _paths(doc) if p and isinstance(_parent(doc, p), dict)]
    if not paths:
        return doc
    path = rng.choice(paths)
    parent = _parent(doc, path)
    parent[rng.choice(KEYS)] = parent.pop(path[-1])
    return doc


def copy_subtree(rng: random.Random, doc: Any) -> Any:
    """A plausible value in the wrong place: a service body as a port, a network as an environment."""
    paths = [p for p in _paths(doc) if p]
    if len(paths) < 2:
        return doc
    source, target = rng.choice(paths), rng.choice(paths)
    if target[: len(source)] == source:
        return doc
    _parent(doc, target)[target[-1]] = copy.deepcopy(_get(doc, source))
    return doc


def deep_nesting(rng: random.Random, doc: Any) -> Any:
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return doc
    path = rng.choice(paths)
    _parent(doc, path)[path[-1]] = _nested(rng.choice([20, 60, 150]), rng.choice(["x", None, 1]), rng)
    return doc


STRUCTURED: dict[str, Callable[[random.Random, Any], Any]] = {
    "wrong-type": wrong_type, "delete-key": delete_key, "rename-key": rename_key, "copy-subtree": copy_subtree,
    "deep-nesting": deep_nesting,
}


# --- text operators: (rng, bytes) -> bytes ------------------------------------------------------------------


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def duplicate_line(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    idx = rng.randrange(len(lines))
    lines.insert(idx, lines[idx])
    return b"\n".join(lines)


def delete_line(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def insert_snippet(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice(SNIPPETS).encode("utf-8", "surrogatepass") + data[at:]


def shift_indent(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    idx = rng.randrange(len(lines))
    lines[idx] = (b" " * rng.choice([1, 2, 3])) + lines[idx] if rng.random() < 0.5 else lines[idx].lstrip(b" ")
    return b"\n".join(lines)


def deep_flow(rng: random.Random, data: bytes) -> bytes:
    """Nesting far beyond any file a person writes, as raw flow collections (no dumper limits it)."""
    depth = rng.choice([500, 5000, 50_000])
    opener, closer = (b"[", b"]") if rng.random() < 0.5 else (b"{a: ", b"}")
    lines = data.split(b"\n")
    idx = rng.randrange(len(lines))
    head, sep, _ = lines[idx].partition(b":")
    lines[idx] = (head + sep + b" " + opener * depth + b"x" + closer * depth) if sep else opener * depth + closer * depth
    return b"\n".join(lines)


def invalid_escape(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    idx = rng.randrange(len(lines))
    head, sep, _ = lines[idx].partition(b": ")
    lines[idx] = head + (sep or b": ") + rng.choice([b'"\\q"', b'"\\x4"', b'"\\uD800"', b'"\\U0011ffff"', b'"unterminated'])
    return b"\n".join(lines)


TEXTUAL: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "flip-bytes": flip_bytes, "truncate": truncate, "duplicate-line": duplicate_line, "delete-line": delete_line,
    "insert-snippet": insert_snippet, "shift-indent": shift_indent, "deep-flow": deep_flow, "invalid-escape": invalid_escape,
}


def dump(doc: Any) -> bytes:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=4096).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, RecursionError, ValueError):
        return b"{}"  # the dumper refuses it: an empty mapping is still a mutant


def mutate(rng: random.Random, name: str, text: str) -> Mutant:
    """One mutant of a YAML file: structured operators (60%), then text operators (50%, or all when none ran)."""
    mutant = Mutant(name, b"")
    data = text.encode()
    if rng.random() < 0.6:
        doc = yaml.safe_load(text)
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(sorted(STRUCTURED))
            doc = STRUCTURED[op](rng, doc)
            mutant.operators.append(op)
        data = dump(doc)
    if not mutant.operators or rng.random() < 0.5:
        for _ in range(rng.randint(1, 2)):
            op = rng.choice(sorted(TEXTUAL))
            data = TEXTUAL[op](rng, data)
            mutant.operators.append(op)
    mutant.text = data
    return mutant


# --- .env ----------------------------------------------------------------------------------------------------

ENV_LINES = [
    "TAG=3.20", "PORT=8080", "export PORT=9090", "PORT", "=value", "PORT=${TAG}", "PORT=${UNSET:?no}", "PORT=${", "A='unterminated",
    'A="multi\nline"', 'A="esc\\q\\n\\$"', "A=a # comment", "A=\\", "#comment", "   ", "A B=1", "A=\x00", "A=\xff\xfe",
    "\ufeffA=1", "A=" + "y" * 100_000, "A=$(id)", "A=`id`", "A: 1", "1A=2", "A.B-C=1", "A=${A}", "A=${B}\nB=${A}", "\r\n",
    "PORT=80:80", "TAG=", "TAG='3.20'", 'TAG="3.20', "export", "A=\u2028", "A=${A:-${A:-${A:-${A}}}}",
]


def mutate_env(rng: random.Random, text: str) -> Mutant:
    lines = text.split("\n")
    mutant = Mutant(".env", b"")
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["add-line", "replace-line", "text"])
        if op == "add-line":
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(ENV_LINES))
        elif op == "replace-line":
            lines[rng.randrange(len(lines))] = rng.choice(ENV_LINES)
        mutant.operators.append(op if op != "text" else "")
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if "" in mutant.operators:
        mutant.operators = [o for o in mutant.operators if o]
        op = rng.choice(["flip-bytes", "truncate", "insert-snippet", "duplicate-line"])
        data = TEXTUAL[op](rng, data)
        mutant.operators.append(op)
    mutant.text = data
    return mutant
