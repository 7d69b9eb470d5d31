"""Stopping the edge, live: the stop signal reaches the edge as its graceful stop (issue: stop signals).

The edge's PID 1 is our /bin/sh entrypoint. Whatever signal the engine sends it (the image's
STOPSIGNAL, SIGQUIT for nginx's images, else SIGTERM; or compose's stop_signal), the edge must
finish the request in flight and exit well before the engine's 10 s timeout and its SIGKILL
(exit code 137). The slow request is a Node-RED HTTP endpoint that answers after SLOW_SECONDS,
deployed through the admin API. One stack per edge for the module, as in test_stack_live.py; the
edge is started again after each stop.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from stackgen.live import probes
from stackgen.upstream.contracts import load_contract
from tests.integration.harness import LiveStack, start_stack, stop_stack

pytestmark = pytest.mark.engine

SLOW_PATH = "/stackgen-slow"
SLOW_SECONDS = 2
IN_FLIGHT_AFTER = 0.8  # the request has long reached Node-RED by then; its answer is still 1.2 s away
ENGINE_TIMEOUT = 10  # docker stop's default: SIGKILL after it
WELL_UNDER = 5.0

SLOW_FLOW = [
    {"id": "sgstop-tab", "type": "tab", "label": "stackgen: slow endpoint"},
    {"id": "sgstop-in", "type": "http in", "z": "sgstop-tab", "url": SLOW_PATH, "method": "get", "upload": False,
     "wires": [["sgstop-delay"]]},
    {"id": "sgstop-delay", "type": "delay", "z": "sgstop-tab", "pauseType": "delay", "timeout": str(SLOW_SECONDS),
     "timeoutUnits": "seconds", "rate": "1", "nbRateUnits": "1", "rateUnits": "second", "randomFirst": "1",
     "randomLast": "5", "randomUnits": "seconds", "drop": False, "outputs": 1, "wires": [["sgstop-body"]]},
    {"id": "sgstop-body", "type": "change", "z": "sgstop-tab",
     "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "slow and complete", "tot": "str"}],
     "wires": [["sgstop-out"]]},
    {"id": "sgstop-out", "type": "http response", "z": "sgstop-tab", "statusCode": "200", "headers": {}, "wires": []},
]


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def stack(request, engine, local_images, tmp_path_factory) -> LiveStack:
    live = start_stack(engine, tmp_path_factory.mktemp(f"stop-{request.param}"), request.param)
    try:
        deploy_slow_endpoint(live)
        yield live
    finally:
        stop_stack(live)


def deploy_slow_endpoint(stack: LiveStack) -> None:
    token = stack.token()
    deploy = stack.https(
        f"{stack.admin_root}/flows", method="POST", body=json.dumps(SLOW_FLOW).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Node-RED-Deployment-Type": "full"},
    )
    assert deploy.status in (200, 204), deploy.body
    deadline = time.monotonic() + 60
    while True:
        response = stack.https(SLOW_PATH, timeout=SLOW_SECONDS + 10)
        if response.status == 200:
            assert response.body == b"slow and complete"
            return
        assert time.monotonic() < deadline, f"the slow endpoint never answered: {response.status} {response.body[:200]!r}"
        time.sleep(1)


def image_stop_signal(stack: LiveStack) -> str | None:
    image = stack.engine.images.get(stack.container("edge").attrs["Image"])
    return image.attrs["Config"].get("StopSignal") or None


def stop_during_a_slow_request(stack: LiveStack, stop) -> tuple[object, float, int, str]:
    """Start the slow request, then `stop(container) -> exit code` once it is in flight.
    Returns (the response or the error, seconds the stop took, the edge's exit code, its log since)."""
    container = stack.container("edge")
    since = int(time.time()) - 1
    outcome: dict[str, object] = {}

    def request() -> None:
        try:
            outcome["response"] = stack.https(SLOW_PATH, timeout=SLOW_SECONDS + 15)
        except Exception as exc:  # noqa: BLE001 - a cut request is what the test looks for
            outcome["response"] = exc

    worker = threading.Thread(target=request)
    worker.start()
    try:
        time.sleep(IN_FLIGHT_AFTER)
        started = time.monotonic()
        code = stop(container)
        elapsed = time.monotonic() - started
    finally:
        worker.join(timeout=SLOW_SECONDS + 20)
    logs = container.logs(since=since).decode("utf-8", "replace")
    return outcome.get("response"), elapsed, code, logs


def restart_edge(stack: LiveStack, timeout: float = 90) -> None:
    """Start the stopped edge container again and wait until it is healthy and serving.
    (Not `stack.up()`: `stackgen up` takes the stopped edge for a failed one before compose starts it.)"""
    container = stack.container("edge")
    if container.status != "running":
        container.start()
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        health = container.attrs["State"].get("Health", {}).get("Status")
        if container.status == "running" and health == "healthy":
            break
        assert time.monotonic() < deadline, f"the edge did not come back: {container.status}/{health}\n{container.logs(tail=30).decode()}"
        time.sleep(0.5)
    assert stack.https("/").status == 200


def assert_graceful(stack: LiveStack, response, elapsed: float, code: int, logs: str, how: str) -> None:
    assert code != 137, f"{how}: the edge was SIGKILLed after the engine's timeout ({elapsed:.1f}s)\n{logs}"
    assert elapsed < WELL_UNDER, f"{how}: the edge took {elapsed:.1f}s to stop (engine timeout {ENGINE_TIMEOUT}s)\n{logs}"
    assert code == 0, f"{how}: exit code {code}\n{logs}"
    assert isinstance(response, probes.Response), f"{how}: the request in flight was cut: {response!r}\n{logs}"
    assert response.status == 200 and response.body == b"slow and complete", f"{how}: {response.status} {response.body[:200]!r}"
    assert f"received: graceful stop of {stack.edge}" in logs, logs


def test_docker_stop_lets_the_request_in_flight_finish(stack: LiveStack):
    """`docker stop`: the signal the container is configured with (compose stop_signal, else the image's STOPSIGNAL)."""
    configured = stack.container("edge").attrs["Config"].get("StopSignal") or "SIGTERM (engine default)"

    def docker_stop(container) -> int:
        container.stop(timeout=ENGINE_TIMEOUT)
        container.reload()
        return container.attrs["State"]["ExitCode"]

    try:
        response, elapsed, code, logs = stop_during_a_slow_request(stack, docker_stop)
        assert_graceful(stack, response, elapsed, code, logs, f"docker stop ({configured})")
    finally:
        restart_edge(stack)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT", "SIGQUIT"])
def test_every_stop_signal_an_image_may_send_is_graceful(stack: LiveStack, signal_name: str):
    """`docker kill --signal` then waiting: what `docker stop` does with an image whose STOPSIGNAL is
    that signal (nginx's official images: SIGQUIT, whether or not the local twin declares it yet)."""

    def docker_kill(container) -> int:
        container.kill(signal=signal_name)
        return container.wait(timeout=ENGINE_TIMEOUT + 5)["StatusCode"]

    try:
        response, elapsed, code, logs = stop_during_a_slow_request(stack, docker_kill)
        assert_graceful(stack, response, elapsed, code, logs, f"docker kill --signal {signal_name}")
        assert f"{signal_name.removeprefix('SIG')} received" in logs
    finally:
        restart_edge(stack)


def test_the_images_own_stop_signal(stack: LiveStack):
    """The signal `docker stop` sends for this image when compose sets none: the twin's STOPSIGNAL, which
    must be the official image's (nginx-unprivileged: SIGQUIT; Caddy: none, so the engine's SIGTERM)."""
    sent = image_stop_signal(stack) or "SIGTERM"
    upstream = load_contract(stack.edge).stop_signal_name
    assert sent == upstream, f"the {stack.edge} twin stops with {sent}, the official image with {upstream}"

    def docker_kill(container) -> int:
        container.kill(signal=sent)
        return container.wait(timeout=ENGINE_TIMEOUT + 5)["StatusCode"]

    try:
        response, elapsed, code, logs = stop_during_a_slow_request(stack, docker_kill)
        assert_graceful(stack, response, elapsed, code, logs, f"the image's stop signal {sent}")
    finally:
        restart_edge(stack)
