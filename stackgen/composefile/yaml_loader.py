"""Reading compose YAML into plain dicts and lists that remember where each key was.

Why its own module: every finding must point at the line to fix, and that line
comes from here. The values are ordinary `dict`/`list` subclasses (`PMap`,
`PList`) carrying positions, so the rest of the loader (interpolation, merge,
`extends`) can treat them as plain data while positions ride along.

Why not ruamel's round-trip loader: it is pure Python here and parses a
200-service file in ~0.4 s, which alone would blow the speed budget of
`stackgen verify`. We compose *nodes* (positions included) with libyaml through
PyYAML when it is installed, else through ruamel.yaml, and build values
ourselves with YAML 1.2 scalar rules, as Compose (go-yaml v3) does: `yes`,
`on` and `22:22` stay strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackgen.topology import Source as Pos

__all__ = ["ComposeError", "Pos", "PMap", "PList", "parse_yaml", "pos_of"]


@dataclass
class ComposeError(Exception):
    """A compose file that cannot be loaded; the CLI prints it and exits 2."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line:
                where += f":{self.line}"
                if self.col:
                    where += f":{self.col}"
            where += ": "
        return f"{where}{self.message}"

    @classmethod
    def at(cls, pos: Pos | None, message: str) -> ComposeError:
        if pos is None:
            return cls(message)
        return cls(message, pos.file, pos.line, pos.col)


class PMap(dict):
    """A mapping that knows where it and each of its keys were written."""

    __slots__ = ("pos", "kpos", "tags")

    def __init__(self, *args: Any, pos: Pos | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pos = pos
        self.kpos: dict[str, Pos] = {}
        self.tags: dict[str, str] = {}  # key -> "reset" | "override"


class PList(list):
    """A sequence that knows where it and each of its items were written."""

    __slots__ = ("pos", "ipos", "tag")

    def __init__(self, *args: Any, pos: Pos | None = None) -> None:
        super().__init__(*args)
        self.pos = pos
        self.ipos: list[Pos | None] = []
        self.tag: str | None = None


def pos_of(container: Any, key: Any = None) -> Pos | None:
    """Position of `container[key]` (or of the container itself), when known."""
    if key is None:
        return getattr(container, "pos", None)
    if isinstance(container, PMap):
        return container.kpos.get(key, container.pos)
    if isinstance(container, PList) and isinstance(key, int):
        if 0 <= key < len(container.ipos):
            return container.ipos[key] or container.pos
        return container.pos
    return None


# --- YAML 1.2 core schema scalars (what go-yaml v3 does for untyped values) ---
# Written without regular expressions: compiling them costs more than the whole
# parse of a small file, and `stackgen verify` is mostly start-up time.

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_MAYBE_TYPED = frozenset("0123456789+-.~nNtTfF")
_FLOAT_CHARS = frozenset("0123456789.eE+-")
_OCTAL = frozenset("01234567")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def resolve_plain(text: str) -> Any:
    """Value of a plain (unquoted) scalar under YAML 1.2's core schema."""
    if text and text[0] not in _MAYBE_TYPED:
        return text  # the common case: a word, a path, an image name
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    body = text.replace("_", "") if "_" in text else text
    sign = -1 if body[:1] == "-" else 1
    digits = body[1:] if body[:1] in "+-" else body
    if not digits:
        return text
    if digits.isdigit() and digits.isascii():
        if len(digits) > 1 and digits[0] == "0":  # go-yaml parses with base 0: 0755 is octal
            return sign * int(digits, 8) if set(digits) <= _OCTAL else text
        return sign * int(digits)
    if digits[:2] == "0o" and len(digits) > 2 and set(digits[2:]) <= _OCTAL and body[:1] not in "+-":
        return int(digits[2:], 8)
    if digits[:2] == "0x" and len(digits) > 2 and set(digits[2:]) <= _HEXDIGITS:
        return sign * int(digits[2:], 16)
    if digits in (".inf", ".Inf", ".INF"):
        return sign * float("inf")
    if text in (".nan", ".NaN", ".NAN"):
        return float("nan")
    if set(body) <= _FLOAT_CHARS and any(c.isdigit() for c in body):
        try:
            return float(body)
        except ValueError:
            return text
    return text


_STD = "tag:yaml.org,2002:"
_IMPLICIT = {_STD + t for t in ("null", "bool", "int", "float", "timestamp", "str", "merge")}


def _tag(node: Any) -> str:
    tag = node.tag
    return tag if isinstance(tag, str) or tag is None else str(getattr(tag, "value", tag))


_new_pos = tuple.__new__


# Far above any real compose file (hundreds of services are thousands of values).
MAX_EXPANDED_VALUES = 1_000_000
# Far deeper than any real compose file (a service's deepest keys are 5 levels down). Every later walk
# (interpolation, merge, extends) recurses, so a deeper file is refused here, at its line, rather than
# ending in a RecursionError somewhere else (libyaml itself stops at 1000).
MAX_DEPTH = 200


class _Builder:
    """Turns a composed node tree into PMap/PList/scalars, with positions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.seen: dict[int, Any] = {}
        # Values the document stands for once aliases are expanded (what every later walk visits), and
        # that count per shared node: a 500-byte "billion laughs" file is refused here, not walked.
        self.expanded = 0
        self.size_of: dict[int, int] = {}
        self.depth = 0

    def pos(self, node: Any) -> Pos:
        mark = node.start_mark
        return _new_pos(Pos, (self.file, mark.line + 1, mark.column + 1))

    def build(self, node: Any) -> Any:
        kind = node.id
        if kind == "scalar":
            if node.tag == _PLAIN:  # the hot path: most values are untagged plain scalars
                return resolve_plain(node.value)
            return self.scalar(node)
        key = id(node)
        if key in self.seen:  # an alias: the same node object, build once
            self.expanded += self.size_of.get(key, 1)
            if self.expanded > MAX_EXPANDED_VALUES:
                mark = node.start_mark
                raise ComposeError(f"document contains excessive aliasing (more than {MAX_EXPANDED_VALUES} values once expanded)",
                                   self.file, mark.line + 1, mark.column + 1)
            return self.seen[key]
        before = self.expanded
        self.expanded += 1
        mark = node.start_mark
        where = _new_pos(Pos, (self.file, mark.line + 1, mark.column + 1))
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ComposeError(f"nested more than {MAX_DEPTH} levels deep: not a compose file a person wrote",
                               self.file, mark.line + 1, mark.column + 1)
        if kind == "sequence":
            value = PList(pos=where)
            self.seen[key] = value
            ipos = value.ipos
            for item in node.value:
                value.append(self.build(item))
                m = item.start_mark
                ipos.append(_new_pos(Pos, (self.file, m.line + 1, m.column + 1)))
            tag = _tag(node)
            if tag == "!reset":
                value.tag = "reset"
            elif tag == "!override":
                value.tag = "override"
        else:
            value = PMap(pos=where)
            self.seen[key] = value
            self.mapping(node, value)
        self.depth -= 1
        self.size_of[key] = self.expanded - before
        return value

    def scalar(self, node: Any) -> Any:
        tag = node.tag
        text = node.value
        if tag == _PLAIN:
            return resolve_plain(text)
        tag = _tag(node)
        if tag == _PLAIN:
            return resolve_plain(text)
        if tag == _STR:
            return text
        if not node.style and (tag in _IMPLICIT or tag in ("!reset", "!override", "!")):
            if tag == _STD + "str":
                return text
            return resolve_plain(text)
        if tag == _STD + "int":
            try:
                return int(text, 0)
            except ValueError:
                return text
        if tag == _STD + "float":
            try:
                return float(text)
            except ValueError:
                return text
        if tag == _STD + "bool":
            return text.lower() == "true"
        if tag == _STD + "null":
            return None
        return text

    def mapping(self, node: Any, out: PMap) -> None:
        merged: list[PMap] = []
        kpos = out.kpos
        file = self.file
        for knode, vnode in node.value:
            if knode.id != "scalar":
                raise ComposeError.at(self.pos(knode), "mapping keys must be plain strings")
            if knode.value == "<<" and (not knode.style or _tag(knode) == _STD + "merge"):
                sources = vnode.value if vnode.id == "sequence" else [vnode]
                for src in sources:
                    built = self.build(src)
                    if not isinstance(built, PMap):
                        raise ComposeError.at(self.pos(src), "a merge key (<<) needs a mapping or a list of mappings")
                    merged.append(built)
                continue
            key = knode.value if knode.tag == _PLAIN and knode.value[:1] not in _MAYBE_TYPED else None
            if key is None:
                key = _key_text(self.scalar(knode))
            mark = knode.start_mark
            if key in out:
                raise ComposeError(
                    f"duplicate key {key!r} (first defined at line {kpos[key].line})",
                    file,
                    mark.line + 1,
                    mark.column + 1,
                )
            out[key] = self.build(vnode)
            kpos[key] = _new_pos(Pos, (file, mark.line + 1, mark.column + 1))
            vtag = vnode.tag
            if vtag.__class__ is not str or vtag[:1] == "!":
                vtag = _tag(vnode)
                if vtag in ("!reset", "!override"):
                    out.tags[key] = vtag[1:]
        own = set(out) if merged else ()
        # Earlier merge sources win over later ones; the mapping's own keys win over all.
        for src in merged:
            for key, value in src.items():
                if key not in out:
                    out[key] = value
                    out.kpos[key] = src.kpos.get(key, src.pos)
                    if key in src.tags:
                        out.tags[key] = src.tags[key]
        if merged:
            order = [k for k in out if k in own]
            rest = [k for k in out if k not in own]
            items = [(k, out[k]) for k in order + rest]
            out.clear()
            out.update(items)


def _key_text(key: Any) -> str:
    if key is None:
        return "null"
    if key is True:
        return "true"
    if key is False:
        return "false"
    return str(key)


_PLAIN = "stackgen:plain"  # an untagged plain scalar: we resolve it (YAML 1.2 core schema)
_STR = _STD + "str"
_COMPOSER: Any = None


def _composer_class() -> Any:
    """libyaml's parser (PyYAML's CParser) with a resolver that leaves typing to us.

    PyYAML's own resolver is YAML 1.1 (`on` is true, `22:22` is 1342) and costs a
    Python call per scalar; ours just marks plain scalars, resolved later in `_Builder`.
    """
    global _COMPOSER
    if _COMPOSER is None:
        import yaml

        try:
            from yaml._yaml import CParser as base  # libyaml
        except ImportError:  # PyYAML without libyaml: the pure-Python pipeline, same resolve hook
            base = yaml.SafeLoader
        nodes = yaml.nodes

        class _Composer(base):  # type: ignore[misc, valid-type]
            def descend_resolver(self, *args: Any) -> None:
                pass

            def ascend_resolver(self, *args: Any) -> None:
                pass

            def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
                if kind is nodes.ScalarNode:
                    return _PLAIN if implicit[0] else _STR
                return _STD + ("seq" if kind is nodes.SequenceNode else "map")

        _COMPOSER = _Composer
    return _COMPOSER


def _compose_all(text: str) -> list[Any]:
    """Compose every document of `text` to nodes with the fastest parser available."""
    try:
        import yaml  # PyYAML, with libyaml when present
    except ImportError:  # pragma: no cover - exercised only without PyYAML
        return _compose_all_ruamel(text)
    loader = _composer_class()(text)
    try:
        nodes = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                nodes.append(node)
        return nodes
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or str(exc)
        if exc.context:
            message += f" ({exc.context})"
        raise _YamlFailure(message, mark.line + 1 if mark else None, mark.column + 1 if mark else None) from exc
    except yaml.reader.ReaderError as exc:  # a control character: an offset, not a mark
        before = text[: exc.position] if isinstance(exc.position, int) else ""
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        raise _YamlFailure(f"character {char} is not allowed in YAML ({exc.reason})", line, col) from exc
    except yaml.YAMLError as exc:
        raise _YamlFailure(str(exc), None, None) from exc
    finally:
        dispose = getattr(loader, "dispose", None)
        if dispose:
            dispose()


def _compose_all_ruamel(text: str) -> list[Any]:  # pragma: no cover - fallback path
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="safe")
    try:
        return [n for n in yaml.compose_all(text) if n is not None]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or str(exc)
        if exc.context:
            message += f" ({exc.context})"
        raise _YamlFailure(message, mark.line + 1 if mark else None, mark.column + 1 if mark else None) from exc
    except YAMLError as exc:
        raise _YamlFailure(str(exc), None, None) from exc


class _YamlFailure(Exception):
    def __init__(self, message: str, line: int | None, col: int | None) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


def parse_yaml(path: Path | str, text: str | None = None, display: str | None = None) -> list[Any]:
    """All documents of a YAML file as PMap/PList values; `ComposeError` on bad YAML.

    `display` is the file name findings will show (defaults to `path` as given).
    """
    name = display or str(path)
    if text is None:
        from stackgen.inputfile import InputFileError, read_text

        try:
            text = read_text(path)
        except InputFileError as exc:
            raise ComposeError(exc.message, name, exc.line, 1 if exc.line else None) from None
    try:
        nodes = _compose_all(text)
    except RecursionError:
        raise ComposeError(f"nested too deeply (more than {MAX_DEPTH} levels)", name) from None
    except _YamlFailure as exc:
        raise ComposeError(f"invalid YAML: {exc.message}", name, exc.line, exc.col) from None
    builder = _Builder(name)
    try:
        return [builder.build(node) for node in nodes]
    except RecursionError:  # MAX_DEPTH stops any real case first; this is the backstop
        raise ComposeError(f"nested too deeply (more than {MAX_DEPTH} levels)", name) from None
