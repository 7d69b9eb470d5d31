"""What every check produces: a `Finding`, and how bad it is (`Severity`).

Why a leaf module: rules make findings, the pipeline suppresses them, report
renderers print them, live verification and the supervisor compare them. If
they lived in any one of those (they used to live in the report module), every
other would import it, and the rules package imported its own output module.
This module imports nothing of stackgen, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["Severity", "Finding", "SEVERITY_NAMES"]


class Severity(str, Enum):
    """How bad a finding is. Ordered: low < medium < high < critical (`rank`, the one ordering)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """1 (low) .. 4 (critical): compare severities with this, never with a copied table."""
        return _RANK[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ValueError(f"unknown severity {text!r} (low, medium, high, critical)") from None

    @classmethod
    def rank_of(cls, name: str) -> int:
        """The rank of a severity's name (`"high"` -> 3), 0 for anything else (a finding read back from JSON)."""
        try:
            return cls(name).rank
        except ValueError:
            return 0


_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}
SEVERITY_NAMES: tuple[str, ...] = tuple(s.value for s in Severity)  # low, medium, high, critical


@dataclass(slots=True)
class Finding:
    """One problem: which rule, how bad, which service, where to fix it, and how."""

    rule: str
    severity: Severity
    message: str
    fix: str
    title: str = ""
    service: str | None = None
    file: str | None = None
    line: int | None = None
    col: int | None = None
    suppressed: bool = False
    suppression_kind: str | None = None
    suppression_reason: str | None = None

    @property
    def location(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def sort_key(self) -> tuple:
        return (-self.severity.rank, self.service or "", self.file or "", self.line or 0, self.rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity.value,
            "service": self.service,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "fix": self.fix,
            "suppressed": self.suppressed,
            "suppression": (
                {"kind": self.suppression_kind, "reason": self.suppression_reason} if self.suppressed else None
            ),
        }
