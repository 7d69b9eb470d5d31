"""The security headers of every response, in one place: the three edge blueprints and Node-RED's csp.js read them here.

Two policies, because the site holds two kinds of page (docs/headers.md):

- **The editor** (everything under httpAdminRoot) runs Node-RED's own code and the node definitions it
  installs, which are HTML with inline `<script>` blocks. Its policy is set *by Node-RED* (csp.js, loaded
  by settings.js), since only Node-RED can put a fresh nonce on those scripts: `script-src 'nonce-…'
  'strict-dynamic'`, no `'unsafe-inline'`, no `'unsafe-eval'` (headless Chromium loads the real editor
  under it with no violation: tests/integration/test_editor_csp.py).
- **Everything else** (HTTP-in endpoints, dashboards, the edge's own 403/421/502 pages) gets
  `ENDPOINT_CSP` from the edge *when the response carries no policy of its own*: a flow that sets its own
  Content-Security-Policy (an HTTP response node's headers) keeps it, on Caddy and NGINX. Traefik's
  headers middleware can only replace, so there the editor's router has no CSP of its own and the public
  router always sets `ENDPOINT_CSP`.

The remaining headers the edge sets on every response, replacing whatever Node-RED sent (NGINX hides
the upstream's copy first: two X-Content-Type-Options lines are invalid to the Observatory's grader).
Graded offline by stackgen.live.headers_grade (the MDN HTTP Observatory's scoring): A+ on both kinds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Header", "EDGE_HEADERS", "ENDPOINT_CSP", "EDITOR_CSP", "NONCE_PLACEHOLDER", "REMOVED_HEADERS", "quoted"]

NONCE_PLACEHOLDER = "{nonce}"


@dataclass(frozen=True)
class Header:
    """One response header the edge sets; `if_absent`: only when the upstream's response has none."""

    name: str
    value: str
    if_absent: bool = False


# HTTP-in endpoints and dashboards: same-origin everything, inline styles allowed (dashboards' UI
# libraries set style attributes), no inline or eval'd script, no plugins, never framed.
ENDPOINT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                "frame-ancestors 'none'")

# The editor: scripts only with this response's nonce (and what they load: 'strict-dynamic'; Monaco
# starts its workers from blob: URLs); styles inline (jQuery UI, Monaco); the comms websocket is 'self'.
EDITOR_CSP = (f"default-src 'none'; script-src 'nonce-{NONCE_PLACEHOLDER}' 'strict-dynamic'; "
              "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
              "connect-src 'self'; worker-src 'self' blob:; manifest-src 'self'; object-src 'none'; "
              "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

EDGE_HEADERS: tuple[Header, ...] = (
    Header("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    Header("X-Content-Type-Options", "nosniff"),
    Header("X-Frame-Options", "DENY"),
    Header("Referrer-Policy", "strict-origin-when-cross-origin"),
    Header("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    Header("Cross-Origin-Resource-Policy", "same-origin"),
    Header("Cross-Origin-Opener-Policy", "same-origin"),
    Header("Content-Security-Policy", ENDPOINT_CSP, if_absent=True),
)

# Upstream headers that only tell an attacker what runs behind the edge.
REMOVED_HEADERS = ("Server", "X-Powered-By")

_UNQUOTABLE = re.compile(r'["\\$`{}\x00-\x1f\x7f]')


def quoted(value: str) -> str:
    """`| quoted` in the edge blueprints: a fixed header value as one double-quoted string, the same text in the
    Caddyfile, nginx.conf and YAML. Only for this module's constants: rendering stops on a character any of
    the three would read as syntax (`$` nginx variables, `{}` Caddy placeholders, escapes)."""
    if _UNQUOTABLE.search(value):
        raise ValueError(f"unsafe value for a quoted header: {value!r}")
    return f'"{value}"'
