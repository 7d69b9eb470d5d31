"""A stackgen stack deployed to a private swarm, as the swarm test modules use it (one node or two).

Why a module of its own: test_swarm_operate, test_swarm_supervise and test_swarm_two_nodes each deploy the reference
stack the same way (`init` -> `instance add`... -> `generate --target swarm` -> the placement labels -> pebble as a
service on the stack's `public` overlay -> `stackgen up` inside the engine's network namespace) and talk to it the same
way (HTTPS through the edge's host-mode port from inside the namespace, exec in task containers). Written once here.

Every stackgen command runs as a subprocess inside the private engine's network namespace with DOCKER_HOST at it, as
a user on that node would run it (the edge's ports are on the namespace's loopback). Traffic stays on that loopback
and the overlays the stack creates; `--resolve-image never` (no registry is asked).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from stackgen.generate import swarm
from tests import acme
from tests.images.build import pinned
from tests.integration.conftest import _unavailable as unavailable
from tests.integration.harness import PASSWORD, runner
from tests.integration.supervisor_support import wait_for
from tests.integration.swarm_support import SwarmEngine
from tests.integration.test_instances_live import CONNECT

ROOT = Path(__file__).resolve().parents[2]
HTTP_PORT, HTTPS_PORT = 38080, 38443  # inside the private namespace: nothing else listens there

# Runs inside the swarm's namespace: one HTTPS request through the edge's host-mode port; the status (0: no answer).
REQUEST = """
import json, sys
from stackgen.live import probes
port, name, path, cafile, method, body = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else None
try:
    r = probes.https_request("127.0.0.1", port, name, path, cafile=cafile, method=method, body=body.encode() or None,
                             headers=headers, timeout=10)
    print(json.dumps({"status": r.status, "names": r.certificate.get("subjectAltName", [])}))
except Exception as exc:
    print(json.dumps({"status": 0, "error": repr(exc)}))
"""


def app():
    from stackgen.cli.app import app as cli

    return cli


@dataclass
class SwarmStack:
    node: SwarmEngine
    directory: Path
    project: str
    domain: str
    lab_domain: str
    root: Path  # pebble's issuing root

    def stackgen(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """`stackgen ARGS` as a user on the swarm's node runs it: in its network namespace, DOCKER_HOST at its engine."""
        env = {**os.environ, "DOCKER_HOST": self.node.url, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
        command = ["nsenter", "-t", str(self.node.process.pid), "-n", sys.executable, "-m", "stackgen", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)

    def request(self, domain: str, path: str, method: str = "GET", body: str = "") -> dict:
        return self.node.in_namespace(REQUEST, str(HTTPS_PORT), domain, path, str(self.root), method, body)

    def token_status(self, domain: str, user: str, password: str) -> int:
        body = f"client_id=node-red-admin&grant_type=password&scope=*&username={user}&password={password}"
        return self.request(domain, "/editor/auth/token", "POST", body)["status"]

    def container(self, service: str):
        found = self.node.stack_containers(self.project, service)
        assert len(found) == 1, f"{service}: {len(found)} running task containers"
        found[0].reload()
        return found[0]

    def connect_from(self, service: str, host: str, port: int = 1880) -> str:
        result = self.container(service).exec_run(["node", "-e", CONNECT, host, str(port)])
        assert result.exit_code == 0, result.output
        return result.output.decode().strip().splitlines()[-1]

    def address(self, service: str, network: str) -> str:
        return self.container(service).attrs["NetworkSettings"]["Networks"][f"{self.project}_{network}"]["IPAddress"]

    def verify(self, *extra: str) -> tuple[int, dict]:
        """`stackgen verify --live` (JSON) with pebble's root as the CA; its exit code (0 or 1) and report."""
        result = self.stackgen("verify", "--live", str(self.directory), "--ca-file", str(self.root), "--format", "json", *extra)
        assert result.returncode in (0, 1), result.stderr + result.stdout
        return result.returncode, json.loads(result.stdout)

    def up(self, *extra: str) -> subprocess.CompletedProcess:
        return self.stackgen("up", str(self.directory), "--resolve-image", "never", "--timeout", "300", *extra)


def private_swarm(images: Sequence[str] = ()) -> Iterator[SwarmEngine]:
    """A private single-node swarm manager with the stack's images (and pebble's) loaded; left and removed after."""
    for tool in ("unshare", "nsenter", "ip"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(os.pathsep)):
            unavailable(f"{tool} is missing: the swarm runs on a private engine in its own network namespace")
    node = SwarmEngine()
    try:
        node.start()
        node.init_swarm()
        node.load_seconds = node.load_images(list(images or stack_images()))
        yield node
    finally:
        node.cleanup()  # leaves the swarm, stops the daemon, removes its directories


def stack_images() -> list[str]:
    """The reference stack's images on a swarm (Caddy edge) and the test's CA."""
    return [pinned("node-red"), pinned("caddy"), pinned("certbot"), acme.PEBBLE_IMAGE]


def pebble(node: SwarmEngine, project: str, workdir: Path, constraint: str | None = None) -> str:
    """Pebble as a service of the test's own on the stack's `public` overlay, made before `up` with the labels
    `docker stack deploy` looks for (so the deploy takes it as the stack's network), alias `pebble`. `constraint`:
    a placement constraint (a node that has pebble's image)."""
    node.docker("network", "create", "--driver", "overlay", "--opt", "encrypted=true", "--label",
                f"com.docker.stack.namespace={project}", f"{project}_public")
    node.docker("config", "create", f"{project}-pebble-json", str(workdir / "pebble.json"))
    image = node.client.images.get(acme.PEBBLE_IMAGE).id
    name = f"{project}-pebble"
    placement = ["--constraint", constraint] if constraint else []
    node.docker("service", "create", "--detach", "--quiet", "--no-resolve-image", "--name", name, "--endpoint-mode", "dnsrr",
                "--network", f"name={project}_public,alias=pebble", "--config",
                f"source={project}-pebble-json,target=/etc/stackgen-test/pebble.json", "--env", "PEBBLE_VA_NOSLEEP=1",
                "--env", "PEBBLE_WFE_NONCEREJECT=0", *placement, "--entrypoint", "pebble -config /etc/stackgen-test/pebble.json",
                image)
    wait_for(lambda: node.client.containers.list(filters={"label": f"com.docker.swarm.service.name={name}"}), 60, "pebble", 0.3)
    return name


def pebble_container(node: SwarmEngine, name: str):
    return node.client.containers.list(filters={"label": f"com.docker.swarm.service.name={name}"})[0]


def make_stack(node: SwarmEngine, engine, workdir: Path, project: str, domain: str, lab_domain: str | None = None,
               lab_password: str | None = None) -> SwarmStack:
    """The reference stack (Caddy, certbot HTTP-01 against pebble) made through the CLI as a user makes it: `init`,
    `instance add lab` when `lab_domain` is given, `generate --target swarm`; its nodes labelled as the stack file's
    header says. Nothing is deployed yet."""
    (workdir / "pw.txt").write_text(PASSWORD + "\n")
    ca_bundle = acme.prepare(engine, workdir)  # pebble's TLS CA and config (a container created, never started)
    directory = workdir / "stack"
    steps = [
        ["init", str(directory), "--non-interactive", "--project", project, "--domain", domain, "--email", "ops@stackgen.test",
         "--edge", "caddy", "--admin-password-file", str(workdir / "pw.txt"), "--acme-directory", acme.DIRECTORY_URL,
         "--ca-bundle", str(ca_bundle), "--http-port", str(HTTP_PORT), "--https-port", str(HTTPS_PORT),
         "--image-node-red", pinned("node-red"), "--image-edge", pinned("caddy"), "--image-certbot", pinned("certbot")],
    ]
    if lab_domain:
        (workdir / "lab-pw.txt").write_text(f"{lab_password}\n")
        steps.append(["instance", "add", str(directory), "lab", "--domain", lab_domain, "--non-interactive", "--admin-user",
                      "lab-admin", "--admin-password-file", str(workdir / "lab-pw.txt"), "--image", pinned("node-red")])
    steps.append(["generate", str(directory), "--target", "swarm"])
    for args in steps:
        result = runner.invoke(app(), args)
        assert result.exit_code == 0, result.output
    return SwarmStack(node, directory, project, domain, lab_domain or domain, workdir / "pebble-root.pem")


def placement_labels(stack: SwarmStack) -> list[str]:
    """The node labels compose.swarm.yaml's placement asks for (its x-stackgen header)."""
    document = yaml.safe_load((stack.directory / swarm.SWARM_FILE).read_text())
    return [pin["label"] for pin in document["x-stackgen"]["placement"]]


def issued(stack: SwarmStack, pebble_name: str, path: str = "/editor/") -> None:
    """Pebble's issuing root saved for the probes, and HTTPS through the edge answering 200 with its certificate."""
    stack.root.write_text(acme.issuing_root(pebble_container(stack.node, pebble_name)))
    wait_for(lambda: stack.request(stack.domain, path)["status"] == 200, 120, "HTTPS with pebble's certificate", 1)
