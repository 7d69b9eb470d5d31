"""The security invariants of a rendered compose file, checked by reading the YAML.

Deliberately independent of the renderer: it parses the text the user gets and
knows nothing of `render.py`'s helpers, so a renderer bug cannot hide itself.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML


def load(text: str | bytes) -> dict[str, Any]:
    return YAML(typ="safe").load(text)


def _networks(service: dict[str, Any]) -> list[str]:
    nets = service.get("networks") or []
    return list(nets) if isinstance(nets, (list, dict)) else []


def _uid(service: dict[str, Any]) -> int | None:
    user = str(service.get("user", ""))
    head = user.split(":")[0]
    return int(head) if head.isdigit() else None


def _mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for item in service.get("volumes") or []:
        if isinstance(item, str):
            parts = item.split(":")
            found.append({"source": parts[0], "target": parts[1], "read_only": len(parts) > 2 and "ro" in parts[2].split(",")})
        else:
            found.append(item)
    return found


def check(document: dict[str, Any], *, bind_address: str, egress: bool, edge_acme: bool, sidecar: bool) -> list[str]:
    """All violations of the security model's point 5 (empty list = compliant)."""
    problems: list[str] = []
    services = document["services"]
    networks = document.get("networks") or {}
    internal = {name for name, net in networks.items() if (net or {}).get("internal") is True}

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    need({"node-red", "edge"} <= set(services), "node-red and edge services exist")
    nr = services.get("node-red", {})
    edge = services.get("edge", {})

    # Node-RED
    uid = _uid(nr)
    need(uid is not None and uid != 0, "node-red: numeric non-root user")
    need("ports" not in nr and "expose" not in nr, "node-red: no ports")
    need("network_mode" not in nr, "node-red: no network_mode")
    for net in _networks(nr):
        others = [name for name, svc in services.items() if name != "node-red" and net in _networks(svc)]
        if net in internal:
            need(others == ["edge"], f"node-red: internal network {net} is shared with the edge only (has {others})")
        else:
            need(egress and not others, f"node-red: non-internal network {net} only when egress is allowed, and alone")
    need(any(n in internal for n in _networks(nr)), "node-red: on an internal network")
    need(nr.get("read_only") is True, "node-red: read_only")
    need(bool(nr.get("tmpfs")), "node-red: tmpfs for scratch")
    need("ALL" in (nr.get("cap_drop") or []), "node-red: cap_drop ALL")
    need(not nr.get("cap_add"), "node-red: no cap_add")
    need("no-new-privileges:true" in (nr.get("security_opt") or []), "node-red: no-new-privileges")
    need(bool(nr.get("mem_limit")) and bool(nr.get("pids_limit")), "node-red: memory and pids limits")
    need(bool((nr.get("healthcheck") or {}).get("test")), "node-red: healthcheck")
    need(nr.get("restart") == "unless-stopped", "node-red: restart unless-stopped")
    log = nr.get("logging") or {}
    need(log.get("driver") == "json-file" and "max-size" in (log.get("options") or {}), "node-red: log rotation")
    need(any(m["target"] == "/data" for m in _mounts(nr)), "node-red: /data volume")
    need(not any("/etc/letsencrypt" in m["target"] or m["source"] == "certs" for m in _mounts(nr)), "node-red: no key volume")
    need(not nr.get("privileged"), "node-red: not privileged")
    env = nr.get("environment") or {}
    need(not any(k.upper().endswith(("SECRET", "PASSWORD", "TOKEN")) for k in env), "node-red: no secrets in environment")

    # Edge: the only published service.
    for name, svc in services.items():
        if name != "edge":
            need(not svc.get("ports"), f"{name}: no published ports (only the edge)")
    ports = edge.get("ports") or []
    need(len(ports) == 2, "edge: publishes HTTP and HTTPS")
    for port in ports:
        need(isinstance(port, dict) and port.get("host_ip") == bind_address, f"edge: port bound to {bind_address}")
    edge_nets = _networks(edge)
    need(any(n in internal for n in edge_nets), "edge: on the internal network")
    need(any(n not in internal for n in edge_nets), "edge: on a public network")
    need("ALL" in (edge.get("cap_drop") or []), "edge: cap_drop ALL")
    need(edge.get("read_only") is True, "edge: read_only")
    need("no-new-privileges:true" in (edge.get("security_opt") or []), "edge: no-new-privileges")
    if not edge_acme:
        need((_uid(edge) or 0) != 0, "edge: non-root")
    for mount in _mounts(edge):
        if mount["target"].startswith(("/etc/letsencrypt", "/var/www/acme")):
            need(mount.get("read_only") is True, f"edge: {mount['target']} read-only")

    # Certbot: alone writes the key volume; never on the internal network.
    if sidecar:
        cb = services.get("certbot", {})
        need(bool(cb), "certbot service exists")
        need(not any(n in internal for n in _networks(cb)), "certbot: never on the internal network")
        need("ALL" in (cb.get("cap_drop") or []), "certbot: cap_drop ALL")
        writers = [
            name for name, svc in services.items()
            for m in _mounts(svc) if m["source"] == "certs" and not m.get("read_only")
        ]
        need(writers == ["certbot"], f"only certbot writes the key volume (writers: {writers})")
        readers = sorted({name for name, svc in services.items() for m in _mounts(svc) if m["source"] == "certs"})
        need(readers == ["certbot", "edge"], f"only certbot and edge mount the key volume ({readers})")
        need((cb.get("depends_on") or {}).get("edge", {}).get("condition") == "service_healthy", "certbot: starts after a healthy edge")

    need("node-red" not in (edge.get("depends_on") or {}), "edge: does not wait for (or fall with) node-red")

    # Nobody gets the Docker socket.
    for name, svc in services.items():
        for mount in _mounts(svc):
            need("docker.sock" not in str(mount["source"]), f"{name}: no Docker socket")
        need(not svc.get("privileged"), f"{name}: not privileged")
    return problems
