"""The MDN HTTP Observatory's header grade, computed offline from responses we fetched ourselves.

A re-implementation of the published scoring rules of mdn/mdn-http-observatory (algorithm version 4):
`src/grader/charts.js` at commit a57b50e3362d55c55dd5fd108664f63a54922f11 (SCORE_TABLE, GRADE_CHART,
MINIMUM_SCORE_FOR_EXTRA_CREDIT = 90), `src/scanner/index.js` at 0fb69adc7fde726ba2e1971036aa0a0eda3fea6d
(baseline 100; every modifier summed; the positive ones count only when the score of the negative ones
alone is >= 90), and the tests in `src/analyzer/tests/*.js` at 048ff598c8690cdff2a0af60828cde2e845bc346
(csp, cors, referrer-policy, strict-transport-security, x-content-type-options, x-frame-options,
cross-origin-resource-policy), 0200be8d7358e955cad6fe013a80089cd5f30831 (cookies),
52da823f627eeb26d778269b85e8533b73d2e248 (redirection), 66138637cd1119020f42cd6d17abbd2ecabab03b
(subresource-integrity) and `src/analyzer/cspParser.js` at d52f94793e0774c5e395d4e76d2d62e6a910e2d6.

Where we differ, and why: the HSTS preload list is not consulted (our hosts are never preloaded, and
reading it would need the network), so `hsts-preloaded` and `redirection-all-redirects-preloaded` never
occur; the SRI test's "same second-level domain" compares the last two labels of the host names instead
of the public suffix list; HTML is read with `html.parser` instead of jsdom. Headers repeated in a
response are joined with ", " as axios (the Observatory's HTTP client) joins them; Set-Cookie stays a list.

Pure: no network. `stackgen.live.checks` fetches the responses and hands them here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

# --- the score table (charts.js): result -> modifier --------------------------------------------------

MODIFIERS: dict[str, int] = {
    # CSP
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-with-insecure-scheme-in-passive-content-only": -10,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-header-invalid": -25,
    "csp-not-implemented": -25,
    "csp-not-implemented-but-reporting-enabled": -25,
    "csp-implemented-but-duplicate-directives": 0,
    # cookies
    "cookies-secure-with-httponly-sessions-and-samesite": 5,
    "cookies-secure-with-httponly-sessions": 0,
    "cookies-not-found": 0,
    "cookies-without-secure-flag-but-protected-by-hsts": -5,
    "cookies-session-without-secure-flag-but-protected-by-hsts": -10,
    "cookies-without-secure-flag": -20,
    "cookies-samesite-flag-invalid": -20,
    "cookies-anticsrf-without-samesite-flag": -20,
    "cookies-session-without-httponly-flag": -30,
    "cookies-session-without-secure-flag": -40,
    # CORS
    "cross-origin-resource-sharing-not-implemented": 0,
    "cross-origin-resource-sharing-implemented-with-public-access": 0,
    "cross-origin-resource-sharing-implemented-with-restricted-access": 0,
    "cross-origin-resource-sharing-implemented-with-universal-access": -50,
    # redirection
    "redirection-all-redirects-preloaded": 0,
    "redirection-to-https": 0,
    "redirection-not-needed-no-http": 0,
    "redirection-off-host-from-http": -5,
    "redirection-not-to-https-on-initial-redirection": -10,
    "redirection-not-to-https": -20,
    "redirection-missing": -20,
    "redirection-invalid-cert": -20,
    # Referrer-Policy
    "referrer-policy-private": 5,
    "referrer-policy-not-implemented": 0,
    "referrer-policy-unsafe": -5,
    "referrer-policy-header-invalid": -5,
    # HSTS
    "hsts-preloaded": 5,
    "hsts-implemented-max-age-at-least-six-months": 0,
    "hsts-implemented-max-age-less-than-six-months": -10,
    "hsts-not-implemented": -20,
    "hsts-header-invalid": -20,
    "hsts-not-implemented-no-https": -20,
    "hsts-invalid-cert": -20,
    # SRI
    "sri-implemented-and-all-scripts-loaded-securely": 5,
    "sri-implemented-and-external-scripts-loaded-securely": 5,
    "sri-not-implemented-response-not-html": 0,
    "sri-not-implemented-but-no-scripts-loaded": 0,
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": 0,
    "sri-not-implemented-but-external-scripts-loaded-securely": -5,
    "sri-implemented-but-external-scripts-not-loaded-securely": -20,
    "sri-not-implemented-and-external-scripts-not-loaded-securely": -50,
    # X-Content-Type-Options
    "x-content-type-options-nosniff": 0,
    "x-content-type-options-not-implemented": -5,
    "x-content-type-options-header-invalid": -5,
    # X-Frame-Options
    "x-frame-options-implemented-via-csp": 5,
    "x-frame-options-sameorigin-or-deny": 0,
    "x-frame-options-allow-from-origin": 0,
    "x-frame-options-not-implemented": -20,
    "x-frame-options-header-invalid": -20,
    # CORP
    "corp-header-invalid": -5,
    "corp-implemented-with-cross-origin": 0,
    "corp-implemented-with-same-origin": 10,
    "corp-implemented-with-same-site": 10,
    "corp-not-implemented": 0,
    # generic
    "html-not-parseable": -20,
}

# One line each: what to change (our words, after the recommendations in charts.js).
FIXES: dict[str, str] = {
    "csp-implemented-with-no-unsafe": "set default-src 'none' (and allow what the page needs per directive)",
    "csp-implemented-with-unsafe-inline-in-style-src-only": "remove 'unsafe-inline', data: and broad sources from style-src",
    "csp-implemented-with-insecure-scheme-in-passive-content-only": "load images and media over HTTPS only (no http: in img-src/media-src)",
    "csp-implemented-with-unsafe-eval": "remove 'unsafe-eval' from script-src/style-src",
    "csp-implemented-with-unsafe-inline": "set script-src and object-src without 'unsafe-inline', data: or broad sources (https:, *)",
    "csp-implemented-with-insecure-scheme": "remove http: and ftp: sources from the CSP",
    "csp-header-invalid": "fix the Content-Security-Policy syntax (no duplicate directives, 'strict-dynamic' only with a nonce or hash)",
    "csp-not-implemented": "send a Content-Security-Policy header (at least script-src, object-src and frame-ancestors)",
    "csp-not-implemented-but-reporting-enabled": "enforce the policy: send Content-Security-Policy, not only -Report-Only",
    "csp-implemented-but-duplicate-directives": "remove duplicate report-uri/report-to directives from the CSP",
    "cookies-secure-with-httponly-sessions": "add SameSite=Strict or Lax to every cookie",
    "cookies-without-secure-flag-but-protected-by-hsts": "set the Secure flag on every cookie",
    "cookies-session-without-secure-flag-but-protected-by-hsts": "set the Secure flag on session cookies",
    "cookies-without-secure-flag": "set the Secure flag on every cookie and send HSTS",
    "cookies-samesite-flag-invalid": "use SameSite=Strict or Lax (SameSite=None only with Secure)",
    "cookies-anticsrf-without-samesite-flag": "set SameSite=Strict or Lax on anti-CSRF cookies",
    "cookies-session-without-httponly-flag": "set HttpOnly on session cookies",
    "cookies-session-without-secure-flag": "set the Secure flag on session cookies and send HSTS",
    "cross-origin-resource-sharing-implemented-with-universal-access":
        "do not reflect Origin together with Access-Control-Allow-Credentials: true",
    "redirection-off-host-from-http": "redirect http:// to https:// on the same host first",
    "redirection-not-to-https-on-initial-redirection": "redirect http:// straight to https:// on the same host",
    "redirection-not-to-https": "redirect http:// to https://",
    "redirection-missing": "redirect every http:// request to https:// (308)",
    "redirection-invalid-cert": "serve a certificate that verifies",
    "referrer-policy-not-implemented": "send Referrer-Policy: strict-origin-when-cross-origin (or stricter)",
    "referrer-policy-unsafe": "send Referrer-Policy: strict-origin-when-cross-origin (or stricter)",
    "referrer-policy-header-invalid": "send Referrer-Policy: strict-origin-when-cross-origin (or stricter)",
    "hsts-implemented-max-age-less-than-six-months": "raise Strict-Transport-Security max-age to at least 15552000 (six months)",
    "hsts-not-implemented": "send Strict-Transport-Security: max-age=31536000 on HTTPS responses",
    "hsts-header-invalid": "send exactly one Strict-Transport-Security header with max-age=N",
    "hsts-not-implemented-no-https": "serve the site over HTTPS",
    "hsts-invalid-cert": "serve a certificate that verifies",
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": "add integrity= to script tags for the bonus",
    "sri-not-implemented-but-external-scripts-loaded-securely": "add integrity= to external scripts",
    "sri-implemented-but-external-scripts-not-loaded-securely": "load external scripts over https://",
    "sri-not-implemented-and-external-scripts-not-loaded-securely": "load external scripts over https:// with integrity=",
    "x-content-type-options-not-implemented": "send X-Content-Type-Options: nosniff",
    "x-content-type-options-header-invalid": "send X-Content-Type-Options: nosniff",
    "x-frame-options-sameorigin-or-deny": "add frame-ancestors to the CSP for the bonus",
    "x-frame-options-allow-from-origin": "use CSP frame-ancestors instead of ALLOW-FROM",
    "x-frame-options-not-implemented": "send CSP frame-ancestors 'none' (or X-Frame-Options: DENY)",
    "x-frame-options-header-invalid": "send CSP frame-ancestors 'none' (or X-Frame-Options: DENY)",
    "corp-header-invalid": "send Cross-Origin-Resource-Policy: same-origin (or same-site)",
    "corp-not-implemented": "send Cross-Origin-Resource-Policy: same-origin for the bonus",
    "html-not-parseable": "serve well-formed HTML",
}

GRADES = ((100, "A+"), (90, "A"), (85, "A-"), (80, "B+"), (70, "B"), (65, "B-"), (60, "C+"), (50, "C"),
          (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"), (0, "F"))
MINIMUM_SCORE_FOR_EXTRA_CREDIT = 90
SIX_MONTHS = 15_552_000  # strict-transport-security.js: "a white lie" below 15768000
CORS_ORIGIN = "https://http-observatory.security.mozilla.org"  # config.js: the Origin of the preflight
HTML_TYPES = {"text/html", "application/xhtml+xml"}

TESTS = ("content-security-policy", "cookies", "cross-origin-resource-sharing", "redirection", "referrer-policy",
         "strict-transport-security", "subresource-integrity", "x-content-type-options", "x-frame-options",
         "cross-origin-resource-policy")


def grade_for(score: int) -> str:
    """The grade chart: rounded down to a multiple of 5, capped at 100."""
    score = max(score, 0)
    bucket = min(score - score % 5, 100)
    return next(grade for floor, grade in GRADES if bucket >= floor)


# --- input and output --------------------------------------------------------------------------------


Headers = list[tuple[str, str]]


@dataclass
class Exchange:
    """What the Observatory would have fetched for one site, gathered by us.

    `url`, `status`, `headers` (every header line, repeats kept) and `body`: the final response to
    GET https://host/path after redirects. `http_route`: each URL requested from http://host/path on
    (first entry that URL) with its status, ending at the last response; `None` when nothing answers
    on HTTP. `verified`: whether the HTTPS certificate chain verified. `cors_headers`: the response
    headers to `OPTIONS` with `Origin: CORS_ORIGIN` (None: not asked). `cookies`: extra Set-Cookie
    lines met on the way (redirects); the final response's own are read from `headers`.
    """

    url: str
    status: int
    headers: Headers
    body: bytes | str = b""
    http_route: list[tuple[str, int]] | None = None
    verified: bool = True
    cors_headers: Headers | None = None
    cookies: list[str] = field(default_factory=list)

    def values(self, name: str, headers: Headers | None = None) -> list[str]:
        """All values of a header, joined per response as axios joins them (one string, ", ")."""
        found = [v for k, v in (self.headers if headers is None else headers) if k.lower() == name.lower()]
        if name.lower() == "set-cookie":
            return found
        return [", ".join(found)] if found else []

    def first(self, name: str, headers: Headers | None = None) -> str | None:
        found = self.values(name, headers)
        return found[0] if found else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace") if isinstance(self.body, bytes) else self.body

    @property
    def is_html(self) -> bool:
        return (self.first("content-type") or "").split(";")[0].strip().lower() in HTML_TYPES


@dataclass
class TestResult:
    name: str
    result: str
    passed: bool
    modifier: int
    fix: str = ""
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.name, "result": self.result, "pass": self.passed, "modifier": self.modifier, "fix": self.fix}


@dataclass
class Grade:
    score: int
    grade: str
    tests: list[TestResult]

    @property
    def failing(self) -> list[TestResult]:
        """Tests that cost points (or failed the Observatory's pass mark), worst first."""
        return sorted((t for t in self.tests if t.modifier < 0 or not t.passed), key=lambda t: t.modifier)

    def summary(self) -> str:
        return f"{self.grade} ({self.score}/100)"

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "grade": self.grade, "tests": [t.to_dict() for t in self.tests]}


# --- CSP parsing (cspParser.js) -----------------------------------------------------------------------

_DUPLICATES = "_observatory_duplicate_key_warnings"
_ALLOWED_DUPLICATES = {"report-uri", "report-to"}
_META_DISALLOWED = ("frame-ancestors", "report-uri", "sandbox")
_SHORTEST = len("img-src") - 1


class CspInvalid(ValueError):
    pass


@dataclass
class _Source:
    source: str
    index: int
    keep: bool


def parse_csp(policies: list[str]) -> dict[str, set[str]]:
    """Directive -> sources, several policies intersected as the Observatory does."""
    clean = [re.sub(r"[\r\n]", "", p).strip() for p in policies]
    if not clean:
        return {}
    for policy in clean:
        if not policy or len(policy) < _SHORTEST:
            raise CspInvalid(f"invalid policy: {policy!r}")
    csp: dict[str, list[_Source]] = {}
    duplicates: set[str] = set()
    for index, policy in enumerate(clean):
        seen: set[str] = set()
        for entry in policy.split(";"):
            directive_entry, *value_entries = entry.strip().split() or [""]
            if not directive_entry:
                continue
            directive = directive_entry.lower()
            if directive in seen:
                if directive not in _ALLOWED_DUPLICATES:
                    raise CspInvalid(f"duplicate directive {directive} in policy {index}")
                duplicates.add(directive)
            else:
                seen.add(directive)
            keep = index == 0
            values = [_Source(raw.strip().lower(), index, keep) for raw in value_entries]
            if not values and directive.endswith("-src"):
                values = [_Source("'none'", index, keep)]
            combined = list(values) if index == 0 else [*csp.get(directive, []), *values]
            combined.sort(key=lambda s: s.source)
            for i in range(1, len(combined)):
                source, prev = combined[i], combined[i - 1]
                if source.index == prev.index and source.source.startswith(prev.source):
                    source.keep = False
                if source.index != prev.index and _path_part_match(prev.source, source.source):
                    source.keep = True
            csp[directive] = [s for s in combined if s.keep]
            if index == 0 and len(policies) > 1:
                for source in csp[directive]:
                    source.keep = False
    final = {d: ({s.source for s in sources} or {"'none'"}) for d, sources in csp.items()}
    if duplicates:
        final[_DUPLICATES] = duplicates
    return final


def _path_part_match(a: str, b: str) -> bool:
    from urllib.parse import unquote

    if not a:
        return True
    if a == "/" and not b:
        return True
    exact = not a.endswith("/")
    parts_a, parts_b = a.split("/"), b.split("/")
    if len(parts_a) > len(parts_b):
        return False
    if exact and len(parts_a) != len(parts_b):
        return False
    if not exact:
        parts_a.pop()
    return all(unquote(x) == unquote(y) for x, y in zip(parts_a, parts_b, strict=False))


# --- HTML: meta http-equiv and scripts ----------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.csp: list[str] = []
        self.referrer: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs}
        if tag == "meta" and a.get("content") is not None:
            if "http-equiv" in a:
                if (a["http-equiv"] or "").strip().lower() == "content-security-policy":
                    self.csp.append(a["content"] or "")
            elif (a.get("name") or "").strip().lower() == "referrer":
                self.referrer = [a["content"] or ""]
        elif tag == "script":
            self.scripts.append(a)


def _page(exchange: Exchange) -> _Page:
    page = _Page()
    if exchange.is_html and exchange.text:
        try:
            page.feed(exchange.text)
            page.close()
        except Exception:  # noqa: BLE001 - a broken page grades as what could be read
            pass
    return page


# --- the tests ----------------------------------------------------------------------------------------

_BROAD = {"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"}
_UNSAFE_INLINE = {"'unsafe-inline'", "data:"}
_BROAD_AND_INLINE = _BROAD | _UNSAFE_INLINE
_PASSIVE = ("img-src", "media-src")
_NONCES_HASHES = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")


def _has_nonce_or_hash(sources: Iterable[str]) -> bool:
    return any(s.startswith(_NONCES_HASHES) for s in sources)


def _split_csp(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",")]


def csp_test(ex: Exchange, page: _Page) -> TestResult:
    http_policies = _split_csp(ex.values("content-security-policy"))
    meta_policies = _split_csp(page.csp)
    try:
        csp = parse_csp(http_policies + meta_policies)
    except CspInvalid:
        return _result("content-security-policy", "csp-header-invalid", False)
    try:
        header_only = parse_csp(http_policies)
    except CspInvalid:
        header_only = {}
    try:
        meta = parse_csp(meta_policies)
        for directive in _META_DISALLOWED:
            meta.pop(directive, None)
    except CspInvalid:
        meta = {}
    if not header_only and not meta:
        if ex.first("content-security-policy-report-only"):
            return _result("content-security-policy", "csp-not-implemented-but-reporting-enabled", False)
        return _result("content-security-policy", "csp-not-implemented", False)

    https = urlsplit(ex.url).scheme == "https"
    result: str | None = None
    script_src = csp.get("script-src") or csp.get("default-src") or {"*"}
    object_src = csp.get("object-src") or csp.get("default-src") or {"*"}
    style_src = csp.get("style-src") or csp.get("default-src") or {"*"}
    for sources in (script_src, style_src):
        if _has_nonce_or_hash(sources) and "'unsafe-inline'" in sources:
            sources.discard("'unsafe-inline'")
    if _has_nonce_or_hash(script_src) and "'strict-dynamic'" in script_src:
        for source in list(script_src):
            if any(source.startswith(b) for b in _BROAD) or source in ("'self'", "'unsafe-inline'"):
                script_src.discard(source)
    elif "'strict-dynamic'" in script_src:
        result = "csp-header-invalid"
    active = [s for d, sources in csp.items() if d not in _PASSIVE and d != "script-src" for s in sources] + list(script_src)
    passive = [s for d in _PASSIVE for s in (csp.get(d) or csp.get("default-src") or set())]

    if script_src & _BROAD_AND_INLINE or object_src & _BROAD:
        result = result or "csp-implemented-with-unsafe-inline"
    if https and any(s.startswith(("http:", "ftp:")) for s in active):
        result = result or "csp-implemented-with-insecure-scheme"
    if "'unsafe-eval'" in script_src | style_src:
        result = result or "csp-implemented-with-unsafe-eval"
    if https and any(s.startswith(("http:", "ftp:")) for s in passive):
        result = result or "csp-implemented-with-insecure-scheme-in-passive-content-only"
    if style_src & _BROAD_AND_INLINE:
        result = result or "csp-implemented-with-unsafe-inline-in-style-src-only"
    if csp.get("default-src") == {"'none'"}:
        result = result or "csp-implemented-with-no-unsafe-default-src-none"
    else:
        result = result or "csp-implemented-with-no-unsafe"
    passed = result in ("csp-implemented-with-no-unsafe", "csp-implemented-with-no-unsafe-default-src-none",
                        "csp-implemented-with-unsafe-inline-in-style-src-only",
                        "csp-implemented-with-insecure-scheme-in-passive-content-only")
    if passed and _DUPLICATES in csp:
        result = "csp-implemented-but-duplicate-directives"
    data = {d: sorted(v) for d, v in csp.items() if d != _DUPLICATES}
    return _result("content-security-policy", result, passed, data)


@dataclass
class _Cookie:
    name: str
    secure: bool
    http_only: bool
    same_site: str | None


def _parse_cookie(line: str) -> _Cookie | None:
    parts = line.split(";")
    name = parts[0].split("=", 1)[0].strip()
    if not name:
        return None
    secure = http_only = False
    same_site = None
    for attr in parts[1:]:
        key, _, value = attr.strip().partition("=")
        key = key.strip().lower()
        if key == "secure":
            secure = True
        elif key == "httponly":
            http_only = True
        elif key == "samesite" and value.strip().lower() in ("strict", "lax", "none"):
            same_site = value.strip().lower()
    return _Cookie(name, secure, http_only, same_site)


def _invalid_same_site(line: str) -> bool:
    for part in line.strip().split(";"):
        key, *rest = part.strip().split("=")
        if key.strip().lower() == "samesite":
            value = rest[0] if rest else ""
            if not value or value.strip().lower() not in ("lax", "strict", "none"):
                return True
    return False


_COOKIE_ORDER = [
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
]


def _worse(new: str, old: str | None) -> str:
    if old is None or _COOKIE_ORDER.index(new) > _COOKIE_ORDER.index(old):
        return new
    return old


def cookies_test(ex: Exchange, hsts_passed: bool) -> TestResult:
    lines = [*ex.cookies, *ex.values("set-cookie")]
    result: str | None = None
    for line in ex.values("set-cookie"):
        if _invalid_same_site(line):
            result = _worse("cookies-samesite-flag-invalid", result)
    cookies = [c for c in (_parse_cookie(line) for line in lines) if c and c.name != "heroku-session-affinity"]
    if not cookies:
        return _result("cookies", "cookies-not-found", True)
    missing_same_site = False
    for cookie in cookies:
        lower = cookie.name.lower()
        session = "login" in lower or "sess" in lower
        if not cookie.secure and cookie.same_site == "none":
            result = _worse("cookies-samesite-flag-invalid", result)
        if not cookie.secure:
            result = _worse("cookies-without-secure-flag-but-protected-by-hsts" if hsts_passed else "cookies-without-secure-flag", result)
        if "csrf" in lower and not cookie.same_site:
            result = _worse("cookies-anticsrf-without-samesite-flag", result)
        if session and not cookie.secure:
            result = _worse("cookies-session-without-secure-flag-but-protected-by-hsts" if hsts_passed
                            else "cookies-session-without-secure-flag", result)
        if session and not cookie.http_only:
            result = _worse("cookies-session-without-httponly-flag", result)
        missing_same_site = missing_same_site or not cookie.same_site
    if result is None:
        result = "cookies-secure-with-httponly-sessions" if missing_same_site else "cookies-secure-with-httponly-sessions-and-samesite"
    passed = result in ("cookies-secure-with-httponly-sessions", "cookies-secure-with-httponly-sessions-and-samesite")
    return _result("cookies", result, passed, [c.name for c in cookies])


def cors_test(ex: Exchange) -> TestResult:
    result = "cross-origin-resource-sharing-not-implemented"
    acao = ex.first("access-control-allow-origin", ex.cors_headers) if ex.cors_headers is not None else None
    if acao:
        value = acao[:256].strip().lower()
        credentials = ex.first("access-control-allow-credentials", ex.cors_headers)
        if value == "*":
            result = "cross-origin-resource-sharing-implemented-with-public-access"
        elif acao == CORS_ORIGIN and credentials and credentials.strip().lower() == "true":
            result = "cross-origin-resource-sharing-implemented-with-universal-access"
        else:
            result = "cross-origin-resource-sharing-implemented-with-restricted-access"
    return _result("cross-origin-resource-sharing", result, not result.endswith("universal-access"), acao)


def redirection_test(ex: Exchange) -> TestResult:
    route = ex.http_route
    if route is None:
        return _result("redirection", "redirection-not-needed-no-http", True)
    if not ex.verified:
        return _result("redirection", "redirection-invalid-cert", False)
    urls = [urlsplit(u) for u, _ in route]
    if len(urls) <= 1:
        result = "redirection-missing"
    elif urls[-1].scheme != "https":
        result = "redirection-not-to-https"
    elif urls[1].scheme == "http":
        result = "redirection-not-to-https-on-initial-redirection"
    elif urls[0].scheme == "http" and urls[1].scheme == "https" and urls[0].hostname != urls[1].hostname:
        result = "redirection-off-host-from-http"
    else:
        result = "redirection-to-https"
    return _result("redirection", result, result == "redirection-to-https", [u for u, _ in route])


_REFERRER_GOOD = ("no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin")
_REFERRER_BAD = ("origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade")


def referrer_policy_test(ex: Exchange, page: _Page) -> TestResult:
    values = [*ex.values("referrer-policy"), *page.referrer]
    if not values:
        return _result("referrer-policy", "referrer-policy-not-implemented", True)
    data = ", ".join(values)
    valid = [e.strip().lower() for e in data.split(",") if e.strip().lower() in _REFERRER_GOOD + _REFERRER_BAD]
    policy = valid[-1] if valid else ""
    if policy in _REFERRER_GOOD:
        result = "referrer-policy-private"
    elif policy in _REFERRER_BAD:
        result = "referrer-policy-unsafe"
    else:
        result = "referrer-policy-header-invalid"
    return _result("referrer-policy", result, result == "referrer-policy-private", data)


def hsts_test(ex: Exchange) -> TestResult:
    result = "hsts-not-implemented"
    max_age = None
    if urlsplit(ex.url).scheme != "https":
        result = "hsts-not-implemented-no-https"
    elif not ex.verified:
        result = "hsts-invalid-cert"
    elif ex.values("strict-transport-security"):
        data = ex.values("strict-transport-security")[0][:1024]
        try:
            if "," in data:
                raise ValueError("header set multiple times")
            for parameter in (p.strip().lower() for p in data.split(";")):
                if parameter.startswith("max-age="):
                    match = re.match(r"\s*([+-]?\d+)", parameter[8:128])
                    max_age = int(match.group(1)) if match else None
            if max_age is None:
                raise ValueError("max-age missing")
            result = "hsts-implemented-max-age-less-than-six-months" if max_age < SIX_MONTHS else "hsts-implemented-max-age-at-least-six-months"
        except ValueError:
            result = "hsts-header-invalid"
    return _result("strict-transport-security", result, result == "hsts-implemented-max-age-at-least-six-months", max_age)


_SRI_ORDER = [
    "sri-implemented-and-all-scripts-loaded-securely",
    "sri-implemented-and-external-scripts-loaded-securely",
    "sri-implemented-but-external-scripts-not-loaded-securely",
    "sri-not-implemented-but-external-scripts-loaded-securely",
    "sri-not-implemented-and-external-scripts-not-loaded-securely",
    "sri-not-implemented-response-not-html",
]


def _site(host: str | None) -> str:
    return ".".join((host or "").lower().split(".")[-2:])


def sri_test(ex: Exchange, page: _Page) -> TestResult:
    name = "subresource-integrity"
    if not ex.is_html:
        return _result(name, "sri-not-implemented-response-not-html", True)
    https = urlsplit(ex.url).scheme == "https"
    own = _site(urlsplit(ex.url).hostname)
    result: str | None = None
    foreign = False
    for script in page.scripts:
        src = script.get("src")
        if not src:
            continue
        integrity = script.get("integrity")
        relative_protocol = bool(re.match(r"^//[^/]", src))
        full = bool(re.match(r"^https?://", src))
        relative_origin = not relative_protocol and not full
        same_site = relative_protocol or relative_origin or (full and _site(urlsplit(src).hostname) == own)
        secure_origin = relative_origin or (same_site and not relative_protocol)
        foreign = foreign or not secure_origin
        scheme = urlsplit(src).scheme if full else None
        secure_scheme = scheme == "https" or (relative_origin and https)
        if not secure_origin:
            if integrity and not secure_scheme:
                new = "sri-implemented-but-external-scripts-not-loaded-securely"
            elif not integrity and secure_scheme:
                new = "sri-not-implemented-but-external-scripts-loaded-securely"
            elif not integrity:
                new = "sri-not-implemented-and-external-scripts-not-loaded-securely"
            else:
                continue
            if result is None or _SRI_ORDER.index(new) > _SRI_ORDER.index(result):
                result = new
        elif integrity and secure_scheme and result is None:
            result = "sri-implemented-and-all-scripts-loaded-securely"
    if not page.scripts:
        result = "sri-not-implemented-but-no-scripts-loaded"
    elif result is None:
        result = ("sri-implemented-and-external-scripts-loaded-securely" if foreign
                  else "sri-not-implemented-but-all-scripts-loaded-from-secure-origin")
    passed = result in ("sri-implemented-and-all-scripts-loaded-securely", "sri-implemented-and-external-scripts-loaded-securely",
                        "sri-not-implemented-response-not-html", "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
                        "sri-not-implemented-but-no-scripts-loaded")
    return _result(name, result, passed)


def xcto_test(ex: Exchange) -> TestResult:
    header = ex.first("x-content-type-options")
    if not header:
        result = "x-content-type-options-not-implemented"
    elif header[:256].strip().lower() == "nosniff":
        result = "x-content-type-options-nosniff"
    else:
        result = "x-content-type-options-header-invalid"
    return _result("x-content-type-options", result, result == "x-content-type-options-nosniff", header)


def xfo_test(ex: Exchange, csp: TestResult) -> TestResult:
    header = ex.first("x-frame-options")
    if not header:
        result = "x-frame-options-not-implemented"
    else:
        value = header[:1024].strip().lower()
        if value in ("deny", "sameorigin"):
            result = "x-frame-options-sameorigin-or-deny"
        elif value.startswith("allow-from"):
            result = "x-frame-options-allow-from-origin"
        else:
            result = "x-frame-options-header-invalid"
    if isinstance(csp.data, dict) and csp.data.get("frame-ancestors"):
        result = "x-frame-options-implemented-via-csp"
    passed = result not in ("x-frame-options-not-implemented", "x-frame-options-header-invalid")
    return _result("x-frame-options", result, passed, header)


def corp_test(ex: Exchange) -> TestResult:
    header = ex.first("cross-origin-resource-policy")
    result = "corp-not-implemented"
    if header:
        result = {"same-site": "corp-implemented-with-same-site", "same-origin": "corp-implemented-with-same-origin",
                  "cross-origin": "corp-implemented-with-cross-origin"}.get(header[:256].strip().lower(), "corp-header-invalid")
    return _result("cross-origin-resource-policy", result, result != "corp-header-invalid", header)


def _result(name: str, result: str, passed: bool, data: Any = None) -> TestResult:
    return TestResult(name, result, passed, MODIFIERS[result], FIXES.get(result, ""), data)


def grade(exchange: Exchange) -> Grade:
    """Every test, the score and the grade, as the Observatory computes them."""
    page = _page(exchange)
    csp = csp_test(exchange, page)
    hsts = hsts_test(exchange)
    tests = [
        csp,
        cookies_test(exchange, hsts.passed),
        cors_test(exchange),
        redirection_test(exchange),
        referrer_policy_test(exchange, page),
        hsts,
        sri_test(exchange, page),
        xcto_test(exchange),
        xfo_test(exchange, csp),
        corp_test(exchange),
    ]
    with_bonus = 100 + sum(t.modifier for t in tests)
    uncurved = 100 + sum(t.modifier for t in tests if t.modifier < 0)
    score = max(with_bonus if uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT else uncurved, 0)
    return Grade(score, grade_for(score), tests)
