"""Logs: keep them (an intrusion leaves traces) and bound them (a flood must not fill the disk)."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology
from stackgen.verify.rules.base import Rule

LOGGING_DISABLED = Rule(
    id="SG033",
    name="logging-disabled",
    severity=Severity.LOW,
    title="Logging disabled",
    why="""`logging: {driver: none}` throws the service's output away: failed logins, crashes and an
    intruder's traces with it.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
            logging: {driver: none}
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4
            logging:
              driver: json-file
              options: {max-size: 10m, max-file: "3"}
    """,
    fix="Use `json-file` (or `local`) with rotation, or ship logs to a collector.",
    compose_lint=("CL-0014",),
)


@LOGGING_DISABLED.per_service
def _logging_disabled(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.logging and (svc.logging.driver or "").lower() == "none":
        yield "logging driver is `none`: output is discarded", svc.logging.src or svc.at("logging")


LOG_ROTATION = Rule(
    id="SG034",
    name="no-log-rotation",
    severity=Severity.LOW,
    title="Logs not rotated",
    why="""The default `json-file` driver keeps logs forever unless `max-size` is set (here or in the
    daemon's config, which a compose file cannot see): a noisy or attacked service fills the disk and
    takes every service down with it.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            logging:
              driver: json-file
              options: {max-size: 10m, max-file: "3"}
    """,
    fix='Set `logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}` (or driver `local`).',
)


@LOG_ROTATION.per_service
def _log_rotation(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    driver = (svc.logging.driver if svc.logging else None) or "json-file"
    options = svc.logging.options if svc.logging else {}
    if driver.lower() == "json-file" and "max-size" not in options:
        where = (svc.logging.src if svc.logging else None) or svc.at("logging")
        yield "json-file logs without `max-size` grow without bound", where


RULES = (LOGGING_DISABLED, LOG_ROTATION)
