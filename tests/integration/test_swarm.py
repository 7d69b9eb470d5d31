"""compose.swarm.yaml against the real thing: `docker stack config` takes every edge x TLS mode, and the reference
stack (Caddy and NGINX, certbot HTTP-01 against pebble) deploys on a single-node swarm and converges.

The swarm lives on a private engine in a network namespace of its own (tests/integration/swarm_support.py: the
shared engine and everything else running on it never see a swarm); its finalizer leaves the swarm. Traffic stays
inside that namespace: its loopback and the overlays the stack creates; pebble (our ACME test CA) is a service of
the test's own, merged into the deploy with a second `-c` file, on the stack's `public` network as in the compose
harness. Measured: the time from `docker stack deploy` to every service converged and HTTPS answering with the
certificate pebble issued.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from stackgen.generate import swarm
from stackgen.generate.files import RenderedFile
from stackgen.generate.render import render
from tests import acme, golden
from tests.images.build import pinned
from tests.integration.conftest import _unavailable
from tests.integration.harness import PASSWORD, runner
from tests.integration.supervisor_support import wait_for
from tests.integration.swarm_support import SwarmEngine

pytestmark = pytest.mark.engine

EDGES = ("caddy", "nginx")  # Traefik has no twin image (no binary reachable here): held by the unit tests and stack config
PORTS = {"caddy": (18080, 18443), "nginx": (28080, 28443)}  # inside the private namespace: nothing else listens there
OLD_CLI = Path("/usr/bin/docker")  # Debian's 20.10 CLI, when the newer one is first on PATH

PEBBLE_SERVICE = """\
version: "3.9"
services:
  pebble:
    image: {image}
    entrypoint: [pebble, -config, /etc/stackgen-test/pebble.json]
    environment: {{PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0"}}
    configs:
      - {{source: pebble-json, target: /etc/stackgen-test/pebble.json}}
    networks: [public]
    deploy: {{endpoint_mode: dnsrr}}
configs:
  pebble-json: {{file: {config}}}
"""

# Runs inside the swarm's namespace: one HTTPS request through the edge's host-mode port, the facts as JSON.
PROBE = """
import json, sys
from stackgen.live import probes
port, name, path, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    r = probes.https_request("127.0.0.1", port, name, path, cafile=cafile, timeout=10)
    print(json.dumps({"status": r.status, "issuer": dict(x[0] for x in r.certificate.get("issuer", ())), "tls": r.tls_version}))
except Exception as exc:
    print(json.dumps({"status": 0, "error": repr(exc)}))
"""


def _stack_config_supported() -> bool:
    return subprocess.run(["docker", "stack", "config", "--help"], capture_output=True).returncode == 0


@pytest.mark.parametrize("combo", golden.combos(), ids=[f"{e}-{m}" for e, m in golden.combos()])
def test_docker_stack_config_accepts_every_variant(combo, tmp_path: Path):
    """The docker CLI's own loader (schema 3.9, merge, interpolation) takes the file as written."""
    if shutil.which("docker") is None or not _stack_config_supported():
        _unavailable("this docker CLI has no `docker stack config` (it came after 20.10)")
    stack = golden.golden_stack(*combo)
    rendered = render(stack)
    for item in rendered:
        (tmp_path / item.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / item.path).write_bytes(item.content)
    extra = []
    for path in ("secrets/node_red_credential_secret", stack.tls.dns_credentials_file, stack.tls.ca_bundle):
        if path:
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text("x\n")
    if stack.tls.ca_bundle:
        extra.append(RenderedFile(stack.tls.ca_bundle, b"x\n"))
    (tmp_path / "tls").mkdir(exist_ok=True)
    compose_yaml = next(f.content for f in rendered if f.path == "compose.yaml")
    stack_file, _ = swarm.swarm_file(compose_yaml, rendered + extra)
    (tmp_path / swarm.SWARM_FILE).write_bytes(stack_file.content)
    result = subprocess.run(["docker", "stack", "config", "-c", swarm.SWARM_FILE], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    assert set(merged["services"]) == set(yaml.safe_load(compose_yaml)["services"])
    assert all(port["mode"] == "host" for port in merged["services"]["edge"]["ports"])
    assert merged["networks"]["internal"]["internal"] is True


@pytest.fixture(scope="module")
def swarm_engine(engine, local_images):
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} is missing: the swarm runs on a private engine in its own network namespace")
    node = SwarmEngine()
    try:
        node.start()
        node.init_swarm()
        images = [pinned("node-red"), pinned("caddy"), pinned("nginx"), pinned("certbot"), acme.PEBBLE_IMAGE]
        node.load_seconds = node.load_images(images)
        yield node
    finally:
        node.cleanup()  # leaves the swarm (docker swarm leave --force), stops the daemon, removes its directories


class Deployed:
    def __init__(self, node: SwarmEngine, edge: str, project: str, directory: Path, domain: str, https_port: int,
                 deploy_output: str, converged_after: float, root: Path) -> None:
        self.node, self.edge, self.project, self.directory, self.domain = node, edge, project, directory, domain
        self.https_port, self.deploy_output, self.converged_after, self.root = https_port, deploy_output, converged_after, root

    def container(self, service: str):
        found = self.node.stack_containers(self.project, service)
        assert len(found) == 1, f"{service}: {len(found)} containers"
        found[0].reload()
        return found[0]

    def https(self, path: str = "/") -> dict:
        return self.node.in_namespace(PROBE, str(self.https_port), self.domain, path, str(self.root))


def _converged(node: SwarmEngine, project: str, names: tuple[str, ...] = ("node-red", "edge", "certbot")) -> bool:
    """Every service's task running (Swarm reports a task with a healthcheck running once it is healthy) and healthy."""
    services = node.client.services.list(filters={"label": f"com.docker.stack.namespace={project}"})
    wanted = {f"{project}_{name}" for name in names}
    if not wanted <= {service.name for service in services}:
        return False
    for service in services:
        if service.name in wanted and not any(
                task["Status"]["State"] == "running" for task in service.tasks(filters={"desired-state": "running"})):
            return False
    return all(node.stack_containers(project, name) and
               node.stack_containers(project, name)[0].attrs["State"].get("Health", {}).get("Status") == "healthy"
               for name in names)


@pytest.fixture(scope="module", params=EDGES)
def deployed(request, swarm_engine: SwarmEngine, engine, tmp_path_factory):
    edge = request.param
    node = swarm_engine
    workdir = tmp_path_factory.mktemp(f"swarm-{edge}")
    project = f"sgswarm-{edge}-{node.tag}"
    domain = f"nodered-{edge}.swarm.stackgen.test"
    http_port, https_port = PORTS[edge]
    (workdir / "pw.txt").write_text(PASSWORD + "\n")
    ca_bundle = acme.prepare(engine, workdir)  # pebble's TLS CA and config (a container created, never started)
    directory = workdir / "stack"
    result = runner.invoke(swarm_cli_app(), [
        "init", str(directory), "--non-interactive", "--project", project, "--domain", domain,
        "--email", "ops@stackgen.test", "--edge", edge, "--admin-password-file", str(workdir / "pw.txt"),
        "--acme-directory", acme.DIRECTORY_URL, "--ca-bundle", str(ca_bundle),
        "--http-port", str(http_port), "--https-port", str(https_port),
        "--image-node-red", pinned("node-red"), "--image-edge", pinned(edge), "--image-certbot", pinned("certbot"),
    ])
    assert result.exit_code == 0, result.output
    result = runner.invoke(swarm_cli_app(), ["generate", str(directory), "--target", "swarm"])
    assert result.exit_code == 0 and "docker stack deploy" in result.output, result.output
    (workdir / "pebble.swarm.yaml").write_text(PEBBLE_SERVICE.format(image=acme.PEBBLE_IMAGE, config=workdir / "pebble.json"))
    document = yaml.safe_load((directory / swarm.SWARM_FILE).read_text())
    node.label_node([pin["label"] for pin in document["x-stackgen"]["placement"]])
    started = time.monotonic()
    deploy = node.docker("stack", "deploy", "--resolve-image", "never", "-c", swarm.SWARM_FILE, "-c", str(workdir / "pebble.swarm.yaml"),
                         project, cwd=directory)
    wait_for(lambda: _converged(node, project, ("node-red", "edge")), 300, f"{project}'s edge and Node-RED", 0.5)
    serving_after = time.monotonic() - started
    wait_for(lambda: _converged(node, project), 300, f"{project} to converge", 0.5)
    root = workdir / "pebble-root.pem"
    pebble = node.stack_containers(project, "pebble")[0]
    root.write_text(acme.issuing_root(pebble))
    wait_for(lambda: node.in_namespace(PROBE, str(https_port), domain, "/editor/", str(root))["status"] == 200, 120,
             "HTTPS with pebble's certificate", 1)
    converged_after = time.monotonic() - started
    first_attempt = [line for line in node.stack_containers(project, "certbot")[0].logs().decode("utf-8", "replace").splitlines()
                     if "stackgen-certbot:" in line][:1]
    print(f"\nswarm {edge}: images loaded in {node.load_seconds:.1f} s; deploy -> edge and Node-RED healthy in "
          f"{serving_after:.1f} s; -> certificate issued, every service converged, HTTPS 200 in {converged_after:.1f} s "
          f"(certbot's first word: {first_attempt})")
    yield Deployed(node, edge, project, directory, domain, https_port, deploy.stdout + deploy.stderr, converged_after, root)
    node.docker("stack", "rm", project, check=False)
    wait_for(lambda: not node.client.containers.list(all=True, filters={"label": f"com.docker.stack.namespace={project}"}),
             120, f"{project}'s containers to go", 1)


def swarm_cli_app():
    from stackgen.cli.app import app

    return app


def test_the_reference_stack_converges_and_serves_https(deployed: Deployed):
    assert "Ignoring unsupported options" not in deployed.deploy_output
    answer = deployed.https("/editor/")
    assert answer["status"] == 200 and answer["tls"] in ("TLSv1.2", "TLSv1.3"), answer
    assert "Pebble" in json.dumps(answer["issuer"]), answer
    assert deployed.converged_after < 240


def test_the_old_cli_deploys_the_same_file(deployed: Deployed):
    """Debian's 20.10 docker CLI (no `stack config`) reads the same 3.9 file: a second deploy is an update."""
    if not OLD_CLI.exists() or shutil.which("docker") == str(OLD_CLI):
        pytest.skip("no second, older docker CLI here")
    result = deployed.node.docker("stack", "deploy", "--resolve-image", "never", "-c", swarm.SWARM_FILE, deployed.project,
                                  cli=str(OLD_CLI), cwd=deployed.directory)
    assert "Ignoring unsupported options" not in result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


def test_the_engine_applies_the_hardening_and_drops_what_the_header_says(deployed: Deployed):
    compose = yaml.safe_load((deployed.directory / "compose.yaml").read_text())
    header = (deployed.directory / swarm.SWARM_FILE).read_text().split("\nversion:")[0]
    for name in ("node-red", "edge", "certbot"):
        declared = compose["services"][name]
        container = deployed.container(name)
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True, name
        assert sorted(c.removeprefix("CAP_") for c in host.get("CapAdd") or []) == sorted(declared.get("cap_add", [])), name
        assert host["PidsLimit"] == declared["pids_limit"], name
        assert host["NanoCpus"] == int(float(declared["cpus"]) * 1e9), name
        assert host["LogConfig"] == {"Type": "json-file", "Config": declared["logging"]["options"]}, name
        status = container.exec_run(["cat", "/proc/self/status"]).output.decode()
        no_new_privs = next(line.split()[1] for line in status.splitlines() if line.startswith("NoNewPrivs:"))
        # the header says Swarm drops it: hold the header to what this engine does
        assert (no_new_privs == "0") == (f"{name}: security_opt no-new-privileges:true" in header), name
    secret = deployed.container("node-red").exec_run(["stat", "-c", "%u %a", "/run/secrets/node_red_credential_secret"]).output.decode()
    assert secret.split() == ["1000", "400"]
    edge_user = deployed.container("edge").exec_run(["id", "-G"]).output.decode().split()
    assert "1500" in edge_user, "the edge reads the key through group 1500 (its primary group in swarm)"


def test_node_red_is_on_its_internal_overlay_alone_with_no_way_out(deployed: Deployed):
    node_red = deployed.container("node-red")
    assert set(node_red.attrs["NetworkSettings"]["Networks"]) == {f"{deployed.project}_internal"}
    routes = node_red.exec_run(["cat", "/proc/net/route"]).output.decode().splitlines()[1:]
    assert not any(line.split()[1] == "00000000" for line in routes), "Node-RED has a default route"
    internal = deployed.node.client.networks.get(f"{deployed.project}_internal").attrs
    assert internal["Driver"] == "overlay" and internal["Internal"] is True
    assert internal["Options"].get("encrypted") == "true"


def test_the_edge_sees_the_client_address_not_the_routing_mesh(deployed: Deployed):
    """Host-mode publishing: the edge's peer is the client (here the netns's own docker_gwbridge gateway, the
    userland proxy's side of a loopback connection), never an `ingress` network address that would hide every client."""
    assert deployed.https("/swarm-client-address-probe")["status"] in (403, 404)
    gateway = deployed.node.client.networks.get("docker_gwbridge").attrs["IPAM"]["Config"][0]["Gateway"]
    ingress = deployed.node.client.networks.get("ingress").attrs["IPAM"]["Config"][0]["Subnet"]
    clients = []
    for line in deployed.container("edge").logs().decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        path = record.get("path") or (record.get("request") or {}).get("uri")
        if path == "/swarm-client-address-probe":
            clients.append(record.get("client") or (record.get("request") or {}).get("remote_ip"))
    assert clients and set(clients) == {gateway}, (clients, gateway, ingress)


def test_stateful_services_run_on_the_labelled_node(deployed: Deployed):
    node = deployed.node.client.nodes.list()[0]
    labels = node.attrs["Spec"]["Labels"]
    for service in deployed.node.client.services.list(filters={"label": f"com.docker.stack.namespace={deployed.project}"}):
        spec = service.attrs["Spec"]
        if spec["Name"].endswith("_pebble"):
            continue
        constraints = spec["TaskTemplate"]["Placement"]["Constraints"]
        label = constraints[0].removeprefix("node.labels.").removesuffix(" == true")
        assert labels.get(label) == "true", (spec["Name"], constraints)
        assert spec["EndpointSpec"]["Mode"] == "dnsrr"
