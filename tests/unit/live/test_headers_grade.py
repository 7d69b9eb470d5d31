"""The Observatory's scoring rules, test by test, on constructed responses (no network)."""

from __future__ import annotations

import pytest

from stackgen.live.headers_grade import (
    MODIFIERS,
    CspInvalid,
    Exchange,
    grade,
    grade_for,
    parse_csp,
)

URL = "https://nodered.example.org/"
ROUTE = [("http://nodered.example.org/", 308), (URL, 200)]
STRICT_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'self'")
GOOD = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Content-Security-Policy", STRICT_CSP),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Set-Cookie", "session=abc; Secure; HttpOnly; SameSite=Strict"),
]
PAGE = '<html><head><script src="vendor/vendor.js"></script></head></html>'


def exchange(replace: dict[str, str | None] | None = None, add: list[tuple[str, str]] = (), **kwargs) -> Exchange:
    headers = [(k, v) for k, v in GOOD if k.lower() not in {r.lower() for r in (replace or {})}]
    headers += [(k, v) for k, v in (replace or {}).items() if v is not None] + list(add)
    kwargs.setdefault("http_route", ROUTE)
    kwargs.setdefault("body", PAGE)
    return Exchange(kwargs.pop("url", URL), 200, headers, **kwargs)


def result(ex: Exchange, test: str) -> str:
    return next(t.result for t in grade(ex).tests if t.name == test)


def test_a_plus_when_everything_is_set():
    g = grade(exchange())
    assert g.grade == "A+" and g.score == 135, g.to_dict()
    assert not g.failing


def test_f_for_a_bare_http_site():
    g = grade(Exchange("http://nodered.example.org/", 200, [("Content-Type", "text/html"), ("Set-Cookie", "sessionid=1")],
                       '<script src="http://cdn.other.org/x.js"></script>', http_route=[("http://nodered.example.org/", 200)]))
    assert g.grade == "F" and g.score == 0
    failing = {t.name for t in g.failing}
    assert {"content-security-policy", "strict-transport-security", "redirection", "x-frame-options", "cookies"} <= failing
    assert all(t.fix for t in g.failing)


@pytest.mark.parametrize(("score", "letter"), [(135, "A+"), (100, "A+"), (99, "A"), (90, "A"), (89, "A-"), (80, "B+"), (79, "B"),
                                                (65, "B-"), (60, "C+"), (50, "C"), (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"),
                                                (24, "F"), (0, "F"), (-10, "F")])
def test_grade_chart(score, letter):
    assert grade_for(score) == letter


def test_bonus_only_from_ninety():
    # CSP without script-src (-20): the +5s of Referrer-Policy, frame-ancestors and CORP no longer count
    g = grade(exchange({"Content-Security-Policy": "frame-ancestors 'none'"}))
    assert g.score == 80 and g.grade == "B+"
    # unsafe-eval (-10) keeps the score at 90: the bonus counts again
    g = grade(exchange({"Content-Security-Policy": STRICT_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-eval'")}))
    assert g.score == 90 + 5 + 5 + 5 + 10 and g.grade == "A+"  # referrer, cookies, frame-ancestors, CORP


@pytest.mark.parametrize(("csp", "expected"), [
    (None, "csp-not-implemented"),
    (STRICT_CSP, "csp-implemented-with-no-unsafe-default-src-none"),
    ("script-src 'self'; object-src 'none'; style-src 'self'", "csp-implemented-with-no-unsafe"),
    ("default-src 'self'; style-src 'self' 'unsafe-inline'", "csp-implemented-with-unsafe-inline-in-style-src-only"),
    ("default-src 'self'; img-src http:", "csp-implemented-with-insecure-scheme-in-passive-content-only"),
    ("default-src 'self' 'unsafe-eval'", "csp-implemented-with-unsafe-eval"),
    ("default-src 'self'; script-src 'self' 'unsafe-inline'", "csp-implemented-with-unsafe-inline"),
    ("frame-ancestors 'self'", "csp-implemented-with-unsafe-inline"),
    ("default-src 'self'; object-src https:", "csp-implemented-with-unsafe-inline"),
    ("default-src 'self'; connect-src http://api.example.org", "csp-implemented-with-insecure-scheme"),
    ("default-src 'self'; default-src 'none'", "csp-header-invalid"),
    ("abc", "csp-header-invalid"),
    ("default-src 'self'; script-src 'strict-dynamic'", "csp-header-invalid"),
    ("default-src 'none'; script-src 'nonce-abc' 'strict-dynamic' 'unsafe-inline' https:", "csp-implemented-with-no-unsafe-default-src-none"),
    ("default-src 'self'; script-src 'sha256-abc' 'unsafe-inline'", "csp-implemented-with-no-unsafe"),
    ("default-src 'self'; report-uri /a; report-uri /b", "csp-implemented-but-duplicate-directives"),
])
def test_csp(csp, expected):
    assert result(exchange({"Content-Security-Policy": csp}), "content-security-policy") == expected


def test_csp_report_only_and_meta():
    ex = exchange({"Content-Security-Policy": None}, add=[("Content-Security-Policy-Report-Only", "default-src 'none'")])
    assert result(ex, "content-security-policy") == "csp-not-implemented-but-reporting-enabled"
    meta = "<html><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\"></html>"
    assert result(exchange({"Content-Security-Policy": None}, body=meta), "content-security-policy") == "csp-implemented-with-no-unsafe-default-src-none"
    # frame-ancestors in a meta tag alone does not make a policy
    meta = "<html><meta http-equiv=\"Content-Security-Policy\" content=\"frame-ancestors 'none'\"></html>"
    assert result(exchange({"Content-Security-Policy": None}, body=meta), "content-security-policy") == "csp-not-implemented"


def test_two_policies_intersect():
    csp = parse_csp(["default-src 'self' https://a.example", "default-src 'self'"])
    assert csp["default-src"] == {"'self'"}
    assert parse_csp(["script-src"])["script-src"] == {"'none'"}
    with pytest.raises(CspInvalid):
        parse_csp(["img-src 'self'; img-src 'none'"])


@pytest.mark.parametrize(("cookie", "expected"), [
    (None, "cookies-not-found"),
    ("session=1; Secure; HttpOnly; SameSite=Lax", "cookies-secure-with-httponly-sessions-and-samesite"),
    ("session=1; Secure; HttpOnly", "cookies-secure-with-httponly-sessions"),
    ("pref=1; SameSite=Lax", "cookies-without-secure-flag-but-protected-by-hsts"),
    ("session=1; HttpOnly; SameSite=Lax", "cookies-session-without-secure-flag-but-protected-by-hsts"),
    ("pref=1; Secure; SameSite=Bogus", "cookies-samesite-flag-invalid"),
    ("pref=1; SameSite=None", "cookies-samesite-flag-invalid"),
    ("csrftoken=1; Secure", "cookies-anticsrf-without-samesite-flag"),
    ("login=1; Secure; SameSite=Lax", "cookies-session-without-httponly-flag"),
])
def test_cookies(cookie, expected):
    assert result(exchange({"Set-Cookie": cookie}), "cookies") == expected


def test_cookies_without_hsts():
    ex = exchange({"Set-Cookie": "pref=1", "Strict-Transport-Security": None})
    assert result(ex, "cookies") == "cookies-without-secure-flag"
    ex = exchange({"Set-Cookie": "sessionid=1; HttpOnly", "Strict-Transport-Security": None})
    assert result(ex, "cookies") == "cookies-session-without-secure-flag"


@pytest.mark.parametrize(("cors", "expected"), [
    (None, "cross-origin-resource-sharing-not-implemented"),
    ([], "cross-origin-resource-sharing-not-implemented"),
    ([("Access-Control-Allow-Origin", "*")], "cross-origin-resource-sharing-implemented-with-public-access"),
    ([("Access-Control-Allow-Origin", "https://app.example.org")], "cross-origin-resource-sharing-implemented-with-restricted-access"),
    ([("Access-Control-Allow-Origin", "https://http-observatory.security.mozilla.org"), ("Access-Control-Allow-Credentials", "true")],
     "cross-origin-resource-sharing-implemented-with-universal-access"),
])
def test_cors(cors, expected):
    assert result(exchange(cors_headers=cors), "cross-origin-resource-sharing") == expected


@pytest.mark.parametrize(("route", "verified", "expected"), [
    (None, True, "redirection-not-needed-no-http"),
    (ROUTE, False, "redirection-invalid-cert"),
    ([("http://nodered.example.org/", 200)], True, "redirection-missing"),
    ([("http://nodered.example.org/", 301), ("http://other.example.org/", 200)], True, "redirection-not-to-https"),
    ([("http://nodered.example.org/", 301), ("http://nodered.example.org/x", 301), (URL, 200)], True,
     "redirection-not-to-https-on-initial-redirection"),
    ([("http://nodered.example.org/", 301), ("https://www.example.org/", 200)], True, "redirection-off-host-from-http"),
    (ROUTE, True, "redirection-to-https"),
])
def test_redirection(route, verified, expected):
    assert result(exchange(http_route=route, verified=verified), "redirection") == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, "referrer-policy-not-implemented"),
    ("no-referrer", "referrer-policy-private"),
    ("unsafe-url", "referrer-policy-unsafe"),
    ("no-referrer, unsafe-url", "referrer-policy-unsafe"),
    ("unsafe-url, strict-origin, bogus", "referrer-policy-private"),
    ("bogus", "referrer-policy-header-invalid"),
])
def test_referrer_policy(value, expected):
    assert result(exchange({"Referrer-Policy": value}), "referrer-policy") == expected


@pytest.mark.parametrize(("value", "kwargs", "expected"), [
    (None, {}, "hsts-not-implemented"),
    ("max-age=15552000", {}, "hsts-implemented-max-age-at-least-six-months"),
    ("max-age=15551999; includeSubDomains", {}, "hsts-implemented-max-age-less-than-six-months"),
    ("includeSubDomains", {}, "hsts-header-invalid"),
    ("max-age=1, max-age=2", {}, "hsts-header-invalid"),
    ("max-age=31536000", {"verified": False}, "hsts-invalid-cert"),
    ("max-age=31536000", {"url": "http://nodered.example.org/"}, "hsts-not-implemented-no-https"),
])
def test_hsts(value, kwargs, expected):
    assert result(exchange({"Strict-Transport-Security": value}, **kwargs), "strict-transport-security") == expected


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    ("{}", "application/json", "sri-not-implemented-response-not-html"),
    ("<html><p>hi</p></html>", "text/html", "sri-not-implemented-but-no-scripts-loaded"),
    (PAGE, "text/html", "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"),
    ('<script src="/a.js" integrity="sha384-x"></script>', "text/html", "sri-implemented-and-all-scripts-loaded-securely"),
    ('<script src="https://cdn.other.org/a.js" integrity="sha384-x"></script>', "text/html",
     "sri-implemented-and-external-scripts-loaded-securely"),
    ('<script src="https://cdn.other.org/a.js"></script>', "text/html", "sri-not-implemented-but-external-scripts-loaded-securely"),
    ('<script src="http://cdn.other.org/a.js" integrity="sha384-x"></script>', "text/html",
     "sri-implemented-but-external-scripts-not-loaded-securely"),
    ('<script src="//cdn.other.org/a.js"></script>', "text/html", "sri-not-implemented-and-external-scripts-not-loaded-securely"),
    ('<script src="https://static.example.org/a.js"></script>', "text/html", "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"),
])
def test_sri(body, content_type, expected):
    assert result(exchange({"Content-Type": content_type}, body=body), "subresource-integrity") == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, "x-content-type-options-not-implemented"),
    ("nosniff", "x-content-type-options-nosniff"),
    ("sniff", "x-content-type-options-header-invalid"),
])
def test_x_content_type_options(value, expected):
    assert result(exchange({"X-Content-Type-Options": value}), "x-content-type-options") == expected


@pytest.mark.parametrize(("xfo", "csp", "expected"), [
    (None, None, "x-frame-options-not-implemented"),
    ("DENY", None, "x-frame-options-sameorigin-or-deny"),
    ("SAMEORIGIN", "default-src 'self'", "x-frame-options-sameorigin-or-deny"),
    ("ALLOW-FROM https://a.example", None, "x-frame-options-allow-from-origin"),
    ("bogus", None, "x-frame-options-header-invalid"),
    (None, "frame-ancestors 'none'", "x-frame-options-implemented-via-csp"),
])
def test_x_frame_options(xfo, csp, expected):
    assert result(exchange({"X-Frame-Options": xfo, "Content-Security-Policy": csp}), "x-frame-options") == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, "corp-not-implemented"),
    ("same-origin", "corp-implemented-with-same-origin"),
    ("same-site", "corp-implemented-with-same-site"),
    ("cross-origin", "corp-implemented-with-cross-origin"),
    ("bogus", "corp-header-invalid"),
])
def test_corp(value, expected):
    assert result(exchange({"Cross-Origin-Resource-Policy": value}), "cross-origin-resource-policy") == expected


def test_repeated_headers_are_joined_as_axios_joins_them():
    ex = exchange({"Strict-Transport-Security": None}, add=[("Strict-Transport-Security", "max-age=31536000"),
                                                           ("Strict-Transport-Security", "max-age=31536000")])
    assert result(ex, "strict-transport-security") == "hsts-header-invalid"


def test_every_result_has_a_modifier_and_negative_ones_a_fix():
    from stackgen.live.headers_grade import FIXES

    assert all(FIXES.get(r) for r, m in MODIFIERS.items() if m < 0)


# --- verify --live's wiring: what the edge sends, fetched through stackgen.live.probes (faked here) ------------


def fake_edge(monkeypatch, headers: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    from stackgen.live import probes

    asked: list[tuple[str, str, str]] = []

    def http_request(address, port, host, path="/", **_):
        asked.append(("http", address, path))
        location = f"https://{host}:8443{path}"
        return probes.Response(308, {"location": location}, b"", header_lines=[("Location", location)])

    def https_request(address, port, server_name, path="/", *, method="GET", **_):
        asked.append((method, address, path))
        lines = [("Content-Type", "text/html"), *headers]
        return probes.Response(200, {k.lower(): v for k, v in lines}, PAGE.encode(), header_lines=lines)

    monkeypatch.setattr(probes, "http_request", http_request)
    monkeypatch.setattr(probes, "https_request", https_request)
    return asked


def live_context():
    from stackgen.live.checks import LiveContext
    from stackgen.topology import Topology

    return LiveContext(engine=None, project="p", observed=Topology(), declared=None, networks={}, domains=["nodered.example.org"])


def test_live_grade_below_a_is_a_finding_with_the_failing_tests(monkeypatch):
    from stackgen.live.checks import _header_grades

    asked = fake_edge(monkeypatch, [(k, v) for k, v in GOOD if k != "Content-Security-Policy"]
                      + [("Content-Security-Policy", "frame-ancestors 'self'")])
    ctx = live_context()
    _header_grades(ctx, "edge", "127.0.0.1", 8080, 8443)
    assert {a[1] for a in asked} == {"127.0.0.1"} and ("OPTIONS", "127.0.0.1", "/") in asked and ("http", "127.0.0.1", "/") in asked
    assert [f.rule for f in ctx.findings] == ["SG311", "SG311"]  # the editor and an endpoint path
    assert "B+ (80/100)" in ctx.findings[0].message and "content-security-policy -20" in ctx.findings[0].message
    assert not any(c.ok for c in ctx.checks)


def test_live_grade_a_or_better_passes(monkeypatch):
    from stackgen.live.checks import _header_grades

    fake_edge(monkeypatch, [(k, v) for k, v in GOOD if k != "Content-Type"])
    ctx = live_context()
    _header_grades(ctx, "edge", "127.0.0.1", 8080, 8443)
    assert not ctx.findings
    assert [c.detail.split(";")[0] for c in ctx.checks] == ["A+ (135/100)", "A+ (135/100)"]
