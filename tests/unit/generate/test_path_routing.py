"""Path-routed instances (`instances[].path`): `lab` under /lab of a host name whose root is node-red's, rendered for
every edge x TLS mode, and held to where each request must go: routing precedence (the prefix first, then the root
of the host name, 404 on a host name only prefixes have, 421 elsewhere) and the editor gate on the prefixed editor
(case, dot segments, encoded letters), read from the rendered configuration by `tests/support/edge_routing.py`.
Node-RED is told its prefix (httpAdminRoot, httpNodeRoot, the nonce cookie's path) and the edge passes paths on
unchanged: nothing is stripped."""

from __future__ import annotations

import re

import pytest

from stackgen.generate.render import render
from stackgen.instances.edit import add_instance
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH, combos, golden_stack
from tests.support import config_lexers as lex
from tests.support import edge_routing
from tests.support import rendered_meaning as meaning

OUTSIDER = "198.18.0.5"  # in no allow list
ROOT_ADMIN = "192.168.1.5"  # in node-red's (the default private ranges), not in lab's
LAB_ADMIN = "10.9.0.5"  # in lab's editor.allow (and in node-red's)
LAB_ONLY = "lab.example.org"
LAB = {"admin_password_hash": EXAMPLE_HASH, "path": "/lab", "editor": {"allow": ["10.9.0.0/16"]}}


def shared_host(stack: Stack) -> str:
    return next(d for d in stack.domains if not d.startswith("*."))


def path_routed(edge: str, mode: str) -> Stack:
    """The golden stack of the combination, plus instance `lab` under /lab of its first host name and of lab.example.org."""
    base = golden_stack(edge, mode)
    return add_instance(base, "lab", [shared_host(base), LAB_ONLY], LAB).stack


def tree(stack: Stack) -> dict[str, str]:
    return {f.path: f.content.decode() for f in render(stack)}


def ids(combo):
    return "-".join(combo)


# (path, client) -> where it goes, on the shared host name
SHARED = [
    ("/", OUTSIDER, "node-red"),
    ("/hello", OUTSIDER, "node-red"),
    ("/lab", OUTSIDER, "node-red-lab"),
    ("/lab/", OUTSIDER, "node-red-lab"),
    ("/lab/hello", OUTSIDER, "node-red-lab"),
    ("/LAB/hello", OUTSIDER, "node-red-lab"),
    ("/Lab/ui/", OUTSIDER, "node-red-lab"),
    ("/lab/editorx", OUTSIDER, "node-red-lab"),
    ("/lab/editor/../hello", OUTSIDER, "node-red-lab"),
    ("/labx", OUTSIDER, "node-red"),
    ("/x/lab/editor/", OUTSIDER, "node-red"),
    # lab's editor: refused outside lab's editor.allow, however the path is spelt
    ("/lab/editor", OUTSIDER, 403),
    ("/lab/editor/", OUTSIDER, 403),
    ("/lab/editor/flows", OUTSIDER, 403),
    ("/LAB/Editor/flows", OUTSIDER, 403),
    ("/lab/x/../editor/flows", OUTSIDER, 403),
    ("/x/../lab/editor/flows", OUTSIDER, 403),
    ("/lab//editor/flows", OUTSIDER, 403),
    ("/lab/./editor/comms", OUTSIDER, 403),
    ("/lab/%65ditor/flows", OUTSIDER, 403),
    ("/lab/editor/", ROOT_ADMIN, 403),
    ("/lab/editor/", LAB_ADMIN, "node-red-lab"),
    ("/LAB/EDITOR/flows", LAB_ADMIN, "node-red-lab"),
    # node-red's editor at the root of the host name keeps its own gate
    ("/editor/flows", OUTSIDER, 403),
    ("/lab/../editor/flows", OUTSIDER, 403),
    ("/editor/flows", ROOT_ADMIN, "node-red"),
    ("/lab/../editor/flows", ROOT_ADMIN, "node-red"),
]
# on a host name only lab has: nothing outside /lab
LAB_HOST = [
    ("/lab/hello", OUTSIDER, "node-red-lab"),
    ("/lab/editor/", OUTSIDER, 403),
    ("/lab/editor/", LAB_ADMIN, "node-red-lab"),
    ("/", OUTSIDER, 404),
    ("/editor/", ROOT_ADMIN, 404),
    ("/hello", OUTSIDER, 404),
]


@pytest.mark.parametrize("combo", combos(), ids=ids)
def test_each_request_reaches_the_instance_its_host_and_path_name(combo):
    edge, mode = combo
    stack = path_routed(edge, mode)
    files = tree(stack)
    host = shared_host(stack)
    got = {(host, path, client): edge_routing.request(files, edge, host, path, client) for path, client, _ in SHARED}
    got |= {(LAB_ONLY, path, client): edge_routing.request(files, edge, LAB_ONLY, path, client) for path, client, _ in LAB_HOST}
    want = {(host, p, c): w for p, c, w in SHARED} | {(LAB_ONLY, p, c): w for p, c, w in LAB_HOST}
    assert got == want
    unknown = edge_routing.request(files, edge, "elsewhere.example.net", "/lab/", OUTSIDER)
    assert unknown == (404 if edge == "traefik" else 421), "a host name no instance has reaches none"


@pytest.mark.parametrize("combo", combos(), ids=ids)
def test_node_red_knows_its_prefix_and_nothing_is_stripped(combo):
    files = tree(path_routed(*combo))
    lab = lex.js_tokens(files["node-red-lab/settings.js"])
    value = {name: [lex.js_string_value(t) for t in lex.js_property(lab, name)] for name in ("httpAdminRoot", "httpNodeRoot", "cookie_path")}
    assert value == {"httpAdminRoot": ["/lab/editor"], "httpNodeRoot": ["/lab/"], "cookie_path": ["/lab/editor"]}
    root = lex.js_tokens(files["node-red/settings.js"])
    assert [lex.js_string_value(t) for t in lex.js_property(root, "httpNodeRoot")] == ["/"]
    edge_text = "".join(text for name, text in files.items() if name.startswith("edge/"))
    for stripping in ("handle_path", "uri strip_prefix", "rewrite ", "stripPrefix", "replacePath"):
        assert stripping not in edge_text, f"{stripping}: the edge must pass the path on as it came"
    assert re.search(r"proxy_pass \$upstream;", edge_text) or combo[0] != "nginx", "proxy_pass without a URI: the request's own"


def test_the_editor_at_the_root_of_a_path_routed_instance_is_its_whole_prefix():
    stack = add_instance(golden_stack("nginx", "internal"), "lab", ["nodered.example.org"],
                         {**LAB, "editor": {"path": "/", "allow": ["10.9.0.0/16"]}}).stack
    files = tree(stack)
    settings = lex.js_tokens(files["node-red-lab/settings.js"])
    assert [lex.js_string_value(t) for t in lex.js_property(settings, "httpAdminRoot")] == ["/lab"]
    for edge in ("caddy", "nginx", "traefik"):
        routed = tree(add_instance(golden_stack(edge, "internal"), "lab", ["nodered.example.org"],
                                   {**LAB, "editor": {"path": "/", "allow": ["10.9.0.0/16"]}}).stack)
        assert edge_routing.request(routed, edge, "nodered.example.org", "/lab/anything", OUTSIDER) == 403
        assert edge_routing.request(routed, edge, "nodered.example.org", "/lab/anything", LAB_ADMIN) == "node-red-lab"
        assert edge_routing.request(routed, edge, "nodered.example.org", "/other", OUTSIDER) == "node-red"


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_a_prefix_is_carved_out_of_a_root_editor_at_slash(edge):
    """node-red's editor at `/` makes its whole site editor traffic; lab's prefix is still lab's (its own gate)."""
    base = golden_stack(edge, "internal").model_dump(exclude_none=True)
    base["node_red"]["editor"] = {"path": "/"}
    stack = add_instance(Stack.model_validate(base), "lab", ["nodered.example.org"], {**LAB, "editor": {"allow": ["0.0.0.0/0", "::/0"]}}).stack
    files = tree(stack)
    assert edge_routing.request(files, edge, "nodered.example.org", "/lab/hello", OUTSIDER) == "node-red-lab"
    assert edge_routing.request(files, edge, "nodered.example.org", "/lab/editor/", OUTSIDER) == "node-red-lab"
    assert edge_routing.request(files, edge, "nodered.example.org", "/hello", OUTSIDER) == 403
    assert edge_routing.request(files, edge, "nodered.example.org", "/hello", ROOT_ADMIN) == "node-red"


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_the_model_agrees_with_the_one_instance_gate(edge):
    """The routing model itself, on layouts whose behaviour other tests fix: one instance, and two by host name."""
    files = tree(golden_stack(edge, "internal"))
    assert edge_routing.request(files, edge, "nodered.example.org", "/hello", OUTSIDER) == "node-red"
    assert edge_routing.request(files, edge, "flows.example.org", "/EDITOR/x/../flows", OUTSIDER) == 403
    assert edge_routing.request(files, edge, "flows.example.org", "/editor/flows", ROOT_ADMIN) == "node-red"
    two = tree(add_instance(golden_stack(edge, "internal"), "lab", [LAB_ONLY], {"admin_password_hash": EXAMPLE_HASH}).stack)
    assert edge_routing.request(two, edge, LAB_ONLY, "/lab/hello", OUTSIDER) == "node-red-lab"
    assert edge_routing.request(two, edge, "nodered.example.org", "/lab/hello", OUTSIDER) == "node-red"
    assert edge_routing.request(two, edge, LAB_ONLY, "/editor/", OUTSIDER) == 403


def test_the_editor_host_of_a_path_routed_instance_is_all_editor_under_its_prefix():
    for edge in ("caddy", "nginx", "traefik"):
        stack = add_instance(golden_stack(edge, "internal"), "lab", ["nodered.example.org", "lab-editor.example.org"],
                             {**LAB, "editor": {"host": "lab-editor.example.org", "allow": ["10.9.0.0/16"]}}).stack
        files = tree(stack)
        assert edge_routing.request(files, edge, "lab-editor.example.org", "/lab/hello", OUTSIDER) == 403
        assert edge_routing.request(files, edge, "lab-editor.example.org", "/lab/hello", LAB_ADMIN) == "node-red-lab"
        assert edge_routing.request(files, edge, "lab-editor.example.org", "/", LAB_ADMIN) == 404
        assert edge_routing.request(files, edge, "nodered.example.org", "/lab/hello", OUTSIDER) == "node-red-lab"


def test_traefik_ranks_every_path_routed_router_above_every_root_router():
    document = meaning._yaml_load(tree(path_routed("traefik", "certbot-http01"))["edge/dynamic.yml"])
    routers = document["http"]["routers"]
    assert routers["node-red_lab"]["priority"] > routers["node-red-editor_node-red"]["priority"]
    assert routers["node-red-editor_lab"]["priority"] > routers["node-red_lab"]["priority"]
    assert routers["node-red_lab"]["middlewares"] == ["security-headers", "endpoint-csp"], "lab's endpoints get the endpoint CSP"
    assert routers["node-red-editor_lab"]["middlewares"] == ["editor-allow_lab", "security-headers"], "its editor keeps csp.js's"
    assert routers["node-red_lab"]["rule"] == (
        "(Host(`nodered.example.org`) || Host(`lab.example.org`)) && PathRegexp(`(?i)^/lab(/|$)`)")


def test_the_stack_readme_names_each_instances_prefix_and_the_shared_origin():
    text = tree(path_routed("caddy", "internal"))["README.md"]
    assert "| lab | nodered.example.org, lab.example.org under `/lab/` | /lab/editor (from 10.9.0.0/16) |" in text
    assert "browser origin" in text
    assert "browser origin" not in tree(add_instance(golden_stack("caddy", "internal"), "lab", [LAB_ONLY],
                                                     {"admin_password_hash": EXAMPLE_HASH}).stack)["README.md"]
