"""The editor private, the endpoints public, against real running stacks (Caddy and NGINX; Traefik is held
statically in tests/unit/generate/test_editor_access.py): from a network outside node_red.editor.allow the
editor and /flows get 403 from the edge while an endpoint path still reaches Node-RED; from a network inside
`allow` the editor answers.

Traffic only to our own containers: both client networks are created by this test and joined by the stack's
edge; `allow` names the inside network's subnet only (the test's own address space), so the outside one is
the outsider.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time

import pytest

from stackgen.cli.app import app
from stackgen.stackdir import dump_stack, load_stack
from tests.images.build import pinned
from tests.integration.harness import LiveStack, runner, start_stack, stop_stack

pytestmark = pytest.mark.engine

# Runs in a probe container (the Node-RED image has node): GETs each path from the edge, prints one JSON line.
PROBE = r"""
const https = require("https");
const plan = JSON.parse(process.env.PLAN);
function get(path) {
    return new Promise((resolve) => {
        const req = https.request({host: plan.address, port: plan.port, servername: plan.host, method: "GET", path: path,
            headers: {"Host": plan.host, "X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"},
            rejectUnauthorized: false, timeout: 15000}, (res) => {
            let body = "";
            res.on("data", (d) => { if (body.length < 200) body += d; });
            res.on("end", () => resolve({path: path, status: res.statusCode, body: body.slice(0, 200)}));
        });
        req.on("error", (e) => resolve({path: path, status: 0, body: String(e)}));
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.end();
    });
}
(async () => {
    const results = [];
    for (const path of plan.paths) { results.push(await get(path)); }
    console.log(JSON.stringify(results));
})();
"""

EDITOR_PATHS = ["/editor/", "/editor/flows", "/EDITOR/flows", "/editor/settings", "/x/../editor/flows", "/editor//flows"]
ENDPOINT = "/stackgen-endpoint-probe"
# Dot segments the edge resolves before matching (to a public path) while Node-RED's router sees them raw: they
# must not reach an admin route (whose answer without a token would be Node-RED's 401).
DOT_SEGMENTS = ["/editor/../flows", "/editor/%2e%2e/flows", "/editor/./../settings"]


@contextlib.contextmanager
def client_networks(engine, project: str):
    made = []
    try:
        for role in ("inside", "outside"):
            made.append(engine.networks.create(f"{project}-{role}-{secrets.token_hex(3)}", driver="bridge",
                                               labels={"org.stackgen.test": project}))
        yield made
    finally:
        for network in made:
            with contextlib.suppress(Exception):
                network.reload()
                for container in network.containers:
                    network.disconnect(container, force=True)
            with contextlib.suppress(Exception):
                network.remove()


def subnet(network) -> str:
    network.reload()
    return network.attrs["IPAM"]["Config"][0]["Subnet"]


def probe(stack: LiveStack, network, paths: list[str]) -> dict[str, dict]:
    edge = stack.container("edge")
    edge_address = edge.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    plan = {"address": edge_address, "port": 8443, "host": stack.domain, "paths": paths}
    container = stack.engine.containers.create(
        pinned("node-red"), entrypoint=["node", "-e", PROBE], environment={"PLAN": json.dumps(plan)},
        network=network.name, name=f"{stack.project}-probe-{secrets.token_hex(3)}", user="1000:1000",
        labels={"org.stackgen.test": stack.project},
    )
    try:
        container.start()
        deadline, output = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            output = container.logs(stdout=True, stderr=False).decode().strip().splitlines()
            container.reload()
            if output or container.status == "exited":
                break
            time.sleep(0.2)
    finally:
        container.remove(force=True)
    assert output, "the probe printed nothing"
    return {r["path"]: r for r in json.loads(output[-1])}


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def gated(request, engine, local_images, tmp_path_factory):
    live = start_stack(engine, tmp_path_factory.mktemp(f"editor-{request.param}"), request.param)
    try:
        with client_networks(engine, live.project) as (inside, outside):
            spec = load_stack(live.directory)
            spec.node_red.editor.path = "/editor"  # the default layout (the harness keeps the editor at / for older tests)
            spec.node_red.editor.allow = [subnet(inside)]  # not the host's loopback, not the outside network
            (live.directory / "stack.yaml").write_bytes(dump_stack(spec))
            result = runner.invoke(app, ["generate", str(live.directory)])
            assert result.exit_code == 0, result.output
            live.up()  # the edge is recreated with the new config
            edge = live.container("edge")
            inside.connect(edge)
            outside.connect(edge)
            edge.reload()
            yield live, inside, outside
    finally:
        stop_stack(live)


def test_the_editor_is_refused_from_outside_allow_and_endpoints_still_reach_node_red(gated):
    live, inside, outside = gated
    results = probe(live, outside, [*EDITOR_PATHS, ENDPOINT, *DOT_SEGMENTS])
    for path in EDITOR_PATHS:
        assert results[path]["status"] == 403, results[path]
    # Node-RED (Express) answers an unknown endpoint itself: the edge passed it through.
    assert results[ENDPOINT]["status"] == 404 and "Cannot GET" in results[ENDPOINT]["body"], results[ENDPOINT]
    for path in DOT_SEGMENTS:
        assert results[path]["status"] not in (200, 401), results[path]


def test_the_editor_answers_inside_allow(gated):
    live, inside, outside = gated
    results = probe(live, inside, ["/editor/", "/editor/flows", ENDPOINT])
    assert results["/editor/"]["status"] == 200, results["/editor/"]
    assert results["/editor/flows"]["status"] == 401, results["/editor/flows"]  # Node-RED's own auth, past the edge
    assert results[ENDPOINT]["status"] == 404
