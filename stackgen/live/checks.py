"""`stackgen verify --live`: is the running stack what the security model says?

Three layers, one report (judged by the one verify pipeline, `verify.pipeline.verify_topology`):
1. the static rules on the *observed* topology (observe.py), with the file's
   suppressions and positions carried over;
2. drift rules (SG2xx) comparing it with the declared compose file;
3. probes (SG3xx) that test what only a live stack can show: which
   connections actually open (the reachability matrix, from a probe container
   on each project network and from the host), whether Node-RED has a way out
   (routing table, a canary on a network of our own, a listener on the host's
   bridge gateway), where the key can be read, and what the edge serves
   (certificate, TLS versions, redirect, HSTS, admin auth, websockets).
   The isolation probes (matrix, egress, keys) are in `isolation.py`; who may
   reach the editor and who gets banned (the editor gate, the login shield,
   forged client headers: SG313-SG316, `--probes all`) in `access_probes.py`;
   what the edge serves is probed here.

Several Node-RED instances (a version 2 stack.yaml, `InstanceFacts`): the matrix adds instance-to-instance
cells (from inside each instance and the edge), egress, the access probes and the checks through the edge
run per instance at its own host name and editor path, and every host name is checked for a certificate
that names it; checks carry the instance (`[instance b]`), findings name it. A one-instance stack's checks
keep the names they always had.

Probes only ever target loopback, the stack's own networks and the networks
the verifier creates (and removes: the canary's, the access probes'); probe containers use an image the
stack already has (Node-RED's, which has `node`), run as nobody, read-only,
without capabilities, and are removed afterwards.
"""

from __future__ import annotations

import re
import secrets
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen import engine as engines
from stackgen.findings import Finding
from stackgen.live import probes
from stackgen.live.access_probes import access_probe
from stackgen.live.isolation import Reach, egress, egress_canary, keys, matrix
from stackgen.live.observe import RemoteTask, observe_stack, project_networks
from stackgen.topology import Role, Service, Topology
from stackgen.verify.rules import get_rule


@dataclass
class Check:
    """One probe that is not a matrix cell: what was tried, and whether it held."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class InstanceFacts:
    """One Node-RED instance as the probes see it: whose service, which host names reach it, its editor, its egress.

    From stack.yaml (`Stack.node_reds`: a version 1 stack's one Node-RED is instance node-red); without it, one per
    running Node-RED service, named by its service, with the stack-wide facts the context was given."""

    name: str  # the instance's name in stack.yaml (its service's name without stack.yaml)
    service: str
    hosts: list[str] = field(default_factory=list)  # exact host names routed to it (its editor's own host too)
    editor_path: str | None = "/"  # None: no editor served (its httpAdminRoot: under the prefix of a path-routed one)
    egress: bool = False
    spec: Any = None  # stackgen.spec.Instance, when stack.yaml was read
    node_root: str = "/"  # its httpNodeRoot: where its endpoints are (`/lab/` for a path-routed instance)

    @property
    def host(self) -> str | None:
        """The name a client reaches it at (not the editor's own host, when another name exists)."""
        own = getattr(getattr(self.spec, "editor", None), "host", None)
        return next((h for h in self.hosts if h != own), None) or next(iter(self.hosts), None)


@dataclass
class LiveContext:
    """What the probes need to know about the stack."""

    engine: Any
    project: str
    observed: Topology
    declared: Topology | None
    networks: dict[str, dict[str, Any]]
    domains: list[str] = field(default_factory=list)
    cert_name: str | None = None
    editor_path: str | None = "/"
    egress_allowed: bool = False
    ca_file: str | None = None
    min_days: int = 14
    findings: list[Finding] = field(default_factory=list)
    matrix: list[Reach] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    extra_subnets: list[str] = field(default_factory=list)  # the canary network's, while it exists
    stack: Any = None  # the stack's spec (stackgen.spec.Stack), when stack.yaml was read
    instances: list[InstanceFacts] = field(default_factory=list)  # empty: one per running Node-RED service (node_reds())
    remote: dict[str, RemoteTask] = field(default_factory=dict)  # swarm services whose task runs on another node
    lock: threading.Lock = field(default_factory=threading.Lock)

    def node_reds(self) -> list[InstanceFacts]:
        """Every Node-RED instance to probe: stack.yaml's, else each running Node-RED service with the context's facts."""
        if self.instances:
            return list(self.instances)
        hosts = [d for d in self.domains if not d.startswith("*.")] or [d.removeprefix("*.") for d in self.domains[:1]]
        return [InstanceFacts(svc.name, svc.name, hosts, self.editor_path, self._egress_declared(svc.name))
                for svc in self.by_role(Role.NODE_RED)]

    def _egress_declared(self, service: str) -> bool:
        """Without stack.yaml: a Node-RED the compose file puts on a network that is not internal has egress."""
        declared = self.declared.services.get(service) if self.declared else None
        if declared is None:
            return self.egress_allowed
        return any(not self.declared.is_internal(n) for n in declared.networks)

    @property
    def several(self) -> bool:
        """More than one Node-RED: checks and findings then say which instance they are about."""
        return len(self.node_reds()) > 1

    def instance_of(self, service: str) -> InstanceFacts | None:
        return next((i for i in self.node_reds() if i.service == service), None)

    def tag(self, instance: InstanceFacts) -> str:
        """A check name's suffix naming the instance: empty in a one-instance stack (the names it always had)."""
        return f" [instance {instance.name}]" if self.several else ""

    def who(self, instance: InstanceFacts) -> str:
        """The instance as findings name it: `instance b (node-red-b)`, or its service alone when it is the only one."""
        if not self.several:
            return instance.service
        return f"instance {instance.name}" + (f" ({instance.service})" if instance.service != instance.name else "")

    def report(self, rule_id: str, service: str | None, message: str) -> None:
        rule = get_rule(rule_id)
        assert rule is not None, rule_id
        finding = rule.finding(service, probes.stable(message))  # its identity: no random probe path in it
        svc = self.observed.services.get(service or "")
        if svc is not None and svc.src is not None:
            finding.file, finding.line = svc.src.file, svc.src.line
        with self.lock:
            self.findings.append(finding)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        with self.lock:
            self.checks.append(Check(name, ok, detail))
        return ok

    def subnets(self) -> list[str]:
        found = []
        for attrs in self.networks.values():
            for config in (attrs.get("IPAM") or {}).get("Config") or []:
                if config.get("Subnet"):
                    found.append(config["Subnet"])
        return found

    def by_role(self, role: Role) -> list[Service]:
        return self.observed.by_role(role)

    def container(self, service: str):
        svc = self.observed.services.get(service)
        if svc is None:
            return None
        return engines.service_container(self.engine, self.project, service)

    def addresses(self, service: str) -> dict[str, str]:
        """network key -> IP of a service's container, on the project's networks only (not the probes' own); for a swarm
        task on another node, its addresses as Swarm allocated them (the task's network attachments)."""
        remote = self.remote.get(service)
        if remote is not None:
            attached = remote.addresses
        else:
            container = self.container(service)
            if container is None:
                return {}
            attached = {name: settings.get("IPAddress")
                        for name, settings in (container.attrs.get("NetworkSettings") or {}).get("Networks", {}).items()}
        found = {}
        for name, address in attached.items():
            key = next((k for k, a in self.networks.items() if a["Name"] == name), None)
            if key is not None and address:
                found[key] = address
        return found

    def log_source(self, service: str):
        """Something with `.logs(stdout=, stderr=, since=)` for a service: its container here, else (a swarm task on
        another node) its service, whose logs the manager gathers from every node."""
        remote = self.remote.get(service)
        if remote is None:
            return self.container(service)
        return _ServiceLogs(self.engine, remote.service_name)


class _ServiceLogs:
    def __init__(self, engine, name: str) -> None:
        self.engine, self.name = engine, name

    def logs(self, stdout: bool = True, stderr: bool = False, since: float | None = None) -> bytes:
        service = self.engine.services.get(self.name)
        return b"".join(service.logs(stdout=stdout, stderr=stderr, **({"since": int(since)} if since else {})))


# --- what the edge serves -------------------------------------------------------------------


def edge_endpoint(ctx: LiveContext) -> tuple[str, int | None, int | None]:
    """Host address and published HTTP/HTTPS ports of the edge."""
    for svc in ctx.by_role(Role.EDGE):
        http = https = None
        address = "127.0.0.1"
        for port in svc.ports:
            if port.target in (443, 8443):
                https = port.host_port
            elif port.target in (80, 8080):
                http = port.host_port
            if port.host_ip and not port.all_interfaces:
                address = port.host_ip
        return address, http, https
    return "127.0.0.1", None, None


def certificate_names(ctx: LiveContext) -> list[tuple[str, InstanceFacts | None]]:
    """Every exact name the edge serves, with the instance it routes to: the stack's domains, then any instance host
    name only a wildcard there covers. Each must be served with a certificate for it (SAN coverage)."""
    owner = {h: inst for inst in ctx.node_reds() for h in inst.hosts}
    names = [d for d in ctx.domains if not d.startswith("*.")]
    names += [h for h in owner if h not in names]
    return [(name, owner.get(name)) for name in names]


def tls(ctx: LiveContext, pool: ThreadPoolExecutor) -> None:
    address, http_port, https_port = edge_endpoint(ctx)
    edge = (ctx.by_role(Role.EDGE) or [None])[0]
    if edge is None or https_port is None or not ctx.domains:
        ctx.check("edge TLS", False, "no published HTTPS port or no domain known: TLS probes skipped")
        return
    jobs = [pool.submit(_certificate, ctx, edge.name, address, https_port, name, owner) for name, owner in certificate_names(ctx)]
    jobs.append(pool.submit(_protocols, ctx, edge.name, address, https_port))
    jobs.append(pool.submit(_http_policy, ctx, edge.name, address, http_port, https_port))
    for instance in ctx.node_reds():
        jobs.append(pool.submit(_node_red_through_edge, ctx, edge.name, address, https_port, instance))
        jobs.append(pool.submit(_header_grades, ctx, edge.name, address, http_port, https_port, instance))
    for job in jobs:
        job.result()


def _certificate(ctx: LiveContext, edge: str, address: str, port: int, domain: str, owner: InstanceFacts | None = None) -> None:
    from stackgen.live import certificates

    whose = f" ({ctx.who(owner)})" if owner is not None and ctx.several else ""
    try:
        cert = certificates.fetch(address, port, domain)
    except OSError as exc:
        ctx.check(f"certificate for {domain}", False, str(exc))
        ctx.report("SG305", edge, f"no TLS handshake for {domain}{whose} on {address}:{port}: {exc}")
        return
    names = list(cert.names)
    days = cert.days_left()
    problems = []
    if not any(_name_matches(n, domain) for n in names):
        problems.append(f"is for {', '.join(names) or 'no DNS name'}, not {domain}")
    if days < ctx.min_days:
        problems.append(f"expires in {days:.1f} days (minimum {ctx.min_days})" if days > 0 else f"expired {-days:.1f} days ago")
    try:
        probes.https_request(address, port, domain, "/", cafile=ctx.ca_file, verify=True, timeout=5)
    except ssl.SSLCertVerificationError as exc:
        problems.append(f"does not verify ({exc.verify_message})")
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"does not verify ({exc})")
    detail = f"serial {cert.serial_number:X}, names {', '.join(names)}, {days:.0f} days left"
    if ctx.check(f"certificate for {domain}", not problems, detail if not problems else "; ".join(problems)):
        return
    ctx.report("SG305", edge, f"the certificate served for {domain}{whose} " + "; ".join(problems))


def _name_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        return name.count(".") == pattern.count(".") and name.endswith(pattern[1:])
    return pattern.lower() == name.lower()


def _protocols(ctx: LiveContext, edge: str, address: str, port: int) -> None:
    domain = ctx.domains[0].removeprefix("*.")
    for version, name in ((ssl.TLSVersion.TLSv1, "TLS 1.0"), (ssl.TLSVersion.TLSv1_1, "TLS 1.1")):
        accepted = probes.tls_handshake(address, port, domain, version)
        if not ctx.check(f"{name} refused", not accepted, "accepted" if accepted else "refused"):
            ctx.report("SG306", edge, f"the edge accepts a {name} handshake on {address}:{port}")


def _http_policy(ctx: LiveContext, edge: str, address: str, http_port: int | None, https_port: int) -> None:
    domain = ctx.domains[0].removeprefix("*.")
    if http_port is not None:
        try:
            response = probes.http_request(address, http_port, domain, "/stackgen-probe?x=1")
            location = response.headers.get("location", "")
            ok = response.status in (301, 302, 307, 308) and location.startswith(f"https://{domain}")
            detail = f"{response.status} {location}"
        except OSError as exc:
            ok, detail = False, str(exc)
        if not ctx.check("HTTP redirects to HTTPS", ok, detail):
            ctx.report("SG307", edge, f"HTTP on {address}:{http_port} does not redirect to HTTPS ({detail})")
    try:
        response = probes.https_request(address, https_port, domain, "/", cafile=None, timeout=5)
        hsts = response.headers.get("strict-transport-security", "")
    except OSError as exc:
        hsts = f"(no response: {exc})"
    if not ctx.check("HSTS", hsts.startswith("max-age="), hsts or "missing"):
        ctx.report("SG307", edge, f"HTTPS responses carry no Strict-Transport-Security header ({hsts or 'missing'})")


def _node_red_through_edge(ctx: LiveContext, edge: str, address: str, port: int, instance: InstanceFacts | None = None) -> None:
    """Through the edge at the instance's host name: its admin API wants a token, its editor's websocket upgrades, and a
    path nobody serves gets Node-RED's own 404, behind its basic auth when it has one (the edge reaches it, and proxies
    nothing else; `node_reds_own_answer`)."""
    instance = instance or next(iter(ctx.node_reds()), None)
    domain = (instance.host if instance and instance.host else None) or ctx.domains[0].removeprefix("*.")
    name = instance.service if instance else None
    tag = ctx.tag(instance) if instance else ""
    at = f" at {domain} ({ctx.who(instance)})" if instance and ctx.several else ""
    editor_path = instance.editor_path if instance else ctx.editor_path
    if editor_path is not None:
        root = editor_path.rstrip("/") + "/"
        try:
            status = probes.https_request(address, port, domain, root + "flows", timeout=5).status
        except OSError as exc:
            status = f"error {exc}"
        if not ctx.check(f"admin API refuses anonymous GET /flows{tag}", status in (401, 403), str(status)):
            ctx.report("SG308", name, f"GET {root}flows{at} without a token answered {status} (expected 401)")
        try:
            upgraded = probes.websocket_upgrade(address, port, domain, root + "comms", timeout=5)
        except OSError:
            upgraded = 0
        if not ctx.check(f"editor websocket upgrades{tag}", upgraded == 101, str(upgraded)):
            ctx.report("SG309", edge, f"GET {root}comms{at} with Upgrade: websocket answered {upgraded} (expected 101)")
    path = f"{instance.node_root if instance else '/'}stackgen-probe-{secrets.token_hex(4)}"
    try:
        ok, detail = node_reds_own_answer(address, port, domain, path)
    except OSError as exc:
        ok, detail = False, str(exc)
    if not ctx.check(f"unknown path reaches Node-RED only{tag}", ok, detail):
        ctx.report("SG310", edge, f"GET {path}{at} answered {detail}, not Node-RED's own 404: something else is proxied")


def node_reds_own_answer(address: str, port: int, domain: str, path: str) -> tuple[bool, str]:
    """Did Node-RED itself answer a path nobody serves, through the edge? (whether it did, what was seen)

    Node-RED's own answer is Express's 404 `Cannot GET <path>`. With `http_node_auth` (httpNodeAuth) every request
    under httpNodeRoot meets basic auth first: 401 and `WWW-Authenticate: Basic`, which an edge's own basic auth (or
    anything else) answers alike. Node-RED's basic auth (red.js basicAuthMiddleware, and shield.js's basicAuth that
    stackgen renders in its place) lets OPTIONS through (CORS preflights carry no credentials), so an OPTIONS to the
    same path reaches Node-RED's router and gets Express's `Cannot OPTIONS <path>`: Node-RED answered, behind its auth.
    No credentials are sent (the probe has none, and a wrong one would count as a failed login)."""
    response = probes.https_request(address, port, domain, path, timeout=5)
    challenge = response.headers.get("www-authenticate", "")
    ok, detail = probes.own_answer(response.status, response.body, challenge, None)
    if ok is not None:
        return ok, detail
    preflight = probes.https_request(address, port, domain, path, method="OPTIONS", timeout=5)
    confirmed, detail = probes.own_answer(response.status, response.body, challenge, (preflight.status, preflight.body))
    return bool(confirmed), detail


# --- graded: headers (MDN Observatory scoring) and TLS (Mozilla's intermediate profile) ----------------


def _fetch(ctx: LiveContext, address: str, port: int, domain: str, path: str, *, tls: bool, method: str = "GET",
           headers: dict[str, str] | None = None) -> tuple[probes.Response, bool]:
    """One request to the edge; (response, whether the certificate verified)."""
    if not tls:
        return probes.http_request(address, port, domain, path, timeout=5), True
    try:
        return probes.https_request(address, port, domain, path, cafile=ctx.ca_file, verify=True, method=method,
                                    headers=headers, timeout=5), True
    except ssl.SSLCertVerificationError:
        return probes.https_request(address, port, domain, path, verify=False, method=method, headers=headers, timeout=5), False


def exchange(ctx: LiveContext, address: str, http_port: int | None, https_port: int, domain: str, path: str):
    """What the Observatory would fetch for https://domain/path, fetched from the edge's published ports only."""
    from urllib.parse import urljoin, urlsplit

    from stackgen.live.headers_grade import CORS_ORIGIN, Exchange

    def follow(url: str, route: list[tuple[str, int]], cookies: list[str]):
        response = verified = None
        for _ in range(10):  # the Observatory's MAX_REDIRECTS
            parts = urlsplit(url)
            if (parts.hostname or "").lower() not in {d.lower() for d in ctx.domains} | {domain.lower()}:
                break  # off our hosts: not ours to fetch
            tls = parts.scheme == "https"
            target = path_of(parts)
            response, verified = _fetch(ctx, address, https_port if tls else http_port, domain, target, tls=tls)
            route.append((url, response.status))
            location = response.headers.get("location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                break
            cookies += [v for k, v in response.header_lines if k.lower() == "set-cookie"]
            url = urljoin(url, location)
        return response, verified

    def path_of(parts) -> str:
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    cookies: list[str] = []
    route: list[tuple[str, int]] = []
    final, verified = follow(f"https://{domain}{path}", route, cookies)
    http_route: list[tuple[str, int]] | None = None
    if http_port is not None:
        http_route = []
        try:
            follow(f"http://{domain}{path}", http_route, [])
        except OSError:
            http_route = None
    try:
        cors = _fetch(ctx, address, https_port, domain, path_of(urlsplit(route[-1][0])), tls=True, method="OPTIONS",
                      headers={"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET"})[0].header_lines
    except OSError:
        cors = None
    return Exchange(route[-1][0], final.status, final.header_lines, final.body, http_route, bool(verified), cors, cookies)


def _header_grades(ctx: LiveContext, edge: str, address: str, http_port: int | None, https_port: int,
                   instance: InstanceFacts | None = None) -> None:
    from stackgen.live.headers_grade import grade

    instance = instance or next(iter(ctx.node_reds()), None)
    domain = (instance.host if instance and instance.host else None) or ctx.domains[0].removeprefix("*.")
    editor_path = instance.editor_path if instance else ctx.editor_path
    which = f", instance {instance.name}" if instance and ctx.several else ""
    pages = [(f"editor{which}", (editor_path or "/").rstrip("/") + "/")] if editor_path is not None else []
    pages.append((f"endpoint{which}", f"{instance.node_root if instance else '/'}stackgen-probe-{secrets.token_hex(4)}"))
    for label, path in pages:
        try:
            graded = grade(exchange(ctx, address, http_port, https_port, domain, path))
        except (OSError, ValueError) as exc:
            ctx.check(f"header grade ({label})", False, f"GET {path}: {exc}")
            continue
        failing = "; ".join(f"{t.name} {t.modifier:+d} ({t.result}): {t.fix}" for t in graded.failing)
        detail = graded.summary() + (f"; {failing}" if failing else "")
        if not ctx.check(f"header grade ({label})", graded.score >= 90, detail):
            ctx.report("SG311", edge, f"https://{domain}{path} ({label}) grades {graded.summary()}, below A: {failing}")


def tls_profile_probe(ctx: LiveContext) -> None:
    """sslyze against the edge's HTTPS port: Mozilla's intermediate profile, criterion by criterion."""
    from stackgen.live import tls_profile

    address, _, https_port = edge_endpoint(ctx)
    edge = (ctx.by_role(Role.EDGE) or [None])[0]
    if edge is None or https_port is None or not ctx.domains:
        return
    domain = ctx.domains[0].removeprefix("*.")
    try:
        hsts = probes.https_request(address, https_port, domain, "/", timeout=5).headers.get("strict-transport-security")
        criteria = tls_profile.check(address, https_port, domain, hsts_max_age=tls_profile.hsts_max_age(hsts), hsts_checked=True,
                                     ca_file=ctx.ca_file)
    except ImportError as exc:
        ctx.check("TLS profile (Mozilla intermediate)", False, f"sslyze is not installed: {exc}")
        return
    except (OSError, ValueError, RuntimeError) as exc:
        ctx.check("TLS profile (Mozilla intermediate)", False, f"scan failed: {exc}")
        return
    for criterion in criteria:
        if criterion.advisory and not criterion.ok:
            ctx.check(f"TLS profile: {criterion.name}", True, f"{criterion.detail} (advisory, the CA decides: {criterion.fix})")
        elif not ctx.check(f"TLS profile: {criterion.name}", criterion.ok, criterion.detail):
            ctx.report("SG312", edge.name, f"{address}:{https_port} {criterion.name}: {criterion.detail} (fix: {criterion.fix})")


# --- putting it together ------------------------------------------------------------------------


@dataclass
class LiveResult:
    topology: Topology
    findings: list[Finding]
    summary: Any
    exit_code: int
    matrix: list[Reach]
    checks: list[Check]
    seconds: float

    def cells(self) -> list[Reach]:
        """The matrix in reading order: by target, then the host before the networks."""
        return sorted(self.matrix, key=_cell_order)

    def to_dict(self) -> dict[str, Any]:
        return {"reachability": [c.to_dict() for c in self.cells()],
                "checks": [c.to_dict() for c in self.checks], "seconds": round(self.seconds, 2)}


def _cell_order(cell: Reach) -> tuple:
    return (cell.service, cell.port, cell.via, cell.vantage != "host", cell.vantage)


def verify_live(
    engine,
    *,
    directory: Path | None = None,
    project: str | None = None,
    files: list[Path] | None = None,
    ca_file: str | None = None,
    min_days: int = 14,
    probe_level: str = "all",
    ignore: list[str] | None = None,
    fail_on: str | None = "high",
) -> LiveResult:
    """Observe, compare, probe; one result, judged by the same pipeline as static verify."""
    from stackgen.errors import StackgenError
    from stackgen.verify.pipeline import Policy, verify_topology

    start = time.monotonic()
    policy = Policy.parse(ignore or [], fail_on)
    declared, stack = _declared(directory, files)
    project = project or (stack.project if stack else None) or (declared.project if declared else None)
    if not project:
        raise StackgenError("verify --live needs a stack directory (with stack.yaml or compose.yaml) or --project NAME")
    observed, remote = observe_stack(engine, project, declared)
    observed = _without_probe_networks(engine, observed)
    if not observed.services:
        raise StackgenError(f"project {project}: no running containers (start it with `stackgen up`)")
    ctx = LiveContext(engine, project, observed, declared, project_networks(engine, project), ca_file=ca_file, min_days=min_days)
    ctx.remote = remote
    remote_notes(ctx)
    if stack is not None:
        ctx.domains = list(stack.domains)
        ctx.cert_name = stack.cert_name if stack.tls.mode != "files" else None
        ctx.instances = instances_of(stack)
        ctx.editor_path, ctx.egress_allowed = ctx.instances[0].editor_path, ctx.instances[0].egress
        ctx.stack = stack
    elif declared is not None:
        ctx.egress_allowed = any(not declared.is_internal(n) for s in declared.by_role(Role.NODE_RED) for n in s.networks)
    judged = verify_topology(observed, policy, probes=lambda: not_checked_findings(ctx, _probe(ctx, probe_level)))
    return LiveResult(observed, judged.findings, judged.summary, judged.exit_code, ctx.matrix, ctx.checks,
                      time.monotonic() - start)


def remote_notes(ctx: LiveContext) -> None:
    """What is judged of a swarm service whose task runs on another node, and how: its spec and its task's status."""
    for name, task in sorted(ctx.remote.items()):
        ctx.check(f"{name} observed from its service spec", True,
                  f"{task.describe()}: user, read-only root, capabilities, mounts, networks, published ports, resources and "
                  f"restart policy are the service spec's, its addresses the task's; no container of it on this node to inspect")
        ctx.check(f"process user of {name}", False,
                  f"not checked: its process runs on node {task.node}, whose process table this node cannot read; the spec "
                  f"says user {task.user or 'none (the image default)'}")


# Checks guarding the editor's access or Node-RED's isolation (a rule that names a risk): when one could not run, its
# absence hides that risk, so it is an SG317 finding (not a silent pass). The endpoint check guards a low-severity rule.
_GUARDS = ("editor refused outside allow", "editor gate ignores forged", "login shield", "reachability matrix",
           "probe container on", "probe inside", "egress", "no route out of", "key not readable in")
_GUARDS_LOW = ("endpoint reachable outside allow",)
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?::\d+)?\b")


def not_checked_findings(ctx: LiveContext, findings: list[Finding]) -> list[Finding]:
    """The probes' findings, plus SG317 for every guarding check that could not run (its detail says `not checked`)."""
    from stackgen.findings import Severity

    seen = set()
    for check in list(ctx.checks):
        if check.ok or not check.detail.startswith("not checked") or not check.name.startswith(_GUARDS + _GUARDS_LOW):
            continue
        if "see the check above" in check.detail:
            continue  # it follows a check that failed with its own finding (no refused request to forge past, no ban)
        why = _ADDRESS.sub("<address>", check.detail.removeprefix("not checked").lstrip(": "))  # stable: no probe address
        message = f"{check.name} was not checked: {why}"
        if message in seen:
            continue
        seen.add(message)
        service = next((s for s in sorted(ctx.observed.services, key=len, reverse=True) if s in check.name), None)
        ctx.report("SG317", service, message)
        if check.name.startswith(_GUARDS_LOW):
            ctx.findings[-1].severity = Severity.LOW
    return ctx.findings


def instances_of(stack) -> list[InstanceFacts]:
    """stack.yaml's Node-RED instances (a version 1 stack: its one Node-RED, instance node-red, serving every domain)."""
    found = []
    for inst in stack.node_reds:
        hosts = [h for h in inst.hosts if not h.startswith("*.")] or [d.removeprefix("*.") for d in inst.domains[:1]]
        found.append(InstanceFacts(inst.name, inst.service, hosts, inst.editor_root if inst.editor.enabled else None,
                                   inst.egress, inst, inst.node_root))
    return found


def _probe(ctx: LiveContext, probe_level: str) -> list[Finding]:
    """Run the probes `probe_level` asks for (all, cheap, none) at once; their findings. At `all`, the isolation
    probes run in the order `_isolation` gives them, beside the probes through the edge's published ports: the access
    probes' networks leave those ports where they are, a swarm edge's too (access.ProbeNetwork: overlays there)."""
    if probe_level != "none":
        with ThreadPoolExecutor(max_workers=8) as pool:
            jobs = [pool.submit(tls, ctx, pool), pool.submit(keys, ctx)]
            if probe_level == "all":
                jobs += [pool.submit(tls_profile_probe, ctx), pool.submit(_isolation, ctx, pool)]
            for job in jobs:
                job.result()
    return ctx.findings


def _isolation(ctx: LiveContext, pool: ThreadPoolExecutor) -> None:
    """Every network the verifier needs exists before the first isolation probe, and none is created while they run:
    whenever a network is created the engine (20.10) deletes and re-inserts FORWARD's jump to its isolation chain,
    and a connection a probe opens in that instant crosses bridges (a false SG301, or SG303). So the egress canary's
    network comes first, then the access probes (their own networks, created, used and removed in turn), and only
    then the matrix and the egress probes, side by side; the canary's network is removed after both."""
    with egress_canary(ctx) as canary:
        access_probe(ctx)
        outward = pool.submit(egress, ctx, canary)
        try:
            matrix(ctx, pool)
        finally:
            outward.result()


def _without_probe_networks(engine, observed: Topology) -> Topology:
    """Another verifier's access probe may have the edge on its networks for a few seconds: not the stack's (no drift)."""
    from stackgen.constants import PROBE_LABEL

    foreign = [key for key, net in observed.networks.items() if not net.name.startswith(f"{observed.project}_")]
    if not foreign:
        return observed
    try:
        probing = {n.name for n in engine.networks.list(filters={"label": PROBE_LABEL})}
    except Exception:  # noqa: BLE001 - then nothing is dropped
        return observed
    for key in [k for k in foreign if observed.networks[k].name in probing]:
        del observed.networks[key]
        for svc in observed.services.values():
            svc.networks = tuple(n for n in svc.networks if n != key)
    return observed


def _declared(directory: Path | None, files: list[Path] | None):
    """The declared topology (and the stack spec, when there is one)."""
    from stackgen.composefile.loader import load_compose

    stack = None
    paths = list(files or [])
    if directory is not None:
        from stackgen.stackdir import StackDir

        stack_dir = StackDir(directory)
        if stack_dir.spec_path.exists():
            stack = stack_dir.stack
        if not paths and stack_dir.compose_path.exists():
            paths = [stack_dir.compose_path]
    declared = load_compose(paths) if paths else None
    return declared, stack


def live_findings(engine, directory: Path, *, probes: str = "cheap") -> list[Finding]:
    """For the supervisor's drift watch: the live findings of a stack directory."""
    return verify_live(engine, directory=directory, probe_level=probes, fail_on=None).findings
