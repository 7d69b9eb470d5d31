"""docs/rules.md: the rule table and each rule's documentation, generated from the registry.

Kept apart from the registry so that `stackgen verify` does not load the prose it never prints.
`python -m stackgen.verify.rules > docs/rules.md` writes it; a test keeps it current.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from stackgen.verify.rules.base import Rule

__all__ = ["rules_markdown"]


def rules_markdown(rules: Iterable[Rule] | None = None) -> str:
    """docs/rules.md: the rule table and each rule's documentation (every registered rule unless `rules`)."""
    if rules is None:
        from stackgen.verify.rules import ALL_RULES

        rules = ALL_RULES
    rules = tuple(rules)
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
    for r in rules:
        head.append(
            f"| [{r.id}](#{r.id.lower()}-{_anchor(r.title)}) | `{r.name}` | {r.title} | {r.severity.value} | "
            f"{', '.join(r.compose_lint) or '—'} | {'; '.join(r.kics) or '—'} |"
        )
    head += ["", *_COVERAGE_NOTES, ""]
    body = [r.markdown() for r in rules]
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
