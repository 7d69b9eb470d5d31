"""A canonical compose model (ours, or `docker compose config --format json`) -> `Topology`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stackgen.composefile.schema import _truthy
from stackgen.composefile.yaml_loader import ComposeError, PMap, pos_of
from stackgen.roles import assign_topology_roles, infer_role
from stackgen.topology import (
    Device,
    Healthcheck,
    Logging,
    Mount,
    Network,
    Port,
    Service,
    Source,
    Suppression,
    Tmpfs,
    Topology,
    Volume,
    normalise_cap,
)

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
}


def parse_bytes(value: Any) -> int | None:
    """`256m`, `1g`, `"268435456"`, 512 -> bytes; None for unset or unlimited (0, -1)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = int(value)
    else:
        text = str(value).strip().lower()
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
        unit = text[len(digits) :].strip()
        if unit not in _UNITS:
            return None
        try:
            number = int(float(digits) * _UNITS[unit])
        except ValueError:
            return None
    return number if number > 0 else None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _positive_int(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _src(container: Any, key: Any = None) -> Source | None:
    return pos_of(container, key)


def _str_map(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        out = {}
        for item in value:
            key, _, val = str(item).partition("=")
            out[key] = val
        return out
    return {}


def build_topology(model: Mapping[str, Any], files: Iterable[str] = ()) -> Topology:
    """A canonical compose model (ours, or `docker compose config` JSON) -> Topology."""
    topo = Topology(project=model.get("name"), files=tuple(files))
    for key, spec in (model.get("networks") or {}).items():
        spec = spec or {}
        topo.networks[key] = Network(
            key=key,
            name=str(spec.get("name") or key),
            internal=_truthy(spec.get("internal")),
            external=_truthy(spec.get("external")),
            driver=spec.get("driver"),
            src=_src(model.get("networks"), key),
        )
    for key, spec in (model.get("volumes") or {}).items():
        spec = spec or {}
        topo.volumes[key] = Volume(
            key=key,
            name=str(spec.get("name") or key),
            external=_truthy(spec.get("external")),
            driver=spec.get("driver"),
            driver_opts=_str_map(spec.get("driver_opts")),
            labels=_str_map(spec.get("labels")),
            src=_src(model.get("volumes"), key),
        )
    services = model.get("services") or {}
    for name, spec in services.items():
        topo.services[name] = _service(name, spec, _src(services, name))
    top_ext = model.get("x-stackgen")
    if isinstance(top_ext, Mapping):
        topo.suppressions = _suppressions(top_ext, "file", None, _src(model, "x-stackgen"))
    assign_topology_roles(topo)
    return topo


def _service(name: str, spec: Mapping[str, Any], where: Source | None) -> Service:
    svc = Service(name=name, src=where)
    if isinstance(spec, PMap):
        svc.fields = dict(spec.kpos)
    svc.image = spec.get("image")
    svc.build = bool(spec.get("build"))
    svc.labels = _str_map(spec.get("labels"))
    user = spec.get("user")
    svc.user = None if user in (None, "") else str(user)
    svc.group_add = tuple(str(g) for g in spec.get("group_add") or ())
    svc.privileged = _truthy(spec.get("privileged"))
    svc.read_only = _truthy(spec.get("read_only"))
    svc.cap_add = tuple(normalise_cap(c) for c in spec.get("cap_add") or ())
    svc.cap_drop = tuple(normalise_cap(c) for c in spec.get("cap_drop") or ())
    svc.security_opt = tuple(str(o) for o in spec.get("security_opt") or ())
    svc.network_mode = spec.get("network_mode")
    nets = spec.get("networks") or {}
    svc.networks = tuple(nets) if isinstance(nets, Mapping) else tuple(str(n) for n in nets)
    for key in ("pid", "ipc", "uts", "userns_mode", "cgroup", "cgroup_parent"):
        value = spec.get(key)
        setattr(svc, key, None if value in (None, "") else str(value))
    svc.use_api_socket = _truthy(spec.get("use_api_socket"))

    ports = spec.get("ports") or []
    for idx, p in enumerate(ports):
        published = p.get("published")
        svc.ports.append(
            Port(
                target=_positive_int(p.get("target")),
                published=None if published in (None, "") else str(published),
                host_ip=p.get("host_ip") or None,
                protocol=str(p.get("protocol") or "tcp"),
                src=_src(ports, idx),
            )
        )
    volumes = spec.get("volumes") or []
    for idx, v in enumerate(volumes):
        kind = str(v.get("type") or "volume")
        if kind == "tmpfs":
            svc.tmpfs.append(Tmpfs(target=str(v.get("target")), options=(), src=_src(volumes, idx)))
        bind = v.get("bind") or {}
        svc.mounts.append(
            Mount(
                type=kind,
                source=v.get("source"),
                target=str(v.get("target") or ""),
                read_only=_truthy(v.get("read_only")),
                propagation=bind.get("propagation") if isinstance(bind, Mapping) else None,
                src=_src(volumes, idx),
            )
        )
    tmpfs = spec.get("tmpfs") or []
    for idx, entry in enumerate([tmpfs] if isinstance(tmpfs, str) else tmpfs):
        target, _, opts = str(entry).partition(":")
        svc.tmpfs.append(Tmpfs(target=target, options=tuple(o for o in opts.split(",") if o), src=_src(tmpfs, idx)))
    devices = spec.get("devices") or []
    for idx, d in enumerate(devices):
        if isinstance(d, str):
            parts = d.split(":")
            d = {"source": parts[0], "target": parts[1] if len(parts) > 1 else parts[0]}
        svc.devices.append(
            Device(
                source=str(d.get("source")),
                target=str(d.get("target") or d.get("source")),
                permissions=str(d.get("permissions") or "rwm"),
                src=_src(devices, idx),
            )
        )
    hc = spec.get("healthcheck")
    if isinstance(hc, Mapping):
        test = hc.get("test") or ()
        test = ("CMD-SHELL", test) if isinstance(test, str) else tuple(str(t) for t in test)
        svc.healthcheck = Healthcheck(
            test=test, disabled=_truthy(hc.get("disable")) or test[:1] == ("NONE",), src=_src(spec, "healthcheck")
        )
    deploy = spec.get("deploy") or {}
    limits = ((deploy.get("resources") or {}).get("limits") or {}) if isinstance(deploy, Mapping) else {}
    svc.restart = spec.get("restart")
    policy = deploy.get("restart_policy") if isinstance(deploy, Mapping) else None
    if svc.restart is None and isinstance(policy, Mapping) and policy.get("condition"):
        svc.restart = {"any": "always", "none": "no"}.get(policy["condition"], str(policy["condition"]))
    svc.mem_limit = parse_bytes(spec.get("mem_limit")) or parse_bytes(limits.get("memory"))
    svc.cpus = _float(spec.get("cpus")) or _float(limits.get("cpus"))
    if svc.cpus is None and _positive_int(spec.get("cpu_quota")):
        svc.cpus = _positive_int(spec.get("cpu_quota")) / (_positive_int(spec.get("cpu_period")) or 100000)
    svc.pids_limit = _positive_int(spec.get("pids_limit")) or _positive_int(limits.get("pids"))
    logging = spec.get("logging")
    if isinstance(logging, Mapping):
        svc.logging = Logging(
            driver=logging.get("driver"), options=_str_map(logging.get("options")), src=_src(spec, "logging")
        )
    svc.secrets = tuple(
        (str(s.get("source")), str(s.get("target") or f"/run/secrets/{s.get('source')}"))
        for s in spec.get("secrets") or ()
        if isinstance(s, Mapping)
    )
    env = spec.get("environment") or {}
    if isinstance(env, Mapping):
        svc.environment = {str(k): None if v is None else str(v) for k, v in env.items()}
        if isinstance(env, PMap):
            svc.env_src = dict(env.kpos)
    svc.extensions = {k: v for k, v in spec.items() if isinstance(k, str) and k.startswith("x-")}
    ext = spec.get("x-stackgen")
    declared_role = None
    if isinstance(ext, Mapping):
        declared_role = ext.get("role")
        svc.suppressions = _suppressions(ext, "service", name, _src(spec, "x-stackgen"))
    build = spec.get("build")
    build_hint = " ".join(str(build.get(k) or "") for k in ("context", "dockerfile")) if isinstance(build, Mapping) else None
    command = " ".join(str(part) for key in ("entrypoint", "command") for part in _as_list(spec.get(key)))
    targets = [p.target for p in svc.ports if p.target] + [_int_or_none(e) for e in _as_list(spec.get("expose"))]
    svc.role, svc.role_from = infer_role(svc.image, svc.labels, declared_role, svc.mounts, name=name, build=build_hint,
                                         command=command or None, ports=[t for t in targets if t])
    return svc


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).split("/", 1)[0].split("-", 1)[0])
    except ValueError:
        return None


def _suppressions(ext: Mapping[str, Any], scope: str, service: str | None, where: Source | None) -> list[Suppression]:
    entries = ext.get("ignore")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ComposeError.at(pos_of(ext, "ignore") or where, "x-stackgen.ignore must be a list of {rule, reason}")
    found = []
    for idx, entry in enumerate(entries):
        ipos = pos_of(entries, idx) or where
        if not isinstance(entry, Mapping) or not entry.get("rule"):
            raise ComposeError.at(ipos, "each x-stackgen.ignore entry needs `rule:` and `reason:`")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ComposeError.at(ipos, f"suppressing {entry['rule']} needs a `reason:` (say why it is safe here)")
        target = entry.get("service") if scope == "file" else service
        found.append(Suppression(str(entry["rule"]).strip(), reason.strip(), scope, target, ipos))
    return found


def from_compose_json(data: Mapping[str, Any], files: Iterable[str] = ()) -> Topology:
    """`docker compose config --format json` output -> Topology (its `$$` escapes undone)."""
    return build_topology(_unescape(data), files)


def _unescape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, Mapping):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value

