"""What `stackgen status` shows, as data: the supervisor's recorded state, joined with the engine's view when it answers.

Why here and not in the CLI: it reads the state file, the engine and the served certificate (engine
logic); the CLI only prints the dictionary this returns (as a table or as JSON).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stackgen.errors import StackgenError

__all__ = ["collect_status"]


def collect_status(directory: Path) -> dict[str, Any]:
    """Everything `status` shows, as data (the engine's view when it answers, the supervisor's state always)."""
    from stackgen.stackdir import StackDir
    from stackgen.supervise.state import StateStore, read_state
    from stackgen.supervise.supervisor import load_target

    target = load_target(directory)
    state = read_state(target.directory)
    now = time.time()
    report: dict[str, Any] = {
        "project": target.project,
        "directory": str(target.directory),
        "supervisor": {"running": StateStore(target.directory).locked_by_other() if StackDir(target.directory).state_dir.exists() else False,
                       **(state.get("supervisor") or {})},
        "services": {},
        "certificate": dict(state.get("certificate") or {}),
        "renewal": dict(state.get("renewal") or {}),
        "verify": {k: v for k, v in (state.get("verify") or {}).items() if k != "active"},
        "backup": dict(state.get("backup") or {}),
        "alerts": state.get("alerts") or {},
        "engine": None,
        "healer": "swarm" if target.swarm else "supervisor",  # who restarts a failed service (restarts: by it)
    }
    records = state.get("services") or {}
    names = list(((target.document or {}).get("services") or {}).keys())
    for key in records:
        if key not in names:
            names.append(key)
    engine_view: dict[str, dict[str, Any]] = {}
    try:
        from stackgen import engine as engines

        client = engines.client(timeout=10)
        if target.swarm:  # services and their tasks, not containers
            from stackgen.operate import swarm

            report["swarm"] = swarm.status(client, target.project, names)
            for service in report["swarm"]:
                task = next(iter(service["tasks"]), None)
                if task is not None and service["deployed"]:
                    engine_view[service["service"]] = {"state": task["state"], "health": task["health"], "engine_restarts": None}
        for container in engines.project_containers(client, target.project) if "swarm" not in report else ():
            attrs = container.attrs
            service = engines.service_of(container)
            if not service:
                continue
            state_attrs = attrs.get("State") or {}
            engine_view[service] = {"state": state_attrs.get("Status"), "health": (state_attrs.get("Health") or {}).get("Status"),
                                    "engine_restarts": attrs.get("RestartCount", 0)}
        report["engine"] = "connected"
        if target.stack is not None:
            try:
                from stackgen.operate import renewal

                served = renewal.served_certificate(client, target.stack, target.project)
                report["certificate"].update(serial=served.serial, not_after=served.not_after, checked_at=now, live=True)
            except Exception as exc:  # noqa: BLE001 - shown, not fatal
                report["certificate"]["live_error"] = str(exc)
    except StackgenError as exc:
        report["engine"] = str(exc)
    window = None
    for name in names:
        record = records.get(name) or {}
        live = engine_view.get(name, {})
        restarts = record.get("restarts") or []
        if window is None:
            from stackgen.supervise.config import load_settings

            try:
                window = load_settings(target.directory).crash_loop_window
            except StackgenError:
                window = 1800.0
        recent = [r for r in restarts if now - r.get("at", 0) < window]
        report["services"][name] = {
            "state": live.get("state", record.get("status") or "absent"),
            "health": live.get("health", record.get("health")),
            "restarts": len(recent),
            "restarts_by_supervisor": sum(1 for r in recent if r.get("by") == "supervisor"),
            "engine_restarts": live.get("engine_restarts"),
            "attempt": record.get("attempt", 0),
            "next_restart_at": record.get("next_restart_at"),
            "failed": record.get("failed", False),
            "stopped_by_user": record.get("stopped_by_user", False),
            "last_restart_at": record.get("last_restart_at"),
        }
    return report
