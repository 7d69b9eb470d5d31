"""The running stack, as the same `Topology` the compose loader builds.

Why: one set of rules must judge both the file and the engine's truth. Every
field comes from `docker inspect` of what actually runs (network attachments,
real read-only flags, actual published bindings), and the user comes from the
process table, not the configuration: an image whose entrypoint switches user
shows up as what it really is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """The project's running containers, plus any other container attached to its networks (and, on a swarm, each
    stack service whose running task is on another node, from its spec: `observe_stack`)."""
    return observe_stack(engine, project, declared)[0]


def observe_stack(engine, project: str, declared: Topology | None = None) -> tuple[Topology, dict[str, RemoteTask]]:
    """`observe`, and {service key: RemoteTask} for the swarm services judged from their spec (their task runs on
    another node: no container of theirs here to inspect)."""
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
    remote = remote_tasks(engine, project, set(topo.services), name_to_key)
    for key, task in remote.items():
        for net in task.service.networks:
            if net not in topo.networks:
                attrs = next((a for a in networks.values() if network_key(a, project) == net), None) or {"Name": net}
                topo.networks[net] = Network(net, attrs["Name"], internal=bool(attrs.get("Internal")), driver=attrs.get("Driver"))
        topo.services[key] = task.service
    for svc in topo.services.values():
        for m in svc.mounts:
            if m.is_volume and m.source not in topo.volumes:
                topo.volumes[m.source] = Volume(m.source, m.source)
    if declared is not None:
        adopt_declared(topo, declared)
    return topo, remote


# --- a swarm service whose task runs on another node ------------------------------------------------------


@dataclass
class RemoteTask:
    """A stack service's running task on another node: what the manager knows of it (the service spec, the task's
    status), never an inspected container. `service` is the `Service` built from the spec."""

    service: Service
    node_id: str
    node: str  # the node's host name (its id when the swarm does not say)
    task_id: str
    state: str
    container_id: str | None
    service_name: str  # the swarm service's full name (PROJECT_KEY)
    user: str | None  # the spec's user ("" or None: the image's)
    addresses: dict[str, str] = field(default_factory=dict)  # network name -> the task's address on it
    network_ids: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"its task {self.task_id[:12]} is {self.state} on node {self.node} (container "
                f"{(self.container_id or '?')[:12]})")


def remote_tasks(engine, project: str, local: set[str], name_to_key: dict[str, str]) -> dict[str, RemoteTask]:
    """{service key: RemoteTask} for each swarm stack service with no task container here whose current task runs on
    another node ({} for a compose project, or on an engine that is not a manager)."""
    services = engines.stack_services(engine, project)
    if not services:
        return {}
    here = engines.swarm_node_id(engine)
    names = None
    found = {}
    for swarm_service in services:
        spec = swarm_service.attrs.get("Spec") or {}
        key = engines.stack_key(spec.get("Name") or swarm_service.name, project)
        if key in local:
            continue
        task = engines.current_task(swarm_service)
        status = (task or {}).get("Status") or {}
        if task is None or status.get("State") != "running" or not task.get("NodeID") or task.get("NodeID") == here:
            continue  # not running (the drift rules say so), or here without a container: nothing to judge it from
        names = engines.node_names(engine) if names is None else names
        addresses, ids = {}, []
        for attachment in task.get("NetworksAttachments") or []:
            network = attachment.get("Network") or {}
            name = (network.get("Spec") or {}).get("Name") or network.get("ID", "")
            ids.append(network.get("ID", ""))
            for address in attachment.get("Addresses") or []:
                addresses[name] = address.split("/")[0]
                break
        service = service_from_spec(engine, swarm_service.attrs, project, name_to_key)
        user = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("User") or None
        found[key] = RemoteTask(service, task["NodeID"], names.get(task["NodeID"], task["NodeID"]), task.get("ID", ""),
                                status.get("State", ""), (status.get("ContainerStatus") or {}).get("ContainerID"),
                                spec.get("Name") or swarm_service.name, user, addresses, [i for i in ids if i])
    return found


def service_from_spec(engine, attrs: dict[str, Any], project: str, name_to_key: dict[str, str]) -> Service:
    """A swarm service as a `Service`, from its spec alone (its task's container is on another node)."""
    spec = attrs.get("Spec") or {}
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    limits = (template.get("Resources") or {}).get("Limits") or {}
    labels = {**(container.get("Labels") or {}), STACK_NAMESPACE_LABEL: project}
    name = engines.stack_key(spec.get("Name") or "", project)
    mounts, tmpfs = [], []
    for m in container.get("Mounts") or []:
        kind, target = m.get("Type", "volume"), m.get("Target", "")
        if kind == "tmpfs":
            mounts.append(Mount("tmpfs", "", target, read_only=bool(m.get("ReadOnly"))))
            continue
        source = m.get("Source") or ""
        if kind == "volume" and source.startswith(f"{project}_"):
            source = source.removeprefix(f"{project}_")
        mounts.append(Mount(kind, source, target, read_only=bool(m.get("ReadOnly"))))
    networks = []
    for attachment in template.get("Networks") or spec.get("Networks") or []:
        target = attachment.get("Target", "")
        try:
            network_name = engine.api.inspect_network(target)["Name"]
        except Exception:  # noqa: BLE001 - a network removed meanwhile: its id stands
            network_name = target
        networks.append(name_to_key.get(network_name) or engines.stack_key(network_name, project))
    ports = [Port(int(p.get("TargetPort") or 0), str(p["PublishedPort"]) if p.get("PublishedPort") else None, None,
                  p.get("Protocol") or "tcp") for p in (spec.get("EndpointSpec") or {}).get("Ports") or []]
    env: dict[str, str | None] = {}
    for item in container.get("Env") or []:
        key, sep, value = item.partition("=")
        env[key] = value if sep else None
    health = container.get("Healthcheck")
    log = template.get("LogDriver") or {}
    role, role_from = infer_role(container.get("Image"), labels, None, mounts)
    condition = (template.get("RestartPolicy") or {}).get("Condition") or "any"
    nano = limits.get("NanoCPUs") or 0
    return Service(
        name=name, image=container.get("Image"), role=role, role_from=role_from, labels=labels,
        user=container.get("User") or None, group_add=tuple(container.get("Groups") or ()),
        read_only=bool(container.get("ReadOnly")),
        cap_add=tuple(normalise_cap(c) for c in container.get("CapabilityAdd") or ()),
        cap_drop=tuple(normalise_cap(c) for c in container.get("CapabilityDrop") or ()),
        networks=tuple(sorted(networks)), ports=ports, mounts=mounts, tmpfs=tmpfs,
        healthcheck=Healthcheck(tuple(health.get("Test") or ()), disabled=(health.get("Test") or [""])[0] == "NONE") if health else None,
        restart=_SWARM_RESTART.get(condition, condition),
        mem_limit=_limit(limits.get("MemoryBytes")), cpus=nano / 1e9 if nano else None, pids_limit=_limit(limits.get("Pids")),
        logging=Logging(log.get("Name"), dict(log.get("Options") or {})) if log else None,
        environment=env,
    )


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
