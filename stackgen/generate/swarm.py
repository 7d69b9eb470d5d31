"""compose.swarm.yaml: the rendered compose document, transformed for `docker stack deploy`.

Why a transformation and not a second builder: compose.yaml is where the security model is decided (and
what `verify` judges); a stack file built apart from it would drift. `swarm_document` takes the compose
document as data and says, key by key, what Swarm keeps, what it needs said differently, and what it
cannot express at all (`SwarmStack.lost`, written into the file's header and docs/swarm.md). It reads
roles (`org.stackgen.role`), volumes and ports, never a service's name, so several Node-RED instances
transform like one.

What changes (measured against Docker Engine 20.10 and the docker CLI's stack loader, file format 3.9):
- networks become overlays, `internal: true` kept, each encrypted (IPsec between nodes) unless stack.yaml says
  `swarm: {encrypted_overlays: false}` (for nodes whose kernel has no IPsec ESP: there an encrypted overlay deploys
  without an error and carries nothing between nodes, measured); the bridge-only options
  (`com.docker.network.bridge.name`) go: an internal overlay has no gateway to the host at all.
- rendered configuration files (bind mounts in compose.yaml) become swarm `configs`, named by a hash of
  their content (swarm configs are immutable: a changed file is a new config, and the service update
  that follows replaces the task, as compose recreates a container whose inputs changed); file secrets
  become long-syntax `secrets` owned by the service's user, mode 0400.
- `mem_limit`/`cpus`/`pids_limit` become `deploy.resources.limits`; `restart` becomes
  `deploy.restart_policy`; `platform` becomes placement constraints on the node's OS and architecture.
- the edge publishes in `mode: host` (long syntax): the ingress routing mesh would replace every client's
  address with its own, and the editor gate and the login shield judge that address.
- a service holding a named volume (state is local to a node), a host bind mount, or a host-mode port is
  pinned by a node label; services sharing a volume (certbot and the edge share the key volume) share
  one label, so they land on one node.
- `tmpfs:` becomes tmpfs mounts; `group_add` of one group becomes the user's primary group; `build`,
  `container_name`, `depends_on`, `security_opt`, `restart` go (Swarm rejects or ignores them).
"""

from __future__ import annotations

import copy
import hashlib
import io
import posixpath
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.scalarstring import DoubleQuotedScalarString as Q

from stackgen.constants import ROLE_LABEL, UPSTREAM_LABEL
from stackgen.errors import StackgenError
from stackgen.generate.compose import _yaml
from stackgen.generate.files import RenderedFile
from stackgen.stackdir import SWARM_NAME
from stackgen.topology import Role, parse_role

SWARM_FILE = SWARM_NAME  # the name is the stack directory's fact (stackgen.stackdir): `up` deploys it
# The newest stack file format both the 20.10 CLI and current ones read (3.9 has `deploy.resources.limits.pids`).
STACK_FORMAT = "3.9"
# Node labels that pin stateful services: `<prefix>.<project>.<group>=true` (a group: services that share a volume).
PLACEMENT_PREFIX = "org.stackgen"
SECRET_MODE = 0o400  # a secret: its service's user alone
# Swarm names configs and secrets `<stack>_<key>`, at most 64 characters (swarmkit refuses longer ones).
SWARM_NAME_MAX = 64

# Swarm's node.platform.arch is the kernel's machine name (uname -m), not the image platform's.
_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "arm/v7": "armv7l", "arm/v6": "armv6l", "386": "i686",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
# Roles whose state lives where they run: pinned even without a named volume in the file.
_STATEFUL = (Role.NODE_RED, Role.CERTBOT, Role.DATABASE)
_RESTART = {"no": "none", "always": "any", "unless-stopped": "any", "on-failure": "on-failure"}
_SIZE = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
_UNIT = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Keys of a compose service that a stack file has no room for, and what replaces them (None: nothing).
_DROPPED = {
    "build": "Swarm deploys images only: build and push the image first (`stackgen build`)",
    "container_name": "Swarm names task containers itself",
    "pull_policy": "Swarm pulls on the node that runs a task (`docker stack deploy --resolve-image`)",
}
# Keys Swarm would reject (no translation here) or would run differently: refuse rather than deploy less than asked.
_REFUSED = {"privileged", "devices", "network_mode", "pid", "ipc", "userns_mode", "cgroup_parent", "links",
            "external_links", "volumes_from", "extends", "profiles"}


@dataclass
class Pin:
    """One node label and the services it pins (they share a volume, so they must share a node)."""

    label: str
    services: list[str]
    volumes: list[str]
    why: list[str] = field(default_factory=list)

    @property
    def constraint(self) -> str:
        return f"node.labels.{self.label} == true"


@dataclass
class SwarmStack:
    """The stack file as data, the node labels it needs, and what Swarm cannot express (per service)."""

    document: dict[str, Any]
    project: str
    pins: list[Pin] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    encrypted: bool = True  # the overlays (stack.yaml swarm.encrypted_overlays)


# Said in the header and, with encryption off, by `generate` as a warning: what turning it off means.
UNENCRYPTED = (
    "overlay encryption is OFF (stack.yaml swarm.encrypted_overlays: false): between nodes, everything on these "
    "networks (the edge to each Node-RED: passwords, session tokens, flows) crosses the network unencrypted as plain "
    "VXLAN (UDP 4789), readable and injectable by anyone on that path. Only where the network between the nodes is "
    "yours alone (a private link, a WireGuard tunnel); on one node nothing leaves the host"
)
# Why encryption can be turned off at all (docs/swarm.md, measured on kernel 6.18 without CONFIG_INET_ESP).
NO_ESP = (
    "a node whose kernel lacks IPsec ESP (CONFIG_INET_ESP) deploys encrypted overlays without any error, but they "
    "carry nothing between it and other nodes (the engine logs \"Failed Adding ... SA ... function not implemented\" "
    "and drops the traffic); such nodes need swarm.encrypted_overlays: false"
)


def swarm_document(compose: Mapping[str, Any], files: Iterable[RenderedFile], encrypted: bool = True) -> SwarmStack:
    """The stack file for `compose`, a compose document as compose.yaml holds it (loaded round-trip: quoting kept,
    `$$` still escaped, as both files are interpolated alike).

    `files`: files that bind mounts may name (path relative to the stack directory, such as `edge/Caddyfile`, or
    absolute); a bind of one of them becomes a swarm config with the file's content and mode. Any other bind stays a bind (and pins
    its service: the path must exist on that node). `encrypted`: the overlays' IPsec (stack.yaml
    `swarm.encrypted_overlays`). Pure: no I/O.
    """
    source = copy.deepcopy(dict(compose))
    project = str(source.get("name") or "stack")
    services: dict[str, Any] = source.get("services") or {}
    result = SwarmStack({}, project, encrypted=encrypted)
    if not encrypted:
        result.warnings.append(UNENCRYPTED)
    by_path = {_norm(f.path): f for f in files}
    configs: dict[str, Any] = {}
    pins = _pins(project, services, by_path)
    pin_of = {name: pin for pin in pins for name in pin.services}
    result.pins = pins

    out_services: dict[str, Any] = {}
    for name, service in services.items():
        out_services[name] = _service(name, service, by_path, configs, pin_of.get(name), result)

    document: dict[str, Any] = {"version": STACK_FORMAT}
    meta = dict(source.get("x-stackgen") or {})
    if meta:
        meta["target"] = "swarm"
        meta["placement"] = [{"label": pin.label, "services": pin.services} for pin in pins]
        document["x-stackgen"] = meta
    document["services"] = out_services
    document["networks"] = {key: _network(key, value or {}, result) for key, value in (source.get("networks") or {}).items()}
    if source.get("volumes"):
        document["volumes"] = source["volumes"]
    if source.get("secrets"):
        document["secrets"] = source["secrets"]
    if configs:
        document["configs"] = dict(sorted(configs.items()))
    for key in list(configs) + list(source.get("secrets") or {}):
        if len(project) + 1 + len(key) > SWARM_NAME_MAX:
            result.warnings.append(
                f"swarm names {key!r} `{project}_{key}` ({len(project) + 1 + len(key)} characters): swarm refuses names over "
                f"{SWARM_NAME_MAX}; deploy under a shorter stack name"
            )
    result.document = document
    return result


def _norm(path: str) -> str:
    return posixpath.normpath(path.removeprefix("./")) if not path.startswith("/") else posixpath.normpath(path)


def _pins(project: str, services: Mapping[str, Any], files: Mapping[str, Any]) -> list[Pin]:
    """Group services that share a named volume (union-find over volumes); a group with a volume, a stateful role,
    a host bind that stays one (not a rendered file) or a host-published port is pinned to the node carrying its
    label. The group is named after its first service."""
    parent: dict[str, str] = {name: name for name in services}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    roles = {name: parse_role((service.get("labels") or {}).get(ROLE_LABEL)) for name, service in services.items()}
    holders: dict[str, list[str]] = {}
    for name, service in services.items():
        for mount in service.get("volumes") or []:
            if isinstance(mount, dict) and mount.get("type") == "volume" and mount.get("source"):
                holders.setdefault(mount["source"], []).append(name)
    for names in holders.values():
        for other in names[1:]:
            parent[find(other)] = find(names[0])
    groups: dict[str, list[str]] = {}
    for name in services:
        groups.setdefault(find(name), []).append(name)
    pins = []
    for members in groups.values():
        volumes = sorted({v for v, names in holders.items() if set(names) & set(members)})
        why = []
        if volumes:
            why.append("volumes " + ", ".join(volumes))
        for name in members:
            service = services[name]
            if roles[name] in _STATEFUL and not volumes:
                why.append(f"role {roles[name].value}")
            binds = [str(m.get("source")) for m in service.get("volumes") or []
                     if isinstance(m, dict) and m.get("type") == "bind" and _norm(str(m.get("source", ""))) not in files]
            if binds:
                why.append(f"{name} host paths " + ", ".join(binds))
            if service.get("ports"):
                why.append(f"{name} published ports (DNS points at that node)")
        if why:
            pins.append(Pin(f"{PLACEMENT_PREFIX}.{project}.{members[0]}", members, volumes, why))
    return pins


def _service(name: str, service: dict[str, Any], files: Mapping[str, RenderedFile], configs: dict[str, Any],
             pin: Pin | None, result: SwarmStack) -> dict[str, Any]:
    refused = sorted(_REFUSED & set(service))
    if refused:
        raise StackgenError(f"{name}: {', '.join(refused)}: Swarm cannot run this service as compose.yaml says")
    if not service.get("image"):
        raise StackgenError(f"{name}: no image: Swarm deploys images only")
    role = parse_role((service.get("labels") or {}).get(ROLE_LABEL))
    out: dict[str, Any] = {}
    # dnsrr: the service name resolves to its one task's address. No virtual IP, so no IPVS (a kernel module some
    # kernels lack; the VIP answers "no route to host" without it) and no IPVS idle timeout on long-lived websockets;
    # a replaced task has a new address, which every edge re-resolves (NGINX every 10 s, Caddy and Traefik per dial).
    deploy: dict[str, Any] = {"mode": "replicated", "replicas": 1, "endpoint_mode": "dnsrr"}
    limits: dict[str, Any] = {}
    constraints: list[str] = []
    uid, gid = _ids(service.get("user"))
    for key, value in service.items():
        if key in _DROPPED:
            result.changed.append(f"{name}: {key} dropped ({_DROPPED[key]})")
        elif key == "platform":
            constraints += _platform_constraints(str(value))
        elif key == "mem_limit":
            limits["memory"] = str(value)
        elif key == "cpus":
            limits["cpus"] = Q(str(value))
        elif key == "pids_limit":
            limits["pids"] = int(value)
        elif key == "restart":
            deploy["restart_policy"] = _restart_policy(str(value))
            if value == "unless-stopped":
                result.changed.append(f"{name}: restart unless-stopped -> restart_policy any (stop a service with "
                                      "`docker service scale NAME=0`, not `docker stop`)")
        elif key == "security_opt":
            for option in value:
                result.lost.append(f"{name}: security_opt {option} (Swarm services take no security options: "
                                   "moby/moby#41371; this engine starts the task without it)")
        elif key == "tmpfs":
            out.setdefault("volumes", [])
            out["volumes"] += [_tmpfs(name, entry, result) for entry in ([value] if isinstance(value, str) else value)]
        elif key == "group_add":
            user = _group_as_primary(name, service.get("user"), value, result)
            if user is not None:
                out["user"] = user
                uid, gid = _ids(user)
        elif key == "depends_on":
            result.lost.append(f"{name}: depends_on {_depends(value)} (Swarm has no start order: {name} starts at once "
                               "and must retry until what it waits for answers)")
        elif key == "volumes":
            out.setdefault("volumes", [])
            out["volumes"] = [m for m in (_mount(name, m, files, configs, out, result) for m in value) if m] + out["volumes"]
        elif key == "secrets":
            out["secrets"] = [_secret(entry, uid, gid) for entry in value]
        elif key == "ports":
            out["ports"] = [_port(name, port, result) for port in value]
        elif key == "user" and "user" in out:
            continue  # set from group_add already
        else:
            out[key] = value
    if pin is not None:
        constraints.insert(0, pin.constraint)
    # Never two tasks of one service at once: two Node-RED on one volume corrupt it, two edges cannot bind one port.
    deploy["update_config"] = {"order": "stop-first", "failure_action": "rollback"}
    deploy["rollback_config"] = {"order": "stop-first"}
    if limits:
        deploy["resources"] = {"limits": limits}
    if constraints:
        deploy["placement"] = {"constraints": constraints}
    labels = service.get("labels") or {}
    service_labels = {key: labels[key] for key in (ROLE_LABEL, UPSTREAM_LABEL) if key in labels}
    if service_labels:
        deploy["labels"] = service_labels
    if role is Role.CERTBOT and "healthcheck" in service:
        result.changed.append(f"{name}: healthcheck kept, but Swarm replaces a task that turns unhealthy (compose only marks it): "
                              f"while no certificate exists, {name} is restarted about every "
                              f"{_seconds(service['healthcheck'].get('start_period', '0s')) // 60 or 1} min, its own backoff starting over")
    if role in _STATEFUL:
        # A guard against `docker service scale`: a second task has no node to go to (Node-RED's state lives in its
        # runtime and /data, certbot's in the key volume; with one labelled node, one task is all there is room for).
        deploy.setdefault("placement", {})["max_replicas_per_node"] = 1
    if "volumes" in out and not out["volumes"]:
        del out["volumes"]
    out["deploy"] = deploy
    # compose.yaml's key order (the order people read a service in), then what Swarm adds.
    return {key: out[key] for key in service if key in out} | {k: v for k, v in out.items() if k not in service}


def _ids(user: object) -> tuple[str, str]:
    """The uid and gid a service runs as (numeric `uid:gid`), for the owner of its secrets; root when unknown."""
    if isinstance(user, str):
        uid, _, gid = user.partition(":")
        if uid.isdigit():
            return uid, gid if gid.isdigit() else uid
    return "0", "0"


def _platform_constraints(platform: str) -> list[str]:
    os_name, _, arch = platform.partition("/")
    constraints = [f"node.platform.os == {os_name}"]
    if arch in _ARCH:
        constraints.append(f"node.platform.arch == {_ARCH[arch]}")
    return constraints


def _restart_policy(value: str) -> dict[str, Any]:
    kind, _, attempts = value.partition(":")
    if kind not in _RESTART:
        raise StackgenError(f"restart: {value!r}: not a compose restart policy")
    policy: dict[str, Any] = {"condition": _RESTART[kind], "delay": "5s"}
    if attempts.isdigit():
        policy["max_attempts"] = int(attempts)
    return policy


def _seconds(duration: object) -> int:
    """A compose duration (`300s`, `5m`, `1h30m`) in whole seconds."""
    total = 0
    for number, unit in re.findall(r"(\d+)(h|ms|m|s|us|ns)", str(duration)):
        total += int(number) * {"h": 3600, "m": 60, "s": 1}.get(unit, 0)
    return total


def _bytes(size: str) -> int:
    match = _SIZE.fullmatch(size.strip())
    if not match:
        raise StackgenError(f"tmpfs size {size!r}: not a size such as 64m")
    return int(match.group(1)) * _UNIT[match.group(2).lower()]


def _tmpfs(name: str, entry: str, result: SwarmStack) -> dict[str, Any]:
    target, _, options = entry.partition(":")
    mount: dict[str, Any] = {"type": "tmpfs", "target": target}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "size":
            mount["tmpfs"] = {"size": _bytes(value)}
        elif key == "mode" and int(value, 8) != 0o1777:
            result.lost.append(f"{name}: tmpfs {target} mode {value} (a stack file's tmpfs takes a size only: "
                               "the engine picks the mode)")
        elif key not in ("mode",):
            result.lost.append(f"{name}: tmpfs {target} option {option} (the stack loader has only size)")
    return mount


def _group_as_primary(name: str, user: object, groups: list[Any], result: SwarmStack) -> str | None:
    """A stack file has no `group_add`: one extra group becomes the primary group (what it grants is read access
    to that group's files; the service writes only to tmpfs and its own volumes)."""
    uid, gid = _ids(user)
    if len(groups) == 1 and isinstance(user, str) and str(groups[0]).isdigit():
        result.changed.append(f"{name}: group_add {groups[0]} -> user {uid}:{groups[0]} (a stack file has no group_add; "
                              f"the group that reads the key becomes the primary group instead of {gid})")
        return Q(f"{uid}:{groups[0]}")
    result.lost.append(f"{name}: group_add {', '.join(map(str, groups))} (a stack file has no group_add)")
    return None


def _depends(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} ({(v or {}).get('condition', 'service_started')})" for k, v in value.items())
    return ", ".join(map(str, value or []))


def _config_key(path: str, content: bytes) -> str:
    """`<file name>-<8 hex of sha256(path, content)>`: a new key when the content changes (configs are immutable)."""
    digest = hashlib.sha256(path.encode() + b"\0" + content).hexdigest()[:8]
    return f"{posixpath.basename(path)}-{digest}"


def _mount(name: str, mount: object, files: Mapping[str, RenderedFile], configs: dict[str, Any],
           out: dict[str, Any], result: SwarmStack) -> dict[str, Any] | None:
    if not isinstance(mount, dict):
        raise StackgenError(f"{name}: volumes: {mount!r}: stackgen writes long syntax; short syntax is not transformed")
    if mount.get("type") != "bind":
        return mount
    source = str(mount.get("source", ""))
    known = files.get(_norm(source))
    if known is None:
        result.changed.append(f"{name}: bind {source} -> {mount.get('target')} kept: the path must exist on the node "
                              "its label pins it to")
        return mount
    path = known.path
    key = _config_key(path, known.content)
    configs[key] = {"file": "./" + path if not path.startswith("/") else path}
    # Root-owned with the file's own mode, as the bind mount showed it: the mount is read-only whatever the mode
    # says, and a copy keeps it (the edge's entrypoint copies its configs and overwrites the copy on reload).
    out.setdefault("configs", []).append(
        {"source": key, "target": mount["target"], "uid": Q("0"), "gid": Q("0"), "mode": known.mode}
    )
    return None


def _secret(entry: object, uid: str, gid: str) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"source": entry, "target": entry, "uid": Q(uid), "gid": Q(gid), "mode": SECRET_MODE}
    assert isinstance(entry, dict)
    return {"uid": Q(uid), "gid": Q(gid), "mode": SECRET_MODE} | entry


def _port(name: str, port: object, result: SwarmStack) -> dict[str, Any]:
    if not isinstance(port, dict):
        raise StackgenError(f"{name}: ports: {port!r}: stackgen writes long syntax; short syntax is not transformed")
    host_ip = port.get("host_ip")
    if host_ip not in (None, "", "0.0.0.0", "::"):
        result.lost.append(f"{name}: ports host_ip {host_ip} (Swarm publishes on every interface of the node: "
                           f"port {port.get('published')} is reachable beyond {host_ip}; firewall it on the host)")
        result.warnings.append(f"ports.bind_address {host_ip}: Swarm cannot bind a published port to one address; "
                               f"compose.swarm.yaml publishes {port.get('published')} on every interface of the edge's node")
    out: dict[str, Any] = {"target": int(port["target"])}
    if port.get("published") not in (None, ""):
        out["published"] = int(str(port["published"]))
    out["protocol"] = port.get("protocol", "tcp")
    out["mode"] = "host"
    return out


def _network(key: str, network: Mapping[str, Any], result: SwarmStack) -> dict[str, Any]:
    out: dict[str, Any] = {"driver": "overlay"}
    if network.get("internal"):
        out["internal"] = True
    options = {k: v for k, v in (network.get("driver_opts") or {}).items() if not str(k).startswith("com.docker.network.bridge.")}
    for option in network.get("driver_opts") or {}:
        if str(option).startswith("com.docker.network.bridge."):
            result.changed.append(f"network {key}: {option} dropped (a bridge option; an overlay has no host bridge"
                                  + (", and an internal one no gateway to the host)" if network.get("internal") else ")"))
    options.pop("encrypted", None)  # the overlay driver encrypts when the option is present, whatever its value
    if result.encrypted:
        options["encrypted"] = Q("true")
    if options:
        out["driver_opts"] = options
    for extra in ("labels", "ipam", "name", "external"):
        if extra in network:
            out[extra] = network[extra]
    return out


# What Swarm cannot give, whatever the stack: written into every header and docs/swarm.md.
ALWAYS_LOST = (
    "volumes are local to a node: a pinned service runs only where its label is; if that node is gone, so is the "
    "service until the node (or a restore of its volumes elsewhere) is back",
    "no replicas for Node-RED: its state lives in its runtime and /data; `docker service scale` above 1 would run two "
    "writers on one volume",
    "configs and secrets are immutable: a changed rendered file is a new config (a new name), the old one stays until "
    "`docker config rm`; a secret's content changes only under a new name",
)


def header(stack: SwarmStack) -> str:
    lines = [
        "Generated by stackgen from stack.yaml for Docker Swarm: edit stack.yaml and run `stackgen generate` (with",
        "`--target swarm` unless stack.yaml says `target: swarm`).",
        "Derived from compose.yaml (same services, hardening, networks and volumes); docs/swarm.md explains each change.",
        "",
        "Before the first deploy, label the node(s) that hold the state:",
    ]
    for pin in stack.pins:
        lines.append(f"  docker node update --label-add {pin.label}=true NODE")
        lines.append(f"      ({', '.join(pin.services)}: {'; '.join(pin.why)})")
    lines += [
        "Deploy from this directory (relative paths are read here):",
        f"  docker stack deploy -c {SWARM_FILE} {stack.project}",
    ]
    if stack.encrypted:
        lines += [
            "Needs Docker Engine 20.10.24 or later (cap_add/cap_drop, pids; encrypted overlays without CVE-2023-28840..28842),",
            "Linux nodes with IPsec (ESP, IP protocol 50) and UDP 4789 allowed between them (encrypted overlay networks).",
            *_wrap(f"Mind: {NO_ESP}."),
        ]
    else:
        lines += [
            "Needs Docker Engine 20.10.24 or later (cap_add/cap_drop, pids), UDP 4789 allowed between the nodes.",
            *_wrap(f"WARNING: {UNENCRYPTED}."),
        ]
    lines += [
        "File modes below are decimal, as `docker stack config` prints them: 420 = 0644, 493 = 0755, 256 = 0400.",
        "",
        "What Swarm cannot express here (compose.yaml has it):",
    ]
    lines += [f"  - {item}" for item in stack.lost]
    lines += [f"  - {item}" for item in ALWAYS_LOST]
    lines += ["Said differently for Swarm:"]
    lines += [f"  - {item}" for item in stack.changed]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def _wrap(text: str, width: int = 114) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def load_compose(text: bytes) -> dict[str, Any]:
    """compose.yaml as written (round-trip: quoted strings stay quoted, `$$` stays escaped)."""
    yaml = _yaml()
    yaml.preserve_quotes = True
    return yaml.load(text.decode())


def dump_swarm(stack: SwarmStack) -> bytes:
    buffer = io.StringIO()
    buffer.write(header(stack))
    _yaml().dump(stack.document, buffer)
    return buffer.getvalue().encode()


def swarm_file(compose_yaml: bytes, files: Iterable[RenderedFile], encrypted: bool = True) -> tuple[RenderedFile, list[str]]:
    """`compose.swarm.yaml` for the rendered compose.yaml, and the warnings to show whoever generated it."""
    stack = swarm_document(load_compose(compose_yaml), files, encrypted)
    return RenderedFile(SWARM_FILE, dump_swarm(stack)), stack.warnings
