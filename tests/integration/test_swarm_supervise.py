"""`stackgen supervise` against a swarm stack, for real: the reference stack (Caddy, certbot HTTP-01 against pebble, one
Node-RED) deployed by `stackgen up` to the private single-node swarm (swarm_support.SwarmEngine, through
swarm_stack's helpers), one supervisor running for the whole module.

Proved: the supervisor watches the stack (services resynced from the task lists, the first drift check clean: the
SG011 every swarm service has is the stack file's own, a baseline, not drift); Node-RED's task container killed is
replaced by Swarm and the supervisor records it (`task_replaced`) while issuing no restart (its log has none, and the
engine saw no `restart` of any of the stack's containers); a forced renewal through the certbot task container gives a
new serial that the edge serves, the edge's task container reloaded in place (same container, same start time); a
port published with `docker service update --publish-add` on Node-RED raises a drift alert (SG202) and the task Swarm
replaced for that update is not counted as a failure.

The supervisor runs as a user on the swarm's node runs it: a process in the engine's network namespace (the edge's
ports are on its loopback) with DOCKER_HOST at the private engine; a small driver around `Supervisor` reads job
requests on its stdin (the forced renewal) and stops on SIGTERM as `stackgen supervise` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from docker.errors import NotFound

from stackgen.supervise.alerts import read_log
from tests.integration.supervisor_support import wait_for
from tests.integration.swarm_stack import (
    HTTPS_PORT,
    ROOT,
    SwarmStack,
    issued,
    make_stack,
    pebble,
    placement_labels,
    private_swarm,
)
from tests.integration.swarm_support import SwarmEngine

pytestmark = pytest.mark.engine

TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def swarm_node(engine, local_images) -> Iterator[SwarmEngine]:
    """The private single-node swarm of this module."""
    yield from private_swarm()


# `stackgen supervise DIR` with a way in: each line on stdin is a job request ("renewal force"); SIGTERM stops it.
DRIVER = """
import sys, threading
from pathlib import Path
from stackgen.supervise.config import load_settings
from stackgen.supervise.supervisor import Supervisor, run_foreground
directory = Path(sys.argv[1])
supervisor = Supervisor(directory, load_settings(directory))
def requests():
    for line in sys.stdin:
        job, _, arg = line.strip().partition(" ")
        supervisor.request(job, **({"force": True} if arg == "force" else {}))
threading.Thread(target=requests, daemon=True).start()
sys.exit(run_foreground(supervisor))
"""

# Runs inside the swarm's namespace: the serial of the certificate the edge serves.
SERIAL = """
import json, sys
from stackgen.live import certificates
print(json.dumps(certificates.fetch("127.0.0.1", int(sys.argv[1]), sys.argv[2], []).serial))
"""

SETTINGS = "swarm_poll: 5s\nverify_interval: 8s\nrenew: false\ncert_check_interval: 1h\n"


@pytest.fixture(scope="module")
def deployed(swarm_node: SwarmEngine, engine, tmp_path_factory) -> Iterator[SwarmStack]:
    """One Node-RED behind Caddy, made with init and generate --target swarm, up; pebble stays (the renewal needs it)."""
    node = swarm_node
    workdir = tmp_path_factory.mktemp("swarm-supervise")
    project = f"sgsup-{node.tag}"
    stack = make_stack(node, engine, workdir, project, "nodered.swarm.stackgen.test")
    node.label_node(placement_labels(stack))
    pebble_name = pebble(node, project, workdir)
    try:
        began = time.monotonic()
        up = stack.up()
        assert up.returncode == 0, up.stdout + up.stderr
        issued(stack, pebble_name)
        TIMES["up -> HTTPS 200"] = time.monotonic() - began
        yield stack
    finally:
        node.docker("service", "rm", pebble_name, check=False)  # off the stack's network, or `down` waits for it
        stack.stackgen("down", str(stack.directory), "--volumes")
        print(f"\nswarm supervise timings (s): {json.dumps({k: round(v, 1) for k, v in TIMES.items()})}")


class Driven:
    """The supervisor process in the swarm's namespace; its JSON-lines log."""

    def __init__(self, stack: SwarmStack) -> None:
        (stack.directory / "supervise.yaml").write_text(SETTINGS)
        self.log_path = stack.directory / ".stackgen-supervisor" / "supervisor.jsonl"
        self.project = stack.project
        self.stderr = open(stack.directory.parent / "supervise.stderr", "w")  # noqa: SIM115 - closed in stop()
        # SSL_CERT_FILE: the drift check trusts pebble's root as a user's host trusts its CA (else SG305 on the edge)
        env = {**os.environ, "DOCKER_HOST": stack.node.url, "PYTHONWARNINGS": "ignore", "SSL_CERT_FILE": str(stack.root)}
        command = ["nsenter", "-t", str(stack.node.process.pid), "-n", sys.executable, "-c", DRIVER, str(stack.directory)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                        env=env, cwd=ROOT, text=True)

    def request(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def events(self, name: str, since: int = 0) -> list[dict]:
        return [r for r in read_log(self.log_path)[since:] if r.get("event") == name]

    def alerts(self, kind: str, since: int = 0) -> list[dict]:
        return [r["alert"] for r in self.events("alert", since) if r["alert"]["kind"] == kind]

    def mark(self) -> int:
        return len(read_log(self.log_path))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        finally:
            self.stderr.close()


@pytest.fixture(scope="module")
def supervisor(deployed: SwarmStack) -> Iterator[Driven]:
    driven = Driven(deployed)
    try:
        began = time.monotonic()
        wait_for(lambda: driven.events("resynced"), 60, "the supervisor to read the stack's tasks", 0.5)
        TIMES["supervisor start -> resynced"] = time.monotonic() - began
        yield driven
    finally:
        if driven.process.poll() is None:
            code = driven.stop()
            assert code == 0, (deployed.directory.parent / "supervise.stderr").read_text()[-2000:]
    assert driven.events("supervisor_stopped"), "a clean stop"


def _serial(stack: SwarmStack) -> str:
    return stack.node.in_namespace(SERIAL, str(HTTPS_PORT), stack.domain)


def test_supervise_watches_the_swarm_stack_and_a_healthy_one_raises_nothing(supervisor: Driven):
    started = supervisor.events("supervisor_started")[0]
    assert started["target"] == "swarm" and started["heals"] is False
    assert supervisor.events("resynced")[0]["services"] == {s: "running/healthy" for s in ("node-red", "edge", "certbot")}
    first = wait_for(lambda: supervisor.events("verify"), 60, "the first drift check", 0.5)[0]
    TIMES["drift check (verify --live, cheap probes, child)"] = first["seconds"]
    # SG011 on every service is the stack file's own (a baseline, not drift): no drift alert for the stack's services.
    # The one container on the stack's network the stack file does not have is the test's CA, pebble: that is drift.
    opened = {a["id"] for a in supervisor.alerts("drift") if a["state"] == "open"}
    assert opened and all(i.startswith(f"drift:{supervisor.project}-pebble") for i in opened), opened
    assert first["findings"] >= 3 and not supervisor.alerts("no_task") and not supervisor.alerts("crash_loop")


def test_a_killed_node_red_task_is_replaced_by_swarm_and_recorded_without_a_restart(deployed: SwarmStack, supervisor: Driven):
    old = deployed.container("node-red")
    mark, since = supervisor.mark(), int(time.time()) - 1
    killed, killed_at = time.monotonic(), time.time()
    deployed.node.docker("kill", old.id)
    replaced = wait_for(lambda: [r for r in supervisor.events("task_replaced", mark) if r["service"] == "node-red"], 60,
                        "the supervisor to record Swarm's replacement", 0.3)
    TIMES["kill -> task_replaced logged"] = replaced[0]["ts"] - killed_at

    def new_task_healthy():
        found = deployed.node.stack_containers(deployed.project, "node-red")
        return [c for c in found if c.id != old.id and (c.attrs["State"].get("Health") or {}).get("Status") == "healthy"]

    wait_for(new_task_healthy, 120, "Swarm's new Node-RED task healthy", 0.5)
    TIMES["kill -> new task healthy"] = time.monotonic() - killed
    assert replaced[0]["exit_code"] == 137 and "137" in replaced[0]["error"] and replaced[0]["unhealthy"] is False
    assert len(replaced) == 1, "one failed task, recorded once"
    # Nothing restarted by the supervisor: no decision in its log, no `restart` event at the engine, the old container dead.
    ours = [r["event"] for r in read_log(supervisor.log_path) if r.get("event", "").startswith("restart")]
    assert ours == [], ours
    engine_restarts = list(deployed.node.client.events(
        since=since, until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": "restart", "label": f"com.docker.stack.namespace={deployed.project}"}))
    assert engine_restarts == [], engine_restarts
    try:
        old.reload()
        assert old.attrs["State"]["Status"] == "exited", "the killed container stays dead: Swarm made a new one"
    except NotFound:
        pass  # Swarm pruned it: not restarted either
    # The edge finds the new task by its service name once Swarm's DNS has it (endpoint mode dnsrr): a few seconds.
    wait_for(lambda: deployed.request(deployed.domain, "/editor/")["status"] == 200, 60, "HTTPS 200 from the new task", 0.5)
    TIMES["kill -> HTTPS 200 again"] = time.monotonic() - killed
    state = json.loads((deployed.directory / ".stackgen-supervisor" / "state.json").read_text())
    assert [r["by"] for r in state["services"]["node-red"]["restarts"]] == ["swarm"]
    assert not supervisor.alerts("crash_loop"), "one failure is no crash loop"


def test_a_forced_renewal_is_served_by_the_edge_reloaded_not_restarted(deployed: SwarmStack, supervisor: Driven):
    edge = deployed.container("edge")
    before, started, restarts = _serial(deployed), edge.attrs["State"]["StartedAt"], edge.attrs["RestartCount"]
    mark = supervisor.mark()
    began = time.monotonic()
    supervisor.request("renewal force")
    record = wait_for(lambda: supervisor.events("renewal", mark), 180, "the renewal outcome", 0.5)[0]
    TIMES["forced renewal (certbot task -> edge serves it)"] = time.monotonic() - began
    assert record["status"] == "renewed", record
    assert record["served_before"] == before and record["served_after"] == record["files_serial"] != before
    assert record["reloaded"] in ("by-itself", "explicit"), record
    assert _serial(deployed) == record["served_after"], "a probe of our own agrees"
    now = deployed.container("edge")
    assert now.id == edge.id and now.attrs["State"]["StartedAt"] == started and now.attrs["RestartCount"] == restarts, \
        "the edge's task container reloaded in place, never restarted or replaced"
    assert not supervisor.alerts("renewal_failed") and not supervisor.alerts("reload_failed")


def test_a_port_published_by_service_update_raises_a_drift_alert(deployed: SwarmStack, supervisor: Driven):
    mark = supervisor.mark()
    service = f"{deployed.project}_node-red"
    began = time.monotonic()
    deployed.node.docker("service", "update", "--detach", "--publish-add", "mode=host,target=1880,published=38880", service)
    def published_alert() -> list[dict]:  # sent when opened, and again when an open one gains the finding
        return [a for a in supervisor.alerts("drift", mark) if a["id"] == "drift:node-red" and a["state"] == "open"
                and "SG202" in {f["rule"] for f in a["details"]["findings"]}]

    drift = wait_for(published_alert, 120, "a drift alert naming the published port", 0.5)
    TIMES["service update --publish-add -> drift alert"] = time.monotonic() - began
    rules = {f["rule"] for f in drift[0]["details"]["findings"]}
    assert "SG011" not in rules, rules  # the baseline stays out of it
    print(f"\ndrift alert: {drift[0]['summary']}")
    assert not supervisor.events("task_replaced", mark), "a task Swarm replaced for an update is no failure"
