"""The healing rules, pure: container events, snapshots and a clock in; decisions out.

Why pure: backoff, crash loops and "stopped by the user" are the decisions a healer gets wrong
quietly. Without an engine, threads or a real clock they are unit-tested exactly
(tests/unit/supervise/test_supervisor_policy.py); the main loop (supervisor.py) is the only
caller, so the policy and its records need no lock.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stackgen import engine as engines
from stackgen.constants import NUMBER_LABEL, SERVICE_LABEL
from stackgen.supervise.alerts import Alert, AlertBook
from stackgen.supervise.config import Settings, format_duration

OWN_GRACE = 5.0  # seconds after our restart returns during which its lagging events are still ours


# --- value types ------------------------------------------------------------------


@dataclass
class ContainerEvent:
    """One engine event about a project container, reduced to what the policy needs."""

    key: str  # service, or service#N for a scaled service's Nth container
    service: str
    container: str
    action: str  # create start restart kill die stop destroy "health_status: unhealthy" ...
    attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_engine(cls, event: dict[str, Any]) -> ContainerEvent | None:
        if event.get("Type") != "container":
            return None
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        service = attributes.get(SERVICE_LABEL)
        if not service or engines.is_oneoff(attributes):
            return None
        action = event.get("Action") or event.get("status") or ""
        return cls(unit_key(service, attributes.get(NUMBER_LABEL)), service, actor.get("ID", ""), action, attributes)


@dataclass
class Observed:
    """One container as the engine shows it now (for resynchronisation)."""

    key: str
    service: str
    container: str
    status: str  # running exited created restarting paused dead
    health: str | None  # starting healthy unhealthy, None without a healthcheck
    started_at: float | None = None

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Observed | None:
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        service = labels.get(SERVICE_LABEL)
        if not service or engines.is_oneoff(labels):
            return None
        state = attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        return cls(unit_key(service, labels.get(NUMBER_LABEL)), service, attrs.get("Id", ""), state.get("Status", "exited"), health,
                   engines.parse_time(state.get("StartedAt")))


def unit_key(service: str, number: str | None) -> str:
    return service if number in (None, "", "1") else f"{service}#{number}"


@dataclass
class ServiceRecord:
    """What the policy knows about one service's container. Persisted, except the in-flight fields."""

    container: str | None = None
    status: str | None = None
    health: str | None = None
    has_health: bool | None = None
    running_since: float | None = None
    restarts: list[dict[str, Any]] = field(default_factory=list)  # {"at": t, "by": supervisor|engine|dependency}
    attempt: int = 0  # restarts by the supervisor since the container was last stable: the backoff exponent
    next_restart_at: float | None = None
    next_reason: str | None = None
    failed: bool = False
    failed_at: float | None = None
    stopped_by_user: bool = False
    last_restart_at: float | None = None
    last_action: str | None = None
    # in flight, not persisted
    restarting: bool = False
    own_until: float = 0.0
    restart_event_seen: bool = False

    PERSISTED = (
        "container", "status", "health", "has_health", "running_since", "restarts", "attempt", "next_restart_at",
        "next_reason", "failed", "failed_at", "stopped_by_user", "last_restart_at", "last_action",
    )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PERSISTED}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceRecord:
        return cls(**{k: v for k, v in data.items() if k in cls.PERSISTED})


@dataclass
class Decision:
    """What the policy wants done: restart a container, write a log line, or send an alert."""

    kind: str  # restart | log | alert
    key: str
    container: str | None = None
    reason: str = ""
    level: str = "info"
    event: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    alert: Alert | None = None
    require_unhealthy: bool = True


# --- the policy ------------------------------------------------------------------


class HealPolicy:
    """Health healing rules. Pure: fed container events, snapshots and a clock; returns decisions.

    * `health_status: unhealthy` -> restart that one container: the first restart at once, then
      after `backoff_base`, doubling, capped at `backoff_cap`.
    * `crash_loop_restarts` restarts (the supervisor's or the engine's own restart policy's) within
      `crash_loop_window` -> stop restarting, mark failed, one alert. Cleared when the container
      stays stable for `stable_after`, or when the user restarts it by hand.
    * A container stopped (or killed) by anyone but the supervisor is left alone, and a restart
      pending for it is cancelled. The supervisor never starts a stopped container.
    * After a restart, services whose compose `depends_on` entry for it says `restart: true` are
      restarted too; no others.
    """

    def __init__(
        self,
        settings: Settings,
        alerts: AlertBook,
        dependents: dict[str, list[str]] | None = None,
        records: dict[str, dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.s = settings
        self.alerts = alerts
        self.dependents = dependents or {}
        self.records: dict[str, ServiceRecord] = {k: ServiceRecord.from_dict(v) for k, v in (records or {}).items()}
        self.clock = clock

    # -- inputs --

    def record(self, key: str) -> ServiceRecord:
        return self.records.setdefault(key, ServiceRecord())

    def observe(self, event: ContainerEvent) -> list[Decision]:
        now = self.clock()
        r = self.record(event.key)
        key, action = event.key, event.action
        out: list[Decision] = []
        if action != "destroy" and event.container:
            r.container = event.container
        own = r.restarting or now < r.own_until
        if action.startswith("health_status"):
            status = action.split(":", 1)[1].strip() if ":" in action else ""
            r.has_health = True
            r.health = status or r.health
            if status == "healthy" and r.next_restart_at is not None:
                out.append(self._log(key, "restart_cancelled", why="healthy again by itself"))
                self._cancel(r)
            elif status == "unhealthy" and not r.restarting:
                out += self._need_restart(key, r, "unhealthy")
            return out + self.tick()
        if action == "restart":
            if own:  # the last event of our restart: every event of it is in
                r.restart_event_seen = True
                r.own_until = now if not r.restarting else r.own_until
                return out
            r.stopped_by_user = False
            r.status, r.running_since = "running", now
            out.append(self._log(key, "restarted_by_user"))
            out += self._clear_failed(key, r, "restarted by hand")
            self._cancel(r)
            return out
        if own and action in ("kill", "die", "stop", "start"):
            if action == "start":
                r.status, r.running_since = "running", now
                r.health = "starting" if r.has_health else None
            r.last_action = action
            return out
        if action in ("kill", "stop"):
            if not r.stopped_by_user:
                out.append(self._log(key, "stopped_by_user", why=f"{action} not made by the supervisor: left alone",
                                     signal=event.attributes.get("signal")))
            r.stopped_by_user = True
            if r.next_restart_at is not None:
                out.append(self._log(key, "restart_cancelled", why="stopped by the user"))
                self._cancel(r)
            if action == "stop":
                r.status, r.health, r.running_since = "exited", None, None
        elif action == "die":
            r.status, r.health, r.running_since = "exited", None, None
            if r.next_restart_at is not None:
                self._cancel(r)
        elif action == "start":
            if r.stopped_by_user:
                r.stopped_by_user = False
                out.append(self._log(key, "started_by_user"))
            elif r.last_action == "die":
                r.restarts.append({"at": now, "by": "engine"})
                self._prune(r, now)
                out.append(self._log(key, "restarted_by_engine", restarts_in_window=len(r.restarts),
                                     exit_code=event.attributes.get("exitCode")))
                out += self._check_loop(key, r, "the engine keeps restarting it (its process exits)")
            r.status, r.running_since = "running", now
            r.health = "starting" if r.has_health else None
        elif action == "destroy":
            r.container, r.status, r.health, r.running_since = None, None, None, None
            self._cancel(r)
        elif action == "create":
            r.container = event.container
        r.last_action = action
        return out + self.tick()

    def resync(self, observed: Iterable[Observed]) -> list[Decision]:
        """The engine's current view replaces what events would have said while we were away."""
        now = self.clock()
        out: list[Decision] = []
        seen = set()
        for o in observed:
            seen.add(o.key)
            r = self.record(o.key)
            r.container, r.status, r.health = o.container, o.status, o.health
            r.has_health = o.health is not None
            if o.status == "running":
                r.stopped_by_user = False
                r.running_since = o.started_at or r.running_since or now
                if o.health == "unhealthy" and not r.restarting:
                    out += self._need_restart(o.key, r, "unhealthy")
                elif o.health == "healthy" and r.next_restart_at is not None:
                    out.append(self._log(o.key, "restart_cancelled", why="healthy again"))
                    self._cancel(r)
            else:
                r.running_since = None
                if r.next_restart_at is not None:
                    out.append(self._log(o.key, "restart_cancelled", why=f"container is {o.status}: left alone"))
                    self._cancel(r)
        for key, r in self.records.items():
            if key not in seen and (r.container or r.next_restart_at is not None):
                r.container, r.status, r.health, r.running_since = None, None, None, None
                self._cancel(r)
        return out + self.tick()

    def tick(self) -> list[Decision]:
        """Restarts that are due, and containers that became stable (backoff and crash-loop reset)."""
        now = self.clock()
        out: list[Decision] = []
        for key, r in self.records.items():
            if r.next_restart_at is not None and now >= r.next_restart_at and not r.restarting:
                reason = r.next_reason or "unhealthy"
                r.next_restart_at, r.next_reason = None, None
                r.restarting = True
                out.append(Decision("restart", key, r.container, reason, fields={"attempt": r.attempt + 1}))
            if self._stable(r, now) and (r.attempt or r.failed):
                out.append(self._log(key, "stable", why=f"stable for {format_duration(self.s.stable_after)}: backoff reset"))
                out += self._clear_failed(key, r, f"stable for {format_duration(self.s.stable_after)}")
                r.attempt = 0
        return out

    def restart_begun(self, key: str, by: str = "supervisor") -> list[Decision]:
        """Our restart of `key` starts now (`by`: supervisor, or dependency: restarted with a dependency, no backoff step)."""
        now = self.clock()
        r = self.record(key)
        r.restarting = True
        r.own_until = math.inf
        r.restart_event_seen = False
        r.restarts.append({"at": now, "by": by})
        if by == "supervisor":
            r.attempt += 1
        r.last_restart_at = now
        return []

    def restart_done(self, key: str, ok: bool, error: str | None = None, dependency_of: str | None = None) -> list[Decision]:
        now = self.clock()
        r = self.record(key)
        r.restarting = False
        r.own_until = now if r.restart_event_seen else now + OWN_GRACE  # events may still be on their way
        out: list[Decision] = []
        if not ok:
            out.append(self._log(key, "restart_failed", level="error", error=error))
            if dependency_of is None:  # no new event will come for it: retry, not sooner than backoff_base
                out += self._need_restart(key, r, "previous restart failed", min_delay=self.s.backoff_base)
            return out + self.tick()
        r.status, r.running_since = "running", now
        r.health = "starting" if r.has_health else None
        service = key.split("#", 1)[0]
        for dependent in self.dependents.get(service, []):
            d = self.record(dependent)
            if d.restarting or d.stopped_by_user or d.failed or d.status not in (None, "running"):
                continue
            d.restarting = True
            out.append(Decision("restart", dependent, d.container, f"dependency {service} restarted", require_unhealthy=False))
        return out

    def restart_skipped(self, key: str, why: str) -> list[Decision]:
        r = self.record(key)
        r.restarting = False
        return [self._log(key, "restart_skipped", why=why)]

    def next_deadline(self) -> float | None:
        """When tick() next has something to do (a due restart, a container becoming stable), if ever."""
        now = self.clock()
        times = []
        for r in self.records.values():
            if r.restarting:
                continue
            if r.next_restart_at is not None:
                times.append(r.next_restart_at)
            if (r.attempt or r.failed) and r.running_since is not None and r.running_since + self.s.stable_after > now:
                times.append(r.running_since + self.s.stable_after)
        return min(times) if times else None

    def dump(self) -> dict[str, dict[str, Any]]:
        return {key: r.to_dict() for key, r in sorted(self.records.items())}

    # -- rules --

    def _need_restart(self, key: str, r: ServiceRecord, reason: str, min_delay: float = 0.0) -> list[Decision]:
        now = self.clock()
        service = key.split("#", 1)[0]
        if service in self.s.ignore_services:
            return [self._log(key, "not_restarting", why="listed in ignore_services")]
        if r.failed:
            return [self._log(key, "not_restarting", why="crash loop: the supervisor gave up on it", level="warning")]
        if r.next_restart_at is not None or r.restarting:
            return []
        self._prune(r, now)
        out = self._check_loop(key, r, f"{reason} again after {len(r.restarts)} restarts")
        if r.failed:
            return out
        delay = max(self.s.backoff(r.attempt), min_delay)
        r.next_restart_at, r.next_reason = now + delay, reason
        out.append(self._log(key, "restart_scheduled", reason=reason, delay=delay, attempt=r.attempt + 1))
        return out

    def _check_loop(self, key: str, r: ServiceRecord, why: str) -> list[Decision]:
        if r.failed or len(r.restarts) < self.s.crash_loop_restarts:
            return []
        now = self.clock()
        r.failed, r.failed_at = True, now
        self._cancel(r)
        window = format_duration(self.s.crash_loop_window)
        by = collections.Counter(item["by"] for item in r.restarts)
        summary = (f"{key}: crash loop, {len(r.restarts)} restarts within {window} ({why}); "
                   "the supervisor stopped restarting it")
        alert = self.alerts.open(f"crash_loop:{key}", "crash_loop", "critical", summary, key,
                                 {"restarts": len(r.restarts), "window_seconds": self.s.crash_loop_window, "by": dict(by),
                                  "container": r.container})
        out = [self._log(key, "crash_loop", level="error", restarts=len(r.restarts), by=dict(by))]
        if alert:
            out.append(Decision("alert", key, alert=alert))
        return out

    def _clear_failed(self, key: str, r: ServiceRecord, why: str) -> list[Decision]:
        out: list[Decision] = []
        if r.failed:
            r.failed, r.failed_at = False, None
            r.restarts = []
            resolved = self.alerts.resolve(f"crash_loop:{key}", f"{key}: no longer crash-looping ({why})")
            out.append(self._log(key, "crash_loop_cleared", why=why))
            if resolved:
                out.append(Decision("alert", key, alert=resolved))
        r.attempt = 0
        return out

    def _stable(self, r: ServiceRecord, now: float) -> bool:
        if r.status != "running" or r.running_since is None or r.restarting:
            return False
        if r.has_health and r.health != "healthy":
            return False
        return now - r.running_since >= self.s.stable_after

    def _prune(self, r: ServiceRecord, now: float) -> None:
        r.restarts = [item for item in r.restarts if now - item["at"] < self.s.crash_loop_window]

    @staticmethod
    def _cancel(r: ServiceRecord) -> None:
        r.next_restart_at, r.next_reason = None, None

    @staticmethod
    def _log(key: str, event: str, level: str = "info", **fields: Any) -> Decision:
        return Decision("log", key, level=level, event=event, fields={k: v for k, v in fields.items() if v is not None})
