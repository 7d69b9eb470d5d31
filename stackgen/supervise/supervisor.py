"""`stackgen supervise`: the long-running watcher, from the host, where the engine already is.

Why from the host: a healer inside a container needs the Docker socket, which
is root on the host for whoever compromises that container. stackgen's
security model gives no container the socket, so the supervisor runs beside
the engine (in the foreground, or as a systemd unit) and talks to it the
same way `stackgen up` does.

Shape (this module is the main loop that wires the others):

    engine events ──► EventReader thread ──┐                       (events.py)
    Restart threads (one per restart) ─────┼─► queue ──► main loop ──► HealPolicy (pure) ──► decisions   (policy.py)
    JobRunner thread (renewal, cert check, │                │
      live verify, backup; one at a time) ─┘                ├──► Outcomes: job results, schedule       (jobs.py, outcomes.py)
                                                            └──► alerts (JSON lines + webhook), state file

* Events, not polling (events.py): a restart starts within milliseconds and an idle
  supervisor does nothing; after an outage the reader reconnects with backoff and the main
  loop resynchronises from the containers' current state (events missed are never replayed).
* Who heals depends on where the stack runs (watch.py, chosen once): on compose the supervisor
  restarts unhealthy containers (HealPolicy); on a swarm, Swarm restarts and replaces tasks, so
  the supervisor only watches them (TaskPolicy, tasks.py: task lists read by a poller thread,
  crash loops and services without a task alerted) and never restarts anything. The jobs,
  alerts, state and `status` are one code path for both.
* `HealPolicy` (policy.py) is pure (events and a clock in, decisions out): the backoff,
  crash-loop and stopped-by-user rules are unit-tested without an engine.
* Only the main loop touches the policy and the state; everything slow (restarts, renewals,
  verifications, backups) runs in threads that report back through the one queue.
* The drift check runs in a child process (drift.py), so this long-lived process stays small.
"""

from __future__ import annotations

import collections
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stackgen.supervise.alerts import Alert, AlertBook, Dispatcher, JsonLog, read_token
from stackgen.supervise.config import Settings
from stackgen.supervise.events import EventReader, TaskPoller, close_quietly
from stackgen.supervise.jobs import JobContext, JobRunner, Restart
from stackgen.supervise.outcomes import Outcomes
from stackgen.supervise.policy import Decision, ServiceRecord
from stackgen.supervise.state import StateStore
from stackgen.supervise.target import Target, load_target
from stackgen.supervise.watch import watch_for

__all__ = ["IDLE_WAKE", "Supervisor", "Target", "load_target", "run_foreground", "state_summary"]

IDLE_WAKE = 5.0  # the main loop sleeps at most this long when nothing is due (events and stop() wake it at once)


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
        self.watch = watch_for(self.target, self.settings, self.book, self.store.data["services"], clock)
        self.policy = self.watch.policy  # HealPolicy (compose) or TaskPolicy (swarm): only the main loop touches it
        self._connect = connect or self._default_connect
        self.queue: queue.Queue[tuple] = queue.Queue()
        self.stop_event = threading.Event()
        self.client = None
        self.connected = False
        self.disconnected_since: float | None = None
        self.outcomes = Outcomes(self.store, self.book, self.settings, self.target, self._note, self._send)
        self.jobs = JobRunner(JobContext(self.target, self.settings, self.stop_event, lambda: self.client, findings), self.queue.put)
        self._restart_threads: list[threading.Thread] = []
        self._readers: list[EventReader] = []
        self._poller: TaskPoller | None = None
        self.started = threading.Event()
        self.resynced = threading.Event()

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
                   target="swarm" if self.target.swarm else "compose", heals=self.watch.heals,
                   settings=self.settings.model_dump(mode="json", exclude={"webhook_token_file"}))
        self.disconnected_since = self.clock()
        self._readers = [EventReader(self._connect, filters, self.queue.put, self.stop_event, self.settings.reconnect_max,
                                     announce=i == 0) for i, filters in enumerate(self.watch.filters())]
        for reader in self._readers:
            reader.start()
        if self.watch.poll is not None:
            self._poller = TaskPoller(self.watch.snapshot, lambda: self.client if self.connected else None, self.queue.put,
                                      self.stop_event, self.watch.poll)
            self._poller.start()
        self.jobs.start()
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
        jobs = self.outcomes.next_time() if self.connected else None  # jobs wait for the engine
        deadlines = [d for d in (self.policy.next_deadline(), jobs) if d is not None]
        wait = min(deadlines) - now if deadlines else IDLE_WAKE
        return max(0.01, min(wait, IDLE_WAKE))

    def _shutdown(self) -> None:
        self.stop_event.set()
        for reader in self._readers:
            reader.close()
        for reader in self._readers:
            reader.join(5)
        if self._poller is not None:
            self._poller.poke()
            self._poller.join(5)
        self.jobs.stop(5)
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
        close_quietly(self.client)

    def _save(self) -> None:
        self.store.data["services"] = self.policy.dump()
        self.store.save(stamp=self.clock())

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "event":
            event = self.watch.parse(item[1])
            if event is not None:
                self._apply(self.policy.observe(event))
                if self._poller is not None:  # what Swarm made of it shows in the task lists
                    self._poller.poke()
        elif kind == "snapshot":
            if self.connected:
                self._apply(self.policy.resync(item[1]))
        elif kind == "snapshot_failed":
            self._note("warning", "resync_failed", error=item[1])
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
            self.jobs.submit(item[1], item[2])
        elif kind == "job_done":
            self._job_done(item[1], item[2], item[3])

    def _on_connected(self, client) -> None:
        old, self.client = self.client, client
        close_quietly(old)
        was_down = self.disconnected_since
        self.connected, self.disconnected_since = True, None
        try:
            observed = self.watch.snapshot(client)
        except Exception as exc:  # noqa: BLE001 - gone again (the reader will report it), or no manager
            self._note("warning", "resync_failed", error=f"{exc.__class__.__name__}: {exc}")
            return
        self._note("info", "engine_connected", **{self.watch.unit: len(observed)},
                   after_seconds=round(self.clock() - was_down, 1) if was_down else None)
        self._send(self.book.resolve("engine_unreachable", "the engine answers again"))
        self._apply(self.policy.resync(observed))
        self._note("info", "resynced", services=self.watch.summary(observed))
        self.resynced.set()

    def _on_disconnected(self, reason: str) -> None:
        if self.connected:
            self._note("warning", "engine_disconnected", reason=reason)
            self.disconnected_since = self.clock()
        self.connected = False
        self.resynced.clear()
        old, self.client = self.client, None  # nothing is attempted against a gone engine; resync decides again
        close_quietly(old)

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
        if not self.watch.heals:  # TaskPolicy never decides one; should a restart ever reach here, Swarm heals
            self._note("error", "restart_refused", service=decision.key, why="Swarm heals this stack's tasks")
            return
        client = self.client
        if client is None:  # the resynchronisation after reconnecting decides again
            self._apply(self.policy.restart_skipped(decision.key, "engine not connected"))
            return
        self._note("info", "restart", service=decision.key, reason=decision.reason, **decision.fields)
        restart = Restart(client, decision, self.project, self.settings.stop_timeout, self.queue.put)
        thread = threading.Thread(target=restart.run, name=f"stackgen-restart-{decision.key}", daemon=True)
        self._restart_threads = [t for t in self._restart_threads if t.is_alive()] + [thread]
        thread.start()

    # -- jobs: renewal, certificate check, live verify, backup --

    @property
    def _jobs_pending(self) -> set[str]:
        return self.jobs.pending

    def _init_schedule(self) -> None:
        self.outcomes.init_schedule(self.clock())

    def _schedule_jobs(self) -> None:
        if not self.connected:
            return
        for job in self.outcomes.due(self.clock()):
            self.jobs.submit(job, {})  # (a no-op if the same job is already queued or running)

    def _job_done(self, job: str, result: Any, info: dict[str, Any]) -> None:
        self.jobs.done(job)
        release_memory()
        self.outcomes.record(job, result, info, self.clock())


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
