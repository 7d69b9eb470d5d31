"""Several Node-RED instances rendered: each its own service, internal network (shared with the edge alone), data
volume, credential secret and configuration directory; one edge routes each host name to its instance.

Why built on the one-instance renderer: an instance's own files and service are exactly what a version 1 stack
of that instance alone renders (`Stack.view`), so settings.js, the login shield, hardening and healthcheck have
one source; this module moves them under the instance's names and joins the instances to the edge. A version 1
stack never reaches this module, so its output is what it always was (byte for byte).

`Route`: what the edge blueprints need of one instance (Caddy `handle` per instance, NGINX maps from the host
name, Traefik a router, editor router and service per instance). A version 1 stack has one route with the
names it always had.

Path routing (`instances[].path`): an instance may be served under a prefix of its host names, which others share.
Node-RED knows its prefix (httpAdminRoot `<prefix><editor.path>`, httpNodeRoot `<prefix>/`, from its view), so the
edge passes paths through unchanged and only chooses: on a host name, a prefix first (matched as the editor gate is,
without regard to case on the normalised path: `<prefix>` and everything below it), else the instance at its root,
else 404. `precedence` is that order for the edges that try their rules in turn (Caddy's `handle`s); Traefik gets
priorities above every root route's, NGINX a map on host and path before the map on the host.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from stackgen.constants import NODE_RED_PORT
from stackgen.generate.files import RenderedFile
from stackgen.spec import DEFAULT_INSTANCE, Instance, Stack

if TYPE_CHECKING:  # context imports this module
    from stackgen.generate.context import Context

# Where a version 1 stack keeps Node-RED's files, and the secret's name inside every Node-RED container.
NODE_RED_DIR = DEFAULT_INSTANCE
SECRET_INSIDE = "node_red_credential_secret"


def bridge_name(project: str, instance: str) -> str:
    """The Linux bridge (at most 15 characters) of an instance's internal network, fixed so a host firewall rule
    can name it: the one-instance stack's own name for `node-red`, a hash of project and instance for others."""
    key = project if instance == DEFAULT_INSTANCE else f"{project}/{instance}"
    return "sg-" + hashlib.sha256(key.encode()).hexdigest()[:8] + "-in"


@dataclass(frozen=True)
class Route:
    """One instance as the edge sees it."""

    name: str
    suffix: str  # "" in a one-instance stack, else "_<name>": Traefik's router, service and middleware names, Caddy's matchers
    service: str
    hosts: tuple[str, ...]  # the names routed to it (a one-instance stack: every domain, wildcards too)
    prefix: str  # its path prefix on them (`/lab`), or "" (their root)
    internal_network: str
    bridge: str
    editor_gated: bool
    editor_prefix: str
    editor_allow: tuple[str, ...]
    editor_host: str | None

    @property
    def ident(self) -> str:
        """The name as an NGINX variable suffix (- is not allowed there; names hold no _)."""
        return self.name.replace("-", "_")

    @property
    def upstream(self) -> str:
        return f"{self.service}:{NODE_RED_PORT}"

    @property
    def editor_prefix_stem(self) -> str:
        return self.editor_prefix.rstrip("/")

    @property
    def editor_prefix_glob(self) -> str:
        return self.editor_prefix_stem + "/*"

    @property
    def exact_hosts(self) -> tuple[str, ...]:
        return tuple(h for h in self.hosts if not h.startswith("*."))

    @property
    def prefix_glob(self) -> str:
        """Everything below the prefix, as Caddy's path matcher writes it (`/lab/*`)."""
        return self.prefix + "/*"


def precedence(all_routes: list[Route]) -> list[Route]:
    """The order in which an edge tries the routes: those under a path prefix first (prefixes on one host name never
    nest, so among them order does not matter), then those at the root of their host names."""
    return [r for r in all_routes if r.prefix] + [r for r in all_routes if not r.prefix]


def routed_hosts(all_routes: list[Route]) -> list[str]:
    """Every host name routed to some instance, once, in the spec's order."""
    return list(dict.fromkeys(h for r in all_routes for h in r.hosts))


def unrooted_hosts(all_routes: list[Route]) -> list[str]:
    """Host names served only under path prefixes: no instance owns their root (the edge answers 404 outside them)."""
    rooted = {h for r in all_routes if not r.prefix for h in r.hosts}
    return [h for h in routed_hosts(all_routes) if h not in rooted]


def routes(ctx: Context) -> list[Route]:
    """Every instance as the edge sees it, in the spec's order."""
    stack = ctx.stack
    if stack.instances is None:
        return [_route(ctx, ctx.stack.node_reds[0], "", tuple(stack.domains))]
    return [_route(ctx.for_instance(inst), inst, "_" + inst.name, tuple(inst.hosts)) for inst in stack.instances]


def _route(view: Context, inst: Instance, suffix: str, hosts: tuple[str, ...]) -> Route:
    return Route(
        name=inst.name,
        suffix=suffix,
        service=inst.service,
        hosts=hosts,
        prefix=inst.route_prefix,
        internal_network=inst.internal_network,
        bridge=bridge_name(view.s.project, inst.name),
        editor_gated=view.editor_gated,
        editor_prefix=view.editor_prefix,
        editor_allow=tuple(view.editor_allow),
        editor_host=view.editor_host,
    )


def view(stack: Stack, name: str | None) -> Stack:
    """The version 1 stack that instance `name` (default: the first) renders as."""
    assert stack.instances is not None
    inst = next((i for i in stack.instances if i.name == name), stack.instances[0]) if name else stack.instances[0]
    return stack.view(inst)


def _moved(path: str, inst: Instance) -> str:
    """A path under node-red/ (or ./node-red/) moved to the instance's own directory."""
    for prefix in (NODE_RED_DIR + "/", "./" + NODE_RED_DIR + "/"):
        if path.startswith(prefix):
            return path.replace(NODE_RED_DIR, inst.service, 1)
    return path


def instance_files(ctx: Context, files: list[RenderedFile], render_files: Callable[[Context], list[RenderedFile]]) -> list[RenderedFile]:
    """The shared files of `files` (edge, certbot, README), and each instance's node-red files from its own view."""
    assert ctx.stack.instances is not None
    shared = [f for f in files if not f.path.startswith(NODE_RED_DIR + "/")]
    own = []
    for inst in ctx.stack.instances:
        for item in render_files(ctx.for_instance(inst)):
            if item.path.startswith(NODE_RED_DIR + "/"):
                own.append(replace(item, path=_moved(item.path, inst)))
    return own + shared


def spread(
    ctx: Context,
    services: dict[str, Any],
    networks: dict[str, Any],
    volumes: dict[str, Any],
    secrets: dict[str, Any],
    build_service: Callable[[Context, str], dict[str, Any]],
    image_of: Callable[[Stack], str],
) -> None:
    """Turn the one-instance document's Node-RED parts into one set per instance, in place: services (each instance,
    then the edge and certbot), networks (each instance's internal one, public, each egress), volumes, secrets."""
    assert ctx.stack.instances is not None
    instances = ctx.stack.instances
    own: dict[str, Any] = {}
    for inst in instances:
        view_ctx = ctx.for_instance(inst)
        service = build_service(view_ctx, image_of(view_ctx.s))
        service["networks"] = [inst.internal_network] + ([inst.egress_network] if inst.egress else [])
        mounts = []
        for mount in service["volumes"]:
            if mount["type"] == "volume" and mount["source"] == "node-red-data":
                mount = {**mount, "source": inst.data_volume}
            elif mount["type"] == "bind":
                mount = {**mount, "source": _moved(mount["source"], inst)}
            mounts.append(mount)
        service["volumes"] = mounts
        # Inside, every instance reads /run/secrets/node_red_credential_secret (settings.js has one name).
        service["secrets"] = [SECRET_INSIDE if inst.secret_name == SECRET_INSIDE else {"source": inst.secret_name, "target": SECRET_INSIDE}]
        own[inst.service] = service
    rest = {name: svc for name, svc in services.items() if name != "node-red"}
    edge = rest["edge"]
    public = edge["networks"]["public"]
    edge["networks"] = {**{inst.internal_network: None for inst in instances}, "public": public}
    edge["labels"][next(k for k in edge["labels"] if k.endswith(".upstream"))] = ",".join(r.upstream for r in ctx.routes)
    services.clear()
    services.update(own | rest)

    template = networks["internal"]
    wanted: dict[str, Any] = {}
    for route in ctx.routes:
        wanted[route.internal_network] = {**template, "driver_opts": {"com.docker.network.bridge.name": route.bridge}}
    wanted["public"] = networks["public"]
    for inst in instances:
        if inst.egress:
            wanted[inst.egress_network] = {}
    networks.clear()
    networks.update(wanted)

    others = {name: spec for name, spec in volumes.items() if name != "node-red-data"}
    volumes.clear()
    volumes.update({inst.data_volume: {} for inst in instances} | others)

    rest_secrets = {name: spec for name, spec in secrets.items() if name != SECRET_INSIDE}
    secrets.clear()
    for inst in instances:
        path = inst.credential_secret_file  # relative paths made explicit, as compose.host_path does
        secrets[inst.secret_name] = {"file": path if path.startswith("/") else "./" + path}
    secrets.update(rest_secrets)
