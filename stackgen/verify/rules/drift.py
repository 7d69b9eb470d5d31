"""Drift: the running stack is not what its compose file declares.

These rules judge a Topology observed from the engine (`origin == "engine"`)
against the declared one it carries (`topo.declared`). On a compose file alone
they have nothing to compare and stay silent. Each catches a way a live stack
changes behind its file's back: a container started by hand, a port published
by another tool, a network recreated, a process running as someone else.
"""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Finding, Severity
from stackgen.topology import Mount, Port, Service, Topology
from stackgen.verify.rules.base import Rule


def _pairs(topo: Topology) -> Iterator[tuple[Service, Service | None]]:
    declared = topo.declared
    if topo.origin != "engine" or declared is None:
        return
    for svc in topo.services.values():
        yield svc, declared.services.get(svc.name)


UNDECLARED = Rule(
    id="SG201",
    name="undeclared-container",
    severity=Severity.HIGH,
    title="Container the compose file does not declare",
    why="""A container on the project's networks that the compose file does not declare was started by
    hand or by another tool. On the internal network it can reach Node-RED's editor port, bypassing the
    edge's TLS and authentication entirely.""",
    bad="""
        # docker run -d --network myproject_internal alpine sleep 1d
    """,
    good="""
        # every container on the project's networks is a service of compose.yaml
    """,
    fix="Remove the container (`docker rm -f NAME`), or declare it in stack.yaml/compose.yaml so the rules judge it.",
    kind="drift",
)


@UNDECLARED.checks
def _undeclared(topo: Topology) -> Iterator[Finding]:
    for svc, declared in _pairs(topo):
        if declared is None:
            nets = ", ".join(svc.networks) or "no network"
            yield UNDECLARED.finding(svc, f"container {svc.name} ({svc.image}) is not declared in the compose file; it is on {nets}")


MISSING = Rule(
    id="SG206",
    name="service-not-running",
    severity=Severity.MEDIUM,
    title="Declared service not running",
    why="""A declared service with no running container means the stack is not what was verified: the
    edge without Node-RED answers 502, a stopped certificate sidecar means no renewal.""",
    bad="""
        # compose.yaml declares certbot; `docker ps` shows no certbot container
    """,
    good="""
        # every declared service has a running container
    """,
    fix="Start the stack (`stackgen up DIR`) and look at the service's logs.",
    kind="drift",
)


@MISSING.checks
def _missing(topo: Topology) -> Iterator[Finding]:
    if topo.origin != "engine" or topo.declared is None:
        return
    for name, declared in topo.declared.services.items():
        if name not in topo.services:
            yield MISSING.finding(declared, f"{name} is declared but has no running container")


def _port_key(port: Port) -> tuple[int | None, str]:
    return port.target, port.protocol


PORT_DRIFT = Rule(
    id="SG202",
    name="undeclared-port",
    severity=Severity.HIGH,
    title="Port published that the compose file does not publish",
    why="""A port the file does not publish was added at run time (`docker run -p`, another compose
    file, a management UI). It is an entrance no review saw; on Node-RED it exposes the editor.""",
    bad="""
        # compose.yaml: node-red has no ports; the running container publishes 0.0.0.0:1880
    """,
    good="""
        # the running containers publish exactly what compose.yaml declares
    """,
    fix="Recreate the service from the file (`stackgen up DIR`), and find what published the port.",
    kind="drift",
)


@PORT_DRIFT.checks
def _ports(topo: Topology) -> Iterator[Finding]:
    for svc, declared in _pairs(topo):
        if declared is None:
            continue
        expected = {_port_key(p): p for p in declared.ports}
        for port in svc.ports:
            want = expected.get(_port_key(port))
            if want is None:
                yield PORT_DRIFT.finding(svc, f"publishes {port.describe()}, which the compose file does not declare")
            elif want.host_port is not None and port.host_port != want.host_port:
                yield PORT_DRIFT.finding(svc, f"publishes {port.describe()}, the file says {want.describe()}")
            elif not want.all_interfaces and port.all_interfaces:
                yield PORT_DRIFT.finding(svc, f"publishes {port.describe()} on every interface, the file says {want.describe()}")


NETWORK_NOT_INTERNAL = Rule(
    id="SG203",
    name="network-no-longer-internal",
    severity=Severity.CRITICAL,
    title="Declared internal network is not internal",
    why="""The network the file declares `internal: true` runs without it (recreated by hand or by
    another tool): Node-RED now has a route to the internet and to the host's other networks.""",
    bad="""
        # compose.yaml: networks: {internal: {internal: true}}; `docker network inspect` shows Internal=false
    """,
    good="""
        # the running network has Internal=true
    """,
    fix="Take the stack down and up again (`stackgen down DIR && stackgen up DIR`) so Compose recreates the network.",
    kind="drift",
)


@NETWORK_NOT_INTERNAL.checks
def _network(topo: Topology) -> Iterator[Finding]:
    if topo.origin != "engine" or topo.declared is None:
        return
    for key, declared in topo.declared.networks.items():
        observed = topo.networks.get(key)
        if declared.internal and observed is not None and not observed.internal:
            members = ", ".join(s.name for s in topo.members(key))
            yield NETWORK_NOT_INTERNAL.finding(None, f"network {observed.name} is declared internal but is not (members: {members})")


USER_DRIFT = Rule(
    id="SG204",
    name="user-drift",
    severity=Severity.HIGH,
    title="Process runs as another user than declared",
    why="""The main process runs as a different uid than the file says (the container was recreated with
    another `--user`, or the image's entrypoint switches user). What was verified is not what runs.""",
    bad="""
        # compose.yaml: user: "1000:1000"; the process table shows uid 0
    """,
    good="""
        # the main process's uid is the declared one
    """,
    fix="Recreate the service from the file; if the image switches user itself, use an image that does not.",
    kind="drift",
)


def _uid(user: str | None) -> str | None:
    if user is None:
        return None
    head = user.split(":", 1)[0].strip()
    return "0" if head == "root" else head


@USER_DRIFT.checks
def _user(topo: Topology) -> Iterator[Finding]:
    for svc, declared in _pairs(topo):
        if declared is None or declared.user is None or svc.user is None:
            continue
        want, have = _uid(declared.user), _uid(svc.user)
        if want and want.isdigit() and have and have != want:
            yield USER_DRIFT.finding(svc, f"runs as uid {have}, the file declares user {declared.user}")


IMAGE_DRIFT = Rule(
    id="SG205",
    name="image-drift",
    severity=Severity.MEDIUM,
    title="Container runs another image than declared",
    why="""The container was created from an image the file no longer names (a stale container left
    from an earlier version, or one recreated by hand): it misses the fixes the file's image has.""",
    bad="""
        # compose.yaml: image: nodered/node-red:4.0.9; the container runs nodered/node-red:3.1.0
    """,
    good="""
        # each container runs its service's declared image
    """,
    fix="Recreate the service (`stackgen up DIR`); `docker compose up` replaces containers whose image changed.",
    kind="drift",
)


@IMAGE_DRIFT.checks
def _image(topo: Topology) -> Iterator[Finding]:
    for svc, declared in _pairs(topo):
        if declared is None or not declared.image or not svc.image:
            continue
        if _normal(svc.image) != _normal(declared.image):
            yield IMAGE_DRIFT.finding(svc, f"runs image {svc.image}, the file declares {declared.image}")


def _normal(image: str) -> str:
    name = image.removeprefix("docker.io/").removeprefix("library/")
    last = name.rsplit("/", 1)[-1]
    return name if (":" in last or "@" in name) else name + ":latest"


NETWORK_DRIFT = Rule(
    id="SG207",
    name="network-drift",
    severity=Severity.HIGH,
    title="Container joined to a network the file does not give it",
    why="""`docker network connect` at run time adds a path the file does not show: Node-RED joined to the
    public network is reachable without the edge, and can reach everything on it.""",
    bad="""
        # docker network connect myproject_public myproject-node-red-1
    """,
    good="""
        # each container is on exactly its declared networks
    """,
    fix="Disconnect it (`docker network disconnect NETWORK CONTAINER`) or recreate the service from the file.",
    kind="drift",
)


@NETWORK_DRIFT.checks
def _networks(topo: Topology) -> Iterator[Finding]:
    for svc, declared in _pairs(topo):
        if declared is None:
            continue
        for net in sorted(set(svc.networks) - set(declared.networks)):
            yield NETWORK_DRIFT.finding(svc, f"is attached to network {net}, which the file does not give it")


MOUNT_DRIFT = Rule(
    id="SG208",
    name="mount-drift",
    severity=Severity.HIGH,
    title="Mount differs from the declared one",
    why="""A mount the file does not declare, or one declared read-only that is writable, changes who can
    read or write what: a key volume mounted into Node-RED, the certificates writable in the edge.""",
    bad="""
        # compose.yaml: certs:/etc/letsencrypt:ro in the edge; the container mounts it read-write
    """,
    good="""
        # each container's mounts are its declared ones, with the same read-only flags
    """,
    fix="Recreate the service from the file (`stackgen up DIR`).",
    kind="drift",
)


def _mount_key(m: Mount) -> str:
    return m.target.rstrip("/") or "/"


@MOUNT_DRIFT.checks
def _mounts(topo: Topology) -> Iterator[Finding]:
    for svc, declared in _pairs(topo):
        if declared is None:
            continue
        expected = {_mount_key(m): m for m in declared.mounts}
        expected.update({t.target.rstrip("/"): Mount("tmpfs", None, t.target) for t in declared.tmpfs})
        for _, target in declared.secrets:
            expected.setdefault(target.rstrip("/"), Mount("bind", None, target, read_only=True))
        for m in svc.mounts:
            want = expected.get(_mount_key(m))
            if want is None:
                yield MOUNT_DRIFT.finding(svc, f"mounts {m.source or m.type} at {m.target}, which the file does not declare")
            elif want.read_only and not m.read_only:
                yield MOUNT_DRIFT.finding(svc, f"mounts {m.target} writable, the file declares it read-only")


RULES = (UNDECLARED, PORT_DRIFT, NETWORK_NOT_INTERNAL, USER_DRIFT, IMAGE_DRIFT, MISSING, NETWORK_DRIFT, MOUNT_DRIFT)
