"""`verify --live` on a swarm whose tasks run on several nodes, without an engine: a service whose running task is on
another node is judged from its service spec and its task's status (never a silent absence, never an inspected
container it is not); its reachability is probed from probe services placed on that node too (`node.id==…`), a probe
"inside" it runs in a stand-in on its networks there; and a guarding check that could not run is an SG317 finding."""

from __future__ import annotations

import json

import pytest

from stackgen.constants import PROBE_LABEL, STACK_NAMESPACE_LABEL
from stackgen.findings import Severity
from stackgen.live import checks, isolation, swarm_probe
from stackgen.live.access_probes import ENDPOINT, GATE, SHIELD
from stackgen.live.observe import observe_stack
from stackgen.topology import Role, Topology
from tests.support.fakes import FakeEngine
from tests.unit.live.test_swarm_live import task_attrs

LAB_SPEC = {
    "Image": "stackgen-local/node-red:r-1@sha256:" + "b" * 64, "User": "1000:1000", "ReadOnly": True, "CapabilityDrop": ["ALL"],
    "Labels": {"org.stackgen.role": "node-red"}, "Env": ["TZ=UTC"],
    "Mounts": [{"Type": "volume", "Source": "p_node-red-lab-data", "Target": "/data"},
               {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 67108864}}],
    "Healthcheck": {"Test": ["CMD", "node", "/healthcheck.js"]},
}


@pytest.fixture
def engine() -> FakeEngine:
    fake = FakeEngine()
    fake.swarm_init()
    for key in ("internal", "internal-lab", "public"):
        fake.networks.add(f"p_{key}", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm", Driver="overlay", Internal=key != "public",
                          IPAM={"Config": [{"Subnet": {"internal": "10.0.4.0/24", "internal-lab": "10.0.5.0/24",
                                                       "public": "10.0.1.0/24"}[key]}]})
    fake.swarm.service("p", "node-red")
    fake.swarm.service("p", "edge")
    fake.swarm.task_container("p", "node-red", attrs=task_attrs("node-red", {"p_internal": "10.0.4.3"}))
    fake.swarm.task_container("p", "edge", attrs=task_attrs("edge", {"p_internal": "10.0.4.2", "p_internal-lab": "10.0.5.3",
                                                                      "p_public": "10.0.1.6"}, image="caddy:2"))
    lab = fake.swarm.service("p", "node-red-lab")
    template = lab.attrs["Spec"]["TaskTemplate"]
    template["ContainerSpec"] = dict(LAB_SPEC)
    template["Networks"] = [{"Target": "nid-p_internal-lab"}]
    template["Resources"] = {"Limits": {"MemoryBytes": 512 * 1024 * 1024, "Pids": 256, "NanoCPUs": 1_000_000_000}}
    task = lab.task("running", node="node-id-2", container="cid-on-the-worker")
    task["ID"] = "tid-lab-0123456789ab"
    task["NetworksAttachments"] = [{"Network": {"ID": "nid-p_internal-lab", "Spec": {"Name": "p_internal-lab"}},
                                    "Addresses": ["10.0.5.7/24"]}]
    return fake


def test_a_service_whose_task_runs_on_another_node_is_judged_from_its_spec(engine):
    topo, remote = observe_stack(engine, "p")
    assert set(topo.services) == {"node-red", "edge", "node-red-lab"}, "not absent (SG206 said it was not running)"
    lab = topo.services["node-red-lab"]
    assert lab.role is Role.NODE_RED and lab.user == "1000:1000" and lab.read_only and lab.cap_drop == ("ALL",)
    assert lab.networks == ("internal-lab",) and lab.ports == [] and lab.restart == "always"
    assert [(m.type, m.source, m.target) for m in lab.mounts] == [("volume", "node-red-lab-data", "/data"), ("tmpfs", "", "/tmp")]
    assert (lab.mem_limit, lab.pids_limit, lab.cpus) == (512 * 1024 * 1024, 256, 1.0)
    task = remote["node-red-lab"]
    assert (task.node_id, task.state, task.container_id) == ("node-id-2", "running", "cid-on-the-worker")
    assert task.addresses == {"p_internal-lab": "10.0.5.7"} and task.network_ids == ["nid-p_internal-lab"]
    assert set(remote) == {"node-red-lab"}, "the services with a task container here are inspected as ever"


def test_a_published_port_added_to_the_remote_service_shows_in_its_spec(engine):
    spec = engine.swarm.services["p_node-red-lab"].attrs["Spec"]
    spec["EndpointSpec"]["Ports"] = [{"Protocol": "tcp", "TargetPort": 1880, "PublishedPort": 31880, "PublishMode": "ingress"}]
    lab = observe_stack(engine, "p")[0].services["node-red-lab"]
    assert [(p.target, p.published) for p in lab.ports] == [(1880, "31880")]


def test_a_task_not_running_or_on_this_node_without_a_container_is_not_made_up(engine):
    lab = engine.swarm.services["p_node-red-lab"]
    lab.raw_tasks[0]["Status"]["State"] = "pending"
    assert "node-red-lab" not in observe_stack(engine, "p")[0].services, "the drift rules say it is not running (SG206)"
    lab.raw_tasks[0]["Status"]["State"], lab.raw_tasks[0]["NodeID"] = "running", "node-id-1"
    assert "node-red-lab" not in observe_stack(engine, "p")[0].services


def _context(engine) -> checks.LiveContext:
    topo, remote = observe_stack(engine, "p")
    ctx = checks.LiveContext(swarm_probe.OverlayProbes(engine, "p"), "p", topo, None,
                             {k: engine.inspect_network(f"p_{k}") for k in ("internal", "internal-lab", "public")})
    ctx.remote = remote
    return ctx


def test_the_notes_say_how_a_remote_service_was_observed_and_that_its_process_user_was_not(engine):
    ctx = _context(engine)
    checks.remote_notes(ctx)
    notes = {c.name: c for c in ctx.checks}
    seen = notes["node-red-lab observed from its service spec"]
    assert seen.ok and "on node node-id-2" in seen.detail and "cid-on-the-w" in seen.detail and "service spec" in seen.detail
    user = notes["process user of node-red-lab"]
    assert not user.ok and user.detail.startswith("not checked:") and "user 1000:1000" in user.detail
    assert checks.not_checked_findings(ctx, []) == [], "the spec's user is enforced by Swarm: a visible line, not a finding"


def _probe_output(engine, output: bytes, logs_asked: list) -> None:
    """Each probe service created runs one task; its output is read from its container here or its service's logs."""

    def runs(service):
        container = engine.swarm.task_container("probe", "x", id=f"probe-{len(engine.swarm.created)}")
        container.logs = lambda stdout=True, stderr=False: output
        service.logs = lambda **kwargs: logs_asked.append((service.name, kwargs)) or iter([output])
        service.task("complete", "shutdown", container=container.id, exit_code=0)

    engine.swarm.on_create = runs


def test_the_targets_on_another_node_are_probed_from_probe_services_placed_there(engine, monkeypatch):
    ctx = _context(engine)
    logs_asked: list = []
    _probe_output(engine, b'{"connect": ["blocked"]}\n', logs_asked)
    monkeypatch.setattr(swarm_probe.ServiceProbe, "start", _fast(swarm_probe.ServiceProbe.start))
    lab = ctx.observed.services["node-red-lab"]
    targets = [(lab, "internal-lab", "10.0.5.7", 1880)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        for job in isolation._remote_vantages(ctx, pool, "sha256:abc", targets):
            job.result()
    placed = {tuple(s.kwargs["constraints"]) for s in engine.swarm.created}
    assert placed == {("node.id==node-id-2",)}, "every one on the target's node"
    assert sorted(c.vantage for c in ctx.matrix) == [f"{n} @ node-id-2" for n in ("internal", "internal-lab", "public")]
    cell = next(c for c in ctx.matrix if c.vantage == "internal-lab @ node-id-2")
    assert cell.expected == "open" and not cell.ok, "B's own network, the edge's too: it must open, and the probe saw it blocked"
    assert any("does not open from network internal-lab on node node-id-2" in f.message for f in ctx.findings), ctx.findings
    assert len(logs_asked) == 3, "output read through the manager's service logs (the container is on the other node)"
    assert len(engine.swarm.removed) == 3


def _fast(start):
    def run(self):
        self.poll = 0
        return start(self)
    return run


def test_a_probe_inside_a_remote_task_runs_in_a_stand_in_on_its_networks_on_its_node(engine, monkeypatch):
    ctx = _context(engine)
    ctx.networks["internal"]["IPAM"] = {"Config": [{"Subnet": "10.0.4.0/24"}]}
    monkeypatch.setattr(isolation, "probe_image", lambda ctx_: "sha256:abc")
    _probe_output(engine, b'{"connect": ["blocked"], "route": []}\n', [])
    monkeypatch.setattr(swarm_probe.ServiceProbe, "start", _fast(swarm_probe.ServiceProbe.start))
    result = isolation.exec_connect(ctx, "node-red-lab", [("10.0.4.3", 1880)])
    assert result == {"connect": ["blocked"], "route": []}
    (created,) = engine.swarm.created
    assert created.kwargs["networks"] == ["nid-p_internal-lab"] and created.kwargs["constraints"] == ["node.id==node-id-2"]
    assert created.kwargs["user"] == "65534:65534" and created.kwargs["read_only"] and created.kwargs["labels"] == {PROBE_LABEL: "p"}
    note = next(c for c in ctx.checks if c.name == "probe inside node-red-lab (a stand-in)")
    assert note.ok and "node node-id-2" in note.detail


def test_the_key_of_a_remote_node_red_is_judged_from_its_mounts(engine):
    ctx = _context(engine)
    ctx.cert_name = "a.example.org"
    isolation.keys(ctx)
    check = next(c for c in ctx.checks if c.name == "key not readable in node-red-lab")
    assert check.ok and "mounts nothing at /etc/letsencrypt" in check.detail
    ctx.observed.services["node-red-lab"].mounts.append(type(ctx.observed.services["node-red-lab"].mounts[0])(
        "volume", "certs", "/etc/letsencrypt", read_only=True))
    ctx.checks.clear()
    isolation.keys(ctx)
    assert [(f.rule, f.service) for f in ctx.findings] == [("SG304", "node-red-lab")]


@pytest.mark.parametrize("name, detail, severity", [
    (f"{GATE} [instance lab]", "not checked: no answer from 198.18.7.23 (a network of the verifier's own) for /editor/", Severity.HIGH),
    (f"{SHIELD} [instance lab]", "not checked from 10.0.8.3: no answer", Severity.HIGH),
    ("probe container on internal-lab @ node-2", "not checked: could not run: no suitable node", Severity.HIGH),
    ("egress [instance lab]", "not checked: could not run a probe inside node-red-lab", Severity.HIGH),
    (f"{ENDPOINT} [instance lab]", "not checked: GET /stackgen-probe-1a2b -> 0", Severity.LOW),
    ("process user of node-red-lab", "not checked: its process runs on node x", None),
    ("login shield ignores forged client headers", "not checked: no working ban to evade (see the check above)", None),
    ("header grade (editor)", "GET /: timeout", None),
    (f"{GATE} [instance lab]", "9 editor requests: 403", None),
])
def test_a_guarding_check_that_could_not_run_is_sg317(name, detail, severity):
    ctx = checks.LiveContext(None, "p", Topology(project="p"), None, {})
    ctx.check(name, detail.startswith("9 editor"), detail)
    found = checks.not_checked_findings(ctx, ctx.findings)
    assert [f.severity for f in found] == ([severity] if severity else [])
    if severity:
        assert found[0].rule == "SG317" and name in found[0].message and "198.18.7.23" not in found[0].message
        assert "stackgen-probe-1a2b" not in found[0].message, "stable: the drift id must not change per run"


def test_a_verify_whose_gate_could_not_be_probed_fails_at_the_default_fail_on(monkeypatch, engine):
    """The gap the rule closes: before it, a `not checked` gate was a failed line and exit 0."""
    from stackgen.verify.pipeline import Policy, verify_topology

    ctx = _context(engine)
    ctx.check(f"{GATE} [instance lab]", False, "not checked: the probe networks could not be set up (boom)")
    judged = verify_topology(ctx.observed, Policy.parse([], "high"), probes=lambda: checks.not_checked_findings(ctx, ctx.findings))
    assert judged.exit_code == 1 and "SG317" in {f.rule for f in judged.findings}
    assert json.dumps([f.to_dict() for f in judged.findings if f.rule == "SG317"])
