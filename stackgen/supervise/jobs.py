"""The slow work, off the main loop: each job a small object with one method, run in a thread.

Why objects in a registry: the main loop asks for a job by name (`JOBS[name]`), a new job is one
class and one entry, and nothing is looked up by building method names. A job only does the work
and returns its result (or raises); what the result means (state, alerts, the next run) is
decided on the main loop (outcomes.py), because only the main loop touches the state.

* `JobRunner`: one thread runs the scheduled jobs (renewal, certificate check, live verify,
  backup) one at a time and posts ("job_done", name, result, info) to the main loop's queue.
* `Restart`: one thread per restart (restarts must not wait behind a backup); it posts
  restart_begun / restart_done / restart_skipped.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from stackgen import engine as engines
from stackgen.supervise.config import Settings
from stackgen.supervise.drift import live_findings_in_child
from stackgen.supervise.policy import Decision
from stackgen.supervise.target import Target


@dataclass
class JobContext:
    """What a job may use: read-only facts, and the engine client of the moment (None while disconnected)."""

    target: Target
    settings: Settings
    stop_event: threading.Event
    client: Callable[[], Any]
    findings: Callable[..., list] | None = None  # tests: live findings without a child process

    @property
    def directory(self) -> Path:
        return self.target.directory

    @property
    def project(self) -> str:
        return self.target.project

    def engine(self) -> Any:
        client = self.client()
        if client is None:
            raise RuntimeError("engine not connected")
        return client


class Job(Protocol):
    name: ClassVar[str]

    def run(self, ctx: JobContext, **kwargs: Any) -> Any: ...


class Renewal:
    """The sidecar's renewal, checked end to end (stackgen.operate.renewal)."""

    name = "renewal"

    def run(self, ctx: JobContext, force: bool = False) -> Any:
        from stackgen.operate import renewal

        client = ctx.engine()
        return renewal.renew(client, ctx.target.stack, ctx.project, force=force, reload_wait=ctx.settings.reload_wait,
                             timeout=ctx.settings.renew_timeout, stop=ctx.stop_event)


class CertCheck:
    """The certificate the edge serves (a TLS probe)."""

    name = "cert_check"

    def run(self, ctx: JobContext) -> Any:
        from stackgen.operate import renewal

        client = ctx.engine()
        return renewal.served_certificate(client, ctx.target.stack, ctx.project)


class Verify:
    """The drift watch: live verification with cheap probes, in a child process (drift.py)."""

    name = "verify"

    def run(self, ctx: JobContext) -> Any:
        client = ctx.engine()
        if ctx.findings is not None:
            return ctx.findings(client, ctx.directory, probes="cheap")
        return live_findings_in_child(ctx.directory, "cheap")


class Backup:
    """One backup archive, then the oldest beyond `backup_keep` removed."""

    name = "backup"

    def run(self, ctx: JobContext) -> dict[str, Any]:
        from stackgen.operate import backup

        client = ctx.engine()
        s = ctx.settings
        out_dir = s.backup_dir or (ctx.directory / backup.BACKUP_DIR)
        result = backup.create(client, ctx.directory, output_dir=out_dir, include_keys=s.backup_include_keys)
        removed = backup.prune(out_dir, ctx.project, s.backup_keep)
        return {"archive": str(result.path), "bytes": result.size, "files": result.files, "removed": [str(p) for p in removed]}


JOBS: dict[str, Job] = {job.name: job for job in (Renewal(), CertCheck(), Verify(), Backup())}


class JobRunner:
    """One thread, one job at a time; a job already queued or running is not queued again."""

    def __init__(self, ctx: JobContext, post: Callable[[tuple], None], jobs: dict[str, Job] = JOBS) -> None:
        self.ctx = ctx
        self.post = post
        self.jobs = jobs
        self.pending: set[str] = set()  # touched by the main loop only (submit, done)
        self._queue: queue.Queue[tuple[str, dict] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="stackgen-jobs", daemon=True)
        self._thread.start()

    def submit(self, name: str, kwargs: dict[str, Any]) -> None:
        if name in self.pending:
            return
        self.pending.add(name)
        self._queue.put((name, kwargs))

    def done(self, name: str) -> None:
        self.pending.discard(name)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self.ctx.stop_event.is_set():
                return
            name, kwargs = item
            started = time.monotonic()
            try:
                result = self.jobs[name].run(self.ctx, **kwargs)
                error = None
            except Exception as exc:  # noqa: BLE001 - a job must never kill the supervisor
                result, error = None, f"{exc.__class__.__name__}: {exc}"[:500]
            self.post(("job_done", name, result, {"error": error, "seconds": round(time.monotonic() - started, 2), **kwargs}))


class Restart:
    """One restart the policy decided, checked against the container as it is now, in its own thread."""

    def __init__(self, client: Any, decision: Decision, project: str, stop_timeout: float, post: Callable[[tuple], None]) -> None:
        self.client = client
        self.decision = decision
        self.project = project
        self.stop_timeout = stop_timeout
        self.post = post

    def run(self) -> None:
        decision = self.decision
        key = decision.key
        dependency_of = None if decision.require_unhealthy else decision.reason
        by = "supervisor" if dependency_of is None else "dependency"
        try:
            container = self._container(key, decision.container)
            if container is None:
                self.post(("restart_skipped", key, "container no longer exists"))
                return
            state = container.attrs.get("State") or {}
            health = (state.get("Health") or {}).get("Status")
            if not state.get("Running") or state.get("Paused"):
                self.post(("restart_skipped", key, f"container is {state.get('Status')}: left alone"))
                return
            if decision.require_unhealthy and health != "unhealthy":
                self.post(("restart_skipped", key, f"container is {health or 'without healthcheck'} now"))
                return
            self.post(("restart_begun", key, by))
            started = time.monotonic()
            container.restart(timeout=int(math.ceil(self.stop_timeout)))
            self.post(("restart_done", key, True, None, time.monotonic() - started, dependency_of))
        except Exception as exc:  # noqa: BLE001 - the engine refused or went away
            # Counted as a restart only if the engine was asked to restart it.
            self.post(("restart_done", key, False, f"{exc.__class__.__name__}: {exc}"[:300], 0.0, dependency_of))

    def _container(self, key: str, container_id: str | None) -> Any:
        if container_id:
            try:
                return self.client.containers.get(container_id)
            except engines.NotFound:
                pass
        service, _, number = key.partition("#")
        found = self.client.containers.list(all=True, ignore_removed=True, filters=engines.label_filter(self.project, service=service, number=number or "1"))
        return found[0] if found else None
