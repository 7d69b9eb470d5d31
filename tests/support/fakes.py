"""The outside world, faked once for the unit tests: a Docker engine and an image registry.

`FakeEngine` is just enough of `docker.DockerClient` for stackgen's engine code: containers listed
with the engine's own filters (labels, `all`, volume), looked up by id or name (`NotFound`
otherwise), exec'd into, restarted, created as never-started helpers that reach a volume through
the archive API; images by name (`ImageNotFound`); volumes with labels and contents; the event
stream (filtered as the engine filters it) and past events (`api.events(until=...)`); an engine
that can go down and come back. Tests seed it and read what it recorded; one fake, so what the
engine answers is written down once (six hand-written ones had drifted apart).

The compose labels are spelled out here, not imported from stackgen: a fake that shares the code's
constants would agree with a wrong one.

`FakeRegistry` is a transport for `stackgen.images.registry.Registry` that answers like a registry.
"""

from __future__ import annotations

import io
import json
import queue
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from stackgen.images.registry import DOCKER_MANIFEST, Response, sha256_digest

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
STACK_LABEL = "com.docker.stack.namespace"  # a swarm stack's things (the docker CLI's label)
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"  # a task container's service (`STACK_SERVICE`)

#: An exec handler: the command in, (exit code, stdout, stderr) out.
ExecHandler = Callable[[list[str]], tuple[int, str, str]]

# The engine matches these event filters by prefix ("health_status" matches "health_status: healthy").
_PREFIX_EVENTS = ("health_status", "exec_create", "exec_start")


class ExecResult(NamedTuple):
    """What `Container.exec_run` returns (docker-py's namedtuple of the same name)."""

    exit_code: int
    output: Any


def volume_tar(files: dict[str, tuple[Any, int, int, int]], root=(0o750, 1000, 1000)) -> bytes:
    """A tar like the engine's archive API returns for a mount point named `vol`.

    Each entry is `name: (data, mode, uid, gid)`: bytes for a file, None for a directory, a str for a
    symlink target."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("vol")
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, root[0], root[1], root[2]
        tar.addfile(info)
        for name, (data, mode, uid, gid) in files.items():
            info = tarfile.TarInfo(f"vol/{name}")
            if data is None:
                info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
                tar.addfile(info)
            elif isinstance(data, str):  # a symlink target
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, data, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _label_filters(filters: dict | None) -> list[str]:
    value = (filters or {}).get("label", [])
    return [value] if isinstance(value, str) else list(value)


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    """The engine's label filter: every `key=value` (or bare `key`) must hold."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _event_matches(event: dict, filters: dict | None) -> bool:
    filters = filters or {}
    types = filters.get("type")
    if types and event.get("Type") not in ([types] if isinstance(types, str) else types):
        return False
    actions = filters.get("event")
    if actions:
        actions = [actions] if isinstance(actions, str) else actions
        action = event.get("Action", "")
        if not any(action == a or (a in _PREFIX_EVENTS and action.startswith(a)) for a in actions):
            return False
    return _labels_match(event.get("Actor", {}).get("Attributes", {}), _label_filters(filters))


class FakeContainer:
    """A container: made from a service (labels as Compose writes them), or from inspect `attrs` as given.

    `state` is the inspect `State` as given; without it, one is made from `status` and `health`, which
    tests may change while the engine runs. `exec` answers `exec_run`; `calls` records the commands."""

    def __init__(self, service: str | None = None, state: dict | None = None, *, name: str | None = None,
                 id: str | None = None, project: str | None = None, labels: dict[str, str] | None = None,
                 status: str | None = None, health: str | None = None, exec: ExecHandler | None = None,
                 attrs: dict | None = None, top: dict | None = None, engine: FakeEngine | None = None,
                 volume: str | None = None) -> None:
        self.service, self.project, self.engine, self.volume = service, project, engine, volume
        self._name, self._extra_labels, self._attrs, self._top, self._exec = name, labels or {}, attrs, top, exec
        self.state = state
        self.status = status or (state or {}).get("Status") or "running"
        self.health = health
        self.id = id or f"id-{service or name}"
        self.restarts = 0
        self.calls: list[list[str]] = []

    @classmethod
    def from_attrs(cls, attrs: dict, top: dict | None = None) -> FakeContainer:
        """A container whose inspect output is `attrs` (id, name and labels read from it)."""
        labels = attrs.get("Config", {}).get("Labels") or {}
        return cls(labels.get(SERVICE_LABEL), name=attrs["Name"].lstrip("/"), id=attrs["Id"],
                   project=labels.get(PROJECT_LABEL), labels=labels, attrs=attrs, top=top)

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        return f"{self.project}-{self.service}-1" if self.project and self.service else str(self.service)

    @property
    def labels(self) -> dict[str, str]:
        own = {PROJECT_LABEL: self.project, SERVICE_LABEL: self.service}
        return {**{k: v for k, v in own.items() if v is not None}, **self._extra_labels}

    @property
    def attrs(self) -> dict:
        if self._attrs is not None:
            return self._attrs
        state = self.state
        if state is None:
            state = {"Status": self.status, "Running": self.status == "running", "Paused": False,
                     "StartedAt": "2024-05-01T10:00:00Z"}
            if self.health is not None:
                state["Health"] = {"Status": self.health}
        created = {"Created": self.created} if getattr(self, "created", None) else {}
        return {"Id": self.id, "Name": f"/{self.name}", "Config": {"Labels": self.labels}, "State": state, **created}

    def reload(self) -> None:
        """Nothing to refresh: `attrs` is always current."""

    def restart(self, timeout: int = 10) -> None:
        """As the engine does it: kill, die, stop, start, then the health check starts over."""
        self.engine.check()
        self.restarts += 1
        self.engine.restart_times.append(time.monotonic())
        for action in ("kill", "die", "stop", "start"):
            self.engine.emit(self, action)
        self.health = "starting"
        self.engine.emit(self, "restart")

    def exec_run(self, command, user: str = "", demux: bool = False, **_: Any) -> ExecResult:
        self.calls.append(command)
        code, out, err = self._exec(command) if self._exec else (0, "", "")
        return ExecResult(code, (out.encode(), err.encode()) if demux else (out + err).encode())

    def top(self, ps_args: str | None = None) -> dict:
        return self._top or {"Titles": [], "Processes": []}

    # A helper created on a volume (never started) reaches it through the archive API.
    def get_archive(self, path: str):
        return iter([self.engine.content[self.volume]]), {}

    def put_archive(self, path: str, data) -> bool:
        self.engine.put[self.volume] = data.read()
        return True

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.engine.helpers_removed += 1
        # certbot's image declares VOLUMEs: without v=True each helper leaks anonymous volumes.
        self.engine.helpers_removed_with_volumes += int(bool(v))


class FakeContainers:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def list(self, all: bool = False, filters: dict | None = None, ignore_removed: bool = False) -> list[FakeContainer]:
        self.engine.check()
        if filters and "volume" in filters:  # the containers that use a volume, as the test set them
            return list(self.engine.users.get(filters["volume"], []))
        wanted = _label_filters(filters)
        return [c for c in self.engine.items.values()
                if (all or c.status == "running") and _labels_match(c.labels, wanted)]

    def get(self, key: str) -> FakeContainer:
        self.engine.check()
        for item in self.engine.items.values():
            if key in (item.id, item.name):
                return item
        from docker.errors import NotFound

        raise NotFound(key)

    def create(self, image: str, command=None, entrypoint=None, network_disabled=None, labels=None, volumes=None,
               **_: Any) -> FakeContainer:
        self.engine.images_used.append(image)
        (volume,) = volumes
        return FakeContainer(name=f"helper-{len(self.engine.images_used)}", labels=labels, engine=self.engine,
                             volume=volume, status="created")


class FakeImage:
    def __init__(self, name: str, attrs: dict) -> None:
        self.attrs, self.tags = attrs, [name]


class FakeImages:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get(self, name: str) -> FakeImage:
        if name not in self.engine.images_by_name:
            from docker.errors import ImageNotFound

            raise ImageNotFound(name)
        return FakeImage(name, self.engine.images_by_name[name])


class FakeVolume:
    def __init__(self, engine: FakeEngine, name: str) -> None:
        self.engine, self.name = engine, name

    @property
    def attrs(self) -> dict:
        return {"Name": self.name, "Labels": self.engine.volumes_by_name[self.name]}

    def remove(self) -> None:
        self.engine.volumes_by_name.pop(self.name)


class FakeVolumes:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def list(self, filters: dict | None = None) -> list[FakeVolume]:
        wanted = _label_filters(filters)
        return [FakeVolume(self.engine, name) for name, labels in self.engine.volumes_by_name.items()
                if _labels_match(labels or {}, wanted)]

    def get(self, name: str) -> FakeVolume:
        if name not in self.engine.volumes_by_name:
            from docker.errors import NotFound

            raise NotFound(name)
        return FakeVolume(self.engine, name)

    def create(self, name: str, labels: dict | None = None, **_: Any) -> FakeVolume:
        self.engine.volumes_by_name[name] = labels or {}
        self.engine.content.setdefault(name, volume_tar({}))
        return FakeVolume(self.engine, name)


class FakeStream:
    """A live event stream: yields what the engine emits (and its filters admit) until closed."""

    def __init__(self, filters: dict | None) -> None:
        self.filters = filters
        self.items: queue.Queue = queue.Queue()
        self.closed = False

    def __iter__(self) -> Iterator[dict]:
        while True:
            item = self.items.get()
            if item is None or self.closed:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self.closed = True
        self.items.put(None)


class FakeEngine:
    """One engine; `connect()` gives a client on it (itself), as long as it is up.

    `containers` join the engine (and `project`, when they name none); `images` are inspect attrs by
    name; `history` is what `api.events(until=...)` answers, as given (`asked` records each call's
    arguments). Volumes: `volumes_by_name` (labels), `content` (the archive of each), `users`
    (containers using each); helpers record `images_used`, `put` and their removal."""

    def __init__(self, containers: Iterable[FakeContainer] = (), *, project: str | None = None,
                 images: dict[str, dict] | None = None, history: Iterable[dict] = ()) -> None:
        self.project = project
        self.items: dict[str, FakeContainer] = {}
        for container in containers:
            self.join(container)
        self.images_by_name: dict[str, dict] = dict(images or {})
        self.volumes_by_name: dict[str, dict] = {}
        self.content: dict[str, bytes] = {}
        self.put: dict[str, bytes] = {}
        self.users: dict[str, list] = {}
        self.images_used: list[str] = []
        self.helpers_removed = 0
        self.helpers_removed_with_volumes = 0
        self.history: list[dict] = list(history)
        self.asked: list[dict] = []
        self.up = True
        self.streams: list[FakeStream] = []
        self.restart_times: list[float] = []
        self.connects = 0
        self.containers = FakeContainers(self)
        self.images = FakeImages(self)
        self.volumes = FakeVolumes(self)
        self.api = self  # the low-level client: `api.events` answers past events
        # A swarm (see FakeSwarm below): None until `swarm_init`; networks by name (inspect attrs).
        self.swarm: FakeSwarm | None = None
        self.networks_by_name: dict[str, dict] = {}
        self.networks = FakeNetworks(self)
        self.services = FakeServices(self)
        self.nodes = FakeNodes(self)

    def join(self, container: FakeContainer) -> FakeContainer:
        container.engine = self
        if container.project is None:
            container.project = self.project
        self.items[container.name] = container
        return container

    def add(self, service: str, health: str = "healthy", status: str = "running") -> FakeContainer:
        """A running service container of this engine's project."""
        return self.join(FakeContainer(service, health=health, status=status))

    # --- the connection ---------------------------------------------------------------------------

    def check(self) -> None:
        if not self.up:
            raise ConnectionError("engine down")

    def connect(self) -> FakeEngine:
        self.connects += 1
        self.check()
        return self

    def close(self) -> None:
        pass

    def go_down(self) -> None:
        self.up = False
        for stream in self.streams:
            stream.items.put(ConnectionError("EOF"))

    def come_back(self) -> None:
        self.up = True

    # --- events ------------------------------------------------------------------------------------

    def events(self, decode: bool = True, filters: dict | None = None, **kwargs: Any):
        """With `until`: the past (`history`, as given). Without: a live stream of what is emitted."""
        self.asked.append({"decode": decode, "filters": filters, **kwargs})
        if "until" in kwargs:
            return iter(list(self.history))
        self.check()
        stream = FakeStream(filters)
        self.streams.append(stream)
        return stream

    def emit(self, container: FakeContainer, action: str, **attributes: str) -> None:
        event = {"Type": "container", "Action": action, "Actor": {"ID": container.id, "Attributes": {
            **container.labels, **attributes}}}
        for stream in self.streams:
            if not stream.closed and _event_matches(event, stream.filters):
                stream.items.put(event)


    # --- info, and a swarm -------------------------------------------------------------------------

    def info(self) -> dict:
        swarm = {"LocalNodeState": "inactive", "ControlAvailable": False}
        if self.swarm is not None:
            swarm = {"LocalNodeState": "active", "ControlAvailable": self.swarm.manager, "NodeID": self.swarm.node_id}
        return {"CgroupVersion": "2", "Swarm": swarm}

    def swarm_init(self, manager: bool = True, hostname: str = "node-1") -> FakeSwarm:
        self.swarm = FakeSwarm(self, manager, hostname)
        return self.swarm

    def service_logs(self, service_id: str, **kwargs: Any) -> Iterator[bytes]:
        self.swarm.logs_asked.append((service_id, kwargs))
        return iter([self.swarm.logs.get(service_id, b"")])

    def inspect_network(self, name_or_id: str) -> dict:
        for attrs in self.networks_by_name.values():
            if name_or_id in (attrs["Name"], attrs["Id"]):
                return attrs
        from docker.errors import NotFound

        raise NotFound(name_or_id)


# --------------------------------------------------------------------------------------- a swarm


class FakeNetwork:
    def __init__(self, engine: FakeEngine, name: str) -> None:
        self.engine, self.name = engine, name

    @property
    def attrs(self) -> dict:
        return self.engine.networks_by_name[self.name]

    @property
    def id(self) -> str:
        return self.attrs["Id"]

    def reload(self) -> None:
        """`attrs` is always current."""

    def remove(self) -> None:
        self.engine.networks_by_name.pop(self.name)


class FakeNetworks:
    """Networks by name, inspect attrs as given (`add`), listed with the engine's label filter."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def add(self, name: str, labels: dict[str, str] | None = None, **attrs: Any) -> FakeNetwork:
        self.engine.networks_by_name[name] = {"Name": name, "Id": f"nid-{name}", "Labels": labels or {}, "Containers": {},
                                              "Scope": "local", "Driver": "bridge", **attrs}
        return FakeNetwork(self.engine, name)

    def list(self, filters: dict | None = None) -> list[FakeNetwork]:
        self.engine.check()
        wanted = _label_filters(filters)
        return [FakeNetwork(self.engine, name) for name, attrs in self.engine.networks_by_name.items()
                if _labels_match(attrs.get("Labels") or {}, wanted)]


class FakeService:
    """A swarm service: its spec (name, labels, replicas, healthcheck, published ports), its tasks (raw task dicts, as
    the engine lists them; `task` adds one), its update status."""

    def __init__(self, swarm: FakeSwarm, name: str, labels: dict[str, str] | None = None, replicas: int = 1,
                 healthcheck: bool = True, ports: list[dict] | None = None, image: str = "img", kwargs: dict | None = None) -> None:
        self.swarm, self.name, self.id = swarm, name, f"sid-{name}"
        self.kwargs = kwargs or {}  # what `services.create` was given
        self.raw_tasks: list[dict] = []
        container_spec: dict[str, Any] = {"Image": image}
        if healthcheck:
            container_spec["Healthcheck"] = {"Test": ["CMD", "true"]}
        self.attrs: dict[str, Any] = {"ID": self.id, "Spec": {
            "Name": name, "Labels": labels or {}, "Mode": {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": {"ContainerSpec": container_spec, "RestartPolicy": {"Condition": "any"}},
            "EndpointSpec": {"Mode": "dnsrr", "Ports": ports or []}}}

    def task(self, state: str = "running", desired: str = "running", *, err: str = "", message: str = "",
             exit_code: int | None = None, created: str = "2030-01-01T00:00:00Z", container: str | None = None,
             node: str | None = None) -> dict:
        raw = {"ID": f"tid-{self.name}-{len(self.raw_tasks)}", "ServiceID": self.id, "Slot": 1, "DesiredState": desired,
               "NodeID": node or self.swarm.node_id, "CreatedAt": created,
               "Status": {"State": state, "Err": err, "Message": message,
                          "ContainerStatus": {"ContainerID": container, "ExitCode": exit_code}}}
        self.raw_tasks.append(raw)
        return raw

    def tasks(self, filters: dict | None = None) -> list[dict]:
        self.swarm.engine.check()
        return list(self.raw_tasks)

    def remove(self) -> bool:
        self.swarm.removed.append(self.name)
        self.swarm.services.pop(self.name, None)
        return True


class FakeServices:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def _swarm(self) -> FakeSwarm:
        self.engine.check()
        if self.engine.swarm is None or not self.engine.swarm.manager:
            from docker.errors import APIError

            raise APIError("This node is not a swarm manager.")
        return self.engine.swarm

    def list(self, filters: dict | None = None) -> list[FakeService]:
        swarm = self._swarm()
        wanted = _label_filters(filters)
        return [s for s in swarm.services.values() if _labels_match(s.attrs["Spec"]["Labels"], wanted)]

    def create(self, image: str, command=None, **kwargs: Any) -> FakeService:
        swarm = self._swarm()
        service = FakeService(swarm, kwargs.get("name") or f"svc-{len(swarm.created)}", kwargs.get("labels"), image=image,
                              kwargs={"command": command, **kwargs})
        swarm.services[service.name] = service
        swarm.created.append(service)
        if swarm.on_create is not None:
            swarm.on_create(service)
        return service


class FakeNodes:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def list(self, filters: dict | None = None) -> list:
        swarm = self.engine.services._swarm()
        return [type("FakeNode", (), {"id": swarm.node_id, "attrs": {"ID": swarm.node_id, "Description": {"Hostname": swarm.hostname},
                                                                     "Spec": {"Labels": swarm.node_labels}}})()]


class FakeSwarm:
    """This engine as a one-node swarm: its node (id, host name, labels), the stack services (by full name), the
    services' logs by id, what was created (`on_create` may give a new service its tasks) and removed."""

    def __init__(self, engine: FakeEngine, manager: bool, hostname: str) -> None:
        self.engine, self.manager, self.hostname = engine, manager, hostname
        self.node_id = "node-id-1"
        self.node_labels: dict[str, str] = {}
        self.services: dict[str, FakeService] = {}
        self.logs: dict[str, bytes] = {}
        self.logs_asked: list[tuple[str, dict]] = []
        self.created: list[FakeService] = []
        self.removed: list[str] = []
        self.on_create: Callable[[FakeService], None] | None = None

    def service(self, stack: str, key: str, **kwargs: Any) -> FakeService:
        """A service of swarm stack `stack`, as `docker stack deploy` names and labels it."""
        name = f"{stack}_{key}"
        self.services[name] = FakeService(self, name, {STACK_LABEL: stack, **kwargs.pop("labels", {})}, **kwargs)
        return self.services[name]

    def task_container(self, stack: str, key: str, *, health: str | None = "healthy", status: str = "running",
                       attrs: dict | None = None, created: str = "2030-01-01T00:00:00Z", id: str | None = None) -> FakeContainer:
        """A task container of the stack's service on this node, labelled as the engine labels it."""
        labels = {STACK_LABEL: stack, SWARM_SERVICE_LABEL: f"{stack}_{key}", **((attrs or {}).get("Config", {}).get("Labels") or {})}
        name = f"{stack}_{key}.1.{id or 'x'}"
        container = FakeContainer(name=name, id=id or f"cid-{key}", labels=labels, status=status, health=health,
                                  attrs=None if attrs is None else {**attrs, "Config": {**attrs.get("Config", {}), "Labels": labels}})
        container.created, container.engine = created, self.engine
        self.engine.items[container.name] = container  # not `join`: no compose project label on a task container
        return container


# --------------------------------------------------------------------------------------- a registry


def linux(arch: str, variant: str = "") -> dict:
    """An image config's platform fields."""
    return {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}


class FakeRegistry:
    """A transport answering like a registry: manifests and blobs by repository, optional bearer auth."""

    def __init__(self, token: str | None = None) -> None:
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.token = token
        self.calls: list[tuple[str, str, dict]] = []

    def add_manifest(self, repository: str, tag: str | None, body: bytes, media_type: str) -> str:
        digest = sha256_digest(body)
        self.manifests[(repository, digest)] = (media_type, body)
        if tag:
            self.manifests[(repository, tag)] = (media_type, body)
        return digest

    def add_image(self, repository: str, tag: str | None, config: dict) -> str:
        config_bytes = json.dumps(config).encode()
        config_digest = sha256_digest(config_bytes)
        self.blobs[(repository, config_digest)] = config_bytes
        manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                               "config": {"digest": config_digest, "size": len(config_bytes)}, "layers": []}).encode()
        return self.add_manifest(repository, tag, manifest, DOCKER_MANIFEST)

    def __call__(self, method, url, headers, body, timeout):
        self.calls.append((method, url, dict(headers)))
        if url.startswith("https://auth.example/token"):
            return Response(200, {}, json.dumps({"token": self.token}).encode())
        if self.token and headers.get("Authorization") != f"Bearer {self.token}":
            challenge = 'Bearer realm="https://auth.example/token",service="registry.example"'
            return Response(401, {"www-authenticate": challenge}, b"")
        path = url.split("/v2/", 1)[1]
        if "/manifests/" in path:
            repository, reference = path.split("/manifests/")
            if method == "PUT":
                digest = self.add_manifest(repository, reference, body, headers["Content-Type"])
                return Response(201, {"docker-content-digest": digest}, b"")
            if (repository, reference) not in self.manifests:
                return Response(404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            media_type, data = self.manifests[(repository, reference)]
            return Response(200, {"content-type": media_type, "docker-content-digest": sha256_digest(data)}, data)
        if "/blobs/" in path:
            repository, digest = path.split("/blobs/")
            if (repository, digest) in self.blobs:
                return Response(200, {}, self.blobs[(repository, digest)])
            return Response(404, {}, b"")
        return Response(200, {}, b"{}")
