"""The running stack, as the same `Topology` the compose loader builds.

Why: one set of rules must judge both the file and the engine's truth. Every
field comes from `docker inspect` of what actually runs (network attachments,
real read-only flags, actual published bindings), and the user comes from the
process table, not the configuration: an image whose entrypoint switches user
shows up as what it really is.
"""

from __future__ import annotations

from typing import Any

from stackgen import engine as engines
from stackgen.constants import NETWORK_LABEL, PROBE_LABEL, PROJECT_LABEL, STACK_NAMESPACE_LABEL
from stackgen.roles import infer_role
from stackgen.topology import (
    Device,
    Healthcheck,
    Logging,
    Mount,
    Network,
    Port,
    Role,
    Service,
    Tmpfs,
    Topology,
    Volume,
    normalise_cap,
)


def network_key(attrs: dict[str, Any], project: str) -> str:
    """The network's key in the file: compose's label, or a swarm stack's `STACK_KEY` name; else its own name."""
    labels = attrs.get("Labels") or {}
    if labels.get(PROJECT_LABEL) == project and labels.get(NETWORK_LABEL):
        return labels[NETWORK_LABEL]
    if labels.get(STACK_NAMESPACE_LABEL) == project and attrs["Name"].startswith(f"{project}_"):
        return engines.stack_key(attrs["Name"], project)
    return attrs["Name"]


def project_networks(engine, project: str) -> dict[str, dict[str, Any]]:
    """Full inspect data of the project's networks, by compose key."""
    found = {}
    for network in engines.project_networks(engine, project):
        attrs = engine.api.inspect_network(network.id)
        found[network_key(attrs, project)] = attrs
    return found


def actual_user(container) -> str | None:
    """uid:gid of the container's main process, from the process table."""
    pid = str((container.attrs.get("State") or {}).get("Pid") or "")
    try:
        top = container.top(ps_args="-o pid,uid,gid")
    except Exception:  # noqa: BLE001 - a container that stopped meanwhile has no processes
        return None
    rows = top.get("Processes") or []
    for row in rows:
        if row and row[0] == pid:
            return f"{row[1]}:{row[2]}"
    return f"{rows[0][1]}:{rows[0][2]}" if rows else None


def _ports(settings: dict[str, Any], configured: dict[str, Any]) -> list[Port]:
    """Actual bindings, plus configured ones the engine could not bind (a container on internal networks
    only gets none): such a port is still asked for, and opens the day the container joins another network."""
    ports = []
    actual = settings.get("Ports") or {}
    for spec, bindings in sorted(actual.items()):
        if not bindings:
            continue
        target, _, protocol = spec.partition("/")
        for binding in bindings:
            ports.append(Port(int(target), binding.get("HostPort") or None, binding.get("HostIp") or None, protocol or "tcp"))
    for spec, bindings in sorted((configured or {}).items()):
        if actual.get(spec):
            continue
        target, _, protocol = spec.partition("/")
        for binding in bindings or []:
            ports.append(Port(int(target), binding.get("HostPort") or None, binding.get("HostIp") or None, protocol or "tcp"))
    # Docker reports 0.0.0.0 and :: separately for one binding: keep one per (host port, target).
    unique: dict[tuple, Port] = {}
    for port in ports:
        unique.setdefault((port.published, port.target, port.protocol, port.all_interfaces), port)
    return list(unique.values())


def _mounts(attrs: dict[str, Any], project: str) -> list[Mount]:
    mounts = []
    for m in attrs.get("Mounts") or []:
        kind = m.get("Type", "volume")
        if kind == "volume":
            name = m.get("Name") or ""
            source = name.removeprefix(f"{project}_") if name.startswith(f"{project}_") else name
        else:
            source = m.get("Source")
        mounts.append(Mount(kind, source, m.get("Destination", ""), read_only=not m.get("RW", True), propagation=m.get("Propagation") or None))
    return mounts


def _limit(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value > 0 else None


def service_from_container(container, project: str, network_keys: dict[str, str], host_cgroupns_default: bool = False) -> Service:
    """One container as a `Service`. `host_cgroupns_default`: on cgroup v1 engines every container
    shares the host's cgroup namespace unless told otherwise, which no compose file can be blamed for."""
    attrs = container.attrs
    config = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    name = engines.service_key(labels, project)
    mounts = _mounts(attrs, project)
    image = config.get("Image")
    role, role_from = infer_role(image, labels, None, mounts)
    env: dict[str, str | None] = {}
    for item in config.get("Env") or []:
        key, sep, value = item.partition("=")
        env[key] = value if sep else None
    health = config.get("Healthcheck")
    mode = host.get("NetworkMode") or ""
    nano = host.get("NanoCpus") or 0
    log = host.get("LogConfig") or {}
    return Service(
        name=name or attrs.get("Name", "").lstrip("/"),
        image=image,
        role=role,
        role_from=role_from,
        labels=dict(labels),
        user=actual_user(container) or config.get("User") or None,
        group_add=tuple(host.get("GroupAdd") or ()),
        privileged=bool(host.get("Privileged")),
        read_only=bool(host.get("ReadonlyRootfs")),
        cap_add=tuple(normalise_cap(c) for c in host.get("CapAdd") or ()),
        cap_drop=tuple(normalise_cap(c) for c in host.get("CapDrop") or ()),
        security_opt=tuple(host.get("SecurityOpt") or ()),
        network_mode=mode if mode in ("host", "none") or mode.startswith("container:") else None,
        networks=tuple(sorted(network_keys.get(n, n) for n in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}))),
        ports=_ports(attrs.get("NetworkSettings") or {}, host.get("PortBindings") or {}),
        mounts=[m for m in mounts],
        tmpfs=[Tmpfs(path, tuple(o for o in (opts or "").split(",") if o)) for path, opts in sorted((host.get("Tmpfs") or {}).items())],
        devices=[Device(d.get("PathOnHost", ""), d.get("PathInContainer", ""), d.get("CgroupPermissions", "rwm")) for d in host.get("Devices") or []],
        pid=host.get("PidMode") or None,
        ipc=host.get("IpcMode") if host.get("IpcMode") == "host" or str(host.get("IpcMode", "")).startswith("container:") else None,
        uts=host.get("UTSMode") or None,
        userns_mode=host.get("UsernsMode") or None,
        cgroup=host.get("CgroupnsMode") if host.get("CgroupnsMode") == "host" and not host_cgroupns_default else None,
        cgroup_parent=host.get("CgroupParent") or None,
        healthcheck=Healthcheck(tuple(health.get("Test") or ()), disabled=(health.get("Test") or [""])[0] == "NONE") if health else None,
        restart=((host.get("RestartPolicy") or {}).get("Name") or None),
        mem_limit=_limit(host.get("Memory")),
        cpus=nano / 1e9 if nano else None,
        pids_limit=_limit(host.get("PidsLimit")),
        logging=Logging(log.get("Type"), dict(log.get("Config") or {})) if log else None,
        environment=env,
    )


def observe(engine, project: str, declared: Topology | None = None) -> Topology:
    """The project's running containers, plus any other container attached to its networks."""
    networks = project_networks(engine, project)
    name_to_key = {attrs["Name"]: key for key, attrs in networks.items()}
    containers = {c.id: c for c in engines.project_containers(engine, project, all_=False)}
    for attrs in networks.values():
        for container_id in attrs.get("Containers") or {}:
            if container_id not in containers:
                try:
                    containers[container_id] = engine.containers.get(container_id)
                except Exception:  # noqa: BLE001 - gone meanwhile
                    continue
    topo = Topology(project=project, origin="engine", declared=declared)
    cgroup_v1 = str(engine.info().get("CgroupVersion", "1")) == "1"
    restarts = swarm_restart_policies(engine, project, containers.values())
    for key, attrs in networks.items():
        topo.networks[key] = Network(key, attrs["Name"], internal=bool(attrs.get("Internal")), driver=attrs.get("Driver"))
    for container in sorted(containers.values(), key=lambda c: c.name):
        labels = (container.attrs.get("Config") or {}).get("Labels") or {}
        if PROBE_LABEL in labels:
            continue
        service = service_from_container(container, project, name_to_key, host_cgroupns_default=cgroup_v1)
        if service.name in restarts:  # a swarm task: Swarm restarts it (its container has no policy of its own)
            service.restart = restarts[service.name]
        if service.name in topo.services:  # a scaled service: keep each container apart
            service.name = container.name
        for net in service.networks:
            if net not in topo.networks:
                attrs = engine.api.inspect_network(net)
                topo.networks[net] = Network(net, attrs["Name"], internal=bool(attrs.get("Internal")), driver=attrs.get("Driver"))
        topo.services[service.name] = service
    for svc in topo.services.values():
        for m in svc.mounts:
            if m.is_volume and m.source not in topo.volumes:
                topo.volumes[m.source] = Volume(m.source, m.source)
    if declared is not None:
        adopt_declared(topo, declared)
    return topo


# A swarm service's restart condition, in the compose words the loader gives a stack file's (composefile.to_topology).
_SWARM_RESTART = {"any": "always", "none": "no", "on-failure": "on-failure"}


def swarm_restart_policies(engine, project: str, containers) -> dict[str, str]:
    """{service key: restart policy} of the swarm stack's services, when `containers` holds its task containers:
    Swarm, not the container, restarts a task (its container's own policy is none)."""
    if not any(engines.swarm_service_key(c.attrs.get("Config", {}).get("Labels") or {}, project) for c in containers):
        return {}
    found = {}
    for service in engines.stack_services(engine, project):
        spec = service.attrs.get("Spec") or {}
        condition = ((spec.get("TaskTemplate") or {}).get("RestartPolicy") or {}).get("Condition") or "any"
        found[engines.stack_key(spec.get("Name") or service.name, project)] = _SWARM_RESTART.get(condition, condition)
    return found


def adopt_declared(observed: Topology, declared: Topology) -> None:
    """Positions and suppressions of the file carry over: findings point at the line to fix,
    and a suppression with a reason in the file holds for the running stack too."""
    observed.files = declared.files
    observed.suppressions = list(declared.suppressions)
    for name, svc in observed.services.items():
        source = declared.services.get(name)
        if source is None:
            continue
        svc.src, svc.fields = source.src, dict(source.fields)
        if source.image and "@" not in source.image and (svc.image or "").startswith(f"{source.image}@sha256:"):
            svc.image = source.image  # `docker stack deploy` pinned the digest the tag named at deploy time: the same image
        svc.suppressions = list(source.suppressions)
        svc.extensions = dict(source.extensions)
        # The file knows more than a running container shows (its build context, routing labels, the
        # user's x-stackgen): a role the file gave stands, unless the container itself says otherwise.
        if source.role_from == "x-stackgen" or (svc.role is Role.OTHER and source.role is not Role.OTHER):
            svc.role, svc.role_from = source.role, source.role_from
