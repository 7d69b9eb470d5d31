"""verify --live without an engine: drift rules, the expectation model, the observed-topology loader."""

from __future__ import annotations

import pytest

from stackgen.cli.output import render_matrix
from stackgen.live import checks as live
from stackgen.live import isolation, observe
from stackgen.topology import Mount, Network, Port, Role, Service, Topology
from stackgen.verify.rules import ALL_RULES, run_rules
from tests.support.fakes import FakeContainer


def declared() -> Topology:
    topo = Topology(project="p")
    topo.networks = {"internal": Network("internal", "p_internal", internal=True), "public": Network("public", "p_public")}
    topo.services = {
        "node-red": Service("node-red", image="nodered/node-red:4.0.9", role=Role.NODE_RED, user="1000:1000", networks=("internal",),
                            mounts=[Mount("volume", "node-red-data", "/data")]),
        "edge": Service("edge", image="caddy:2.8.4", role=Role.EDGE, user="101:101", networks=("internal", "public"),
                        ports=[Port(8443, "443", "0.0.0.0")], mounts=[Mount("volume", "certs", "/etc/letsencrypt", read_only=True)]),
    }
    return topo


def observed(**changes) -> Topology:
    topo = declared()
    topo.origin, topo.declared = "engine", declared()
    for name, fields in changes.items():
        for key, value in fields.items():
            setattr(topo.services[name], key, value)
    return topo


def rules_of(topo: Topology) -> set[tuple[str, str | None]]:
    return {(f.rule, f.service) for f in run_rules(topo, [r for r in ALL_RULES if r.kind == "drift"])}


def test_no_drift_when_the_engine_runs_the_file():
    assert rules_of(observed()) == set()


def test_drift_rules_are_silent_on_a_compose_file():
    assert rules_of(declared()) == set()


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"node-red": {"user": "0:0"}}, ("SG204", "node-red")),
        ({"node-red": {"ports": [Port(1880, "1880", "0.0.0.0")]}}, ("SG202", "node-red")),
        ({"edge": {"ports": [Port(8443, "8443", "0.0.0.0")]}}, ("SG202", "edge")),
        ({"node-red": {"image": "nodered/node-red:3.1.0"}}, ("SG205", "node-red")),
        ({"node-red": {"networks": ("internal", "public")}}, ("SG207", "node-red")),
        ({"edge": {"mounts": [Mount("volume", "certs", "/etc/letsencrypt", read_only=False)]}}, ("SG208", "edge")),
        ({"node-red": {"mounts": [Mount("volume", "node-red-data", "/data"), Mount("volume", "certs", "/etc/letsencrypt")]}}, ("SG208", "node-red")),
    ],
)
def test_each_drift_is_named(changes, expected):
    assert expected in rules_of(observed(**changes))


def test_undeclared_container_missing_service_and_network_no_longer_internal():
    topo = observed()
    topo.services["rogue"] = Service("rogue", image="alpine", networks=("internal",))
    del topo.services["edge"]
    topo.networks["internal"].internal = False
    found = rules_of(topo)
    assert ("SG201", "rogue") in found
    assert ("SG206", "edge") in found
    assert ("SG203", None) in found


def test_image_comparison_ignores_default_registry_and_tag():
    topo = observed()
    topo.services["node-red"].image = "docker.io/nodered/node-red:4.0.9"
    assert rules_of(topo) == set()


def context(topo: Topology) -> live.LiveContext:
    return live.LiveContext(engine=None, project="p", observed=topo, declared=topo.declared or topo, networks={})


def test_expectations_follow_the_security_model():
    topo = observed()
    ctx = context(topo)
    node_red, edge = topo.services["node-red"], topo.services["edge"]
    assert isolation.expected(ctx, "internal", node_red, "internal") == "open"
    assert isolation.expected(ctx, "public", node_red, "internal") == "closed"
    assert isolation.expected(ctx, "host", node_red, "internal") == "closed"
    assert isolation.expected(ctx, "public", edge, "public") == "open"
    assert isolation.expected(ctx, "internal", edge, "public") == "closed", "bridges are isolated"
    assert isolation.expected(ctx, "host", edge, "public") is None


def test_node_red_on_public_by_hand_is_expected_closed_there():
    topo = observed(**{"node-red": {"networks": ("internal", "public")}})
    assert isolation.expected(context(topo), "public", topo.services["node-red"], "public") == "closed"


def test_mismatch_becomes_a_finding_and_the_matrix_marks_it():
    topo = observed()
    ctx = context(topo)
    cell = live.Reach("public", "node-red", "172.30.0.3", 1880, "closed", "open", via="public")
    isolation._record(ctx, cell)
    assert not cell.ok
    assert [(f.rule, f.service) for f in ctx.findings] == [("SG301", "node-red")]
    text = render_matrix(live.LiveResult(topo, [], None, 1, ctx.matrix, [], 0.0))
    assert "MISMATCH" in text and "node-red:1880" in text


def test_refused_is_not_reachable_for_a_closed_expectation():
    assert live.Reach("public", "certbot", "172.30.0.4", 443, "closed", "refused").ok


def test_observed_service_from_inspect_uses_the_process_table():
    attrs = {
        "Id": "abc", "Name": "/p-node-red-1", "Image": "sha256:1",
        "State": {"Pid": 4242},
        "Config": {"Image": "nodered/node-red:4.0.9", "User": "1000:1000", "Env": ["TZ=Etc/UTC"],
                   "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": "node-red"},
                   "Healthcheck": {"Test": ["CMD", "node", "-e", "1"]}},
        "HostConfig": {"ReadonlyRootfs": True, "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges:true"],
                       "NetworkMode": "p_internal", "Memory": 536870912, "NanoCpus": 1500000000, "PidsLimit": 256,
                       "RestartPolicy": {"Name": "unless-stopped"}, "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
                       "Tmpfs": {"/tmp": "size=64m,mode=1777"}, "PortBindings": {"1880/tcp": [{"HostIp": "", "HostPort": ""}]},
                       "CgroupnsMode": "host"},
        "NetworkSettings": {"Networks": {"p_internal": {"IPAddress": "172.30.0.3"}}, "Ports": {"1880/tcp": None}},
        "Mounts": [{"Type": "volume", "Name": "p_node-red-data", "Destination": "/data", "RW": True},
                   {"Type": "volume", "Name": "p_certs", "Destination": "/etc/letsencrypt", "RW": False}],
    }
    container = FakeContainer.from_attrs(attrs, {"Titles": ["PID", "UID", "GID"], "Processes": [["4242", "0", "0"], ["4300", "1000", "1000"]]})
    svc = observe.service_from_container(container, "p", {"p_internal": "internal"}, host_cgroupns_default=True)
    assert svc.name == "node-red" and svc.role is Role.NODE_RED
    assert svc.user == "0:0", "the main process's uid, not the configured one"
    assert svc.networks == ("internal",)
    assert [(m.source, m.read_only) for m in svc.mounts] == [("node-red-data", False), ("certs", True)]
    assert [p.target for p in svc.ports] == [1880], "a configured port the engine could not bind still counts"
    assert svc.cgroup is None and svc.cpus == 1.5 and svc.mem_limit == 536870912
    assert svc.tmpfs[0].target == "/tmp"


def test_probe_refuses_to_leave_the_stacks_networks():
    ctx = context(observed())
    ctx.networks = {"internal": {"Name": "p_internal", "IPAM": {"Config": [{"Subnet": "172.30.0.0/24"}]}}}
    from stackgen.live.probes import ForbiddenTarget

    with pytest.raises(ForbiddenTarget):
        isolation.run_probe_container(ctx, "img", "internal", {"targets": [["8.8.8.8", 53]], "timeout": 100})


def test_a_role_the_file_gave_carries_over_to_the_running_container():
    """A locally built Node-RED (build: ./node-red, image `myproj-app`) shows nothing of Node-RED when
    running; the file's evidence must not be lost, or live verify would judge it as any service."""
    from stackgen.topology import Service, Topology

    declared = Topology(origin="file", services={
        "app": Service("app", role=Role.NODE_RED, role_from="build"),
        "proxy": Service("proxy", role=Role.EDGE, role_from="name"),
    })
    running = Topology(origin="engine", services={
        "app": Service("app", role=Role.OTHER, role_from="none"),
        "proxy": Service("proxy", role=Role.CERTBOT, role_from="image"),
    })
    observe.adopt_declared(running, declared)
    assert running.services["app"].role is Role.NODE_RED and running.services["app"].role_from == "build"
    assert running.services["proxy"].role is Role.CERTBOT, "what the running container itself shows wins over weaker file evidence"
