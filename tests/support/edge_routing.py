"""Where an edge's rendered configuration sends one HTTPS request, worked out from the text alone.

A small model of the rules of Caddy, NGINX and Traefik that stackgen's edge configurations use (no more), so
routing precedence and the editor gate can be held to their intent for every edge and TLS mode without running the
programs: the integration tests run Caddy and NGINX for real, Traefik is held only statically (no binary here).

`request(files, edge, host, path, client)` is the service the request is proxied to (`node-red-lab`), or the status
the edge answers itself (403, 404, 421; Caddy's 200 when no handler at all matched).

What each program does with the path before matching is modelled once (`normalised`): percent-decoding, dot segments
and double slashes resolved, as Caddy's path matcher, NGINX's `$uri` and Traefik's sanitized path do. Matching
without regard to case is left to each model (Caddy's path matcher, NGINX's `~*`, Traefik's `(?i)`): it is the
configuration that must ask for it.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Any

import yaml

from tests.support import config_lexers as lex

Outcome = str | int


def normalised(path: str) -> str:
    """The request path as the edges match it: decoded, `.`/`..` segments and repeated slashes resolved."""
    decoded = urllib.parse.unquote(path.split("?", 1)[0])
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    tail = "/" if segments and (decoded.endswith("/") or decoded.endswith("/.") or decoded.endswith("/..")) else ""
    return "/" + "/".join(segments) + tail


def _in(client: str, networks: list[str]) -> bool:
    address = ipaddress.ip_address(client)
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def _service(upstream: str) -> str:
    return upstream.removeprefix("http://").rsplit(":", 1)[0]


def request(files: dict[str, str], edge: str, host: str, path: str, client: str) -> Outcome:
    """The outcome of `GET path` with `Host: host` from address `client`, by the rendered edge configuration."""
    host = host.lower()
    if edge == "caddy":
        return caddy(files["edge/Caddyfile"], host, path, client)
    if edge == "nginx":
        return nginx(files["edge/nginx.conf"], host, path, client)
    return traefik(files["edge/dynamic.yml"], host, path, client)


# --- Caddy: named matchers, `handle` blocks (tried first, in file order), then `respond`, then `reverse_proxy` ---------


def _caddy_site(text: str) -> list[list[str]]:
    """The lines of the TLS site block (the one holding `tls`), without its opening and closing lines."""
    lines = [[t.text for t in line] for line in lex.caddyfile_lines(text)]
    at = next(i for i, line in enumerate(lines) if line[0] == "tls")
    start = max(i for i in range(at) if lines[i][-1] == "{" and not lines[i][0].startswith("@"))
    depth, end = 0, start
    for end in range(start, len(lines)):
        depth += lines[end].count("{") - lines[end].count("}")
        if depth == 0:
            break
    return lines[start + 1:end]


def _blocks(lines: list[list[str]]) -> list[tuple[list[str], list[list[str]]]]:
    """Top-level directives of `lines`, each with the lines of its block (empty without one)."""
    found: list[tuple[list[str], list[list[str]]]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line[-1] != "{":
            found.append((line, []))
            i += 1
            continue
        depth, j = 1, i + 1
        while depth:
            depth += lines[j].count("{") - lines[j].count("}")
            j += 1
        found.append((line[:-1], lines[i + 1:j - 1]))
        i = j
    return found


def _caddy_condition(words: list[str], host: str, path: str, client: str) -> bool:
    negate = words[0] == "not"
    kind, values = (words[1], words[2:]) if negate else (words[0], words[1:])
    if kind == "host":
        result = host in [v.lower() for v in values]
    elif kind == "path":
        lowered = path.lower()
        result = any(lowered.startswith(v[:-1].lower()) if v.endswith("*") else lowered == v.lower() for v in values)
    elif kind == "remote_ip":
        result = _in(client, values)
    else:
        raise AssertionError(f"no model of Caddy's {kind!r} matcher")
    return result != negate


def caddy(text: str, host: str, path: str, client: str) -> Outcome:
    site = _blocks(_caddy_site(text))
    path = normalised(path)
    matchers: dict[str, list[list[str]]] = {}
    for head, body in site:
        if head[0].startswith("@"):
            matchers[head[0]] = body if body else [head[1:]]

    def matches(name: str) -> bool:
        return all(_caddy_condition(words, host, path, client) for words in matchers[name])

    def run(directives: list[tuple[list[str], list[list[str]]]]) -> Outcome | None:
        for head, _ in directives:
            if head[0] == "respond" and (not head[1].startswith("@") or matches(head[1])):
                return int(head[-1])
        for head, _ in directives:
            if head[0] == "reverse_proxy":
                return _service(head[1])
        return None

    for head, body in site:
        if head[0] == "handle" and (len(head) == 1 or matches(head[1])):
            outcome = run(_blocks(body))
            return 200 if outcome is None else outcome
    outcome = run(site)
    return 200 if outcome is None else outcome


# --- NGINX: the named server, its `if`s in order, `map`/`geo` variables evaluated as NGINX does -------------------------


class _Nginx:
    def __init__(self, text: str, host: str, uri: str, client: str) -> None:
        self.directives = lex.nginx_directives(text)
        self.builtins = {"host": host, "uri": uri, "remote_addr": client}
        self.tables: dict[str, tuple[str, str, list[tuple[str, str]]]] = {}  # variable -> (kind, source, entries)
        current: list[tuple[str, str]] | None = None
        for d in self.directives:
            if d.context == ("http",) and d.name in ("map", "geo") and d.end == "{":
                source, variable = (d.args[0], d.args[1]) if d.name == "map" else ("$remote_addr", d.args[0])
                current = []
                self.tables[variable.removeprefix("$")] = (d.name, source, current)
            elif d.context == ("http",):
                current = None
            elif current is not None and d.context[-1:] in (("map",), ("geo",)):
                current.append((d.name, " ".join(d.args)))

    def interpolate(self, text: str) -> str:
        return re.sub(r"\$\{?([A-Za-z0-9_]+)\}?", lambda m: self.value(m.group(1)), text)

    def value(self, name: str) -> str:
        if name in self.builtins:
            return self.builtins[name]
        kind, source, entries = self.tables[name]
        default = next((v for k, v in entries if k == "default"), "")
        rest = [(k, v) for k, v in entries if k != "default"]
        if kind == "geo":
            address = ipaddress.ip_address(self.value(source.removeprefix("$")))
            best = max(((ipaddress.ip_network(k, strict=False), v) for k, v in rest
                        if address in ipaddress.ip_network(k, strict=False)), key=lambda n: n[0].prefixlen, default=None)
            return best[1] if best else default
        key = self.interpolate(source)
        for k, v in rest:  # strings first, matched without regard to case
            if not k.startswith("~") and k.lower() == key.lower():
                return self.interpolate(v)
        for k, v in rest:  # then regular expressions, in order
            if k.startswith("~*") and re.search(k[2:], key, re.I) or k.startswith("~") and not k.startswith("~*") and re.search(k[1:], key):
                return self.interpolate(v)
        return self.interpolate(default)

    def server(self) -> list[lex.Directive] | None:
        """The directives of the TLS server whose server_name holds the host (None: the default server's 421)."""
        servers: list[list[lex.Directive]] = []
        for d in self.directives:
            if d.context == ("http",) and d.name == "server":
                servers.append([])
            elif len(d.context) >= 2 and d.context[:2] == ("http", "server") and servers:
                servers[-1].append(d)
        host = self.builtins["host"]
        for body in servers:
            names = next((d.args for d in body if d.name == "server_name"), [])
            listens = [d.args for d in body if d.name == "listen"]
            if not any("ssl" in args for args in listens) or names == ["_"]:
                continue
            if any(n == host or (n.startswith("*.") and host.endswith(n[1:]) and host != n[2:]) for n in names):
                return body
        return None


def nginx(text: str, host: str, path: str, client: str) -> Outcome:
    model = _Nginx(text, host, normalised(path), client)
    body = model.server()
    if body is None:
        return 421
    for i, d in enumerate(body):
        if d.name != "if" or d.context != ("http", "server"):
            continue
        condition = " ".join(d.args).strip("()").split()
        value = model.value(condition[0].removeprefix("$"))
        holds = value not in ("", "0") if len(condition) == 1 else (value == condition[2])
        if holds:
            (returned,) = [r for r in body[i + 1:] if r.context == ("http", "server", "if")][:1]
            return int(returned.args[0])
    upstream = next(d for d in body if d.name == "set" and d.args[0] == "$upstream")
    return _service(model.interpolate(upstream.args[1]))


# --- Traefik: the matching websecure router of highest priority, its ipAllowList, its service --------------------------

_MATCHER = re.compile(r"(Host|HostRegexp|PathRegexp|PathPrefix|Path)\(`([^`]*)`\)")


def _rule(rule: str, host: str, path: str) -> bool:
    tokens = re.findall(r"\(|\)|&&|\|\||(?:Host|HostRegexp|PathRegexp|PathPrefix|Path)\(`[^`]*`\)", rule)
    assert "".join(tokens) == rule.replace(" ", ""), f"no model of part of Traefik rule {rule!r}"
    at = 0

    def factor() -> bool:
        nonlocal at
        token = tokens[at]
        at += 1
        if token == "(":
            result = expression()
            assert tokens[at] == ")"
            at += 1
            return result
        kind, value = _MATCHER.fullmatch(token).groups()  # type: ignore[union-attr]
        if kind == "Host":
            return host == value.lower()
        if kind == "HostRegexp":
            return bool(re.search(value, host))
        if kind == "PathRegexp":
            return bool(re.search(value, path))
        if kind == "PathPrefix":
            return path.startswith(value)
        return path == value

    def term() -> bool:
        nonlocal at
        result = factor()
        while at < len(tokens) and tokens[at] == "&&":
            at += 1
            result = factor() and result
        return result

    def expression() -> bool:
        nonlocal at
        result = term()
        while at < len(tokens) and tokens[at] == "||":
            at += 1
            result = term() or result
        return result

    return expression()


def traefik(text: str, host: str, path: str, client: str) -> Outcome:
    document: dict[str, Any] = yaml.safe_load(text)["http"]
    path = normalised(path)
    candidates = [(router.get("priority") or len(router["rule"]), name, router) for name, router in document["routers"].items()
                  if "websecure" in router["entryPoints"] and _rule(router["rule"], host, path)]
    if not candidates:
        return 404
    _, _, router = max(candidates, key=lambda c: c[0])
    for name in router.get("middlewares", []):
        allow = document["middlewares"][name].get("ipAllowList")
        if allow and not _in(client, allow["sourceRange"]):
            return 403
    (server,) = document["services"][router["service"]]["loadBalancer"]["servers"]
    return _service(server["url"])
