"""The stack.yaml model: what it accepts, what it refuses, and where it blames."""

from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from stackgen.errors import StackgenError, problems
from stackgen.spec import LETS_ENCRYPT, LETS_ENCRYPT_STAGING, Stack
from stackgen.stackdir import parse_stack
from tests.golden import EXAMPLE_HASH

BASE = {
    "project": "home",
    "domains": ["nodered.example.org"],
    "email": "ops@example.org",
    "node_red": {"admin_password_hash": EXAMPLE_HASH},
}


def with_(**changes):
    spec = copy.deepcopy(BASE)
    for dotted_key, value in changes.items():
        node = spec
        *parents, leaf = dotted_key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return spec


def test_minimal_spec_gets_safe_defaults():
    stack = Stack.model_validate(BASE)
    assert stack.edge == "caddy"
    assert stack.tls.mode == "certbot-http01"
    assert stack.node_red.egress is False
    assert stack.tls.directory_url == LETS_ENCRYPT
    assert stack.cert_name == "nodered.example.org"


def test_staging_switch_selects_staging_directory():
    assert Stack.model_validate(with_(tls__staging=True)).tls.directory_url == LETS_ENCRYPT_STAGING


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"domains": ["not a host"]}, "domains"),
        ({"domains": ["-bad.example.org"]}, "domains"),
        ({"domains": ["192.168.1.10"]}, "domains"),
        ({"domains": []}, "domains"),
        ({"domains": ["a.example.org", "A.example.org"]}, "domains"),
        ({"domains": ["*.example.org"]}, "domains[0]"),
        ({"email": "nobody"}, "email"),
        ({"project": "Has Spaces"}, "project"),
        ({"edge": "apache"}, "edge"),
        ({"platform": "linux/s390x"}, "platform"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"ports__http": 443}, "ports.https"),
        ({"ports__http": 70000}, "ports.http"),
        ({"ports__http": "eighty"}, "ports.http"),
        ({"ports__bind_address": "localhost"}, "ports.bind_address"),
        ({"tls__mode": "certbot-dns01"}, "tls.dns_provider"),
        ({"tls__mode": "files"}, "tls.cert_file"),
        ({"tls__mode": "files", "tls__cert_file": "fullchain.pem", "tls__key_file": "tls/k.pem"}, "tls.cert_file"),
        ({"tls__mode": "files", "tls__cert_file": "tls/c.pem", "tls__key_file": "/privkey.pem"}, "tls.key_file"),
        ({"tls__mode": "files", "tls__cert_file": "tls/../c.pem", "tls__key_file": "tls/k.pem"}, "tls.cert_file"),
        ({"tls__mode": "certbot-dns01", "tls__dns_provider": "gandi", "tls__dns_credentials_file": "g.ini"}, "tls.dns_provider"),
        ({"platform": "linux/arm/v7", "node_red__version": "5.0.7"}, "node_red.version"),
        ({"tls__mode": "edge-acme", "edge": "nginx"}, "tls.mode"),
        ({"tls__acme_directory": "http://insecure.example/dir"}, "tls.acme_directory"),
        ({"tls__staging": True, "tls__acme_directory": "https://ca.example/dir"}, "tls.staging"),
        ({"tls__renew_interval_hours": 0}, "tls.renew_interval_hours"),
        ({"images__edge": "Not An Image"}, "images.edge"),
        ({"node_red__admin_password_hash": "plaintext-password"}, "node_red.admin_password_hash"),
        ({"node_red__memory_limit": "lots"}, "node_red.memory_limit"),
        ({"node_red__extra_nodes": ["ok-node", "BAD NODE"]}, "node_red.extra_nodes"),
        ({"node_red__editor__path": "admin"}, "node_red.editor.path"),
        ({"node_red__surprise": True}, "node_red.surprise"),
        ({"timezone": "Not a zone!"}, "timezone"),
    ],
)
def test_invalid_specs_name_the_field(changes, field):
    spec = copy.deepcopy(BASE)
    for key, value in changes.items():
        node = spec
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    with pytest.raises(ValidationError) as caught:
        Stack.model_validate(spec)
    assert field in [p.field for p in problems(caught.value)]


@pytest.mark.parametrize(
    "changes",
    [
        {"tls__mode": "certbot-dns01", "tls__dns_provider": "cloudflare", "tls__dns_credentials_file": "cf.ini", "domains": ["*.example.org"]},
        {"tls__mode": "files", "tls__cert_file": "tls/c.pem", "tls__key_file": "tls/k.pem"},
        {"tls__mode": "edge-acme", "edge": "traefik"},
        {"tls__mode": "internal", "edge": "nginx"},
        {"tls__acme_directory": "https://pebble:14000/dir", "tls__ca_bundle": "pebble.pem"},
        {"platform": "linux/arm/v7", "node_red__memory_limit": "200m"},
        {"images__node_red": "registry.local:5000/me/node-red:4.0.9@sha256:" + "a" * 64},
        {"node_red__http_node_auth": {"user": "dash", "password_hash": EXAMPLE_HASH}},
        {"node_red__editor": {"enabled": False}},
        {"domains": ["NodeRed.Example.org."]},
    ],
)
def test_valid_variants(changes):
    Stack.model_validate(with_(**changes))


def test_domains_are_normalised():
    assert Stack.model_validate(with_(domains=["NodeRed.Example.org."])).domains == ["nodered.example.org"]


def test_yaml_errors_carry_file_and_line(tmp_path):
    text = "version: 1\nproject: home\ndomains:\n  - nodered.example.org\nemail: ops@example.org\nnode_red:\n  admin_password_hash: nope\n"
    with pytest.raises(StackgenError) as caught:
        parse_stack(text, tmp_path / "stack.yaml")
    assert f"{tmp_path / 'stack.yaml'}:7: node_red.admin_password_hash" in str(caught.value)


def test_malformed_yaml_reports_line_and_column(tmp_path):
    with pytest.raises(StackgenError) as caught:
        parse_stack("project: [unclosed\n", tmp_path / "stack.yaml")
    assert "stack.yaml:2:1: not valid YAML" in str(caught.value)


def test_schema_describes_every_field():
    schema = Stack.model_json_schema()
    assert schema["additionalProperties"] is False

    def walk(node):
        for name, prop in (node.get("properties") or {}).items():
            assert prop.get("description"), name
        for sub in (node.get("$defs") or {}).values():
            walk(sub)

    walk(schema)
    json.dumps(schema)


def test_published_schema_is_current():
    """docs/stack.schema.json is what editors validate stack.yaml with: it must match the models."""
    from pathlib import Path

    published = json.loads((Path(__file__).resolve().parents[2] / "docs" / "stack.schema.json").read_text())
    assert published == json.loads(json.dumps(Stack.model_json_schema())), "regenerate: stackgen schema > docs/stack.schema.json"
