"""Settings of `stackgen supervise`: CLI options over an optional `DIR/supervise.yaml`, over defaults.

Why not a section of stack.yaml: stack.yaml describes the stack (what gets
rendered); these settings describe how one host watches it. They change
without re-rendering anything, and a stack copied to another host may be
supervised differently. Same strictness as stack.yaml: unknown keys are errors.

Durations are seconds or a number with a unit: `90`, `90s`, `5m`, `12h`, `1d`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stackgen.errors import StackgenError
from stackgen.findings import SEVERITY_NAMES

CONFIG_NAME = "supervise.yaml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """`90`, `90s`, `5m`, `12h`, `1d` -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (examples: 30s, 5m, 12h, 1d)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def format_duration(seconds: float | None) -> str:
    """Seconds -> the shortest exact `5m`, `12h`, `1d`, `1.5s` form."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


WebhookFormat = Literal["generic", "ntfy", "gotify"]
SeverityName = Literal[SEVERITY_NAMES]  # type: ignore[valid-type]  # low, medium, high, critical (stackgen.findings)

DURATION_FIELDS = (
    "backoff_base", "backoff_cap", "crash_loop_window", "stable_after", "stop_timeout",
    "renew_interval", "renew_jitter", "renew_timeout", "reload_wait", "cert_check_interval",
    "verify_interval", "backup_interval", "engine_alert_after", "reconnect_max", "webhook_timeout",
    "no_task_after", "swarm_poll",
)


class Settings(BaseModel):
    """Everything the supervisor can be told. Each field is also a `stackgen supervise` option."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Health healing
    backoff_base: float = Field(10.0, description="Delay before the second restart of a container; doubles after each further one.")
    backoff_cap: float = Field(300.0, description="Longest delay between two restarts of one container.")
    crash_loop_restarts: int = Field(5, ge=1, description="This many restarts within crash_loop_window: stop restarting, mark failed, alert.")
    crash_loop_window: float = Field(1800.0, gt=0, description="Window of the crash-loop count.")
    stable_after: float = Field(600.0, gt=0, description="Healthy (or running, without a healthcheck) this long: backoff and crash-loop state reset.")
    stop_timeout: float = Field(10.0, description="Seconds a container gets to stop gracefully when restarted.")
    ignore_services: list[str] = Field(default_factory=list, description="Services never restarted (still watched and reported).")
    # A swarm stack (Swarm heals its tasks; the supervisor watches: supervise/tasks.py)
    no_task_after: float = Field(60.0, gt=0, description="Swarm stacks: alert when a service has had no running task this long.")
    swarm_poll: float = Field(30.0, gt=0, description="Swarm stacks: time between reads of the services' task lists "
                                                      "(also read after every event of the stack).")
    # Certificates
    renew: bool = Field(True, description="Run the sidecar's renewal on a schedule.")
    renew_interval: float = Field(43200.0, gt=0, description="Time between renewal runs (certbot advises twice a day).")
    renew_jitter: float = Field(3600.0, description="Random extra delay added to each renewal run.")
    renew_timeout: float = Field(300.0, gt=0, description="Longest a renewal run may take.")
    reload_wait: float = Field(15.0, gt=0, description="After a renewal, how long the edge gets to serve the new certificate "
                                                       "by itself before an explicit reload.")
    cert_check_interval: float = Field(3600.0, gt=0, description="Time between probes of the served certificate.")
    expiry_days: float = Field(14.0, ge=0, description="Alert when the served certificate expires within this many days.")
    # Drift
    verify_interval: float = Field(900.0, description="Time between live verifications (0: off).")
    drift_min_severity: SeverityName = Field("medium", description="Findings below this severity do not alert.")
    # Alerts
    webhook_url: str | None = Field(None, description="POST alerts here (http or https).")
    webhook_format: WebhookFormat = Field("generic", description="Body format: generic (documented JSON), ntfy or gotify.")
    webhook_token_file: Path | None = Field(None, description="File holding the webhook token (Bearer; X-Gotify-Key for gotify).")
    webhook_retries: int = Field(4, ge=0, le=10, description="Retries of a failed webhook delivery (backoff 1 s, 2 s, 4 s, ...).")
    webhook_timeout: float = Field(5.0, gt=0, description="Timeout of one webhook request.")
    # Backups
    backup_interval: float = Field(0.0, description="Time between backups (0: off).")
    backup_keep: int = Field(7, ge=1, description="Scheduled backups kept (older ones are deleted).")
    backup_dir: Path | None = Field(None, description="Where scheduled backups go (default: DIR/backups).")
    backup_include_keys: bool = Field(False, description="Scheduled backups include the certificate volume (private keys).")
    # Engine
    engine_alert_after: float = Field(120.0, gt=0, description="Alert when the engine has been unreachable this long.")
    reconnect_max: float = Field(30.0, gt=0, description="Longest wait between two attempts to reach the engine.")

    @field_validator(*DURATION_FIELDS, mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def backoff(self, attempt: int) -> float:
        """Delay before restart number `attempt` (0-based) of a container: 0, base, 2*base, 4*base, ... capped."""
        if attempt <= 0:
            return 0.0
        return min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))


def load_settings(directory: Path, overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults, then `DIR/supervise.yaml` (if present), then `overrides` (CLI options that were given)."""
    import yaml

    values: dict[str, Any] = {}
    path = directory / CONFIG_NAME
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise StackgenError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise StackgenError(f"{path}: expected a mapping of settings")
        section = loaded.get("supervise", loaded) if set(loaded) == {"supervise"} else loaded
        values.update({str(k).replace("-", "_"): v for k, v in (section or {}).items()})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(settings)"
        source = f"{path}: " if path.is_file() else ""
        raise StackgenError(f"{source}{where}: {first['msg']}") from None


def non_default_options(settings: Settings) -> list[str]:
    """The settings that differ from the defaults, as `stackgen supervise` options (for a systemd unit)."""
    defaults = Settings()
    args: list[str] = []
    for name in Settings.model_fields:
        value, default = getattr(settings, name), getattr(defaults, name)
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            for item in value:
                args += [flag.removesuffix("s"), str(item)]
        elif name in DURATION_FIELDS:
            args += [flag, format_duration(value)]
        else:
            args += [flag, str(value)]
    return args
