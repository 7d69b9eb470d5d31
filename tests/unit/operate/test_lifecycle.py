"""`up`'s view of a stack, the firewall rule, the probe target guard, and the engine lookup (no engine needed)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from stackgen import engine as engines
from stackgen.errors import StackgenError
from stackgen.generate import workflow
from stackgen.generate.render import Context
from stackgen.live import probes
from stackgen.operate import firewall, lifecycle
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH
from tests.support import fakes
from tests.support.fakes import FakeContainer

# The engine of project "p".
FakeEngine = partial(fakes.FakeEngine, project="p")


DOCUMENT = {
    "services": {
        "node-red": {},
        "edge": {},
        "certbot": {"depends_on": {"edge": {"condition": "service_healthy"}}},
    }
}


def test_states_say_who_waits_for_what():
    engine = FakeEngine(
        [
            FakeContainer("node-red", {"Status": "running", "Health": {"Status": "healthy", "Log": []}}),
            FakeContainer("edge", {"Status": "running", "Health": {"Status": "starting", "Log": [{"Output": "connection refused\n", "ExitCode": 1}]}}),
        ]
    )
    found = lifecycle.states(engine, "p", DOCUMENT)
    assert found["node-red"].ready
    assert not found["edge"].ready and found["edge"].detail == "connection refused"
    assert found["certbot"].state == "absent" and found["certbot"].detail == "waiting for edge to be healthy"


def test_exited_and_unhealthy_are_failures():
    engine = FakeEngine(
        [
            FakeContainer("node-red", {"Status": "exited", "ExitCode": 1}),
            FakeContainer("edge", {"Status": "running", "Health": {"Status": "unhealthy", "Log": [{"Output": "", "ExitCode": 7}]}}),
        ]
    )
    found = lifecycle.states(engine, "p", DOCUMENT)
    assert found["node-red"].failed and found["node-red"].exit_code == 1
    assert found["edge"].failed and found["edge"].detail == "health check exit code 7"


def test_up_refuses_files_stack_yaml_no_longer_describes(tmp_path: Path):
    stack = Stack.model_validate({"project": "p", "domains": ["a.example.org"], "email": "a@example.org", "node_red": {"admin_password_hash": EXAMPLE_HASH}})
    workflow.init(tmp_path / "s", stack)
    spec = tmp_path / "s" / "stack.yaml"
    spec.write_text(spec.read_text().replace("edge: caddy", "edge: nginx"))
    with pytest.raises(StackgenError, match="not up to date with stack.yaml"):
        lifecycle.ensure_current(tmp_path / "s")


def test_firewall_rule_names_the_fixed_bridge():
    stack = Stack.model_validate({"project": "home", "domains": ["a.example.org"], "email": "a@example.org", "node_red": {"admin_password_hash": EXAMPLE_HASH}})
    bridge = Context(stack).internal_bridge
    assert bridge.startswith("sg-") and len(bridge) <= 15
    rule = firewall.FirewallRule(bridge, "home")
    assert rule.spec() == ["INPUT", "-i", bridge, "-m", "comment", "--comment", "stackgen:home", "-j", "DROP"]
    assert rule.fix == f"iptables -I INPUT -i {bridge} -m comment --comment stackgen:home -j DROP"


@pytest.mark.parametrize("target", ["8.8.8.8", "192.168.1.1", "10.0.0.1", "172.17.0.1"])
def test_probes_refuse_targets_outside_loopback_and_the_stacks_networks(target):
    with pytest.raises(probes.ForbiddenTarget):
        probes.tcp_open(target, 80, allowed_networks=["172.30.0.0/24"])


def test_probes_allow_loopback_and_listed_networks():
    probes.check_target("127.0.0.1")
    probes.check_target("::1")
    probes.check_target("172.30.0.9", ["172.30.0.0/24"])


def test_missing_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(engines.EngineUnavailable, match="no Docker engine answers at unix:///nonexistent/docker.sock"):
        engines.client(timeout=2)


def test_compose_binary_is_found():
    command = engines.compose_command()
    assert command[0].endswith(("docker-compose", "docker"))


def test_compose_naming_the_failed_dependency_is_believed():
    from stackgen.operate.lifecycle import ServiceState, blamed_service

    current = {"node-red": ServiceState("node-red", "running", "starting"), "edge": ServiceState("edge", "running", "starting")}
    stderr = "dependency failed to start: container proj-x-edge-1 is unhealthy\n"
    assert blamed_service(stderr, "proj-x", current) == "edge", "not the first service that is not ready"
    assert blamed_service("something else", "proj-x", current) == "node-red"


def test_docker_times_parse_with_nanoseconds_and_zero_is_none():
    from stackgen.engine import parse_time as _epoch

    assert _epoch("2026-12-01T03:41:55.123456789Z") == pytest.approx(_epoch("2026-12-01T03:41:55Z") + 0.123456)
    assert _epoch("0001-01-01T00:00:00Z") is None and _epoch("junk") is None


def _EventsEngine(events):
    """Answers `api.events` with canned `die` events and records the filters it was asked for."""
    return fakes.FakeEngine(history=events)


def _die(code):
    return {"Type": "container", "Action": "die", "Actor": {"Attributes": {"exitCode": str(code)}}}


def test_a_restarted_service_is_explained_by_its_exit_codes_not_its_current_state():
    """By the time compose gives up, a crash-looping edge is running again with health "starting":
    the engine's die events are what still say why (the CI flake of session 2)."""
    from stackgen.operate.lifecycle import why_failed

    engine = _EventsEngine([_die(1), _die(1), _die(2)])
    said = why_failed(engine, "proj-x", "edge", 1000.0, "did not start")
    assert said == "keeps restarting (last exit code 2, 3 exits since up began)"
    filters = engine.asked[0]["filters"]
    assert "com.docker.compose.service=edge" in filters["label"] and "com.docker.compose.project=proj-x" in filters["label"]
    assert filters["event"] == ["die"] and engine.asked[0]["since"] == 1000 and engine.asked[0]["until"] >= 1000


def test_one_exit_and_no_exit_are_said_plainly():
    from stackgen.operate.lifecycle import why_failed

    assert why_failed(_EventsEngine([_die(137)]), "p", "edge", 0, "x") == "exited with code 137"
    assert why_failed(_EventsEngine([]), "p", "edge", 0, "unhealthy: no answer") == "unhealthy: no answer"
    assert why_failed(_EventsEngine([{"Actor": {"Attributes": {"exitCode": "junk"}}}]), "p", "edge", 0, "fb") == "fb"
