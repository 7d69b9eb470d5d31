"""What Compose's schema allows, checked before anything reads a value: the top-level and service keys,
the type of each key the loader and the rules read, the long syntax of list entries, and how Compose
reads a boolean. A wrong type is the user's error, with its line, never our traceback."""

from __future__ import annotations

from typing import Any

from stackgen.composefile.yaml_loader import ComposeError, PList, PMap, Pos, pos_of

TOP_KEYS = {"version", "name", "include", "services", "models", "networks", "volumes", "secrets", "configs", "jobs"}


# The service keys of the Compose specification (compose-spec.json, Compose v2.3x+).
SERVICE_KEYS = frozenset(
    """annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs
    container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares
    cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules devices dns dns_opt
    dns_search domainname entrypoint env_file environment expose extends external_links extra_hosts
    gpus group_add healthcheck hostname image init ipc isolation label_file labels links logging
    mac_address mem_limit mem_reservation mem_swappiness memswap_limit models network_mode networks
    oom_kill_disable oom_score_adj pid pids_limit platform ports post_start pre_start pre_stop
    privileged profiles provider pull_policy pull_refresh_after read_only restart runtime scale secrets
    security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty
    ulimits use_api_socket user userns_mode uts volumes volumes_from working_dir""".split()  # noqa: SIM905
)


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


_MAP_KEYS = ("environment", "labels", "annotations", "sysctls", "build_args")


_S, _N, _B, _L, _M, _NONE = str, (int, float), (bool, str), list, dict, type(None)


# What Compose's schema allows for the keys the loader and the rules read (scalars that Compose casts
# from strings accept strings). A wrong type is the user's error, with its line, never our traceback.
SERVICE_TYPES: dict[str, tuple[type, ...]] = {
    **{k: (_S,) for k in ("image", "container_name", "hostname", "domainname", "platform", "restart", "network_mode",
                          "ipc", "userns_mode", "cgroup_parent", "stop_signal", "stop_grace_period", "working_dir",
                          "mac_address", "runtime", "isolation", "pull_policy", "uts", "cgroup")},
    "pid": (_S, _NONE),
    "user": (_S, int),
    **{k: _B for k in ("read_only", "privileged", "init", "tty", "stdin_open", "oom_kill_disable")},
    **{k: (_L,) for k in ("cap_add", "cap_drop", "security_opt", "group_add", "dns_opt", "external_links", "links",
                          "profiles", "expose", "ports", "volumes", "volumes_from", "devices", "secrets", "configs")},
    **{k: (_S, _L, _NONE) for k in ("command", "entrypoint")},
    **{k: (_M,) for k in ("logging", "healthcheck", "ulimits", "blkio_config")},
    "deploy": (_M, _NONE),
    **{k: (_L, _M) for k in ("extra_hosts", "depends_on", "networks", "environment", "labels", "sysctls", "annotations")},
    **{k: (_S, _M) for k in ("build", "extends")},
    **{k: (_S, int) for k in ("mem_limit", "memswap_limit", "mem_reservation", "shm_size", "pids_limit", "cpu_shares")},
    "cpus": (_S, int, float),
    **{k: (_S, _L) for k in ("tmpfs", "dns", "dns_search", "env_file", "label_file")},
}


# Entries of these lists are strings (group_add: names or gids).
STRING_LISTS = {"cap_add": (_S,), "cap_drop": (_S,), "security_opt": (_S,), "group_add": (_S, int), "profiles": (_S,),
                "dns_opt": (_S,), "links": (_S,), "external_links": (_S,), "volumes_from": (_S,)}


NESTED_TYPES = {("logging", "driver"): (_S,), ("logging", "options"): (_M, _NONE), ("healthcheck", "test"): (_S, _L),
                ("healthcheck", "disable"): _B, ("build", "context"): (_S,), ("build", "dockerfile"): (_S,),
                ("extends", "service"): (_S,), ("extends", "file"): (_S,)}


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "a mapping", int: "a number", float: "a number",
             bool: "a boolean", type(None): "empty"}
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


# The long syntax of list entries (Compose's schema): checked before anything reads them, as for service keys.
VOLUME_TYPES = {"type": (_S,), "source": (_S,), "target": (_S,), "read_only": _B, "consistency": (_S,),
                "bind": (_M,), "volume": (_M,), "tmpfs": (_M,), "image": (_M,)}


PORT_TYPES = {"target": (_S, int), "published": (_S, int), "host_ip": (_S,), "protocol": (_S,), "mode": (_S,),
              "name": (_S,), "app_protocol": (_S,)}


FILE_REF_TYPES = {"source": (_S,), "target": (_S,), "uid": (_S, int), "gid": (_S, int), "mode": (_S, int)}


DEVICE_TYPES = {"source": (_S,), "target": (_S,), "permissions": (_S,)}


DEFINITION_TYPES = {"name": (_S,), "driver": (_S,), "internal": _B, "external": (bool, _S, _M), "attachable": _B,
                    "driver_opts": (_M, _NONE), "labels": (_M, _L, _NONE), "file": (_S,), "environment": (_S,),
                    "content": (_S,), "enable_ipv6": _B, "enable_ipv4": _B, "ipam": (_M,)}


def _check_entry_types(entry: PMap, kinds: dict[str, tuple[type, ...]], what: str) -> None:
    for key, allowed in kinds.items():
        if key not in entry:
            continue
        value = entry[key]
        ok = bool in allowed if isinstance(value, bool) else isinstance(value, allowed)
        if not ok:
            raise ComposeError.at(pos_of(entry, key), f"{what}.{key} must be {_kind_names(allowed)}, not {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_service_types(name: str, svc: PMap) -> None:
    """Compose's one-line type errors, with file:line, before anything reads the values."""
    for key, value in svc.items():
        kinds = SERVICE_TYPES.get(key)
        if kinds is None:
            continue
        ok = bool in kinds if isinstance(value, bool) else isinstance(value, kinds)  # bool is an int in Python
        if not ok:
            raise ComposeError.at(pos_of(svc, key), f"services.{name}.{key} must be {_kind_names(kinds)}, not {value!r}")
        if key in STRING_LISTS and isinstance(value, list):
            for idx, item in enumerate(value):
                if not isinstance(item, STRING_LISTS[key]) or isinstance(item, bool):
                    where = value.ipos[idx] if isinstance(value, PList) and idx < len(value.ipos) else pos_of(svc, key)
                    raise ComposeError.at(where, f"services.{name}.{key}[{idx}] must be {_kind_names(STRING_LISTS[key])}, not {item!r}")
        if isinstance(value, dict):
            for (outer, inner), inner_kinds in NESTED_TYPES.items():
                if outer == key and inner in value and not isinstance(value[inner], inner_kinds):
                    raise ComposeError.at(pos_of(value, inner), f"services.{name}.{key}.{inner} must be {_kind_names(inner_kinds)}, not {value[inner]!r}")


def _expect(value: Any, kind: type | tuple, where: Pos | None, what: str) -> None:
    if not isinstance(value, kind):
        names = {list: "a list", dict: "a mapping", str: "a string"}
        expected = " or ".join(names.get(k, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ComposeError.at(where, f"{what} must be {expected}")


_TRUE_WORDS = {"true", "yes", "y", "on", "1"}


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    return False

