"""Availability: limits, healthchecks and restarts keep one bad flow from taking the host down."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology
from stackgen.verify.rules.base import Rule

MEMORY = Rule(
    id="SG028",
    name="no-memory-limit",
    severity=Severity.MEDIUM,
    title="No memory limit",
    why="""Without a memory limit, one runaway flow (or an attacker's miner) can exhaust the host's
    memory, and the kernel's OOM killer may pick the edge or the engine instead.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            mem_limit: 512m
    """,
    fix="Set `mem_limit` (or `deploy.resources.limits.memory`).",
    compose_lint=("CL-0026",),
    kics=("Memory Not Limited (bb9ac4f7)",),
)


@MEMORY.per_service
def _memory(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.mem_limit is None:
        yield "no memory limit", svc.src


CPU = Rule(
    id="SG029",
    name="no-cpu-limit",
    severity=Severity.LOW,
    title="No CPU limit",
    why="""Without a CPU limit a busy loop in one service starves the others, including the edge
    that must keep answering TLS handshakes.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            cpus: 1.0
    """,
    fix="Set `cpus` (or `deploy.resources.limits.cpus`).",
    compose_lint=("CL-0026",),
    kics=("Cpus Not Limited (6b610c50)",),
)


@CPU.per_service
def _cpu(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.cpus is None:
        yield "no CPU limit", svc.src


PIDS = Rule(
    id="SG030",
    name="no-pids-limit",
    severity=Severity.MEDIUM,
    title="No process limit",
    why="""Without `pids_limit`, a fork bomb inside one container exhausts the host's process table
    and nothing else can start, not even `docker exec` to fix it.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            pids_limit: 256
    """,
    fix="Set `pids_limit` (or `deploy.resources.limits.pids`) to a few hundred.",
    compose_lint=("CL-0026",),
    kics=("Pids Limit Not Set (221e0658)",),
)


@PIDS.per_service
def _pids(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.pids_limit is None:
        yield "no pids limit", svc.at("pids_limit")


HEALTHCHECK = Rule(
    id="SG031",
    name="no-healthcheck",
    severity=Severity.LOW,
    title="No healthcheck",
    why="""Without a healthcheck a hung service looks "running": the edge keeps sending traffic to it,
    `depends_on: condition: service_healthy` cannot order startup, and the supervisor cannot
    restart it. (Images may ship a HEALTHCHECK; a static check cannot see it, so state it here.)""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            healthcheck:
              test: ["CMD", "node", "-e", "require('http').get('http://127.0.0.1:1880/')"]
              interval: 10s
    """,
    fix="Add a `healthcheck:` that exercises the service (an HTTP GET, a client ping).",
    kics=("Healthcheck Not Set (698ed579)",),
)


@HEALTHCHECK.per_service
def _healthcheck(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.healthcheck is None:
        yield "no healthcheck", svc.src
    elif svc.healthcheck.disabled:
        yield "healthcheck is disabled", svc.healthcheck.src or svc.at("healthcheck")


RESTART = Rule(
    id="SG032",
    name="no-restart-policy",
    severity=Severity.LOW,
    title="No restart policy",
    why="""Without a restart policy a crashed edge or Node-RED stays down until someone notices, and
    a certbot that died misses renewals.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4
            restart: unless-stopped
    """,
    fix="Set `restart: unless-stopped` (or `on-failure:5` for jobs that may legitimately exit).",
    kics=("Restart Policy On Failure Not Set To 5 (2fc99041)",),
)


@RESTART.per_service
def _restart(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.restart in (None, "", "no"):
        yield "no restart policy" if not svc.restart else "restart policy is `no`", svc.at("restart")


RULES = (MEMORY, CPU, PIDS, HEALTHCHECK, RESTART)
