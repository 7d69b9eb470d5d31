"""Which mounts hold TLS private keys: the graph the key-volume rules (SG106, SG107) judge.

A mount holds keys when it mounts a *key store*: a named volume or host
directory that some service mounts at a certificate directory
(`/etc/letsencrypt`, Traefik's `/letsencrypt`, Caddy's `/data`, ...), or that a
certificate writer (role `certbot`) mounts writable. Once a store is a key
store, every mount of it, at any path, holds keys.
"""

from __future__ import annotations

import posixpath

from stackgen.constants import CERT_DIRS
from stackgen.topology import Mount, Role, Service, Topology
from stackgen.verify.rules._hostpaths import norm, under

KEY_TARGETS = CERT_DIRS + (
    "/etc/ssl/private",
    "/letsencrypt",
    "/etc/traefik/acme",
    "/acme.json",
    "/certs",
    "/etc/certs",
    "/etc/nginx/certs",
    "/etc/nginx/ssl",
    "/etc/nginx/certs-private",
    "/data/caddy",
)
_KEY_SET = frozenset(KEY_TARGETS)
_KEY_PREFIXES = tuple(k + "/" for k in KEY_TARGETS)
KEY_SOURCE_NAMES = {"letsencrypt", "acme.json", "certs", "ssl-private", "acme"}


def _is_caddy(svc: Service) -> bool:
    return svc.image_name.split("/")[-1].startswith("caddy")


def _key_target(svc: Service, m: Mount) -> bool:
    target = norm(m.target)
    if target in _KEY_SET or any(target.startswith(k) for k in _KEY_PREFIXES):
        return True
    return _is_caddy(svc) and target == "/data"  # Caddy keeps its ACME keys in $XDG_DATA_HOME=/data


def _store(m: Mount) -> tuple[str, str] | None:
    if m.type == "volume" and m.source:
        return ("volume", m.source)
    if m.type == "bind" and m.source:
        return ("bind", norm(m.source))
    return None


def key_stores(topo: Topology) -> set[tuple[str, str]]:
    """Volumes and host directories that hold private keys."""
    stores: set[tuple[str, str]] = set()
    for svc in topo.services.values():
        for m in svc.mounts:
            store = _store(m)
            if store is None:
                continue
            written_by_certbot = svc.role is Role.CERTBOT and not m.read_only and _certbot_store(m)
            named_like_keys = store[0] == "bind" and posixpath.basename(store[1]) in KEY_SOURCE_NAMES
            if _key_target(svc, m) or written_by_certbot or named_like_keys:
                stores.add(store)
    return stores


def _certbot_store(m: Mount) -> bool:
    # The certificate writer also writes its ACME webroot (challenges, not keys) and, as nginx-proxy's
    # acme-companion does, the proxy's web root and per-host config (`/usr/share/nginx/html`, `vhost.d`).
    target = norm(m.target).lower()
    if "acme" in target and ("www" in target or "webroot" in target or "challenge" in target):
        return False
    return not ("/html" in target or target.endswith("/vhost.d") or "/vhost.d/" in target)


_CACHE: list = [None, None]  # (topology, result): rules ask several times per run


def key_mounts(topo: Topology) -> list[tuple[Service, Mount]]:
    """Every (service, mount) that gives access to a key store."""
    if _CACHE[0] is topo:
        return _CACHE[1]
    found: list[tuple[Service, Mount]] = []
    stores = key_stores(topo)
    binds = [s[1] for s in stores if s[0] == "bind"]
    for svc in topo.services.values() if stores else ():
        for m in svc.mounts:
            store = _store(m)
            if store is None:
                continue
            if store in stores or (store[0] == "bind" and any(under(store[1], b) or under(b, store[1]) for b in binds)):
                found.append((svc, m))
    _CACHE[0], _CACHE[1] = topo, found
    return found
