"""verify --live with several Node-RED instances, without an engine: canned observations judged.

The matrix's instance-to-instance cells (from each instance's network and from inside each instance's container:
blocked; from inside the edge: open), findings naming the pair; the egress probes per instance with the canary's
network made before the matrix starts; the access probes per instance (its host, editor path and allow); each host
name's certificate.
"""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest

from stackgen.cli.output import render_matrix
from stackgen.live import access_probes as ap
from stackgen.live import checks as live
from stackgen.live import isolation
from stackgen.live.access_plan import plan_from_stack
from stackgen.spec import Stack
from stackgen.topology import Network, Port, Role, Service, Topology
from tests.golden import EXAMPLE_HASH

NETWORKS = {
    "internal": ("10.1.0.0/24", True), "internal-b": ("10.2.0.0/24", True), "public": ("10.3.0.0/24", False),
}


def spec(**b) -> Stack:
    return Stack.model_validate({
        "version": 2, "project": "p", "domains": ["a.example.org", "*.example.org"], "email": "ops@example.org",
        "tls": {"mode": "certbot-dns01", "dns_provider": "cloudflare", "dns_credentials_file": "secrets/dns.ini"},
        "instances": [
            {"name": "node-red", "domains": ["a.example.org"], "admin_password_hash": EXAMPLE_HASH},
            {"name": "b", "domains": ["b.example.org"], "admin_password_hash": EXAMPLE_HASH, **b},
        ],
    })


def topology(several: bool = True) -> Topology:
    topo = Topology(project="p")
    topo.networks = {k: Network(k, f"p_{k}", internal=internal) for k, (_, internal) in NETWORKS.items()}
    topo.services = {
        "node-red": Service("node-red", image="nodered/node-red", role=Role.NODE_RED, networks=("internal",)),
        "edge": Service("edge", image="caddy", role=Role.EDGE, networks=("internal", "internal-b", "public") if several else ("internal", "public"),
                        ports=[Port(8443, "443", "127.0.0.1")]),
        "certbot": Service("certbot", image="certbot/certbot", role=Role.CERTBOT, networks=("public",)),
    }
    if several:
        topo.services["node-red-b"] = Service("node-red-b", image="nodered/node-red", role=Role.NODE_RED, networks=("internal-b",))
    return topo


class World:
    """What the engine would answer: who sits on which network, and what a connection from a vantage observes."""

    def __init__(self, several: bool = True) -> None:
        self.addresses = {"node-red": {"internal": "10.1.0.2"}, "edge": {"internal": "10.1.0.3", "public": "10.3.0.3"},
                          "certbot": {"public": "10.3.0.4"}}
        if several:
            self.addresses["node-red-b"] = {"internal-b": "10.2.0.2"}
            self.addresses["edge"]["internal-b"] = "10.2.0.3"
        self.reaches_canary: set[str] = set()
        self.runs: list[str] = []

    def attach(self, service: str, network: str, ip: str) -> None:
        """A break: `service`'s container connected to `network` by hand (the engine API)."""
        self.addresses[service][network] = ip

    def network_of(self, ip: str) -> str | None:
        return next((net for addrs in self.addresses.values() for net, a in addrs.items() if a == ip), None)

    def observe(self, vantage_networks: set[str], host: str, port: int) -> str:
        owner = next((s for s, addrs in self.addresses.items() if host in addrs.values()), None)
        listening = {"node-red": {1880}, "node-red-b": {1880}, "edge": {8443}}.get(owner or "", set())
        if self.network_of(host) in vantage_networks:
            return "open" if port in listening else "refused"
        return "blocked"


def context(monkeypatch, world: World, stack: Stack | None = None, several: bool = True) -> live.LiveContext:
    topo = topology(several)
    networks = {k: {"Name": f"p_{k}", "Internal": internal, "IPAM": {"Config": [{"Subnet": subnet, "Gateway": subnet.replace(".0/24", ".1")}]}}
                for k, (subnet, internal) in NETWORKS.items() if several or k != "internal-b"}
    ctx = live.LiveContext(engine=None, project="p", observed=topo, declared=topology(several), networks=networks)
    if stack is not None:
        ctx.stack, ctx.domains, ctx.instances = stack, list(stack.domains), live.instances_of(stack)
    containers = {name: SimpleNamespace(id=f"id-{name}", name=name, attrs={"Image": "sha256:nr"}) for name in topo.services}
    monkeypatch.setattr(live.LiveContext, "container", lambda self, name: containers.get(name))
    monkeypatch.setattr(live.LiveContext, "addresses", lambda self, name: dict(world.addresses.get(name, {})))

    def probe_container(ctx, image, network, job, *, beside=None):
        world.runs.append(f"inside {beside.name}" if beside is not None else network)
        nets = set(world.addresses[beside.name]) if beside is not None else {network}
        return {"connect": [world.observe(nets, h, p) for h, p in job["targets"]]}

    def exec_connect(ctx, service, targets, files=()):
        world.runs.append(f"exec {service}")
        connect = []
        for host, port in targets:
            if host.startswith("10.9."):  # the canary
                connect.append("open" if service in world.reaches_canary else "blocked")
            elif host.endswith(".1"):  # a host listener on a gateway
                connect.append("blocked")
            else:
                connect.append(world.observe(set(world.addresses[service]), host, port))
        return {"connect": connect, "route": ["10.1.0.1" if service == "node-red" else "10.2.0.1"], "files": {}}

    monkeypatch.setattr(isolation, "run_probe_container", probe_container)
    monkeypatch.setattr(isolation, "exec_connect", exec_connect)
    monkeypatch.setattr(isolation, "_classify", lambda address, port, allowed: "open" if address == "127.0.0.1" else "blocked")
    monkeypatch.setattr(isolation, "_host_listener", lambda address: None)
    return ctx


def run_matrix(ctx: live.LiveContext) -> live.LiveResult:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        isolation.matrix(ctx, pool)
    return live.LiveResult(ctx.observed, ctx.findings, None, 0, ctx.matrix, ctx.checks, 0.0)


# --- the matrix ------------------------------------------------------------------------------------


def test_expectations_between_instances():
    ctx = live.LiveContext(engine=None, project="p", observed=topology(), declared=topology(), networks={})
    a, b = ctx.observed.services["node-red"], ctx.observed.services["node-red-b"]
    assert isolation.expected(ctx, "internal-b", b, "internal-b") == "open", "the edge's network with instance b"
    assert isolation.expected(ctx, "internal-b", a, "internal") == "closed"
    assert isolation.expected(ctx, "inside node-red", b, "internal-b") == "closed"
    assert isolation.expected(ctx, "inside node-red-b", a, "internal") == "closed"
    assert isolation.expected(ctx, "inside node-red-b", a, "internal-b") == "closed", "not even on a network they share"
    assert isolation.expected(ctx, "inside edge", a, "internal") == "open"
    assert isolation.expected(ctx, "inside edge", b, "internal-b") == "open"
    assert isolation.expected(ctx, "inside edge", a, "internal-b") is None, "a stray attachment: the other cells judge it"
    assert isolation.expected(ctx, "inside edge", ctx.observed.services["certbot"], "public") is None


def test_the_reference_two_instance_matrix_is_clean_and_has_instance_cells(monkeypatch):
    world = World()
    ctx = context(monkeypatch, world, spec())
    result = run_matrix(ctx)
    assert ctx.findings == [], [f.message for f in ctx.findings]
    cells = result.cells()
    assert all(c.ok for c in cells)
    pairs = {(c.vantage, c.service, c.observed) for c in cells if c.instances}
    assert ("inside node-red", "node-red-b", "blocked") in pairs and ("inside node-red-b", "node-red", "blocked") in pairs
    assert ("internal", "node-red-b", "blocked") in pairs and ("internal-b", "node-red", "blocked") in pairs
    edge = {(c.service, c.observed, c.expected) for c in cells if c.vantage == "inside edge"}
    assert edge == {("node-red", "open", "open"), ("node-red-b", "open", "open")}, "the edge reaches each instance"
    report = [c.to_dict() for c in cells]
    json.dumps(report)
    assert {"from": "b", "to": "node-red"} in [c["instances"] for c in report]
    assert all(c["instances"] is None for c in report if c["from"] in ("public", "host", "inside edge"))
    text = render_matrix(result)
    assert "inside node-red-b" in text and "MISMATCH" not in text


def test_a_container_joined_to_another_instances_network_is_sg301_naming_the_pair(monkeypatch):
    world = World()
    world.attach("node-red", "internal-b", "10.2.0.9")
    ctx = context(monkeypatch, world, spec())
    run_matrix(ctx)
    found = {(f.rule, f.service) for f in ctx.findings}
    assert found == {("SG301", "node-red"), ("SG301", "node-red-b")}, [f.message for f in ctx.findings]
    to_b = [f.message for f in ctx.findings if f.service == "node-red-b"]
    assert any("opens from inside node-red" in m and "instance node-red reaches instance b" in m for m in to_b), to_b
    to_a = [f.message for f in ctx.findings if f.service == "node-red"]
    assert any("10.2.0.9 on internal-b" in m and "instance b reaches instance node-red" in m for m in to_a), to_a
    assert "MISMATCH" in render_matrix(live.LiveResult(ctx.observed, ctx.findings, None, 1, ctx.matrix, [], 0.0))


def test_an_edge_that_cannot_reach_an_instance_is_sg301(monkeypatch):
    world = World()
    ctx = context(monkeypatch, world, spec())
    del world.addresses["edge"]["internal-b"]  # the edge left instance b's network (by hand)
    run_matrix(ctx)
    assert [(f.rule, f.service) for f in ctx.findings] == [("SG301", "node-red-b")], [f.message for f in ctx.findings]
    assert "node-red-b:1880 (10.2.0.2) does not open from inside edge (blocked); it should" in ctx.findings[0].message


def test_one_instance_keeps_the_matrix_it_always_had(monkeypatch):
    world = World(several=False)
    ctx = context(monkeypatch, world, several=False)
    result = run_matrix(ctx)
    assert not any(c.vantage.startswith("inside") or c.instances for c in result.cells())
    assert not any(r.startswith(("inside", "exec")) for r in world.runs)


# --- egress, and the canary made before the matrix --------------------------------------------------


class FakeNetworks:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def create(self, name, **kwargs):
        self.events.append("network created")
        return SimpleNamespace(id="n1", name=name, remove=lambda: self.events.append("network removed"))


def canary_engine(events: list[str]):
    container = SimpleNamespace(attrs={}, exec_run=lambda cmd: SimpleNamespace(exit_code=0))

    def run(image, command, network, **kwargs):
        container.attrs = {"NetworkSettings": {"Networks": {network: {"IPAddress": "10.9.0.2"}}}}
        container.reload = lambda: None
        container.remove = lambda **kw: events.append("canary removed")
        return container

    return SimpleNamespace(networks=FakeNetworks(events), containers=SimpleNamespace(run=run),
                           api=SimpleNamespace(inspect_network=lambda nid: {"IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}}))


def test_each_instance_is_probed_for_a_way_out_and_findings_name_it(monkeypatch):
    world = World()
    world.reaches_canary = {"node-red-b"}
    events: list[str] = []
    ctx = context(monkeypatch, world, spec())
    ctx.engine = canary_engine(events)
    isolation.egress(ctx)
    assert events == ["network created", "canary removed", "network removed"]
    assert {"exec node-red", "exec node-red-b"} <= set(world.runs)
    assert [(f.rule, f.service) for f in ctx.findings] == [("SG303", "node-red-b")]
    assert "instance b (node-red-b) reaches a canary" in ctx.findings[0].message
    names = {c.name for c in ctx.checks}
    assert any(n.startswith("node-red -> canary") for n in names) and any(n.startswith("node-red-b -> canary") for n in names)


def test_no_canary_when_every_instance_may_egress(monkeypatch):
    stack = spec(egress=True)
    stack.instances[0].egress = True
    events: list[str] = []
    ctx = context(monkeypatch, World(), stack)
    ctx.engine = canary_engine(events)
    with isolation.egress_canary(ctx) as canary:
        assert canary is None
    assert events == []


def test_the_canary_network_exists_before_the_matrix_and_goes_after_it(monkeypatch):
    """A network created while the matrix runs makes the engine rewrite its isolation chains (a false SG301)."""
    events: list[str] = []

    @contextlib.contextmanager
    def canary(ctx):
        events.append("canary network created")
        yield isolation.Canary("10.9.0.2")
        events.append("canary network removed")

    def step(name, seconds=0.0):
        def run(*args, **kwargs):
            import time

            events.append(f"{name} start")
            time.sleep(seconds)
            events.append(f"{name} end")
        return run

    monkeypatch.setattr(live, "egress_canary", canary)
    monkeypatch.setattr(live, "access_probe", step("access"))
    monkeypatch.setattr(live, "matrix", step("matrix", 0.05))
    monkeypatch.setattr(live, "egress", step("egress", 0.02))
    for name in ("tls", "keys", "tls_profile_probe"):
        monkeypatch.setattr(live, name, lambda *a, **k: None)
    ctx = live.LiveContext(engine=None, project="p", observed=topology(), declared=None, networks={})
    live._probe(ctx, "all")
    at = events.index
    assert at("canary network created") < at("access start") < at("access end") < at("matrix start")
    assert at("access end") < at("egress start")
    assert at("canary network removed") > max(at("matrix end"), at("egress end"))


# --- the access probes, per instance ---------------------------------------------------------------


def test_each_instance_has_its_own_plan():
    stack = spec(editor={"path": "/ops", "allow": ["10.8.0.0/24"]})
    a, b = (plan_from_stack(stack, inst) for inst in stack.node_reds)
    assert (a.host, a.editor_path, a.instance, a.service) == ("a.example.org", "/editor", "node-red", "node-red")
    assert (b.host, b.editor_path, b.allow, b.instance, b.service) == ("b.example.org", "/ops", ["10.8.0.0/24"], "b", "node-red-b")
    assert b.source == "stack.yaml, instance b"


class FakeProbeNetwork:
    def __init__(self, name: str, subnet: str | None) -> None:
        self.name, self.subnet = name, subnet or "172.31.5.0/24"

    def attach(self, container, port=None):
        return "1.2.3.4"


def test_the_access_probes_run_per_instance_and_name_it(monkeypatch):
    stack = spec(editor={"path": "/ops", "allow": ["0.0.0.0/0", "::/0"]})
    ctx = context(monkeypatch, World(), stack)
    ctx.observed.services["edge"].ports = [Port(8443, "443", "127.0.0.1")]
    created, allows, gated, shielded = [], [], [], []

    @contextlib.contextmanager
    def probe_network(engine, name, labels, subnet=None, pinned=False, overlay=None):
        assert overlay is False, "a compose edge: bridge networks"
        created.append(name.rsplit("-", 1)[-1])
        yield FakeProbeNetwork(name, subnet)

    monkeypatch.setattr(ap.access, "probe_network", probe_network)
    monkeypatch.setattr(ap.access, "engine_subnets", lambda engine: [])
    monkeypatch.setattr(ap.access, "host_routes", lambda: [])
    monkeypatch.setattr(ap.access, "outsider_subnet", lambda allow, taken: allows.append(list(allow)) or "198.18.9.0/24")
    monkeypatch.setattr(ap, "_gate", lambda plan, outside, image, labels: gated.append(plan.host) or [ap.Verdict(ap.GATE, True, "403")])

    def shield(plan, inside, image, labels, edge, node_red):
        shielded.append((plan.host, inside.name.rsplit("-", 1)[-1], node_red.name))
        return [ap.Verdict(ap.SHIELD, False, "no 429", "SG315", Role.NODE_RED, "never 429")]

    monkeypatch.setattr(ap, "_shield", shield)
    monkeypatch.setattr(live.LiveContext, "container", lambda self, name: SimpleNamespace(
        id=name, name=name, attrs={"Image": "sha256:nr"}, reload=lambda: None))
    ap.access_probe(ctx)
    assert created == ["out", "in"], "one outsider and one insider network serve every instance"
    assert allows == [list(stack.instances[0].editor.allow)], "outside every allow that is not open to everyone"
    assert gated == ["a.example.org"], "instance b's editor is open to everyone: nothing to gate, SG313 by configuration"
    assert sorted(shielded) == [("a.example.org", "in", "node-red"), ("b.example.org", "out", "node-red-b")]
    found = {(f.rule, f.service, f.message.split(":")[0]) for f in ctx.findings}
    assert ("SG313", "edge", "instance b (node-red-b), at b.example.org") in found
    assert ("SG315", "node-red", "instance node-red, at a.example.org") in found
    assert ("SG315", "node-red-b", "instance b (node-red-b), at b.example.org") in found
    names = {c.name for c in ctx.checks}
    assert {f"{ap.GATE} [instance node-red]", f"{ap.GATE} [instance b]", f"{ap.SHIELD} [instance b]"} <= names


def test_several_node_reds_without_stack_yaml_are_not_checked_never_passed(monkeypatch):
    ctx = context(monkeypatch, World())
    ap.access_probe(ctx)
    failed = {c.name for c in ctx.checks if not c.ok and "not checked" in c.detail}
    assert {f"{ap.GATE} [node-red]", f"{ap.GATE} [node-red-b]", f"{ap.SHIELD} [node-red-b]"} <= failed
    assert not any(c.ok for c in ctx.checks)


# --- each host name's certificate, and each instance through the edge ---------------------------------


def test_every_instance_host_name_is_checked_for_a_certificate_naming_it(monkeypatch):
    from stackgen.live import certificates

    ctx = context(monkeypatch, World(), spec())
    names = [(name, owner.name if owner else None) for name, owner in live.certificate_names(ctx)]
    assert names == [("a.example.org", "node-red"), ("b.example.org", "b")], "b is covered by the wildcard alone: checked too"
    cert = SimpleNamespace(names=["a.example.org"], days_left=lambda: 80.0, serial_number=1)
    monkeypatch.setattr(certificates, "fetch", lambda address, port, domain: cert)
    monkeypatch.setattr(live.probes, "https_request", lambda *a, **k: None)
    for name, owner in live.certificate_names(ctx):
        live._certificate(ctx, "edge", "127.0.0.1", 443, name, owner)
    assert [(f.rule, f.service) for f in ctx.findings] == [("SG305", "edge")]
    assert "b.example.org (instance b (node-red-b)) is for a.example.org, not b.example.org" in ctx.findings[0].message


def test_each_instance_is_probed_through_the_edge_at_its_own_host(monkeypatch):
    ctx = context(monkeypatch, World(), spec(editor={"path": "/ops"}))
    asked = []

    def request(address, port, domain, path, **kwargs):
        asked.append((domain, path))
        status = 200 if (domain, path) == ("b.example.org", "/ops/flows") else 401 if path.endswith("/flows") else 404
        return SimpleNamespace(status=status, body=b"Cannot GET", headers={})

    monkeypatch.setattr(live.probes, "https_request", request)
    monkeypatch.setattr(live.probes, "websocket_upgrade", lambda *a, **k: 101)
    for inst in ctx.node_reds():
        live._node_red_through_edge(ctx, "edge", "127.0.0.1", 443, inst)
    assert ("a.example.org", "/editor/flows") in asked and ("b.example.org", "/ops/flows") in asked
    assert [(f.rule, f.service) for f in ctx.findings] == [("SG308", "node-red-b")]
    assert "at b.example.org (instance b (node-red-b))" in ctx.findings[0].message
    failed = [c.name for c in ctx.checks if not c.ok]
    assert failed == ["admin API refuses anonymous GET /flows [instance b]"]


def test_a_version_1_stack_is_one_instance_with_the_names_it_always_had():
    stack = Stack.model_validate({"project": "p", "domains": ["nodered.example.org"], "email": "ops@example.org",
                                  "node_red": {"admin_password_hash": EXAMPLE_HASH}})
    ctx = live.LiveContext(engine=None, project="p", observed=topology(several=False), declared=None, networks={})
    ctx.instances = live.instances_of(stack)
    assert not ctx.several and ctx.tag(ctx.instances[0]) == "" and ctx.who(ctx.instances[0]) == "node-red"
    assert (ctx.instances[0].host, ctx.instances[0].editor_path) == ("nodered.example.org", "/editor")


@pytest.mark.parametrize("vantage, pair", [("internal-b", ("b", "node-red")), ("public", None), ("inside node-red-b", ("b", "node-red")),
                                           ("inside edge", None), ("host", None)])
def test_which_cells_are_between_instances(monkeypatch, vantage, pair):
    ctx = context(monkeypatch, World(), spec())
    assert isolation.instance_pair(ctx, vantage, ctx.observed.services["node-red"]) == pair


def _answers(get: tuple[int, bytes, dict], options: tuple[int, bytes, dict] | None = None):
    asked = []

    def request(address, port, domain, path, method="GET", **kwargs):
        asked.append(method)
        status, body, headers = get if method == "GET" else options
        return SimpleNamespace(status=status, body=body, headers=headers)

    return request, asked


BASIC = {"www-authenticate": 'Basic realm="Authorization Required"'}


@pytest.mark.parametrize("get, options, ok, methods", [
    ((404, b"Cannot GET /stackgen-probe-1", {}), None, True, ["GET"]),  # Node-RED's own 404
    ((401, b"Unauthorized", BASIC), (404, b"Cannot OPTIONS /stackgen-probe-1", {}), True, ["GET", "OPTIONS"]),  # httpNodeAuth
    ((401, b"Unauthorized", BASIC), (401, b"", BASIC), False, ["GET", "OPTIONS"]),  # the edge's own basic auth
    ((401, b"Unauthorized", BASIC), (404, b"Not Found", {}), False, ["GET", "OPTIONS"]),  # something else, behind basic auth
    ((401, b"", {}), None, False, ["GET"]),  # a 401 with no basic challenge: not httpNodeAuth
    ((404, b"not found", {}), None, False, ["GET"]),  # another server's 404
    ((200, b"hello", {}), None, False, ["GET"]),
])
def test_node_reds_own_answer_behind_its_basic_auth_too(monkeypatch, get, options, ok, methods):
    """SG310 asks whether Node-RED answered a path nobody serves. With http_node_auth it answers 401 to every path
    under httpNodeRoot: that alone was SG310 (a false positive); its basic auth lets OPTIONS through, and OPTIONS gets
    Express's own 404 from Node-RED's router, which an edge's basic auth or another server does not give."""
    request, asked = _answers(get, options)
    monkeypatch.setattr(live.probes, "https_request", request)
    found, detail = live.node_reds_own_answer("127.0.0.1", 443, "a.example.org", "/stackgen-probe-1")
    assert (found, asked) == (ok, methods), detail
    assert ("401" in detail) == (get[0] == 401)


def test_sg310_quiet_for_node_red_behind_http_node_auth_and_raised_for_an_edges_basic_auth(monkeypatch):
    ctx = context(monkeypatch, World(), spec())
    instance = ctx.node_reds()[0]
    instance.editor_path = None  # the endpoint probe alone
    request, _ = _answers((401, b"Unauthorized", BASIC), (404, b"Cannot OPTIONS /x", {}))
    monkeypatch.setattr(live.probes, "https_request", request)
    live._node_red_through_edge(ctx, "edge", "127.0.0.1", 443, instance)
    assert ctx.findings == [] and all(c.ok for c in ctx.checks), ctx.checks
    request, _ = _answers((401, b"", BASIC), (401, b"", BASIC))
    monkeypatch.setattr(live.probes, "https_request", request)
    live._node_red_through_edge(ctx, "edge", "127.0.0.1", 443, instance)
    assert [(f.rule, f.service) for f in ctx.findings] == [("SG310", "edge")]
    assert "a basic auth other than Node-RED's" in ctx.findings[0].message


def test_two_runs_of_the_same_broken_stack_give_the_same_finding_ids(monkeypatch):
    """A finding's identity (the supervisor's drift id digests rule, service and message) never holds a random part:
    the probes' paths are random per run (`stackgen-probe-<hex>`), their findings name them `stackgen-probe-…`, so an
    open drift alert is not re-sent on every check. SG310 (another server proxied), SG311 (the endpoint page's grade)
    and SG314 (the endpoint refused outside allow) each from two runs."""
    from stackgen.live import headers_grade
    from stackgen.supervise.drift import finding_id

    def one_run() -> list[str]:
        ctx = context(monkeypatch, World(), spec())
        instance = ctx.node_reds()[0]
        instance.editor_path = None  # the endpoint probes alone
        monkeypatch.setattr(live.probes, "https_request",
                            lambda *a, method="GET", **k: SimpleNamespace(status=200, body=b"hello", headers={}))
        live._node_red_through_edge(ctx, "edge", "127.0.0.1", 443, instance)
        monkeypatch.setattr(live, "exchange", lambda *a, **k: None)
        graded = SimpleNamespace(score=40, failing=[], summary=lambda: "F (40)")
        monkeypatch.setattr(headers_grade, "grade", lambda exchange: graded)
        live._header_grades(ctx, "edge", "127.0.0.1", 80, 443, instance)
        plan = plan_from_stack(spec(), spec().node_reds[1])
        steps = ap.gate_steps(plan)  # a random token each run
        results = [ap.Result(403) for _ in steps]
        ap._apply(ctx, ap.Target(plan, "node-red-b", None, "instance b"), ap.judge_gate(plan, steps, results, "198.18.7.23",
                                                                                          "198.18.7.0/24"), "edge")
        return sorted(finding_id(f) for f in ctx.findings)

    first, second = one_run(), one_run()
    assert {i.split(":")[0] for i in first} == {"SG310", "SG311", "SG314"}, first
    assert first == second
