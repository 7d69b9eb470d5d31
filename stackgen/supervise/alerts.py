"""Alerts: a JSON-lines log always, and optionally a webhook (generic JSON, ntfy or Gotify), with retries.

Why alerts have keys: the supervisor re-checks the same conditions every few
minutes. An alert is opened once per key (`crash_loop:node-red`,
`cert_expiry`, `drift:SG101:rogue:…`), sent once, kept open in the state file
(so a restarted supervisor does not send it again) and sent once more when it
clears ("resolved"). Anything that repeats is in the log, not in your pocket.

The generic webhook body (POST, `Content-Type: application/json`), stable:

    {"version": 1, "source": "stackgen", "project": "nodered", "host": "pi",
     "id": "crash_loop:node-red", "kind": "crash_loop", "state": "open" | "resolved",
     "severity": "critical" | "warning" | "info", "service": "node-red" | null,
     "summary": "one line for people", "details": {...},
     "opened_at": "2024-05-01T10:00:00Z", "time": "2024-05-01T10:00:00Z"}

ntfy: the summary as the body, `Title`, `Priority` (5 critical, 4 warning, 3
otherwise and for resolved) and `Tags` headers; POST to the topic URL.
Gotify: `{"title", "message", "priority" (8/5/2), "extras": {"stackgen": <generic body>}}`
to `https://gotify.example/message`. A token (file) is sent as
`Authorization: Bearer …` (generic, ntfy) or `X-Gotify-Key: …` (Gotify),
never put in the URL or the log.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

BODY_VERSION = 1
LOG_ROTATE_BYTES = 10 * 1024 * 1024
SEVERITIES = ("critical", "warning", "info")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class JsonLog:
    """One JSON object per line: to a file (rotated once at 10 MB) and, when given, a stream (journald)."""

    def __init__(self, path: Path | None, stream: IO[str] | None = None, clock=time.time) -> None:
        self.path = path
        self.stream = stream
        self.clock = clock
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, level: str, event: str, **fields: Any) -> dict[str, Any]:
        now = self.clock()
        record = {"time": iso(now), "ts": round(now, 3), "level": level, "event": event}
        record.update({k: v for k, v in fields.items() if v is not None})
        line = json.dumps(record, sort_keys=False, default=str) + "\n"
        with self._lock:
            if self.path is not None:
                self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
            if self.stream is not None:
                try:
                    self.stream.write(line)
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
        return record

    def info(self, event: str, **fields: Any) -> dict[str, Any]:
        return self.write("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> dict[str, Any]:
        return self.write("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> dict[str, Any]:
        return self.write("error", event, **fields)

    def _rotate(self) -> None:
        assert self.path is not None
        try:
            if self.path.stat().st_size >= LOG_ROTATE_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines log (tests, `status`)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


@dataclass
class Alert:
    """One alert, opened or resolved."""

    key: str
    kind: str
    severity: str
    summary: str
    state: str = "open"
    service: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    opened_at: float = 0.0
    time: float = 0.0

    def body(self, project: str, host: str | None = None) -> dict[str, Any]:
        """The generic webhook body (documented above; `version` changes only if a field changes meaning)."""
        return {
            "version": BODY_VERSION,
            "source": "stackgen",
            "project": project,
            "host": host or socket.gethostname(),
            "id": self.key,
            "kind": self.kind,
            "state": self.state,
            "severity": self.severity,
            "service": self.service,
            "summary": self.summary,
            "details": self.details,
            "opened_at": iso(self.opened_at),
            "time": iso(self.time),
        }


class AlertBook:
    """Open alerts by key, stored in the supervisor state (a plain dict): open once, resolve once."""

    def __init__(self, store: dict[str, Any], clock=time.time) -> None:
        self.store = store
        self.clock = clock

    def is_open(self, key: str) -> bool:
        return key in self.store

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.store if k.startswith(prefix))

    def open(self, key: str, kind: str, severity: str, summary: str, service: str | None = None, details: dict | None = None,
             renotify: bool = False) -> Alert | None:
        """Record an alert; returns it if it is new (to be sent), None if it was already open (details refreshed).

        `renotify`: the open alert got worse (say, a new finding); send it again, still open, same `opened_at`.
        """
        assert severity in SEVERITIES, severity
        now = self.clock()
        if key in self.store:
            entry = self.store[key]
            entry.update({"summary": summary, "details": details or {}, "last_seen": now, "severity": severity})
            if not renotify:
                return None
            return Alert(key, kind, severity, summary, "open", service, details or {}, entry["opened_at"], now)
        self.store[key] = {"kind": kind, "severity": severity, "summary": summary, "service": service,
                           "details": details or {}, "opened_at": now, "last_seen": now}
        return Alert(key, kind, severity, summary, "open", service, details or {}, now, now)

    def resolve(self, key: str, summary: str | None = None, details: dict | None = None) -> Alert | None:
        """Close an open alert; returns the resolution to send, or None if it was not open."""
        entry = self.store.pop(key, None)
        if entry is None:
            return None
        now = self.clock()
        text = summary or f"resolved: {entry['summary']}"
        info = dict(details or {})
        info.setdefault("open_for_seconds", round(now - entry["opened_at"], 1))
        return Alert(key, entry["kind"], "info", text, "resolved", entry.get("service"), info, entry["opened_at"], now)


# --- webhooks ----------------------------------------------------------------

_NTFY_PRIORITY = {"critical": "5", "warning": "4", "info": "3"}
_GOTIFY_PRIORITY = {"critical": 8, "warning": 5, "info": 2}


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def webhook_request(alert: Alert, project: str, fmt: str, token: str | None = None, host: str | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one delivery in format `fmt` (generic, ntfy, gotify)."""
    body = alert.body(project, host)
    title = f"stackgen {project}: {alert.kind.replace('_', ' ')}" + (" resolved" if alert.state == "resolved" else "")
    if fmt == "ntfy":
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": _ascii(title),
            "Priority": "3" if alert.state == "resolved" else _NTFY_PRIORITY[alert.severity],
            "Tags": "white_check_mark" if alert.state == "resolved" else ("rotating_light" if alert.severity == "critical" else "warning"),
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return alert.summary.encode(), headers
    if fmt == "gotify":
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Gotify-Key"] = token
        payload = {
            "title": title,
            "message": alert.summary,
            "priority": 2 if alert.state == "resolved" else _GOTIFY_PRIORITY[alert.severity],
            "extras": {"client::display": {"contentType": "text/plain"}, "stackgen": body},
        }
        return json.dumps(payload).encode(), headers
    if fmt != "generic":
        raise ValueError(f"unknown webhook format {fmt!r}")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return json.dumps(body).encode(), headers


class DeliveryError(Exception):
    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One POST; returns the status, raises DeliveryError (retry or not)."""
    request = urllib.request.Request(url, data=body, headers={"User-Agent": "stackgen-supervisor", **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own URL
            response.read(1024)
            return response.status
    except urllib.error.HTTPError as exc:
        retry = exc.code in (408, 425, 429) or exc.code >= 500
        raise DeliveryError(f"HTTP {exc.code}", retry) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{reason}", True) from None


class Dispatcher:
    """Logs every alert at once; delivers to the webhook (if any) from a background thread, with retries."""

    def __init__(
        self,
        log: JsonLog,
        project: str,
        url: str | None = None,
        fmt: str = "generic",
        token: str | None = None,
        retries: int = 4,
        timeout: float = 5.0,
        backoff: float = 1.0,
        sleep=time.sleep,
    ) -> None:
        self.log = log
        self.project = project
        self.url = url
        self.fmt = fmt
        self.token = token
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.sleep = sleep
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0

    def start(self) -> None:
        if self.url and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stackgen-alerts", daemon=True)
            self._thread.start()

    def send(self, alert: Alert | None) -> None:
        if alert is None:
            return
        level = "info" if alert.state == "resolved" else ("error" if alert.severity == "critical" else "warning")
        self.log.write(level, "alert", alert=alert.body(self.project))
        if self.url:
            self.start()
            self._queue.put(alert)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by `timeout`), then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            self.log.warning("alert_delivery_abandoned", pending=self._queue.qsize())
        self._thread = None

    def deliver(self, alert: Alert) -> bool:
        """Deliver one alert with retries; returns success. (Also used directly by tests.)"""
        assert self.url
        body, headers = webhook_request(alert, self.project, self.fmt, self.token)
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                status = post(self.url, body, headers, self.timeout)
                self.delivered += 1
                self.log.info("alert_delivered", id=alert.key, state=alert.state, status=status, attempt=attempt + 1)
                return True
            except DeliveryError as exc:
                last = str(exc)
                if not exc.retry or attempt == self.retries or self._stop.is_set():
                    break
                self.log.warning("alert_delivery_retry", id=alert.key, error=last, attempt=attempt + 1, retry_in=delay)
                self.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.failed += 1
        self.log.error("alert_delivery_failed", id=alert.key, state=alert.state, error=last, attempts=attempt + 1)
        return False

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            try:
                self.deliver(alert)
            except Exception as exc:  # noqa: BLE001 - the sender must not die
                self.log.error("alert_delivery_failed", id=alert.key, error=f"{exc.__class__.__name__}: {exc}")


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise OSError(f"{path}: cannot read the webhook token ({exc.strerror})") from None
    return token or None


def stdout_stream() -> IO[str]:
    return sys.stdout
