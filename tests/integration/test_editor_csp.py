"""The editor's Content-Security-Policy, proved in a real browser: headless Chromium loads Node-RED's editor through
each edge (Caddy, NGINX; Traefik is held statically) under the policy csp.js sets, logged in, and the page must
come up whole (the palette holds the core nodes, whose definitions are inline scripts) with no CSP violation on
its console. Then the nonce is taken away (csp.js edited to put none on the scripts) and the same load must show
violations and an empty palette: the check can fail, and the nonce is what makes the editor work.

The header grades (MDN Observatory scoring, A or better on the editor and an endpoint) are held by
tests/integration/test_verify_live.py through `verify --live`; here, the same grader on the editor's page and on
real HTTP-in endpoints deployed through the admin API: one without a policy of its own gets the edge's endpoint
policy (A+), one whose HTTP response node sets its own keeps it.

Traffic only to our own stack: Chromium resolves the stack's name to loopback (its published port) and no other
name at all.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from stackgen.cli.app import app
from stackgen.generate.headers import ENDPOINT_CSP
from stackgen.live import checks, headers_grade
from stackgen.stackdir import dump_stack, load_stack
from stackgen.topology import Topology
from tests import chromium
from tests.integration.harness import LiveStack, runner, start_stack, stop_stack

pytestmark = pytest.mark.engine

EDITOR = "/editor"
# Core nodes whose definitions are inline <script> blocks in GET /editor/nodes.
CORE_NODES = ("inject", "debug", "function", "change", "switch", "http in")


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def stack(request, engine, local_images, tmp_path_factory):
    binary = chromium.require()
    live = start_stack(engine, tmp_path_factory.mktemp(f"editor-csp-{request.param}"), request.param)
    try:
        spec = load_stack(live.directory)
        spec.node_red.editor.path = EDITOR  # the default layout (the harness keeps the editor at / for older tests)
        (live.directory / "stack.yaml").write_bytes(dump_stack(spec))
        result = runner.invoke(app, ["generate", str(live.directory)])
        assert result.exit_code == 0, result.output
        live.up()
        live.admin_root = EDITOR
        yield live, binary
    finally:
        stop_stack(live)


READY = "document.querySelectorAll('[data-palette-type]').length >= 20"


def load_editor(live: LiveStack, binary: str, seconds: float = 60) -> chromium.SiteRun:
    url = f"https://{live.domain}:{live.https_port}{EDITOR}/?access_token={live.token()}"
    return chromium.load_site(binary, url, live.domain, ready=READY, seconds=seconds)


def violations(run: chromium.SiteRun) -> list:
    return run.violations + [line for line in run.console if "Content Security Policy" in line]


def palette(run: chromium.SiteRun) -> set[str]:
    return set(re.findall(r'data-palette-type="([^"]+)"', run.dom))


def test_the_editor_loads_whole_under_its_policy_with_no_violation(stack):
    live, binary = stack
    run = load_editor(live, binary)
    assert violations(run) == [], run.console
    assert run.ready, run.console
    types = palette(run)
    assert set(CORE_NODES) <= types, (sorted(types), run.console[-20:])
    assert "red-ui-workspace-chart" in run.dom


def test_the_editor_page_grades_a_or_better(stack):
    live, _ = stack
    ctx = checks.LiveContext(engine=live.engine, project=live.project, observed=Topology(), declared=None, networks={},
                             domains=[live.domain], ca_file=str(live.issuing_root))
    graded = headers_grade.grade(checks.exchange(ctx, "127.0.0.1", live.http_port, live.https_port, live.domain, f"{EDITOR}/"))
    assert graded.score >= 90 and not graded.failing, graded.summary()
    csp = next(t for t in graded.tests if t.name == "content-security-policy")
    assert csp.passed and "'unsafe-inline'" not in csp.data["script-src"], csp


OWN_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
PAGE = "<!doctype html><html><head><title>hello</title></head><body><p>hello</p></body></html>"


def deploy_endpoints(live: LiveStack) -> None:
    """Two HTTP-in endpoints through the admin API: /hello (no policy of its own) and /own-policy (its HTTP response
    node sets a Content-Security-Policy)."""
    flows = [
        {"id": "t1", "type": "tab", "label": "endpoints"},
        {"id": "in1", "type": "http in", "z": "t1", "url": "/hello", "method": "get", "wires": [["page1"]]},
        {"id": "page1", "type": "change", "z": "t1", "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": PAGE, "tot": "str"}],
         "wires": [["out1"]]},
        {"id": "out1", "type": "http response", "z": "t1", "statusCode": "", "headers": {}, "wires": []},
        {"id": "in2", "type": "http in", "z": "t1", "url": "/own-policy", "method": "get", "wires": [["page2"]]},
        {"id": "page2", "type": "change", "z": "t1", "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": PAGE, "tot": "str"}],
         "wires": [["out2"]]},
        {"id": "out2", "type": "http response", "z": "t1", "statusCode": "", "headers": {"content-security-policy": OWN_POLICY},
         "wires": []},
    ]
    response = live.https(f"{EDITOR}/flows", method="POST", body=json.dumps(flows).encode(),
                          headers={"Authorization": f"Bearer {live.token()}", "Content-Type": "application/json",
                                   "Node-RED-Deployment-Type": "full"})
    assert response.status in (200, 204), response.body
    deadline = time.monotonic() + 30  # the runtime starts the new flows after it answers
    while live.https("/hello").status != 200:
        assert time.monotonic() < deadline, "the deployed endpoint never answered"
        time.sleep(0.5)


def test_an_endpoint_gets_the_edges_policy_unless_it_sets_its_own(stack):
    live, _ = stack
    deploy_endpoints(live)
    ctx = checks.LiveContext(engine=live.engine, project=live.project, observed=Topology(), declared=None, networks={},
                             domains=[live.domain], ca_file=str(live.issuing_root))
    plain = checks.exchange(ctx, "127.0.0.1", live.http_port, live.https_port, live.domain, "/hello")
    assert plain.status == 200 and "hello" in plain.text
    assert plain.values("content-security-policy") == [ENDPOINT_CSP]
    graded = headers_grade.grade(plain)
    assert graded.grade == "A+" and not graded.failing, graded.summary()
    own = checks.exchange(ctx, "127.0.0.1", live.http_port, live.https_port, live.domain, "/own-policy")
    assert own.status == 200 and own.values("content-security-policy") == [OWN_POLICY]
    # The other headers are the edge's, once each.
    for name in ("strict-transport-security", "x-content-type-options", "x-frame-options"):
        assert len([k for k, _ in own.headers if k.lower() == name]) == 1, own.headers


def test_without_the_nonce_the_editor_breaks_and_the_browser_says_so(stack):
    live, binary = stack
    path = live.directory / "node-red" / "csp.js"
    original = path.read_bytes()
    broken = original.replace(b"body = addNonce(body, nonce);", b"body = body;")
    assert broken != original
    container = live.container("node-red")
    try:
        path.write_bytes(broken)
        container.restart(timeout=20)
        _wait_healthy(live)
        run = load_editor(live, binary, seconds=10)  # it never becomes ready: no need to wait long
        assert not run.ready
        assert any(v["directive"] == "script-src-elem" for v in run.violations), run.violations
        assert not set(CORE_NODES) & palette(run)
    finally:
        path.write_bytes(original)
        live.container("node-red").restart(timeout=20)
        _wait_healthy(live)


def _wait_healthy(live: LiveStack, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if live.container("node-red").attrs["State"].get("Health", {}).get("Status") == "healthy":
            return
        time.sleep(1)
    raise AssertionError("node-red did not become healthy")
