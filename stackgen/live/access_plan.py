"""What `verify --live`'s access probes (access_probes.py) need to know, and where it is learned.

From `stack.yaml` when the stack directory has one: the editor's path and host, `node_red.editor.allow`, the
login shield's settings. Otherwise from the running configs stackgen renders, read inside the containers:
httpAdminRoot and the shield's options from Node-RED's settings.js; `allow`, the host name and the editor's
own host from the edge's config (Caddy `@editor_outsider`, NGINX `geo $editor_client_allowed` and
`map $uri $editor_by_path`, Traefik's `node-red-editor` router and `editor-allow` middleware). Anything not
found is None, and `gaps` says what could not be read: the probes then report "not checked", never a pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from stackgen.live import access

EDGE_CONFIGS = ("/etc/stackgen/edge/Caddyfile", "/etc/stackgen/edge/nginx.conf", "/etc/stackgen/edge/dynamic.yml")


@dataclass
class ShieldPlan:
    enabled: bool
    attempts: int | None = None
    ban_seconds: int | None = None


@dataclass
class AccessPlan:
    """The editor's layout and who may reach it, as configured; None where unknown (`gaps` says why)."""

    source: str
    host: str | None = None
    editor_enabled: bool = True
    editor_path: str | None = None
    editor_host: str | None = None
    allow: list[str] | None = None
    shield: ShieldPlan | None = None
    gaps: list[str] = field(default_factory=list)
    instance: str | None = None  # the Node-RED instance it is for (stack.yaml's name)
    service: str | None = None  # that instance's service
    node_root: str = "/"  # where its endpoints are (httpNodeRoot: `/lab/` for a path-routed instance)

    @property
    def stem(self) -> str:
        return (self.editor_path or "/").rstrip("/")

    @property
    def everyone(self) -> bool:
        return self.allow is not None and access.open_to_everyone(self.allow)


def plan_from_stack(stack, instance=None) -> AccessPlan:
    """One Node-RED instance's plan (`instance`: one of `stack.node_reds`, default the first; a version 1 stack's one
    Node-RED is instance node-red, serving every domain): its editor, allow, shield, and the host name it is reached at."""
    instance = instance or stack.node_reds[0]
    editor, shield = instance.editor, instance.login_shield
    names = [d.removeprefix("*.") for d in instance.domains if d != editor.host] or [d.removeprefix("*.") for d in instance.domains]
    source = "stack.yaml" if stack.instances is None else f"stack.yaml, instance {instance.name}"
    return AccessPlan(source, names[0] if names else None, editor.enabled, instance.editor_root if editor.enabled else None,
                      editor.host, list(editor.allow), ShieldPlan(shield.enabled, shield.attempts, shield.ban_seconds),
                      instance=instance.name, service=instance.service, node_root=instance.node_root)


def plan_from_configs(edge: dict[str, str], settings: str | None) -> AccessPlan:
    """From the running configs stackgen renders: Node-RED's settings.js, the edge's config (by file name)."""
    plan = AccessPlan("the running configs (" + ", ".join([*edge, *(["settings.js"] if settings else [])]) + ")")
    if settings is not None:
        root = re.search(r'httpAdminRoot:\s*("(?:[^"\\]|\\.)*"|false)', settings)
        if root and root.group(1) == "false":
            plan.editor_enabled = False
        elif root:
            plan.editor_path = json.loads(root.group(1)) or "/"
        else:
            plan.editor_path = "/"  # Node-RED's default
        options = re.search(r'require\("\./shield\.js"\)\(\s*\{(.*?)\}\s*\)', settings, re.S)
        if options:
            number = {k: int(v) for k, v in re.findall(r"(\w+):\s*(\d+)", options.group(1))}
            middleware = re.search(r"httpAdminMiddleware:\s*(\[[^\]]*\]|[\w.]+)", settings)
            plan.shield = ShieldPlan(bool(middleware and "shield.admin" in middleware.group(1)), number.get("attempts"),
                                     number.get("ban_seconds"))
        else:
            plan.shield = ShieldPlan(False)
    else:
        plan.gaps.append("Node-RED's settings.js could not be read (httpAdminRoot, the login shield)")
    for name, text in edge.items():
        if name.endswith("Caddyfile"):
            _caddy(text, plan)
        elif name.endswith("nginx.conf"):
            _nginx(text, plan)
        elif name.endswith(".yml"):
            _traefik(text, plan)
    if not edge:
        plan.gaps.append("the edge's config is not one stackgen renders (none of " + ", ".join(EDGE_CONFIGS) + ")")
    if plan.host is None:
        plan.gaps.append("no host name found in the edge's config")
    return plan


def _caddy(text: str, plan: AccessPlan) -> None:
    hosts = re.search(r"@unknown\s+not\s+host\s+([^\n]+)", text)
    if hosts:
        plan.host = plan.host or next((h for h in hosts.group(1).split() if not h.startswith("*.")), None)
    gate = re.search(r"@editor_outsider\s*\{\s*path\s+(\S+)[^\n]*\n\s*not\s+remote_ip\s+([^\n]+)", text)
    if gate:
        plan.allow = gate.group(2).split()
        plan.editor_path = plan.editor_path or gate.group(1)
    editor_host = re.search(r"@editor_host_outsider\s*\{\s*host\s+(\S+)", text)
    plan.editor_host = editor_host.group(1) if editor_host else None


def _nginx(text: str, plan: AccessPlan) -> None:
    names = [n for line in re.findall(r"server_name\s+([^;]+);", text) for n in line.split() if n != "_" and not n.startswith("*.")]
    plan.host = plan.host or (names[0] if names else None)
    geo = re.search(r"geo\s+\$editor_client_allowed\s*\{([^}]*)\}", text)
    if geo:
        plan.allow = re.findall(r"^\s*([0-9A-Fa-f.:]+/\d+)\s+1;", geo.group(1), re.M)
    prefix = re.search(r'map\s+\$uri\s+\$editor_by_path\s*\{[^}]*"~\*\^(.*?)\(\?:/\|\$\)"', text)
    if prefix:
        plan.editor_path = plan.editor_path or (prefix.group(1).replace("\\.", ".") or "/")
    by_host = re.search(r"map\s+\$host\s+\$editor_by_host\s*\{\s*default 0;\s*(\S+)\s+1;", text)
    plan.editor_host = by_host.group(1) if by_host else None


def _traefik(text: str, plan: AccessPlan) -> None:
    hosts = re.findall(r"Host\(`([^`]+)`\)", text)
    editor = re.search(r"node-red-editor:\s*\n(?:\s+\w+:[^\n]*\n)*?\s+rule:\s*'([^\n]*)'", text)
    if editor:
        prefix = re.search(r"PathRegexp\(`\(\?i\)\^(.*?)\(/\|\$\)`\)", editor.group(1))
        if prefix:
            plan.editor_path = plan.editor_path or (prefix.group(1).replace("\\.", ".") or "/")
        alone = re.search(r"PathRegexp\(`[^`]*`\)\)\s*\|\|\s*Host\(`([^`]+)`\)", editor.group(1))
        plan.editor_host = alone.group(1) if alone else None
    plan.host = plan.host or next((h for h in hosts if h != plan.editor_host), None)
    allow = re.search(r"editor-allow:\s*\n\s*ipAllowList:\s*\n\s*sourceRange:\s*\n((?:\s*-\s*[^\n]+\n)+)", text)
    if allow:
        plan.allow = [line.strip().lstrip("-").strip().strip("\"'") for line in allow.group(1).strip().splitlines()]
