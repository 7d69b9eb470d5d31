"""`Rule`: one check and its user documentation (the leaf every rule module imports).

Why a module of its own: the registry (`stackgen.verify.rules`) imports every rule
module; if `Rule` lived there, each rule module would import the package that is
importing it (a cycle that only works while the import order happens to suit it).
Here it imports only the vocabulary (`stackgen.findings`, `stackgen.topology`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from stackgen.findings import Finding, Severity
from stackgen.topology import Service, Source, Topology

__all__ = ["Rule", "Check"]

Check = Callable[[Topology], Iterable[Finding]]


@dataclass(eq=False)
class Rule:
    """A check and its user documentation."""

    id: str
    name: str
    severity: Severity
    title: str
    why: str
    bad: str
    good: str
    fix: str
    compose_lint: tuple[str, ...] = ()
    kics: tuple[str, ...] = ()
    check: Check | None = field(default=None, repr=False)
    # "static": judges one Topology (compose file or engine); examples are compose files.
    # "drift": compares an engine Topology with its declared one. "probe": reported by `verify --live`.
    # For the last two the examples describe a situation rather than a file.
    kind: str = "static"

    def __post_init__(self) -> None:
        # Examples are stored as written (indented) and dedented on first use: `textwrap`
        # at import time would cost every `stackgen verify` run a few milliseconds.
        self.why = _clean(self.why)
        self.fix = _clean(self.fix)
        self._bad, self._good = self.bad, self.good

    @property
    def bad_example(self) -> str:
        """The bad example, as YAML."""
        return _dedent(self._bad)

    @property
    def good_example(self) -> str:
        """The good example, as YAML."""
        return _dedent(self._good)

    def checks(self, fn: Check) -> Check:
        """Decorator: register `fn(topology)` as this rule's check."""
        self.check = fn
        return fn

    def per_service(self, fn: Callable[[Service, Topology], Iterable[tuple[str, Source | None]]]) -> Check:
        """Decorator: `fn(service, topology)` yields `(message, where)` for each problem."""

        def check(topo: Topology) -> Iterator[Finding]:
            for svc in topo.services.values():
                for message, where in fn(svc, topo):
                    yield self.finding(svc, message, where)

        self.check = check
        return fn

    def finding(self, service: Service | str | None, message: str, where: Source | None = None) -> Finding:
        name = service.name if isinstance(service, Service) else service
        if where is None and isinstance(service, Service):
            where = service.src
        return Finding(
            rule=self.id,
            severity=self.severity,
            message=message,
            fix=self.fix,
            title=self.title,
            service=name,
            file=where.file if where else None,
            line=where.line if where else None,
            col=where.col if where else None,
        )

    def run(self, topo: Topology) -> list[Finding]:
        return list(self.check(topo)) if self.check else []

    def explain(self) -> str:
        """Plain-text documentation: what `stackgen rules SG0xx` prints."""
        import textwrap

        covers = []
        if self.compose_lint:
            covers.append("compose-lint " + ", ".join(self.compose_lint))
        if self.kics:
            covers.append("KICS " + "; ".join(self.kics))
        parts = [
            f"{self.id} ({self.name}) - {self.title}",
            f"Severity: {self.severity.value}",
            "",
            "Why it matters:",
            textwrap.fill(self.why, 78, initial_indent="  ", subsequent_indent="  "),
            "",
            "Bad:",
            textwrap.indent(self.bad_example, "  "),
            "",
            "Good:",
            textwrap.indent(self.good_example, "  "),
            "",
            "Fix:",
            textwrap.fill(self.fix, 78, initial_indent="  ", subsequent_indent="  "),
        ]
        if covers:
            parts += ["", "Also checked by: " + "; ".join(covers)]
        return "\n".join(parts) + "\n"

    def markdown(self) -> str:
        return (
            f"### {self.id} {self.title}\n\n"
            f"`{self.name}` · severity **{self.severity.value}**\n\n"
            f"**Why.** {self.why}\n\n"
            f"**Bad**\n\n```yaml\n{self.bad_example}\n```\n\n"
            f"**Good**\n\n```yaml\n{self.good_example}\n```\n\n"
            f"**Fix.** {self.fix}\n"
        )


def _clean(text: str) -> str:
    return " ".join(text.split())


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).strip("\n")
