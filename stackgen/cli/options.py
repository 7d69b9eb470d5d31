"""A command's options, declared once: one table builds both the typer command and the fast argparse parser.

Why two parsers at all: `stackgen verify` runs in CI and pre-commit hooks, where start-up is most of
its time, and typer (with rich and its own type machinery) costs more than the whole verification
of a small file. So `verify` and `rules` are parsed by argparse when nobody asks for help, and by
typer (rich help, shell-friendly errors) otherwise. Both parsers come from the same `Opt` rows, so
an option, its flags, default and help cannot differ between them. Values are checked by the
command itself (`--format`, `--fail-on`), so both paths give the same messages and exit codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Opt", "argparse_parser", "typer_command"]


@dataclass(frozen=True)
class Opt:
    """One option (or, with no `flags`, the positional argument) of a command."""

    name: str  # the keyword the command's function receives
    flags: tuple[str, ...]  # ("--file", "-f"); () for the positional argument
    help: str
    kind: type = str  # str, Path, int or bool (a flag)
    default: Any = None
    many: bool = False  # repeatable option / any number of positional arguments
    choices: tuple[str, ...] = ()  # shown and checked by typer; the command checks them on the fast path too
    fast: bool = True  # the fast parser takes it (else the command goes to typer)


def argparse_parser(prog: str, commands: dict[str, Sequence[Opt]]) -> Any:
    """An argparse parser with one sub-command per table; usage errors raise `ValueError`."""
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise ValueError(message)

    parser = _Parser(prog=prog, add_help=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command, options in commands.items():
        p = sub.add_parser(command, add_help=False)
        for opt in options:
            if not opt.fast:
                continue
            if not opt.flags:
                p.add_argument(opt.name, nargs="*" if opt.many else "?", type=_convert(opt.kind), default=opt.default)
            elif opt.kind is bool:
                p.add_argument(*opt.flags, dest=opt.name, action="store_true", default=bool(opt.default))
            elif opt.many:
                p.add_argument(*opt.flags, dest=opt.name, action="append", type=_convert(opt.kind), default=[])
            else:
                p.add_argument(*opt.flags, dest=opt.name, type=_convert(opt.kind), default=opt.default)
    return parser


def _convert(kind: type) -> Callable[[str], Any]:
    return Path if kind is Path else kind


def typer_command(function: Callable[..., Any], options: Sequence[Opt]) -> Callable[..., Any]:
    """A typer command that calls `function(**values)`, its signature made from `options`.

    Options with `choices` become enums (typer lists and checks them); their values reach
    `function` as plain strings, as on the fast path.
    """
    import inspect
    from enum import Enum
    from typing import Annotated

    import typer

    parameters, annotations, enums = [], {}, set()
    for opt in options:
        kind: Any = opt.kind
        default = opt.default
        if opt.choices:
            kind = Enum(_camel(opt.name), {c: c for c in opt.choices}, type=str)
            default = kind(default) if default is not None else None
            enums.add(opt.name)
        if opt.many:
            kind, default = list[kind] | None, None
        elif default is None:
            kind = kind | None
        if opt.flags:
            info = typer.Option(*opt.flags, help=opt.help)
        else:
            info = typer.Argument(help=opt.help, show_default=False)
        annotation = Annotated[kind, info]
        annotations[opt.name] = annotation
        parameters.append(inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))

    def command(**values: Any) -> None:
        for name in enums:
            if values.get(name) is not None:
                values[name] = values[name].value
        for opt in options:
            if opt.many and values.get(opt.name) is None:
                values[opt.name] = []
        raise typer.Exit(function(**values))

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    command.__doc__ = function.__doc__
    command.__name__ = function.__name__
    return command


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
