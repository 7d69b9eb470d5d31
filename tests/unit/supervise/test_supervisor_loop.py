"""The supervisor's loop with a fake engine: events in, restarts out, reconnection, resync, jobs, clean stop."""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path

import pytest

from stackgen.supervise.alerts import read_log
from stackgen.supervise.config import Settings
from stackgen.supervise.state import read_state
from stackgen.supervise.supervisor import Supervisor
from stackgen.verify.report import Finding, Severity
from tests.support import fakes

PROJECT = "fakeproj"


# One engine that can go down and come back; every connect() gets a client on it.
FakeEngine = partial(fakes.FakeEngine, project=PROJECT)


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def directory(tmp_path) -> Path:
    (tmp_path / "compose.yaml").write_text(f"name: {PROJECT}\nservices:\n  app: {{image: x}}\n  db: {{image: y}}\n")
    return tmp_path


def start(directory, engine, **settings):
    supervisor = Supervisor(directory, Settings(**{"backoff_base": 0.2, "backoff_cap": 1, "reconnect_max": 0.2, **settings}),
                            connect=engine.connect)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    assert supervisor.resynced.wait(5)
    return supervisor, thread


def stop(supervisor, thread):
    supervisor.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_unhealthy_event_restarts_that_container_only(directory):
    engine = FakeEngine()
    app, db = engine.add("app"), engine.add("db")
    supervisor, thread = start(directory, engine)
    try:
        app.health = "unhealthy"
        engine.emit(app, "health_status: unhealthy")
        wait_for(lambda: app.restarts == 1, what="restart")
        assert db.restarts == 0
        wait_for(lambda: supervisor.events_named("restarted"), what="restarted log")
    finally:
        stop(supervisor, thread)
    log = [r["event"] for r in read_log(directory / ".stackgen-supervisor" / "supervisor.jsonl")]
    assert log[0] == "supervisor_started" and log[-1] == "supervisor_stopped"
    assert "restart" in log and "restarted" in log
    state = read_state(directory)
    assert state["services"]["app"]["attempt"] == 1 and state["services"]["db"]["attempt"] == 0


def test_reconnects_resyncs_and_heals_what_broke_while_away(directory):
    engine = FakeEngine()
    app = engine.add("app")
    supervisor, thread = start(directory, engine, engine_alert_after=0.3)
    try:
        engine.go_down()
        wait_for(lambda: supervisor.events_named("engine_disconnected"), what="disconnect")
        time.sleep(0.6)
        app.health = "unhealthy"  # no event: the engine is away
        wait_for(lambda: any(a["alert"]["id"] == "engine_unreachable" for a in supervisor.events_named("alert")), what="outage alert")
        engine.come_back()
        wait_for(lambda: app.restarts == 1, what="restart after resync")
        alerts = [a["alert"] for a in supervisor.events_named("alert") if a["alert"]["id"] == "engine_unreachable"]
        assert [a["state"] for a in alerts] == ["open", "resolved"]
        assert len(supervisor.events_named("engine_connected")) == 2
    finally:
        stop(supervisor, thread)


def test_supervisor_restart_keeps_backoff_and_counters(directory):
    engine = FakeEngine()
    app = engine.add("app")
    supervisor, thread = start(directory, engine, backoff_base=30, backoff_cap=60)
    app.health = "unhealthy"
    engine.emit(app, "health_status: unhealthy")
    wait_for(lambda: app.restarts == 1)
    app.health = "unhealthy"
    engine.emit(app, "health_status: unhealthy")  # second time: due in 30 s
    wait_for(lambda: supervisor.events_named("restart_scheduled") and len(supervisor.events_named("restart_scheduled")) == 2)
    stop(supervisor, thread)
    state = read_state(directory)
    assert state["services"]["app"]["attempt"] == 1 and state["services"]["app"]["next_restart_at"] is not None
    supervisor, thread = start(directory, engine, backoff_base=30, backoff_cap=60)
    try:
        time.sleep(0.5)
        assert app.restarts == 1, "the resumed supervisor waits out the backoff instead of restarting at once"
        assert supervisor.policy.records["app"].attempt == 1
    finally:
        stop(supervisor, thread)


def test_drift_findings_alert_when_new_and_again_when_cleared(directory):
    engine = FakeEngine()
    engine.add("app")
    current: list[Finding] = []
    calls = []

    def findings(client, path, probes):
        calls.append(probes)
        return list(current)

    (directory / "stack.yaml").unlink(missing_ok=True)
    supervisor = Supervisor(directory, Settings(verify_interval=1), connect=engine.connect, findings=findings)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        assert supervisor.resynced.wait(5)
        rogue = Finding("SG201", Severity.HIGH, "container rogue is not declared; it is on internal", "remove it", service="rogue")
        current.append(rogue)
        current.append(Finding("SG030", Severity.MEDIUM, "no pids limit", "x", service="rogue"))
        current.append(Finding("SG001", Severity.LOW, "low one", "x"))
        supervisor.request("verify")
        wait_for(lambda: supervisor.events_named("alert"), what="drift alert")
        first = supervisor.events_named("alert")[0]["alert"]
        assert first["id"] == "drift:rogue" and first["severity"] == "critical" and first["service"] == "rogue"
        assert [f["rule"] for f in first["details"]["findings"]] == ["SG201", "SG030"], "one alert for the container, worst first"
        supervisor.request("verify")  # nothing new: nothing sent
        wait_for(lambda: len(supervisor.events_named("verify")) == 2, what="second verify")
        current.append(Finding("SG105", Severity.MEDIUM, "reaches Node-RED", "x", service="rogue"))
        supervisor.request("verify")  # a new finding: sent again
        wait_for(lambda: len(supervisor.events_named("alert")) == 2, what="new finding")
        again = supervisor.events_named("alert")[1]["alert"]
        assert again["state"] == "open" and [i.split(":")[0] for i in again["details"]["new"]] == ["SG105"]
        current.clear()
        supervisor.request("verify")
        wait_for(lambda: len(supervisor.events_named("alert")) == 3, what="cleared")
        states = [a["alert"]["state"] for a in supervisor.events_named("alert")]
        assert states == ["open", "open", "resolved"] and calls[0] == "cheap"
    finally:
        stop(supervisor, thread)


def test_state_directory_is_private_and_locked(directory):
    engine = FakeEngine()
    supervisor, thread = start(directory, engine)
    try:
        assert (directory / ".stackgen-supervisor").stat().st_mode & 0o777 == 0o700
        from stackgen.supervise.state import StateError

        with pytest.raises(StateError, match="another stackgen supervisor"):
            Supervisor(directory, Settings(), connect=engine.connect).store.acquire()
    finally:
        stop(supervisor, thread)


def test_no_busy_loop_while_jobs_are_due_but_cannot_run(tmp_path):
    from stackgen.generate import workflow
    from stackgen.supervise.supervisor import IDLE_WAKE
    from tests.golden import golden_stack

    directory = tmp_path / "stack"
    workflow.init(directory, golden_stack("caddy", "certbot-http01"))
    supervisor = Supervisor(directory, Settings(), connect=lambda: (_ for _ in ()).throw(ConnectionError("down")))
    supervisor._init_schedule()
    supervisor.store.data["renewal"]["next_at"] = supervisor.clock() - 10
    assert supervisor._wait_time() == IDLE_WAKE, "disconnected: due jobs do not shorten the wait"
    supervisor.connected = True
    supervisor._jobs_pending.add("renewal")  # already running
    supervisor._schedule_jobs()
    assert supervisor.store.data["renewal"]["next_at"] is None
    assert supervisor._wait_time() > 1, "a running job's schedule does not spin the loop"
