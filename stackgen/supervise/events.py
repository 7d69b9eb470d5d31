"""The engine's event stream for one stack: connect, reconnect with backoff, resync; and the swarm's task poller.

Why events and not polling: the engine pushes `health_status: unhealthy` and the lifecycle
events of the project's containers (a label filter), so a restart starts within milliseconds
and an idle supervisor does nothing. When the engine goes away the reader reconnects with
backoff; the main loop then resynchronises from the current state (`observe()`: the containers;
on a swarm, the task lists): events that happened while disconnected are never replayed.

Why a poller on a swarm all the same: tasks have no events of their own. A task on another node, a
task rejected before it got a container, a service left without a task are only seen in the task
lists a manager keeps, so `TaskPoller` reads them every `swarm_poll` and soon after each event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from stackgen import engine as engines
from stackgen.supervise.policy import Observed

WATCHED_ACTIONS = ["health_status", "create", "start", "restart", "kill", "die", "stop", "destroy"]


class EventReader(threading.Thread):
    """Follows the engine's event stream (`filters`, the engine's own); reconnects with backoff; reports to the queue.

    Posts ("connected", client) once the stream is open (the client is for the main loop's own
    calls), ("event", dict) for each event, ("disconnected", reason) when the stream ends. A reader
    with `announce=False` posts events alone: a second stream (a swarm's service events) must not
    tell the main loop the engine came or went, the first one does.
    """

    def __init__(self, connect: Callable[[], Any], filters: dict[str, Any], post: Callable[[tuple], None], stop: threading.Event,
                 reconnect_max: float = 30.0, announce: bool = True) -> None:
        super().__init__(name="stackgen-events", daemon=True)
        self.connect = connect
        self.filters = filters
        self.post = post
        self.stop_event = stop
        self.reconnect_max = reconnect_max
        self.announce = announce
        self._stream = None
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = 0.5
        while not self.stop_event.is_set():
            events_client = actions_client = None
            try:
                events_client = self.connect()
                stream = events_client.events(decode=True, filters=self.filters)
                actions_client = self.connect() if self.announce else None
            except Exception as exc:  # noqa: BLE001 - engine absent, refusing, restarting
                close_quietly(events_client)
                self._report(("disconnected", f"{exc.__class__.__name__}: {exc}".strip()[:300]))
                self.stop_event.wait(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            with self._lock:
                self._stream = stream
            delay = 0.5
            self._report(("connected", actions_client))
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
                close_stream(stream)
                close_quietly(events_client)
            if not self.stop_event.is_set():
                self._report(("disconnected", reason))
                self.stop_event.wait(0.2)

    def _report(self, item: tuple) -> None:
        if self.announce:
            self.post(item)

    def close(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            close_stream(stream)


def close_stream(stream: Any) -> None:
    """Close an event stream that may already be dead (closing it is also how a blocked reader is woken)."""
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - closing a dead stream
        pass


def close_quietly(client: Any) -> None:
    """Close an engine client, if any, whatever state its connection is in."""
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass


class TaskPoller(threading.Thread):
    """A swarm stack's task lists, read off the main loop: every `interval`, and `settle` seconds after a `poke()` (an
    event of the stack: by then Swarm has written the task's new state). Posts ("snapshot", data) or
    ("snapshot_failed", error); reads nothing while the main loop has no client (disconnected)."""

    def __init__(self, read: Callable[[Any], Any], client: Callable[[], Any], post: Callable[[tuple], None],
                 stop: threading.Event, interval: float, settle: float = 1.0) -> None:
        super().__init__(name="stackgen-tasks", daemon=True)
        self.read, self.client, self.post = read, client, post
        self.stop_event, self.interval, self.settle = stop, interval, settle
        self._poked = threading.Event()

    def poke(self) -> None:
        self._poked.set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self._poked.wait(self.interval):
                self.stop_event.wait(self.settle)  # several events of one replacement: one read
            self._poked.clear()
            client = self.client()
            if client is None or self.stop_event.is_set():
                continue
            try:
                self.post(("snapshot", self.read(client)))
            except Exception as exc:  # noqa: BLE001 - the engine went away meanwhile: the reader reports that
                self.post(("snapshot_failed", f"{exc.__class__.__name__}: {exc}"[:300]))


def observe(client: Any, project: str) -> list[Observed]:
    """The project's containers as the engine shows them now (what a resync starts from)."""
    containers = engines.project_containers(client, project)
    return [o for o in (Observed.from_attrs(c.attrs) for c in containers) if o is not None]
