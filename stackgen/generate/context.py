"""What render derives from a `Stack` once, for the blueprints and the compose builder alike (`Context`),
the fixed identities and sizes of the services, and the images chosen (the spec's, else the contracts')."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

from stackgen.constants import CERTS_GID, HTTP_INSIDE, HTTPS_INSIDE, NODE_RED_PORT
from stackgen.generate import instances
from stackgen.generate.edges import DEPLOY_HOOK_WORDS, Edge, edge
from stackgen.generate.headers import EDGE_HEADERS, EDITOR_CSP, REMOVED_HEADERS, Header
from stackgen.spec import Instance, Stack
from stackgen.upstream.contracts import DnsPlugin, load_contract

# Fixed identities. The edge reads the key through the supplementary group CERTS_GID.
EDGE_UID = 101


CERTBOT_UID = 0  # without capabilities: see certbot_service


STANDALONE_PORT = 8402


# certbot keeps 1000 rotated logs by default; ours live on a 16 MB tmpfs (run.sh and the supervisor's renew).
CERTBOT_LOG_BACKUPS = 3


# How long the engine waits after the stop signal before SIGKILL (compose stop_grace_period).
EDGE_STOP_GRACE_SECONDS = 15


# Default image versions are not here: they live in the upstream image contracts
# (stackgen/upstream/contracts/*.yaml), per platform, next to the facts our stacks rely on.
TLS_FILES_DIR = "/etc/stackgen/tls"


# Memory limits and log rotation by platform: a Pi has little RAM and an SD card that wears.
PLATFORM_SIZING: dict[str, dict[str, Any]] = {
    "linux/amd64": {"node_red": "512m", "edge": "256m", "certbot": "256m", "log_size": "10m", "log_files": 3, "cpus": (1.5, 1.0, 0.5)},
    "linux/arm64": {"node_red": "384m", "edge": "128m", "certbot": "192m", "log_size": "5m", "log_files": 2, "cpus": (1.5, 1.0, 0.5)},
    "linux/arm/v7": {"node_red": "256m", "edge": "96m", "certbot": "160m", "log_size": "2m", "log_files": 2, "cpus": (1.5, 1.0, 0.5)},
}


CPU_INDEX = {"node-red": 0, "edge": 1, "certbot": 2}


@dataclass(frozen=True)
class Context:
    """Values derived from the `Stack` that templates and the compose builder share."""

    stack: Stack
    instance: str | None = None  # with `instances`: the instance whose version 1 view `s` is (default: the first)

    @property
    def s(self) -> Stack:
        """The stack as blueprints read it: itself, or (several instances, generate/instances.py) one instance's view."""
        return self.stack if self.stack.instances is None else self._view

    @cached_property
    def _view(self) -> Stack:
        return instances.view(self.stack, self.instance)

    @property
    def multi(self) -> bool:
        """Several Node-RED instances (format version 2): the edge routes each host name to its own."""
        return self.stack.instances is not None

    @cached_property
    def routes(self) -> list[instances.Route]:
        """Every instance as the edge sees it (a version 1 stack: one, with the names it always had)."""
        return instances.routes(self)

    @property
    def route_precedence(self) -> list[instances.Route]:
        """The routes in the order an edge tries them: path prefixes first, then the roots of host names."""
        return instances.precedence(self.routes)

    @property
    def path_routed(self) -> bool:
        """Some instance is served under a path prefix (`instances[].path`)."""
        return any(route.prefix for route in self.routes)

    @property
    def routed_hosts(self) -> list[str]:
        """Every host name routed to an instance, once."""
        return instances.routed_hosts(self.routes)

    @property
    def unrooted_hosts(self) -> list[str]:
        """Host names served only under path prefixes (outside them the edge answers 404)."""
        return instances.unrooted_hosts(self.routes)

    def for_instance(self, inst: Instance) -> Context:
        """What instance `inst`'s own files and service render from: the version 1 stack of it alone."""
        return Context(self.stack.view(inst))

    http_inside: int = HTTP_INSIDE
    https_inside: int = HTTPS_INSIDE
    standalone_port: int = STANDALONE_PORT
    certs_gid: int = CERTS_GID
    webroot: str = "/var/www/acme"
    upstream: str = f"node-red:{NODE_RED_PORT}"

    deploy_hook_words: tuple[str, ...] = DEPLOY_HOOK_WORDS
    edge_headers: tuple[Header, ...] = EDGE_HEADERS
    removed_headers: tuple[str, ...] = REMOVED_HEADERS
    editor_csp: str = EDITOR_CSP

    @property
    def edge_entry(self) -> Edge:
        """The facts about the stack's edge program (`generate/edges.py`)."""
        return edge(self.s.edge)

    @property
    def edge_acme(self) -> bool:
        return self.s.tls.mode == "edge-acme"

    @property
    def sidecar(self) -> bool:
        return self.s.tls.uses_sidecar

    @property
    def dns_plugin(self) -> DnsPlugin:
        """certbot-dns01: the official plugin image's facts (authenticator, credentials option)."""
        plugin = load_contract("certbot-dns").plugin(self.s.tls.dns_provider or "")
        if plugin is None:
            raise LookupError(f"no official certbot DNS plugin for {self.s.tls.dns_provider!r}")
        return plugin

    certbot_log_backups: int = CERTBOT_LOG_BACKUPS

    @property
    def local_ca(self) -> bool:
        return self.s.tls.mode == "internal"

    @property
    def standalone_challenge(self) -> bool:
        """Traefik cannot serve files, so certbot answers HTTP-01 itself and the edge routes to it."""
        return self.s.edge == "traefik" and self.s.tls.mode == "certbot-http01"

    @property
    def webroot_volume(self) -> bool:
        return self.s.tls.mode == "certbot-http01" and not self.standalone_challenge

    @property
    def tls_file_mounts(self) -> list[tuple[str, str]]:
        """files mode: (host directory, container directory) read-only mounts holding cert and key.

        Directories, not the two files: a single-file bind mount pins the inode it saw at start,
        so a renewal that replaces the file (rename, symlink swap) would never reach the edge.
        """
        tls = self.s.tls
        if tls.mode != "files":
            return []
        assert tls.cert_file and tls.key_file
        cert_dir, key_dir = posixpath.dirname(tls.cert_file), posixpath.dirname(tls.key_file)
        if cert_dir == key_dir:
            return [(cert_dir, TLS_FILES_DIR)]
        return [(cert_dir, f"{TLS_FILES_DIR}/cert"), (key_dir, f"{TLS_FILES_DIR}/key")]

    def _tls_file(self, host_file: str) -> str:
        host_dir = posixpath.dirname(host_file)
        inside = next(target for source, target in self.tls_file_mounts if source == host_dir)
        return f"{inside}/{posixpath.basename(host_file)}"

    @property
    def cert_path(self) -> str:
        if self.s.tls.mode == "files":
            assert self.s.tls.cert_file
            return self._tls_file(self.s.tls.cert_file)
        return f"/etc/letsencrypt/live/{self.s.cert_name}/fullchain.pem"

    @property
    def key_path(self) -> str:
        if self.s.tls.mode == "files":
            assert self.s.tls.key_file
            return self._tls_file(self.s.tls.key_file)
        return f"/etc/letsencrypt/live/{self.s.cert_name}/privkey.pem"

    @property
    def https_port_suffix(self) -> str:
        return "" if self.s.ports.https == 443 else f":{self.s.ports.https}"

    @property
    def ca_bundle(self) -> str | None:
        return self.s.tls.ca_bundle

    ca_bundle_in_edge: str = "/etc/stackgen/acme-ca.pem"

    @property
    def admin_root(self) -> str | bool:
        """httpAdminRoot: the editor's path, or false (settings.js writes it `| tojson`)."""
        return self.editor_prefix if self.s.node_red.editor.enabled else False

    @property
    def editor_gated(self) -> bool:
        """True when the edge holds editor traffic to `node_red.editor.allow` (the editor is served; several instances: any's)."""
        if self.multi:
            return any(route.editor_gated for route in self.routes)
        return self.s.node_red.editor.enabled

    @property
    def editor_prefix(self) -> str:
        """The one path prefix of the editor and its admin API (/comms, /auth, /flows, /red...): httpAdminRoot
        (a path-routed instance's: under its prefix, `/lab/editor`)."""
        return self.s.node_red.editor_root

    @property
    def node_root(self) -> str:
        """httpNodeRoot: `/`, or a path-routed instance's prefix (`/lab/`), so the links Node-RED makes are right."""
        return self.s.node_red.node_root

    @property
    def editor_whole_site(self) -> bool:
        """The editor at `/`: Node-RED serves editor and endpoints from one root, so every request is editor traffic."""
        return self.editor_prefix == "/"

    @property
    def editor_prefix_stem(self) -> str:
        """The prefix without a trailing slash (empty for `/`): regular expressions add `(/|$)`, so `/` matches every path."""
        return self.editor_prefix.rstrip("/")

    @property
    def editor_cookie_path(self) -> str:
        """The Path of csp.js's nonce cookie: the editor's prefix (`/` for an editor at the root)."""
        return self.editor_prefix_stem or "/"

    @property
    def editor_prefix_glob(self) -> str:
        """Everything below the prefix, as Caddy's path matcher writes it (`/editor/*`; `/*` for `/`)."""
        return self.editor_prefix_stem + "/*"

    @property
    def editor_allow(self) -> list[str]:
        """Client networks that may reach the editor (normalised CIDRs)."""
        return self.s.node_red.editor.allow

    @property
    def editor_host(self) -> str | None:
        """A host name that is the editor's alone (all of it is editor traffic), if any."""
        return self.s.node_red.editor.host

    @property
    def nginx_names_bucket(self) -> int:
        """NGINX's server_names_hash_bucket_size: a power of two that holds the longest name (and its overhead)."""
        size = 64
        while size < max(len(d) for d in self.s.domains) + 32:
            size *= 2
        return size

    @property
    def sizing(self) -> dict[str, Any]:
        return PLATFORM_SIZING[self.s.platform]

    @property
    def internal_bridge(self) -> str:
        """A fixed Linux bridge name (max 15 chars), so a host firewall rule can name it."""
        return "sg-" + hashlib.sha256(self.s.project.encode()).hexdigest()[:8] + "-in"


def node_red_tag(stack: Stack) -> str:
    """The Node-RED image tag: the spec's version, else the contract's newest tag for the platform
    (Node-RED 5 dropped 32-bit ARM, so linux/arm/v7 gets the newest 4.1.x)."""
    return stack.node_red.version or load_contract("node-red").tag_for(stack.platform).tag


def version_notes(stack: Stack) -> list[str]:
    """What a user should know about the versions chosen for their platform (printed by init)."""
    notes = []
    contract = load_contract("node-red")
    newest, chosen = contract.tags[0], contract.tag_for(stack.platform)
    if not stack.node_red.version and not stack.images.node_red and chosen is not newest:
        runtime, line = "", ".".join(chosen.version.split(".")[:2])
        if (rt := chosen.runtime) is not None:
            runtime = f" It runs on {rt.name} {rt.major}"
            if rt.end_of_life is not None:
                ended = rt.end_of_life <= date.today()
                runtime += (f", past end of life upstream since {rt.end_of_life.isoformat()} (no security fixes)" if ended
                            else f", supported upstream until {rt.end_of_life.isoformat()}")
            runtime += "."
        notes.append(
            f"Node-RED {newest.major} publishes no {stack.platform} image: this stack pins Node-RED {chosen.version} "
            f"({contract.image}:{chosen.tag}), the newest {line}.x.{runtime} "
            f"On a Raspberry Pi 3, 4 or 5, a 64-bit OS (linux/arm64) gets Node-RED {newest.version}."
        )
    return notes


def certbot_image(stack: Stack) -> str:
    """certbot's official image, or the official image of the stack's DNS plugin."""
    if stack.tls.mode == "certbot-dns01":
        dns = load_contract("certbot-dns")
        plugin = dns.plugin(stack.tls.dns_provider or "")
        assert plugin is not None, "spec.DnsProvider is derived from the same contract"
        return f"{plugin.image}:{dns.tag_for(stack.platform).tag}"
    return load_contract("certbot").reference(stack.platform)


def default_images(stack: Stack) -> dict[str, str]:
    """Image per service: the spec's override, else stackgen's pinned default (from the contracts). Several Node-RED
    instances: each instance's service its own (its view's), then the edge and certbot."""
    if stack.instances is not None:
        shared = default_images(stack.view(stack.instances[0]))
        own = {inst.service: default_images(stack.view(inst))["node-red"] for inst in stack.instances}
        return own | {service: image for service, image in shared.items() if service != "node-red"}
    return {
        "node-red": stack.images.node_red or f"{load_contract('node-red').image}:{node_red_tag(stack)}",
        "edge": stack.images.edge or edge(stack.edge).image_contract().reference(stack.platform),
        "certbot": stack.images.certbot or certbot_image(stack),
    }

