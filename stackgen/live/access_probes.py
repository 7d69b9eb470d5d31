"""`verify --live` proves who may reach the editor and who gets banned (SG313-SG316), from networks of its own.

What is probed (`--probes all` only, see below), through the edge, as a client would:

- **The editor gate (SG313, SG314):** from an *outsider* network (`access.ProbeNetwork`, a random /24 of
  198.18.0.0/15, the benchmarking range, outside `node_red.editor.allow`) the editor and its admin API
  (`<editor>/`, `/flows`, `/settings`, an upper-case variant, `/x/../<editor>`, a doubled slash, and dot
  segments that an edge resolves to a public path) must get 403, while an endpoint path outside the
  editor's prefix still reaches Node-RED (its own 404, or its basic-auth 401). With `allow` open to
  everyone there is no outsider: the editor is reported open by configuration instead (SG313).
- **The login shield (SG315):** from an *insider* network (a subnet the engine picks from its own pools,
  used only when `allow` covers it; with `allow` open to everyone, the outsider network), one probe
  address makes failed logins (`POST <editor>/auth/token`, a new random user name each time) until it gets
  429 with Retry-After: `attempts` + 1 requests (20 when the limit is unknown). Node-RED's log then shows
  which address the shield counted: after the first failure the probe stops when it was not the probe's own
  (the edge's address: every client would share one count, and the probe would ban everyone's logins).
- **Forged client headers (SG316):** the same outsider requests carrying `X-Forwarded-For`, `X-Real-IP`,
  `Forwarded` (and friends) naming an address inside `allow` must still get 403; a second probe address
  makes failed logins with a new forged address in those headers each time and must be banned as fast,
  and stay banned.

Several Node-RED instances (a version 2 stack.yaml): each is probed on its own, at its own host name, editor path,
`allow` and shield settings, through the one edge; one outsider network (outside every instance's allow) and one
insider network, both made before any probe runs, serve them all; checks carry `[instance NAME]` and findings
start with the instance, its service and host name. A one-instance stack's checks keep the names they always had.

Where the facts come from (access_plan.py): `stack.yaml` when `verify --live` is given a stack directory that
has one (the editor's path and host, `allow`, the shield's settings); otherwise the running configs stackgen
renders: httpAdminRoot and the shield's settings from Node-RED's settings.js (read in its container), `allow`,
the host name and the editor's host from the edge's config (Caddyfile, nginx.conf or Traefik's dynamic.yml
under /etc/stackgen/edge/). What cannot be learned is a failed check saying "not checked" and why, never a
silent pass; with `allow` unknown, the benchmarking range counts as outside it (a list that admits it
admits the internet). Several Node-RED services without stack.yaml: each "not checked" (which settings are whose is
not read from the running configs).

On a swarm stack (the edge is a task container) both networks are attachable internal overlays of our own, not
bridge networks: joined to a bridge network, a task's published ports stop answering (access.ProbeNetwork says why).

Why only at `--probes all` (the supervisor's drift watch runs `cheap` every few minutes): the edge joins
two networks of ours for a few seconds, and the shield probe **bans its own throwaway probe addresses**
for `ban_seconds` (two addresses nobody else uses, a fresh random one each run; the shield's table is
bounded). The networks are disconnected and removed in `finally`, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stackgen.constants import HTTPS_INSIDE, PROBE_LABEL
from stackgen.live import access, probes
from stackgen.live.access import Result
from stackgen.live.access_plan import EDGE_CONFIGS, AccessPlan, plan_from_configs, plan_from_stack
from stackgen.live.swarm_probe import is_task
from stackgen.topology import Role

if TYPE_CHECKING:
    from stackgen.live.checks import LiveContext

GATE = "editor refused outside allow"
ENDPOINT = "endpoint reachable outside allow"
GATE_FORGED = "editor gate ignores forged client headers"
SHIELD = "login shield bans a guessing address"
SHIELD_FORGED = "login shield ignores forged client headers"
UNKNOWN_BUDGET = 20  # failed logins tried when the shield's limit is unknown
FORGED_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Client-IP", "True-Client-IP", "CF-Connecting-IP")
FIX_GATE = "regenerate the edge config from stack.yaml (`stackgen generate`) and restart the edge"
FIX_HEADER = ("the edge must judge and assert the TCP peer, never a header: Caddy remote_ip and header_up X-Real-IP {remote_host}, "
              "NGINX $remote_addr (no realip) and proxy_set_header X-Real-IP $remote_addr; or regenerate (`stackgen generate`)")


# --- judging -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    """A check's outcome and, when it failed for a reason a rule names, that rule's finding."""

    check: str
    ok: bool
    detail: str
    rule: str | None = None
    role: Role = Role.EDGE  # whose finding
    message: str = ""


def config_verdicts(plan: AccessPlan) -> list[Verdict]:
    """What the configuration alone says (before any probe)."""
    found = []
    where = plan.source
    if not plan.editor_enabled:
        found.append(Verdict(GATE, True, f"the editor is not served ({where}): nothing to gate"))
        found.append(Verdict(SHIELD, True, f"the editor is not served ({where}): no editor login to guard"))
        return found
    if plan.everyone:
        message = (f"node_red.editor.allow admits everyone ({', '.join(plan.allow or [])}, {where}): the editor and its admin API "
                   "answer any address on the internet, the password is their only guard (fix: set node_red.editor.allow to the "
                   "networks you edit from, e.g. your VPN's range, and run `stackgen generate`)")
        found.append(Verdict(GATE, False, "open to everyone by configuration", "SG313", Role.EDGE, message))
        found.append(Verdict(ENDPOINT, True, "not probed: allow admits everyone, so no client is outside it"))
        found.append(Verdict(GATE_FORGED, True, "not probed: allow admits everyone, there is no gate to forge past"))
    if plan.shield is not None and not plan.shield.enabled:
        message = (f"the login shield is off ({where}): failed logins are not counted per client address, a client rotating user "
                   "names guesses without limit (fix: node_red.login_shield.enabled: true, then `stackgen generate`)")
        found.append(Verdict(SHIELD, False, "off by configuration", "SG315", Role.NODE_RED, message))
    if plan.editor_path is None or plan.host is None:
        why = "; ".join(plan.gaps) or "the editor's path is unknown"
        found.append(Verdict(GATE, False, f"not checked: {why} (give verify --live the stack directory with stack.yaml)"))
        found.append(Verdict(SHIELD, False, f"not checked: {why} (give verify --live the stack directory with stack.yaml)"))
    return found


@dataclass
class GateStep:
    kind: str  # "editor": must get 403; "dot": must reach no admin route; "endpoint": must reach Node-RED;
    # "preflight": an OPTIONS to the endpoint's path, confirming a 401 basic challenge there as Node-RED's (probes.own_answer)
    path: str
    host: str
    forged: bool = False
    method: str = "GET"


def gate_steps(plan: AccessPlan, token: str | None = None) -> list[GateStep]:
    """The outsider's requests: the editor, its admin API and path tricks, an endpoint, and the editor again with forged headers."""
    stem, host = plan.stem, plan.host or ""
    upper = stem.upper() + "/flows" if stem else "/FLOWS"
    editor = [stem + "/", stem + "/flows", upper, stem + "/settings", "/x/.." + stem + "/flows", stem + "//flows"]
    steps = [GateStep("editor", path, host) for path in dict.fromkeys(editor)]
    if plan.editor_host:
        steps += [GateStep("editor", path, plan.editor_host) for path in ("/", "/flows")]
    steps += [GateStep("dot", path, host) for path in (stem + "/../flows", stem + "/%2e%2e/flows", stem + "/./../settings")]
    if stem and stem != plan.node_root.rstrip("/"):  # an editor at its instance's whole prefix leaves no public path
        endpoint = f"{plan.node_root}stackgen-probe-{token or secrets.token_hex(4)}"
        steps += [GateStep("endpoint", endpoint, host), GateStep("preflight", endpoint, host, method="OPTIONS")]
    steps += [GateStep("editor", s.path, s.host, forged=True) for s in steps if s.kind == "editor"]
    return steps


def forged_headers(address: str) -> dict[str, str]:
    return {name: (f"for={address}" if name == "Forwarded" else address) for name in FORGED_HEADERS}


def judge_gate(plan: AccessPlan, steps: list[GateStep], results: list[Result], client: str, subnet: str) -> list[Verdict]:
    pairs = list(zip(steps, results + [Result(0, error="no answer")] * (len(steps) - len(results)), strict=True))
    outside = (f"outside node_red.editor.allow, per {plan.source}" if plan.allow is not None else
               "node_red.editor.allow unknown: the benchmarking range counts as outside it")
    where = f"from {client} (a network of the verifier's own, {subnet}, {outside})"

    def shown(step: GateStep, r: Result) -> str:
        return f"{'' if step.host == plan.host else step.host}{step.path} -> {r.status}"

    plain = [(s, r) for s, r in pairs if s.kind in ("editor", "dot") and not s.forged]
    silent = [s.path for s, r in plain if r.status == 0]
    opened = [(s, r) for s, r in plain if r.status and (r.status != 403 if s.kind == "editor" else r.status in (200, 401))]
    found = []
    listing = "; ".join(shown(s, r) for s, r in opened)
    if opened:
        found.append(Verdict(GATE, False, listing, "SG313", Role.EDGE,
                             f"the editor answered {where}: {listing} (expected 403 from the edge; fix: {FIX_GATE})"))
    elif silent:
        found.append(Verdict(GATE, False, f"not checked: no answer {where} for {', '.join(silent)}"))
    else:
        found.append(Verdict(GATE, True, f"{len(plain)} editor requests {where}: 403 (dot segments reach no admin route)"))
    refused = {(s.path, s.host) for s, r in plain if r.status == 403}
    forged = [(s, r) for s, r in pairs if s.forged and (s.path, s.host) in refused]
    lifted = [(s, r) for s, r in forged if r.status not in (0, 403)]
    if lifted:
        listing = "; ".join(shown(s, r) for s, r in lifted)
        found.append(Verdict(GATE_FORGED, False, listing, "SG316", Role.EDGE,
                             f"with {', '.join(FORGED_HEADERS)} naming an allowed address, the editor answered {where}: {listing}, "
                             f"though it refused the same requests without them (fix: {FIX_HEADER})"))
    elif forged:
        found.append(Verdict(GATE_FORGED, True, f"{len(forged)} editor requests with forged {', '.join(FORGED_HEADERS)}: 403"))
    else:
        found.append(Verdict(GATE_FORGED, False, "not checked: no refused editor request to forge past (see the check above)"))
    endpoint = [(s, r) for s, r in pairs if s.kind == "endpoint"]
    if not endpoint:
        found.append(Verdict(ENDPOINT, True, f"the editor is at {plan.node_root} (its site's or its instance's whole root): every path "
                                             "there is editor traffic, no public endpoint to probe"))
    preflights = {(s.path, s.host): r for s, r in pairs if s.kind == "preflight"}
    for step, r in endpoint:
        # A 401 basic challenge is Node-RED's (httpNodeAuth) only when an OPTIONS to the same path, which its basic auth
        # lets through, gets Express's own 404: an edge's own basic auth must not hide an SG314 (as for SG310).
        preflight = preflights.get((step.path, step.host))
        node_red, why = probes.own_answer(r.status, r.body, r.www_authenticate,
                                          (preflight.status, preflight.body) if preflight is not None and preflight.status else None)
        said = r.error or ("Cannot GET" if "Cannot GET" in r.body else " ".join(r.body.split())[:60])
        detail = f"GET {step.path} -> {r.status} {said}".strip()
        if r.status == 401 and node_red is False:
            detail += f" ({why})"
        if node_red:
            found.append(Verdict(ENDPOINT, True, detail + (f" ({why})" if r.status == 401 else " (Node-RED's own answer)")))
        elif node_red is None:
            found.append(Verdict(ENDPOINT, False, f"not checked: {detail}, and the OPTIONS to confirm it as Node-RED's got no answer"))
        elif r.status == 0:
            found.append(Verdict(ENDPOINT, False, f"not checked: {detail}"))
        else:
            found.append(Verdict(ENDPOINT, False, detail, "SG314", Role.EDGE,
                                 f"an endpoint path outside the editor's prefix ({step.path}) {where} answered {r.status}, not "
                                 f"Node-RED: public endpoints are refused with the editor (fix: the edge's gate must match "
                                 f"{plan.stem or '/'}/ only; {FIX_GATE})"))
    return found


@dataclass
class ShieldRun:
    """One probe address's failed logins: the admin API check first, then the attempts."""

    address: str
    precheck: Result | None
    attempts: list[Result]
    counted_as: set[str] | None = None  # whom the shield's log named for the first failure (None: unreadable)
    forged: bool = False
    seconds: float = 0.0


def judge_shield(plan: AccessPlan, run: ShieldRun, baseline: int | None = None) -> Verdict:
    """Did `run`'s address get 429 + Retry-After after the configured failures, and stay banned?"""
    name = SHIELD_FORGED if run.forged else SHIELD
    rule = "SG316" if run.forged else "SG315"
    role = Role.EDGE if run.forged else Role.NODE_RED
    login = f"POST {plan.stem}/auth/token"
    pre = run.precheck
    if pre is None or pre.status != 401:
        status = pre.status if pre else 0
        why = {0: "no answer", 403: "the edge refused the probe's address the editor", 200: "the admin API answers without a token (SG308)",
               404: f"no admin API at {plan.stem}/"}.get(status, f"GET {plan.stem}/flows answered {status}")
        return Verdict(name, False, f"not checked from {run.address}: {why}")
    if run.counted_as and run.address not in run.counted_as:
        counted = ", ".join(sorted(run.counted_as))
        whose = "an address its client wrote in a header" if run.forged else "the edge's own address"
        return Verdict(name, False, f"counted as {counted}", "SG316", Role.EDGE,
                       f"the login shield counted a failed login from {run.address} as {counted} ({whose}): "
                       + ("a client escapes its count by naming another address" if run.forged else
                          "every client shares one count, so one guesser bans everyone's logins")
                       + f" (fix: {FIX_HEADER})")
    statuses = [r.status for r in run.attempts]
    if any(s in (0, 404) for s in statuses):
        return Verdict(name, False, f"not checked from {run.address}: {login} answered {statuses}")
    first = statuses.index(429) if 429 in statuses else None
    tail = f"(user names rotating{', a new forged client address each time' if run.forged else ''}) from {run.address}"
    if first is None:
        return Verdict(name, False, f"{len(statuses)} failures, no 429: {statuses}", rule, role,
                       f"{len(statuses)} failed logins {tail} were answered {statuses}, never 429: "
                       + ("forged client headers evade the login shield's count" if run.forged else
                          "the login shield does not count them") + f" (fix: {FIX_HEADER if run.forged else _FIX_SHIELD})")
    retry = run.attempts[first].retry_after or ""
    limit = (plan.shield.attempts if plan.shield else None) or baseline
    problems = []
    if not retry.isdigit() or int(retry) <= 0:
        problems.append(f"the 429 carries no usable Retry-After ({retry or 'none'})")
    if 429 in statuses and any(s != 429 for s in statuses[first:]):
        problems.append(f"the ban did not hold: {statuses[first:]}")
    if limit is not None and first > limit:
        problems.append(f"the first 429 came after {first} failures (limit {limit})")
    detail = f"{first} failed logins {tail}, then 429 (Retry-After {retry or '-'} s); statuses {statuses}; {run.seconds:.1f} s"
    if problems:
        return Verdict(name, False, detail, rule, role, f"failed logins {tail}: " + "; ".join(problems)
                       + f" (fix: {FIX_HEADER if run.forged else _FIX_SHIELD})")
    return Verdict(name, True, detail)


_FIX_SHIELD = ("node_red.login_shield.enabled: true and `stackgen generate`; settings.js must load shield.js as httpAdminMiddleware; "
               "restart node-red")


# --- running it against a live stack ----------------------------------------------------------------


@dataclass
class Target:
    """One Node-RED instance to probe through the edge: its plan, service and container."""

    plan: AccessPlan
    service: str
    container: Any  # what its logs are read from: its container, or (a swarm task on another node) its service
    label: str = ""  # how checks and findings name it: empty in a one-instance stack, else "instance b (node-red-b)"

    @property
    def tag(self) -> str:
        return f" [{self.label.split(' (')[0]}]" if self.label else ""


def access_probe(ctx: LiveContext) -> None:
    """The editor gate, the login shield and forged headers of every Node-RED instance, from networks of our own
    (never raises). One outsider network (outside every instance's allow) and, when a shield is to be probed, one
    insider network serve every instance; each instance is probed at its own host name, editor path and allow."""
    edges, node_reds = ctx.by_role(Role.EDGE), ctx.by_role(Role.NODE_RED)
    if not edges or not node_reds:
        ctx.check(GATE, False, "not checked: no edge or no Node-RED container")
        return
    edge = ctx.container(edges[0].name)
    targets = _targets(ctx, edge, node_reds)
    probed = []
    for target in targets:
        _apply(ctx, target, config_verdicts(target.plan), edges[0].name)
        plan = target.plan
        if plan.editor_path is not None and plan.host is not None and plan.editor_enabled:
            probed.append(target)
    if not probed:
        return
    from stackgen.live.isolation import probe_image

    image = probe_image(ctx)
    if image is None or edge is None:
        for target in probed:
            _apply(ctx, target, [Verdict(GATE, False, "not checked: no running Node-RED container to take a probe image from")], edges[0].name)
        return
    port = next((p.target for p in edges[0].ports if p.target in (443, HTTPS_INSIDE)), HTTPS_INSIDE)
    labels = {PROBE_LABEL: ctx.project}
    name = f"stackgen-probe-{ctx.project}-{secrets.token_hex(3)}"
    try:
        taken = access.engine_subnets(ctx.engine) + access.host_routes()
        allow = [cidr for t in probed if not t.plan.everyone for cidr in (t.plan.allow or [])]
        subnet = access.outsider_subnet(allow, taken)
        if subnet is None:
            for target in probed:
                _apply(ctx, target, [Verdict(GATE, False, f"not checked: node_red.editor.allow covers all of {access.OUTSIDER_RANGE}, "
                                                          "no outsider address to use")], edges[0].name)
            return
        with contextlib.ExitStack() as cleanup:
            # Both networks before any probe: a network created while another instance's probes run would make the
            # engine rewrite its isolation chains under them.
            # A swarm edge's task reaches its published ports through docker_gwbridge: on an overlay of our own it keeps
            # them (a bridge network would take them away while attached; access.ProbeNetwork says why).
            overlay = is_task(edge)
            outside = cleanup.enter_context(access.probe_network(ctx.engine, f"{name}-out", labels, subnet=subnet, overlay=overlay))
            inside = None
            if any(not t.plan.everyone and (t.plan.shield is None or t.plan.shield.enabled) for t in probed):
                inside = cleanup.enter_context(access.probe_network(ctx.engine, f"{name}-in", labels, pinned=True, overlay=overlay))
            for network in (outside, inside):
                if network is not None:
                    if overlay:
                        network.anchor(image, labels)
                    network.attach(edge, port)
            edge.reload()
            with ThreadPoolExecutor(max_workers=min(8, 2 * len(probed))) as pool:
                jobs = []
                for target in probed:
                    plan = target.plan
                    if not plan.everyone:
                        jobs.append((target, pool.submit(_gate, plan, outside, image, labels)))
                    if plan.shield is None or plan.shield.enabled:
                        jobs.append((target, pool.submit(_shield, plan, outside if plan.everyone else inside, image, labels, edge,
                                                         target.container)))
                for target, job in jobs:
                    _apply(ctx, target, job.result(), edges[0].name)
    except Exception as exc:  # noqa: BLE001 - a probe that cannot run is reported, not fatal
        for target in probed:
            _apply(ctx, target, [Verdict(GATE, False, f"not checked: the probe networks could not be set up ({exc})")], edges[0].name)


def _targets(ctx: LiveContext, edge, node_reds: list) -> list[Target]:
    """Each instance's plan: from stack.yaml, else (one Node-RED) from the running configs."""
    if ctx.stack is not None:
        instances = [i for i in ctx.stack.node_reds if i.service in ctx.observed.services] or ctx.stack.node_reds[:1]
        several = len(ctx.stack.node_reds) > 1
        found = []
        for inst in instances:
            label = f"instance {inst.name}" + (f" ({inst.service})" if inst.service != inst.name else "") if several else ""
            found.append(Target(plan_from_stack(ctx.stack, inst), inst.service, ctx.log_source(inst.service), label))
        return found
    if len(node_reds) == 1:
        node_red = ctx.container(node_reds[0].name)
        return [Target(_running_plan(edge, node_red), node_reds[0].name, node_red)]
    found = []
    for svc in node_reds:
        plan = AccessPlan("the running configs", gaps=[f"{len(node_reds)} Node-RED services and no stack.yaml: which editor settings "
                                                       "and host names are whose is not read from the running configs"],
                          instance=svc.name, service=svc.name)
        found.append(Target(plan, svc.name, ctx.container(svc.name), svc.name))
    return found


def _apply(ctx: LiveContext, target: Target, verdicts: list[Verdict], edge: str) -> None:
    """Checks and findings, naming the instance when the stack has several (the check's name, the finding's message)."""
    for verdict in verdicts:
        ctx.check(verdict.check + target.tag, verdict.ok, verdict.detail)
        if verdict.rule:
            where = f"{target.label}, at {target.plan.host}: " if target.label else ""
            ctx.report(verdict.rule, target.service if verdict.role is Role.NODE_RED else edge, where + verdict.message)


def _gate(plan: AccessPlan, outside: access.ProbeNetwork, image: str, labels: dict[str, str]) -> list[Verdict]:
    try:
        client = outside.client(image, random_address=True, labels=labels)
        steps = gate_steps(plan)
        spoof = forged_headers(access.allowed_address(plan.allow or []))
        results = client.run([{"path": s.path, "host": s.host, "method": s.method, "headers": spoof if s.forged else {}} for s in steps], host=plan.host or "")
    except Exception as exc:  # noqa: BLE001
        return [Verdict(GATE, False, f"not checked: the outsider probe could not run ({exc})")]
    return judge_gate(plan, steps, results, client.address, outside.subnet)


def _shield(plan: AccessPlan, inside: access.ProbeNetwork | None, image: str, labels: dict[str, str], edge, node_red) -> list[Verdict]:
    try:
        if inside is None:
            return [Verdict(SHIELD, False, "not checked: no insider network")]
        if not plan.everyone and plan.allow is not None and not access.covers(plan.allow, inside.subnet):
            return [Verdict(SHIELD, False, f"not checked: the engine's address pools gave {inside.subnet}, outside "
                                           "node_red.editor.allow: no probe address may reach the login")]
        edge_addresses = {n.get("IPAddress") for n in edge.attrs["NetworkSettings"]["Networks"].values()} - {None, ""}
        budget = (plan.shield.attempts if plan.shield and plan.shield.attempts else UNKNOWN_BUDGET - 1) + 1
        plain = _shield_run(plan, inside.client(image, random_address=True, labels=labels), node_red, edge_addresses, budget, False)
        verdicts = [judge_shield(plan, plain)]
        if not verdicts[0].ok:
            verdicts.append(Verdict(SHIELD_FORGED, False, "not checked: no working ban to evade (see the check above)"))
            return verdicts
        baseline = [r.status for r in plain.attempts].index(429)
        forged = _shield_run(plan, inside.client(image, random_address=True, labels=labels), node_red, edge_addresses, budget, True)
        return [*verdicts, judge_shield(plan, forged, baseline)]
    except Exception as exc:  # noqa: BLE001
        return [Verdict(SHIELD, False, f"not checked: the shield probe could not run ({exc})")]


def _shield_run(plan: AccessPlan, client: access.ProbeClient, node_red, edge_addresses: set[str], budget: int, forged: bool) -> ShieldRun:
    start = time.monotonic()
    login = f"{plan.stem}/auth/token"
    claimed: list[str] = []

    def attempt() -> dict[str, Any]:
        headers = {}
        if forged:
            claimed.append(access.forged_address([] if plan.everyone else plan.allow or []))
            headers = forged_headers(claimed[-1])
        return access.login_step(login, f"stackgen-probe-{secrets.token_hex(4)}", secrets.token_hex(12), headers)

    since = time.time() - 2
    first = client.run([{"path": f"{plan.stem}/flows"}, attempt()], host=plan.host or "")
    run = ShieldRun(client.address, first[0], first[1:], forged=forged)
    if run.precheck is None or run.precheck.status != 401:
        return run
    if run.attempts and run.attempts[0].status != 429:
        run.counted_as = _counted_as(node_red, since, {client.address, *edge_addresses, *claimed})
        if run.counted_as and client.address not in run.counted_as:
            return run  # stop before a ban lands on someone else's address
    hold = 2 if forged else 1  # attempts after the first 429: the ban must hold (and a new forged address must not lift it)
    run.attempts += client.run([attempt() for _ in range(budget - 1 + hold)], host=plan.host or "", stop_on=[429], then=hold)
    run.seconds = time.monotonic() - start
    return run


def _counted_as(node_red, since: float, candidates: set[str], wait: float = 3.0) -> set[str] | None:
    """The client addresses the shield's failure log names among `candidates` (None: the log cannot be read)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            lines = node_red.logs(stdout=True, stderr=False, since=since).decode("utf-8", "replace").splitlines()
        except Exception:  # noqa: BLE001 - a log driver without read support
            return None
        seen = set()
        for line in lines:
            if '"stackgen.login_failure"' in line and line.startswith("{"):
                with contextlib.suppress(ValueError):
                    client = json.loads(line).get("client")
                    if client in candidates:
                        seen.add(client)
        if seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def _running_plan(edge, node_red) -> AccessPlan:
    texts = {path: text for path in EDGE_CONFIGS if edge is not None and (text := _read(edge, path)) is not None}
    settings = None
    if node_red is not None:
        args = list(node_red.attrs.get("Args") or [])
        path = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--settings", "-s")), "/data/settings.js")
        settings = _read(node_red, path)
    return plan_from_configs(texts, settings)


def _read(container, path: str) -> str | None:
    try:
        result = container.exec_run(["cat", path])
    except Exception:  # noqa: BLE001
        return None
    return result.output.decode("utf-8", "replace") if result.exit_code == 0 else None
