"""What only a running stack can show: the outcomes of `verify --live`'s probes.

These rules have no check over a Topology: `stackgen.live.checks` runs the probes and
reports through them, so their ids, severities, documentation and suppressions
work exactly as the static rules' do (`stackgen rules SG302`).
"""

from __future__ import annotations

from stackgen.findings import Severity
from stackgen.verify.rules.base import Rule

REACHABILITY = Rule(
    id="SG301",
    name="reachability-mismatch",
    severity=Severity.CRITICAL,
    title="A connection the security model forbids succeeded (or one it needs failed)",
    why="""The reachability matrix opens real TCP connections from every project network and from the
    host to every service port; with several Node-RED instances also from inside each instance's container
    and the edge's. Node-RED's port must open only from the network it shares with the edge; anything else
    reaching it bypasses the edge's TLS and authentication. No instance reaches another (from its network or
    its container), and the edge reaches every instance.""",
    bad="""
        # from a container on the public network: connect node-red:1880 -> open
        # inside node-red-b: connect node-red:1880 -> open (instance b reaches instance node-red)
    """,
    good="""
        # node-red:1880 opens only from the internal network it shares with the edge
        # inside node-red-b: connect node-red:1880 -> blocked; inside edge: open
    """,
    fix="Remove the path the matrix shows (a network attachment, a published port, a missing host firewall rule).",
    kind="probe",
)

HOST_GATEWAY = Rule(
    id="SG302",
    name="host-gateway-hole",
    severity=Severity.HIGH,
    title="Internal network reaches the host through its bridge gateway",
    why="""Docker's `internal: true` drops forwarded traffic only: a container on an internal network
    still reaches every service the host listens on through the bridge's gateway address (SSH, a
    database bound to 0.0.0.0, the Docker API on TCP). Node-RED can then attack the host.""",
    bad="""
        # inside node-red: connect <internal gateway>:PORT -> open (a listener on the host)
    """,
    good="""
        # inside node-red: connect <internal gateway>:PORT -> blocked
    """,
    fix="As root: `stackgen up DIR` inserts `iptables -I INPUT -i <bridge> -j DROP` for the internal bridge (the finding prints the exact rule).",
    kind="probe",
)

EGRESS = Rule(
    id="SG303",
    name="egress-open",
    severity=Severity.HIGH,
    title="Node-RED has a way out although egress is denied",
    why="""With egress denied, a compromised Node-RED must not be able to fetch tools or exfiltrate: it
    should have no default route and reach nothing off its internal network.""",
    bad="""
        # inside node-red: /proc/net/route has a default route; a canary on another network answers
    """,
    good="""
        # no default route; the canary and the host gateway are unreachable
    """,
    fix="Attach Node-RED only to internal networks (set `node_red.egress: false` and regenerate).",
    kind="probe",
)

KEYS = Rule(
    id="SG304",
    name="key-exposed",
    severity=Severity.CRITICAL,
    title="Private key readable or writable where it must not be",
    why="""The key is private: only the certificate sidecar writes it, the edge reads it, nobody else
    sees it. Probed from inside the containers, not from the file.""",
    bad="""
        # inside node-red: /etc/letsencrypt/live/NAME/privkey.pem is readable
    """,
    good="""
        # absent in node-red; read-only in the edge; mode 0600/0640 in the sidecar
    """,
    fix="Mount the key volume only in the sidecar (rw) and the edge (ro); let the deploy hook set mode 0640 group 1500.",
    kind="probe",
)

CERTIFICATE = Rule(
    id="SG305",
    name="certificate-invalid",
    severity=Severity.HIGH,
    title="Served certificate does not match, does not chain, or expires soon",
    why="""Browsers reject a certificate for another name or from an untrusted CA, and users learn to
    click through warnings. An expiring one means renewal is failing.""",
    bad="""
        # openssl s_client -servername nodered.example.org: CN=other.example.org, expires in 3 days
    """,
    good="""
        # the served chain verifies for every domain and is valid for more than --min-days
    """,
    fix="Check the sidecar's logs (`docker compose logs certbot`) and force a renewal (`docker compose exec certbot certbot renew --force-renewal`).",
    kind="probe",
)

TLS_PROTOCOL = Rule(
    id="SG306",
    name="old-tls-accepted",
    severity=Severity.HIGH,
    title="Edge accepts TLS older than 1.2",
    why="TLS 1.0 and 1.1 are deprecated (RFC 8996) and allow downgrade attacks.",
    bad="""
        # a TLS 1.1 handshake with the edge succeeds
    """,
    good="""
        # only TLS 1.2 and 1.3 handshakes succeed
    """,
    fix="Regenerate the edge config from stack.yaml (`stackgen generate`): it sets TLS 1.2 as the minimum.",
    kind="probe",
)

HTTP_POLICY = Rule(
    id="SG307",
    name="https-policy",
    severity=Severity.MEDIUM,
    title="HTTP does not redirect to HTTPS, or HSTS is missing",
    why="""Without the redirect and HSTS a user's first request, or a stripped link, travels in clear
    text, session cookie included.""",
    bad="""
        # curl -I http://nodered.example.org/ -> 200; no Strict-Transport-Security on HTTPS
    """,
    good="""
        # 301/308 to https://; Strict-Transport-Security: max-age=31536000
    """,
    fix="Regenerate the edge config from stack.yaml (`stackgen generate`).",
    kind="probe",
)

ADMIN_AUTH = Rule(
    id="SG308",
    name="admin-auth-off",
    severity=Severity.CRITICAL,
    title="Node-RED's admin API answers without authentication",
    why="""Node-RED's admin API deploys flows, and a flow can run any command: without adminAuth anyone
    who reaches the edge owns the container.""",
    bad="""
        # curl https://nodered.example.org/flows -> 200 without a token
    """,
    good="""
        # curl https://nodered.example.org/flows -> 401
    """,
    fix="Regenerate settings.js from stack.yaml (`stackgen generate`): it sets adminAuth with the bcrypt hash.",
    kind="probe",
)

WEBSOCKET = Rule(
    id="SG309",
    name="websocket-broken",
    severity=Severity.LOW,
    title="The editor's websocket does not upgrade through the edge",
    why="Without the /comms websocket the editor cannot show deploy results or debug output.",
    bad="""
        # GET /comms with Upgrade: websocket -> 400
    """,
    good="""
        # -> 101 Switching Protocols
    """,
    fix="Regenerate the edge config (`stackgen generate`): it forwards Upgrade/Connection headers.",
    kind="probe",
)

PROXY_SCOPE = Rule(
    id="SG310",
    name="proxy-scope",
    severity=Severity.MEDIUM,
    title="A path outside Node-RED is proxied somewhere else",
    why="""The edge must send requests for the stack's domains to Node-RED only (and unknown hosts
    nowhere): an extra route exposes a service nobody hardened.""",
    bad="""
        # GET /stackgen-probe-xyz -> 200 from another backend
    """,
    good="""
        # GET /stackgen-probe-xyz -> Node-RED's own 404
    """,
    fix="Remove the extra route from the edge config, or regenerate it (`stackgen generate`).",
    kind="probe",
)

HEADER_GRADE = Rule(
    id="SG311",
    name="header-grade",
    severity=Severity.MEDIUM,
    title="The edge's security headers grade below A (MDN HTTP Observatory scoring)",
    why="""Browsers enforce what the edge tells them: without a Content-Security-Policy that restricts scripts
    and objects, framing denied, HSTS, nosniff and secure cookies, an injected script or a framing page can
    act with the logged-in user's rights in the editor, which runs code. The grade is the MDN HTTP
    Observatory's published scoring (baseline 100, a modifier per test, A from 90), computed offline from
    the responses the edge actually sends.""",
    bad="""
        # GET https://nodered.example.org/ -> Content-Security-Policy: frame-ancestors 'self' (no script-src)
        # grade B+ (80/100): content-security-policy -20
    """,
    good="""
        # Content-Security-Policy with script-src/object-src restricted, frame-ancestors 'none',
        # Strict-Transport-Security: max-age=31536000, X-Content-Type-Options: nosniff,
        # Referrer-Policy: strict-origin-when-cross-origin -> grade A or better
    """,
    fix="Add the headers each failing test names (the finding lists them) to the edge config, or regenerate it (`stackgen generate`).",
    kind="probe",
)

TLS_PROFILE = Rule(
    id="SG312",
    name="tls-profile",
    severity=Severity.MEDIUM,
    title="The edge's TLS deviates from Mozilla's intermediate profile",
    why="""Mozilla's intermediate profile (server-side TLS guidelines 5.7) is what every modern client supports
    and no known attack breaks: TLS 1.2 and 1.3 only, forward-secret AEAD cipher suites, the X25519, P-256 and
    P-384 groups, an ECDSA or 2048-bit RSA certificate signed with SHA-256 or better. Each extra protocol,
    suite or group is attack surface a client can be downgraded to.""",
    bad="""
        # sslyze: TLS 1.2 accepts TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA; groups include X448, secp521r1
    """,
    good="""
        # TLS 1.2/1.3 only; ECDHE-ECDSA/RSA with AES-GCM or ChaCha20-Poly1305; X25519, prime256v1, secp384r1
    """,
    fix="Restrict the edge's TLS settings to the profile (the finding names the setting), or regenerate the edge config (`stackgen generate`).",
    kind="probe",
)

EDITOR_EXPOSED = Rule(
    id="SG313",
    name="editor-exposed",
    severity=Severity.HIGH,
    title="The editor or its admin API answers a client outside node_red.editor.allow",
    why="""Whoever logs in to the editor runs code on the host's Node-RED, and bots try every new host within minutes.
    The edge must answer 403 to editor traffic (the editor's prefix, its admin API, `/flows`, `/settings`, and the
    same paths in other case or with `..` and `//`) from any client outside `node_red.editor.allow`, before a password
    is ever tried. Probed from a network the verifier creates with a subnet outside allow (198.18.0.0/15, the
    benchmarking range); an allow list open to everyone is reported from the configuration.""",
    bad="""
        # from 198.18.7.23 (outside allow): GET /editor/flows -> 401 (Node-RED's own answer: the edge let it through)
        # node_red.editor.allow: [0.0.0.0/0, ::/0]
    """,
    good="""
        # from 198.18.7.23: GET /editor/, /editor/flows, /EDITOR/flows, /x/../editor/flows -> 403 from the edge
    """,
    fix="""Keep node_red.editor.allow to the networks you edit from (private and VPN ranges by default) and regenerate
    the edge config (`stackgen generate`); the finding names the paths that got through.""",
    kind="probe",
)

ENDPOINTS_REFUSED = Rule(
    id="SG314",
    name="endpoints-refused",
    severity=Severity.LOW,
    title="An HTTP endpoint outside the editor's prefix does not reach Node-RED from outside allow",
    why="""The editor is private, the flows' HTTP endpoints and the dashboard are public: the edge must hold only the
    editor's prefix to `allow`. An edge that refuses every path to outsiders breaks the endpoints, and a 403 on the
    editor then proves nothing about the gate.""",
    bad="""
        # from 198.18.7.23: GET /stackgen-probe-1a2b -> 403 from the edge
    """,
    good="""
        # from 198.18.7.23: GET /stackgen-probe-1a2b -> 404 "Cannot GET" (Node-RED's own answer)
    """,
    fix="Match only node_red.editor.path (and node_red.editor.host) in the edge's editor gate; regenerate the edge config (`stackgen generate`).",
    kind="probe",
)

LOGIN_NOT_THROTTLED = Rule(
    id="SG315",
    name="login-not-throttled",
    severity=Severity.HIGH,
    title="Repeated failed logins from one address are not answered 429 with Retry-After",
    why="""Node-RED's own throttle counts attempts per user name: a client that rotates user names guesses without
    limit. The login shield (docs/shield.md) counts failed logins per client address and answers 429 with Retry-After
    after `node_red.login_shield.attempts` failures. Probed with failed logins from a throwaway address of the
    verifier's own (which it thereby bans), a new user name each time.""",
    bad="""
        # 7 failed logins from 172.20.4.9 with rotating user names -> 403 403 403 403 403 403 403
    """,
    good="""
        # 5 failed logins -> 403 x5, then 429 with Retry-After: 900, and the ban holds
    """,
    fix="""Set node_red.login_shield.enabled: true (the default) and regenerate (`stackgen generate`); settings.js must
    load shield.js as httpAdminMiddleware. Restart node-red.""",
    kind="probe",
)

CLIENT_ADDRESS_FORGEABLE = Rule(
    id="SG316",
    name="client-address-forgeable",
    severity=Severity.HIGH,
    title="A client's own X-Forwarded-For, X-Real-IP or Forwarded header moves it past the editor gate or the login shield",
    why="""The edge is the first hop: the client's address is the TCP peer, and a forwarded-for header a client sends
    names whatever it likes. An edge that judges the editor gate on such a header, or passes it on as the X-Real-IP the
    shield counts, lets a client claim an allowed address or a fresh one for every guess. Counting the edge's own
    address instead of the client's is as bad the other way: one guesser bans everyone's logins.""",
    bad="""
        # from 198.18.7.23 with X-Forwarded-For: 127.0.0.1 -> GET /editor/flows 401
        # failed logins with a new X-Real-IP each time -> never 429
    """,
    good="""
        # the same requests -> 403; the 6th failed login -> 429, whatever the headers say
    """,
    fix="""Judge and assert the TCP peer: Caddy remote_ip and header_up X-Real-IP {remote_host}; NGINX $remote_addr
    without realip and proxy_set_header X-Real-IP $remote_addr; Traefik without trusted forwarded headers or ipStrategy.
    Or regenerate the edge config (`stackgen generate`).""",
    kind="probe",
)

NOT_CHECKED = Rule(
    id="SG317",
    name="not-checked",
    severity=Severity.HIGH,
    title="A live check of the editor's access or of Node-RED's isolation could not run",
    why="""A probe that cannot run proves nothing: the editor gate, the login shield and forged client headers
    (SG313, SG315, SG316), the reachability matrix (SG301), Node-RED's way out (SG302, SG303) and where the key can be
    read (SG304) each guard a risk that stays hidden while its check is missing. So a check of those that could not run
    (no answer, no probe container, a container this node cannot reach) is a finding, and `verify --live` fails at
    the default `--fail-on high` instead of passing silently. The endpoint check (SG314, low) is reported at low; a
    check that could not run only because the one before it failed with its own finding (no refused request to forge
    past, no ban to evade) is not one.
    Checks that guard nothing a rule names (e.g. the process user of a swarm task on another node, judged from its
    service spec) stay visible `not checked` lines.""",
    bad="""
        # FAIL  editor refused outside allow: not checked: no answer from 198.18.7.23 for /editor/
        # (exit 0: nothing said the gate was never probed)
    """,
    good="""
        # ok    editor refused outside allow: 9 editor requests from 198.18.7.23: 403
    """,
    fix="""Make the check runnable (the message says what stopped it: a stopped container, a network the probe could not
    join, no answer from the edge) and run `stackgen verify --live` again; suppress it only with a reason.""",
    kind="probe",
)

RULES = (REACHABILITY, HOST_GATEWAY, EGRESS, KEYS, CERTIFICATE, TLS_PROTOCOL, HTTP_POLICY, ADMIN_AUTH, WEBSOCKET, PROXY_SCOPE,
         HEADER_GRADE, TLS_PROFILE, EDITOR_EXPOSED, ENDPOINTS_REFUSED, LOGIN_NOT_THROTTLED, CLIENT_ADDRESS_FORGEABLE,
         NOT_CHECKED)
