"""Two Node-RED instances on one host name, for real (Caddy and NGINX; Traefik is held statically in
tests/unit/generate/test_path_routing.py): `node-red` at the root, `lab` under /lab (`stackgen instance add DIR lab
--path /lab`), against pebble. HTTPS to each prefix reaches its own instance (each takes only its own admin password,
at `<prefix>/editor/auth/token`), lab's editor knows its place (`/lab/editor/settings`: httpNodeRoot `/lab/`), an
HTTP-in endpoint deployed to lab answers under /lab with the edge's endpoint policy, the editor gate refuses
`/lab/editor/` (however spelt) from a network outside `editor.allow`, and headless Chromium loads lab's editor under
its prefix whole: the palette is there and no Content-Security-Policy violation is reported (Node-RED builds its
links from httpAdminRoot; nothing is stripped at the edge).

Traffic only to loopback and to the containers and networks the test creates (the outsider network is ours, in
198.18.0.0/15, and joined by the stack's edge alone). The bring-up time is printed and kept in `BRING_UP`.
"""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest

from stackgen.cli.app import app
from stackgen.generate.headers import ENDPOINT_CSP
from stackgen.live import access, probes
from stackgen.spec import PRIVATE_NETWORKS
from tests import chromium
from tests.images.build import pinned
from tests.integration.harness import PASSWORD, LiveStack, password_file, runner, start_stack, stop_stack

pytestmark = pytest.mark.engine

LAB_PASSWORD = "integration-lab-pw"
BRING_UP: dict[str, float] = {}
READY = "document.querySelectorAll('[data-palette-type]').length >= 20"
CORE_NODES = ("inject", "debug", "function", "change", "switch", "http in")
# Every request from the outsider claims an address inside `allow`: the edge must judge the TCP peer.
FORGED = {"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"}


class SharedHost(LiveStack):
    def https_to(self, path: str, **kwargs) -> probes.Response:
        return probes.https_request("127.0.0.1", self.https_port, self.domain, path, cafile=str(self.issuing_root), **kwargs)

    def login(self, editor: str, password: str) -> probes.Response:
        body = f"client_id=node-red-admin&grant_type=password&scope=*&username=admin&password={password}".encode()
        return self.https_to(f"{editor}/auth/token", method="POST", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})

    def token_of(self, editor: str, password: str) -> str:
        response = self.login(editor, password)
        assert response.status == 200, (editor, response.status, response.body)
        return json.loads(response.body)["access_token"]


def start(engine, workdir, edge: str) -> SharedHost:
    domain = f"site-{edge}.stackgen.test"
    lab = ["lab", "--path", "/lab", "--non-interactive", "--admin-password-file", str(password_file(workdir, "lab-pw.txt", LAB_PASSWORD)),
           "--image", pinned("node-red")]
    # The editor at its default, /editor; the host's probes arrive from a private address.
    stack = start_stack(engine, workdir, edge, project_prefix="sgtest-path", domain=domain, editor_path=None, instances=[lab],
                        stack_class=SharedHost)
    try:
        assert f"served under /lab/ of {domain}; its editor at /lab/editor" in stack.added[0]
    except BaseException:
        stop_stack(stack)
        raise
    BRING_UP[edge] = stack.bring_up
    print(f"\n[paths] {edge}: node-red at / and lab at /lab of one host name, up in {BRING_UP[edge]:.1f}s")
    return stack


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def live(request, engine, local_images, tmp_path_factory):
    stack = start(engine, tmp_path_factory.mktemp(f"paths-{request.param}"), request.param)
    yield stack
    stop_stack(stack)


def test_each_prefix_reaches_its_own_instance(live: SharedHost):
    # Each instance knows its own admin password alone: the path decides which Node-RED answers.
    assert live.login("/editor", PASSWORD).status == 200
    assert live.login("/lab/editor", LAB_PASSWORD).status == 200
    assert live.login("/editor", LAB_PASSWORD).status in (401, 403)
    assert live.login("/lab/editor", PASSWORD).status in (401, 403)
    # Matched without regard to case, as Node-RED matches its own routes: still lab's.
    assert live.login("/LAB/Editor", LAB_PASSWORD).status == 200
    # Both on the instance's own internal network alone; the edge on both.
    networks = {svc: sorted(live.container(svc).attrs["NetworkSettings"]["Networks"]) for svc in ("node-red", "node-red-lab")}
    assert networks == {"node-red": [f"{live.project}_internal"], "node-red-lab": [f"{live.project}_internal-lab"]}
    edge = set(live.container("edge").attrs["NetworkSettings"]["Networks"])
    assert {f"{live.project}_internal", f"{live.project}_internal-lab"} <= edge


def test_the_prefixed_editor_knows_its_place_and_its_endpoints_live_under_it(live: SharedHost):
    lab = live.token_of("/lab/editor", LAB_PASSWORD)
    settings = live.https_to("/lab/editor/settings", headers={"Authorization": f"Bearer {lab}"})
    assert settings.status == 200, settings.body
    assert json.loads(settings.body)["httpNodeRoot"] == "/lab/"
    root = live.token_of("/editor", PASSWORD)
    assert json.loads(live.https_to("/editor/settings", headers={"Authorization": f"Bearer {root}"}).body)["httpNodeRoot"] == "/"
    page = live.https_to("/lab/editor/")
    assert page.status == 200 and b"<script" in page.body
    cookies = [value for name, value in page.header_lines if name.lower() == "set-cookie"]
    assert any("stackgen-csp-nonce=" in c and "Path=/lab/editor;" in c for c in cookies), cookies
    assert "nonce-" in page.headers.get("content-security-policy", ""), "the editor keeps csp.js's policy"
    flows = [
        {"id": "t1", "type": "tab", "label": "lab"},
        {"id": "in1", "type": "http in", "z": "t1", "url": "/hello", "method": "get", "wires": [["set1"]]},
        {"id": "set1", "type": "change", "z": "t1", "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "lab says hello", "tot": "str"}],
         "wires": [["out1"]]},
        {"id": "out1", "type": "http response", "z": "t1", "statusCode": "", "headers": {}, "wires": []},
    ]
    deployed = live.https_to("/lab/editor/flows", method="POST", body=json.dumps(flows).encode(),
                             headers={"Authorization": f"Bearer {lab}", "Content-Type": "application/json",
                                      "Node-RED-Deployment-Type": "full"})
    assert deployed.status in (200, 204), deployed.body
    deadline = time.monotonic() + 30
    while (hello := live.https_to("/lab/hello")).status != 200:
        assert time.monotonic() < deadline, "lab's endpoint never answered"
        time.sleep(0.5)
    assert hello.body == b"lab says hello"
    assert hello.headers.get("content-security-policy") == ENDPOINT_CSP, "lab's endpoints get the edge's endpoint policy"
    other = live.https_to("/hello")
    assert other.status == 404 and b"Cannot GET /hello" in other.body, "the root is node-red's, which has no /hello"


def test_the_gate_refuses_the_prefixed_editor_from_outside_allow(live: SharedHost, engine):
    subnet = access.outsider_subnet(list(PRIVATE_NETWORKS), access.engine_subnets(engine) + access.host_routes())
    assert subnet is not None
    paths = ["/lab/editor/", "/lab/editor/flows", "/LAB/Editor/flows", "/lab/x/../editor/flows", "/x/../lab/editor/settings",
             "/lab//editor/flows", "/lab/%65ditor/flows", "/editor/", "/lab/../editor/flows", "/lab/hello", "/lab/editor/../flows"]
    with access.probe_network(engine, f"{live.project}-outside-{secrets.token_hex(3)}", {"org.stackgen.test": live.project},
                              subnet=subnet) as outside:
        outside.attach(live.container("edge"))
        client = outside.client(pinned("node-red"), user="1000:1000")
        results = dict(zip(paths, client.run([{"path": p, "headers": FORGED} for p in paths], host=live.domain), strict=True))
        login = client.run([access.login_step("/lab/editor/auth/token", "admin", LAB_PASSWORD, FORGED)], host=live.domain)[0]
    print(f"\n[paths] {live.edge} from {subnet}: " + json.dumps({p: r.status for p, r in results.items()}))
    for path in paths[:9]:
        assert results[path].status == 403, (path, results[path])
    assert login.status == 403, login
    # The public side of lab still reaches lab (its endpoint, deployed above, or Node-RED's own 404).
    assert results["/lab/hello"].status in (200, 404) and (results["/lab/hello"].status == 200 or "Cannot GET" in results["/lab/hello"].body)
    # Resolved out of the prefix at the edge, seen raw by Node-RED: no admin route answers it.
    assert results["/lab/editor/../flows"].status not in (200, 401), results["/lab/editor/../flows"]


def test_chromium_loads_the_prefixed_editor_whole(live: SharedHost):
    binary = chromium.require()
    url = f"https://{live.domain}:{live.https_port}/lab/editor/?access_token={live.token_of('/lab/editor', LAB_PASSWORD)}"
    run = chromium.load_site(binary, url, live.domain, ready=READY, seconds=60)
    violations = run.violations + [line for line in run.console if "Content Security Policy" in line]
    assert violations == [], run.console
    assert run.ready, run.console[-20:]
    types = set(re.findall(r'data-palette-type="([^"]+)"', run.dom))
    assert set(CORE_NODES) <= types, (sorted(types), run.console[-20:])
    assert "red-ui-workspace-chart" in run.dom
    failed = [line for line in run.console if "404" in line or "Failed to load" in line]
    assert failed == [], failed


def test_verify_live_probes_each_instance_under_its_own_prefix(live: SharedHost):
    try:  # pebble is the test's CA, not part of the stack: once the certificate exists it leaves the stack's network
        live.network("public").disconnect(live.pebble)
    except Exception:  # noqa: BLE001 - already gone
        pass
    result = runner.invoke(app, ["verify", "--live", str(live.directory), "--ca-file", str(live.issuing_root),
                                 "--format", "json", "--probes", "all", "--fail-on", "low"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [f for f in report["findings"] if not f["suppressed"]] == []
    checks = {c["check"]: c for c in report["live"]["checks"]}
    assert all(c["ok"] for c in checks.values()), [c for c in checks.values() if not c["ok"]]
    lab = {name: c["detail"] for name, c in checks.items() if "instance lab" in name}
    gate = next(detail for name, detail in lab.items() if name.startswith("editor refused outside allow"))
    endpoint = next(detail for name, detail in lab.items() if name.startswith("endpoint reachable outside allow"))
    assert "403" in gate and "/lab/stackgen-probe-" in endpoint, lab
