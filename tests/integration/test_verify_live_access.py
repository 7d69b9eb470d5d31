"""`stackgen verify --live` proves the access controls of issue 13 on running stacks (Caddy and NGINX): the
editor refused from outside `node_red.editor.allow` while an endpoint still reaches Node-RED (SG313, SG314),
repeated failed logins banned (SG315), forged client headers of no help (SG316). Clean on our stacks, with the
editor at / (as tests/integration/test_verify_live.py's reference stacks have it) and at its default /editor;
then each probe is shown to fail on a deliberately weakened stack, one weakness at a time, each undone before
the next: the gate removed, allow opened to everyone, every path gated, the shield left out of settings.js,
the client's X-Forwarded-For passed on as X-Real-IP, the edge trusting X-Forwarded-For for the client address.

Traffic only to our own containers: the verifier's probe networks (created, joined by the edge, removed) and
the host's loopback.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import time

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.constants import PROBE_LABEL
from stackgen.live import access, checks
from stackgen.live import access_probes as ap
from stackgen.spec import PRIVATE_NETWORKS
from stackgen.stackdir import dump_stack, load_stack
from tests.images.build import pinned
from tests.integration.harness import LiveStack, start_stack, stop_stack

pytestmark = pytest.mark.engine
runner = CliRunner()

RULES = {"SG313", "SG314", "SG315", "SG316"}
CHECKS = {ap.GATE, ap.GATE_FORGED, ap.ENDPOINT, ap.SHIELD, ap.SHIELD_FORGED}
EVERYONE = ["0.0.0.0/0", "::/0"]


def verify_live(stack: LiveStack, *extra: str) -> tuple[int, dict, float]:
    start = time.monotonic()
    args = ["verify", "--live", *extra, "--ca-file", str(stack.issuing_root), "--format", "json"]
    if "--project" not in extra:
        args.insert(2, str(stack.directory))
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout), time.monotonic() - start


def found(report: dict) -> set[tuple[str, str]]:
    return {(f["rule"], f["service"]) for f in report["findings"] if not f["suppressed"] and f["rule"] in RULES}


def messages(report: dict, rule: str) -> list[str]:
    return [f["message"] for f in report["findings"] if f["rule"] == rule and not f["suppressed"]]


def access_checks(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["live"]["checks"] if c["check"] in CHECKS}


def probe_leftovers(stack: LiveStack) -> list[str]:
    networks = [n.name for n in stack.engine.networks.list(filters={"label": f"{PROBE_LABEL}={stack.project}"})]
    containers = [c.name for c in stack.engine.containers.list(all=True, filters={"label": f"{PROBE_LABEL}={stack.project}"})]
    return networks + containers


def set_editor(stack: LiveStack, path: str, allow: list[str] | None = None) -> None:
    spec = load_stack(stack.directory)
    spec.node_red.editor.path = path
    spec.node_red.editor.allow = list(allow or PRIVATE_NETWORKS)
    (stack.directory / "stack.yaml").write_bytes(dump_stack(spec))
    result = runner.invoke(app, ["generate", str(stack.directory)])
    assert result.exit_code == 0, result.output
    stack.up()
    stack.admin_root = "" if path == "/" else path


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def live(request, engine, local_images, tmp_path_factory):
    stack = start_stack(engine, tmp_path_factory.mktemp(f"verify-access-{request.param}"), request.param)
    yield stack
    stop_stack(stack)


@pytest.fixture
def access_only(monkeypatch):
    """The break tests judge the access probes alone: the matrix, egress and TLS probes are not run."""
    for name in ("matrix", "egress", "tls_profile_probe", "tls"):
        monkeypatch.setattr(checks, name, lambda *args, **kwargs: None)


def test_the_editor_at_root_verifies_clean(live: LiveStack):
    edge = live.container("edge")
    networks = set(edge.attrs["NetworkSettings"]["Networks"])
    _, report, seconds = verify_live(live)
    assert found(report) == set(), report["findings"]
    results = access_checks(report)
    assert set(results) == CHECKS and all(c["ok"] for c in results.values()), results
    assert "at /" in results[ap.ENDPOINT]["detail"]
    assert not probe_leftovers(live), "the probe networks and clients are gone"
    assert set(live.container("edge").attrs["NetworkSettings"]["Networks"]) == networks, "the edge is back on its own networks"
    print(f"\n[{live.edge}] verify --live (all probes), editor at /: {seconds:.1f} s; {results[ap.SHIELD]['detail']}")


def test_the_default_layout_verifies_clean_and_the_shield_bans_after_the_limit(live: LiveStack):
    set_editor(live, "/editor")
    _, report, seconds = verify_live(live)
    assert found(report) == set(), report["findings"]
    results = access_checks(report)
    assert all(c["ok"] for c in results.values()), results
    assert "Node-RED's own answer" in results[ap.ENDPOINT]["detail"]
    shield = results[ap.SHIELD]["detail"]
    assert shield.startswith("5 failed logins") and "then 429 (Retry-After 900 s)" in shield, shield
    assert results[ap.SHIELD_FORGED]["detail"].startswith("5 failed logins"), results[ap.SHIELD_FORGED]
    print(f"\n[{live.edge}] verify --live (all probes), editor at /editor: {seconds:.1f} s; {shield}")
    # Without stack.yaml (--project): the same, learned from the running configs.
    _, report, _ = verify_live(live, "--project", live.project)
    results = access_checks(report)
    assert found(report) == set() and all(c["ok"] for c in results.values()), results
    assert "running configs" in results[ap.GATE]["detail"]


def test_cheap_probes_leave_the_access_probes_out(live: LiveStack):
    _, report, _ = verify_live(live, "--probes", "cheap")
    assert not access_checks(report) and not probe_leftovers(live)


def test_a_probe_network_keeps_the_edges_route_and_leaves_nothing(live: LiveStack, engine):
    edge = live.container("edge")

    def default_route() -> list[str]:
        table = edge.exec_run(["cat", "/proc/net/route"]).output.decode().splitlines()[1:]
        return [line.split()[:3] for line in table if line.split()[1] == "00000000"]

    before, networks = default_route(), set(edge.attrs["NetworkSettings"]["Networks"])
    subnet = access.outsider_subnet(list(PRIVATE_NETWORKS), access.engine_subnets(engine) + access.host_routes())
    with access.probe_network(engine, f"{live.project}-probe-{secrets.token_hex(3)}", {PROBE_LABEL: live.project}, subnet=subnet) as net:
        net.attach(edge)
        assert default_route() == before, "an internal probe network never becomes the edge's way out"
        client = net.client(pinned("node-red"), random_address=True)
        assert ipaddress.ip_address(client.address) in ipaddress.ip_network(subnet)
        assert client.run([{"path": "/editor/flows"}], host=live.domain)[0].status == 403, "outside allow"
    edge.reload()
    assert set(edge.attrs["NetworkSettings"]["Networks"]) == networks and not probe_leftovers(live)


class Weakened:
    """Edit a file the stack runs (per edge), restart its service, and put everything back afterwards."""

    FILES = {"caddy": "edge/Caddyfile", "nginx": "edge/nginx.conf"}

    def __init__(self, stack: LiveStack, service: str, edits: list[tuple[str, str]], relative: str | None = None) -> None:
        self.stack, self.service, self.edits = stack, service, edits
        self.path = stack.directory / (relative or self.FILES[stack.edge])

    def __enter__(self):
        self.original = text = self.path.read_text()
        for old, new in self.edits:
            assert re.search(old, text), old
            text = re.sub(old, new, text, count=1)
        self.path.write_text(text)
        self.restart()
        return self

    def __exit__(self, *exc):
        self.path.write_text(self.original)
        self.restart()

    def restart(self) -> None:
        self.stack.container(self.service).restart(timeout=5)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.stack.container(self.service).attrs["State"].get("Health", {}).get("Status") == "healthy":
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.service} not healthy")


GATE_OFF = {"caddy": [(r'\n\trespond @editor_outsider "forbidden" 403', "")],
            "nginx": [(r"if \(\$editor_refused\) \{", "if ($editor_refused = never) {")]}
ALL_GATED = {"caddy": [(r"path /editor /editor/\*", "path /*")],
             "nginx": [(r'"~\*\^/editor\(\?:/\|\$\)" 1;', '"~*^/" 1;')]}
XFF_AS_REAL_IP = {"caddy": [(r"header_up X-Real-IP \{remote_host\}", "header_up X-Real-IP {header.X-Forwarded-For}")],
                  "nginx": [(r"proxy_set_header X-Real-IP \$remote_addr;", "proxy_set_header X-Real-IP $http_x_forwarded_for;")]}
TRUSTS_XFF = {"caddy": [(r"protocols h1 h2\n", "protocols h1 h2\n\t\ttrusted_proxies static 0.0.0.0/0 ::/0\n"),
                        (r"not remote_ip", "not client_ip"), (r"header_up X-Real-IP \{remote_host\}", "header_up X-Real-IP {client_ip}")],
              "nginx": [(r"    geo \$editor_client_allowed", "    set_real_ip_from 0.0.0.0/0;\n    real_ip_header X-Forwarded-For;\n"
                                                              "    geo $editor_client_allowed")]}


def test_weakened_the_gate_removed_is_sg313(live: LiveStack, access_only):
    with Weakened(live, "edge", GATE_OFF[live.edge]):
        _, report, seconds = verify_live(live)
        _, learned, _ = verify_live(live, "--project", live.project)
    assert ("SG313", "edge") in found(report) and ("SG316", "edge") not in found(report), found(report)
    assert "/editor/flows -> 401" in messages(report, "SG313")[0], messages(report, "SG313")
    assert access_checks(report)[ap.GATE_FORGED]["detail"].startswith("not checked")
    # Without stack.yaml the running configs say where the editor is; the benchmarking address is still an outsider.
    assert ("SG313", "edge") in found(learned), found(learned)
    print(f"\n[{live.edge}] access probes alone: {seconds:.1f} s")


def test_weakened_allow_open_to_everyone_is_sg313_by_configuration(live: LiveStack, access_only):
    set_editor(live, "/editor", EVERYONE)
    try:
        _, report, _ = verify_live(live)
    finally:
        set_editor(live, "/editor")
    assert found(report) == {("SG313", "edge")}, found(report)
    assert "admits everyone" in messages(report, "SG313")[0]
    # The shield is probed from the benchmarking network, inside allow now.
    assert access_checks(report)[ap.SHIELD]["ok"] and "198.1" in access_checks(report)[ap.SHIELD]["detail"]


def test_weakened_every_path_gated_is_sg314(live: LiveStack, access_only):
    with Weakened(live, "edge", ALL_GATED[live.edge]):
        _, report, _ = verify_live(live)
    assert found(report) == {("SG314", "edge")}, found(report)
    assert "answered 403, not Node-RED" in messages(report, "SG314")[0]


def test_weakened_the_shield_left_out_of_settings_is_sg315(live: LiveStack, access_only):
    with Weakened(live, "node-red", [(r"(httpAdminMiddleware:[^\n]*?)shield\.admin", r"\1((req, res, next) => next())")],
                  "node-red/settings.js"):
        _, report, _ = verify_live(live)
    assert found(report) == {("SG315", "node-red")}, found(report)
    assert "never 429" in messages(report, "SG315")[0]
    assert access_checks(report)[ap.SHIELD_FORGED]["detail"].startswith("not checked")


def test_weakened_x_forwarded_for_passed_on_as_x_real_ip_is_sg316(live: LiveStack, access_only):
    with Weakened(live, "edge", XFF_AS_REAL_IP[live.edge]):
        _, report, _ = verify_live(live)
        token = live.token()  # the probe stopped at one failure: nobody's logins were banned
    assert found(report) == {("SG316", "edge")}, found(report)
    assert "the edge's own address" in messages(report, "SG316")[0]
    assert token


def test_weakened_an_edge_that_trusts_x_forwarded_for_is_sg316_for_the_gate_and_the_shield(live: LiveStack, access_only):
    with Weakened(live, "edge", TRUSTS_XFF[live.edge]):
        _, report, _ = verify_live(live)
    assert found(report) == {("SG316", "edge")}, found(report)
    results = access_checks(report)
    assert results[ap.GATE]["ok"], "without the headers the outsider is still refused"
    assert not results[ap.GATE_FORGED]["ok"] and not results[ap.SHIELD_FORGED]["ok"], results
    assert results[ap.SHIELD]["ok"]
    assert any("naming an allowed address" in m for m in messages(report, "SG316"))
    assert any("written in a header" in m or "its client wrote" in m for m in messages(report, "SG316"))
