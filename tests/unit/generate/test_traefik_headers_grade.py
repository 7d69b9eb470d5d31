"""Traefik's security headers, graded statically (no Traefik binary runs here, README): the responses its routers
would send are built from the rendered dynamic.yml as Traefik's headers middleware applies it (customResponseHeaders
replace, an empty value removes), on top of what Node-RED itself sends (csp.js's policy on the editor; nothing on an
endpoint), and graded with the MDN Observatory's scoring (stackgen.live.headers_grade). Caddy and NGINX are graded
live (tests/integration/test_verify_live.py, test_editor_csp.py); this holds Traefik to the same A or better.

The same test also fails if the editor's router were given the endpoint CSP (Traefik would replace csp.js's nonce
policy and break the editor), or if the public router lost it.
"""

from __future__ import annotations

import pytest
import yaml

from stackgen.generate.headers import EDITOR_CSP, ENDPOINT_CSP, NONCE_PLACEHOLDER
from stackgen.generate.render import render
from stackgen.live.headers_grade import Exchange, grade
from tests.golden import combos, golden_stack

HOST = "nodered.example.org"
PAGE = b'<!doctype html><html><head><title>x</title></head><body><script nonce="n" src="red/red.js"></script></body></html>'


def dynamic(mode: str) -> dict:
    files = {f.path: f.content.decode() for f in render(golden_stack("traefik", mode))}
    return yaml.safe_load(files["edge/dynamic.yml"])


def through(config: dict, router: str, upstream: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The response headers after `router`'s middlewares (in order) have applied to Node-RED's response."""
    headers = dict((k.lower(), (k, v)) for k, v in upstream)
    for name in config["http"]["routers"][router]["middlewares"]:
        middleware = config["http"]["middlewares"][name]
        for key, value in ((middleware.get("headers") or {}).get("customResponseHeaders") or {}).items():
            if value == "":
                headers.pop(key.lower(), None)
            else:
                headers[key.lower()] = (key, value)
    return list(headers.values())


def exchange(path: str, headers: list[tuple[str, str]], body: bytes) -> Exchange:
    url = f"https://{HOST}{path}"
    return Exchange(url, 200, headers, body, http_route=[(f"http://{HOST}{path}", 308), (url, 200)], verified=True)


TRAEFIK_MODES = sorted({mode for edge, mode in combos() if edge == "traefik"})


@pytest.mark.parametrize("mode", TRAEFIK_MODES)
def test_the_editor_behind_traefik_grades_a_plus_with_node_reds_own_policy(mode):
    config = dynamic(mode)
    node_red = [("Content-Type", "text/html; charset=utf-8"), ("X-Powered-By", "Express"),
                ("Content-Security-Policy", EDITOR_CSP.replace(NONCE_PLACEHOLDER, "n" * 24)),
                ("Set-Cookie", "stackgen-csp-nonce=" + "n" * 24 + "; Path=/editor; Secure; HttpOnly; SameSite=Strict")]
    headers = through(config, "node-red-editor", node_red)
    assert [v for k, v in headers if k.lower() == "content-security-policy"] == [node_red[2][1]], "Traefik must keep csp.js's policy"
    assert not any(k.lower() == "x-powered-by" for k, _ in headers)
    graded = grade(exchange("/editor/", headers, PAGE))
    assert graded.grade == "A+" and not graded.failing, (graded.summary(), graded.failing)


@pytest.mark.parametrize("mode", TRAEFIK_MODES)
def test_an_endpoint_behind_traefik_grades_a_plus_with_the_endpoint_policy(mode):
    config = dynamic(mode)
    headers = through(config, "node-red", [("Content-Type", "text/html; charset=utf-8"), ("X-Powered-By", "Express")])
    assert [v for k, v in headers if k.lower() == "content-security-policy"] == [ENDPOINT_CSP]
    graded = grade(exchange("/hello", headers, b"<!doctype html><html><head></head><body>hello</body></html>"))
    assert graded.grade == "A+" and not graded.failing, (graded.summary(), graded.failing)


def test_without_the_security_middleware_the_grade_falls():
    config = dynamic(TRAEFIK_MODES[0])
    config["http"]["routers"]["node-red"]["middlewares"] = ["endpoint-csp"]
    headers = through(config, "node-red", [("Content-Type", "text/html; charset=utf-8")])
    graded = grade(exchange("/hello", headers, b"<html><body>hello</body></html>"))
    assert graded.score < 90 and {t.name for t in graded.failing} >= {"strict-transport-security", "x-content-type-options"}
