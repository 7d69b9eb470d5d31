"""`stackgen verify --live` against real stacks: clean reference stacks, then one deliberate break at a time.

Each break must fail naming the exact problem (rule id and service), and is undone before the next.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen import engine as engines
from stackgen.cli.app import app
from stackgen.operate import firewall, lifecycle
from tests.images.build import pinned
from tests.integration.harness import LiveStack, start_stack, stop_stack

pytestmark = pytest.mark.engine
runner = CliRunner()


def verify_live(stack: LiveStack, *extra: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["verify", "--live", str(stack.directory), "--ca-file", str(stack.issuing_root), "--format", "json", *extra])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def active(report: dict) -> set[tuple[str, str | None]]:
    return {(f["rule"], f["service"]) for f in report["findings"] if not f["suppressed"]}


def clean(report: dict) -> None:
    """Nothing to report: every rule quiet, every live check passed (header grades A or better on the editor and
    an endpoint, since csp.js gave the editor a nonce policy; the TLS profile; reachability; certificates)."""
    assert active(report) == set(), [f["message"] for f in report["findings"] if not f["suppressed"]]
    checks = [c for c in report["live"]["checks"] if not c["ok"]]
    assert checks == [], checks
    grades = {c["check"]: c["detail"] for c in report["live"]["checks"] if c["check"].startswith("header grade")}
    assert set(grades) == {"header grade (editor)", "header grade (endpoint)"}, grades
    assert all(detail.startswith(("A+", "A ")) for detail in grades.values()), grades


def settle(stack: LiveStack) -> None:
    """Pebble is the test's CA, not part of the stack: once the certificate exists it leaves the stack's network."""
    try:
        stack.network("public").disconnect(stack.pebble)
    except Exception:  # noqa: BLE001 - already gone
        pass


@pytest.fixture(scope="module")
def caddy(engine, local_images, tmp_path_factory) -> LiveStack:
    live = start_stack(engine, tmp_path_factory.mktemp("verify-live-caddy"), "caddy")
    settle(live)
    yield live
    stop_stack(live)


def recompose(stack: LiveStack, service: str) -> None:
    engines.compose(stack.directory, "up", "-d", "--wait", service)


class HandEdit:
    """Edit a generated file, apply it, and put everything back afterwards."""

    def __init__(self, stack: LiveStack, relative: str, old: str, new: str, service: str, restart: bool = False, more: tuple = ()) -> None:
        self.stack, self.path, self.service, self.restart = stack, stack.directory / relative, service, restart
        self.edits = [(old, new), *more]

    def __enter__(self):
        self.original = self.path.read_text()
        text = self.original
        for old, new in self.edits:
            assert old in text, old
            text = text.replace(old, new, 1)
        self.path.write_text(text)
        self.apply()
        return self

    def apply(self) -> None:
        if self.restart:
            self.stack.container(self.service).restart(timeout=5)
            wait_healthy(self.stack, self.service)
        else:
            recompose(self.stack, self.service)

    def __exit__(self, *exc):
        self.path.write_text(self.original)
        self.apply()


def wait_healthy(stack: LiveStack, service: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stack.container(service).attrs["State"].get("Health", {}).get("Status") == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError(f"{service} not healthy")


def test_reference_caddy_stack_verifies_clean_live(caddy: LiveStack):
    code, report = verify_live(caddy, "--fail-on", "low")
    clean(report)
    assert code == 0
    cells = report["live"]["reachability"]
    assert all(cell["ok"] for cell in cells)
    node_red = [c for c in cells if c["service"] == "node-red" and c["port"] == 1880]
    assert {c["from"] for c in node_red if c["observed"] == "open"} == {"internal"}, "Node-RED opens only from the internal network"
    assert {c["from"] for c in node_red} >= {"internal", "public", "host"}
    assert any(c["from"] == "host" and c["network"] == "published" and c["observed"] == "open" for c in cells), "edge published ports open from the host"
    checks = {c["check"]: c for c in report["live"]["checks"]}
    assert any(name.startswith("node-red -> canary") for name in checks)
    assert any(name.startswith("node-red -> host listener") for name in checks)


def test_reference_nginx_stack_verifies_clean_live(engine, local_images, tmp_path):
    stack = start_stack(engine, tmp_path, "nginx")
    try:
        settle(stack)
        code, report = verify_live(stack, "--fail-on", "low")
        clean(report)
        assert code == 0
        assert all(c["ok"] for c in report["live"]["reachability"])
    finally:
        stop_stack(stack)


def test_text_report_shows_the_matrix(caddy: LiveStack):
    result = runner.invoke(app, ["verify", "--live", str(caddy.directory), "--ca-file", str(caddy.issuing_root)])
    assert result.exit_code == 0, result.output
    assert "reachability (TCP connect)" in result.output
    assert "node-red:1880" in result.output and "MISMATCH" not in result.output


def test_break_node_red_publishes_1880(caddy: LiveStack):
    published = "    ports:\n      - 127.0.0.1::1880\n    networks:\n      - internal\n"
    with HandEdit(caddy, "compose.yaml", "    networks:\n      - internal\n", published, "node-red"):
        code, report = verify_live(caddy)
    assert code == 1
    assert ("SG102", "node-red") in active(report)


def test_break_node_red_joins_the_public_network(caddy: LiveStack):
    network = caddy.network("public")
    network.connect(caddy.container("node-red"))
    try:
        code, report = verify_live(caddy)
    finally:
        network.disconnect(caddy.container("node-red"))
    found = active(report)
    assert code == 1
    assert {("SG207", "node-red"), ("SG103", "node-red"), ("SG301", "node-red")} <= found
    opened = [c for c in report["live"]["reachability"] if c["service"] == "node-red" and c["from"] == "public" and c["observed"] == "open"]
    assert opened and not opened[0]["ok"]


def test_html_report_of_a_broken_live_stack_draws_it_and_marks_the_matrix(caddy: LiveStack, tmp_path: Path):
    """`--live --format html`: the running topology drawn, SG207 on the network, the mismatched cell in red."""
    from tests.htmltree import parse
    from tests.unit.verify.test_report_html import assert_self_contained, rules_in

    network = caddy.network("public")
    network.connect(caddy.container("node-red"))
    out = tmp_path / "live.html"
    try:
        result = runner.invoke(app, ["verify", "--live", str(caddy.directory), "--ca-file", str(caddy.issuing_root),
                                     "--format", "html", "-o", str(out)])
    finally:
        network.disconnect(caddy.container("node-red"))
    assert result.exit_code == 1, result.output
    text = out.read_text(encoding="utf-8")
    doc = parse(text)
    assert_self_contained(doc, text)
    svg = doc.find("svg", "topology")
    assert {(p.attrs["data-service"], p.attrs["data-network"]) for p in svg.find_all("path", "net")} >= {
        ("node-red", "internal"), ("node-red", "public"), ("edge", "internal"), ("edge", "public")}
    assert svg.find("g", "network", data_key="internal").attrs["data-internal"] == "true"
    assert "SG207" in rules_in(doc.find("section", "group", data_kind="network", data_key="public"))
    rows = doc.find("table", "matrix").find("tbody").find_all("tr")
    bad = [[td.text for td in r.find_all("td")] for r in rows if "mismatch" in r.classes]
    assert any(cells[0] == "node-red:1880" and cells[2] == "public" and cells[4] == "open" for cells in bad), bad
    assert all("mismatch" not in r.classes for r in rows if r.find_all("td")[0].text.startswith("edge:")), "the rest still holds"


def test_break_key_volume_mounted_in_node_red(caddy: LiveStack):
    old = "      - type: volume\n        source: node-red-data\n"
    new = "      - type: volume\n        source: certs\n        target: /etc/letsencrypt\n        read_only: true\n" + old
    with HandEdit(caddy, "compose.yaml", old, new, "node-red"):
        code, report = verify_live(caddy)
    assert code == 1
    assert ("SG106", "node-red") in active(report)


def test_break_key_volume_writable_in_edge(caddy: LiveStack):
    old = "        source: certs\n        target: /etc/letsencrypt\n        read_only: true\n"
    new = "        source: certs\n        target: /etc/letsencrypt\n        read_only: false\n"
    with HandEdit(caddy, "compose.yaml", old, new, "edge"):
        code, report = verify_live(caddy)
    assert code == 1
    assert ("SG107", "edge") in active(report)


def test_break_node_red_runs_as_root(caddy: LiveStack):
    # As forum files do it: root, and so with the default capabilities (without them root cannot read uid 1000's secret).
    cap_drop = "    cap_drop:\n      - ALL\n    security_opt:\n      - no-new-privileges:true\n    mem_limit: 512m"
    edits = ((cap_drop, "    security_opt:\n      - no-new-privileges:true\n    mem_limit: 512m"),)
    with HandEdit(caddy, "compose.yaml", 'user: "1000:1000"', 'user: "0:0"', "node-red", more=edits):
        code, report = verify_live(caddy)
        assert caddy.exec("node-red", ["id", "-u"])[1].strip() == "0"
    assert code == 1
    assert ("SG018", "node-red") in active(report)
    assert any("uid 0" in f["message"] or "0:0" in f["message"] for f in report["findings"] if f["rule"] == "SG018" and f["service"] == "node-red")


def test_break_rogue_container_on_the_internal_network(caddy: LiveStack):
    rogue = caddy.engine.containers.run(
        pinned("base"), ["sleep", "120"], detach=True, name=f"{caddy.project}-rogue",
        network=f"{caddy.project}_internal", user="65534:65534",
    )
    try:
        code, report = verify_live(caddy)
    finally:
        rogue.remove(force=True)
    assert code == 1
    rogue_name = f"{caddy.project}-rogue"
    assert ("SG201", rogue_name) in active(report)
    assert any(f["rule"] == "SG105" for f in report["findings"] if not f["suppressed"]), "the rogue can reach Node-RED"


def test_break_host_listener_reachable_through_the_gateway(caddy: LiveStack):
    rule = lifecycle.firewall_rule(caddy.directory)
    assert firewall.is_applied(rule), "stackgen up applied the host rule"
    gateway = caddy.network("internal").attrs["IPAM"]["Config"][0]["Gateway"]
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))  # a careless host service: every address, the bridge gateway included
    listener.listen(4)
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: [c.close() for c, _ in iter(listener.accept, None)], daemon=True).start()
    firewall.remove(rule)
    try:
        script = (f"require('net').connect({port},'{gateway}')"
                  ".on('connect',()=>{console.log('OPEN');process.exit(0)})"
                  ".on('error',()=>{console.log('CLOSED');process.exit(1)})")
        code, opened = caddy.exec("node-red", ["node", "-e", script])
        assert opened.strip() == "OPEN", "without the rule Node-RED reaches the host's listener"
        code, report = verify_live(caddy)
    finally:
        firewall.apply(rule)
        listener.close()
    assert code == 1
    findings = [f for f in report["findings"] if f["rule"] == "SG302" and not f["suppressed"]]
    assert findings and "iptables -I INPUT -i sg-" in findings[0]["message"]


def test_break_wrong_name_certificate(caddy: LiveStack):
    live_dir = f"/etc/letsencrypt/live/{caddy.domain}"
    swap = (
        "set -e; cd /tmp; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem -out c.pem -days 30 -subj /CN=wrong.stackgen.test "
        "-addext subjectAltName=DNS:wrong.stackgen.test >/dev/null 2>&1; "
        f"cp $(readlink -f {live_dir}/fullchain.pem) /tmp/fullchain.orig; cp $(readlink -f {live_dir}/privkey.pem) /tmp/privkey.orig; "
        f"cat k.pem > $(readlink -f {live_dir}/privkey.pem); cat c.pem > $(readlink -f {live_dir}/fullchain.pem)"
    )
    restore = f"cat /tmp/privkey.orig > $(readlink -f {live_dir}/privkey.pem); cat /tmp/fullchain.orig > $(readlink -f {live_dir}/fullchain.pem)"
    before = caddy.https("/").serial
    code, output = caddy.exec("certbot", ["sh", "-c", swap])
    assert code == 0, output
    try:
        wait_for_serial_change(caddy, before)
        code, report = verify_live(caddy)
    finally:
        caddy.exec("certbot", ["sh", "-c", restore])
    assert code == 1
    messages = [f["message"] for f in report["findings"] if f["rule"] == "SG305" and not f["suppressed"]]
    assert messages and "wrong.stackgen.test" in messages[0] and "does not verify" in messages[0]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if caddy.https("/").serial == before:
                break
        except OSError:
            pass
        time.sleep(0.5)


def wait_for_serial_change(stack: LiveStack, before: str | None, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if stack.https("/").serial != before:
                return
        except OSError:
            return  # no longer verifies against pebble's root: it changed
        time.sleep(0.5)
    raise AssertionError("the edge did not pick up the swapped certificate")


def test_break_certificate_expiring_within_min_days(caddy: LiveStack):
    code, report = verify_live(caddy, "--min-days", "100000")
    assert code == 1
    messages = [f["message"] for f in report["findings"] if f["rule"] == "SG305" and not f["suppressed"]]
    assert messages and "expires in" in messages[0]


def test_break_admin_auth_disabled(caddy: LiveStack):
    settings = "node-red/settings.js"
    text = (caddy.directory / settings).read_text()
    start = text.index("    adminAuth: {")
    end = text.index("    },\n", text.index('permissions: "*"')) + len("    },\n")
    with HandEdit(caddy, settings, text[start:end], "", "node-red", restart=True):
        assert caddy.https("/flows").status == 200, "the break really opened the admin API"
        code, report = verify_live(caddy)
    assert code == 1
    assert ("SG308", "node-red") in active(report)


UNKNOWN_PATH = "unknown path reaches Node-RED only"


def test_node_red_behind_http_node_auth_is_not_sg310_but_an_edges_own_basic_auth_is(caddy: LiveStack):
    """With `http_node_auth` (httpNodeAuth, rendered with the login shield in front: the list form), Node-RED answers
    every path under httpNodeRoot with 401 and a basic challenge, never its own 404: SG310 must still see that Node-RED
    answered (its basic auth lets OPTIONS through, to its own 404), and must still catch the edge answering the same
    challenge itself."""
    from tests.golden import EXAMPLE_HASH

    auth = (f'    httpNodeAuth: [\n        shield.httpNode,\n        shield.basicAuth("viewer", {json.dumps(EXAMPLE_HASH)})\n'
            "    ],\n    httpNodeRoot:")
    with HandEdit(caddy, "node-red/settings.js", "    httpNodeRoot:", auth, "node-red", restart=True):
        answer = caddy.https("/stackgen-probe-by-hand")
        assert answer.status == 401 and answer.headers.get("www-authenticate", "").startswith("Basic"), answer.status
        code, report = verify_live(caddy, "--probes", "cheap")
        checks = {c["check"]: c for c in report["live"]["checks"]}
        assert checks[UNKNOWN_PATH]["ok"] and "httpNodeAuth" in checks[UNKNOWN_PATH]["detail"], checks[UNKNOWN_PATH]
        assert ("SG310", "edge") not in active(report) and code == 0, active(report)
        edge_auth = ("\t@stackgen_probe path /stackgen-probe-*\n"
                     "\theader @stackgen_probe WWW-Authenticate `Basic realm=\"Authorization Required\"`\n"
                     '\trespond @stackgen_probe "Unauthorized" 401\n\treverse_proxy ')
        with HandEdit(caddy, "edge/Caddyfile", "\treverse_proxy ", edge_auth, "edge", restart=True):
            answer = caddy.https("/stackgen-probe-by-hand")
            assert answer.status == 401 and answer.headers.get("www-authenticate", "").startswith("Basic"), answer.status
            code, report = verify_live(caddy, "--probes", "cheap")
        checks = {c["check"]: c for c in report["live"]["checks"]}
        assert not checks[UNKNOWN_PATH]["ok"], checks[UNKNOWN_PATH]
        assert ("SG310", "edge") in active(report), active(report)  # medium: reported, exit 0 at the default --fail-on high


def test_break_internal_network_recreated_without_internal(caddy: LiveStack):
    """Last: recreates the network by hand, the way another tool would."""
    engine = caddy.engine
    old = caddy.network("internal")
    attrs = old.attrs
    members = [engine.containers.get(cid) for cid in (attrs.get("Containers") or {})]
    aliases = {c.id: c.attrs["NetworkSettings"]["Networks"][attrs["Name"]].get("Aliases") or [] for c in members}
    for container in members:
        old.disconnect(container, force=True)
    old.remove()
    new = engine.networks.create(attrs["Name"], driver="bridge", internal=False, labels=attrs["Labels"], options=attrs["Options"])
    for container in members:
        new.connect(container, aliases=[a for a in aliases[container.id] if len(a) != 12])
    code, report = verify_live(caddy)
    assert code == 1
    found = active(report)
    assert ("SG203", None) in found
    assert ("SG103", "node-red") in found or ("SG303", "node-red") in found
