"""`stackgen up`, `status`, `verify --live` and `down` against a swarm stack, for real: the reference stack (Caddy,
certbot HTTP-01 against pebble) with TWO Node-RED instances, made through the CLI (`init`, `instance add`,
`generate --target swarm`), deployed by `stackgen up` to a single-node swarm and judged from the swarm's side.

Proved on one node: `up` deploys and waits until every service's task runs healthy (the time is printed); HTTPS for
each host name through the edge's host-mode port reaches its own instance (each answers only its own admin
password) with pebble's certificate; instance A cannot open a connection to instance B from inside A's task
container (nor B to A), while the edge reaches both; `verify --live` observes the task containers by the stack
namespace label, probes the overlays through one-task probe services, and passes with only the gap Swarm is
documented to have (SG011: no no-new-privileges, one per service); two deliberate breaks are caught (A's task
container joined to B's overlay by hand; Node-RED's port published with `docker service update`, which a second
`stackgen up` takes back); `status` lists the services with their tasks, health and node; `down` removes the stack
and says which volumes Swarm keeps, `down --volumes` removes them.

The swarm is a private engine in a network namespace of its own (swarm_support.SwarmEngine; the shared engine never
joins a swarm). Every stackgen command runs as a subprocess inside that namespace with DOCKER_HOST pointing at the
private engine, as a user on that node would run it (the edge's ports are on the namespace's loopback). Traffic
stays on that loopback and the overlays the stack creates; `--resolve-image never` (no registry is asked).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.harness import PASSWORD
from tests.integration.supervisor_support import wait_for
from tests.integration.swarm_stack import (
    HTTP_PORT,
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
from tests.integration.test_instances_live import LAB_PASSWORD

pytestmark = pytest.mark.engine

TIMES: dict[str, float] = {}


def _findings(report: dict) -> list[tuple[str, str]]:
    return sorted((f["rule"], f["service"]) for f in report["findings"] if not f["suppressed"])


@pytest.fixture(scope="module")
def swarm_node(engine, local_images):
    yield from private_swarm()


@pytest.fixture(scope="module")
def deployed(swarm_node: SwarmEngine, engine, tmp_path_factory):
    node = swarm_node
    workdir = tmp_path_factory.mktemp("swarm-operate")
    project = f"sgops-{node.tag}"
    stack = make_stack(node, engine, workdir, project, "nodered.swarm.stackgen.test", "lab.swarm.stackgen.test", LAB_PASSWORD)
    node.label_node(placement_labels(stack))
    pebble_name = pebble(node, project, workdir)
    try:
        began = time.monotonic()
        up = stack.up()
        TIMES["stackgen up"] = time.monotonic() - began
        assert up.returncode == 0, up.stdout + up.stderr
        assert "deployed to the swarm, every service converged" in up.stdout, up.stdout
        TIMES["converged"] = float(up.stdout.split(" converged (tasks running and healthy) in ")[1].split("s")[0])
        issued(stack, pebble_name)
        TIMES["HTTPS 200 with the issued certificate"] = time.monotonic() - began
        print(f"\nswarm, two instances: images loaded in {node.load_seconds:.1f} s; `stackgen up` (deploy -> every task running "
              f"and healthy) {TIMES['stackgen up']:.1f} s (its own count {TIMES['converged']:.1f} s); "
              f"-> HTTPS 200 with pebble's certificate {TIMES['HTTPS 200 with the issued certificate']:.1f} s\n{up.stdout}")
        node.docker("service", "rm", pebble_name)  # the certificate is issued: the test's CA leaves the stack's network
        yield stack
    finally:
        stack.stackgen("down", str(stack.directory), "--volumes")


def test_each_host_name_reaches_its_own_instance_over_https(deployed: SwarmStack):
    for domain in (deployed.domain, deployed.lab_domain):
        answer = deployed.request(domain, "/editor/")
        assert answer["status"] == 200, answer
        assert sorted(n for _, n in answer["names"]) == sorted([deployed.domain, deployed.lab_domain]), "one certificate, both names"
    # Each instance knows its own admin alone: the host name decides which Node-RED answers.
    assert deployed.token_status(deployed.domain, "admin", PASSWORD) == 200
    assert deployed.token_status(deployed.lab_domain, "lab-admin", LAB_PASSWORD) == 200
    assert deployed.token_status(deployed.domain, "lab-admin", LAB_PASSWORD) in (401, 403)
    assert deployed.token_status(deployed.lab_domain, "admin", PASSWORD) in (401, 403)


def test_instance_a_cannot_connect_to_instance_b_from_inside_its_task_container(deployed: SwarmStack):
    lab_address = deployed.address("node-red-lab", "internal-lab")
    a_address = deployed.address("node-red", "internal")
    assert deployed.connect_from("node-red", lab_address) in ("timeout", "error EHOSTUNREACH", "error ENETUNREACH")
    assert deployed.connect_from("node-red", "node-red-lab") == "unresolved", "B's name is not even known on A's overlay"
    assert deployed.connect_from("node-red-lab", a_address) in ("timeout", "error EHOSTUNREACH", "error ENETUNREACH")
    assert deployed.connect_from("node-red-lab", "node-red") == "unresolved"
    # The edge is on both internal overlays: it reaches each (it has no `node`: a probe beside it would; HTTPS proved it).


def test_status_lists_the_services_with_their_tasks(deployed: SwarmStack):
    result = deployed.stackgen("status", str(deployed.directory), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    hostname = deployed.node.client.info()["Name"]
    services = {s["service"]: s for s in report["swarm"]}
    assert set(services) == {"node-red", "node-red-lab", "edge", "certbot"}
    for name, service in services.items():
        task = service["tasks"][0]
        assert service["replicas"] == "1/1" and task["state"] == "running" and task["desired"] == "running", (name, service)
        assert task["health"] == "healthy" and task["node"] == hostname, (name, task)
    assert services["edge"]["ports"] == [f"{HTTP_PORT}->8080/tcp (host)", f"{HTTPS_PORT}->8443/tcp (host)"]
    assert report["certificate"].get("live") is True, report["certificate"]
    text = deployed.stackgen("status", str(deployed.directory))
    assert "swarm services and tasks" in text.stdout and "node-red-lab" in text.stdout
    print("\n" + text.stdout)


def test_verify_live_passes_with_only_the_gap_swarm_is_documented_to_have(deployed: SwarmStack):
    _pebble_gone(deployed)
    code, report = deployed.verify()
    assert code == 0, json.dumps(report["findings"], indent=1)
    assert _findings(report) == [("SG011", s) for s in sorted(("certbot", "edge", "node-red", "node-red-lab"))]
    cells = report["live"]["reachability"]
    assert cells and all(c["ok"] for c in cells), [c for c in cells if not c["ok"]]
    vantages = {c["from"] for c in cells}
    assert {"internal", "internal-lab", "public", "host"} <= vantages, "a probe service on every overlay, and the host"
    between = [c for c in cells if c.get("instances")]
    assert between and all(c["observed"] != "open" for c in between), between
    failed = [c for c in report["live"]["checks"] if not c["ok"]]
    assert not failed, failed
    text = deployed.stackgen("verify", "--live", str(deployed.directory), "--ca-file", str(deployed.root))
    print("\n" + text.stdout)
    left = deployed.node.client.services.list(filters={"label": "org.stackgen.probe"})
    assert not left, "every probe service removed"


# Runs inside the swarm's namespace: a TCP connection to the edge's published HTTPS port every 20 ms until the file
# argv[2] exists; JSON out: how many were tried, refused, failed otherwise, and the refused spans (seconds).
PORT_WATCH = """
import json, os, socket, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
tried = refused = other = 0
spans, began, last = [], None, None
start = time.monotonic()
while not os.path.exists(stop) and time.monotonic() - start < 300:
    now = time.monotonic()
    tried += 1
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        if began is not None:
            spans.append(round(last - began, 3))
            began = None
    except ConnectionRefusedError:
        refused += 1
        began = now if began is None else began
        last = now
    except OSError:
        other += 1
    time.sleep(0.02)
if began is not None:
    spans.append(round(last - began, 3))
print(json.dumps({"tried": tried, "refused": refused, "other": other, "spans": spans,
                  "seconds": round(time.monotonic() - start, 2)}))
"""


def _pebble_gone(stack: SwarmStack) -> None:
    """The fixture removes pebble's service once the certificate is issued; its task container goes a moment later
    (until then verify sees a container the stack file does not declare: SG201)."""
    pebble = {"label": f"com.docker.swarm.service.name={stack.project}-pebble"}
    wait_for(lambda: not stack.node.client.containers.list(all=True, filters=pebble), 60, "pebble's task gone", 0.5)


def _watch_port(node: SwarmEngine, stop: Path) -> subprocess.Popen:
    """PORT_WATCH in the swarm's namespace (where the edge's host-mode ports are), until `stop` exists."""
    command = ["nsenter", "-t", str(node.process.pid), "-n", sys.executable, "-c", PORT_WATCH, str(HTTPS_PORT), str(stop)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _verify_watching_the_port(stack: SwarmStack, tmp_path: Path, name: str) -> tuple[int, dict, dict, float]:
    """`verify --live --probes all` while PORT_WATCH connects to the published HTTPS port; (code, report, watch, seconds)."""
    _pebble_gone(stack)
    stop = tmp_path / f"{name}.stop"
    watch = _watch_port(stack.node, stop)
    try:
        time.sleep(0.5)  # the watch is connecting before verify starts
        began = time.monotonic()
        code, report = stack.verify("--probes", "all")
        seconds = time.monotonic() - began
        time.sleep(0.5)
    finally:
        stop.touch()
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    return code, report, json.loads(out), seconds


def _access_checks(report: dict) -> list[dict]:
    return [c for c in report["live"]["checks"] if c["check"].startswith(("editor refused", "endpoint reachable", "editor gate",
                                                                           "login shield"))]


def test_verify_live_probes_all_never_takes_the_edges_published_ports_away(deployed: SwarmStack, tmp_path: Path):
    """The access probes attach the edge's task container to networks of their own; its host-mode ports must keep
    answering throughout (not one refused connection), and the access checks still pass: the edge judged the probe
    clients by their own addresses (the gate refused an outsider; the shield banned the address it counted)."""
    code, report, watch, seconds = _verify_watching_the_port(deployed, tmp_path, "clean")
    print(f"\nverify --live --probes all: {seconds:.1f} s; connections to the published HTTPS port during it: {watch}")
    assert code == 0, json.dumps(report["findings"], indent=1)
    assert watch["tried"] > 100 and watch["other"] == 0, watch
    assert watch["refused"] == 0, f"the published port refused connections while verify ran: {watch}"
    access = _access_checks(report)
    gate = [c for c in access if c["check"].startswith("editor refused outside allow")]
    shield = [c for c in access if c["check"].startswith("login shield bans a guessing address")]
    assert len(gate) == 2 and len(shield) == 2, access  # each instance's gate and shield were probed
    assert all(c["ok"] for c in access), [c for c in access if not c["ok"]]
    # The edge judged each outsider by its own address, in the benchmarking range (no NAT on the probes' overlay).
    clients = [ipaddress.ip_address(c["detail"].split(" from ", 1)[1].split(" ", 1)[0]) for c in gate]
    assert all(a in ipaddress.ip_network("198.18.0.0/15") for a in clients), gate
    client = deployed.node.client
    # Removed in verify's finally (a client's own auto-removal may still be finishing); a removed swarm network leaves
    # this node's list once the manager's removal reaches it.
    began = time.monotonic()
    probe = {"label": "org.stackgen.probe"}
    try:
        wait_for(lambda: not client.containers.list(all=True, filters=probe), 15, "every probe container removed", 0.5)
    except AssertionError:
        raise AssertionError([(c.name, c.status) for c in client.containers.list(all=True, filters=probe)]) from None
    try:
        wait_for(lambda: not client.networks.list(filters=probe), 30, "every probe network removed", 0.5)
    except AssertionError:
        left = [(n.name, client.api.inspect_network(n.id).get("Containers"), client.api.inspect_network(n.id).get("Peers"))
                for n in client.networks.list(filters=probe)]
        try:
            client.networks.get(client.networks.list(filters=probe)[0].id).remove()
        except Exception as exc:  # noqa: BLE001 - what the engine says is the diagnosis
            left.append(repr(exc))
        raise AssertionError(f"probe networks left 30 s after verify returned: {left}") from None
    print(f"probe networks gone from the node's list {time.monotonic() - began:.1f} s after verify returned (+0.5 s)")


def test_an_edge_gate_opened_to_everyone_is_caught_and_the_ports_still_never_blink(deployed: SwarmStack, tmp_path: Path):
    """A break the access probes must catch on a swarm: the edge's Caddyfile with its editor gate opened to every
    address (a new swarm config in its place, `docker service update`); `stackgen up` takes it back."""
    service = f"{deployed.project}_edge"
    spec = deployed.node.client.services.get(service).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    config = next(c for c in spec.get("Configs") or [] if c["File"]["Name"].endswith("/Caddyfile"))
    text = (deployed.directory / "edge" / "Caddyfile").read_text()
    # `not remote_ip ALLOW` picks the outsiders the gate refuses; `remote_ip 255.255.255.255/32` picks nobody.
    opened = "\n".join(line.split("not remote_ip")[0] + "remote_ip 255.255.255.255/32" if "not remote_ip" in line else line
                        for line in text.splitlines()) + "\n"
    assert opened != text
    (tmp_path / "Caddyfile").write_text(opened)
    name = f"{deployed.project}-caddyfile-opened"
    deployed.node.docker("config", "create", name, str(tmp_path / "Caddyfile"))
    target = config["File"]
    deployed.node.docker("service", "update", "--detach", "--config-rm", config["ConfigName"], "--config-add",
                         f"source={name},target={target['Name']},uid={target['UID']},gid={target['GID']},mode={target['Mode']}",
                         service)

    def replaced() -> bool:
        found = deployed.node.stack_containers(deployed.project, "edge")
        return (len(found) == 1 and found[0].attrs["State"].get("Health", {}).get("Status") == "healthy"
                and "\tremote_ip 255.255.255.255/32" in found[0].exec_run(["cat", target["Name"]]).output.decode()
                and deployed.request(deployed.domain, "/editor/")["status"] == 200)

    try:
        try:
            wait_for(replaced, 180, "the edge task with the opened Caddyfile", 1)
        except AssertionError as exc:
            tasks = deployed.node.docker("service", "ps", "--no-trunc", "--format", "{{.CurrentState}} {{.Error}}", service).stdout
            found = deployed.node.stack_containers(deployed.project, "edge")
            seen = [(c.name, c.attrs["State"].get("Health", {}).get("Status"), c.exec_run(["cat", target["Name"]]).output[-400:])
                    for c in found]
            raise AssertionError(f"{exc}: tasks {tasks}; containers {seen}") from None
        code, report, watch, seconds = _verify_watching_the_port(deployed, tmp_path, "opened")
        print(f"\nbreak 3 (editor gate opened): verify {seconds:.1f} s, {_findings(report)}; port watch {watch}")
        assert code == 1 and ("SG313", "edge") in _findings(report), _findings(report)
        gate = [c for c in _access_checks(report) if c["check"].startswith("editor refused outside allow")]
        assert gate and not any(c["ok"] for c in gate), gate
        assert watch["refused"] == 0 and watch["other"] == 0, watch
    finally:
        up = deployed.stackgen("up", str(deployed.directory), "--resolve-image", "never", "--timeout", "300")
        assert up.returncode == 0, up.stdout + up.stderr
        deployed.node.docker("config", "rm", name, check=False)
    code, report = deployed.verify("--probes", "none")
    assert code == 0, _findings(report)


def test_a_task_container_joined_to_the_other_instances_overlay_is_caught(deployed: SwarmStack):
    container = deployed.container("node-red")
    network = f"{deployed.project}_internal-lab"
    deployed.node.docker("network", "connect", network, container.id)  # Swarm lets a task's container join by hand
    try:
        code, report = deployed.verify()
    finally:
        deployed.node.docker("network", "disconnect", "--force", network, container.id)
    found = _findings(report)
    assert code == 1
    assert ("SG207", "node-red") in found, found  # joined a network the stack file does not give it
    assert ("SG113", "node-red") in found and ("SG113", "node-red-lab") in found, found
    opened = [c for c in report["live"]["reachability"] if not c["ok"]]
    assert any(c.get("instances") for c in opened), opened
    print("\nbreak 1 (network connect):", found)


def test_node_reds_port_published_by_service_update_is_caught_and_up_takes_it_back(deployed: SwarmStack):
    service = f"{deployed.project}_node-red-lab"
    deployed.node.docker("service", "update", "--detach", "--publish-add", "mode=host,target=1880,published=38880", service)

    def published() -> bool:  # asked for: on an internal overlay alone there is nothing to bind it to (yet)
        containers = deployed.node.stack_containers(deployed.project, "node-red-lab")
        return bool(containers) and "1880/tcp" in (containers[0].attrs["HostConfig"].get("PortBindings") or {})

    wait_for(published, 180, "the updated Node-RED task with a published port", 1)
    code, report = deployed.verify("--probes", "none")
    found = _findings(report)
    assert code == 1 and ("SG202", "node-red-lab") in found, found  # published what the stack file does not
    assert ("SG102", "node-red-lab") in found, found  # Node-RED reachable without the edge
    print("\nbreak 2 (service update --publish-add):", found)
    up = deployed.stackgen("up", str(deployed.directory), "--resolve-image", "never", "--timeout", "300")
    assert up.returncode == 0, up.stdout + up.stderr
    code, report = deployed.verify("--probes", "none")
    assert code == 0 and ("SG202", "node-red-lab") not in _findings(report), _findings(report)


def test_down_removes_the_stack_and_says_swarm_keeps_the_volumes(deployed: SwarmStack):
    result = deployed.stackgen("down", str(deployed.directory))
    assert result.returncode == 0, result.stderr
    assert f"services, networks, configs and secrets of stack {deployed.project} removed" in result.stdout
    assert "volumes kept (Swarm never removes a stack's volumes)" in result.stdout and f"{deployed.project}_certs" in result.stdout
    label = {"label": f"com.docker.stack.namespace={deployed.project}"}
    client = deployed.node.client
    assert not client.services.list(filters=label) and not client.containers.list(all=True, filters=label)
    assert not client.networks.list(filters=label) and not client.configs.list(filters=label)
    assert client.volumes.list(filters=label)
    gone = deployed.stackgen("down", str(deployed.directory), "--volumes")
    assert gone.returncode == 0 and f"no stack {deployed.project} on this swarm" in gone.stdout, gone.stdout
    assert "volumes deleted on this node" in gone.stdout and not client.volumes.list(filters=label)
    status = deployed.stackgen("status", str(deployed.directory), "--json")
    assert all(not s["deployed"] for s in json.loads(status.stdout)["swarm"])
