"""Roles from evidence, not image names alone (issue 11, part 3): locally built or renamed services keep
their role, and a stack's only publisher bridging into internal networks is its edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.topology import Role
from stackgen.verify import verify


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
        ("  db:\n    image: postgres:16\n", (Role.OTHER, "none")),
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
    assert {r for r, _ in roles(judge(tmp_path, text)).values()} == {Role.OTHER}
