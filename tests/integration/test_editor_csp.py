"""The editor's Content-Security-Policy, proved in a real browser: headless Chromium loads Node-RED's editor through
each edge (Caddy, NGINX; Traefik is held statically) under the policy csp.js sets, logged in, and the page must
come up whole (the palette holds the core nodes, whose definitions are inline scripts) with no CSP violation on
its console. Then the nonce is taken away (csp.js edited to put none on the scripts) and the same load must show
violations and an empty palette: the check can fail, and the nonce is what makes the editor work.

The header grades (MDN Observatory scoring, A or better on the editor and an endpoint) are held by
tests/integration/test_verify_live.py through `verify --live`; here, the same grader on the editor's page.

Traffic only to our own stack: Chromium resolves the stack's name to loopback (its published port) and no other
name at all.
"""

from __future__ import annotations

import re

import pytest

from stackgen.cli.app import app
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
        run = load_editor(live, binary, seconds=20)
        assert not run.ready
        assert any(v["directive"] == "script-src-elem" for v in run.violations), run.violations
        assert not set(CORE_NODES) & palette(run)
    finally:
        path.write_bytes(original)
        live.container("node-red").restart(timeout=20)
        _wait_healthy(live)


def _wait_healthy(live: LiveStack, seconds: float = 90) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if live.container("node-red").attrs["State"].get("Health", {}).get("Status") == "healthy":
            return
        time.sleep(1)
    raise AssertionError("node-red did not become healthy")
