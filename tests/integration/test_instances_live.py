"""Two Node-RED instances behind one edge, for real (Caddy and NGINX): `stackgen init`, `stackgen instance add`,
`stackgen up` against pebble. HTTPS to each host name reaches its own instance (each answers only its own admin
password), one certificate names both, a name no instance has is refused, and neither instance can open a
connection to the other (probed from inside each Node-RED container with its own `node`), while the edge
reaches both. `instance remove` on the running stack stops only that instance and keeps its data.

Traffic only to loopback and to the containers and networks the test creates. The bring-up time (compose create
to every service healthy, pebble's certificate included) is printed and kept in `BRING_UP` for the report.
"""

from __future__ import annotations

import json

import pytest

from stackgen import engine as engines
from stackgen.cli.app import app
from stackgen.live import certificates, probes
from stackgen.stackdir import load_stack
from tests.images.build import pinned
from tests.integration.harness import PASSWORD, LiveStack, password_file, runner, start_stack, stop_stack

pytestmark = pytest.mark.engine

LAB_PASSWORD = "integration-lab-pw"
BRING_UP: dict[str, float] = {}

# One line on stdout, always (the json-file log driver drops a trailing partial line): open, refused, timeout,
# unresolved or the error code. Exit 0 either way: the outcome is the line.
CONNECT = """
const net = require('net'), dns = require('dns');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const done = (what) => { console.log(what); process.exit(0); };
dns.lookup(host, (err) => {
  if (err) return done('unresolved');
  const socket = net.connect({host, port, timeout: 3000});
  socket.on('connect', () => { socket.destroy(); done('open'); });
  socket.on('timeout', () => { socket.destroy(); done('timeout'); });
  socket.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error ' + e.code));
});
"""


class TwoInstances(LiveStack):
    lab_domain: str = ""

    def https_to(self, domain: str, path: str = "/", **kwargs) -> probes.Response:
        return probes.https_request("127.0.0.1", self.https_port, domain, path, cafile=str(self.issuing_root), **kwargs)

    def token_status(self, domain: str, password: str) -> int:
        body = f"client_id=node-red-admin&grant_type=password&scope=*&username=admin&password={password}".encode()
        return self.https_to(domain, "/auth/token", method="POST", body=body,
                             headers={"Content-Type": "application/x-www-form-urlencoded"}).status

    def connect_from(self, service: str, host: str, port: int = 1880) -> str:
        code, output = self.exec(service, ["node", "-e", CONNECT, host, str(port)])
        assert code == 0, output
        return output.strip().splitlines()[-1]


def start(engine, workdir, edge: str) -> TwoInstances:
    lab_domain = f"lab-{edge}.stackgen.test"
    lab = ["lab", "--domain", lab_domain, "--non-interactive", "--admin-password-file",
           str(password_file(workdir, "lab-pw.txt", LAB_PASSWORD)), "--editor-path", "/", "--image", pinned("node-red")]
    stack = start_stack(engine, workdir, edge, project_prefix="sgtest-inst", instances=[lab], stack_class=TwoInstances)
    stack.lab_domain = lab_domain
    BRING_UP[edge] = stack.bring_up
    print(f"\n[instances] {edge}: two instances up (compose create -> every service healthy) in {BRING_UP[edge]:.1f}s")
    return stack


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def live(request, engine, local_images, tmp_path_factory):
    stack = start(engine, tmp_path_factory.mktemp(f"instances-{request.param}"), request.param)
    yield stack
    stop_stack(stack)
    # What `down --volumes` does not know: the removed instance's kept volume (no longer in compose.yaml).
    for volume in engines.project_volumes(engine, stack.project):
        volume.remove(force=True)
    for network in engines.project_networks(engine, stack.project):
        network.remove()


def test_each_host_name_reaches_its_own_instance(live: TwoInstances):
    assert live.https_to(live.domain).status == 200
    assert live.https_to(live.lab_domain).status == 200
    # Each instance knows its own admin password alone: the name decides which Node-RED answers.
    assert live.token_status(live.domain, PASSWORD) == 200
    assert live.token_status(live.lab_domain, LAB_PASSWORD) == 200
    assert live.token_status(live.domain, LAB_PASSWORD) in (401, 403)
    assert live.token_status(live.lab_domain, PASSWORD) in (401, 403)


def test_one_certificate_names_both_and_unknown_names_are_refused(live: TwoInstances):
    served = {name: certificates.fetch("127.0.0.1", live.https_port, name) for name in (live.domain, live.lab_domain)}
    assert served[live.domain].serial == served[live.lab_domain].serial, "one certificate for both names"
    assert {live.domain, live.lab_domain} <= set(served[live.domain].names)
    stack = load_stack(live.directory)
    assert [i.name for i in stack.instances] == ["node-red", "lab"]
    other = probes.https_request("127.0.0.1", live.https_port, live.domain, "/", cafile=str(live.issuing_root),
                                 headers={"Host": "elsewhere.stackgen.test"})
    assert other.status == 421


def test_no_instance_can_reach_the_other(live: TwoInstances):
    lab_ip = live.address("node-red-lab", "internal-lab")
    own_ip = live.address("node-red", "internal")
    matrix = {
        "node-red -> node-red-lab (name)": live.connect_from("node-red", "node-red-lab"),
        "node-red -> node-red-lab (address)": live.connect_from("node-red", lab_ip),
        "node-red-lab -> node-red (name)": live.connect_from("node-red-lab", "node-red"),
        "node-red-lab -> node-red (address)": live.connect_from("node-red-lab", own_ip),
        "node-red -> itself": live.connect_from("node-red", "127.0.0.1"),
        "node-red-lab -> itself": live.connect_from("node-red-lab", "127.0.0.1"),
    }
    print(f"\n[instances] {live.edge} matrix: {json.dumps(matrix, indent=1)}")
    for probe in ("node-red -> node-red-lab (name)", "node-red-lab -> node-red (name)"):
        assert matrix[probe] == "unresolved", (probe, matrix[probe])
    for probe in ("node-red -> node-red-lab (address)", "node-red-lab -> node-red (address)"):
        assert matrix[probe] in ("timeout", "error EHOSTUNREACH", "error ENETUNREACH"), (probe, matrix[probe])
    assert matrix["node-red -> itself"] == "open" and matrix["node-red-lab -> itself"] == "open", "the probe can see an open port"
    # The edge, on both internal networks, reaches both (the positive control for the addresses above).
    for target in ("node-red:1880", "node-red-lab:1880", f"{lab_ip}:1880", f"{own_ip}:1880"):
        host, port = target.rsplit(":", 1)
        code, output = live.exec("edge", ["/bin/sh", "-c", f"nc -z -w 3 {host} {port} >/dev/null 2>&1 && echo open || echo closed"])
        assert output.strip().splitlines()[-1] == "open", (target, output)
    networks = {name: sorted(live.container(svc).attrs["NetworkSettings"]["Networks"]) for name, svc in
                (("node-red", "node-red"), ("node-red-lab", "node-red-lab"))}
    assert networks == {"node-red": [f"{live.project}_internal"], "node-red-lab": [f"{live.project}_internal-lab"]}


def test_remove_on_the_running_stack_stops_only_that_instance(live: TwoInstances):
    result = runner.invoke(app, ["instance", "remove", str(live.directory), "lab"])
    assert result.exit_code == 0, result.output
    services = {engines.service_of(c) for c in engines.project_containers(live.engine, live.project)}
    assert "node-red-lab" not in services and "node-red" in services
    assert engines.project_volumes(live.engine, live.project, "node-red-lab-data"), "its data is kept"
    assert not engines.project_networks(live.engine, live.project, "internal-lab"), "its network does not outlive it"
    assert f"network {live.project}_internal-lab" in result.output
    live.up()
    assert live.https_to(live.domain).status == 200
    assert live.token_status(live.domain, PASSWORD) == 200
    # The certificate may already have lost the name (certbot re-ran with the shorter list): the route is what is asked.
    assert live.https_to(live.lab_domain, verify=False).status == 421, "its name routes nowhere now"
