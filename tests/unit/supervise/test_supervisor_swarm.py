"""The supervisor on a swarm stack: Swarm heals, the supervisor watches (TaskPolicy pure; the loop on a FakeEngine made a
one-node swarm; the renewal through the task containers; the drift child against compose.swarm.yaml; the CLI)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen import engine as engines
from stackgen.generate import workflow
from stackgen.spec import Stack
from stackgen.supervise import drift
from stackgen.supervise.alerts import AlertBook, read_log
from stackgen.supervise.config import Settings
from stackgen.supervise.state import read_state
from stackgen.supervise.supervisor import Supervisor
from stackgen.supervise.tasks import ServiceTasks, TaskEvent, TaskPolicy, TaskView
from stackgen.supervise.watch import ContainerWatch, SwarmWatch
from tests import golden
from tests.support.fakes import FakeEngine

NOW = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def task(id: str, state: str = "running", desired: str = "running", at: float = NOW, error: str = "", health: str | None = "healthy"):
    return TaskView(id, state, desired, at, error, 137 if state == "failed" else None, health if state == "running" else None, "node-1")


def policy(**settings) -> tuple[TaskPolicy, AlertBook, Clock]:
    clock = Clock()
    book = AlertBook({}, clock)
    return TaskPolicy(Settings(**{"crash_loop_restarts": 3, "crash_loop_window": 600, "stable_after": 60, **settings}), book, {}, clock), book, clock


def events(decisions, name: str) -> list:
    return [d for d in decisions if d.kind == "log" and d.event == name]


def alerts(decisions) -> list:
    return [d.alert for d in decisions if d.kind == "alert"]


# --- TaskPolicy: pure ---------------------------------------------------------------------------------------------


def test_each_failed_task_is_recorded_once_and_never_restarted():
    p, book, clock = policy()
    history = [task("t1", "failed", "shutdown", NOW - 5, "task: non-zero exit (137)"), task("t2")]
    first = p.resync([ServiceTasks("node-red", 1, history)])
    replaced = events(first, "task_replaced")
    assert [(d.key, d.fields["task"], d.fields["unhealthy"]) for d in replaced] == [("node-red", "t1", False)]
    assert "the supervisor does not restart it" in replaced[0].fields["why"]
    clock.now += 30
    again = p.resync([ServiceTasks("node-red", 1, history)])
    assert not events(again, "task_replaced"), "a task already counted is not counted again"
    assert not [d for d in first + again if d.kind == "restart"] and not alerts(first + again)
    record = p.dump()["node-red"]
    assert record["status"] == "running" and record["health"] == "healthy" and record["task"] == "t2"
    assert [r["by"] for r in record["restarts"]] == ["swarm"], "status counts Swarm's replacements, never as ours"


def test_an_unhealthy_task_swarm_replaced_is_told_apart():
    p, _, _ = policy()
    out = p.resync([ServiceTasks("edge", 1, [task("old", "failed", "shutdown", NOW - 1,
                                                      "task: non-zero exit (137): dockerexec: unhealthy container"), task("new")])])
    assert events(out, "task_replaced")[0].fields["unhealthy"] is True
    seen = p.observe(TaskEvent("edge", "health_status: unhealthy", "cid-x"))
    assert events(seen, "task_unhealthy") and not [d for d in seen if d.kind == "restart"]


def test_a_crash_loop_alerts_once_counts_beyond_swarms_short_history_and_clears_when_stable():
    p, book, clock = policy()
    sent = []
    # Swarm keeps a few tasks per slot: each resync sees the newest two failures only; the count accumulates.
    for n in range(4):
        clock.now += 10
        failures = [task(f"f{i}", "failed", "shutdown", clock.now - 5 + i, "task: non-zero exit (1)") for i in (n, n + 1) if i < 4]
        sent += alerts(p.resync([ServiceTasks("node-red", 1, [*failures, task(f"s{n}", "starting", health=None, at=clock.now)])]))
    assert [(a.kind, a.state, a.key) for a in sent] == [("crash_loop", "open", "crash_loop:node-red")], "one alert"
    assert sent[0].details["failed_tasks"] == 3 and sent[0].details["by"] == {"swarm": 3}
    assert "Swarm keeps replacing them" in sent[0].summary and "non-zero exit (1)" in sent[0].summary
    assert p.dump()["node-red"]["failed"]
    clock.now += 10
    assert not alerts(p.resync([ServiceTasks("node-red", 1, [task("good", at=clock.now)])]))
    clock.now += 30
    assert not alerts(p.tick()), "not stable yet"
    assert p.next_deadline() == pytest.approx(clock.now + 30)
    clock.now += 31
    resolved = alerts(p.tick())
    assert [(a.kind, a.state) for a in resolved] == [("crash_loop", "resolved")]
    assert not book.is_open("crash_loop:node-red") and not p.dump()["node-red"]["failed"]


def test_failures_older_than_the_window_and_updates_do_not_count():
    p, _, _ = policy()
    out = p.resync([ServiceTasks("node-red", 1, [
        task("ancient", "failed", "shutdown", NOW - 3600, "task: non-zero exit (1)"),
        task("updated-away", "shutdown", "shutdown", NOW - 5),  # `docker service update` replaced it: no failure
        task("done", "complete", "shutdown", NOW - 4),
        task("now", at=NOW - 3),
    ])])
    assert not events(out, "task_replaced") and p.dump()["node-red"]["restarts"] == []


def test_a_service_without_a_running_task_alerts_after_the_grace_and_resolves():
    p, book, clock = policy(no_task_after=60)
    pending = [task("p1", "pending", at=NOW, error="no suitable node (scheduling constraints not satisfied on 1 node)")]
    assert not alerts(p.resync([ServiceTasks("node-red", 1, pending), ServiceTasks("idle", 0, [])]))
    assert p.next_deadline() == pytest.approx(NOW + 60)
    clock.now += 59
    assert not alerts(p.tick()), "a replacement in progress is not an outage"
    clock.now += 2
    opened = alerts(p.tick())
    assert [(a.key, a.severity) for a in opened] == [("no_task:node-red", "critical")], "a service scaled to 0 is no outage"
    assert "no running task for 61s (current task: pending)" in opened[0].summary
    clock.now += 5
    assert not alerts(p.tick()), "once"
    back = alerts(p.resync([ServiceTasks("node-red", 1, [task("r1", at=clock.now)])]))
    assert [(a.key, a.state) for a in back] == [("no_task:node-red", "resolved")]


def test_a_service_not_deployed_is_absent_and_alerts_as_having_no_task():
    p, _, clock = policy(no_task_after=1)
    p.resync([ServiceTasks("certbot", None)])
    clock.now += 2
    assert [a.key for a in alerts(p.tick())] == ["no_task:certbot"] and p.dump()["certbot"]["status"] == "absent"


def test_task_events_of_the_stack_are_read_from_containers_and_services():
    labels = {"com.docker.stack.namespace": "p", "com.docker.swarm.service.name": "p_node-red"}
    container = {"Type": "container", "Action": "die", "Actor": {"ID": "c1", "Attributes": labels}}
    assert TaskEvent.from_engine(container, "p") == TaskEvent("node-red", "die", "c1", labels)
    service = {"Type": "service", "Action": "update", "Actor": {"ID": "s1", "Attributes": {"name": "p_edge"}}}
    assert TaskEvent.from_engine(service, "p").service == "edge"
    probe = {"Type": "service", "Action": "create", "Actor": {"ID": "s2", "Attributes": {"name": "stackgen-probe-p-ab12cd"}}}
    assert TaskEvent.from_engine(probe, "p") is None and TaskEvent.from_engine(container, "q") is None


# --- the loop, on a FakeEngine made a one-node swarm ----------------------------------------------------------------


@pytest.fixture
def swarm_dir(tmp_path: Path) -> Path:
    data = golden.golden_stack("caddy", "certbot-http01").model_dump(exclude_none=True)
    directory = tmp_path / "s"
    workflow.init(directory, Stack.model_validate(data | {"project": "p", "target": "swarm"}))
    return directory


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def deployed(engine: FakeEngine) -> dict:
    services = {}
    for key in ("node-red", "edge", "certbot"):
        services[key] = engine.swarm.service("p", key)
        services[key].task(container=f"cid-{key}", created="2030-01-01T00:00:00Z")
        engine.swarm.task_container("p", key, id=f"cid-{key}")
    return services


def test_the_watch_is_chosen_by_the_target(swarm_dir, tmp_path):
    swarm = Supervisor(swarm_dir, Settings())
    assert isinstance(swarm.watch, SwarmWatch) and not swarm.watch.heals and isinstance(swarm.policy, TaskPolicy)
    filters = swarm.watch.filters()
    assert filters[0]["label"] == ["com.docker.stack.namespace=p"] and filters[0]["type"] == "container"
    assert filters[1] == {"type": "service", "event": ["create", "update", "remove"]}, "service events carry no labels"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "compose.yaml").write_text("name: c\nservices:\n  app: {image: x}\n")
    compose = Supervisor(tmp_path / "c", Settings())
    assert isinstance(compose.watch, ContainerWatch) and compose.watch.heals and compose.watch.poll is None


def test_a_killed_task_swarm_replaces_is_logged_and_nothing_is_restarted(swarm_dir):
    engine = FakeEngine()
    engine.swarm_init()
    services = deployed(engine)
    supervisor = Supervisor(swarm_dir, Settings(swarm_poll=30, renew=False, verify_interval=0, cert_check_interval=3600,
                                                reconnect_max=0.2), connect=engine.connect)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        assert supervisor.resynced.wait(5)
        resync = supervisor.events_named("resynced")[0]["services"]
        assert resync == {"node-red": "running/healthy", "edge": "running/healthy", "certbot": "running/healthy"}
        assert len(engine.streams) == 2, "the task containers' events, and the services'"
        # `docker kill` of Node-RED's task container: it dies, Swarm marks the task failed and starts another.
        old = engine.items["p_node-red.1.cid-node-red"]
        old.status = "exited"
        services["node-red"].raw_tasks[0]["Status"].update(State="failed", Err="task: non-zero exit (137)")
        services["node-red"].raw_tasks[0]["Status"]["ContainerStatus"]["ExitCode"] = 137
        services["node-red"].raw_tasks[0]["DesiredState"] = "shutdown"
        services["node-red"].task(container="cid-new", created="2030-01-01T00:00:06Z")
        engine.swarm.task_container("p", "node-red", id="cid-new")
        engine.emit(old, "die", exitCode="137")  # no 30 s wait: the event pokes the poller
        wait_for(lambda: supervisor.events_named("task_replaced"), 5, "the replacement recorded")
    finally:
        supervisor.stop()
        thread.join(10)
    replaced = supervisor.events_named("task_replaced")
    assert [(r["service"], r["error"], r["exit_code"]) for r in replaced] == [("node-red", "task: non-zero exit (137)", 137)]
    assert not engine.restart_times and all(c.restarts == 0 for c in engine.items.values()), "the supervisor restarted nothing"
    log = [r["event"] for r in read_log(swarm_dir / ".stackgen-supervisor" / "supervisor.jsonl")]
    assert "restart" not in log and "restart_scheduled" not in log
    started = [r for r in read_log(swarm_dir / ".stackgen-supervisor" / "supervisor.jsonl") if r["event"] == "supervisor_started"][0]
    assert started["target"] == "swarm" and started["heals"] is False
    record = read_state(swarm_dir)["services"]["node-red"]
    assert record["task"] == "tid-p_node-red-1" and [r["by"] for r in record["restarts"]] == ["swarm"]


def test_on_an_engine_that_is_no_manager_the_resync_says_so(swarm_dir):
    engine = FakeEngine()
    engine.swarm_init(manager=False)
    with pytest.raises(Exception, match="not a swarm manager: only a manager lists the stack's tasks"):
        Supervisor(swarm_dir, Settings()).watch.snapshot(engine)


def test_status_says_swarm_heals_and_counts_its_replacements(swarm_dir, monkeypatch):
    engine = FakeEngine()
    engine.swarm_init()
    services = deployed(engine)
    services["node-red"].task("failed", "shutdown", err="task: non-zero exit (1)", created="2029-12-31T23:59:00Z")
    supervisor = Supervisor(swarm_dir, Settings(crash_loop_restarts=1))
    supervisor._apply(supervisor.policy.resync(supervisor.watch.snapshot(engine)))
    supervisor._save()
    monkeypatch.setattr(engines, "client", lambda timeout=60: engine)
    from stackgen.operate import renewal

    monkeypatch.setattr(renewal, "served_certificate", lambda *a: (_ for _ in ()).throw(renewal.RenewalError("no answer")))
    monkeypatch.setattr("time.time", lambda: engines.parse_time("2030-01-01T00:01:00Z"))
    from stackgen.cli.app import app

    report = json.loads(CliRunner().invoke(app, ["status", str(swarm_dir), "--json"]).output)
    assert report["healer"] == "swarm" and report["services"]["node-red"]["restarts"] == 1
    assert report["services"]["node-red"]["restarts_by_supervisor"] == 0 and report["services"]["node-red"]["failed"]
    assert "crash_loop:node-red" in report["alerts"]
    shown = CliRunner().invoke(app, ["status", str(swarm_dir)], env={"COLUMNS": "220"}).output
    assert "Swarm keeps replacing its tasks" in shown and "gave up" not in shown


def test_the_cli_runs_the_supervisor_on_a_swarm_stack_and_installs_its_unit(swarm_dir, monkeypatch):
    from stackgen.cli.app import app
    from stackgen.supervise import supervisor as module

    ran = []
    monkeypatch.setattr(module, "run_foreground", lambda s: ran.append(s) or 0)
    result = CliRunner().invoke(app, ["supervise", str(swarm_dir), "--swarm-poll", "10s", "--no-task-after", "2m", "--quiet"])
    assert result.exit_code == 0, result.output
    assert isinstance(ran[0].watch, SwarmWatch) and ran[0].settings.swarm_poll == 10 and ran[0].settings.no_task_after == 120
    unit = CliRunner().invoke(app, ["supervise", str(swarm_dir), "--swarm-poll", "10s", "--install-systemd", "--unit-dir", str(swarm_dir)])
    assert unit.exit_code == 0, unit.output
    assert "--swarm-poll 10s" in (swarm_dir / "stackgen-supervise-p.service").read_text()


# --- renewal and drift through the swarm's task containers ------------------------------------------------------------


def test_renewal_runs_in_the_certbot_task_and_reloads_the_edge_task(swarm_dir, monkeypatch):
    from stackgen.operate import renewal
    from stackgen.stackdir import load_stack

    engine = FakeEngine()
    engine.swarm_init()
    deployed(engine)
    certbot, edge = engine.items["p_certbot.1.cid-certbot"], engine.items["p_edge.1.cid-edge"]
    files = {"serial": "0A"}

    def certbot_exec(command):
        if command[0] == "python3":
            return 0, json.dumps({"serial": files["serial"], "not_after": 2_000_000_000.0, "names": [], "key_matches": True}), ""
        files["serial"] = "0B"
        return 0, "renewed", ""

    certbot._exec, edge._exec = certbot_exec, lambda command: (0, "", "")
    # The edge picks the new files up only after the explicit reload (exec'd in its task container).
    monkeypatch.setattr(renewal, "served_certificate",
                        lambda *a: renewal.ServedCert(files["serial"] if edge.calls else "0A", 2e9, "127.0.0.1", 8443))
    monkeypatch.setattr(renewal.time, "sleep", lambda s: None)
    outcome = renewal.renew(engine, load_stack(swarm_dir), "p", force=True, reload_wait=0.01)
    assert outcome.status == "renewed" and outcome.reloaded == "explicit", outcome
    assert "--force-renewal" in certbot.calls[1] and certbot.calls[1][:2] == ["certbot", "renew"]
    assert edge.calls == [renewal.reload_command("caddy")] and edge.restarts == 0, "reloaded in place, never restarted"


def test_the_drift_child_judges_a_swarm_stack_against_the_stack_file(swarm_dir, monkeypatch, capsys):
    from stackgen.live import checks, swarm_probe
    from stackgen.stackdir import StackDir
    from stackgen.verify import pipeline
    from stackgen.verify.report import Finding, Severity

    (swarm_dir / "compose.swarm.yaml").write_text("services: {}\n")  # what `generate --target swarm` writes
    engine = FakeEngine()
    engine.swarm_init()
    asked = {}

    def found(*pairs):
        return type("Result", (), {"findings": [Finding(rule, Severity.MEDIUM, "m", "f", service=service) for rule, service in pairs]})()

    def verify_live(client, **kwargs):
        asked.update(kwargs, client=client)
        return found(("SG011", "node-red"), ("SG202", "node-red"), ("SG011", "edge"))

    monkeypatch.setattr(checks, "verify_live", verify_live)
    monkeypatch.setattr(pipeline, "verify", lambda files, fail_on=None: asked.update(static=files) or found(("SG011", "node-red"), ("SG011", "edge")))
    monkeypatch.setattr(engines, "client", lambda: engine)
    assert drift.main([str(swarm_dir), "cheap"]) == 0
    assert asked["files"] == asked["static"] == [StackDir(swarm_dir).swarm_path]
    assert asked["probe_level"] == "cheap" and asked["fail_on"] is None
    assert isinstance(asked["client"], swarm_probe.OverlayProbes), "a probe on an overlay runs as a one-task service"
    printed = json.loads(capsys.readouterr().out.strip())
    # SG011 (Swarm cannot set no-new-privileges) is in the stack file itself: not drift. A port published by hand is.
    assert [(f["rule"], f["service"], f["suppressed"]) for f in printed] == [
        ("SG011", "node-red", True), ("SG202", "node-red", False), ("SG011", "edge", True)]
    assert printed[0]["suppression"]["kind"] == "baseline"
