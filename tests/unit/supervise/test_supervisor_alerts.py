"""Alerts: open/resolve once, the JSON-lines log, webhook formats and retries (a listener on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest

from stackgen.supervise.alerts import Alert, AlertBook, Dispatcher, JsonLog, read_log, webhook_request
from tests.webhook_listener import Listener


@pytest.fixture
def listener():
    items = []

    def make(statuses=()):
        item = Listener(statuses)
        items.append(item)
        return item

    yield make
    for item in items:
        item.close()


def sample(state="open") -> Alert:
    return Alert("crash_loop:node-red", "crash_loop", "critical", "node-red: crash loop", state, "node-red", {"restarts": 5}, 1714557600, 1714557660)


def test_alert_book_opens_once_and_resolves_once():
    now = [100.0]
    store: dict = {}
    book = AlertBook(store, lambda: now[0])
    first = book.open("cert_expiry", "cert_expiry", "warning", "expires soon", "edge", {"days": 9})
    assert first is not None and first.state == "open"
    assert book.open("cert_expiry", "cert_expiry", "warning", "expires sooner", "edge", {"days": 8}) is None
    assert store["cert_expiry"]["summary"] == "expires sooner"
    now[0] = 160.0
    resolved = book.resolve("cert_expiry")
    assert resolved.state == "resolved" and resolved.details["open_for_seconds"] == 60.0
    assert book.resolve("cert_expiry") is None
    # a book rebuilt from the persisted dict remembers what is open
    book.open("drift:x", "drift", "critical", "rogue container")
    assert AlertBook(json.loads(json.dumps(store))).open("drift:x", "drift", "critical", "rogue container") is None


def test_generic_body_is_the_documented_shape():
    body, headers = webhook_request(sample(), "nodered", "generic", token="s3cret", host="pi")
    data = json.loads(body)
    assert headers["Content-Type"] == "application/json" and headers["Authorization"] == "Bearer s3cret"
    assert data == {
        "version": 1, "source": "stackgen", "project": "nodered", "host": "pi", "id": "crash_loop:node-red",
        "kind": "crash_loop", "state": "open", "severity": "critical", "service": "node-red",
        "summary": "node-red: crash loop", "details": {"restarts": 5},
        "opened_at": "2024-05-01T10:00:00Z", "time": "2024-05-01T10:01:00Z",
    }
    assert "s3cret" not in body.decode()


def test_ntfy_format():
    body, headers = webhook_request(sample(), "nodered", "ntfy", token="tk")
    assert body == b"node-red: crash loop"
    assert headers["Title"] == "stackgen nodered: crash loop" and headers["Priority"] == "5"
    assert headers["Tags"] == "rotating_light" and headers["Authorization"] == "Bearer tk"
    body, headers = webhook_request(sample("resolved"), "nodered", "ntfy")
    assert headers["Priority"] == "3" and headers["Tags"] == "white_check_mark" and "resolved" in headers["Title"]


def test_gotify_format():
    body, headers = webhook_request(sample(), "nodered", "gotify", token="tk")
    data = json.loads(body)
    assert headers["X-Gotify-Key"] == "tk" and "Authorization" not in headers
    assert data["priority"] == 8 and data["message"] == "node-red: crash loop"
    assert data["extras"]["stackgen"]["id"] == "crash_loop:node-red"


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError):
        webhook_request(sample(), "p", "slack")


def test_delivery_retries_server_errors_then_succeeds(tmp_path, listener):
    hook = listener([503, 500])
    log = JsonLog(tmp_path / "log.jsonl")
    sleeps = []
    dispatcher = Dispatcher(log, "nodered", hook.url, "generic", retries=3, timeout=2, sleep=sleeps.append)
    assert dispatcher.deliver(sample())
    assert len(hook.requests) == 3 and sleeps == [1.0, 2.0]
    events = [r["event"] for r in read_log(tmp_path / "log.jsonl")]
    assert events == ["alert_delivery_retry", "alert_delivery_retry", "alert_delivered"]


def test_delivery_gives_up_after_the_retries_and_on_client_errors(tmp_path, listener):
    hook = listener([500] * 10)
    log = JsonLog(tmp_path / "log.jsonl")
    dispatcher = Dispatcher(log, "nodered", hook.url, retries=2, sleep=lambda s: None)
    assert not dispatcher.deliver(sample())
    assert len(hook.requests) == 3
    hook2 = listener([404])
    dispatcher = Dispatcher(log, "nodered", hook2.url, retries=5, sleep=lambda s: None)
    assert not dispatcher.deliver(sample())
    assert len(hook2.requests) == 1, "a 404 is not retried"
    assert read_log(tmp_path / "log.jsonl")[-1]["event"] == "alert_delivery_failed"


def test_unreachable_webhook_is_retried_and_logged(tmp_path):
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = JsonLog(tmp_path / "log.jsonl")
    dispatcher = Dispatcher(log, "p", f"http://127.0.0.1:{port}/", retries=1, timeout=1, sleep=lambda s: None)
    assert not dispatcher.deliver(sample())
    assert dispatcher.failed == 1


def test_send_logs_every_alert_and_delivers_in_the_background(tmp_path, listener):
    hook = listener()
    log = JsonLog(tmp_path / "log.jsonl")
    dispatcher = Dispatcher(log, "nodered", hook.url, "gotify", token="tk")
    dispatcher.send(sample())
    dispatcher.send(sample("resolved"))
    dispatcher.close(5)
    assert [json.loads(r["body"])["extras"]["stackgen"]["state"] for r in hook.requests] == ["open", "resolved"]
    records = read_log(tmp_path / "log.jsonl")
    alerts = [r for r in records if r["event"] == "alert"]
    assert [a["alert"]["state"] for a in alerts] == ["open", "resolved"]
    assert alerts[0]["level"] == "error" and alerts[1]["level"] == "info"
    assert (tmp_path / "log.jsonl").stat().st_mode & 0o777 == 0o600


def test_log_without_webhook_still_records(tmp_path):
    log = JsonLog(tmp_path / "sub" / "log.jsonl")
    Dispatcher(log, "p").send(sample())
    assert read_log(tmp_path / "sub" / "log.jsonl")[0]["alert"]["id"] == "crash_loop:node-red"
