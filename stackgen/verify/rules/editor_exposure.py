"""Node-RED's editor reachable from anywhere with nothing in front of it (issue 13, item 5).

SG102 says Node-RED publishes a port (a door around the edge); SG103/SG111 say who shares its network.
This rule asks the question a scanner asks: can *anyone* reach the editor (which deploys code) and find
no protection at all? Exposure is what the file shows: a port published on every interface or on a public
address (also through the service whose network Node-RED borrows, or host networking), or a label-driven
proxy told to route a host name to it (Traefik routers, caddy-docker-proxy sites, nginx-proxy's
VIRTUAL_HOST). Protection is any of: a client-address restriction at that proxy (Traefik `ipAllowList` /
`ipWhiteList` or a `ClientIP` rule, Caddy `remote_ip`/`client_ip`, nginx-proxy `NETWORK_ACCESS=internal`),
an auth layer in front (Traefik basicAuth/digestAuth/forwardAuth, Authelia/Authentik/oauth2-proxy behind a
middleware, Caddy basic_auth/forward_auth, nginx-proxy's htpasswd), a bind to a private or VPN address, or
Node-RED's own `adminAuth` (or `httpAdminRoot: false`) in a settings.js the loader could read.

A route limited to paths (Traefik `PathPrefix`, a Caddy path matcher or `handle_path`) reaches the editor
only if a path overlaps where the editor lives: settings.js's `httpAdminRoot` when it was read, else
Node-RED's default (`/` and the admin API's paths) or a path named for it (`/nodered`, `/editor`); a
router that excludes that path (`!PathPrefix`) or only redirects to HTTPS does not reach it.

Proxies configured by files the compose file does not show (NGINX or Caddy config, Traefik's file
provider, Nginx Proxy Manager's database) are not judged: they may route the editor, but the file does not
say so. A middleware defined elsewhere (`name@file`) is judged by its name: `authelia@file`,
`lan-allowlist@file` protect, `secure-headers@file` or `chain-no-auth@file` do not. Middlewares Traefik
applies to a whole entry point (its static configuration) are not seen either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from stackgen.constants import NODE_RED_PORT
from stackgen.findings import Finding, Severity
from stackgen.topology import NodeRedSettings, Port, Role, Service, Source, Topology
from stackgen.verify.rules.base import Rule

EDITOR_UNPROTECTED = Rule(
    id="SG112",
    name="editor-unprotected",
    severity=Severity.CRITICAL,
    title="Node-RED's editor is reachable from anywhere, with no login and no address restriction",
    why="""Whoever reaches Node-RED's editor and admin API can deploy a flow that runs any command: it
    is remote code execution by design, and bots find a new host within minutes. This file lets the
    world reach it (a port published on every interface, or a proxy routing a host name to it) and shows
    no protection on the way: no client-address restriction at the edge, no auth layer in front, and no
    `adminAuth` in Node-RED's settings.js (Node-RED ships with none). Critical, like the live probe that
    proves the same thing (SG308): when it is true, the host is anyone's.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:5.0.7
            networks: [web]
            labels:
              traefik.enable: "true"
              traefik.http.routers.nodered.rule: Host(`nodered.example.org`)
              traefik.http.routers.nodered.entrypoints: websecure
        networks:
          web: {}
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:5.0.7
            networks: [web]
            labels:
              traefik.enable: "true"
              traefik.http.routers.nodered.rule: Host(`nodered.example.org`)
              traefik.http.routers.nodered.entrypoints: websecure
              traefik.http.routers.nodered.middlewares: home-only
              traefik.http.middlewares.home-only.ipallowlist.sourcerange: 192.168.0.0/16, 100.64.0.0/10
        networks:
          web: {}
    """,
    fix="Keep the editor to the networks that need it and ask for a login: restrict by client address at "
    "the edge (Traefik `ipAllowList` middleware on the router, Caddy `remote_ip` matcher, NGINX `allow`/`deny`, "
    "nginx-proxy `NETWORK_ACCESS=internal`) or put an auth layer in front (basicAuth/forwardAuth: Authelia, "
    "Authentik, oauth2-proxy); set `adminAuth` in Node-RED's settings.js (mounted from a file next to the "
    "compose file, so it can be checked); bind a published port to 127.0.0.1 or a VPN address instead of all "
    "interfaces. stackgen does all of it: `node_red.editor.allow` (private and VPN ranges by default) gates the "
    "editor at the edge, adminAuth is always set, and the login shield throttles guesses.",
)

_PROTECTING_MIDDLEWARES = {"ipallowlist", "ipwhitelist", "basicauth", "digestauth", "forwardauth"}
_ROUTER = re.compile(r"traefik\.(http|tcp)\.routers\.([^.]+)\.(.+)$")
_MIDDLEWARE = re.compile(r"traefik\.(?:http|tcp)\.middlewares\.([^.]+)\.([^.]+)(?:\.(.+))?$")
_LB_PORT = re.compile(r"traefik\.http\.services\.[^.]+\.loadbalancer\.server\.port$")
# A protection named but defined elsewhere (a file provider, another stack): judged by its name.
_GUARD_PARTS = ("auth", "sso", "oidc", "jwt", "keycloak", "login", "allowlist", "whitelist", "ipallow", "ipwhite")
_GUARD_WORDS = {"allow", "lan", "local", "private", "internal", "intranet", "vpn", "tailscale", "wireguard", "wg",
                "trusted", "restricted", "home"}
_NO_GUARD = re.compile(r"no[-_]?auth|auth[-_]?bypass|public", re.I)
_REDIRECT_NAME = re.compile(r"redirect.*(?:https|scheme|secure|ssl|tls)|(?:https|ssl|tls).*redirect", re.I)
_TRAEFIK_PATH = re.compile(r"(!?)\s*(?:PathPrefix|Path)\s*\(([^)]*)\)", re.I)
_QUOTED = re.compile(r"[`\"']([^`\"']*)[`\"']")
# Where the editor and admin API answer when httpAdminRoot is "/" (@node-red/editor-api's routes).
_ADMIN_PATHS = {"", "auth", "flows", "flow", "nodes", "settings", "plugins", "library", "context", "credentials",
                "diagnostics", "icons", "locales", "comms", "red", "vendor", "theme", "debug", "inject", "projects",
                "index.html", "favicon.ico"}
_EDITOR_PATH = re.compile(r"node-?red|editor|admin|^/red(?:/|$)|^/flows?(?:/|$)")
_CADDY_HEAD = re.compile(r"caddy(?:_\d+)?$")
_ORDERED = re.compile(r"^\d+_|_\d+$")
_CADDY_GUARDS = re.compile(r"remote_ip|client_ip|basic_?auth|forward_auth|jwtauth|authorize|authenticat")
_CADDY_UPSTREAMS = re.compile(r"\{\{\s*upstreams(?:\s+(?:https?\s+)?(\d+))?")


@EDITOR_UNPROTECTED.checks
def _editor_exposed(topo: Topology) -> Iterator[Finding]:
    for svc in topo.by_role(Role.NODE_RED):
        settings = _settings(svc, topo)
        if settings is not None and (settings.admin_auth or settings.editor_off):
            continue
        root = settings.admin_root if settings is not None else None
        exposures = [*_published(svc, topo), *_traefik(svc, topo, root), *_caddy(svc, root), *_nginx_proxy(svc, topo)]
        if not exposures:
            continue
        listed = "; ".join(what for what, _ in exposures)
        yield EDITOR_UNPROTECTED.finding(
            svc, f"Node-RED's editor can be reached from anywhere ({listed}) and {_no_login(settings)}", exposures[0][1])


def _settings(svc: Service, topo: Topology) -> NodeRedSettings | None:
    """What settings.js says; for a running stack, what the compose file's settings.js says."""
    if svc.node_red_settings is not None or topo.declared is None:
        return svc.node_red_settings
    declared = topo.declared.services.get(svc.name)
    return declared.node_red_settings if declared else None


def _no_login(settings: NodeRedSettings | None) -> str:
    unless = "Node-RED asks for no login unless settings.js sets adminAuth"
    if settings is None:
        return f"no adminAuth is known: its settings.js was not read ({unless})"
    if settings.admin_auth is False:
        return f"{settings.host_file} sets no adminAuth: nobody is asked to log in"
    if settings.host_file:
        return (f"no adminAuth is known: its settings.js ({settings.path}) comes from {settings.host_file}, which could "
                f"not be read next to the compose file ({unless})")
    return (f"no adminAuth is known: its settings.js ({settings.path}) is in a volume or the image, not in a file "
            f"next to the compose file ({unless})")


def _editor_port(svc: Service) -> int:
    """The container port the editor listens on: the official image's PORT, else 1880."""
    port = str(svc.environment.get("PORT") or "").strip()
    return int(port) if port.isdigit() else NODE_RED_PORT


# --- exposures: (what, where) -------------------------------------------------------


def _published(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    port = _editor_port(svc)
    mode = svc.network_mode or ""
    if mode == "host":
        yield f"host networking: it listens on port {port} of every host interface", svc.at("network_mode")
        return
    owner = svc
    if mode.startswith("service:"):
        owner = topo.services.get(mode.split(":", 1)[1]) or svc
    for p in owner.ports:
        if p.target != port or p.protocol != "tcp":
            continue
        through = f" (through {owner.name}, whose network it shares)" if owner is not svc else ""
        if p.all_interfaces:
            yield f"{owner.name} publishes {p.describe()} on every host interface{through}", p.src or owner.at("ports")
        elif _public_address(p):
            yield f"{owner.name} publishes {p.describe()} on a public address{through}", p.src or owner.at("ports")


def _public_address(p: Port) -> bool:
    """A host address that is neither private, loopback, link-local nor a VPN range (CGNAT, ULA)."""
    import ipaddress  # only for a port bound to an address: most runs never need it

    try:
        return ipaddress.ip_address(str(p.host_ip).strip("[]")).is_global
    except ValueError:  # a name or an unresolved variable: not judged
        return False


def _traefik(svc: Service, topo: Topology, root: str | None) -> Iterator[tuple[str, Source | None]]:
    labels = {k.lower(): str(v) for k, v in svc.labels.items()}
    traefik = {k: v for k, v in labels.items() if k.startswith("traefik.")}
    if not traefik or traefik.get("traefik.enable", "").strip().lower() == "false":
        return
    ports = {int(v) for k, v in traefik.items() if _LB_PORT.match(k) and v.strip().isdigit()}
    if ports and _editor_port(svc) not in ports:
        return  # routed to another port of Node-RED's (an HTTP-in server of its own), not the editor
    routers: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in traefik.items():
        m = _ROUTER.match(key)
        if m:
            routers.setdefault((m.group(1), m.group(2)), {})[m.group(3)] = value
    if not routers:
        if traefik.get("traefik.enable", "").strip().lower() != "true":
            return
        routers = {("http", svc.name): {}}  # Traefik's default router: its default rule (Host from the name)
    defined = _middlewares(topo)
    for (_, name), attrs in sorted(routers.items()):
        if attrs.get("service", "").strip().endswith("@internal"):
            continue
        rule = attrs.get("rule", "").strip()
        if "clientip(" in rule.lower().replace(" ", ""):
            continue
        paths, negated = _traefik_paths(rule)
        if not _reaches_editor(paths, negated, root):
            continue
        refs = [r.strip() for r in attrs.get("middlewares", "").split(",") if r.strip()]
        effects = {_effect(ref, defined, set()) for ref in refs}
        if effects & {"guard", "redirect"}:  # a login or an allow-list; or a redirect that never reaches Node-RED
            continue
        shown = rule or "Traefik's default rule"
        none = "no middleware that restricts by address or asks for a login" if refs else "no middleware"
        yield f"Traefik router {name} routes {shown} to it with {none}", svc.at("labels")


def _traefik_paths(rule: str) -> tuple[list[str], list[str]]:
    """The path prefixes a Traefik rule matches (`Path`, `PathPrefix`) and those it excludes (`!PathPrefix`)."""
    paths: list[str] = []
    negated: list[str] = []
    for m in _TRAEFIK_PATH.finditer(rule):
        (negated if m.group(1) else paths).extend(_QUOTED.findall(m.group(2)))
    return paths, negated


def _middlewares(topo: Topology) -> dict[str, dict[str, str]]:
    """Traefik middlewares defined in this file's labels: name -> {type: value, 'chain': members}."""
    found: dict[str, dict[str, str]] = {}
    for other in topo.services.values():
        for key, value in other.labels.items():
            m = _MIDDLEWARE.match(key.lower())
            if m:
                kind = m.group(2)
                if kind == "plugin":  # `...plugin.<name>.<option>`: the plugin's name says what it is
                    kind = "plugin:" + (m.group(3) or "").split(".")[0]
                found.setdefault(m.group(1), {})[kind] = str(value) if m.group(3) == "middlewares" else ""
    return found


def _effect(ref: str, defined: Mapping[str, Mapping[str, str]], seen: set[str]) -> str | None:
    """What the middleware `ref` (`name` or `name@provider`) does for the editor: "guard" (restricts by
    address or asks for a login), "redirect" (answers every request with a redirect), or None."""
    name, _, provider = ref.lower().partition("@")
    if name in seen:
        return None
    seen.add(name)
    kinds = defined.get(name) if provider in ("", "docker", "swarm") else None
    if kinds is None:  # defined elsewhere: its name is all there is
        return "guard" if _guard_name(name) else "redirect" if _REDIRECT_NAME.search(name) else None
    if _PROTECTING_MIDDLEWARES & set(kinds) or any(k.startswith("plugin:") and _guard_name(k[7:]) for k in kinds):
        return "guard"
    if "redirectscheme" in kinds:
        return "redirect"
    members = [m.strip() for m in kinds.get("chain", "").split(",") if m.strip()]
    effects = {_effect(m, defined, seen) for m in members}
    return "guard" if "guard" in effects else "redirect" if "redirect" in effects else None


def _guard_name(name: str) -> bool:
    if _NO_GUARD.search(name):
        return False
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    return bool(words & _GUARD_WORDS) or any(part in name.lower() for part in _GUARD_PARTS)


def _caddy(svc: Service, root: str | None) -> Iterator[tuple[str, Source | None]]:
    """caddy-docker-proxy: each `caddy` / `caddy_N` label block is a site; one that reverse-proxies to
    `{{upstreams}}` routes to this service (on the paths its matchers or `handle` blocks name)."""
    blocks: dict[str, dict[str, str]] = {}
    for key, value in svc.labels.items():
        head, _, rest = key.partition(".")
        if _CADDY_HEAD.fullmatch(head):
            blocks.setdefault(head, {})[rest.lower()] = str(value)
    port = _editor_port(svc)
    for head, items in sorted(blocks.items()):
        text = " ".join(f"{k} {v}" for k, v in items.items()).lower()
        imports = [v for k, v in items.items() if _directive(k) == "import"]
        if _CADDY_GUARDS.search(text) or any(_guard_name(v) for v in imports):
            continue
        for key, value in sorted(items.items()):
            upstreams = [m for m in _CADDY_UPSTREAMS.finditer(value) if not m.group(1) or int(m.group(1)) == port]
            if _directive(key) != "reverse_proxy" or not upstreams:
                continue
            paths = _caddy_paths(value[: upstreams[0].start()], items)
            parent = key.rpartition(".")[0]
            if paths is not None and parent and _directive(parent) in ("handle", "handle_path", "route"):
                outer = _caddy_paths(items.get(parent, ""), items)
                paths = None if outer is None else paths + outer
            if paths is None or _reaches_editor(paths, [], root):
                site = svc.labels.get(head) or "(no address)"
                yield (f"caddy-docker-proxy site {site} ({head} labels) reverse-proxies to it with no remote_ip matcher "
                       "and no auth directive"), svc.at("labels")
                break


def _directive(key: str) -> str:
    """`handle_path.1_reverse_proxy_0` -> `reverse_proxy` (caddy-docker-proxy's order prefix and suffix)."""
    return _ORDERED.sub("", key.rsplit(".", 1)[-1])


def _caddy_paths(matcher: str, items: Mapping[str, str]) -> list[str] | None:
    """Paths named before the upstream: `/api/*` inline, or a named matcher's `path`; None when a named
    matcher is something this check cannot read (then the route is taken to reach the editor)."""
    paths: list[str] = []
    for token in matcher.replace('"', " ").split():
        if token.startswith("/") or token == "*":
            paths.append(token)
        elif token.startswith("@"):
            named = items.get(f"{token.lower()}.path")
            if named is None:
                return None
            paths += named.split()
    return paths


def _reaches_editor(paths: list[str], negated: list[str], root: str | None) -> bool:
    """Does a route on `paths` (every path when empty), minus `negated`, reach the editor at `root`? With
    the root unknown, the editor is where Node-RED puts it by default, or on a path named for it."""
    if any(_covers(n, root) for n in negated):
        return False
    return not paths or any(_overlaps(p, root) for p in paths)


def _covers(prefix: str, root: str | None) -> bool:
    """Does the path prefix hold the whole editor?"""
    prefix = _norm(prefix)
    if root is None:
        return bool(_EDITOR_PATH.search(prefix))
    return prefix == "" or (_norm(root) + "/").startswith(prefix + "/")


def _overlaps(path: str, root: str | None) -> bool:
    """Does a route on `path` reach any of the editor's or admin API's paths?"""
    path = _norm(path)
    if path == "":
        return True
    if root is None:
        return _overlaps(path, "/") or bool(_EDITOR_PATH.search(path))
    base = _norm(root)
    if base == "":  # the editor at the root: the admin API's own paths
        return path.split("/")[1] in _ADMIN_PATHS
    return (base + "/").startswith(path + "/") or (path + "/").startswith(base + "/")


def _norm(path: str) -> str:
    return path.strip().rstrip("*").rstrip("/")


def _nginx_proxy(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    host = (svc.environment.get("VIRTUAL_HOST") or "").strip()
    if not host:
        return
    port = str(svc.environment.get("VIRTUAL_PORT") or "").strip()
    if port.isdigit() and int(port) != _editor_port(svc):
        return
    if (svc.environment.get("NETWORK_ACCESS") or "").strip().lower() == "internal":
        return
    if any(m.target.rstrip("/") == "/etc/nginx/htpasswd" for edge in topo.by_role(Role.EDGE) for m in edge.mounts):
        return  # nginx-proxy asks for a login for each VIRTUAL_HOST with a file there
    yield (f"nginx-proxy's VIRTUAL_HOST={host} routes to it with neither NETWORK_ACCESS=internal nor an htpasswd "
           "file"), svc.env_src.get("VIRTUAL_HOST") or svc.at("environment")


RULES = (EDITOR_UNPROTECTED,)
