"""Placement across two swarm nodes, for real: the reference stack (Caddy, certbot HTTP-01 against pebble) with two
Node-RED instances, the edge, certbot and instance A labelled onto the manager and instance B onto a worker, deployed
by `stackgen up` on the manager.

Proved: each task runs on the node its label names (Swarm's own task list; the worker holds B's task container and
nothing else); HTTPS for B's host name through the edge on the manager reaches B on the worker (the edge resolves B on
their shared overlay and the request crosses the link between the nodes: B answers its own admin password, A's is
refused); A cannot open a connection to B (nor B to A) across the nodes; `stackgen status` names both nodes; `stackgen
verify --live` on the manager judges B from its service spec and task status (saying so; B's process user `not checked`)
and probes B's cells from the manager and from probe services placed on the worker, passing with SG011 alone, and
catches B's service given a published port and A's overlay (SG202, SG102, SG207, SG301); `stackgen down` removes the
tasks, containers and networks on both nodes (the worker keeps B's volume, as Swarm does). And what
an encrypted overlay does between two nodes on this kernel: without IPsec ESP (CONFIG_INET_ESP), nothing crosses it,
and `stackgen up` says so: the stack is first deployed with encrypted overlays (the default), every task converges
healthy, and `up` fails because the edge gets no answer from B on the worker, naming both nodes, the missing ESP and
the fix; regenerated with `swarm.encrypted_overlays: false`, `up` refuses the overlays still deployed encrypted (`docker
stack deploy` keeps an existing network); after `down` (volumes and the certificate kept) `up` passes, its check that
the edge reaches A and B included, and the tests below run on that plain-overlay stack (docs/swarm.md "Two nodes").

The nodes are two private engines, each in network and UTS namespaces of its own (swarm_support.SwarmEngine), linked
by a veth pair with a /30 from the benchmarking range (198.18.14.0/30) that exists only inside the two namespaces; the
manager advertises on it, the worker joins over it with the worker token. Every stackgen command runs in the
manager's namespace with DOCKER_HOST at it (as test_swarm_operate.py does). Traffic stays on the namespaces' loopbacks,
the link and the overlays the test creates; `--resolve-image never` (no registry is asked). The worker gets only the
image its one service runs (Node-RED).
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from stackgen.generate import swarm
from tests import acme
from tests.images.build import pinned
from tests.integration.harness import PASSWORD, runner
from tests.integration.supervisor_support import wait_for
from tests.integration.swarm_stack import HTTP_PORT, HTTPS_PORT, SwarmStack, app, pebble_container, unavailable
from tests.integration.swarm_support import LINK_ADDRESSES, SwarmEngine
from tests.integration.test_instances_live import CONNECT, LAB_PASSWORD

pytestmark = pytest.mark.engine

TIMES: dict[str, float] = {}
MODULE_STARTED = time.monotonic()
UNREACHABLE = ("timeout", "error EHOSTUNREACH", "error ENETUNREACH")


def _kernel_has_esp() -> bool | None:
    """CONFIG_INET_ESP from /proc/config.gz (None: the kernel does not say)."""
    try:
        config = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        return None
    return any(line in ("CONFIG_INET_ESP=y", "CONFIG_INET_ESP=m") for line in config.splitlines())


class TwoNodes:
    def __init__(self) -> None:
        self.manager = SwarmEngine()
        self.worker = SwarmEngine()

    def start(self) -> None:
        began = time.monotonic()
        self.manager.start()
        self.worker.start()
        self.manager.link(self.worker)
        self.manager.init_swarm()
        self.worker.join(self.manager)
        wait_for(lambda: len([n for n in self.manager.client.nodes.list() if n.attrs["Status"]["State"] == "ready"]) == 2,
                 60, "both nodes ready", 0.3)
        TIMES["two engines started, linked, swarm joined"] = time.monotonic() - began

    def load_images(self) -> None:
        """The manager gets what its services run (and pebble), the worker only Node-RED: both copies at once."""
        seconds: dict[str, float] = {}
        errors: list[BaseException] = []

        def load(name: str, engine: SwarmEngine, images: list[str]) -> None:
            try:
                seconds[name] = engine.load_images(images)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=load, args=("manager", self.manager, [pinned("node-red"), pinned("caddy"),
                                                                                  pinned("certbot"), acme.PEBBLE_IMAGE])),
                   threading.Thread(target=load, args=("worker", self.worker, [pinned("node-red")]))]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        TIMES["images copied (both at once)"] = time.monotonic() - began
        TIMES.update({f"images copied to the {name}": s for name, s in seconds.items()})

    def cleanup(self) -> None:
        try:
            self.worker.cleanup()
        finally:
            self.manager.cleanup()


@pytest.fixture(scope="module")
def nodes(engine, local_images):
    for tool in ("unshare", "nsenter", "ip"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(os.pathsep)):
            unavailable(f"{tool} is missing: the swarm runs on private engines in network namespaces of their own")
    two = TwoNodes()
    try:
        two.start()
        two.load_images()
        yield two
    finally:
        two.cleanup()  # each leaves the swarm and stops; the link goes with the namespaces
        print(f"\ntwo nodes: {', '.join(f'{k} {v:.1f} s' for k, v in TIMES.items())}; "
              f"module {time.monotonic() - MODULE_STARTED:.1f} s")


def _pebble(node: SwarmEngine, project: str, workdir: Path) -> str:
    """Pebble as a service of the test's own on the stack's `public` overlay (made before `up` with the labels
    `docker stack deploy` looks for), alias `pebble`, on the manager (the only node with its image)."""
    node.docker("network", "create", "--driver", "overlay", "--label", f"com.docker.stack.namespace={project}", f"{project}_public")
    node.docker("config", "create", f"{project}-pebble-json", str(workdir / "pebble.json"))
    image = node.client.images.get(acme.PEBBLE_IMAGE).id
    name = f"{project}-pebble"
    node.docker("service", "create", "--detach", "--quiet", "--no-resolve-image", "--name", name, "--endpoint-mode", "dnsrr",
                "--constraint", "node.role==manager", "--network", f"name={project}_public,alias=pebble", "--config",
                f"source={project}-pebble-json,target=/etc/stackgen-test/pebble.json", "--env", "PEBBLE_VA_NOSLEEP=1",
                "--env", "PEBBLE_WFE_NONCEREJECT=0", "--entrypoint", "pebble -config /etc/stackgen-test/pebble.json", image)
    wait_for(lambda: node.client.containers.list(filters={"label": f"com.docker.swarm.service.name={name}"}), 60, "pebble", 0.3)
    return name


@pytest.fixture(scope="module")
def deployed(nodes: TwoNodes, engine, tmp_path_factory):
    manager, worker = nodes.manager, nodes.worker
    workdir = tmp_path_factory.mktemp("swarm-two-nodes")
    project = f"sgtwo-{manager.tag}"
    domain, lab_domain = "nodered.two.stackgen.test", "lab.two.stackgen.test"
    (workdir / "pw.txt").write_text(PASSWORD + "\n")
    (workdir / "lab-pw.txt").write_text(LAB_PASSWORD + "\n")
    ca_bundle = acme.prepare(engine, workdir)
    directory = workdir / "stack"
    for args in (
        ["init", str(directory), "--non-interactive", "--project", project, "--domain", domain, "--email", "ops@stackgen.test",
         "--edge", "caddy", "--admin-password-file", str(workdir / "pw.txt"), "--acme-directory", acme.DIRECTORY_URL,
         "--ca-bundle", str(ca_bundle), "--http-port", str(HTTP_PORT), "--https-port", str(HTTPS_PORT),
         "--image-node-red", pinned("node-red"), "--image-edge", pinned("caddy"), "--image-certbot", pinned("certbot")],
        ["instance", "add", str(directory), "lab", "--domain", lab_domain, "--non-interactive", "--admin-user", "lab-admin",
         "--admin-password-file", str(workdir / "lab-pw.txt"), "--image", pinned("node-red")],
    ):
        result = runner.invoke(app(), args)
        assert result.exit_code == 0, result.output
    # First with encrypted overlays (the default): on a kernel without IPsec ESP every task converges healthy and the edge
    # reaches nothing on the worker; `up` must say so. Then `swarm.encrypted_overlays: false`, which the tests below use.
    generated = runner.invoke(app(), ["generate", str(directory), "--target", "swarm"])
    assert generated.exit_code == 0, generated.output
    document = yaml.safe_load((directory / swarm.SWARM_FILE).read_text())
    assert all((n.get("driver_opts") or {}).get("encrypted") == "true" for n in document["networks"].values())
    labels = {pin["services"][0]: pin["label"] for pin in document["x-stackgen"]["placement"]}
    assert set(labels) == {"node-red", "node-red-lab", "edge"}, labels
    manager.label_node([labels["edge"], labels["node-red"]])
    manager.label_node([labels["node-red-lab"]], node=worker.node)  # a manager labels any node
    pebble = _pebble(manager, project, workdir)
    stack = SwarmStack(manager, directory, project, domain, lab_domain, workdir / "pebble-root.pem")
    stack.worker = worker
    stack.encrypted_up = None
    try:
        began = time.monotonic()
        stack.encrypted_up = stack.stackgen("up", str(directory), "--resolve-image", "never", "--timeout", "300")
        TIMES["stackgen up, encrypted overlays"] = time.monotonic() - began
        assert stack.encrypted_up.returncode in (0, 1), stack.encrypted_up.stdout + stack.encrypted_up.stderr
        # Every task converged (certbot healthy: the certificate is issued) before the edge was asked to reach B.
        stack.root.write_text(acme.issuing_root(pebble_container(manager, pebble)))

        with open(directory / "stack.yaml", "a") as spec:
            spec.write("swarm:\n  encrypted_overlays: false\n")
        generated = runner.invoke(app(), ["generate", str(directory), "--target", "swarm"])
        assert generated.exit_code == 0, generated.output
        assert "overlay encryption is OFF" in generated.output, "generate warns"
        document = yaml.safe_load((directory / swarm.SWARM_FILE).read_text())
        assert not any("encrypted" in (n.get("driver_opts") or {}) for n in document["networks"].values())
        began = time.monotonic()
        stack.kept_up = stack.stackgen("up", str(directory), "--resolve-image", "never", "--timeout", "300")
        TIMES["stackgen up refusing the kept encrypted overlays"] = time.monotonic() - began

        # Pebble sits on the stack's public overlay: gone first, or `docker stack rm` cannot remove that network.
        manager.docker("service", "rm", pebble)
        wait_for(lambda: not manager.client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.name={pebble}"}),
                 60, "pebble gone", 0.3)
        began = time.monotonic()
        down = stack.stackgen("down", str(directory))
        assert down.returncode == 0, down.stdout + down.stderr
        TIMES["stackgen down (volumes kept)"] = time.monotonic() - began
        began = time.monotonic()
        up = stack.stackgen("up", str(directory), "--resolve-image", "never", "--timeout", "300")
        TIMES["stackgen up, plain overlays (certificate kept)"] = time.monotonic() - began
        assert up.returncode == 0, up.stdout + up.stderr
        assert "deployed to the swarm, every service converged" in up.stdout, up.stdout
        wait_for(lambda: stack.request(lab_domain, "/editor/")["status"] == 200, 120, "HTTPS to B with pebble's certificate", 1)
        TIMES["up -> HTTPS 200 for B"] = time.monotonic() - began
        stack.up = up
        print(f"\n{up.stdout}")
        yield stack
    finally:
        stack.stackgen("down", str(directory), "--volumes")


def _said(result) -> str:
    """What a stackgen command printed, its lines joined (rich wraps long ones)."""
    return " ".join((result.stdout + result.stderr).split())


def test_up_fails_when_the_edge_cannot_reach_b_over_an_encrypted_overlay_between_the_nodes(deployed: SwarmStack):
    """The first `up`, with encrypted overlays: every task runs healthy, but without IPsec ESP in this kernel nothing
    crosses between the nodes, and `up` says which instance, on which node, the likely cause and the fix."""
    esp = _kernel_has_esp()
    if esp is None:
        pytest.skip("the kernel does not publish its config (/proc/config.gz): cannot say what to expect")
    result, said = deployed.encrypted_up, _said(deployed.encrypted_up)
    manager_name, worker_name = deployed.node.client.info()["Name"], deployed.worker.client.info()["Name"]
    print(f"\nup with encrypted overlays (kernel CONFIG_INET_ESP: {'yes' if esp else 'no'}): exit {result.returncode}\n"
          f"{result.stdout}{result.stderr}")
    if esp:
        assert result.returncode == 0 and "the edge reaches every instance over its overlay" in said, said
        return
    assert result.returncode == 1, said
    assert "every service converged" not in result.stdout, "no success line"
    assert f"the edge (edge, on node {manager_name}) gets no answer from instance node-red-lab within 10s" in said, said
    assert f"node-red-lab runs on node {worker_name}: http://node-red-lab:1880/editor: wget: download timed out" in said, said
    assert "Likely cause: internal-lab is encrypted (IPsec ESP between the nodes) and a node's kernel has no IPsec ESP" in said
    assert "grep CONFIG_INET_ESP /boot/config-$(uname -r)" in said and "Failed Adding ... SA: function not implemented" in said
    assert "set `swarm: {encrypted_overlays: false}` in stack.yaml" in said and "plain VXLAN, readable and injectable" in said
    assert "node-red runs on" not in said, "A, on the edge's node, answered"


def test_up_refuses_an_overlay_still_encrypted_once_the_file_says_plain(deployed: SwarmStack):
    """`docker stack deploy` keeps a network that exists as it is: regenerated with `encrypted_overlays: false`, the
    deployed overlays stay encrypted, so `up` refuses before deploying and says to take the stack down first."""
    said = _said(deployed.kept_up)
    assert deployed.kept_up.returncode != 0, said
    assert "deployed encrypted, and compose.swarm.yaml now renders it without encryption" in said, said
    assert "_internal-lab" in said and f"stackgen down {deployed.directory}" in said


def test_up_checks_that_the_edge_reaches_b_on_the_worker_over_the_plain_overlay(deployed: SwarmStack):
    worker_name = deployed.worker.client.info()["Name"]
    said = _said(deployed.up)
    assert f"the edge reaches every instance over its overlay: node-red (this node), node-red-lab (node {worker_name}) answered in" in said
    assert "warning: not checked" not in said


def _task_container(engine: SwarmEngine, project: str, service: str):
    found = engine.stack_containers(project, service)
    assert len(found) == 1, f"{service}: {len(found)} running task containers on {engine.name}"
    found[0].reload()
    return found[0]


def _connect(container, host: str, port: int = 1880) -> str:
    result = container.exec_run(["node", "-e", CONNECT, host, str(port)])
    assert result.exit_code == 0, result.output
    return result.output.decode().strip().splitlines()[-1]


def test_each_task_runs_on_the_node_its_label_names(deployed: SwarmStack):
    manager, worker = deployed.node, deployed.worker
    expected = {"edge": manager.node, "certbot": manager.node, "node-red": manager.node, "node-red-lab": worker.node}
    for service, node in expected.items():
        tasks = manager.client.services.get(f"{deployed.project}_{service}").tasks(filters={"desired-state": "running"})
        assert [t["NodeID"] for t in tasks] == [node], (service, tasks)
        assert tasks[0]["Status"]["State"] == "running", (service, tasks[0]["Status"])
    on_worker = {c.labels.get("com.docker.swarm.service.name") for c in worker.client.containers.list()}
    assert on_worker == {f"{deployed.project}_node-red-lab"}, on_worker
    assert not manager.stack_containers(deployed.project, "node-red-lab")


def test_https_for_bs_host_name_through_the_edge_on_the_manager_reaches_b_on_the_worker(deployed: SwarmStack):
    answer = deployed.request(deployed.lab_domain, "/editor/")
    assert answer["status"] == 200, answer
    assert deployed.token_status(deployed.lab_domain, "lab-admin", LAB_PASSWORD) == 200, "B, on the worker, took its own admin"
    assert deployed.token_status(deployed.lab_domain, "admin", PASSWORD) in (401, 403), "and not A's"
    assert deployed.token_status(deployed.domain, "admin", PASSWORD) == 200, "A, on the manager, still answers"
    # What the edge resolved B to is B's task on the worker, on their shared overlay (the request crossed the link).
    lab = _task_container(deployed.worker, deployed.project, "node-red-lab")
    b_address = lab.attrs["NetworkSettings"]["Networks"][f"{deployed.project}_internal-lab"]["IPAddress"]
    edge = _task_container(deployed.node, deployed.project, "edge")
    resolved = edge.exec_run(["getent", "hosts", "node-red-lab"])
    if resolved.exit_code == 0:  # where the edge's image has getent
        assert resolved.output.decode().split()[0] == b_address, resolved.output
    print(f"\nB on the worker at {b_address} (link {LINK_ADDRESSES[0]} <-> {LINK_ADDRESSES[1]}); HTTPS through the edge 200")


def test_instance_a_cannot_reach_b_across_the_nodes(deployed: SwarmStack):
    a = _task_container(deployed.node, deployed.project, "node-red")
    b = _task_container(deployed.worker, deployed.project, "node-red-lab")
    b_address = b.attrs["NetworkSettings"]["Networks"][f"{deployed.project}_internal-lab"]["IPAddress"]
    a_address = a.attrs["NetworkSettings"]["Networks"][f"{deployed.project}_internal"]["IPAddress"]
    assert _connect(a, b_address) in UNREACHABLE
    assert _connect(a, "node-red-lab") == "unresolved", "B's name is not known on A's overlay"
    assert _connect(b, a_address) in UNREACHABLE
    assert _connect(b, "node-red") == "unresolved"


def test_status_names_both_nodes(deployed: SwarmStack):
    result = deployed.stackgen("status", str(deployed.directory), "--json")
    assert result.returncode == 0, result.stderr
    services = {s["service"]: s for s in json.loads(result.stdout)["swarm"]}
    manager_name, worker_name = deployed.node.client.info()["Name"], deployed.worker.client.info()["Name"]
    assert manager_name != worker_name
    expected = {"edge": manager_name, "certbot": manager_name, "node-red": manager_name, "node-red-lab": worker_name}
    for name, node in expected.items():
        task = services[name]["tasks"][0]
        assert services[name]["replicas"] == "1/1" and task["state"] == "running" and task["node"] == node, (name, task)
        assert task["health"] == "healthy", (name, task)  # B's from its task state (its container is on the worker)
    text = deployed.stackgen("status", str(deployed.directory))
    assert worker_name in text.stdout and manager_name in text.stdout
    print("\n" + text.stdout)


def test_an_encrypted_overlay_between_the_nodes_carries_traffic_only_with_ipsec_esp(deployed: SwarmStack):
    """The finding behind `swarm.encrypted_overlays`: a listener on the worker, attached to an encrypted and a plain
    overlay, connected to from the manager over each. Without ESP in the kernel the encrypted one deploys without error
    and carries nothing (the engine's log says why); the plain one carries it."""
    manager, worker = deployed.node, deployed.worker
    esp = _kernel_has_esp()
    if esp is None:
        pytest.skip("the kernel does not publish its config (/proc/config.gz): cannot say what to expect")
    name = f"sgenc-{manager.tag}"
    image = manager.client.images.get(pinned("node-red")).id
    manager.docker("network", "create", "--driver", "overlay", "--attachable", "--opt", "encrypted=true", f"{name}-enc")
    manager.docker("network", "create", "--driver", "overlay", "--attachable", f"{name}-plain")
    try:
        manager.docker("service", "create", "--detach", "--quiet", "--no-resolve-image", "--name", name, "--endpoint-mode",
                       "dnsrr", "--constraint", f"node.id=={worker.node}", "--network", f"{name}-enc", "--network",
                       f"{name}-plain", "--user", "1000", "--entrypoint", "node", image, "-e",
                       "require('net').createServer(s => s.end('hi')).listen(9000)")
        listener = wait_for(lambda: worker.client.containers.list(filters={"label": f"com.docker.swarm.service.name={name}"}),
                            60, "the listener on the worker", 0.3)[0]
        listener.reload()
        seen = {}
        for kind in ("enc", "plain"):
            address = listener.attrs["NetworkSettings"]["Networks"][f"{name}-{kind}"]["IPAddress"]
            result = manager.docker("run", "--rm", "--network", f"{name}-{kind}", "--user", "1000", "--entrypoint", "node",
                                    image, "-e", CONNECT, address, "9000", timeout=60)
            seen[kind] = result.stdout.strip().splitlines()[-1]
        print(f"\nfrom the manager to the worker: encrypted overlay {seen['enc']}, plain overlay {seen['plain']} "
              f"(kernel CONFIG_INET_ESP: {'yes' if esp else 'no'})")
        assert seen["plain"] == "open", seen
        if esp:
            assert seen["enc"] == "open", seen
        else:
            assert seen["enc"] in UNREACHABLE, f"an encrypted overlay crossed the nodes without ESP in the kernel: {seen}"
            assert "function not implemented" in manager.log_path.read_text(), "the engine logs the security association it could not add"
    finally:
        manager.docker("service", "rm", name, check=False)
        wait_for(lambda: not worker.client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.name={name}"}),
                 60, "the listener gone", 0.3)
        for kind in ("enc", "plain"):
            manager.docker("network", "rm", f"{name}-{kind}", check=False)


def _verify(stack: SwarmStack, *extra: str) -> tuple[int, dict, float]:
    began = time.monotonic()
    result = stack.stackgen("verify", "--live", str(stack.directory), "--ca-file", str(stack.root), "--format", "json", *extra)
    assert result.returncode in (0, 1), result.stderr + result.stdout
    return result.returncode, json.loads(result.stdout), time.monotonic() - began


def _matrix_text(report: dict) -> str:
    """The matrix and the checks as `verify --live` prints them, from its JSON report (no second verify)."""
    from types import SimpleNamespace

    from stackgen.cli.output import render_checks, render_matrix

    cells = [SimpleNamespace(service=c["service"], port=c["port"], address=c["address"], via=c["network"], vantage=c["from"],
                             expected=c["expected"], observed=c["observed"], ok=c["ok"]) for c in report["live"]["reachability"]]
    checks = [SimpleNamespace(name=c["check"], ok=c["ok"], detail=c["detail"]) for c in report["live"]["checks"]]
    result = SimpleNamespace(cells=lambda: cells, checks=checks)
    return render_matrix(result) + "\n" + render_checks(result)


def _unsuppressed(report: dict) -> list[tuple[str, str]]:
    return sorted((f["rule"], f["service"]) for f in report["findings"] if not f["suppressed"])


def _current_task(stack: SwarmStack, service: str) -> dict | None:
    tasks = stack.node.client.services.get(f"{stack.project}_{service}").tasks(filters={"desired-state": "running"})
    return tasks[0] if len(tasks) == 1 else None


def _verify_after(stack: SwarmStack, service: str, *update: str) -> tuple[int, dict]:
    """A break made by `docker service update` on `service` (B, on the worker), judged by verify --live on the manager
    once its new task runs (healthy: a task with a healthcheck is `running` only once healthy), then undone by `docker
    service rollback` (detached: the module's next test takes the stack down anyway)."""
    began = time.monotonic()
    before = (_current_task(stack, service) or {}).get("ID")
    stack.node.docker("service", "update", "--detach", "--quiet", *update, f"{stack.project}_{service}", timeout=60)

    def replaced() -> bool:
        task = _current_task(stack, service)
        return task is not None and task["ID"] != before and task["Status"]["State"] == "running"

    wait_for(replaced, 120, f"{service}'s new task running", 0.5)
    TIMES["break: B's task replaced and healthy"] = time.monotonic() - began
    try:
        code, report, seconds = _verify(stack)
        TIMES["verify --live of the break"] = seconds
        return code, report
    finally:
        stack.node.docker("service", "rollback", "--detach", "--quiet", f"{stack.project}_{service}", timeout=60)


def test_verify_live_on_the_manager_judges_b_on_the_worker_from_its_spec_and_probes_it_from_there(deployed: SwarmStack):
    """Before: B (on the worker) was SG206 "declared but has no running container", exit 0, and none of its cells, its
    editor gate, login shield, egress or key checks were there (silently). Now B is judged from its service spec and
    task status (said so, and its process user 'not checked'), its cells are probed from the manager and from probe
    services on the worker, and the healthy stack passes with the SG011 Swarm drops alone."""
    worker_name = deployed.worker.client.info()["Name"]
    code, report, seconds = _verify(deployed)
    TIMES["verify --live, healthy (all probes)"] = seconds
    assert code == 0, json.dumps(report["findings"], indent=1)
    assert _unsuppressed(report) == [("SG011", s) for s in sorted(("certbot", "edge", "node-red", "node-red-lab"))]
    cells = report["live"]["reachability"]
    assert cells and all(c["ok"] for c in cells), [c for c in cells if not c["ok"]]
    b_cells = [c for c in cells if c["service"] == "node-red-lab"]
    from_worker = {c["from"] for c in b_cells if c["from"].endswith(f" @ {worker_name}")}
    assert from_worker == {f"{n} @ {worker_name}" for n in ("internal", "internal-lab", "public")}, b_cells
    assert {"internal", "internal-lab", "public", "host", "inside edge"} <= {c["from"] for c in b_cells}, "and from the manager"
    assert [c["observed"] for c in b_cells if c["from"] in ("internal-lab", "inside edge")] == ["open", "open"], "the edge reaches B"
    assert any(c["from"] == "inside node-red-lab" and c["service"] == "node-red" and c["observed"] != "open" for c in cells)
    checks = {c["check"]: c for c in report["live"]["checks"]}
    seen = checks["node-red-lab observed from its service spec"]
    assert seen["ok"] and f"on node {worker_name}" in seen["detail"], seen
    assert checks["probe inside node-red-lab (a stand-in)"]["ok"]
    assert checks["key not readable in node-red-lab"]["ok"]
    for name in ("editor refused outside allow", "login shield bans a guessing address", "endpoint reachable outside allow"):
        assert checks[f"{name} [instance lab]"]["ok"], checks[f"{name} [instance lab]"]
    assert checks["no route out of node-red-lab"]["ok"], checks["no route out of node-red-lab"]
    failed = [c for c in report["live"]["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == ["process user of node-red-lab"], failed
    assert failed[0]["detail"].startswith("not checked: its process runs on node " + worker_name)
    print(f"\nverify --live on the manager ({seconds:.1f} s), B on {worker_name}:\n{_matrix_text(report)}")
    assert not deployed.node.client.services.list(filters={"label": "org.stackgen.probe"}), "every probe service removed"


def test_verify_live_on_the_manager_catches_a_break_of_b_on_the_worker(deployed: SwarmStack):
    """B's service given a published port and A's overlay at once (one update, one verify, one rollback: the module's
    time): the spec shows both (SG202, SG102, SG207), and B's address on A's overlay opens from there (SG301)."""
    code, report = _verify_after(deployed, "node-red-lab", "--publish-add", "published=31880,target=1880,mode=host",
                                 "--network-add", f"{deployed.project}_internal")
    found = _unsuppressed(report)
    print(f"\nB published and on A's overlay: exit {code}, {found}; live {report['live']['seconds']} s")
    assert code == 1, found
    assert {("SG202", "node-red-lab"), ("SG102", "node-red-lab"), ("SG207", "node-red-lab"), ("SG301", "node-red-lab")} <= set(found), found
    opened = [c for c in report["live"]["reachability"] if c["service"] == "node-red-lab" and c["network"] == "internal"
              and c["observed"] == "open" and not c["ok"]]
    assert opened, "B's address on A's overlay opens from there"


def test_down_cleans_up_on_both_nodes(deployed: SwarmStack):
    manager, worker = deployed.node, deployed.worker
    began = time.monotonic()
    result = deployed.stackgen("down", str(deployed.directory))
    TIMES["stackgen down"] = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    label = {"label": f"com.docker.stack.namespace={deployed.project}"}
    assert not manager.client.services.list(filters=label)
    for engine in (manager, worker):
        wait_for(lambda engine=engine: not engine.client.containers.list(all=True, filters=label), 60,
                 f"no task container left on {engine.name}", 0.5)
        wait_for(lambda engine=engine: not [n for n in engine.client.networks.list() if n.name.startswith(f"{deployed.project}_")],
                 60, f"no stack network left on {engine.name}", 0.5)
    # Swarm keeps volumes on every node: B's stays on the worker, where `down --volumes` on the manager cannot reach it.
    assert [v.name for v in worker.client.volumes.list(filters=label)] == [f"{deployed.project}_node-red-lab-data"]
    gone = deployed.stackgen("down", str(deployed.directory), "--volumes")
    assert gone.returncode == 0, gone.stderr
    assert not manager.client.volumes.list(filters=label)
    assert worker.client.volumes.list(filters=label), "the worker keeps its own (docker volume rm there)"

