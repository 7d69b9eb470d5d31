"""Mutated compose files: a clear one-line error with file:line, or a report; never a traceback
(issue 11, part 2). Fixed budget and seed, so CI runs the same inputs every time."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import yaml

from stackgen.compose_yaml import ComposeError
from stackgen.errors import StackgenError
from stackgen.verify import verify

CORPUS = sorted((Path(__file__).resolve().parents[1] / "corpus").glob("*.compose.yaml"))
VALUES = [0, 31, -1, 1.5, True, None, "", "x", [], [1], ["a", 2], {}, {"a": 1}, {"source": {"x": 1}}, [{"a": None}], "${UNSET:-a}"]
BUDGET = 400


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for idx, value in enumerate(node):
            yield from _paths(value, prefix + (idx,))


def _set(node, path, value):
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def mutants(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        source = rng.choice(CORPUS)
        doc = yaml.safe_load(source.read_text())
        for _ in range(rng.randint(1, 3)):
            paths = [p for p in _paths(doc) if p]
            _set(doc, rng.choice(paths), copy.deepcopy(rng.choice(VALUES)))
        yield source.name, yaml.safe_dump(doc)


def test_mutated_corpus_files_never_crash(tmp_path):
    crashes = []
    for name, text in mutants(seed=11, count=BUDGET):
        path = tmp_path / "compose.yaml"
        path.write_text(text)
        try:
            verify([path], project_dir=tmp_path, fail_on=None)
        except (ComposeError, StackgenError) as exc:
            assert str(exc).strip(), "an error says what is wrong"
        except Exception as exc:  # noqa: BLE001 - the point of the test
            crashes.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not crashes, crashes[:5]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ("    network_mode: 31\n", r"services.app.network_mode must be a string, not 31"),
        ("    image: [a, b]\n", r"services.app.image must be a string"),
        ("    extends: 1\n", r"services.app.extends must be a string or a mapping"),
        ("    healthcheck:\n      test: 5\n", r"services.app.healthcheck.test must be a string or a list"),
        ("    cap_drop: true\n", r"services.app.cap_drop must be a list"),
        ("    cap_add: [1]\n", r"services.app.cap_add\[0\] must be a string"),
        ("    logging:\n      driver: [x]\n", r"services.app.logging.driver must be a string"),
        ("    restart: 5\n", r"services.app.restart must be a string"),
    ],
)
def test_wrong_types_get_composes_kind_of_error_with_the_line(tmp_path, service, message):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  app:\n" + service)
    with pytest.raises(ComposeError, match=message) as caught:
        verify([path], project_dir=tmp_path)
    assert caught.value.line == 2 + service.count("\n"), "the line of the offending key"


@pytest.mark.parametrize("text", ["services:\n", "services: 3\n"])
def test_services_must_be_a_mapping(tmp_path, text):
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    with pytest.raises(ComposeError, match="`services` must be a mapping"):
        verify([path], project_dir=tmp_path)
