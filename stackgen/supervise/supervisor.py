"""`stackgen supervise`: the long-running watcher, from the host, where the engine already is.

Why from the host: a healer inside a container needs the Docker socket, which
is root on the host for whoever compromises that container. stackgen's
security model gives no container the socket, so the supervisor runs beside
the engine (in the foreground, or as a systemd unit) and talks to it the
same way `stackgen up` does.

Shape:

    engine events ──► EventReader thread ──┐
    restart threads (one per restart) ─────┼─► queue ──► main loop ──► HealPolicy (pure) ──► decisions
    job thread (renewal, cert check,       │                │
      live verify, backup; one at a time) ─┘                └──► alerts (JSON lines + webhook), state file

* Events, not polling: the engine pushes `health_status: unhealthy` and the
  lifecycle events of the project's containers (label filter), so a restart
  starts within milliseconds and an idle supervisor does nothing.
* `HealPolicy` is a pure class (events and a clock in, decisions out): the
  backoff, crash-loop and stopped-by-user rules are unit-tested without an engine.
* Only the main loop touches the policy and the state; everything slow
  (restarts, renewals, verifications, backups) runs in threads that report
  back through the queue.
* When the engine goes away, the reader reconnects with backoff and the main
  loop resynchronises from the current state of the containers; events that
  happened while disconnected are never replayed.
"""

from __future__ import annotations

import collections
import math
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stackgen.supervise.alerts import Alert, AlertBook, Dispatcher, JsonLog, read_token
from stackgen.engine import parse_time
from stackgen.supervise.config import Settings, format_duration
from stackgen.supervise.state import StateStore

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
WATCHED_ACTIONS = ["health_status", "create", "start", "restart", "kill", "die", "stop", "destroy"]
IDLE_WAKE = 5.0  # the main loop sleeps at most this long when nothing is due (events and stop() wake it at once)
OWN_GRACE = 5.0  # seconds after our restart returns during which its lagging events are still ours
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}


# --- the pure policy ----------------------------------------------------------


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
        if not service or attributes.get(ONEOFF_LABEL) == "True":
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
        if not service or labels.get(ONEOFF_LABEL) == "True":
            return None
        state = attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        return cls(unit_key(service, labels.get(NUMBER_LABEL)), service, attrs.get("Id", ""), state.get("Status", "exited"), health,
                   parse_time(state.get("StartedAt")))


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


def dependents_from_compose(document: dict[str, Any] | None) -> dict[str, list[str]]:
    """{dependency: [services restarted with it]} from compose's `depends_on: {X: {restart: true}}`."""
    found: dict[str, list[str]] = {}
    for name, service in ((document or {}).get("services") or {}).items():
        depends = (service or {}).get("depends_on") or {}
        if isinstance(depends, dict):
            for dependency, options in depends.items():
                if isinstance(options, dict) and options.get("restart") is True:
                    found.setdefault(dependency, []).append(name)
    return found


# --- the target: a stack directory (or a plain compose project) -------------------


@dataclass
class Target:
    directory: Path
    project: str
    document: dict[str, Any] | None
    stack: Any = None  # stackgen.spec.Stack when DIR holds stack.yaml

    @property
    def is_stack(self) -> bool:
        return self.stack is not None


def load_target(directory: Path, project: str | None = None) -> Target:
    """`DIR/stack.yaml` (a stackgen stack: everything is supervised) or just `DIR/compose.yaml` (healing only)."""
    from ruamel.yaml import YAML

    from stackgen.errors import StackgenError
    from stackgen.stackdir import SPEC_NAME, load_stack

    directory = directory.resolve()
    document = None
    compose_file = directory / "compose.yaml"
    if compose_file.is_file():
        try:
            document = YAML(typ="safe").load(compose_file.read_text())
        except Exception as exc:  # noqa: BLE001 - any YAML problem
            raise StackgenError(f"{compose_file}: not valid YAML ({exc.__class__.__name__})") from None
    if (directory / SPEC_NAME).is_file():
        stack = load_stack(directory)
        return Target(directory, project or stack.project, document, stack)
    if document is None:
        raise StackgenError(f"{directory}: neither stack.yaml nor compose.yaml found")
    name = project or (document or {}).get("name")
    if not name:
        raise StackgenError(f"{compose_file}: no top-level `name:`; give the compose project with --project")
    return Target(directory, str(name), document)


# --- the event reader ---------------------------------------------------------------


class EventReader(threading.Thread):
    """Follows the engine's event stream for the project; reconnects with backoff; reports to the queue.

    Posts ("connected", client) once the stream is open (the client is for the main loop's own
    calls), ("event", dict) for each event, ("disconnected", reason) when the stream ends.
    """

    def __init__(self, connect: Callable[[], Any], project: str, post: Callable[[tuple], None], stop: threading.Event,
                 reconnect_max: float = 30.0) -> None:
        super().__init__(name="stackgen-events", daemon=True)
        self.connect = connect
        self.project = project
        self.post = post
        self.stop_event = stop
        self.reconnect_max = reconnect_max
        self._stream = None
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = 0.5
        while not self.stop_event.is_set():
            events_client = actions_client = None
            try:
                events_client = self.connect()
                stream = events_client.events(
                    decode=True,
                    filters={"type": "container", "label": [f"{PROJECT_LABEL}={self.project}"], "event": WATCHED_ACTIONS},
                )
                actions_client = self.connect()
            except Exception as exc:  # noqa: BLE001 - engine absent, refusing, restarting
                _close(events_client)
                self.post(("disconnected", f"{exc.__class__.__name__}: {exc}".strip()[:300]))
                self.stop_event.wait(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            with self._lock:
                self._stream = stream
            delay = 0.5
            self.post(("connected", actions_client))
            reason = "event stream ended"
            try:
                for event in stream:
                    if self.stop_event.is_set():
                        break
                    self.post(("event", event))
            except Exception as exc:  # noqa: BLE001 - the connection dropped
                reason = f"{exc.__class__.__name__}: {exc}"[:300]
            finally:
                with self._lock:
                    self._stream = None
                _close_stream(stream)
                _close(events_client)
            if not self.stop_event.is_set():
                self.post(("disconnected", reason))
                self.stop_event.wait(0.2)

    def close(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            _close_stream(stream)


def _close_stream(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - closing a dead stream
        pass


def _close(client: Any) -> None:
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass


# --- the supervisor ----------------------------------------------------------------


class Supervisor:
    """Runs the policy against the engine, schedules the certificate, verify and backup jobs, raises alerts."""

    def __init__(
        self,
        directory: Path,
        settings: Settings | None = None,
        *,
        project: str | None = None,
        connect: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.time,
        log_stream=None,
        findings: Callable[..., list] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.target = load_target(directory, project)
        self.directory = self.target.directory
        self.project = self.target.project
        self.clock = clock
        self.store = StateStore(self.directory)
        self.store.data["project"] = self.project
        self.log = JsonLog(self.store.log_path, log_stream, clock)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        self.book = AlertBook(self.store.data["alerts"], clock)
        token = read_token(self.settings.webhook_token_file)
        self.dispatcher = Dispatcher(self.log, self.project, self.settings.webhook_url, self.settings.webhook_format, token,
                                     self.settings.webhook_retries, self.settings.webhook_timeout)
        self.policy = HealPolicy(self.settings, self.book, dependents_from_compose(self.target.document),
                                 self.store.data["services"], clock)
        self._connect = connect or self._default_connect
        self._findings = findings
        self.queue: queue.Queue[tuple] = queue.Queue()
        self.stop_event = threading.Event()
        self.client = None
        self.connected = False
        self.disconnected_since: float | None = None
        self._jobs: queue.Queue[tuple[str, dict] | None] = queue.Queue()
        self._jobs_pending: set[str] = set()
        self._job_thread: threading.Thread | None = None
        self._restart_threads: list[threading.Thread] = []
        self._reader: EventReader | None = None
        self.started = threading.Event()
        self.resynced = threading.Event()
        self._drift_unavailable_logged = False

    # -- plumbing --

    def _default_connect(self):
        from stackgen import engine as engines

        return engines.client(timeout=int(max(120, self.settings.renew_timeout + 60)))

    def _note(self, level: str, event: str, **fields: Any) -> None:
        record = self.log.write(level, event, project=self.project, **fields)
        self.recent.append(record)

    def request(self, job: str, **kwargs: Any) -> None:
        """Run a job now (thread-safe): renewal (force=True/False), cert_check, verify, backup."""
        self.queue.put(("request", job, kwargs))

    def stop(self) -> None:
        """Ask the main loop to finish (safe from a signal handler: the wake-up is posted by a helper thread)."""
        self.stop_event.set()
        threading.Thread(target=self.queue.put, args=(("wake",),), daemon=True).start()

    def events_named(self, name: str) -> list[dict[str, Any]]:
        return [r for r in list(self.recent) if r.get("event") == name]

    # -- main loop --

    def run(self) -> None:
        """Until stop(): follow events, heal, run jobs. Saves the state on every change and at exit."""
        self.store.acquire()
        limit_malloc_arenas()
        if self.store.warning:
            self._note("warning", "state_reset", why=self.store.warning)
        self.store.data["supervisor"] = {"pid": _pid(), "started": self.clock(), "host": _host()}
        self._init_schedule()
        self.store.save(force=True)
        self._note("info", "supervisor_started", directory=str(self.directory), stack=self.target.is_stack,
                   settings=self.settings.model_dump(mode="json", exclude={"webhook_token_file"}))
        self.disconnected_since = self.clock()
        self._reader = EventReader(self._connect, self.project, self.queue.put, self.stop_event, self.settings.reconnect_max)
        self._reader.start()
        self._job_thread = threading.Thread(target=self._job_loop, name="stackgen-jobs", daemon=True)
        self._job_thread.start()
        self.started.set()
        try:
            while not self.stop_event.is_set():
                try:
                    item = self.queue.get(timeout=self._wait_time())
                except queue.Empty:
                    item = None
                while item is not None:
                    self._handle(item)
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        item = None
                self._apply(self.policy.tick())
                self._schedule_jobs()
                self._check_engine_outage()
                self._save()
        finally:
            self._shutdown()

    def _wait_time(self) -> float:
        now = self.clock()
        jobs = self._next_job_time() if self.connected else None  # jobs wait for the engine
        deadlines = [d for d in (self.policy.next_deadline(), jobs) if d is not None]
        wait = min(deadlines) - now if deadlines else IDLE_WAKE
        return max(0.01, min(wait, IDLE_WAKE))

    def _shutdown(self) -> None:
        self.stop_event.set()
        if self._reader is not None:
            self._reader.close()
            self._reader.join(5)
        self._jobs.put(None)
        if self._job_thread is not None:
            self._job_thread.join(5)
        for thread in self._restart_threads:
            thread.join(max(5.0, self.settings.stop_timeout + 5))
        while True:  # outcomes of restarts that finished meanwhile still count
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item[0] in ("restart_begun", "restart_done", "restart_skipped"):
                self._handle(item)
        self.dispatcher.close(5.0)
        self._note("info", "supervisor_stopped")
        self._save()
        self.store.release()
        _close(self.client)

    def _save(self) -> None:
        self.store.data["services"] = self.policy.dump()
        self.store.save(stamp=self.clock())

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "event":
            event = ContainerEvent.from_engine(item[1])
            if event is not None:
                self._apply(self.policy.observe(event))
        elif kind == "connected":
            self._on_connected(item[1])
        elif kind == "disconnected":
            self._on_disconnected(item[1])
        elif kind == "restart_begun":
            self._apply(self.policy.restart_begun(item[1], item[2]))
        elif kind == "restart_done":
            _, key, ok, error, seconds, dependency_of = item
            if ok:
                self._note("info", "restarted", service=key, seconds=round(seconds, 2))
            self._apply(self.policy.restart_done(key, ok, error, dependency_of))
        elif kind == "restart_skipped":
            self._apply(self.policy.restart_skipped(item[1], item[2]))
        elif kind == "request":
            self._submit(item[1], item[2])
        elif kind == "job_done":
            self._job_done(item[1], item[2], item[3])

    def _on_connected(self, client) -> None:
        old, self.client = self.client, client
        _close(old)
        was_down = self.disconnected_since
        self.connected, self.disconnected_since = True, None
        try:
            containers = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={self.project}"})
            observed = [o for o in (Observed.from_attrs(c.attrs) for c in containers) if o is not None]
        except Exception as exc:  # noqa: BLE001 - gone again: the reader will report it
            self._note("warning", "resync_failed", error=f"{exc.__class__.__name__}: {exc}")
            return
        self._note("info", "engine_connected", containers=len(observed),
                   after_seconds=round(self.clock() - was_down, 1) if was_down else None)
        self._send(self.book.resolve("engine_unreachable", "the engine answers again"))
        self._apply(self.policy.resync(observed))
        self._note("info", "resynced", services={o.key: f"{o.status}/{o.health or '-'}" for o in observed})
        self.resynced.set()

    def _on_disconnected(self, reason: str) -> None:
        if self.connected:
            self._note("warning", "engine_disconnected", reason=reason)
            self.disconnected_since = self.clock()
        self.connected = False
        self.resynced.clear()
        old, self.client = self.client, None  # nothing is attempted against a gone engine; resync decides again
        _close(old)

    def _check_engine_outage(self) -> None:
        if self.connected or self.disconnected_since is None:
            return
        down = self.clock() - self.disconnected_since
        if down >= self.settings.engine_alert_after and not self.book.is_open("engine_unreachable"):
            self._send(self.book.open("engine_unreachable", "engine_unreachable", "critical",
                                      f"the Docker engine has not answered for {down:.0f}s: nothing is supervised",
                                      details={"seconds": round(down)}))

    def _apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if d.kind == "log":
                self._note(d.level, d.event, service=d.key, **d.fields)
            elif d.kind == "alert":
                self._send(d.alert)
            elif d.kind == "restart":
                self._start_restart(d)

    def _send(self, alert: Alert | None) -> None:
        if alert is not None:
            self.dispatcher.send(alert)
            self.recent.append({"event": "alert", "alert": alert.body(self.project)})

    # -- restarts --

    def _start_restart(self, decision: Decision) -> None:
        client = self.client
        if client is None:  # the resynchronisation after reconnecting decides again
            self._apply(self.policy.restart_skipped(decision.key, "engine not connected"))
            return
        self._note("info", "restart", service=decision.key, reason=decision.reason, **decision.fields)
        thread = threading.Thread(target=self._restart, args=(client, decision), name=f"stackgen-restart-{decision.key}", daemon=True)
        self._restart_threads = [t for t in self._restart_threads if t.is_alive()] + [thread]
        thread.start()

    def _restart(self, client, decision: Decision) -> None:
        key = decision.key
        dependency_of = None if decision.require_unhealthy else decision.reason
        by = "supervisor" if dependency_of is None else "dependency"
        try:
            container = self._container(client, key, decision.container)
            if container is None:
                self.queue.put(("restart_skipped", key, "container no longer exists"))
                return
            state = container.attrs.get("State") or {}
            health = (state.get("Health") or {}).get("Status")
            if not state.get("Running") or state.get("Paused"):
                self.queue.put(("restart_skipped", key, f"container is {state.get('Status')}: left alone"))
                return
            if decision.require_unhealthy and health != "unhealthy":
                self.queue.put(("restart_skipped", key, f"container is {health or 'without healthcheck'} now"))
                return
            self.queue.put(("restart_begun", key, by))
            started = time.monotonic()
            container.restart(timeout=int(math.ceil(self.settings.stop_timeout)))
            self.queue.put(("restart_done", key, True, None, time.monotonic() - started, dependency_of))
        except Exception as exc:  # noqa: BLE001 - the engine refused or went away
            # Counted as a restart only if the engine was asked to restart it.
            self.queue.put(("restart_done", key, False, f"{exc.__class__.__name__}: {exc}"[:300], 0.0, dependency_of))

    def _container(self, client, key: str, container_id: str | None):
        from docker.errors import NotFound

        if container_id:
            try:
                return client.containers.get(container_id)
            except NotFound:
                pass
        service, _, number = key.partition("#")
        labels = [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}", f"{NUMBER_LABEL}={number or '1'}"]
        found = client.containers.list(all=True, filters={"label": labels})
        return found[0] if found else None

    # -- jobs: renewal, certificate check, live verify, backup --

    def _init_schedule(self) -> None:
        now = self.clock()
        data = self.store.data
        s = self.settings
        stack = self.target.is_stack
        if stack and s.renew and self._has_sidecar():
            if data["renewal"].get("next_at") is None:
                data["renewal"]["next_at"] = now + random.uniform(0, s.renew_jitter) + 30
        else:
            data["renewal"].pop("next_at", None)
        if stack:
            data["certificate"]["next_at"] = now + 5
        if stack and s.verify_interval > 0:
            data["verify"]["next_at"] = now + 10
        else:
            data["verify"].pop("next_at", None)
        if stack and s.backup_interval > 0 and data["backup"].get("next_at") is None:
            last = data["backup"].get("last_run")
            data["backup"]["next_at"] = (last + s.backup_interval) if last else now + 60
        elif s.backup_interval <= 0:
            data["backup"].pop("next_at", None)

    def _has_sidecar(self) -> bool:
        return bool(self.target.stack is not None and self.target.stack.tls.uses_sidecar)

    def _next_job_time(self) -> float | None:
        times = [self.store.data[name].get("next_at") for name in ("renewal", "certificate", "verify", "backup")]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def _schedule_jobs(self) -> None:
        if not self.connected:
            return
        now = self.clock()
        for job, section in (("renewal", "renewal"), ("cert_check", "certificate"), ("verify", "verify"), ("backup", "backup")):
            due = self.store.data[section].get("next_at")
            if due is not None and now >= due:
                self.store.data[section]["next_at"] = None  # set again when the job is done
                self._submit(job, {})  # (a no-op if the same job is already queued or running)

    def _submit(self, job: str, kwargs: dict[str, Any]) -> None:
        if job in self._jobs_pending:
            return
        self._jobs_pending.add(job)
        self._jobs.put((job, kwargs))

    def _job_loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None or self.stop_event.is_set():
                return
            job, kwargs = item
            started = time.monotonic()
            try:
                result = getattr(self, f"_job_{job}")(**kwargs)
                error = None
            except Exception as exc:  # noqa: BLE001 - a job must never kill the supervisor
                result, error = None, f"{exc.__class__.__name__}: {exc}"[:500]
            self.queue.put(("job_done", job, result, {"error": error, "seconds": round(time.monotonic() - started, 2), **kwargs}))

    def _job_renewal(self, force: bool = False):
        from stackgen.operate import renewal

        if self.client is None:
            raise RuntimeError("engine not connected")
        return renewal.renew(self.client, self.target.stack, self.project, force=force, reload_wait=self.settings.reload_wait,
                             timeout=self.settings.renew_timeout, stop=self.stop_event)

    def _job_cert_check(self):
        from stackgen.operate import renewal

        if self.client is None:
            raise RuntimeError("engine not connected")
        return renewal.served_certificate(self.client, self.target.stack, self.project)

    def _job_verify(self):
        if self.client is None:
            raise RuntimeError("engine not connected")
        if self._findings is not None:
            return self._findings(self.client, self.directory, probes="cheap")
        return live_findings_in_child(self.directory, "cheap")

    def _job_backup(self):
        from stackgen.operate import backup

        if self.client is None:
            raise RuntimeError("engine not connected")
        out_dir = self.settings.backup_dir or (self.directory / backup.BACKUP_DIR)
        result = backup.create(self.client, self.directory, output_dir=out_dir, include_keys=self.settings.backup_include_keys)
        removed = backup.prune(out_dir, self.project, self.settings.backup_keep)
        return {"archive": str(result.path), "bytes": result.size, "files": result.files, "removed": [str(p) for p in removed]}

    def _job_done(self, job: str, result: Any, info: dict[str, Any]) -> None:
        self._jobs_pending.discard(job)
        release_memory()
        now = self.clock()
        s = self.settings
        error = info.get("error")
        handler = getattr(self, f"_done_{job}")
        handler(result, error, info, now)
        # next runs
        data = self.store.data
        if job == "renewal" and s.renew and self._has_sidecar():
            retry = error is not None or (result is not None and result.status == "busy")
            data["renewal"]["next_at"] = now + (300 if retry else s.renew_interval + random.uniform(0, s.renew_jitter))
        elif job == "cert_check":
            data["certificate"]["next_at"] = now + (60 if error else s.cert_check_interval)
        elif job == "verify" and s.verify_interval > 0 and not data["verify"].get("unavailable"):
            data["verify"]["next_at"] = now + s.verify_interval
        elif job == "backup" and s.backup_interval > 0:
            data["backup"]["next_at"] = now + (min(3600, s.backup_interval) if error else s.backup_interval)

    def _done_renewal(self, outcome, error, info, now) -> None:
        section = self.store.data["renewal"]
        section["last_run"] = now
        if error is not None:
            section.update(last_status="error", last_message=error)
            self._note("error", "renewal_error", error=error)
            self._send(self.book.open("renewal_failed", "renewal_failed", "critical",
                                      f"certificate renewal could not run: {error}", details={"error": error}))
            return
        section.update(last_status=outcome.status, last_message=outcome.message)
        fields = outcome.to_log()
        level = {"failed": "error", "invalid": "error", "reload_failed": "error"}.get(outcome.status, "info")
        self._note(level, "renewal", **fields)
        if outcome.status == "failed":
            self._send(self.book.open("renewal_failed", "renewal_failed", "critical", outcome.message, details=fields))
        elif outcome.status == "invalid":
            self._send(self.book.open("renewal_invalid", "renewal_invalid", "critical", outcome.message, details=fields))
        elif outcome.status == "reload_failed":
            self._send(self.book.open("reload_failed", "reload_failed", "critical", outcome.message, "edge", fields))
        if outcome.status in ("renewed", "not_due"):
            for key in ("renewal_failed", "renewal_invalid", "reload_failed"):
                self._send(self.book.resolve(key, f"certificate renewal works again ({outcome.status})"))
        if outcome.status == "renewed":
            section["last_renewed"] = now
        served = outcome.after or outcome.before
        if served is not None:
            self._done_cert_check(served, None, {}, now)

    def _done_cert_check(self, served, error, info, now) -> None:
        section = self.store.data["certificate"]
        section["checked_at"] = now
        if error is not None:
            failures = section.get("probe_failures", 0) + 1
            section.update(error=error, probe_failures=failures)
            self._note("warning", "certificate_probe_failed", error=error, consecutive=failures)
            if failures >= 2:
                self._send(self.book.open("tls_probe_failed", "tls_probe_failed", "warning",
                                          f"the edge's certificate could not be checked ({failures} times in a row): {error}",
                                          "edge", {"error": error}))
            return
        section.update(serial=served.serial, not_after=served.not_after, error=None, probe_failures=0)
        self._send(self.book.resolve("tls_probe_failed", "the edge's certificate can be checked again"))
        days = (served.not_after - now) / 86400
        self._note("info", "certificate", serial=served.serial, days_left=round(days, 2))
        limit = self.settings.expiry_days
        if days < limit:
            severity = "critical" if days < min(3, limit) else "warning"
            when = "has expired" if days < 0 else f"expires in {days:.1f} days"
            summary = (f"the served certificate (serial {served.serial}) {when} "
                       f"({datetime.fromtimestamp(served.not_after, timezone.utc):%Y-%m-%d %H:%M} UTC); alert threshold {limit:g} days")
            self._send(self.book.open("cert_expiry", "cert_expiry", severity, summary, "edge",
                                      {"serial": served.serial, "not_after": served.not_after, "days_left": round(days, 2)}))
        else:
            self._send(self.book.resolve("cert_expiry", f"the served certificate (serial {served.serial}) is valid for {days:.0f} more days"))

    def _done_verify(self, findings, error, info, now) -> None:
        section = self.store.data["verify"]
        section["last_run"] = now
        if error is not None:
            section["error"] = error
            self._note("warning", "verify_error", error=error)
            return
        if isinstance(findings, dict) and findings.get("unavailable"):
            section.update(unavailable=findings["unavailable"], error=None)
            if not self._drift_unavailable_logged:
                self._note("warning", "drift_watch_unavailable", why=findings["unavailable"])
                self._drift_unavailable_logged = True
            return
        minimum = SEVERITY_RANK[self.settings.drift_min_severity]
        groups: dict[str, dict[str, Any]] = {}
        for f in findings:
            severity = str(getattr(f.severity, "value", f.severity))
            if f.suppressed or SEVERITY_RANK.get(severity, 0) < minimum:
                continue
            groups.setdefault(f.service or "-", {})[finding_id(f)] = f
        active = sorted(fid for items in groups.values() for fid in items)
        section.update(error=None, unavailable=None, findings=len(findings), active=active)
        # One alert per service (a rogue container breaks many rules at once); sent again when it gains a finding.
        for service, items in sorted(groups.items()):
            key = f"drift:{service}"
            listed = [{"id": fid, "rule": f.rule, "severity": str(getattr(f.severity, "value", f.severity)),
                       "message": f.message, "fix": getattr(f, "fix", None)} for fid, f in sorted(items.items())]
            listed.sort(key=lambda item: -SEVERITY_RANK.get(item["severity"], 0))
            worst = listed[0]["severity"]
            who = "the stack" if service == "-" else service
            summary = f"drift on {who}: " + "; ".join(f"{i['rule']} {i['message']}" for i in listed[:3]) + (
                f" (+{len(listed) - 3} more)" if len(listed) > 3 else "")
            previous = set(((self.book.store.get(key) or {}).get("details") or {}).get("ids", []))
            new = sorted(set(items) - previous)
            details = {"ids": sorted(items), "new": new, "findings": listed}
            alert = self.book.open(key, "drift", "critical" if worst in ("critical", "high") else "warning", summary,
                                   None if service == "-" else service, details, renotify=bool(previous) and bool(new))
            self._send(alert)
            gone = sorted(previous - set(items))
            if gone and not alert:
                self._note("info", "drift_partly_cleared", service=service, cleared=gone)
        for key in self.book.keys("drift:"):
            if key.removeprefix("drift:") not in groups:
                self._send(self.book.resolve(key))
        self._note("info", "verify", findings=len(findings), alerting=len(active), seconds=info.get("seconds"))

    def _done_backup(self, result, error, info, now) -> None:
        section = self.store.data["backup"]
        section["last_run"] = now
        if error is not None:
            section["error"] = error
            self._note("error", "backup_failed", error=error)
            self._send(self.book.open("backup_failed", "backup_failed", "warning", f"scheduled backup failed: {error}",
                                      details={"error": error}))
            return
        section.update(error=None, last_archive=result["archive"])
        self._note("info", "backup", **result)
        self._send(self.book.resolve("backup_failed", "scheduled backups work again"))


@dataclass
class DriftFinding:
    """A finding as the drift watch needs it (from stackgen.verify.report.Finding, or its JSON form)."""

    rule: str
    severity: str
    message: str
    service: str | None = None
    fix: str | None = None
    suppressed: bool = False


VERIFY_CHILD = """
import json, sys
from pathlib import Path
try:
    from stackgen.live.checks import live_findings
except ImportError as exc:
    print(json.dumps({"unavailable": f"live verification is not available in this installation ({exc})"}))
    sys.exit(0)
from stackgen import engine as engines
findings = live_findings(engines.client(), Path(sys.argv[1]), probes=sys.argv[2])
print(json.dumps([f.to_dict() for f in findings]))
"""


def live_findings_in_child(directory: Path, probes: str, timeout: float = 600.0):
    """`stackgen.live.checks.live_findings` (issue #5) in a child process.

    Why a child: the live verifier loads every rule, the compose loader and the probes; run every
    few minutes inside a process that lives for months, that is memory held for nothing (and a
    crash of the verifier must not take the healer with it). A child pays ~0.5 s of CPU per run.
    """
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", VERIFY_CHILD, str(directory), probes], capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        raise RuntimeError(f"live verification failed (exit {run.returncode}): {run.stderr.strip()[-400:]}")
    data = json.loads(run.stdout.strip().splitlines()[-1])
    if isinstance(data, dict):
        return data
    return [DriftFinding(d["rule"], d["severity"], d["message"], d.get("service"), d.get("fix"), bool(d.get("suppressed"))) for d in data]


def release_memory() -> None:
    """Give freed heap back to the system (glibc), so a long-lived supervisor stays small after a job."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def limit_malloc_arenas(count: int = 2) -> None:
    """glibc gives each thread its own malloc arena (megabytes each); a handful of mostly idle threads need few."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, count)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def finding_id(finding) -> str:
    """A stable id of one finding: rule, service and a digest of its message."""
    import hashlib

    digest = hashlib.sha256(f"{finding.rule}|{finding.service}|{finding.message}".encode()).hexdigest()[:10]
    return f"{finding.rule}:{finding.service or '-'}:{digest}"


def _pid() -> int:
    import os

    return os.getpid()


def _host() -> str:
    import socket

    return socket.gethostname()


def run_foreground(supervisor: Supervisor) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code (0 on a clean stop)."""

    def on_signal(signum, frame):  # noqa: ARG001
        supervisor.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def state_summary(record: dict[str, Any]) -> dict[str, Any]:
    """Public view of a persisted ServiceRecord (for `status`)."""
    return asdict(ServiceRecord.from_dict(record))
