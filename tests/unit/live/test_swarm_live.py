"""`verify --live` on a swarm stack, without an engine: observe reads task containers as the stack file's services (keys
without the stack's prefix, Swarm's restart policy, the digest `docker stack deploy` pinned), and a probe on an overlay
no container may join runs as a one-task service on this node, hardened like the probe container, and is removed."""

from __future__ import annotations

import json

import pytest

from stackgen.constants import PROBE_LABEL, STACK_NAMESPACE_LABEL
from stackgen.live import swarm_probe
from stackgen.live.observe import observe
from stackgen.topology import Service, Topology
from tests.support.fakes import FakeEngine


def task_attrs(key: str, networks: dict[str, str], image: str = "stackgen-local/node-red:r-1", ports: dict | None = None) -> dict:
    return {
        "Id": f"cid-{key}", "Name": f"/p_{key}.1.x", "Image": "sha256:abc",
        "Config": {"Image": image, "Labels": {"org.stackgen.role": "node-red" if key.startswith("node-red") else "edge"},
                   "User": "1000:1000"},
        "HostConfig": {"ReadonlyRootfs": True, "CapDrop": ["ALL"], "RestartPolicy": {"Name": ""}, "PortBindings": {}},
        "NetworkSettings": {"Networks": {name: {"IPAddress": ip} for name, ip in networks.items()}, "Ports": ports or {}},
        "Mounts": [{"Type": "volume", "Name": f"p_{key}-data", "Destination": "/data", "RW": True},
                   {"Type": "tmpfs", "Source": "", "Destination": "/tmp", "RW": True}],
        "State": {"Status": "running", "Pid": 1},
    }


@pytest.fixture
def engine() -> FakeEngine:
    fake = FakeEngine()
    fake.swarm_init()
    for key in ("internal", "internal-b", "public"):
        fake.networks.add(f"p_{key}", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm", Driver="overlay", Internal=key != "public",
                          Containers={"lb-p_" + key: {"Name": f"p_{key}-endpoint"}})
    fake.swarm.service("p", "node-red").attrs["Spec"]["TaskTemplate"]["RestartPolicy"] = {"Condition": "any"}
    fake.swarm.service("p", "edge").attrs["Spec"]["TaskTemplate"]["RestartPolicy"] = {"Condition": "on-failure"}
    fake.swarm.task_container("p", "node-red", attrs=task_attrs("node-red", {"p_internal": "10.0.4.3"},
                                                                image="stackgen-local/node-red:r-1@sha256:" + "a" * 64))
    fake.swarm.task_container("p", "edge", attrs=task_attrs(
        "edge", {"p_internal": "10.0.4.2", "p_internal-b": "10.0.5.3", "p_public": "10.0.1.6"}, image="caddy:2",
        ports={"8443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "443"}, {"HostIp": "::", "HostPort": "443"}]}))
    return fake


def test_task_containers_are_the_stack_files_services(engine):
    declared = Topology(project="p", origin="compose")
    declared.services["node-red"] = Service("node-red", image="stackgen-local/node-red:r-1")
    topo = observe(engine, "p", declared)
    assert set(topo.services) == {"node-red", "edge"}
    assert set(topo.networks) == {"internal", "internal-b", "public"}
    assert topo.networks["internal"].internal and topo.networks["internal"].driver == "overlay"
    node_red, edge = topo.services["node-red"], topo.services["edge"]
    assert node_red.networks == ("internal",) and edge.networks == ("internal", "internal-b", "public")
    assert [m.source for m in node_red.mounts if m.is_volume] == ["node-red-data"]
    assert node_red.restart == "always" and edge.restart == "on-failure", "Swarm's policy, not the container's (none)"
    assert node_red.image == "stackgen-local/node-red:r-1", "the digest deploy pinned for the declared tag is that image"
    assert [(p.target, p.host_port) for p in edge.ports] == [(8443, 443)]


def _probe_runs(engine: FakeEngine, output: bytes = b'{"connect": ["blocked"]}\n', state: str = "complete"):
    """The fake swarm runs a probe service's task: its container on this node prints `output`."""

    def runs(service):
        container = engine.swarm.task_container("probe", "x", id=f"probe-{len(engine.swarm.created)}")
        container.logs = lambda stdout=True, stderr=False: output
        service.task(state, "shutdown", container=container.id, exit_code=0)

    engine.swarm.on_create = runs


def test_a_probe_container_on_an_overlay_is_a_service_hardened_placed_here_and_removed(engine):
    network = engine.inspect_network("p_internal")
    assert swarm_probe.is_overlay_only(network) and not swarm_probe.is_overlay_only({"Scope": "local"})
    assert not swarm_probe.is_overlay_only({"Scope": "swarm", "Attachable": True})
    _probe_runs(engine)
    client = swarm_probe.OverlayProbes(engine, "p")
    probe = client.containers.create("sha256:abc", ["-e", "script", "{}"], entrypoint=["node"], network="p_internal",
                                     user="65534:65534", read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
                                     mem_limit="64m", labels={PROBE_LABEL: "p"})
    assert isinstance(probe, swarm_probe.ServiceProbe) and engine.swarm.created == [], "nothing runs before start"
    probe.poll = 0
    probe.start()
    assert probe.wait() == {"StatusCode": 0}
    assert json.loads(probe.logs(stdout=True, stderr=False)) == {"connect": ["blocked"]}
    probe.remove(force=True, v=True)
    (created,) = engine.swarm.created
    kwargs = created.kwargs
    assert kwargs["command"] == ["node"] and kwargs["args"] == ["-e", "script", "{}"]
    assert kwargs["networks"] == ["nid-p_internal"] and kwargs["constraints"] == ["node.id==node-id-1"]
    assert kwargs["user"] == "65534:65534" and kwargs["read_only"] is True and kwargs["cap_drop"] == ["ALL"]
    assert kwargs["restart_policy"]["Condition"] == "none" and kwargs["resources"]["Limits"]["MemoryBytes"] == 64 * 1024 * 1024
    assert kwargs["labels"] == {PROBE_LABEL: "p"} == kwargs["container_labels"]
    assert engine.swarm.removed == [created.name] and created.name.startswith("stackgen-probe-p-")


def test_a_container_on_any_other_network_is_the_engines_own(engine):
    asked = []
    engine.containers.create = lambda image, command=None, **kwargs: asked.append((image, command, kwargs)) or "container"
    engine.networks.add("stackgen-probe-p-1", {PROBE_LABEL: "p"})  # a bridge of the verifier's own
    client = swarm_probe.OverlayProbes(engine, "p")
    assert client.containers.create("img", ["x"], network="stackgen-probe-p-1") == "container"
    assert client.containers.create("img", ["x"], network_mode="container:abc") == "container"
    assert client.containers.create("img", ["x"], network="gone") == "container", "the engine says what is wrong with it"
    assert len(asked) == 3 and engine.swarm.created == []
    assert client.info() == engine.info() and client.swarm is engine.swarm, "everything else is the client's"


def test_a_probe_service_that_cannot_run_says_why_and_is_removed(engine):
    engine.swarm.on_create = lambda service: service.task("rejected", "shutdown", err="No such image: sha256:abc")
    probe = swarm_probe.OverlayProbes(engine, "p").containers.create("sha256:abc", [], entrypoint="node", network="p_internal")
    probe.poll = 0
    probe.start()
    with pytest.raises(RuntimeError, match=r"probe service on p_internal: No such image: sha256:abc"):
        probe.wait()
    probe.remove()
    assert len(engine.swarm.removed) == 1


def test_the_matrix_probe_on_a_swarm_overlay_runs_as_a_service(engine):
    from stackgen.live import isolation
    from stackgen.live.checks import LiveContext

    _probe_runs(engine, b'{"connect": ["open"]}\n')
    ctx = LiveContext(swarm_probe.OverlayProbes(engine, "p"), "p", Topology(project="p"), None,
                      {"internal": engine.inspect_network("p_internal")})
    ctx.networks["internal"]["IPAM"] = {"Config": [{"Subnet": "10.0.4.0/24"}]}
    job = {"targets": [["10.0.4.3", 1880]], "timeout": 1500}
    assert isolation.run_probe_container(ctx, "sha256:abc", "internal", job) == {"connect": ["open"]}
    (created,) = engine.swarm.created
    assert created.kwargs["command"] == ["node"] and json.loads(created.kwargs["args"][2]) == job
    assert engine.swarm.removed == [created.name]


@pytest.mark.parametrize("scope", ["swarm", "local"])
def test_the_isolation_probes_run_beside_the_probes_through_the_published_ports(monkeypatch, scope):
    """The access probes' networks leave a swarm edge's published ports where they are (overlays of our own, proven by
    tests/integration/test_swarm_operate.py): no order is needed, on a swarm as on compose, so a verify takes no longer."""
    import threading

    from stackgen.live import checks

    ctx = checks.LiveContext(None, "p", Topology(project="p"), None, {"internal": {"Scope": scope, "Attachable": False}})
    events, isolation_done = [], threading.Event()

    def isolation(ctx_, pool):
        events.append("isolation start")
        isolation_done.wait(0.2)
        events.append("isolation end")
        isolation_done.set()

    def through_ports(name):
        def run(*args):
            events.append(f"{name} ({'after' if isolation_done.is_set() else 'during'} isolation)")
        return run

    monkeypatch.setattr(checks, "_isolation", isolation)
    monkeypatch.setattr(checks, "tls", through_ports("tls"))
    monkeypatch.setattr(checks, "tls_profile_probe", through_ports("tls profile"))
    monkeypatch.setattr(checks, "keys", lambda ctx_: None)
    checks._probe(ctx, "all")
    assert events.count("isolation start") == 1
    assert [e for e in events if "during" in e], events


def test_a_task_container_is_told_from_a_compose_container(engine):
    task = next(c for c in engine.containers.list() if c.name.startswith("p_edge"))
    assert swarm_probe.is_task(task)
    assert not swarm_probe.is_task(type("C", (), {"attrs": {"Config": {"Labels": {"com.docker.compose.service": "edge"}}}})())
    assert not swarm_probe.is_task(object()), "no attrs: not a task"


class _Networks:
    """Records what `networks.create` is asked; the engine's answer names the subnet it was given, else 10.0.9.0/24."""

    def __init__(self) -> None:
        self.created: list[tuple[str, dict]] = []
        self.removed: list[str] = []

    def create(self, name: str, **kwargs):
        self.created.append((name, kwargs))
        config = ((kwargs.get("ipam") or {}).get("Config") or [{"Subnet": "10.0.9.0/24", "Gateway": "10.0.9.1"}])[0]
        networks = self

        class Network:
            id = f"{name}-{len(networks.created)}"
            attrs = {"Name": name, "IPAM": {"Config": [config]}}

            def reload(self) -> None:
                pass

            def remove(self) -> None:
                networks.removed.append(self.id)

        return Network()


def test_a_swarm_edges_probe_networks_are_attachable_internal_overlays():
    """Joined to a bridge network, a task's host-mode ports stop answering (engine 20.10): for a swarm edge the access
    probes' networks are overlays of our own (no gateway, so docker_gwbridge keeps the ports), attachable (the clients
    are plain containers), internal, with the outsider subnet asked for; the insider's subnet, chosen by the swarm's
    pools, is stated on a second network (the first removed)."""
    from stackgen.live import access

    networks = _Networks()
    engine = type("E", (), {"networks": networks, "api": type("A", (), {"inspect_network": lambda self, nid: next(
        {"IPAM": {"Config": [(k.get("ipam") or {"Config": [{"Subnet": "10.0.9.0/24", "Gateway": "10.0.9.1"}]})["Config"][0]]}}
        for n, k in networks.created if f"{n}-" in nid)})()})()
    outside = access.ProbeNetwork.create(engine, "x-out", {PROBE_LABEL: "p"}, subnet="198.18.7.0/24", overlay=True)
    assert outside.overlay and outside.subnet == "198.18.7.0/24"
    (name, kwargs), = networks.created
    assert (kwargs["driver"], kwargs["attachable"], kwargs["scope"], kwargs["internal"]) == ("overlay", True, "swarm", True)
    assert kwargs["ipam"]["Config"][0]["Subnet"] == "198.18.7.0/24" and kwargs["labels"] == {PROBE_LABEL: "p"}
    inside = access.ProbeNetwork.create(engine, "x-in", {PROBE_LABEL: "p"}, pinned=True, overlay=True)
    assert inside.subnet == "10.0.9.0/24" and networks.removed == ["x-in-2"]
    assert networks.created[2][1]["ipam"]["Config"][0]["Subnet"] == "10.0.9.0/24" and networks.created[2][1]["driver"] == "overlay"
    access.ProbeNetwork.create(engine, "y-out", {}, subnet="198.18.8.0/24")
    assert networks.created[-1][1]["driver"] == "bridge" and "attachable" not in networks.created[-1][1], "a compose edge: bridge"
