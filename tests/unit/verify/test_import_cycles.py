"""The vocabulary stays a set of leaves: no import cycle through findings, rules or the report.

Two ways of looking: the module-level import graph read from the source (a cycle is found
even when today's import order happens to let it work), and fresh interpreters that import
one module first (what a cycle breaks in practice: `import stackgen.verify.rules.user` alone).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import stackgen

PACKAGE = Path(stackgen.__file__).parent
LEAVES = ("stackgen.findings", "stackgen.verify.rules.base", "stackgen.constants")
GUARDED = ("stackgen.findings", "stackgen.verify.rules", "stackgen.verify.report", "stackgen.constants", "stackgen.topology",
           "stackgen.roles")


def all_modules() -> list[str]:
    names = ["stackgen"]
    for info in pkgutil.walk_packages([str(PACKAGE)], "stackgen."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # __main__ runs a command when imported
            names.append(info.name)
    return sorted(names)


def module_path(name: str) -> Path:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base / "__init__.py" if (base / "__init__.py").exists() else base.with_suffix(".py")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_imports(name: str, known: set[str]) -> set[str]:
    """The stackgen modules `name` imports when it is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(module_path(name).read_text(encoding="utf-8"))
    is_package = module_path(name).name == "__init__.py"
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not _is_type_checking(node):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in known)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = name.split(".")
                    anchor = parts if is_package else parts[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    source = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    if f"{source}.{alias.name}" in known:  # a submodule
                        found.add(f"{source}.{alias.name}")
                    elif source in known:
                        found.add(source)

    visit(tree.body)
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_every_module_imports() -> None:
    """Every stackgen module imports in one fresh interpreter (a cycle or a broken import fails here)."""
    names = all_modules()
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    run = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_no_import_cycle_through_the_vocabulary() -> None:
    names = set(all_modules())
    graph = {name: import_time_imports(name, names) for name in names}
    bad = [component for component in cycles(graph) if any(m.startswith(GUARDED) for m in component)]
    assert not bad, f"import cycles: {bad}"


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaves_import_no_subsystem(leaf: str) -> None:
    """The leaves import only the vocabulary: never verify's registry, the report, the engine or a subsystem."""
    names = set(all_modules())
    allowed = {"stackgen", "stackgen.topology", "stackgen.findings", "stackgen.constants", "stackgen.errors"}
    assert import_time_imports(leaf, names) <= allowed


RULE_MODULES = sorted(
    name for name in all_modules() if name.startswith("stackgen.verify.rules.")
)


@pytest.mark.parametrize("module", [*RULE_MODULES, "stackgen.findings", "stackgen.verify.report", "stackgen.verify.rules"])
def test_imported_first_in_a_fresh_process(module: str) -> None:
    run = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_rule_modules_take_rule_from_the_leaf() -> None:
    """yamllint's shape: rule modules import `Rule` from `base`, never from the registry they are listed in."""
    for module in RULE_MODULES:
        tree = ast.parse(module_path(module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "stackgen.verify.rules":
                assert module == "stackgen.verify.rules.docs", f"{module} imports from the registry package"


def test_the_registry_lists_every_rule_module() -> None:
    registry = importlib.import_module("stackgen.verify.rules")
    listed = {m.__name__ for m in registry.MODULES}
    holding = {name for name in RULE_MODULES if hasattr(importlib.import_module(name), "RULES")}
    assert holding == listed
