"""`StackDir`: what a stack directory holds, worked out once (spec, compose document, project, state)."""

from __future__ import annotations

import pytest

from stackgen.errors import StackgenError
from stackgen.generate.workflow import generate
from stackgen.stackdir import STATE_DIR, StackDir, dump_stack
from tests.golden import golden_stack


def test_a_stackgen_stack(tmp_path):
    stack = golden_stack("caddy", "certbot-http01")
    (tmp_path / "stack.yaml").write_bytes(dump_stack(stack))
    generate(tmp_path)
    sd = StackDir(tmp_path)
    assert sd.has_spec and sd.has_compose
    assert sd.stack.project == stack.project and sd.stack is sd.stack  # read once
    assert sd.project() == stack.project and sd.project("other") == "other"
    assert sd.compose_document()["services"].keys() >= {"edge", "node-red"}
    assert sd.state_dir == tmp_path / STATE_DIR == tmp_path / ".stackgen-supervisor"


def test_a_plain_compose_project(tmp_path):
    (tmp_path / "compose.yaml").write_text("name: plain\nservices:\n  web:\n    image: nginx\n")
    sd = StackDir(tmp_path)
    assert not sd.has_spec and sd.stack_if_any() is None
    assert sd.project() == "plain"


def test_what_is_missing_or_broken_is_named(tmp_path):
    with pytest.raises(StackgenError, match="neither stack.yaml nor compose.yaml"):
        StackDir(tmp_path).project()
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx\n")
    with pytest.raises(StackgenError, match="no top-level `name:`"):
        StackDir(tmp_path).project()
    assert StackDir(tmp_path).project("given") == "given"
    (tmp_path / "compose.yaml").write_text("services: [\n")
    with pytest.raises(StackgenError, match="compose.yaml: not valid YAML"):
        StackDir(tmp_path).compose_document()
    with pytest.raises(StackgenError, match="stack.yaml: not found"):
        _ = StackDir(tmp_path).stack
