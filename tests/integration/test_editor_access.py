"""The editor private, the endpoints public, against real running stacks (Caddy and NGINX; Traefik is held
statically in tests/unit/generate/test_editor_access.py): from a network outside node_red.editor.allow the
editor and /flows get 403 from the edge while an endpoint path still reaches Node-RED; from a network inside
`allow` the editor answers.

Traffic only to our own containers: both client networks are created by this test and joined by the stack's
edge (`stackgen.live.access.ProbeNetwork`, the mechanism `verify --live` uses too); `allow` names the inside
network's subnet only (the test's own address space), so the outside one is the outsider.
"""

from __future__ import annotations

import contextlib
import secrets

import pytest

from stackgen.cli.app import app
from stackgen.live import access
from stackgen.stackdir import dump_stack, load_stack
from tests.images.build import pinned
from tests.integration.harness import LiveStack, runner, start_stack, stop_stack

pytestmark = pytest.mark.engine

# Every request claims an address inside `allow`: the edge must judge the TCP peer.
FORGED = {"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"}

EDITOR_PATHS = ["/editor/", "/editor/flows", "/EDITOR/flows", "/editor/settings", "/x/../editor/flows", "/editor//flows"]
ENDPOINT = "/stackgen-endpoint-probe"
# Dot segments the edge resolves before matching (to a public path) while Node-RED's router sees them raw: they
# must not reach an admin route (whose answer without a token would be Node-RED's 401).
DOT_SEGMENTS = ["/editor/../flows", "/editor/%2e%2e/flows", "/editor/./../settings"]


@contextlib.contextmanager
def client_networks(engine, project: str):
    with contextlib.ExitStack() as made:
        yield [made.enter_context(access.probe_network(engine, f"{project}-{role}-{secrets.token_hex(3)}",
                                                       {"org.stackgen.test": project})) for role in ("inside", "outside")]


def probe(stack: LiveStack, network: access.ProbeNetwork, paths: list[str]) -> dict[str, access.Result]:
    client = network.client(pinned("node-red"), user="1000:1000")
    results = client.run([{"path": path, "headers": FORGED} for path in paths], host=stack.domain)
    return dict(zip(paths, results, strict=True))


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def gated(request, engine, local_images, tmp_path_factory):
    live = start_stack(engine, tmp_path_factory.mktemp(f"editor-{request.param}"), request.param)
    try:
        with client_networks(engine, live.project) as (inside, outside):
            spec = load_stack(live.directory)
            spec.node_red.editor.path = "/editor"  # the default layout (the harness keeps the editor at / for older tests)
            spec.node_red.editor.allow = [inside.subnet]  # not the host's loopback, not the outside network
            (live.directory / "stack.yaml").write_bytes(dump_stack(spec))
            result = runner.invoke(app, ["generate", str(live.directory)])
            assert result.exit_code == 0, result.output
            live.up()  # the edge is recreated with the new config
            edge = live.container("edge")
            inside.attach(edge)
            outside.attach(edge)
            yield live, inside, outside
    finally:
        stop_stack(live)


def test_the_editor_is_refused_from_outside_allow_and_endpoints_still_reach_node_red(gated):
    live, inside, outside = gated
    results = probe(live, outside, [*EDITOR_PATHS, ENDPOINT, *DOT_SEGMENTS])
    for path in EDITOR_PATHS:
        assert results[path].status == 403, results[path]
    # Node-RED (Express) answers an unknown endpoint itself: the edge passed it through.
    assert results[ENDPOINT].status == 404 and "Cannot GET" in results[ENDPOINT].body, results[ENDPOINT]
    for path in DOT_SEGMENTS:
        assert results[path].status not in (200, 401), results[path]


def test_the_editor_answers_inside_allow(gated):
    live, inside, outside = gated
    results = probe(live, inside, ["/editor/", "/editor/flows", ENDPOINT])
    assert results["/editor/"].status == 200, results["/editor/"]
    assert results["/editor/flows"].status == 401, results["/editor/flows"]  # Node-RED's own auth, past the edge
    assert results[ENDPOINT].status == 404
