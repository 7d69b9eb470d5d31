"""The editor's Content-Security-Policy middleware (blueprints/node-red/csp.js) and its click shim, run under Node.js
with fake requests/responses. The live proof (headless Chromium loading the real editor through each edge with
no CSP violation) is tests/integration/test_editor_csp.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import stackgen.generate
from stackgen.generate.headers import EDITOR_CSP, NONCE_PLACEHOLDER
from tests import golden

BLUEPRINTS = Path(stackgen.generate.__file__).parent / "blueprints" / "node-red"
CSP = BLUEPRINTS / "csp.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the integration test runs it in the Node-RED twin)")

# Loads csp.js, replays requests as {method, path, cookie, body, type}; prints each response's headers and body.
HARNESS = r"""
const csp = require(process.argv[1]);
const scenario = JSON.parse(process.argv[2]);
const out = [];
let mw;
try { mw = csp(scenario.options).admin; } catch (e) { console.log(JSON.stringify({error: e.message})); process.exit(0); }
for (const r of scenario.requests) {
  const headers = {};
  const res = {
    get: (n) => headers[n.toLowerCase()],
    set: (n, v) => { headers[n.toLowerCase()] = v; },
    append: (n, v) => { const k = n.toLowerCase(); headers[k] = (headers[k] || []).concat([v]); },
    send: function (body) { out.push({headers: headers, body: body}); },
  };
  if (r.type) { headers["content-type"] = r.type; }
  mw({method: r.method || "GET", path: r.path, headers: r.cookie ? {cookie: r.cookie} : {}}, res, () => res.send(r.body));
}
console.log(JSON.stringify(out));
"""

POLICY = EDITOR_CSP
OPTIONS = {"policy": POLICY, "cookie_path": "/editor"}
PAGE = ('<html><head></head><body><script src="vendor/vendor.js?v=1"></script>\n<script src="red/red.min.js"></script>\n'
        '<SCRIPT type="text/javascript">var s = "<script>not a tag</script" + ">";</SCRIPT>\n'
        '<script>RED.sessionMessages = [];</script></body></html>')
NODES = ('<!-- --- [red-module:node-red/inject] --- -->\n<script type="text/html" data-template-name="inject"><div></div></script>\n'
         '<script type="text/javascript">RED.nodes.registerType("inject", {category: "common"});</script>')


def run(requests: list[dict], options: dict | None = None) -> list[dict] | dict:
    assert NODE is not None
    scenario = {"options": options or OPTIONS, "requests": requests}
    done = subprocess.run([NODE, "-e", HARNESS, str(CSP), json.dumps(scenario)], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def nonce_of(response: dict) -> str:
    match = re.search(r"'nonce-([^']+)'", response["headers"]["content-security-policy"])
    assert match, response["headers"]
    return match.group(1)


def cookie_of(response: dict) -> str:
    (line,) = response["headers"]["set-cookie"]
    return line.split(";", 1)[0]


def test_the_editor_page_gets_a_fresh_nonce_on_every_script_tag_and_in_a_strict_cookie():
    (page,) = run([{"path": "/", "body": PAGE}])
    nonce = nonce_of(page)
    assert len(nonce) >= 22
    assert page["headers"]["content-security-policy"] == POLICY.replace(NONCE_PLACEHOLDER, nonce)
    tags = re.findall(r"<script[^>]*>", page["body"], flags=re.IGNORECASE)
    assert len([tag for tag in tags if f'nonce="{nonce}"' in tag]) == 4
    assert [tag for tag in tags if "nonce" not in tag] == ["<script>"]  # the one inside a script's text
    # A "<script" inside a script's own text is not a tag: left as it is.
    assert 'var s = "<script>not a tag</script" + ">";' in page["body"]
    (cookie,) = page["headers"]["set-cookie"]
    assert cookie == f"stackgen-csp-nonce={nonce}; Path=/editor; Secure; HttpOnly; SameSite=Strict"
    assert page["headers"]["cache-control"] == "no-store"


def test_each_page_load_has_its_own_nonce():
    first, second = run([{"path": "/", "body": PAGE}, {"path": "/", "body": PAGE}])
    assert nonce_of(first) != nonce_of(second)


def test_node_definitions_get_the_nonce_of_the_page_that_asked_for_them():
    page, = run([{"path": "/", "body": PAGE}])
    nodes, = run([{"path": "/nodes", "cookie": "theme=dark; " + cookie_of(page), "body": NODES}])
    nonce = nonce_of(page)
    assert nonce_of(nodes) == nonce
    assert nodes["body"].count(f'nonce="{nonce}"') == 2
    assert "set-cookie" not in nodes["headers"], "only the page sets the cookie"


@pytest.mark.parametrize("cookie", [None, "stackgen-csp-nonce=short", 'stackgen-csp-nonce=abc"def<script>xxxxxxxxxxxxxxxxxxxx',
                                    "other=AAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_without_a_well_formed_cookie_definitions_get_a_nonce_nobody_holds(cookie):
    nodes, = run([{"path": "/nodes", "cookie": cookie, "body": NODES}])
    nonce = nonce_of(nodes)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,64}", nonce)
    assert cookie is None or nonce not in cookie
    assert nodes["body"].count(f'nonce="{nonce}"') == 2


def test_json_and_other_bodies_are_untouched_but_still_carry_the_policy():
    body = json.dumps({"html": "<script>x</script>"})
    flows, buffer = run([{"path": "/flows", "body": body, "type": "application/json"}, {"path": "/icons/x.png", "body": None}])
    assert flows["body"] == body
    assert "'nonce-" in flows["headers"]["content-security-policy"]
    assert buffer["body"] is None


@pytest.mark.parametrize("options, message", [
    ({"policy": "default-src 'self'", "cookie_path": "/editor"}, "{nonce}"),
    ({"policy": POLICY, "cookie_path": "/editor; Domain=evil"}, "cookie_path"),
    ({"policy": POLICY, "cookie_path": "editor"}, "cookie_path"),
])
def test_bad_options_stop_node_red_from_starting(options, message):
    result = run([], options)
    assert isinstance(result, dict) and message in result["error"]


def test_settings_js_passes_the_policy_from_headers_py_and_runs_csp_before_the_shield():
    settings = golden.rendered_tree(golden.golden_stack(*golden.combos()[0]))["node-red/settings.js"].decode()
    (literal,) = re.findall(r'^    policy: (".*"),$', settings, flags=re.MULTILINE)
    assert json.loads(literal) == POLICY
    assert 'cookie_path: "/editor"' in settings
    assert "httpAdminMiddleware: [csp.admin, shield.admin]," in settings
    assert 'page: { scripts: [require("path").join(__dirname, "csp-shim.js")] },' in settings


def test_the_policy_forbids_inline_and_eval_and_framing():
    directives = dict(part.strip().split(" ", 1) for part in POLICY.split(";"))
    assert directives["script-src"] == f"'nonce-{NONCE_PLACEHOLDER}' 'strict-dynamic'"
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in POLICY
    assert directives["default-src"] == "'none'" and directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"


SHIM_HARNESS = r"""
const calls = [];
global.RED = {workspaces: {show: (a) => calls.push(["workspaces.show", a])}, search: {show: (a) => calls.push(["search.show", a])},
  sidebar: {help: {show: (a) => calls.push(["sidebar.help.show", a])}, versionControl: {showLocalChanges: () => calls.push(["vc"])}},
  actions: {invoke: (a) => calls.push(["actions.invoke", a])}};
let listener;
global.document = {addEventListener: (type, fn, capture) => { listener = fn; }};
require(process.argv[1]);
const results = [];
for (const attr of JSON.parse(process.argv[2])) {
  let prevented = false;
  const el = {getAttribute: () => attr};
  listener({target: {closest: () => el}, preventDefault: () => { prevented = true; }});
  results.push({prevented: prevented, calls: calls.splice(0)});
}
console.log(JSON.stringify(results));
"""


def test_the_shim_replays_only_the_editors_known_onclick_calls():
    attrs = ["RED.workspaces.show('abc'); return false;", "RED.search.show('type:inject'); return false;",
             "RED.sidebar.help.show('it\\'s'); return false;", "RED.actions.invoke('core:show-welcome-tour')",
             "RED.sidebar.versionControl.showLocalChanges(); return false;",
             "alert(document.cookie)", "RED.workspaces.show('a'); alert(1)", "RED.nodes.clear()", "RED.search.show(x)"]
    assert NODE is not None
    done = subprocess.run([NODE, "-e", SHIM_HARNESS, str(BLUEPRINTS / "csp-shim.js"), json.dumps(attrs)],
                          capture_output=True, text=True, timeout=30, check=True)
    results = json.loads(done.stdout)
    assert [r["calls"] for r in results[:5]] == [[["workspaces.show", "abc"]], [["search.show", "type:inject"]],
                                                 [["sidebar.help.show", "it's"]], [["actions.invoke", "core:show-welcome-tour"]],
                                                 [["vc"]]]
    assert all(r["prevented"] for r in results[:5])
    assert all(r == {"prevented": False, "calls": []} for r in results[5:])


def test_the_shim_renames_only_known_inline_handlers_before_jquery_parses_them():
    html = ('<button type="button" onclick="RED.sidebar.help.show(\'yaml\'); return false;" class="b">'
            '<a href="#" onclick="RED.sidebar.versionControl.showLocalChanges(); return false;">x</a>'
            '<img src=x onclick="alert(1)"><div ONCLICK="RED.nodes.clear()"></div>')
    script = "const shim = require(process.argv[1]); console.log(JSON.stringify(shim.rename(process.argv[2])));"
    assert NODE is not None
    done = subprocess.run([NODE, "-e", "global.document={addEventListener(){}};" + script, str(BLUEPRINTS / "csp-shim.js"), html],
                          capture_output=True, text=True, timeout=30, check=True)
    renamed = json.loads(done.stdout)
    assert renamed.count("data-stackgen-onclick=") == 2
    assert 'data-stackgen-onclick="RED.sidebar.help.show(\'yaml\'); return false;"' in renamed
    assert 'onclick="alert(1)"' in renamed and 'ONCLICK="RED.nodes.clear()"' in renamed
