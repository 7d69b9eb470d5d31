"""Host namespaces and cgroups: a container that shares the host's network, PIDs, IPC, users."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology
from stackgen.verify.rules.base import Rule

HOST_NETWORK = Rule(
    id="SG006",
    name="host-network",
    severity=Severity.HIGH,
    title="Host network namespace",
    why="""`network_mode: host` puts the container on the host's interfaces: every port it opens is
    open on the host, it can reach services bound to localhost, and no compose network (internal
    or not) applies to it. For Node-RED it defeats the whole "only the edge reaches it" design.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            network_mode: host
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            networks: [internal]
        networks:
          internal: {internal: true}
    """,
    fix="Remove `network_mode: host`; attach the service to compose networks and publish only through the edge.",
    compose_lint=("CL-0008",),
    kics=("Shared Host Network Namespace / Network Mode Host Exists (071a71ff)",),
)


@HOST_NETWORK.per_service
def _host_network(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.network_mode == "host":
        yield "shares the host's network namespace (`network_mode: host`)", svc.at("network_mode")


def _namespace_rule(rid: str, key: str, title: str, why: str, severity: Severity, cl: tuple, kics: tuple) -> Rule:
    rule = Rule(
        id=rid,
        name=f"host-{key.removesuffix('_mode')}",
        severity=severity,
        title=title,
        why=why,
        bad=f"""
            services:
              app:
                image: alpine:3.20
                {key}: host
        """,
        good="""
            services:
              app:
                image: alpine:3.20
        """,
        fix=f"Remove `{key}: host`; the default private namespace is what containers need.",
        compose_lint=cl,
        kics=kics,
    )

    @rule.per_service
    def _check(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
        if getattr(svc, key) == "host":
            yield f"shares the host's {title.split()[1]} namespace (`{key}: host`)", svc.at(key)

    return rule


HOST_PID = _namespace_rule(
    "SG007",
    "pid",
    "Host PID namespace",
    """`pid: host` lets the container see and signal every process on the host, read their
    environment and, with `SYS_PTRACE`, attach to them.""",
    Severity.HIGH,
    ("CL-0010",),
    ("Host Namespace is Shared (4f31dd9f)",),
)
HOST_IPC = _namespace_rule(
    "SG008",
    "ipc",
    "Host IPC namespace",
    """`ipc: host` shares the host's shared memory and semaphores: the container can read or corrupt
    memory segments of host processes.""",
    Severity.HIGH,
    ("CL-0010",),
    ("Shared Host IPC Namespace / IPC Set To Host (baa3890f)",),
)
HOST_UTS = _namespace_rule(
    "SG009",
    "uts",
    "Host UTS namespace",
    """`uts: host` shares the host's hostname and domain name; with enough privilege the container can
    rename the host, and it learns the host's identity.""",
    Severity.MEDIUM,
    (),
    (),
)
HOST_USERNS = _namespace_rule(
    "SG010",
    "userns_mode",
    "Host user namespace",
    """`userns_mode: host` opts the container out of the daemon's user-namespace remapping: root in
    the container is root on the host again.""",
    Severity.MEDIUM,
    (),
    ("Shared Host User Namespace / Userns Set To Host (8af7162d)",),
)
HOST_CGROUP = _namespace_rule(
    "SG041",
    "cgroup",
    "Host cgroup namespace",
    """`cgroup: host` shows the container the host's whole cgroup tree, disclosing every container
    and, with write access to cgroupfs, the knobs that contain them.""",
    Severity.MEDIUM,
    (),
    (),
)

CGROUP_PARENT = Rule(
    id="SG038",
    name="cgroup-parent",
    severity=Severity.LOW,
    title="Custom cgroup parent",
    why="""`cgroup_parent` moves the container out of the engine's own cgroup, and with it out of the
    resource limits and accounting set for containers; it is rarely needed outside special hosts.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            cgroup_parent: /system.slice
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            mem_limit: 256m
    """,
    fix="Remove `cgroup_parent` and use the service's own limits (`mem_limit`, `cpus`, `pids_limit`).",
    kics=("Cgroup Not Default (4d9f44c6)",),
)


@CGROUP_PARENT.per_service
def _cgroup_parent(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.cgroup_parent:
        yield f"runs under custom cgroup parent {svc.cgroup_parent}", svc.at("cgroup_parent")


RULES = (HOST_NETWORK, HOST_PID, HOST_IPC, HOST_UTS, HOST_USERNS, HOST_CGROUP, CGROUP_PARENT)
