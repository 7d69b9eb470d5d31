"""Roles from evidence, not image names alone (issue 11, part 3): locally built or renamed services keep
their role; healthchecks, routing labels, exposed ports and data directories count; a service routed by
a label-driven proxy is its upstream, never the edge; databases are databases; a stack's only publisher
bridging into internal networks is its edge; `--explain` says why."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stackgen.cli.verify import main, register
from stackgen.roles import Evidence, infer_role
from stackgen.topology import Role
from stackgen.verify.pipeline import verify


def judge(tmp_path: Path, text: str):
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return verify([path], project_dir=tmp_path, fail_on=None)


def roles(result) -> dict[str, tuple[Role, str]]:
    return {name: (svc.role, svc.role_from) for name, svc in result.topology.services.items()}


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("  flows:\n    build: ./node-red\n", (Role.NODE_RED, "build")),
        ("  flows:\n    build: {context: ., dockerfile: nodered.Dockerfile}\n", (Role.NODE_RED, "build")),
        ("  flows:\n    image: registry.local/automation:3\n    command: [node, node_modules/node-red/red.js]\n", (Role.NODE_RED, "command")),
        ("  flows:\n    image: registry.local/automation:3\n    expose: [\"1880\"]\n", (Role.NODE_RED, "port 1880")),
        ("  node_red:\n    build: .\n", (Role.NODE_RED, "name")),
        ("  reverse_proxy:\n    build: ./proxy\n", (Role.EDGE, "name")),
        ("  web:\n    build: ./nginx\n", (Role.EDGE, "build")),
        ("  db:\n    image: postgres:16\n", (Role.DATABASE, "image")),
        ("  cache:\n    image: registry.local/cache:1\n", (Role.OTHER, "none")),
    ],
)
def test_roles_of_built_and_renamed_services(tmp_path, service, expected):
    assert roles(judge(tmp_path, "services:\n" + service))[service.split(":")[0].strip()] == expected


def test_the_image_still_wins_over_a_misleading_name(tmp_path):
    result = judge(tmp_path, "services:\n  proxy:\n    image: nodered/node-red:5.0.7\n")
    assert roles(result)["proxy"] == (Role.NODE_RED, "image")


GENERIC_WEB_STACK = """
services:
  app:
    image: ghcr.io/example/shop:2.3.1
    read_only: true
    user: "1000:1000"
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    ports: ["127.0.0.1:8443:8443"]
    networks: [frontend, backend]
  db:
    image: postgres:16.4
    user: "999:999"
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    networks: [backend]
    volumes: ["/var/lib/shop-db:/var/lib/postgresql/data"]
networks:
  frontend: {}
  backend:
    internal: true
"""


def test_a_generic_web_stacks_only_publisher_bridging_into_internal_is_its_edge(tmp_path):
    result = judge(tmp_path, GENERIC_WEB_STACK)
    assert roles(result)["app"] == (Role.EDGE, "topology")
    active = {(f.rule, f.service) for f in result.findings if not f.suppressed}
    assert ("SG101", "app") not in active, "the edge is allowed to publish"
    assert not [f for f in result.findings if f.rule == "SG004"], "a database's data directory under /var/lib is not a sensitive host path"


def test_two_publishers_are_not_guessed(tmp_path):
    text = GENERIC_WEB_STACK.replace("    networks: [backend]\n    volumes", "    ports: [\"5432:5432\"]\n    networks: [backend, frontend]\n    volumes")
    assert {name: r for name, (r, _) in roles(judge(tmp_path, text)).items()} == {"app": Role.OTHER, "db": Role.DATABASE}


def role_of(tmp_path: Path, service: str) -> tuple[Role, str]:
    name = service.split(":")[0].strip()
    return roles(judge(tmp_path, "services:\n" + service))[name]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        # Node-RED's healthcheck: a probe of port 1880, or the image's own /healthcheck.js beside its /data
        ("  flows:\n    image: registry.local/automation:3\n    healthcheck:\n      test: [CMD, curl, -f, 'http://localhost:1880/']\n",
         (Role.NODE_RED, "healthcheck")),
        ("  flows:\n    image: registry.local/automation:3\n    volumes: ['./data:/data']\n    healthcheck:\n      test: node /healthcheck.js\n",
         (Role.NODE_RED, "healthcheck")),
        # an edge's own check of its configuration
        ("  front:\n    build: ./web\n    healthcheck:\n      test: [CMD, nginx, -t]\n", (Role.EDGE, "healthcheck")),
        ("  front:\n    image: registry.local/front:2\n    healthcheck:\n      test: [CMD, traefik, healthcheck, --ping]\n", (Role.EDGE, "healthcheck")),
        # a database's readiness probe
        ("  store:\n    image: registry.local/store:1\n    healthcheck:\n      test: [CMD, pg_isready, -U, app]\n", (Role.DATABASE, "healthcheck")),
        (
            "  store:\n    image: registry.local/store:1\n    healthcheck:\n      test: [CMD-SHELL, 'redis-cli ping | grep PONG']\n",
            (Role.DATABASE, "healthcheck"),
        ),
    ],
)
def test_healthcheck_evidence(tmp_path, service, expected):
    assert role_of(tmp_path, service) == expected


@pytest.mark.parametrize(
    "service",
    [
        # a generic Node.js app's /healthcheck.js, without Node-RED's /data: not Node-RED
        "  api:\n    image: registry.local/api:1\n    healthcheck:\n      test: node /healthcheck.js\n",
        # a check of some other port
        "  api:\n    image: registry.local/api:1\n    healthcheck:\n      test: [CMD, wget, -q, 'http://127.0.0.1:8080/health']\n",
        # a disabled healthcheck says nothing
        "  api:\n    image: registry.local/api:1\n    healthcheck:\n      test: [CMD, pg_isready]\n      disable: true\n",
        "  api:\n    image: registry.local/api:1\n    healthcheck:\n      test: [NONE]\n",
    ],
)
def test_healthchecks_that_say_nothing_about_a_role(tmp_path, service):
    assert role_of(tmp_path, service)[0] is Role.OTHER


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        # Traefik routes to Grafana: Grafana is its upstream, not the edge
        ("  grafana:\n    image: grafana/grafana:11.2.0\n    labels:\n      - traefik.enable=true\n"
         "      - traefik.http.routers.grafana.rule=Host(`grafana.example.org`)\n", (Role.OTHER, "routed")),
        # a plain NGINX serving a site behind Traefik, or behind nginx-proxy, is not the edge either
        ("  site:\n    image: nginx:1.27\n    labels: {traefik.http.routers.site.rule: 'Host(`example.org`)'}\n", (Role.OTHER, "image")),
        ("  site:\n    image: nginx:1.27\n    environment: {VIRTUAL_HOST: example.org}\n", (Role.OTHER, "image")),
        # ...nor is a service whose *name* says proxy, once it carries another proxy's routes
        ("  proxy:\n    build: ./app\n    labels: {traefik.enable: 'true', traefik.http.routers.app.rule: 'Host(`a.example.org`)'}\n",
         (Role.OTHER, "routed")),
        # caddy-docker-proxy's upstreams
        ("  whoami:\n    image: traefik/whoami:v1.10\n    labels: {caddy: example.org, caddy.reverse_proxy: '{{upstreams 80}}'}\n",
         (Role.OTHER, "routed")),
        # but the proxy's own image stays the edge, even with labels for its own dashboard
        ("  traefik:\n    image: traefik:v3.1\n    labels: [traefik.enable=true, traefik.http.routers.api.service=api@internal]\n",
         (Role.EDGE, "image")),
        ("  traefik:\n    build: ./bin/traefik\n    labels: [traefik.http.routers.api.service=api@internal]\n", (Role.EDGE, "build")),
        ("  traefik:\n    build: ./bin/traefik\n    labels: [traefik.enable=true, traefik.http.middlewares.auth.basicauth.users=u:p]\n",
         (Role.EDGE, "build")),
        # routed to port 1880: that is Node-RED, whatever its image
        ("  flows:\n    image: registry.local/flows:1\n    labels: [traefik.http.services.flows.loadbalancer.server.port=1880]\n",
         (Role.NODE_RED, "port 1880")),
        ("  flows:\n    image: registry.local/flows:1\n    labels: {caddy: flows.example.org, caddy.reverse_proxy: '{{upstreams 1880}}'}\n",
         (Role.NODE_RED, "port 1880")),
        ("  flows:\n    image: registry.local/flows:1\n    environment: {VIRTUAL_HOST: flows.example.org, VIRTUAL_PORT: '1880'}\n",
         (Role.NODE_RED, "port 1880")),
        # the user's statement wins over every label
        ("  grafana:\n    image: grafana/grafana:11.2.0\n    labels: [traefik.enable=true]\n    x-stackgen: {role: edge}\n",
         (Role.EDGE, "x-stackgen")),
    ],
)
def test_routing_labels_evidence(tmp_path, service, expected):
    assert role_of(tmp_path, service) == expected


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("  store:\n    image: registry.local/store:1\n    expose: ['5432']\n", (Role.DATABASE, "port")),
        ("  store:\n    image: registry.local/store:1\n    expose: ['1880', '5432']\n", (Role.NODE_RED, "port 1880")),
        ("  store:\n    image: bitnami/postgresql:16\n", (Role.DATABASE, "image")),
        ("  store:\n    image: hypriot/rpi-influxdb\n", (Role.DATABASE, "image")),
        ("  store:\n    build: ./bin/mysql\n", (Role.DATABASE, "build")),
        ("  store:\n    image: registry.local/cache:1\n    command: redis-server --appendonly yes\n", (Role.DATABASE, "command")),
        ("  store:\n    image: registry.local/store:1\n    volumes: ['pgdata:/var/lib/postgresql/data']\n", (Role.DATABASE, "mounts")),
        ("  nextcloud-db:\n    image: registry.local/store:1\n", (Role.DATABASE, "name")),
        ("  store:\n    image: registry.local/store:1\n    x-stackgen: {role: database}\n", (Role.DATABASE, "x-stackgen")),
        # tools around a database are not the database
        ("  backup:\n    image: zeenlym/mariadb-backup\n", (Role.OTHER, "none")),
        ("  metrics:\n    image: prometheuscommunity/postgres-exporter:v0.15.0\n", (Role.OTHER, "none")),
        ("  db-admin:\n    image: adminer:4\n", (Role.OTHER, "none")),
        # certificate managers
        ("  companion:\n    image: nginxproxy/acme-companion:2.4\n", (Role.CERTBOT, "image")),
        # proxies by name, but not a proxy of the engine socket
        ("  myproxy:\n    build: ./services/myproxy\n", (Role.EDGE, "name")),
        ("  socket-proxy:\n    image: registry.local/socket-proxy:1\n", (Role.OTHER, "none")),
    ],
)
def test_exposed_ports_data_dirs_and_database_evidence(tmp_path, service, expected):
    assert role_of(tmp_path, service) == expected


REDIS_BRIDGE = """
services:
  cache:
    image: redis:7.4
    ports: ["6379:6379"]
    networks: [frontend, backend]
  app:
    image: registry.local/app:1
    networks: [backend]
networks:
  frontend: {}
  backend:
    internal: true
"""


def test_a_database_bridging_into_internal_is_a_database_not_the_edge(tmp_path):
    """The only publisher bridging into an internal network would be the edge, but a Redis is a database:
    judged as one, its published port and its bridge are findings, not the edge's job."""
    result = judge(tmp_path, REDIS_BRIDGE)
    assert roles(result)["cache"] == (Role.DATABASE, "image")
    active = {(f.rule, f.service): f for f in result.findings if not f.suppressed}
    assert ("SG101", "cache") in active and active[("SG101", "cache")].message.startswith("database publishes ports")
    assert ("SG109", "cache") in active


def test_a_routed_only_publisher_is_not_made_the_edge(tmp_path):
    text = GENERIC_WEB_STACK.replace("    networks: [frontend, backend]", "    networks: [frontend, backend]\n    labels: [traefik.enable=true]")
    result = judge(tmp_path, text)
    assert roles(result)["app"] == (Role.OTHER, "routed")
    assert ("SG101", "app") in {(f.rule, f.service) for f in result.findings if not f.suppressed}


def test_reasons_say_why(tmp_path):
    result = judge(tmp_path, GENERIC_WEB_STACK)
    services = result.topology.services
    assert services["app"].role_reason == "the only publisher, bridging internal network `backend` and routed network `frontend`"
    assert services["db"].role_reason == "image postgres"
    built = judge(tmp_path, "services:\n  flows:\n    build: ./node-red\n  site:\n    build: {context: ./site}\n").topology.services
    assert built["flows"].role_reason == "build context ./node-red"
    assert built["site"].role_reason == "no evidence of a role (build context ./site)"


def test_evidence_is_a_string_that_keeps_its_reason():
    role, evidence = infer_role("nodered/node-red:4.0.9", {})
    assert (role, evidence) == (Role.NODE_RED, "image") and evidence.reason == "image nodered/node-red"
    for again in (copy.deepcopy(evidence), pickle.loads(pickle.dumps(evidence))):
        assert isinstance(again, Evidence) and again == "image" and again.reason == evidence.reason and again.rank == evidence.rank


EXPLAINED = GENERIC_WEB_STACK.replace("networks:\n  frontend", "  cache:\n    image: redis:7.4\n    networks: [backend]\nnetworks:\n  frontend")


def test_explain_in_text_before_the_findings(tmp_path, capsys):
    path = tmp_path / "compose.yaml"
    path.write_text(EXPLAINED)
    assert main(["verify", str(path), "--explain", "--fail-on", "none"]) == 0
    out = capsys.readouterr().out
    head, _, rest = out.partition("\n\n")
    assert head.splitlines() == [
        "roles:",
        "  app    edge      the only publisher, bridging internal network `backend` and routed network `frontend`",
        "  db     database  image postgres",
        "  cache  database  image redis",
    ]
    assert "PASS" in rest or "FAIL" in rest
    assert main(["verify", str(path), "--fail-on", "none"]) == 0
    assert "roles:" not in capsys.readouterr().out


def test_explain_in_json_and_through_typer(tmp_path, capsys):
    path = tmp_path / "compose.yaml"
    path.write_text(EXPLAINED)
    assert main(["verify", str(path), "--explain", "--format", "json", "--fail-on", "none"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["services"]["app"] == {
        "role": "edge", "evidence": "topology",
        "reason": "the only publisher, bridging internal network `backend` and routed network `frontend`"}
    assert data["services"]["cache"] == {"role": "database", "evidence": "image", "reason": "image redis"}
    assert main(["verify", str(path), "--format", "json", "--fail-on", "none"]) == 0
    assert "services" not in json.loads(capsys.readouterr().out), "without --explain the JSON report is unchanged"

    app = typer.Typer(add_completion=False)
    register(app)
    result = CliRunner().invoke(app, ["verify", str(path), "--explain", "--format", "json", "--fail-on", "none"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["services"] == data["services"]
    result = CliRunner().invoke(app, ["verify", str(path), "--explain", "--fail-on", "none"])
    assert result.output.startswith("roles:\n  app    edge ")


def test_explain_is_one_stack_at_a_time(tmp_path, capsys):
    path = tmp_path / "compose.yaml"
    path.write_text(EXPLAINED)
    assert main(["verify", "--each", str(tmp_path), "--explain"]) == 2
    assert "--explain" in capsys.readouterr().err


def test_a_database_has_its_own_shape_in_the_diagram(tmp_path):
    from stackgen.verify.mermaid import render_mermaid

    result = judge(tmp_path, REDIS_BRIDGE)
    assert '[("cache · database")]' in render_mermaid(result.topology, result.findings)
