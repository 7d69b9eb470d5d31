"""One entry per edge (Caddy, NGINX, Traefik): every fact stackgen relies on about it, in one record.

Why one record: the facts about an edge used to be spread over `render` (config files, env,
healthcheck, stop signal), `renewal` (how to reload it) and `topology` (how to recognise its
image); adding an edge, or changing one, meant finding them all. Now `render` builds the edge
service and its files from `EDGES[stack.edge]`, `operate.renewal` reloads with its
`reload_command`, and a unit test holds verify's image recognition (`roles.infer_role`,
which sits below `generate/` and so cannot import this) to each edge's `images`.

What stays in the blueprints: the entrypoint's shell (`edge/entrypoint.sh.j2`: start, reload
and activate, written against `$STATE`), which reads the stop signals from here.
Plain data, no I/O: importing this costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from stackgen.constants import HTTP_INSIDE

if TYPE_CHECKING:
    from stackgen.upstream.contracts import Contract

# Inside the edge container: where its rendered files are mounted, and where the entrypoint keeps the
# active config (a copy it reloads from, so a half-written new file is never what runs).
EDGE_CONF_DIR = "/etc/stackgen/edge"
EDGE_STATE_DIR = "/tmp/stackgen"

# The certbot sidecar's deploy hook (certbot runs it through a shell after each issuance and renewal):
# the words of one command line, written into run.sh (`| words`) and given to `certbot renew` by renewal.
DEPLOY_HOOK_WORDS = ("/bin/sh", "/etc/stackgen/certbot/deploy-hook.sh")
DEPLOY_HOOK = " ".join(DEPLOY_HOOK_WORDS)

# The edge's own health endpoint, answered on plain HTTP by the Caddy and NGINX configs we render.
_HEALTH_URL = f"http://127.0.0.1:{HTTP_INSIDE}/.well-known/stackgen-health"
_WGET_HEALTH = ("CMD", "wget", "-q", "-O", "/dev/null", _HEALTH_URL)


@dataclass(frozen=True)
class ConfigFile:
    """One file the edge reads: `edge/NAME` in the stack directory, `EDGE_CONF_DIR/NAME` inside."""

    name: str
    template: str  # under stackgen/generate/blueprints/
    bootstrap: bool | None = None  # the template's `bootstrap` flag (None: the template has none)


@dataclass(frozen=True)
class Edge:
    """The facts about one edge program."""

    name: str  # the spec's `edge:` value
    contract: str  # stackgen/upstream/contracts/<contract>.yaml: default image, stop signal, file capabilities
    images: tuple[str, ...]  # image repositories that are this program (verify recognises the edge by them)
    configs: tuple[ConfigFile, ...]  # rendered in this order, mounted after entrypoint.sh
    full_config: str  # the config with TLS (the entrypoint activates it once a certificate is there)
    bootstrap_config: str  # HTTP only, until the first certificate (the entrypoint's first config)
    healthcheck: tuple[str, ...]
    graceful_stop: str  # the signal for "finish what you serve, then exit" (the entrypoint relays it)
    fast_stop: str  # the signal for "exit now" (after the grace period)
    reload_command: tuple[str, ...] | None  # exec'd inside the edge for a graceful reload; None: it watches its files
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # always set
    env_edge_acme: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # set over `env` when the edge obtains its own certificate
    ca_bundle_env: str | None = None  # edge-acme with tls.ca_bundle: the variable that makes its ACME client trust it

    @property
    def mounted(self) -> tuple[str, ...]:
        """The files under `edge/` the edge service mounts (the entrypoint first)."""
        return ("entrypoint.sh", *(c.name for c in self.configs))

    def environment(self, *, edge_acme: bool, ca_bundle_in_edge: str | None) -> dict[str, str]:
        """The edge-specific environment, added after TZ and the stop deadline."""
        env = dict(self.env)
        if edge_acme:
            env.update(self.env_edge_acme)
            if self.ca_bundle_env and ca_bundle_in_edge:
                env[self.ca_bundle_env] = ca_bundle_in_edge
        return env

    def image_contract(self) -> Contract:
        from stackgen.upstream.contracts import load_contract

        return load_contract(self.contract)


EDGES: Mapping[str, Edge] = MappingProxyType({
    "caddy": Edge(
        name="caddy",
        contract="caddy",
        images=("caddy",),
        configs=(ConfigFile("Caddyfile", "caddy/Caddyfile.j2", False),
                 ConfigFile("Caddyfile.bootstrap", "caddy/Caddyfile.j2", True)),
        full_config="Caddyfile",
        bootstrap_config="Caddyfile.bootstrap",
        healthcheck=_WGET_HEALTH,
        graceful_stop="TERM",
        fast_stop="QUIT",
        reload_command=("caddy", "reload", "--config", f"{EDGE_STATE_DIR}/Caddyfile", "--adapter", "caddyfile", "--force"),
        # Caddy writes $XDG_CONFIG_HOME (autosave) and $XDG_DATA_HOME (locks, OCSP) even when it obtains
        # no certificate. A tmpfs over the image's /config or /data would take that directory's owner and
        # mode (root, 0755: the engine copies them from the image), unwritable for uid 101; /tmp is 1777.
        env=MappingProxyType({"XDG_CONFIG_HOME": "/tmp/caddy/config", "XDG_DATA_HOME": "/tmp/caddy/data"}),
        env_edge_acme=MappingProxyType({"XDG_DATA_HOME": "/data"}),  # its ACME account and certificates: a volume
    ),
    "nginx": Edge(
        name="nginx",
        contract="nginx",
        images=("nginx", "nginx-unprivileged", "nginxinc/nginx-unprivileged"),
        configs=(ConfigFile("nginx.conf", "nginx/nginx.conf.j2", False),
                 ConfigFile("nginx.bootstrap.conf", "nginx/nginx.conf.j2", True)),
        full_config="nginx.conf",
        bootstrap_config="nginx.bootstrap.conf",
        healthcheck=_WGET_HEALTH,
        graceful_stop="QUIT",
        fast_stop="TERM",
        reload_command=("sh", "-c", f"nginx -e stderr -c {EDGE_STATE_DIR}/nginx.conf -t -q && "
                                    f"nginx -e stderr -c {EDGE_STATE_DIR}/nginx.conf -s reload"),
    ),
    "traefik": Edge(
        name="traefik",
        contract="traefik",
        images=("traefik",),
        configs=(ConfigFile("traefik.yml", "traefik/traefik.yml.j2"),
                 ConfigFile("dynamic.yml", "traefik/dynamic.yml.j2", False),
                 ConfigFile("dynamic.bootstrap.yml", "traefik/dynamic.yml.j2", True)),
        full_config="dynamic.yml",
        bootstrap_config="dynamic.bootstrap.yml",
        healthcheck=("CMD", "traefik", "healthcheck", "--ping", f"--configFile={EDGE_CONF_DIR}/traefik.yml"),
        graceful_stop="TERM",
        fast_stop="KILL",
        reload_command=None,  # Traefik's file provider watches its directory: a new file is the reload
        ca_bundle_env="LEGO_CA_CERTIFICATES",  # lego, Traefik's ACME client
    ),
})


def edge(name: str) -> Edge:
    """The record of the edge `name` (`caddy`, `nginx`, `traefik`)."""
    return EDGES[name]
