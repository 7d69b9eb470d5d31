"""Files that are not quite compose files: a bare service body, a Compose v1 file (judged as what they
stand for, the missing `services:` reported as SG043), and the top-level check that refuses the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stackgen.composefile.env import note_missing_context
from stackgen.composefile.paths import _display
from stackgen.composefile.schema import _NAME_CHARS, SERVICE_KEYS, TOP_KEYS
from stackgen.composefile.yaml_loader import ComposeError, PMap, pos_of
from stackgen.topology import Source

# Service keys of the Compose v1 file format that the specification dropped, and what they became.
V1_KEYS = {"net": "network_mode", "log_driver": "logging.driver", "log_opt": "logging.options",
           "dockerfile": "build.dockerfile", "volume_driver": None}


def _service_body(value: Any) -> bool:
    """A mapping that reads as one service: it has an image or a build, and only service keys."""
    return (isinstance(value, PMap) and ("image" in value or "build" in value)
            and all(isinstance(k, str) and (k in SERVICE_KEYS or k in V1_KEYS or k.startswith("x-")) for k in value))


def _fragment_as_compose(doc: Any, path: Path) -> Any:
    """A file without `services:` that is one service's body (`image:`, `ports:` ... at the top), or a Compose
    v1 file (service names at the top): the compose file it stands for, the missing `services:` reported as
    missing context (SG043). Anything else, or when loading strictly, is returned as it is (and refused)."""
    if not isinstance(doc, PMap) or "services" in doc or not doc:
        return doc
    where = doc.pos or Source(_display(path), 1, 1)
    names = [k for k in doc if not (isinstance(k, str) and k.startswith("x-"))]
    if _service_body(doc):
        stem = path.name.split(".")[0].removeprefix("docker-").lower()
        container = doc.get("container_name")
        name = str(container) if isinstance(container, str) and container and set(container) <= _NAME_CHARS else stem
        name = "".join(c for c in name if c in _NAME_CHARS).strip("._-") or "service"
        bodies, extensions = {name: doc}, {}
        message = f"no `services:` section: judged as the body of one service, {name!r} (a bare service fragment)"
    elif names and all(k not in TOP_KEYS and set(k) <= _NAME_CHARS and _service_body(doc[k]) for k in names):
        bodies = {k: doc[k] for k in names}
        extensions = {k: doc[k] for k in doc if k not in bodies}
        message = f"no `services:` section: judged as a Compose v1 file of {len(bodies)} service(s), {', '.join(sorted(bodies))}"
    else:
        return doc
    converted = sorted({key for body in bodies.values() for key in body if key in V1_KEYS})
    if converted:
        readings = ", ".join(f"{k} -> {V1_KEYS[k] or 'ignored'}" for k in converted)
        message += f" (v1 keys read as today's: {readings})"
    if not note_missing_context(message + "; Compose needs the services under `services:`", where):
        return doc
    services = PMap(pos=where)
    for name, body in bodies.items():
        services[name] = _from_v1(body)
        services.kpos[name] = pos_of(doc, name) if name in doc else where
    out = PMap(pos=where)
    for key, value in extensions.items():
        out[key] = value
        out.kpos[key] = pos_of(doc, key)
    out["services"] = services
    out.kpos["services"] = where
    return out


def _from_v1(body: PMap) -> PMap:
    """Compose v1's service keys rewritten to the specification's (in place)."""
    if "net" in body:
        body["network_mode"] = body.pop("net")
        body.kpos["network_mode"] = pos_of(body, "net")
    if "log_driver" in body or "log_opt" in body:
        where = pos_of(body, "log_driver" if "log_driver" in body else "log_opt")
        logging = PMap(pos=where)
        for old, new in (("log_driver", "driver"), ("log_opt", "options")):
            if old in body:
                logging[new] = body.pop(old)
                logging.kpos[new] = pos_of(body, old)
        body["logging"] = logging
        body.kpos["logging"] = where
    if "dockerfile" in body:
        where = pos_of(body, "dockerfile")
        build = body.get("build")
        context = build if isinstance(build, str) else "."
        body["build"] = PMap({"context": context, "dockerfile": body.pop("dockerfile")}, pos=where)
        body.kpos.setdefault("build", where)
    body.pop("volume_driver", None)
    return body


def _check_top(doc: Any, display: str) -> None:
    if not isinstance(doc, PMap):
        where = getattr(doc, "pos", None) or Source(display, 1, 1)
        raise ComposeError.at(
            where, "not a compose file: expected a mapping (services:, networks:, ...) at the top level"
        )
    if "services" not in doc and {"project", "domains", "node_red"} & set(doc):
        raise ComposeError.at(doc.pos or Source(display, 1, 1), "not a compose file: this is a stackgen stack.yaml "
                              "(`stackgen generate DIR` renders its compose.yaml, which `stackgen verify` judges)")
    for key in doc:
        if key not in TOP_KEYS and not key.startswith("x-"):
            raise ComposeError.at(pos_of(doc, key), f"not a compose file: unknown top-level key {key!r}")
    services = doc.get("services")
    if "services" in doc and not isinstance(services, PMap):
        raise ComposeError.at(pos_of(doc, "services"), "`services` must be a mapping of service names to services"
                              + (" (it is empty)" if services is None else ""))
    for section in ("networks", "volumes", "secrets", "configs"):
        value = doc.get(section)
        if value is not None and not isinstance(value, PMap):
            raise ComposeError.at(pos_of(doc, section), f"`{section}` must be a mapping")

