"""The login shield as rendered: the spec block and its defaults, settings.js wiring (values only through
`| tojson`), shield.js shipped and mounted, and each edge asserting the client's address in the header the
shield reads (and nothing else able to). The shield's counting itself: test_login_shield_js.py."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from stackgen.constants import CLIENT_ADDRESS_HEADER
from stackgen.generate.render import render
from stackgen.spec import LoginShield, Stack
from tests import golden, invariants
from tests.unit.generate.test_login_shield_js import SHIELD


def tree(edge: str = "caddy", **node_red) -> dict[str, str]:
    stack = golden.golden_stack(edge, "certbot-http01")
    if node_red:
        data = stack.model_dump()
        data["node_red"].update(node_red)
        stack = Stack.model_validate(data)
    return {f.path: f.content.decode() for f in render(stack)}


def test_shield_is_on_by_default_with_sensible_numbers():
    shield = LoginShield()
    assert (shield.enabled, shield.attempts, shield.window_seconds, shield.ban_seconds) == (True, 5, 600, 900)
    assert golden.golden_stack("nginx", "certbot-http01").node_red.login_shield == shield


@pytest.mark.parametrize("field,value", [("attempts", 0), ("window_seconds", 5), ("ban_seconds", 0), ("max_clients", 10), ("attempts", "5; x")])
def test_spec_refuses_out_of_range_values(field, value):
    with pytest.raises(ValidationError):
        LoginShield.model_validate({field: value})


def test_spec_refuses_unknown_keys():
    with pytest.raises(ValidationError):
        LoginShield.model_validate({"attemps": 3})


def test_settings_js_loads_the_shield_with_the_spec_values():
    settings = tree(login_shield={"attempts": 3, "window_seconds": 120, "ban_seconds": 3600, "max_clients": 500})["node-red/settings.js"]
    assert 'const shield = require("./shield.js")({' in settings
    for line in ("attempts: 3,", "window_seconds: 120,", "ban_seconds: 3600,", "max_clients: 500,", f'client_header: "{CLIENT_ADDRESS_HEADER}"'):
        assert line in settings
    assert "httpAdminMiddleware: [csp.admin, shield.admin]," in settings
    assert "httpNodeAuth" not in settings


def test_settings_js_puts_the_shield_before_http_node_basic_auth():
    auth = {"user": "viewer", "password_hash": golden.EXAMPLE_HASH}
    settings = tree(http_node_auth=auth)["node-red/settings.js"]
    block = settings.split("httpNodeAuth: [", 1)[1].split("],", 1)[0]
    assert block.index("shield.httpNode") < block.index("shield.basicAuth(")
    assert '"viewer"' in block and golden.EXAMPLE_HASH in block


def test_disabled_shield_leaves_node_reds_own_settings():
    auth = {"user": "viewer", "password_hash": golden.EXAMPLE_HASH}
    settings = tree(login_shield={"enabled": False}, http_node_auth=auth)["node-red/settings.js"]
    assert "shield" not in settings.split('"use strict";', 1)[1]
    assert 'httpNodeAuth: {\n        user: "viewer",' in settings


def test_values_reach_settings_js_only_through_tojson():
    source = (SHIELD.parent / "settings.js.j2").read_text()
    for expression in re.findall(r"{{(.*?)}}", source):
        assert expression.strip().endswith("| tojson"), expression
    assert "{{" not in SHIELD.read_text() and "{%" not in SHIELD.read_text()


@pytest.mark.parametrize("edge", golden.EDGES)
def test_shield_js_is_rendered_as_shipped_and_mounted_read_only(edge):
    files = tree(edge)
    assert files["node-red/shield.js"] == SHIELD.read_text()
    document = invariants.load(files["compose.yaml"].encode())
    mounts = {m["target"]: m for m in document["services"]["node-red"]["volumes"] if isinstance(m, dict)}
    shield = mounts["/etc/stackgen/node-red/shield.js"]
    assert shield["source"] == "./node-red/shield.js" and shield["read_only"] is True
    # settings.js requires "./shield.js": the two sit side by side.
    assert mounts["/etc/stackgen/node-red/settings.js"]["read_only"] is True


def test_caddy_overwrites_the_client_address_header_with_the_tcp_peer():
    caddy = tree("caddy")["edge/Caddyfile"]
    proxies = caddy.count("reverse_proxy ")
    assert proxies >= 1
    assert caddy.count(f"header_up {CLIENT_ADDRESS_HEADER} {{remote_host}}") == proxies


def test_nginx_overwrites_the_client_address_header_with_the_tcp_peer():
    nginx = tree("nginx")["edge/nginx.conf"]
    passes = nginx.count("proxy_pass ")
    assert passes >= 1
    assert nginx.count(f"proxy_set_header {CLIENT_ADDRESS_HEADER} $remote_addr;") == passes


def test_traefik_trusts_no_forwarded_headers_so_it_sets_x_real_ip_from_the_peer():
    # Traefik removes a client's X-Real-Ip and X-Forwarded-* and sets them from the TCP peer unless the entry
    # point trusts the peer (forwardedHeaders.insecure or trustedIPs): neither may appear.
    files = tree("traefik")
    static = files["edge/traefik.yml"]
    assert "forwardedHeaders" not in static and "insecure" not in static and "trustedIPs" not in static
    dynamic = files["edge/dynamic.yml"]
    assert CLIENT_ADDRESS_HEADER.lower() not in dynamic.lower(), "no middleware may set or pass on the client address header"
    assert CLIENT_ADDRESS_HEADER.lower() == "x-real-ip"
