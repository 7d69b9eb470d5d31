"""What the main loop makes of the scheduled jobs: when each runs, and what its result means.

Why apart from jobs.py: a job runs in the job thread and only returns a result; recording it
(the state file's section, the log, alerts opened and resolved, the next run) touches the
state, which only the main loop does. One handler per job, in a dict keyed by the job's name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stackgen.findings import Severity
from stackgen.supervise.alerts import Alert, AlertBook
from stackgen.supervise.config import Settings
from stackgen.supervise.drift import finding_id
from stackgen.supervise.state import StateStore
from stackgen.supervise.target import Target

SECTIONS = {"renewal": "renewal", "cert_check": "certificate", "verify": "verify", "backup": "backup"}  # job -> state section


class Outcomes:
    """The jobs' schedule and results, kept in the state file's sections (`store.data`)."""

    def __init__(self, store: StateStore, book: AlertBook, settings: Settings, target: Target,
                 note: Callable[..., None], send: Callable[[Alert | None], None]) -> None:
        self.store = store
        self.book = book
        self.settings = settings
        self.target = target
        self.note = note
        self.send = send
        self._drift_unavailable_logged = False
        self._handlers: dict[str, Callable[[Any, str | None, dict[str, Any], float], None]] = {
            "renewal": self._renewal, "cert_check": self._cert_check, "verify": self._verify, "backup": self._backup,
        }

    @property
    def data(self) -> dict[str, Any]:
        return self.store.data

    # -- schedule --

    def has_sidecar(self) -> bool:
        return bool(self.target.stack is not None and self.target.stack.tls.uses_sidecar)

    def init_schedule(self, now: float) -> None:
        data = self.data
        s = self.settings
        stack = self.target.is_stack
        if stack and s.renew and self.has_sidecar():
            if data["renewal"].get("next_at") is None:
                data["renewal"]["next_at"] = now + random.uniform(0, s.renew_jitter) + 30
        else:
            data["renewal"].pop("next_at", None)
        if stack:
            data["certificate"]["next_at"] = now + 5
        if stack and s.verify_interval > 0:
            data["verify"]["next_at"] = now + 10
        else:
            data["verify"].pop("next_at", None)
        if stack and s.backup_interval > 0 and data["backup"].get("next_at") is None:
            last = data["backup"].get("last_run")
            data["backup"]["next_at"] = (last + s.backup_interval) if last else now + 60
        elif s.backup_interval <= 0:
            data["backup"].pop("next_at", None)

    def next_time(self) -> float | None:
        times = [self.data[section].get("next_at") for section in SECTIONS.values()]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def due(self, now: float) -> list[str]:
        """Jobs whose time has come; their `next_at` is cleared (set again when the job is done)."""
        found = []
        for job, section in SECTIONS.items():
            due = self.data[section].get("next_at")
            if due is not None and now >= due:
                self.data[section]["next_at"] = None
                found.append(job)
        return found

    # -- results --

    def record(self, job: str, result: Any, info: dict[str, Any], now: float) -> None:
        """A job finished (`info["error"]` when it raised): its section, log, alerts, next run."""
        s = self.settings
        error = info.get("error")
        self._handlers[job](result, error, info, now)
        data = self.data
        if job == "renewal" and s.renew and self.has_sidecar():
            retry = error is not None or (result is not None and result.status == "busy")
            data["renewal"]["next_at"] = now + (300 if retry else s.renew_interval + random.uniform(0, s.renew_jitter))
        elif job == "cert_check":
            data["certificate"]["next_at"] = now + (60 if error else s.cert_check_interval)
        elif job == "verify" and s.verify_interval > 0 and not data["verify"].get("unavailable"):
            data["verify"]["next_at"] = now + s.verify_interval
        elif job == "backup" and s.backup_interval > 0:
            data["backup"]["next_at"] = now + (min(3600, s.backup_interval) if error else s.backup_interval)

    def _renewal(self, outcome, error, info, now) -> None:
        section = self.data["renewal"]
        section["last_run"] = now
        if error is not None:
            section.update(last_status="error", last_message=error)
            self.note("error", "renewal_error", error=error)
            self.send(self.book.open("renewal_failed", "renewal_failed", "critical",
                                      f"certificate renewal could not run: {error}", details={"error": error}))
            return
        section.update(last_status=outcome.status, last_message=outcome.message)
        fields = outcome.to_log()
        level = {"failed": "error", "invalid": "error", "reload_failed": "error"}.get(outcome.status, "info")
        self.note(level, "renewal", **fields)
        if outcome.status == "failed":
            self.send(self.book.open("renewal_failed", "renewal_failed", "critical", outcome.message, details=fields))
        elif outcome.status == "invalid":
            self.send(self.book.open("renewal_invalid", "renewal_invalid", "critical", outcome.message, details=fields))
        elif outcome.status == "reload_failed":
            self.send(self.book.open("reload_failed", "reload_failed", "critical", outcome.message, "edge", fields))
        if outcome.status in ("renewed", "not_due"):
            for key in ("renewal_failed", "renewal_invalid", "reload_failed"):
                self.send(self.book.resolve(key, f"certificate renewal works again ({outcome.status})"))
        if outcome.status == "renewed":
            section["last_renewed"] = now
        served = outcome.after or outcome.before
        if served is not None:
            self._cert_check(served, None, {}, now)

    def _cert_check(self, served, error, info, now) -> None:
        section = self.data["certificate"]
        section["checked_at"] = now
        if error is not None:
            failures = section.get("probe_failures", 0) + 1
            section.update(error=error, probe_failures=failures)
            self.note("warning", "certificate_probe_failed", error=error, consecutive=failures)
            if failures >= 2:
                self.send(self.book.open("tls_probe_failed", "tls_probe_failed", "warning",
                                          f"the edge's certificate could not be checked ({failures} times in a row): {error}",
                                          "edge", {"error": error}))
            return
        section.update(serial=served.serial, not_after=served.not_after, error=None, probe_failures=0)
        self.send(self.book.resolve("tls_probe_failed", "the edge's certificate can be checked again"))
        days = (served.not_after - now) / 86400
        self.note("info", "certificate", serial=served.serial, days_left=round(days, 2))
        limit = self.settings.expiry_days
        if days < limit:
            severity = "critical" if days < min(3, limit) else "warning"
            when = "has expired" if days < 0 else f"expires in {days:.1f} days"
            summary = (f"the served certificate (serial {served.serial}) {when} "
                       f"({datetime.fromtimestamp(served.not_after, UTC):%Y-%m-%d %H:%M} UTC); alert threshold {limit:g} days")
            self.send(self.book.open("cert_expiry", "cert_expiry", severity, summary, "edge",
                                      {"serial": served.serial, "not_after": served.not_after, "days_left": round(days, 2)}))
        else:
            self.send(self.book.resolve("cert_expiry", f"the served certificate (serial {served.serial}) is valid for {days:.0f} more days"))

    def _verify(self, findings, error, info, now) -> None:
        section = self.data["verify"]
        section["last_run"] = now
        if error is not None:
            section["error"] = error
            self.note("warning", "verify_error", error=error)
            return
        if isinstance(findings, dict) and findings.get("unavailable"):
            section.update(unavailable=findings["unavailable"], error=None)
            if not self._drift_unavailable_logged:
                self.note("warning", "drift_watch_unavailable", why=findings["unavailable"])
                self._drift_unavailable_logged = True
            return
        minimum = Severity.rank_of(self.settings.drift_min_severity)
        groups: dict[str, dict[str, Any]] = {}
        for f in findings:
            severity = str(getattr(f.severity, "value", f.severity))
            if f.suppressed or Severity.rank_of(severity) < minimum:
                continue
            groups.setdefault(f.service or "-", {})[finding_id(f)] = f
        active = sorted(fid for items in groups.values() for fid in items)
        section.update(error=None, unavailable=None, findings=len(findings), active=active)
        # One alert per service (a rogue container breaks many rules at once); sent again when it gains a finding.
        for service, items in sorted(groups.items()):
            key = f"drift:{service}"
            listed = [{"id": fid, "rule": f.rule, "severity": str(getattr(f.severity, "value", f.severity)),
                       "message": f.message, "fix": getattr(f, "fix", None)} for fid, f in sorted(items.items())]
            listed.sort(key=lambda item: -Severity.rank_of(item["severity"]))
            worst = listed[0]["severity"]
            who = "the stack" if service == "-" else service
            summary = f"drift on {who}: " + "; ".join(f"{i['rule']} {i['message']}" for i in listed[:3]) + (
                f" (+{len(listed) - 3} more)" if len(listed) > 3 else "")
            previous = set(((self.book.store.get(key) or {}).get("details") or {}).get("ids", []))
            new = sorted(set(items) - previous)
            details = {"ids": sorted(items), "new": new, "findings": listed}
            alert = self.book.open(key, "drift", "critical" if worst in ("critical", "high") else "warning", summary,
                                   None if service == "-" else service, details, renotify=bool(previous) and bool(new))
            self.send(alert)
            gone = sorted(previous - set(items))
            if gone and not alert:
                self.note("info", "drift_partly_cleared", service=service, cleared=gone)
        for key in self.book.keys("drift:"):
            if key.removeprefix("drift:") not in groups:
                self.send(self.book.resolve(key))
        self.note("info", "verify", findings=len(findings), alerting=len(active), seconds=info.get("seconds"))

    def _backup(self, result, error, info, now) -> None:
        section = self.data["backup"]
        section["last_run"] = now
        if error is not None:
            section["error"] = error
            self.note("error", "backup_failed", error=error)
            self.send(self.book.open("backup_failed", "backup_failed", "warning", f"scheduled backup failed: {error}",
                                      details={"error": error}))
            return
        section.update(error=None, last_archive=result["archive"])
        self.note("info", "backup", **result)
        self.send(self.book.resolve("backup_failed", "scheduled backups work again"))
