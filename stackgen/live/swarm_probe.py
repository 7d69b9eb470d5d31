"""Probes on a swarm stack's overlay networks: a one-task service, because no container may join those networks.

Why: compose.swarm.yaml never makes an overlay `attachable` (any container on a manager could then join the internal
network next to Node-RED), so the engine refuses a container on it ("not manually attachable"); a service may be put
on any overlay. `verify --live` gives the probes `OverlayProbes(engine, project)` instead of the bare client: the
same client, except that a container created on such a network (`containers.create(..., network=NAME)`, which is
how the matrix's probe containers are made) is a `ServiceProbe` that runs the same command as a service task. The
probe code is the same for a compose project and a swarm stack, and it never learns the difference.

A probe service keeps the container's hardening where Swarm has it (the user, read-only root, no capabilities, the
memory limit, the probe label on the service and its container; Swarm takes no security options, so no
no-new-privileges: the probe is nobody without capabilities either way), runs the stack's own image by id (no node
pulls anything), is placed on this node (its output is read from its container here), never restarts, and is removed
with its container (Swarm removes a task's anonymous volumes with it). `observe` skips it by its label.

A task on another node (`observe.RemoteTask`) is probed from its own node too: `on_node(node id)` places the probes on
that node (`node.id==…`; their output is read through the manager's service logs), and `twin` stands in for the
task's container (no exec reaches it from here): a probe service on all of its networks, on its node.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from stackgen.constants import SWARM_SERVICE_LABEL

__all__ = ["OverlayProbes", "ServiceProbe", "is_overlay_only", "is_task"]

_DONE = ("complete", "failed", "rejected", "shutdown", "orphaned", "remove")
_UNIT = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def is_overlay_only(attrs: dict[str, Any]) -> bool:
    """A swarm-scoped network a container cannot join (not attachable): only a service reaches a vantage on it."""
    return attrs.get("Scope") == "swarm" and not attrs.get("Attachable")


def is_task(container: Any) -> bool:
    """A swarm task's container (the engine labels it with its service): it reaches the host, and its host-mode
    published ports reach it, through its endpoint on docker_gwbridge."""
    labels = ((getattr(container, "attrs", None) or {}).get("Config") or {}).get("Labels") or {}
    return SWARM_SERVICE_LABEL in labels


def _bytes(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower()
    unit = text[-1] if text[-1:] in _UNIT else ""
    return int(float(text[: len(text) - len(unit)]) * _UNIT[unit])


class ServiceProbe:
    """What `containers.create` returns for a probe on an overlay: start, wait, logs and remove, done by a service."""

    def __init__(self, engine, project: str, image: str, network: dict[str, Any], entrypoint: list[str] | None,
                 args: list[str] | None, options: dict[str, Any], poll: float = 0.2, node: str | None = None,
                 networks: list[dict[str, Any]] | None = None) -> None:
        self.engine, self.project, self.image, self.network = engine, project, image, network
        self.entrypoint, self.args, self.options, self.poll = entrypoint, args, options, poll
        self.node = node  # the node it is placed on (None: this one)
        self.networks = networks or [network]  # a twin of a task on another node: every network of that task
        self.service = None
        self.task: dict[str, Any] = {}

    def start(self) -> None:
        here = ((self.engine.info() or {}).get("Swarm") or {}).get("NodeID")
        node = self.node or here
        labels = dict(self.options.get("labels") or {})
        memory = _bytes(self.options.get("mem_limit"))
        self.service = self.engine.services.create(
            self.image,
            command=list(self.entrypoint) if self.entrypoint else None,
            args=list(self.args or []),
            name=f"stackgen-probe-{self.project}-{secrets.token_hex(3)}"[:63],
            labels=labels,
            container_labels=labels,
            networks=[n["Id"] for n in self.networks],
            user=self.options.get("user"),
            read_only=bool(self.options.get("read_only")),
            cap_drop=list(self.options.get("cap_drop") or []) or None,
            resources={"Limits": {"MemoryBytes": memory}} if memory else None,
            restart_policy={"Condition": "none", "MaxAttempts": 0},
            constraints=[f"node.id=={node}"] if node else [],
            endpoint_spec={"Mode": "dnsrr"},
        )

    def wait(self, timeout: float = 60.0) -> dict[str, Any]:
        """Until the task is done; `{"StatusCode": exit code}` as the engine's wait answers. A task that never ran raises."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.service.tasks()
            self.task = found[0] if found else {}
            if ((self.task.get("Status") or {}).get("State")) in _DONE:
                break
            time.sleep(self.poll)
        status = self.task.get("Status") or {}
        container = (status.get("ContainerStatus") or {})
        if status.get("State") not in ("complete", "failed") or not container.get("ContainerID"):
            said = status.get("Err") or status.get("Message") or status.get("State") or "not scheduled"
            raise RuntimeError(f"probe service on {self.network.get('Name')}: {said}")
        return {"StatusCode": container.get("ExitCode") or 0}

    def logs(self, stdout: bool = True, stderr: bool = True) -> bytes:
        """Its container's output: read here when it ran here, else through the manager (service logs gather every
        node's; they may trail the task's end by a moment, so an empty answer is asked again)."""
        container_id = ((self.task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        if self.node is None:
            return self.engine.containers.get(container_id).logs(stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + 10
        while True:
            output = b"".join(self.service.logs(stdout=stdout, stderr=stderr))
            if output.strip() or time.monotonic() > deadline:
                return output
            time.sleep(self.poll)

    def remove(self, force: bool = False, v: bool = False) -> None:
        if self.service is not None:
            self.service.remove()


class _Containers:
    def __init__(self, engine, project: str, node: str | None = None) -> None:
        self._engine, self._project, self._node = engine, project, node

    def __getattr__(self, name: str):
        return getattr(self._engine.containers, name)

    def create(self, image: str, command=None, **kwargs: Any):
        network = kwargs.get("network")
        if network:
            try:
                attrs = self._engine.api.inspect_network(network)
            except Exception:  # noqa: BLE001 - the engine will say what is wrong with it
                attrs = {}
            if is_overlay_only(attrs) or (self._node is not None and attrs.get("Scope") == "swarm"):
                entrypoint = kwargs.get("entrypoint")
                entrypoint = [entrypoint] if isinstance(entrypoint, str) else entrypoint
                args = [command] if isinstance(command, str) else command
                return ServiceProbe(self._engine, self._project, image, attrs, entrypoint, args, kwargs, node=self._node)
        if self._node is not None:
            raise RuntimeError(f"a probe on node {self._node} runs on a swarm overlay only, not on {network or 'no network'}")
        return self._engine.containers.create(image, command, **kwargs)


class OverlayProbes:
    """The engine client, except that a container created on a swarm overlay no container may join is a `ServiceProbe`."""

    def __init__(self, engine, project: str, node: str | None = None) -> None:
        self._engine, self._project = engine, project
        self.containers = _Containers(engine, project, node)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def on_node(self, node: str) -> OverlayProbes:
        """The same client, whose probes on the stack's overlays are services placed on `node` (`node.id==`): the
        vantage of a task that runs there, across the overlay from this node."""
        return OverlayProbes(self._engine, self._project, node)

    def twin(self, image: str, network_ids: list[str], node: str, entrypoint: list[str], args: list[str],
             options: dict[str, Any]) -> ServiceProbe:
        """A probe service on every network of a task on another node, placed on that node: what that task's own network
        namespace sees (its addresses aside), where this node cannot exec into its container."""
        networks = [self._engine.api.inspect_network(i) for i in network_ids]
        return ServiceProbe(self._engine, self._project, image, networks[0], entrypoint, args, options, node=node, networks=networks)
