"""Host access through mounts and devices: the engine socket, `/`, system paths, devices."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Mount, Service, Source, Topology
from stackgen.verify.rules._hostpaths import is_benign, is_socket, norm, root_equivalent, sensitive, shown
from stackgen.verify.rules._keys import key_mounts
from stackgen.verify.rules.base import Rule


def _binds(svc: Service) -> Iterator[Mount]:
    for m in svc.mounts:
        if m.type in ("bind", "npipe") and m.source:
            yield m


DOCKER_SOCKET = Rule(
    id="SG002",
    name="docker-socket",
    severity=Severity.CRITICAL,
    title="Container engine socket mounted",
    why="""Whoever can talk to the Docker (or containerd/podman) socket can start a privileged
    container with the host's `/` mounted: the socket is root on the host, and `:ro` does not
    change that (read-only applies to the socket file, not to the API behind it). stackgen's
    model gives no container the socket; Traefik uses its file provider instead.""",
    bad="""
        services:
          traefik:
            image: traefik:v3.1
            volumes:
              - /var/run/docker.sock:/var/run/docker.sock:ro
    """,
    good="""
        services:
          traefik:
            image: traefik:v3.1
            volumes:
              - ./traefik/dynamic.yml:/etc/traefik/dynamic.yml:ro
    """,
    fix="Remove the socket mount (and `use_api_socket`). Configure the proxy with files; if a container "
    "must watch Docker, put a filtering socket proxy in between and give it only read endpoints.",
    compose_lint=("CL-0001",),
    kics=("Docker Socket Mounted In Container (d6355c88)",),
)


@DOCKER_SOCKET.per_service
def _docker_socket(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for m in _binds(svc):
        if is_socket(m.source or ""):
            mode = "read-only (still full API access)" if m.read_only else "read-write"
            yield f"mounts the engine socket {m.source} {mode}", m.src
    if svc.use_api_socket:
        yield "`use_api_socket: true` hands the container the engine's API socket", svc.at("use_api_socket")


HOST_ROOT = Rule(
    id="SG003",
    name="host-root",
    severity=Severity.CRITICAL,
    title="Host root filesystem mounted",
    why="""Mounting `/` exposes every file on the host: keys, `/etc/shadow`, other containers' volumes
    and the engine socket. Read-only it is full disclosure; writable it is root on the host.""",
    bad="""
        services:
          tools:
            image: alpine:3.20
            volumes: ["/:/host"]
    """,
    good="""
        services:
          tools:
            image: alpine:3.20
            volumes: ["./data:/data:ro"]
    """,
    fix="Mount only the directory the service needs, read-only when it only reads.",
    compose_lint=("CL-0001",),
    kics=("Volume Has Sensitive Host Directory (1c1325ff)",),
)


@HOST_ROOT.per_service
def _host_root(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for m in _binds(svc):
        if norm(m.source or "") == "/":
            mode = "read-only" if m.read_only else "writable"
            yield f"mounts the host's root filesystem `/` at {m.target} ({mode})", m.src


WRITABLE_SYSTEM_PATH = Rule(
    id="SG005",
    name="writable-system-path",
    severity=Severity.CRITICAL,
    title="Root-equivalent host path mounted writable",
    why="""Write access to host paths such as `/etc`, `/root`, `/usr/bin`, `/boot`, `/lib/modules`,
    `/var/lib/docker` or `/proc` lets the container add a cron job, a sudoers entry, a kernel module
    or a binary the host will run as root.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            volumes: ["/etc:/host-etc"]
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            volumes: ["/etc/ssl/certs:/etc/ssl/certs:ro"]
    """,
    fix="Do not mount system paths writable; mount the narrowest path needed, with `:ro`.",
    compose_lint=("CL-0025",),
    kics=("Volume Has Sensitive Host Directory (1c1325ff)",),
)


def _writable_system(m: Mount) -> bool:
    source = norm(m.source or "")
    return (
        not m.read_only
        and source != "/"
        and not is_socket(source)
        and root_equivalent(source)
        and not is_benign(source)
    )


@WRITABLE_SYSTEM_PATH.per_service
def _writable_system_path(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for m in _binds(svc):
        if _writable_system(m):
            yield f"mounts host path {m.source} writable at {m.target}", m.src


SENSITIVE_PATH = Rule(
    id="SG004",
    name="sensitive-host-path",
    severity=Severity.HIGH,
    title="Sensitive host path mounted",
    why="""Host paths like `/proc`, `/sys`, `/dev`, `/etc`, `/var/log`, whole home directories or
    `~/.ssh`/`~/.docker` disclose secrets and host state even read-only, and widen what an intruder
    in the container can reach.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            volumes: ["/proc:/host/proc:ro"]
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            volumes: ["app-data:/data"]
        volumes:
          app-data: {}
    """,
    fix="Mount an application directory or a named volume instead; if host data is really needed, "
    "mount the narrowest file read-only.",
    compose_lint=("CL-0013",),
    kics=("Volume Has Sensitive Host Directory (1c1325ff)",),
)


@SENSITIVE_PATH.per_service
def _sensitive_path(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for m in _binds(svc):
        source = norm(m.source or "")
        if not source.startswith("/") or source == "/" or is_socket(source) or _writable_system(m):
            continue
        if m.read_only and is_benign(source):
            continue
        if sensitive(source) or is_benign(source):
            mode = "read-only" if m.read_only else "writable"
            yield f"mounts sensitive host path {m.source} at {m.target} ({mode})", m.src


TMPFS_EXEC = Rule(
    id="SG017",
    name="tmpfs-exec",
    severity=Severity.LOW,
    title="tmpfs mounted with exec or suid",
    why="""A writable tmpfs that allows `exec` (or `suid`) is where an intruder drops and runs a
    payload even when the root filesystem is read-only. Docker mounts `tmpfs:` entries `noexec,nosuid`
    unless told otherwise.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            tmpfs: ["/tmp:exec"]
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            tmpfs: ["/tmp:size=64m"]
    """,
    fix="Drop `exec`/`suid` from the tmpfs options.",
    compose_lint=("CL-0022",),
)


@TMPFS_EXEC.per_service
def _tmpfs_exec(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for t in svc.tmpfs:
        bad = [o for o in t.options if o.strip().lower() in ("exec", "suid")]
        if bad:
            yield f"tmpfs {t.target} allows {' and '.join(bad)}", t.src or svc.at("tmpfs")


RAW_DEVICE = Rule(
    id="SG035",
    name="raw-device",
    severity=Severity.CRITICAL,
    title="Host memory or disk device exposed",
    why="""`/dev/mem`, `/dev/kmem`, `/dev/port` and block devices (`/dev/sda`, `/dev/nvme0n1`, ...) give
    raw access to host memory or disks: read any file, rewrite the host's filesystem.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            devices: ["/dev/sda:/dev/sda"]
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            volumes: ["app-data:/data"]
        volumes:
          app-data: {}
    """,
    fix="Remove the device; give the service a volume or a file instead.",
    compose_lint=("CL-0016",),
)

_RAW_PREFIXES = ("sd", "hd", "vd", "xvd", "nvme", "mmcblk", "dm-", "loop", "md", "mapper/", "disk/")


def _raw(device: str) -> bool:
    path = norm(device)
    if path in ("/dev/mem", "/dev/kmem", "/dev/port"):
        return True
    return path.startswith("/dev/") and path[5:].startswith(_RAW_PREFIXES)


@RAW_DEVICE.per_service
def _raw_device(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for d in svc.devices:
        if _raw(d.source):
            yield f"maps host device {d.source} into the container", d.src or svc.at("devices")


HOST_DEVICE = Rule(
    id="SG036",
    name="host-device",
    severity=Severity.MEDIUM,
    title="Host device mapped into the container",
    why="""A mapped device (a serial port, a GPU, `/dev/fuse`) is host hardware the container can
    drive directly, and a kernel driver reachable from a compromised service. Node-RED flows often
    want a serial radio; keep that to the one device node, in the one service that needs it.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            devices: ["/dev/bus/usb:/dev/bus/usb"]
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            devices: ["/dev/serial/by-id/usb-zigbee-if00:/dev/ttyZB:rw"]
            x-stackgen:
              ignore: [{rule: SG036, reason: "Zigbee stick; this device node only"}]
    """,
    fix="Map only the specific device node needed, and record why with an x-stackgen ignore.",
    compose_lint=("CL-0016",),
)


@HOST_DEVICE.per_service
def _host_device(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for d in svc.devices:
        if not _raw(d.source):
            yield f"maps host device {d.source} to {d.target}", d.src or svc.at("devices")


SHARED_PROPAGATION = Rule(
    id="SG037",
    name="shared-propagation",
    severity=Severity.MEDIUM,
    title="Bind mount with shared propagation",
    why="""With `shared`/`rshared` propagation, mounts made inside the container appear on the host
    (and `slave`/`rslave` pull host mounts in): the container can shape the host's mount table.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            volumes:
              - type: bind
                source: ./data
                target: /data
                bind: {propagation: rshared}
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            volumes: ["./data:/data"]
    """,
    fix="Remove the propagation option (the default, `rprivate`, is right for applications).",
    compose_lint=("CL-0017",),
    kics=("Volume Mounted In Multiple Containers (baa452f0)",),
)


@SHARED_PROPAGATION.per_service
def _shared_propagation(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for m in svc.mounts:
        if m.propagation in ("shared", "rshared", "slave", "rslave"):
            yield f"mount at {m.target} uses `{m.propagation}` propagation", m.src


SHARED_WRITABLE = Rule(
    id="SG040",
    name="shared-writable-volume",
    severity=Severity.LOW,
    title="Volume writable by more than one service",
    why="""A volume two services can write is a channel between them: one compromised service can
    plant files (configs, scripts, flows) the other will load. One writer, read-only readers keeps
    the direction of trust explicit. (Key volumes have their own, stricter rules: SG106, SG107.)""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            volumes: ["shared:/data"]
          backup:
            image: alpine:3.20
            volumes: ["shared:/backup"]
        volumes:
          shared: {}
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            volumes: ["shared:/data"]
          backup:
            image: alpine:3.20
            volumes: ["shared:/backup:ro"]
        volumes:
          shared: {}
    """,
    fix="Mount the volume read-only (`:ro`) in every service that only reads it.",
    kics=("Shared Volumes Between Containers (8c978947)",),
)


@SHARED_WRITABLE.checks
def _shared_writable(topo: Topology) -> Iterator:
    keys = {id(m) for _, m in key_mounts(topo)}
    writers: dict[tuple[str, str], list[tuple[Service, Mount]]] = {}
    for svc in topo.services.values():
        for m in svc.mounts:
            if m.read_only or id(m) in keys or not m.source or m.type not in ("volume", "bind"):
                continue
            if m.type == "bind" and (is_socket(m.source) or sensitive(m.source)):
                continue
            writers.setdefault((m.type, norm(m.source) if m.type == "bind" else m.source), []).append((svc, m))
    for (kind, source), users in writers.items():
        names = sorted({s.name for s, _ in users})
        if len(names) < 2:
            continue
        for svc, m in users:
            others = ", ".join(n for n in names if n != svc.name)
            what = f"volume {source}" if kind == "volume" else f"host path {shown(source)}"
            yield SHARED_WRITABLE.finding(svc, f"{what} is also writable by {others}", m.src)


RULES = (
    DOCKER_SOCKET,
    HOST_ROOT,
    SENSITIVE_PATH,
    WRITABLE_SYSTEM_PATH,
    TMPFS_EXEC,
    RAW_DEVICE,
    HOST_DEVICE,
    SHARED_PROPAGATION,
    SHARED_WRITABLE,
)
