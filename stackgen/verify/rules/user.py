"""Who the process runs as: root, said out loud or left to the image."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology
from stackgen.verify.rules.base import Rule

# Images whose default user is not root, so a missing `user:` is not root.
NON_ROOT_IMAGES = {
    "nodered/node-red",  # USER node-red (uid 1000)
    "nginxinc/nginx-unprivileged",
    "grafana/grafana",
    "prom/prometheus",
    "prom/alertmanager",
    "prom/node-exporter",
    "gcr.io/distroless/static-debian12:nonroot",
}


def is_root(user: str) -> bool:
    """`root`, `0`, `root:x`, `0:1500` - uid 0, whatever the group."""
    name = user.strip().split(":", 1)[0]
    return name in ("root", "0")


ROOT_USER = Rule(
    id="SG018",
    name="root-user",
    severity=Severity.HIGH,
    title="Runs as root",
    why="""`user: root` (or uid 0 with any group, `0:1500`) runs the process as root: any escape or
    writable host mount is then root on the host, and files it writes into volumes are root-owned.
    Forum compose files often add it to paper over volume permissions; fix the ownership instead.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            user: root
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            user: "1000:1000"
    """,
    fix='Set a non-root uid:gid (`user: "1000:1000"`) and chown the volume once '
    "(`docker run --rm -v VOL:/data alpine chown -R 1000:1000 /data`).",
    compose_lint=("CL-0018",),
)


@ROOT_USER.per_service
def _root_user(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.user is not None and is_root(svc.user):
        yield f"runs as root (`user: {svc.user}`)", svc.at("user")


NO_USER = Rule(
    id="SG019",
    name="no-user",
    severity=Severity.MEDIUM,
    title="No user set (the image default is usually root)",
    why="""Without `user:`, the container runs as the image's default user, which for most images
    is root. Saying the uid in the compose file makes non-root a property of the stack, not an
    accident of the image.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4
            user: "101:101"
    """,
    fix='Add `user: "UID:GID"` with a non-root uid the image can run as.',
    compose_lint=(),
)


@NO_USER.per_service
def _no_user(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.user is None and svc.image_name not in NON_ROOT_IMAGES and (svc.image or "") not in NON_ROOT_IMAGES:
        yield "no `user:`, so it runs as the image's default user (root for most images)", svc.src


RULES = (ROOT_USER, NO_USER)
