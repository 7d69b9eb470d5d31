"""Closing the host-gateway hole of internal networks.

Why: Docker's `internal: true` drops *forwarded* traffic, but a container on an
internal network still reaches every service the host itself listens on,
through its bridge's gateway address, and the host reaches the container. One
INPUT rule on the network's fixed bridge name (`sg-…-in`) drops both: packets
from the bridge to the host never arrive, and replies to the host's own
connections into the bridge are dropped too. Traffic between containers on
the bridge is switched, never seen by INPUT, so the edge still reaches Node-RED.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class FirewallRule:
    bridge: str
    project: str

    @property
    def comment(self) -> str:
        return f"stackgen:{self.project}"

    def spec(self) -> list[str]:
        return ["INPUT", "-i", self.bridge, "-m", "comment", "--comment", self.comment, "-j", "DROP"]

    @property
    def fix(self) -> str:
        return "iptables -I " + " ".join(self.spec())


def _tools() -> list[str]:
    return [tool for tool in ("iptables", "ip6tables") if shutil.which(tool)]


def can_manage() -> bool:
    return os.geteuid() == 0 and bool(_tools())


def _run(tool: str, action: str, rule: FirewallRule) -> bool:
    return subprocess.run([tool, "-w", action, *rule.spec()], capture_output=True).returncode == 0


def is_applied(rule: FirewallRule) -> bool:
    tools = _tools()
    return bool(tools) and _run(tools[0], "-C", rule)


def apply(rule: FirewallRule) -> bool:
    """Insert the rule (idempotent). False when stackgen lacks the rights or the tools."""
    if not can_manage():
        return False
    ok = True
    for tool in _tools():
        if not _run(tool, "-C", rule):
            ok = _run(tool, "-I", rule) and ok
    return ok


def remove(rule: FirewallRule) -> None:
    """Delete every copy of the rule."""
    if not can_manage():
        return
    for tool in _tools():
        while _run(tool, "-C", rule):
            if not _run(tool, "-D", rule):
                break
