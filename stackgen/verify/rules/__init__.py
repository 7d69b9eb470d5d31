"""The rule registry: every check `stackgen verify` runs, with its documentation.

A rule (as in yamllint and ruff) is a small object with an id (`SG` + number,
never reused), a slug `name`, a severity, a title, *why* it matters (tied to
stackgen's security model), a bad and a good example, and the fix. Its check
reads only a `Topology`, so the same rule judges a compose file and a running
engine. Modules group small families; `ALL_RULES` is the ordered registry.

Numbering: SG0xx judge one container's hardening; SG1xx judge the topology
(who can reach Node-RED, who holds the keys); SG2xx judge drift of a running
stack from its file; SG3xx are the outcomes of `verify --live`'s probes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from stackgen.verify.report import Finding, Severity
from stackgen.topology import Service, Source, Topology

__all__ = ["Rule", "ALL_RULES", "RETIRED", "get_rule", "run_rules", "rules_markdown"]

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


# Ids that were used once and must never be given to another rule.
RETIRED: frozenset[str] = frozenset()


def _load() -> tuple[Rule, ...]:
    from stackgen.verify.rules import (
        capabilities,
        credentials,
        drift,
        live_probes,
        images,
        isolation,
        logging_rules,
        mounts,
        namespaces,
        networking,
        resources,
        topology_rules,
        user,
    )

    found: list[Rule] = []
    for module in (
        isolation,
        mounts,
        namespaces,
        capabilities,
        user,
        networking,
        images,
        credentials,
        resources,
        logging_rules,
        topology_rules,
        drift,
        live_probes,
    ):
        found.extend(module.RULES)
    found.sort(key=lambda r: r.id)
    return tuple(found)


ALL_RULES: tuple[Rule, ...] = _load()
_BY_KEY = {r.id: r for r in ALL_RULES} | {r.name: r for r in ALL_RULES}


def get_rule(key: str) -> Rule | None:
    """A rule by id (`SG012`, case-insensitive) or by name (`root-user`)."""
    key = key.strip()
    return _BY_KEY.get(key.upper()) or _BY_KEY.get(key.lower())


def run_rules(topo: Topology, rules: Iterable[Rule] = ALL_RULES) -> list[Finding]:
    """Every finding of every rule, unsorted and unsuppressed."""
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(rule.run(topo))
    return findings


def rules_markdown() -> str:
    """docs/rules.md: the rule table and each rule's documentation (kept in sync by a test)."""
    head = [
        "# stackgen verify: rules",
        "",
        "Generated from `stackgen/verify/rules/` (`python -m stackgen.verify.rules > docs/rules.md`); a test keeps it current.",
        "Ids are never reused. Suppress one with a reason: `x-stackgen: {ignore: [{rule: SG018, reason: ...}]}`",
        "on a service or at the top level, or `--ignore SG018` on the command line.",
        "",
        "The last two columns say which compose-lint rule (`CL-…`, compose-lint 0.36) and which KICS",
        "docker-compose query (name and id prefix) check the same thing; `—` means neither does.",
        "",
        "| id | name | title | severity | compose-lint | KICS |",
        "|---|---|---|---|---|---|",
    ]
    for r in ALL_RULES:
        head.append(
            f"| [{r.id}](#{r.id.lower()}-{_anchor(r.title)}) | `{r.name}` | {r.title} | {r.severity.value} | "
            f"{', '.join(r.compose_lint) or '—'} | {'; '.join(r.kics) or '—'} |"
        )
    head += ["", *_COVERAGE_NOTES, ""]
    body = [r.markdown() for r in ALL_RULES]
    return "\n".join(head) + "\n\n" + "\n".join(body)


_COVERAGE_NOTES = [
    "## How the mapping reads",
    "",
    "Every compose-lint 0.36 rule (CL-0001 … CL-0030) and every KICS docker-compose query is covered by",
    "at least one rule above. Where stackgen is deliberately narrower or wider, it says so here:",
    "",
    "- **Capabilities.** compose-lint grades `cap_add` in five tiers (CL-0024, 0011, 0027, 0028, 0029,",
    "  0030); stackgen in two: SG013 (a known path to the host: ALL, SYS_ADMIN, SYS_MODULE, SYS_RAWIO,",
    "  SYS_PTRACE, DAC_READ_SEARCH, SYS_BOOT, BPF) and SG014 (host-wide state: NET_ADMIN, SYS_TIME,",
    "  SYSLOG, PERFMON, SYS_NICE, IPC_LOCK, MAC_ADMIN, …). KICS's *Container Capabilities Unrestricted*",
    "  (any `cap_add`, or no `cap_drop`) maps to SG012 + SG013 + SG014; Docker's default capabilities",
    "  re-added after `cap_drop: [ALL]` (NET_BIND_SERVICE, CHOWN, …) are not reported.",
    "- **Host paths.** CL-0001 treats `/` as a socket mount; stackgen reports it once, as SG003, whether",
    "  read-only or not. Read-only time zone files and CA bundles are not reported (KICS reports any",
    "  OS directory).",
    "- **`Security Opt Not Set`** (KICS) is covered by SG011: the option that matters there is",
    "  `no-new-privileges`.",
    "- **`Restart Policy On Failure Not Set To 5`** (KICS) is covered by SG032, which accepts any restart",
    "  policy other than `no` (`unless-stopped` is what stackgen renders).",
    "- **`Networks Not Set`** (KICS) is SG039, reported only when two or more services share the implicit",
    "  default network (a lone service on it reaches nobody).",
    "- **`Shared Volumes Between Containers`** (KICS) is SG040, reported only when two services can *write*",
    "  the volume; one writer with read-only readers is the pattern stackgen recommends. Key volumes have",
    "  stricter rules (SG106, SG107).",
    "- **`Volume Mounted In Multiple Containers`** (KICS, despite its name about propagation) is SG037.",
    "- **Root.** SG018 matches CL-0018 (uid 0 with any group: `root`, `0`, `0:1500`). SG019 adds what",
    "  neither tool reports: no `user:` at all, except for images known to run as non-root",
    "  (nodered/node-red, …). KICS has no user rule.",
    "- **Not in either tool:** SG009/SG041 (uts/cgroup namespaces), SG022 (duplicate host ports), SG023",
    "  (`ports:` under host networking), SG034 (no log rotation), and every topology rule (SG1xx), which",
    "  judge the stack as a graph: who publishes, who can reach Node-RED, who holds the TLS keys.",
    "",
    "## Roles",
    "",
    "Topology rules need to know which service is Node-RED, the edge, the certificate writer and a database.",
    "The strongest evidence wins, in this order: `x-stackgen: {role: node-red|edge|certbot|database|other}`",
    "on the service, the label `org.stackgen.role`, the image (`nodered/node-red`; caddy, traefik, nginx,",
    "haproxy, envoy, nginx-proxy(-manager), swag; certbot, acme.sh, lego, acme-companion; postgres, mariadb,",
    "mysql, mongo, redis, influxdb...), the build context (`./node-red`, `./bin/traefik`), the command",
    "(`red.js`, `redis-server`), the healthcheck (a probe of port 1880, `nginx -t`, `pg_isready`), port 1880",
    "served or routed to, the name, the mounts (a writer of `/etc/letsencrypt` is a certificate writer,",
    "`/var/lib/postgresql/data` a database's), a database's port (5432, 3306, 27017, 6379, 8086). A service",
    "carrying the routing labels of Traefik or caddy-docker-proxy, or nginx-proxy's `VIRTUAL_HOST`, is that",
    "proxy's upstream, never the edge (unless it is the proxy's own image). Last, the stack's shape: its only",
    "publisher bridging into internal networks is its edge. `stackgen verify --explain` prints each",
    "service's role and why. The edge's upstreams come from the label `org.stackgen.upstream:",
    "node-red:1880` (comma-separated), `x-stackgen: {upstream: ...}`, or the routing labels of Traefik,",
    "caddy-docker-proxy and nginx-proxy.",
    "",
    "## Output and exit codes",
    "",
    "`stackgen verify [-f FILE]... [--env-file F] [--profile P] [--format text|json|sarif] [--fail-on",
    "low|medium|high|critical|none] [--ignore SG0xx[=reason]] [--output FILE]` exits 0 when nothing",
    "unsuppressed is at or above `--fail-on` (default `high`), 1 otherwise, 2 on usage or load errors (one",
    'line, `file:line:col: message`). `--format json` writes `{"version": 1, "tool": {...}, "findings":',
    '[{"rule", "title", "severity", "service", "file", "line", "col", "message", "fix", "suppressed",',
    '"suppression": null | {"kind": "service"|"file"|"cli", "reason"}}], "summary": {"total", "active",',
    '"suppressed", "by_severity", "fail_on", "failed", "files", "services"}}`; fields are only ever added.',
    "`--format sarif` writes SARIF 2.1.0 for code-scanning upload: suppressed findings carry `suppressions`,",
    "and each rule a `security-severity` (critical 9.5, high 8.0, medium 5.5, low 3.0).",
]


def _anchor(title: str) -> str:
    out = "".join(c if c.isalnum() or c in " -" else "" for c in title.lower())
    return out.replace(" ", "-")
