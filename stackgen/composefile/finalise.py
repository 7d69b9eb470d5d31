"""The merged model made a project, as Compose does last: its name, the default network, undefined
networks and volumes (judged external, as missing context), unused ones dropped, `env_file` folded in."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from stackgen.composefile.env import note_missing_context, parse_dotenv
from stackgen.composefile.paths import _display
from stackgen.composefile.schema import _truthy
from stackgen.composefile.yaml_loader import ComposeError, PMap, pos_of
from stackgen.topology import Source

_PROJECT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def _finalise(model: PMap, project_dir: Path, env_name: str | None) -> None:
    name = env_name or model.get("name") or project_dir.name
    project = "".join(c for c in str(name).lower() if c in _PROJECT_CHARS).lstrip("_-") or "default"
    model["name"] = project
    services = model.setdefault("services", PMap(pos=model.pos))
    networks = model.get("networks")
    if not isinstance(networks, PMap):
        networks = model["networks"] = PMap(pos=model.pos)
    volumes = model.get("volumes")
    if not isinstance(volumes, PMap):
        volumes = model["volumes"] = PMap(pos=model.pos)
    for sname, svc in services.items():
        if "networks" in svc and "network_mode" in svc:
            raise ComposeError.at(
                pos_of(svc, "network_mode"), f"service {sname!r} declares both network_mode and networks"
            )
        if "networks" not in svc and "network_mode" not in svc:
            svc["networks"] = PMap({"default": None}, pos=svc.pos)
        for net in svc.get("networks") or {}:
            if net not in networks:
                if net == "default":
                    networks["default"] = PMap(pos=None)
                else:
                    where = pos_of(svc["networks"], net)
                    message = f"service {sname!r} refers to undefined network {net!r}"
                    if not note_missing_context(f"{message}: judged as an external network (defined elsewhere)", where):
                        raise ComposeError.at(where, message)
                    networks[net] = PMap({"external": True, "name": net}, pos=where)
        for idx, vol in enumerate(svc.get("volumes") or []):
            if vol.get("type") == "volume" and vol.get("source") and vol["source"] not in volumes:
                where = pos_of(svc["volumes"], idx)
                message = f"service {sname!r} refers to undefined volume {vol['source']!r}"
                if not note_missing_context(f"{message}: judged as an external volume (defined elsewhere)", where):
                    raise ComposeError.at(where, message)
                volumes[vol["source"]] = PMap({"external": True, "name": vol["source"]}, pos=where)
        _inline_env_files(svc)
    # Like Compose, keep only the networks and volumes some (active) service uses.
    used_nets = {n for svc in services.values() for n in (svc.get("networks") or {})}
    used_vols = {
        v.get("source") for svc in services.values() for v in (svc.get("volumes") or []) if v.get("type") == "volume"
    }
    for section, used in (("networks", used_nets), ("volumes", used_vols)):
        for key in [k for k in model[section] if k not in used]:
            del model[section][key]
    for section in ("networks", "volumes"):
        for key, spec in model[section].items():
            if spec is None:
                spec = model[section][key] = PMap(pos=None)
            external = spec.get("external")
            if isinstance(external, Mapping):  # legacy `external: {name: x}`
                spec["name"] = external.get("name", key)
                spec["external"] = True
            if not spec.get("name"):
                spec["name"] = key if _truthy(spec.get("external")) else f"{project}_{key}"


def _inline_env_files(svc: PMap) -> None:
    """Fold `env_file` contents into `environment` (explicit `environment` wins), as Compose does."""
    files = svc.get("env_file")
    if not files:
        return
    merged = PMap(pos=pos_of(svc, "env_file"))
    for entry in files:
        path = Path(entry["path"])
        if not os.path.lexists(path):
            continue  # missing: Compose refuses to start (if required); a static check reads on without it
        # present but a device, FIFO or symlink loop: a clear error (reading /dev/zero would never end)
        text = _env_file_text(path)
        values = parse_dotenv(text, None, _display(path))
        lines = _env_lines(text)
        for key, value in values.items():
            merged[key] = value
            merged.kpos[key] = Source(_display(path), lines.get(key, 1), 1)
    env = svc.get("environment")
    if isinstance(env, PMap):
        for key, value in env.items():
            merged[key] = value
            merged.kpos[key] = env.kpos.get(key, env.pos)
    svc["environment"] = merged


def _env_file_text(path: Path) -> str:
    """An env_file's text, bounded (`/dev/zero` or a FIFO as env_file is an error, not a hang)."""
    from stackgen.inputfile import InputFileError, read_text

    try:
        return read_text(path, lenient=True)
    except InputFileError as exc:
        raise ComposeError(f"env_file: {exc.message}", _display(path), exc.line, 1 if exc.line else None) from None


def _env_lines(text: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)", raw)
        if m and not raw.lstrip().startswith("#"):
            found.setdefault(m.group(1), lineno)
    return found

