"""The editor private, the endpoints public: where each edge's rules land (node_red.editor)."""

from __future__ import annotations

import re

import pytest
import yaml

from stackgen.generate.render import render
from stackgen.spec import Stack
from tests import golden
from tests.support import config_lexers as lex


def stack(edge: str, mode: str = "certbot-http01", **editor) -> Stack:
    spec = golden.golden_stack(edge, mode).model_dump(exclude_none=True)
    spec["node_red"]["editor"] = {**spec["node_red"]["editor"], **editor}
    return Stack.model_validate(spec)


def files(s: Stack) -> dict[str, str]:
    return {f.path: f.content.decode() for f in render(s)}


def settings_root(s: Stack) -> str:
    return re.search(r"httpAdminRoot: (.*),", files(s)["node-red/settings.js"]).group(1)


def test_node_red_serves_the_editor_under_its_prefix_and_endpoints_at_the_root():
    text = files(stack("caddy"))["node-red/settings.js"]
    assert 'httpAdminRoot: "/editor"' in text and 'httpNodeRoot: "/"' in text


# --- Caddy ----------------------------------------------------------------------------------------------


def caddy_site(s: Stack) -> list[list[str]]:
    lines = [[t.text for t in line] for line in lex.caddyfile_lines(files(s)["edge/Caddyfile"])]
    start = next(i for i, line in enumerate(lines) if line[0] == "tls")
    return lines[start:]


def test_caddy_refuses_the_editor_prefix_to_clients_outside_allow():
    site = caddy_site(stack("caddy", allow=["10.0.0.0/8", "fd00::/8"]))
    at = site.index(["@editor_outsider", "{"])
    assert site[at + 1:at + 4] == [["path", "/editor", "/editor/*"], ["not", "remote_ip", "10.0.0.0/8", "fd00::/8"], ["}"]]
    assert ["respond", "@editor_outsider", "forbidden", "403"] in site
    proxy = site.index(["reverse_proxy", "node-red:1880", "{"])
    assert at < proxy, "the matcher sits in the TLS site, next to the proxy"
    assert not any(line[0] == "@editor_host_outsider" for line in site)


def test_caddy_holds_the_editor_host_to_allow_too():
    site = caddy_site(stack("caddy", "certbot-dns01", host="example.org"))
    at = site.index(["@editor_host_outsider", "{"])
    assert site[at + 1][:2] == ["host", "example.org"] and site[at + 2][:2] == ["not", "remote_ip"]
    assert ["respond", "@editor_host_outsider", "forbidden", "403"] in site


def test_caddy_with_the_editor_at_the_root_gates_every_path():
    site = caddy_site(stack("caddy", path="/"))
    assert ["path", "/", "/*"] in site


def test_no_gate_when_the_editor_is_off():
    s = stack("caddy", enabled=False)
    assert "editor_outsider" not in files(s)["edge/Caddyfile"]
    assert "$editor" not in files(stack("nginx", enabled=False))["edge/nginx.conf"]
    assert "editor-allow" not in files(stack("traefik", enabled=False))["edge/dynamic.yml"]


def test_the_bootstrap_configs_serve_no_editor_and_carry_no_gate():
    assert "editor_outsider" not in files(stack("caddy"))["edge/Caddyfile.bootstrap"]
    assert "$editor" not in files(stack("nginx"))["edge/nginx.bootstrap.conf"]


# --- NGINX ----------------------------------------------------------------------------------------------


def nginx(s: Stack, name: str = "edge/nginx.conf") -> list[lex.Directive]:
    return lex.nginx_directives(files(s)[name])


def test_nginx_maps_allow_and_the_prefix_and_refuses_at_the_server_level():
    directives = nginx(stack("nginx", path="/red.v2", allow=["192.168.0.0/16", "::1/128"]))
    geo = [d.words[0].text if d.name != "default" else None for d in directives if d.context[-1:] == ("geo",)]
    assert geo == [None, "192.168.0.0/16", "::1/128"]
    uri_map = [d for d in directives if d.context[-1:] == ("map",) and d.name.startswith("~")]
    assert [d.name for d in uri_map] == [r"~*^/red\.v2(?:/|$)"]
    pattern = re.compile(uri_map[0].name[2:], re.I)
    assert pattern.search("/red.v2") and pattern.search("/RED.V2/flows") and pattern.search("/red.v2/comms")
    assert not pattern.search("/red.v2x") and not pattern.search("/redxv2/flows") and not pattern.search("/api/red.v2")
    ifs = [d for d in directives if d.name == "if"]
    assert len(ifs) == 1 and ifs[0].context == ("http", "server") and ifs[0].args == ["($editor_refused)"]
    returns = [d for d in directives if d.context == ("http", "server", "if")]
    assert [d.args for d in returns] == [["403"]]


def test_nginx_refuses_only_editor_traffic_from_outside():
    directives = nginx(stack("nginx", "certbot-dns01", host="example.org"))
    verdicts = {d.name: d.args for d in directives if d.context[-1:] == ("map",) and d.name.isdigit()}
    # path, host, client allowed -> refused
    assert verdicts == {"100": ["1"], "010": ["1"], "110": ["1"]}
    host_map = [d.name for d in directives if d.context[-1:] == ("map",) and d.name == "example.org"]
    assert host_map == ["example.org"]


def test_nginx_with_the_editor_at_the_root_gates_every_path():
    uri_map = [d.name for d in nginx(stack("nginx", path="/")) if d.context[-1:] == ("map",) and d.name.startswith("~")]
    assert uri_map == ["~*^(?:/|$)"]


# --- Traefik --------------------------------------------------------------------------------------------


def traefik(s: Stack) -> dict:
    return yaml.safe_load(files(s)["edge/dynamic.yml"])


def test_traefik_routes_the_editor_through_an_allow_list_on_the_peer_address():
    document = traefik(stack("traefik", allow=["10.0.0.0/8", "fd00::/8"]))
    router = document["http"]["routers"]["node-red-editor"]
    assert router["rule"] == "(Host(`nodered.example.org`) || Host(`flows.example.org`)) && PathRegexp(`(?i)^/editor(/|$)`)"
    assert router["priority"] > 10000 and router["service"] == "node-red"
    assert router["middlewares"][0] == "editor-allow" and "security-headers" in router["middlewares"]
    assert router["tls"] == document["http"]["routers"]["node-red"]["tls"]
    allow = document["http"]["middlewares"]["editor-allow"]["ipAllowList"]
    assert allow == {"sourceRange": ["10.0.0.0/8", "fd00::/8"]}, "no ipStrategy: the TCP peer, not X-Forwarded-For"
    assert "editor-allow" not in document["http"]["routers"]["node-red"].get("middlewares", [])


def test_traefik_editor_host_and_root_path():
    rule = traefik(stack("traefik", "certbot-dns01", host="example.org", path="/"))["http"]["routers"]["node-red-editor"]["rule"]
    assert rule.endswith("&& PathRegexp(`(?i)^(/|$)`)) || Host(`example.org`)")


def test_traefik_path_regexp_escapes_dots():
    rule = traefik(stack("traefik", path="/a.b"))["http"]["routers"]["node-red-editor"]["rule"]
    assert r"PathRegexp(`(?i)^/a\.b(/|$)`)" in rule


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_every_edge_config_names_every_allowed_network(edge):
    networks = ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32", "fc00::/7"]
    text = "".join(v for k, v in files(stack(edge, allow=networks)).items() if k.startswith("edge/") and "bootstrap" not in k)
    for network in networks:
        assert network in text


def test_the_stack_readme_says_who_reaches_the_editor():
    text = files(stack("caddy", allow=["0.0.0.0/0", "::/0"]))["README.md"]
    assert "/editor" in text and "0.0.0.0/0, ::/0" in text and "only guard" in text
