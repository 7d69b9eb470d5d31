"""Facts used in many places, each written once: label names, ports inside containers, uids, choices.

Why one module: the same string in eight places drifts (one module's label key is
misspelt, one copy of the platform list gains an entry the others lack), and a
grep for the fact finds one definition. A leaf: it imports nothing, so the fast
paths (`stackgen verify`, the CLI's option parsing) and the engine facade alike
can read it. Facts that belong to one subsystem stay in it.
"""

from __future__ import annotations

__all__ = [
    "PROJECT_LABEL",
    "SERVICE_LABEL",
    "NETWORK_LABEL",
    "VOLUME_LABEL",
    "ONEOFF_LABEL",
    "NUMBER_LABEL",
    "STACK_NAMESPACE_LABEL",
    "SWARM_SERVICE_LABEL",
    "ROLE_LABEL",
    "UPSTREAM_LABEL",
    "INPUTS_LABEL",
    "PROBE_LABEL",
    "HELPER_LABEL",
    "RESTORED_FROM_LABEL",
    "BUILD_LABEL",
    "CERT_DIRS",
    "NODE_RED_PORT",
    "HTTP_INSIDE",
    "HTTPS_INSIDE",
    "NODE_RED_UID",
    "CERTS_GID",
    "EDGES",
    "TLS_MODES",
    "PLATFORMS",
]

# --- labels Docker Compose puts on what it creates (how the engine facade finds a project's things) ---
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NETWORK_LABEL = "com.docker.compose.network"  # the network's key in the compose file
VOLUME_LABEL = "com.docker.compose.volume"  # the volume's key in the compose file
ONEOFF_LABEL = "com.docker.compose.oneoff"  # "True" on `compose run` containers: not part of the stack
NUMBER_LABEL = "com.docker.compose.container-number"

# --- labels of a swarm stack (`docker stack deploy -c FILE STACK`) ---
# The CLI puts the namespace on everything it creates for the stack (services, their task containers, networks,
# volumes, configs, secrets) and names each `STACK_KEY`; the engine puts the service's name on its task containers.
STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"  # on a task container: `STACK_SERVICE`

# --- stackgen's own labels ---
ROLE_LABEL = "org.stackgen.role"  # a service's role, stated (strongest evidence after x-stackgen)
UPSTREAM_LABEL = "org.stackgen.upstream"  # the edge's upstreams, `node-red:1880[,...]`
INPUTS_LABEL = "org.stackgen.inputs"  # hash of the rendered files a service mounts: changed -> recreated
PROBE_LABEL = "org.stackgen.probe"  # stackgen's short-lived probe containers: never part of a stack
HELPER_LABEL = "org.stackgen.helper"  # short-lived helpers (backup, restore)
RESTORED_FROM_LABEL = "org.stackgen.restored-from"  # on a volume `restore` created: the archive's name
BUILD_LABEL = "org.stackgen.build"  # on a built Node-RED image: the digest of what went into it

# --- where certificate writers keep their state (certbot, acme.sh, lego): the key store ---
CERT_DIRS: tuple[str, ...] = ("/etc/letsencrypt", "/etc/acme", "/acme.sh", "/etc/lego", "/.lego")

# --- ports inside the containers (never published as such) ---
NODE_RED_PORT = 1880  # Node-RED's HTTP port
HTTP_INSIDE = 8080  # the edge's plain-HTTP port (non-root: above 1024)
HTTPS_INSIDE = 8443  # the edge's TLS port
# The header in which the edge asserts the client's address to Node-RED (the login shield counts by it):
# each edge overwrites whatever the client sent (Traefik does so itself for untrusted peers).
CLIENT_ADDRESS_HEADER = "X-Real-IP"

# --- identities ---
NODE_RED_UID = 1000  # Node-RED's user in the official image
CERTS_GID = 1500  # the group that may read the key: certbot writes it, the edge joins it

# --- the choices stack.yaml and `stackgen init` offer (spec.py's Literals are built from these) ---
EDGES: tuple[str, ...] = ("caddy", "nginx", "traefik")
TLS_MODES: tuple[str, ...] = ("certbot-http01", "certbot-dns01", "edge-acme", "internal", "files")
PLATFORMS: tuple[str, ...] = ("linux/amd64", "linux/arm64", "linux/arm/v7")
