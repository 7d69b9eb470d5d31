"""verify --live's access probes without an engine: what is learned, where probe addresses come from, and
canned probe results judged into findings (SG313 editor-exposed, SG314 endpoints-refused, SG315
login-not-throttled, SG316 client-address-forgeable)."""

from __future__ import annotations

import ipaddress
import random
from types import SimpleNamespace

import pytest

from stackgen.generate.render import render
from stackgen.live import access
from stackgen.live import access_plan as plans
from stackgen.live import access_probes as ap
from stackgen.live import checks as live
from stackgen.live.access import Result
from stackgen.spec import PRIVATE_NETWORKS, Stack
from stackgen.topology import Network, Role, Service, Topology
from tests.golden import EXAMPLE_HASH

EVERYONE = ["0.0.0.0/0", "::/0"]


def stack(edge: str = "caddy", **editor) -> Stack:
    return Stack.model_validate({
        "project": "p", "domains": ["nodered.example.org", "editor.example.org"], "email": "ops@example.org", "edge": edge,
        "node_red": {"admin_password_hash": EXAMPLE_HASH, "editor": editor},
    })


def rendered(spec: Stack) -> tuple[dict[str, str], str]:
    """The edge's config (as the container mounts it, by path) and settings.js, as stackgen writes them."""
    files = {item.path: item.content.decode() for item in render(spec)}
    edge = {path: files[f"edge/{path.rsplit('/', 1)[-1]}"] for path in plans.EDGE_CONFIGS if f"edge/{path.rsplit('/', 1)[-1]}" in files}
    return edge, files["node-red/settings.js"]


# --- what is learned ------------------------------------------------------------------------------


def test_the_plan_from_stack_yaml():
    plan = plans.plan_from_stack(stack(host="editor.example.org", allow=["10.8.0.0/24"]))
    assert (plan.source, plan.host, plan.editor_path, plan.editor_host) == ("stack.yaml", "nodered.example.org", "/editor", "editor.example.org")
    assert plan.allow == ["10.8.0.0/24"] and plan.shield == plans.ShieldPlan(True, 5, 900) and not plan.everyone


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
@pytest.mark.parametrize("path", ["/editor", "/", "/ops.admin"])
def test_the_plan_from_the_running_configs_matches_stack_yaml(edge, path):
    spec = stack(edge, path=path, allow=["10.8.0.0/24", "fd00:1::/64"])
    plan = plans.plan_from_configs(*rendered(spec))
    want = plans.plan_from_stack(spec)
    assert (plan.host, plan.editor_path, plan.allow, plan.shield, plan.editor_host) == (
        want.host, want.editor_path, want.allow, want.shield, None), plan
    assert not plan.gaps and "running configs" in plan.source


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_the_editor_host_and_default_allow_from_the_running_configs(edge):
    plan = plans.plan_from_configs(*rendered(stack(edge, host="editor.example.org")))
    assert plan.editor_host == "editor.example.org" and plan.host == "nodered.example.org"
    assert plan.allow == list(PRIVATE_NETWORKS)


def test_settings_without_the_shield_or_the_editor():
    edge, settings = rendered(stack())
    plan = plans.plan_from_configs(edge, settings.replace("httpAdminMiddleware", "httpAdminMiddlewareOff"))
    assert plan.shield == plans.ShieldPlan(False, 5, 900)
    plan = plans.plan_from_configs(edge, 'module.exports = {httpAdminRoot: false};')
    assert not plan.editor_enabled and plan.shield == plans.ShieldPlan(False)


def test_unknown_configs_are_gaps_never_a_pass():
    plan = plans.plan_from_configs({}, None)
    assert plan.editor_path is None and plan.allow is None and plan.shield is None and len(plan.gaps) == 3
    verdicts = ap.config_verdicts(plan)
    assert {(v.check, v.ok, v.rule) for v in verdicts} == {(ap.GATE, False, None), (ap.SHIELD, False, None)}
    assert all(v.detail.startswith("not checked: ") and "stack.yaml" in v.detail for v in verdicts)


def test_configuration_alone_reports_an_editor_open_to_everyone_and_the_shield_off():
    spec = stack(allow=EVERYONE)
    spec.node_red.login_shield.enabled = False
    found = {(v.check, v.rule) for v in ap.config_verdicts(plans.plan_from_stack(spec)) if not v.ok}
    assert found == {(ap.GATE, "SG313"), (ap.SHIELD, "SG315")}
    assert ap.config_verdicts(plans.plan_from_stack(stack())) == []


def test_a_disabled_editor_has_nothing_to_gate():
    verdicts = ap.config_verdicts(plans.plan_from_stack(stack(enabled=False)))
    assert all(v.ok and v.rule is None for v in verdicts) and {v.check for v in verdicts} == {ap.GATE, ap.SHIELD}


# --- where probe addresses come from ----------------------------------------------------------------


def test_the_outsider_subnet_is_a_benchmarking_24_outside_allow_and_everything_taken():
    rng = random.Random(7)
    taken = [str(n) for n in ipaddress.ip_network("198.18.0.0/16").subnets(new_prefix=20)][:-1]  # all but 198.18.240/20
    for _ in range(50):
        subnet = ipaddress.ip_network(access.outsider_subnet(list(PRIVATE_NETWORKS), taken, rng))
        assert subnet.prefixlen == 24 and subnet.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
        assert not any(subnet.overlaps(ipaddress.ip_network(t)) for t in taken)
    assert access.outsider_subnet(["198.0.0.0/8"]) is None
    assert access.outsider_subnet(["198.19.0.0/16"], ["198.18.0.0/16"]) is None


def test_everyone_and_covering():
    assert access.open_to_everyone(EVERYONE) and access.open_to_everyone(["0.0.0.0/1", "0.0.0.0/0"])
    assert not access.open_to_everyone(list(PRIVATE_NETWORKS)) and not access.open_to_everyone(["::/0"])
    assert access.covers(PRIVATE_NETWORKS, "172.20.0.0/16") and not access.covers(PRIVATE_NETWORKS, "198.18.3.0/24")
    assert access.covers(["not a network", "10.0.0.0/8"], "10.1.0.0/16")


def test_forged_and_allowed_addresses():
    assert access.allowed_address(PRIVATE_NETWORKS) == "127.0.0.1"
    assert access.allowed_address(["10.8.0.0/24"]) == "10.8.0.1"
    assert access.allowed_address([]) == "127.0.0.1"
    documentation = [ipaddress.ip_network(n) for n in access.FORGED_RANGES]
    rng = random.Random(3)
    for _ in range(20):
        forged = ipaddress.ip_address(access.forged_address(rng=rng))
        assert any(forged in n for n in documentation), "allow unknown: a documentation address"
        assert ipaddress.ip_address(access.forged_address(PRIVATE_NETWORKS, rng)).is_loopback, "never a real client's"
        assert ipaddress.ip_address(access.forged_address(["10.8.0.0/24", "fd00::/8"], rng)) in ipaddress.ip_network("10.8.0.0/24")
    assert {access.forged_address(["10.8.0.0/24"], rng) for _ in range(20)} != {"10.8.0.1"}, "a new one each time"


def test_host_routes_read_the_kernel_table(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "utun\t000012C6\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert access.host_routes(table) == ["198.18.0.0/16", "192.168.0.0/24"]
    assert access.host_routes(tmp_path / "missing") == []


# --- the gate: canned outsider results -> findings ---------------------------------------------------


def gate(overrides=None, plan=None):
    """Steps and results as our edges answer them, with `overrides`: (path, forged) -> Result."""
    overrides = overrides or {}
    plan = plan or plans.plan_from_stack(stack())
    steps = ap.gate_steps(plan, token="t0k3n")
    results = []
    for step in steps:
        if step.kind == "endpoint":
            result = Result(404, body="<pre>Cannot GET /stackgen-probe-t0k3n</pre>")
        elif step.kind == "preflight":
            result = Result(404, body="<pre>Cannot OPTIONS /stackgen-probe-t0k3n</pre>")
        else:
            result = Result(403, body="forbidden")
        key = (step.path, step.forged, "preflight") if step.kind == "preflight" else (step.path, step.forged)
        results.append(overrides.get(key, result))
    return plan, steps, ap.judge_gate(plan, steps, results, "198.18.7.23", "198.18.7.0/24")


def by_check(verdicts) -> dict[str, ap.Verdict]:
    return {v.check: v for v in verdicts}


def test_the_outsiders_requests():
    steps = ap.gate_steps(plans.plan_from_stack(stack()), token="t")
    plain = [s.path for s in steps if s.kind == "editor" and not s.forged]
    assert plain == ["/editor/", "/editor/flows", "/EDITOR/flows", "/editor/settings", "/x/../editor/flows", "/editor//flows"]
    assert [s.path for s in steps if s.kind == "dot"] == ["/editor/../flows", "/editor/%2e%2e/flows", "/editor/./../settings"]
    assert [s.path for s in steps if s.kind == "endpoint"] == ["/stackgen-probe-t"]
    assert [(s.path, s.method) for s in steps if s.kind == "preflight"] == [("/stackgen-probe-t", "OPTIONS")]
    assert [s.path for s in steps if s.forged] == plain
    at_root = ap.gate_steps(plans.plan_from_stack(stack(path="/")))
    assert [s.path for s in at_root if s.kind == "editor" and not s.forged] == ["/", "/flows", "/FLOWS", "/settings", "/x/../flows", "//flows"]
    assert not [s for s in at_root if s.kind == "endpoint"], "the editor at / leaves no public path"
    with_host = ap.gate_steps(plans.plan_from_stack(stack(host="editor.example.org")))
    assert {(s.host, s.path) for s in with_host if s.host == "editor.example.org"} == {("editor.example.org", "/"), ("editor.example.org", "/flows")}


def test_a_gate_that_holds_passes_every_check():
    _, _, verdicts = gate()
    assert all(v.ok and v.rule is None for v in verdicts), verdicts
    assert set(by_check(verdicts)) == {ap.GATE, ap.GATE_FORGED, ap.ENDPOINT}
    assert "198.18.7.23" in by_check(verdicts)[ap.GATE].detail


@pytest.mark.parametrize("path, status", [("/editor/flows", 401), ("/EDITOR/flows", 401), ("/editor/", 200), ("/x/../editor/flows", 401),
                                          ("/editor/../flows", 401), ("/editor/%2e%2e/flows", 200)])
def test_an_editor_path_past_the_edge_is_sg313(path, status):
    _, _, verdicts = gate({(path, False): Result(status)})
    verdict = by_check(verdicts)[ap.GATE]
    assert verdict.rule == "SG313" and f"{path} -> {status}" in verdict.message and "198.18.7.23" in verdict.message
    assert "fix:" in verdict.message


def test_a_dot_segment_the_edge_resolves_to_a_public_404_is_fine():
    _, _, verdicts = gate({("/editor/../flows", False): Result(404, body="Cannot GET /flows")})
    assert by_check(verdicts)[ap.GATE].ok


def test_forged_headers_that_open_the_editor_are_sg316():
    _, _, verdicts = gate({("/editor/flows", True): Result(401)})
    verdict = by_check(verdicts)[ap.GATE_FORGED]
    assert verdict.rule == "SG316" and "X-Forwarded-For" in verdict.message and "/editor/flows -> 401" in verdict.message
    assert by_check(verdicts)[ap.GATE].ok, "without the headers it was refused"


def test_an_open_gate_is_sg313_alone_and_the_forged_check_says_it_could_not_run():
    overrides = {(p, f): Result(401) for p in ("/editor/flows", "/EDITOR/flows") for f in (False, True)}
    _, steps, verdicts = gate(overrides)
    assert {v.rule for v in verdicts if v.rule} == {"SG313"}
    assert by_check(gate({(s.path, s.forged): Result(200) for s in steps if s.kind == "editor"})[2])[ap.GATE_FORGED].detail.startswith("not checked")


@pytest.mark.parametrize("result, ok", [(Result(403, body="forbidden"), False), (Result(502), False), (Result(200, body="hello"), False),
                                        (Result(401, www_authenticate='Basic realm="Authorization Required"'), True),
                                        (Result(404, body="Cannot GET /x"), True)])
def test_the_endpoint_must_reach_node_red(result, ok):
    _, _, verdicts = gate({("/stackgen-probe-t0k3n", False): result})
    verdict = by_check(verdicts)[ap.ENDPOINT]
    assert verdict.ok == ok and verdict.rule == (None if ok else "SG314")


BASIC_CHALLENGE = 'Basic realm="Authorization Required"'


@pytest.mark.parametrize("preflight, ok, rule", [
    (Result(404, body="Cannot OPTIONS /stackgen-probe-t0k3n"), True, None),  # Node-RED's httpNodeAuth lets OPTIONS through
    (Result(401, www_authenticate=BASIC_CHALLENGE), False, "SG314"),  # the edge's own basic auth answers OPTIONS too
    (Result(404, body="Not Found"), False, "SG314"),  # something else behind a basic auth
    (Result(0, error="timeout"), False, None),  # unconfirmed: not checked, never a pass
])
def test_a_basic_challenge_on_the_endpoint_counts_as_node_reds_only_when_its_options_gets_expresss_404(preflight, ok, rule):
    """SG314 as SG310: an edge's own basic auth (401 + Basic) must not pass for Node-RED's httpNodeAuth."""
    _, _, verdicts = gate({("/stackgen-probe-t0k3n", False): Result(401, www_authenticate=BASIC_CHALLENGE),
                           ("/stackgen-probe-t0k3n", False, "preflight"): preflight})
    verdict = by_check(verdicts)[ap.ENDPOINT]
    assert (verdict.ok, verdict.rule) == (ok, rule), verdict
    if rule is None and not ok:
        assert verdict.detail.startswith("not checked")


def test_no_answer_is_not_checked_never_a_pass():
    plan = plans.plan_from_stack(stack())
    steps = ap.gate_steps(plan)
    verdicts = by_check(ap.judge_gate(plan, steps, [], "198.18.7.23", "198.18.7.0/24"))
    assert not verdicts[ap.GATE].ok and verdicts[ap.GATE].rule is None and verdicts[ap.GATE].detail.startswith("not checked")
    assert not verdicts[ap.ENDPOINT].ok and verdicts[ap.ENDPOINT].rule is None


def test_the_editor_at_root_has_no_endpoint_to_probe():
    _, _, verdicts = gate(plan=plans.plan_from_stack(stack(path="/")))
    assert by_check(verdicts)[ap.ENDPOINT].ok and "at /" in by_check(verdicts)[ap.ENDPOINT].detail


# --- the shield: canned login runs -> findings -------------------------------------------------------


def run(statuses, *, retry="900", forged=False, precheck=401, counted=None, address="172.20.4.9") -> ap.ShieldRun:
    attempts = [Result(s, retry_after=retry if s == 429 else None) for s in statuses]
    return ap.ShieldRun(address, Result(precheck), attempts, counted, forged)


PLAN = plans.plan_from_stack(stack())


def test_a_ban_after_the_limit_that_holds_passes():
    verdict = ap.judge_shield(PLAN, run([403] * 5 + [429, 429], counted={"172.20.4.9"}))
    assert verdict.ok and verdict.detail.startswith("5 failed logins") and "Retry-After 900" in verdict.detail


def test_an_earlier_ban_passes_too():
    assert ap.judge_shield(PLAN, run([429, 429])).ok, "an address already banned (the shield holds)"


@pytest.mark.parametrize("statuses, retry, part", [
    ([403] * 7, "900", "never 429"),
    ([403] * 5 + [429, 429], None, "no usable Retry-After"),
    ([403] * 5 + [429, 429], "soon", "no usable Retry-After"),
    ([403] * 5 + [429, 403], "900", "did not hold"),
    ([403] * 6 + [429], "900", "after 6 failures (limit 5)"),
])
def test_a_shield_that_fails_is_sg315(statuses, retry, part):
    verdict = ap.judge_shield(PLAN, run(statuses, retry=retry))
    assert not verdict.ok and verdict.rule == "SG315" and verdict.role is Role.NODE_RED and part in verdict.message


def test_the_shield_counting_the_edge_is_sg316():
    verdict = ap.judge_shield(PLAN, run([403], counted={"172.28.0.2"}))
    assert verdict.rule == "SG316" and verdict.role is Role.EDGE and "172.28.0.2" in verdict.message and "everyone" in verdict.message


@pytest.mark.parametrize("statuses, part", [([403] * 8, "evade"), ([403] * 5 + [429, 403, 403], "did not hold")])
def test_forged_headers_that_evade_the_count_are_sg316(statuses, part):
    verdict = ap.judge_shield(PLAN, run(statuses, forged=True), baseline=5)
    assert not verdict.ok and verdict.rule == "SG316" and part in verdict.message and verdict.check == ap.SHIELD_FORGED
    counted = ap.judge_shield(PLAN, run([403], forged=True, counted={"198.51.100.7"}))
    assert counted.rule == "SG316" and "198.51.100.7" in counted.message


def test_forged_headers_that_change_nothing_pass():
    assert ap.judge_shield(PLAN, run([403] * 5 + [429, 429, 429], forged=True, counted={"172.20.4.9"}), baseline=5).ok


@pytest.mark.parametrize("precheck, part", [(403, "refused"), (200, "SG308"), (404, "no admin API"), (0, "no answer")])
def test_a_login_that_cannot_be_reached_is_not_checked(precheck, part):
    verdict = ap.judge_shield(PLAN, run([], precheck=precheck))
    assert not verdict.ok and verdict.rule is None and part in verdict.detail and verdict.detail.startswith("not checked")
    assert ap.judge_shield(PLAN, run([404, 404])).detail.startswith("not checked")


# --- wiring -------------------------------------------------------------------------------------------


def context(spec=None) -> live.LiveContext:
    topo = Topology(project="p")
    topo.networks = {"internal": Network("internal", "p_internal", internal=True)}
    topo.services = {"edge": Service("edge", image="caddy", role=Role.EDGE, networks=("internal",)),
                     "node-red": Service("node-red", image="nodered/node-red", role=Role.NODE_RED, networks=("internal",))}
    ctx = live.LiveContext(engine=None, project="p", observed=topo, declared=None, networks={"internal": {"Name": "p_internal"}})
    ctx.stack = spec
    return ctx


def test_configuration_findings_reach_the_report(monkeypatch):
    spec = stack(allow=EVERYONE, enabled=False)
    spec.node_red.editor.enabled = True
    spec.node_red.login_shield.enabled = False
    ctx = context(spec)
    monkeypatch.setattr(live.LiveContext, "container", lambda self, name: None)
    ap.access_probe(ctx)  # no container to probe from: the configuration's findings, then "not checked"
    assert {(f.rule, f.service) for f in ctx.findings} == {("SG313", "edge"), ("SG315", "node-red")}
    assert any(c.name == ap.GATE and not c.ok and "not checked" in c.detail for c in ctx.checks)


def test_without_an_edge_nothing_is_checked_and_it_says_so():
    ctx = context(stack())
    del ctx.observed.services["edge"]
    ap.access_probe(ctx)
    assert not ctx.findings and [(c.name, c.ok) for c in ctx.checks] == [(ap.GATE, False)]


def test_addresses_are_the_project_networks_only(monkeypatch):
    ctx = context()
    container = SimpleNamespace(attrs={"NetworkSettings": {"Networks": {
        "p_internal": {"IPAddress": "172.28.0.2"}, "stackgen-probe-p-abc-out": {"IPAddress": "198.18.7.2"}}}})
    monkeypatch.setattr(live.LiveContext, "container", lambda self, name: container)
    assert ctx.addresses("edge") == {"internal": "172.28.0.2"}, "a probe network of another verifier is not a matrix target"


def test_probe_networks_of_another_verifier_are_not_drift():
    topo = context().observed
    topo.networks["stackgen-probe-p-abc-out"] = Network("stackgen-probe-p-abc-out", "stackgen-probe-p-abc-out", internal=True)
    topo.services["edge"].networks = ("internal", "stackgen-probe-p-abc-out")
    engine = SimpleNamespace(networks=SimpleNamespace(list=lambda filters: [SimpleNamespace(name="stackgen-probe-p-abc-out")]))
    live._without_probe_networks(engine, topo)
    assert list(topo.networks) == ["internal"] and topo.services["edge"].networks == ("internal",)


def test_a_path_routed_instance_is_probed_under_its_prefix():
    from stackgen.spec import Stack

    two = Stack.model_validate({
        "version": 2, "project": "p", "domains": ["site.example.org"], "email": "ops@example.org", "edge": "caddy",
        "tls": {"mode": "internal"},
        "instances": [
            {"name": "main", "domains": ["site.example.org"], "admin_password_hash": EXAMPLE_HASH},
            {"name": "lab", "domains": ["site.example.org"], "path": "/lab", "admin_password_hash": EXAMPLE_HASH},
        ],
    })
    lab = plans.plan_from_stack(two, next(i for i in two.node_reds if i.name == "lab"))
    assert lab.editor_path == "/lab/editor" and lab.node_root == "/lab/"
    steps = ap.gate_steps(lab, token="t")
    assert {s.path for s in steps if s.kind == "editor" and s.host == "site.example.org"} >= {"/lab/editor/", "/lab/editor/flows", "/LAB/EDITOR/flows"}
    assert [s.path for s in steps if s.kind == "endpoint"] == ["/lab/stackgen-probe-t"]
