"""Compose's merge rules across files, `extends` and `include`: mappings merge, `command`/`entrypoint`/
`healthcheck.test` are replaced, `ports`/`volumes`/`secrets`/`configs` are unique by key, other sequences
append without duplicates; `!reset` and `!override` tags; then profiles select the services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stackgen.composefile.yaml_loader import PList, PMap

_REPLACED = {"command", "entrypoint"}


_UNIQUE_BY = {
    "ports": lambda p: (p.get("host_ip"), p.get("target"), p.get("published"), p.get("protocol", "tcp")),
    "volumes": lambda v: v.get("target"),
    "secrets": lambda s: s.get("target"),
    "configs": lambda s: s.get("target"),
    "devices": lambda d: d.get("target"),
    "env_file": lambda e: e.get("path"),
}


def _merge_top(base: PMap, over: PMap) -> PMap:
    out = _copy_map(base)
    for key, value in over.items():
        where = over.kpos.get(key, over.pos)
        if key == "services" and isinstance(value, PMap) and isinstance(out.get(key), PMap):
            services = _copy_map(out[key])
            for name, svc in value.items():
                if name in services:  # keep pointing at the first definition: where to add a key
                    merged = _merge_service(services[name], svc)
                    merged.pos = services[name].pos or svc.pos
                    services[name] = merged
                else:
                    services[name] = svc
                    services.kpos[name] = value.kpos.get(name, where)
            out[key] = services
        elif isinstance(value, PMap) and isinstance(out.get(key), PMap):
            out[key] = _merge_maps(out[key], value)
        else:
            out[key] = value
        out.kpos[key] = where
    return out


def _copy_map(src: PMap) -> PMap:
    out = PMap(src, pos=src.pos)
    out.kpos = dict(src.kpos)
    out.tags = dict(src.tags)
    return out


def _merge_maps(base: PMap, over: PMap, path: str = "") -> PMap:
    out = _copy_map(base)
    for key, value in over.items():
        tag = over.tags.get(key)
        where = over.kpos.get(key, over.pos)
        if tag == "reset":
            out.pop(key, None)
            out.kpos.pop(key, None)
            continue
        old = out.get(key)
        if tag == "override" or old is None:
            out[key] = value
        elif isinstance(old, PMap) and isinstance(value, PMap):
            out[key] = _merge_maps(old, value, f"{path}.{key}")
        elif isinstance(old, PList) and isinstance(value, PList):
            out[key] = _append_unique(old, value)
        else:
            out[key] = value
        out.kpos[key] = where
    return out


def _append_unique(base: PList, over: PList, key: Callable[[Any], Any] | None = None) -> PList:
    out = PList(pos=base.pos)
    index: dict[Any, int] = {}
    for items in (base, over):
        for idx, item in enumerate(items):
            ipos = items.ipos[idx] if idx < len(items.ipos) else items.pos
            ident = key(item) if key else _freeze(item)
            if ident in index:
                if key:  # unique resources: the later definition wins
                    out[index[ident]] = item
                    out.ipos[index[ident]] = ipos
                continue
            index[ident] = len(out)
            out.append(item)
            out.ipos.append(ipos)
    return out


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _merge_service(base: PMap, over: PMap) -> PMap:
    out = _copy_map(base)
    for key, value in over.items():
        tag = over.tags.get(key)
        where = over.kpos.get(key, over.pos)
        if tag == "reset":
            out.pop(key, None)
            out.kpos.pop(key, None)
            continue
        old = out.get(key)
        if tag == "override" or old is None or key in _REPLACED:
            out[key] = value
        elif key == "logging" and isinstance(old, PMap) and isinstance(value, PMap):
            if value.get("driver") and old.get("driver") and value["driver"] != old["driver"]:
                out[key] = value
            else:
                out[key] = _merge_maps(old, value)
        elif key == "healthcheck" and isinstance(old, PMap) and isinstance(value, PMap):
            merged = _merge_maps(old, value)
            if "test" in value:
                merged["test"] = value["test"]
            out[key] = merged
        elif key in _UNIQUE_BY and isinstance(old, PList) and isinstance(value, PList):
            out[key] = _append_unique(old, value, _UNIQUE_BY[key])
        elif isinstance(old, PMap) and isinstance(value, PMap):
            out[key] = _merge_maps(old, value)
        elif isinstance(old, PList) and isinstance(value, PList):
            out[key] = _append_unique(old, value)
        else:
            out[key] = value
        out.kpos[key] = where
    return out


def _apply_profiles(model: PMap, active: set[str]) -> None:
    services = model.get("services")
    if not isinstance(services, PMap):
        return
    for name in list(services):
        profiles = services[name].get("profiles")
        if profiles and "*" not in active and not (set(map(str, profiles)) & active):
            del services[name]
            services.kpos.pop(name, None)

