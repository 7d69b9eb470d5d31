"""Short syntaxes rewritten to the long ones, as Compose does before merging: ports, volumes, networks,
secrets/configs, devices, depends_on, env_file, KEY=VALUE lists; each entry keeps its position."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from stackgen.composefile.paths import _abs_path, _is_path, _windows_path
from stackgen.composefile.schema import (
    _NAME_CHARS,
    DEFINITION_TYPES,
    DEVICE_TYPES,
    FILE_REF_TYPES,
    PORT_TYPES,
    SERVICE_KEYS,
    VOLUME_TYPES,
    _check_entry_types,
    _check_service_types,
    _expect,
)
from stackgen.composefile.yaml_loader import ComposeError, PList, PMap, Pos, pos_of


def _canonicalise_file(doc: PMap, base: Path, lookup: Callable[[str], str | None]) -> None:
    services = doc.get("services")
    if isinstance(services, PMap):
        for name in list(services):
            where = pos_of(services, name)
            if not name or not set(name) <= _NAME_CHARS:
                raise ComposeError.at(where, f"invalid service name {name!r}")
            svc = services[name]
            if not isinstance(svc, PMap):
                raise ComposeError.at(where, f"service {name!r} must be a mapping")
            services[name] = _canonical_service(name, svc, base, lookup)
    for section in ("networks", "volumes", "secrets", "configs"):
        defs = doc.get(section)
        if isinstance(defs, PMap):
            for name in list(defs):
                if defs[name] is None:
                    empty = PMap(pos=pos_of(defs, name))
                    defs[name] = empty
                elif not isinstance(defs[name], PMap):
                    raise ComposeError.at(pos_of(defs, name), f"{section}.{name} must be a mapping")
                _check_entry_types(defs[name], DEFINITION_TYPES, f"{section}.{name}")
                if section in ("secrets", "configs") and isinstance(defs[name].get("file"), str):
                    defs[name]["file"] = _abs_path(defs[name]["file"], base)


def _canonical_service(name: str, svc: PMap, base: Path, lookup: Callable[[str], str | None]) -> PMap:
    for key in svc:
        if key not in SERVICE_KEYS and not key.startswith("x-"):
            raise ComposeError.at(pos_of(svc, key), f"services.{name}: unknown key {key!r}")
    _check_service_types(name, svc)
    for key in list(svc):
        value = svc[key]
        where = pos_of(svc, key)
        if key in ("environment", "labels", "annotations", "sysctls"):
            svc[key] = _to_map(value, where, f"services.{name}.{key}", key != "sysctls")
        elif key == "build":
            if isinstance(value, str):
                svc[key] = PMap({"context": value}, pos=where)
        elif key == "networks":
            svc[key] = _networks(value, where, name)
        elif key == "ports":
            svc[key] = _ports(value, where, name)
        elif key == "volumes":
            svc[key] = _volumes(value, where, name, base)
        elif key in ("tmpfs", "dns", "dns_search", "env_file", "label_file"):
            if isinstance(value, str):
                lst = PList([value], pos=where)
                lst.ipos.append(where)
                svc[key] = lst
        elif key in ("secrets", "configs"):
            svc[key] = _file_refs(value, where, name, key)
        elif key == "devices":
            svc[key] = _devices(value, where, name)
        elif key == "healthcheck" and isinstance(value, PMap):
            test = value.get("test")
            if isinstance(test, str):
                value["test"] = PList(["CMD-SHELL", test], pos=pos_of(value, "test"))
        elif key == "depends_on":
            svc[key] = _depends_on(value, where, name)
        elif key == "extends" and isinstance(value, str):
            svc[key] = PMap({"service": value}, pos=where)
        elif key == "user" and isinstance(value, int):
            svc[key] = str(value)
    if "env_file" in svc:
        svc["env_file"] = _env_files(svc["env_file"], pos_of(svc, "env_file"), base)
    return svc


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_map(value: Any, where: Pos | None, what: str, keep_none: bool = True) -> PMap:
    """A list of `KEY=VALUE` (or a mapping) -> PMap of strings (None for a bare `KEY`)."""
    out = PMap(pos=getattr(value, "pos", where))
    if value is None:
        return out
    if isinstance(value, PMap):
        for key, item in value.items():
            if isinstance(item, (PMap, PList)):
                raise ComposeError.at(pos_of(value, key), f"{what}.{key} must be a string, number or boolean")
            out[key] = _scalar_text(item)
            out.kpos[key] = value.kpos.get(key, where)
        return out
    _expect(value, list, where, what)
    for idx, item in enumerate(value):
        ipos = pos_of(value, idx)
        if not isinstance(item, str):
            raise ComposeError.at(ipos, f"{what} entries must be KEY=VALUE strings")
        key, eq, val = item.partition("=")
        out[key] = val if eq else None
        out.kpos[key] = ipos
    return out


def _networks(value: Any, where: Pos | None, name: str) -> PMap:
    if isinstance(value, PMap):
        for key in value:
            if value[key] is not None and not isinstance(value[key], PMap):
                raise ComposeError.at(pos_of(value, key), f"services.{name}.networks.{key} must be a mapping or empty")
        return value
    _expect(value, list, where, f"services.{name}.networks")
    out = PMap(pos=value.pos)
    for idx, item in enumerate(value):
        if not isinstance(item, str):
            raise ComposeError.at(pos_of(value, idx), f"services.{name}.networks entries must be network names")
        out[item] = None
        out.kpos[item] = pos_of(value, idx)
    return out


def _new_list(like: Any, where: Pos | None) -> PList:
    return PList(pos=getattr(like, "pos", where))


def _ports(value: Any, where: Pos | None, name: str) -> PList:
    _expect(value, list, where, f"services.{name}.ports")
    out = _new_list(value, where)
    for idx, item in enumerate(value):
        ipos = pos_of(value, idx)
        if isinstance(item, PMap):
            _check_entry_types(item, PORT_TYPES, f"services.{name}.ports[{idx}]")
            port = PMap(pos=item.pos)
            for key, val in item.items():
                port[key] = val
                port.kpos[key] = item.kpos.get(key, ipos)
            if "target" in port:
                port["target"] = _int(port["target"], ipos, f"services.{name}.ports[{idx}].target")
            if port.get("published") is not None:
                port["published"] = _scalar_text(port["published"])
            port.setdefault("protocol", "tcp")
            port.setdefault("mode", "ingress")
            expanded = [port]
        elif isinstance(item, (str, int)):
            expanded = _short_port(str(item), ipos, name)
        else:
            raise ComposeError.at(ipos, f"services.{name}.ports entries must be strings or mappings")
        for port in expanded:
            out.append(port)
            out.ipos.append(ipos)
    return out


def _int(value: Any, where: Pos | None, what: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ComposeError.at(where, f"{what} must be a number, not {value!r}") from None


def _range(text: str, where: Pos | None) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    try:
        start = int(lo)
        end = int(hi) if dash else start
    except ValueError:
        raise ComposeError.at(where, f"invalid port {text!r}") from None
    if end < start:
        raise ComposeError.at(where, f"invalid port range {text!r}")
    return start, end


def _short_port(spec: str, where: Pos | None, name: str) -> list[PMap]:
    """`[host_ip:][published:]target[/protocol]`, with ranges, as Compose parses it."""
    body, _, protocol = spec.partition("/")
    protocol = protocol or "tcp"
    parts = body.split(":")
    if len(parts) == 1:
        host_ip, published, target = None, None, parts[0]
    elif len(parts) == 2:
        host_ip, published, target = None, parts[0], parts[1]
    else:
        host_ip, published, target = ":".join(parts[:-2]), parts[-2], parts[-1]
    if host_ip and host_ip.startswith("[") and host_ip.endswith("]"):
        host_ip = host_ip[1:-1]
    if not target:
        raise ComposeError.at(where, f"services.{name}.ports: invalid port {spec!r}")
    t_lo, t_hi = _range(target, where)
    ports: list[PMap] = []
    if published:
        p_lo, p_hi = _range(published, where)
        if t_hi - t_lo == p_hi - p_lo and t_hi != t_lo:
            pairs = [(str(p_lo + i), t_lo + i) for i in range(t_hi - t_lo + 1)]
        elif t_hi == t_lo:
            pairs = [(published, t_lo)]
        else:
            raise ComposeError.at(where, f"services.{name}.ports: ranges of different sizes in {spec!r}")
    else:
        pairs = [(None, t) for t in range(t_lo, t_hi + 1)]
    for pub, tgt in pairs:
        port = PMap(pos=where)
        port["mode"] = "ingress"
        if host_ip:
            port["host_ip"] = host_ip
        port["target"] = tgt
        if pub is not None:
            port["published"] = pub
        port["protocol"] = protocol
        ports.append(port)
    return ports


_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


def _split_volume(spec: str) -> list[str]:
    """Split `src:dst:mode` on colons, keeping a Windows drive (`C:\\x`) in one piece."""
    parts: list[str] = []
    rest = spec
    while rest:
        nxt = rest.find(":", 2) if _windows_path(rest) else rest.find(":")
        if nxt < 0:
            parts.append(rest)
            break
        parts.append(rest[:nxt])
        rest = rest[nxt + 1 :]
    return parts


def _volumes(value: Any, where: Pos | None, name: str, base: Path) -> PList:
    _expect(value, list, where, f"services.{name}.volumes")
    out = _new_list(value, where)
    for idx, item in enumerate(value):
        ipos = pos_of(value, idx)
        if isinstance(item, str):
            vol = _short_volume(item, ipos, name, base)
        elif isinstance(item, PMap):
            vol = item
            _check_entry_types(vol, VOLUME_TYPES, f"services.{name}.volumes[{idx}]")
            if "target" not in vol and vol.get("type") != "npipe":
                raise ComposeError.at(ipos, f"services.{name}.volumes[{idx}] needs a target")
            vol.setdefault("type", "volume")
            if vol.get("type") == "bind" and isinstance(vol.get("source"), str):
                vol["source"] = _abs_path(vol["source"], base)
        else:
            raise ComposeError.at(ipos, f"services.{name}.volumes entries must be strings or mappings")
        out.append(vol)
        out.ipos.append(ipos)
    return out


def _short_volume(spec: str, where: Pos | None, name: str, base: Path) -> PMap:
    parts = _split_volume(spec)
    vol = PMap(pos=where)
    if not spec.strip() or not parts:
        raise ComposeError.at(where, f"services.{name}.volumes: empty entry")
    if len(parts) == 1:
        vol["type"] = "volume"
        vol["target"] = parts[0]
        return vol
    if len(parts) > 3:
        raise ComposeError.at(where, f"services.{name}.volumes: invalid spec {spec!r} (too many colons)")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    if not source or not target:
        raise ComposeError.at(where, f"services.{name}.volumes: invalid spec {spec!r}")
    if _is_path(source):
        vol["type"] = "bind"
        vol["source"] = _abs_path(source, base)
    else:
        vol["type"] = "volume"
        vol["source"] = source
    vol["target"] = target
    bind = PMap(pos=where)
    for opt in options:
        if opt == "ro":
            vol["read_only"] = True
        elif opt in _PROPAGATION:
            bind["propagation"] = opt
        elif opt in ("z", "Z"):
            bind["selinux"] = opt
        elif opt == "nocopy":
            vol["volume"] = PMap({"nocopy": True}, pos=where)
        elif opt in ("rw", "consistent", "cached", "delegated", ""):
            continue
        else:
            raise ComposeError.at(where, f"services.{name}.volumes: unknown mode {opt!r} in {spec!r}")
    if bind:
        vol["bind"] = bind
    return vol


def _file_refs(value: Any, where: Pos | None, name: str, kind: str) -> PList:
    _expect(value, list, where, f"services.{name}.{kind}")
    out = _new_list(value, where)
    for idx, item in enumerate(value):
        ipos = pos_of(value, idx)
        if isinstance(item, str):
            ref = PMap({"source": item}, pos=ipos)
        elif isinstance(item, PMap) and isinstance(item.get("source"), str):
            _check_entry_types(item, FILE_REF_TYPES, f"services.{name}.{kind}[{idx}]")
            ref = item
        else:
            raise ComposeError.at(ipos, f"services.{name}.{kind} entries need a source")
        target = ref.get("target") or ref["source"]
        if kind == "secrets" and not str(target).startswith("/"):
            target = "/run/secrets/" + str(target)
        elif kind == "configs" and not str(target).startswith("/"):
            target = "/" + str(target)
        ref["target"] = target
        out.append(ref)
        out.ipos.append(ipos)
    return out


def _devices(value: Any, where: Pos | None, name: str) -> PList:
    _expect(value, list, where, f"services.{name}.devices")
    out = _new_list(value, where)
    for idx, item in enumerate(value):
        ipos = pos_of(value, idx)
        if isinstance(item, str):
            parts = item.split(":")
            dev = PMap(pos=ipos)
            dev["source"] = parts[0]
            dev["target"] = parts[1] if len(parts) > 1 and parts[1] else parts[0]
            dev["permissions"] = parts[2] if len(parts) > 2 else "rwm"
        elif isinstance(item, PMap) and "source" in item:
            _check_entry_types(item, DEVICE_TYPES, f"services.{name}.devices[{idx}]")
            dev = item
            dev.setdefault("target", item["source"])
            dev.setdefault("permissions", "rwm")
        else:
            raise ComposeError.at(ipos, f"services.{name}.devices entries must be strings or mappings with a source")
        out.append(dev)
        out.ipos.append(ipos)
    return out


def _depends_on(value: Any, where: Pos | None, name: str) -> PMap:
    if isinstance(value, PMap):
        return value
    _expect(value, list, where, f"services.{name}.depends_on")
    out = PMap(pos=value.pos)
    for idx, item in enumerate(value):
        out[str(item)] = PMap({"condition": "service_started", "required": True}, pos=pos_of(value, idx))
        out.kpos[str(item)] = pos_of(value, idx)
    return out


def _env_files(value: Any, where: Pos | None, base: Path) -> PList:
    _expect(value, list, where, "env_file")
    out = _new_list(value, where)
    for idx, item in enumerate(value):
        ipos = pos_of(value, idx)
        if isinstance(item, str):
            entry = PMap({"path": item, "required": True}, pos=ipos)
        elif isinstance(item, PMap) and "path" in item:
            entry = item
            entry.setdefault("required", True)
        else:
            raise ComposeError.at(ipos, "env_file entries must be paths or mappings with a path")
        entry["path"] = _abs_path(str(entry["path"]), base)
        out.append(entry)
        out.ipos.append(ipos)
    return out

