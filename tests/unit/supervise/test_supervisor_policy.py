"""The healing policy with a fake clock: backoff, crash loop, stopped-by-user, dependents, resync (no engine)."""

from __future__ import annotations

import pytest

from stackgen.supervise.alerts import AlertBook
from stackgen.supervise.config import Settings
from stackgen.supervise.policy import ContainerEvent, HealPolicy, Observed
from stackgen.supervise.target import dependents_from_compose


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ev(action: str, key: str = "node-red", container: str = "c1", **attributes: str) -> ContainerEvent:
    return ContainerEvent(key, key.split("#")[0], container, action, attributes)


def kinds(decisions, kind: str):
    return [d for d in decisions if d.kind == kind]


def logged(decisions) -> list[str]:
    return [d.event for d in decisions if d.kind == "log"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, dependents=None, **settings) -> HealPolicy:
    defaults = {"backoff_base": 10, "backoff_cap": 40, "crash_loop_restarts": 4, "crash_loop_window": 600, "stable_after": 120}
    defaults.update(settings)
    return HealPolicy(Settings(**defaults), AlertBook({}, clock), dependents or {}, {}, clock)


def restart_cycle(policy: HealPolicy, clock: Clock, key: str = "node-red") -> None:
    """The supervisor's side of one restart: begun, done, and the events it causes (which are ours)."""
    policy.restart_begun(key)
    for action in ("kill", "die", "stop", "start"):
        policy.observe(ev(action, key))
    clock.advance(0.3)
    policy.restart_done(key, True)
    policy.observe(ev("restart", key))


def test_first_restart_is_immediate_then_backoff_doubles_to_the_cap(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    delays = []
    for _ in range(4):
        clock.advance(30)
        decisions = policy.observe(ev("health_status: unhealthy"))
        scheduled = [d for d in decisions if d.event == "restart_scheduled"]
        assert scheduled, decisions
        delays.append(scheduled[0].fields["delay"])
        if delays[-1] == 0:
            assert kinds(decisions, "restart"), "due at once"
        else:
            assert not kinds(decisions, "restart")
            clock.advance(delays[-1] - 0.1)
            assert not kinds(policy.tick(), "restart"), "not before the backoff"
            clock.advance(0.1)
            assert [d.key for d in kinds(policy.tick(), "restart")] == ["node-red"]
        restart_cycle(policy, clock)
    assert delays == [0, 10, 20, 40]


def test_only_the_unhealthy_container_is_restarted(clock):
    policy = make(clock)
    for key in ("node-red", "edge", "certbot"):
        policy.observe(ev("start", key, container=key))
    decisions = policy.observe(ev("health_status: unhealthy", "edge", container="edge"))
    assert [(d.key, d.container) for d in kinds(decisions, "restart")] == [("edge", "edge")]


def test_crash_loop_stops_restarting_with_one_alert(clock):
    policy = make(clock, crash_loop_restarts=3)
    policy.observe(ev("start"))
    restarts = 0
    alerts = []
    for _ in range(8):
        clock.advance(5)
        decisions = policy.observe(ev("health_status: unhealthy"))
        clock.advance(60)
        decisions += policy.tick()
        alerts += kinds(decisions, "alert")
        if kinds(decisions, "restart"):
            restarts += 1
            restart_cycle(policy, clock)
    assert restarts == 3
    assert len(alerts) == 1
    alert = alerts[0].alert
    assert alert.key == "crash_loop:node-red" and alert.state == "open" and alert.severity == "critical"
    assert policy.records["node-red"].failed
    assert "not_restarting" in logged(policy.observe(ev("health_status: unhealthy")))


def test_engine_crash_loop_is_detected_and_alerted_once(clock):
    policy = make(clock, crash_loop_restarts=3)
    policy.observe(ev("start", "worker"))
    alerts = []
    for _ in range(6):
        clock.advance(1)
        alerts += kinds(policy.observe(ev("die", "worker", exitCode="1")), "alert")
        alerts += kinds(policy.observe(ev("start", "worker")), "alert")
    assert len(alerts) == 1
    assert policy.records["worker"].failed
    assert all(r["by"] == "engine" for r in policy.records["worker"].restarts)


def test_failed_clears_after_a_stable_period_and_resolves_the_alert(clock):
    policy = make(clock, crash_loop_restarts=1, stable_after=60)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    restart_cycle(policy, clock)
    decisions = policy.observe(ev("health_status: unhealthy"))
    assert kinds(decisions, "alert")[0].alert.state == "open"
    decisions = policy.observe(ev("health_status: healthy"))
    clock.advance(61)
    decisions = policy.tick()
    resolved = kinds(decisions, "alert")
    assert resolved and resolved[0].alert.state == "resolved"
    assert not policy.records["node-red"].failed and policy.records["node-red"].attempt == 0


def test_backoff_resets_after_a_stable_period(clock):
    policy = make(clock, stable_after=60)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    restart_cycle(policy, clock)
    policy.observe(ev("health_status: healthy"))
    assert policy.records["node-red"].attempt == 1
    assert policy.next_deadline() == pytest.approx(clock.now + 60, abs=1)
    clock.advance(61)
    assert "stable" in logged(policy.tick())
    decisions = policy.observe(ev("health_status: unhealthy"))
    assert kinds(decisions, "restart"), "back to an immediate restart"


def test_a_container_stopped_by_the_user_is_left_alone_and_a_pending_restart_cancelled(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    restart_cycle(policy, clock)
    decisions = policy.observe(ev("health_status: unhealthy"))  # second time: backoff 10 s
    assert policy.records["node-red"].next_restart_at is not None and not kinds(decisions, "restart")
    for action in ("kill", "die", "stop"):  # `docker stop` by the user
        decisions = policy.observe(ev(action, signal="15") if action == "kill" else ev(action))
    record = policy.records["node-red"]
    assert record.stopped_by_user and record.next_restart_at is None
    clock.advance(3600)
    assert not kinds(policy.tick(), "restart")
    assert policy.next_deadline() is None
    # A user `docker start` is respected too: it is theirs, not counted as a crash.
    policy.observe(ev("start"))
    assert not policy.records["node-red"].stopped_by_user
    assert len(policy.records["node-red"].restarts) == 1


def test_our_own_restart_events_are_not_mistaken_for_the_user(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    restart_cycle(policy, clock)
    record = policy.records["node-red"]
    assert not record.stopped_by_user
    assert [r["by"] for r in record.restarts] == ["supervisor"]


def test_lagging_events_of_our_restart_still_count_as_ours(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    policy.restart_begun("node-red")
    policy.restart_done("node-red", True)  # the call returned before the events arrived
    clock.advance(0.5)
    for action in ("kill", "die", "stop", "start", "restart"):
        policy.observe(ev(action))
    assert not policy.records["node-red"].stopped_by_user
    assert len(policy.records["node-red"].restarts) == 1


def test_a_manual_restart_clears_a_crash_loop(clock):
    policy = make(clock, crash_loop_restarts=1)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    restart_cycle(policy, clock)
    policy.observe(ev("health_status: unhealthy"))
    assert policy.records["node-red"].failed
    clock.advance(100)
    for action in ("kill", "die", "stop", "start"):
        policy.observe(ev(action))
    decisions = policy.observe(ev("restart"))
    assert not policy.records["node-red"].failed
    assert any(d.alert and d.alert.state == "resolved" for d in decisions)


def test_restart_that_recovered_before_it_was_due_is_cancelled(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    restart_cycle(policy, clock)
    policy.observe(ev("health_status: unhealthy"))
    decisions = policy.observe(ev("health_status: healthy"))
    assert "restart_cancelled" in logged(decisions)
    clock.advance(100)
    assert not kinds(policy.tick(), "restart")


def test_failed_restart_is_retried_with_backoff(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    policy.restart_begun("node-red")
    decisions = policy.restart_done("node-red", False, "engine said no")
    assert "restart_failed" in logged(decisions)
    assert policy.records["node-red"].next_restart_at == pytest.approx(clock.now + 10)


def test_a_restart_the_engine_never_received_is_not_counted_and_does_not_spin(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))  # due at once
    decisions = policy.restart_done("node-red", False, "inspect failed")  # failed before the engine was asked
    record = policy.records["node-red"]
    assert record.attempt == 0 and record.restarts == []
    assert record.next_restart_at == pytest.approx(clock.now + 10), "retried after backoff_base, not in a tight loop"
    assert not kinds(decisions, "restart")


def test_dependents_restart_only_where_compose_says_restart_true(clock):
    document = {
        "services": {
            "node-red": {},
            "edge": {"depends_on": {"node-red": {"condition": "service_started", "restart": True}}},
            "certbot": {"depends_on": {"edge": {"condition": "service_healthy"}}},
            "other": {"depends_on": ["node-red"]},
        }
    }
    dependents = dependents_from_compose(document)
    assert dependents == {"node-red": ["edge"]}
    policy = make(clock, dependents)
    for key in ("node-red", "edge", "certbot", "other"):
        policy.observe(ev("start", key, container=key))
    policy.observe(ev("health_status: unhealthy", container="node-red"))
    policy.restart_begun("node-red")
    decisions = policy.restart_done("node-red", True)
    restarts = kinds(decisions, "restart")
    assert [d.key for d in restarts] == ["edge"]
    assert restarts[0].require_unhealthy is False
    # certbot depends on the edge without restart: true -> not restarted after the edge
    policy.restart_begun("edge", by="dependency")
    assert policy.records["edge"].attempt == 0, "a restart with a dependency is not a backoff step"
    assert policy.records["edge"].restarts[-1]["by"] == "dependency"
    assert not kinds(policy.restart_done("edge", True, dependency_of="dependency node-red restarted"), "restart")


def test_resync_schedules_unhealthy_and_forgets_what_is_gone(clock):
    policy = make(clock)
    policy.observe(ev("start", "gone", container="g"))
    decisions = policy.resync([
        Observed("node-red", "node-red", "c1", "running", "unhealthy", clock.now - 50),
        Observed("edge", "edge", "c2", "running", "healthy", clock.now - 50),
        Observed("certbot", "certbot", "c3", "exited", None),
    ])
    assert [d.key for d in kinds(decisions, "restart")] == ["node-red"]
    assert policy.records["gone"].container is None
    assert policy.records["certbot"].status == "exited"


def test_resync_clears_stopped_by_user_when_running_again(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("kill", signal="15"))
    assert policy.records["node-red"].stopped_by_user
    policy.resync([Observed("node-red", "node-red", "c1", "running", "healthy", clock.now)])
    assert not policy.records["node-red"].stopped_by_user


def test_ignored_services_are_never_restarted(clock):
    policy = make(clock, ignore_services=["edge"])
    policy.observe(ev("start", "edge"))
    decisions = policy.observe(ev("health_status: unhealthy", "edge"))
    assert not kinds(decisions, "restart") and "not_restarting" in logged(decisions)


def test_persisted_records_keep_counters_across_a_supervisor_restart(clock):
    policy = make(clock)
    policy.observe(ev("start"))
    policy.observe(ev("health_status: unhealthy"))
    restart_cycle(policy, clock)
    policy.observe(ev("health_status: unhealthy"))
    due = policy.records["node-red"].next_restart_at
    dumped = policy.dump()
    fresh = HealPolicy(policy.s, AlertBook({}, clock), {}, dumped, clock)
    record = fresh.records["node-red"]
    assert record.attempt == 1 and len(record.restarts) == 1 and record.next_restart_at == due
    # The resync after the restart does not reset the pending backoff.
    decisions = fresh.resync([Observed("node-red", "node-red", "c1", "running", "unhealthy", clock.now - 5)])
    assert not kinds(decisions, "restart")
    clock.advance(due - clock.now)
    assert kinds(fresh.tick(), "restart")


def test_scaled_service_and_oneoff_events():
    event = ContainerEvent.from_engine({
        "Type": "container", "Action": "health_status: unhealthy",
        "Actor": {"ID": "abc", "Attributes": {"com.docker.compose.service": "worker", "com.docker.compose.container-number": "2"}},
    })
    assert event.key == "worker#2" and event.service == "worker"
    assert ContainerEvent.from_engine({
        "Type": "container", "Action": "die",
        "Actor": {"ID": "x", "Attributes": {"com.docker.compose.service": "w", "com.docker.compose.oneoff": "True"}},
    }) is None
    assert ContainerEvent.from_engine({"Type": "network", "Action": "connect", "Actor": {"Attributes": {}}}) is None


def test_observed_from_inspect_attributes():
    observed = Observed.from_attrs({
        "Id": "abc",
        "Config": {"Labels": {"com.docker.compose.service": "node-red"}},
        "State": {"Status": "running", "Health": {"Status": "unhealthy"}, "StartedAt": "2024-05-01T10:00:00.123456789Z"},
    })
    assert (observed.key, observed.status, observed.health) == ("node-red", "running", "unhealthy")
    assert observed.started_at == pytest.approx(1714557600.123456)
