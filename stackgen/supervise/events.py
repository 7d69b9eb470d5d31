"""The engine's event stream for one compose project: connect, reconnect with backoff, resync.

Why events and not polling: the engine pushes `health_status: unhealthy` and the lifecycle
events of the project's containers (a label filter), so a restart starts within milliseconds
and an idle supervisor does nothing. When the engine goes away the reader reconnects with
backoff; the main loop then resynchronises from `observe()` (the containers' current state):
events that happened while disconnected are never replayed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from stackgen import engine as engines
from stackgen.constants import PROJECT_LABEL
from stackgen.supervise.policy import Observed

WATCHED_ACTIONS = ["health_status", "create", "start", "restart", "kill", "die", "stop", "destroy"]


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
                close_quietly(events_client)
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
                close_stream(stream)
                close_quietly(events_client)
            if not self.stop_event.is_set():
                self.post(("disconnected", reason))
                self.stop_event.wait(0.2)

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


def observe(client: Any, project: str) -> list[Observed]:
    """The project's containers as the engine shows them now (what a resync starts from)."""
    containers = engines.project_containers(client, project)
    return [o for o in (Observed.from_attrs(c.attrs) for c in containers) if o is not None]
