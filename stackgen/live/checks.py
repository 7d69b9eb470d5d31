"""`stackgen verify --live`: is the running stack what the security model says?

Three layers, one report:
1. the static rules on the *observed* topology (observe.py), with the file's
   suppressions and positions carried over;
2. drift rules (SG2xx) comparing it with the declared compose file;
3. probes (SG3xx) that test what only a live stack can show: which
   connections actually open (the reachability matrix, from a probe container
   on each project network and from the host), whether Node-RED has a way out
   (routing table, a canary on a network of our own, a listener on the host's
   bridge gateway), where the key can be read, and what the edge serves
   (certificate, TLS versions, redirect, HSTS, admin auth, websockets).

Probes only ever target loopback, the stack's own networks and the canary
network the verifier creates (and removes); probe containers use an image the
stack already has (Node-RED's, which has `node`), run as nobody, read-only,
without capabilities, and are removed afterwards.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen import engine as engines
from stackgen.constants import NODE_RED_PORT, PROBE_LABEL
from stackgen.findings import Finding
from stackgen.live import probes
from stackgen.live.observe import observe, project_networks
from stackgen.topology import Role, Service, Topology
from stackgen.verify.rules import get_rule

CONNECT_TIMEOUT = 1.5
CANARY_PORT = 18080

# One TCP attempt per target, concurrently; prints [{"r": open|refused|blocked}] in order.
_CONNECT_JS = r"""
const net = require('net');
const fs = require('fs');
const job = JSON.parse(process.argv[1]);
const out = {connect: [], route: null, files: {}};
try {
  out.route = fs.readFileSync('/proc/net/route', 'utf8').split('\n').slice(1)
    .map(l => l.trim().split(/\s+/)).filter(f => f[1] === '00000000')
    .map(f => f[2].match(/../g).reverse().map(h => parseInt(h, 16)).join('.'));
} catch (e) { out.route = null; }
for (const f of (job.files || [])) {
  try { fs.accessSync(f, fs.constants.R_OK); out.files[f] = 'readable'; }
  catch (e) { out.files[f] = e.code || 'error'; }
}
let left = job.targets.length;
// a full line: the json-file log driver drops a trailing partial one; no process.exit, it can cut a piped write short
const done = () => { if (--left <= 0) { console.log(JSON.stringify(out)); } };
if (!left) { left = 1; done(); }
job.targets.forEach(([host, port], i) => {
  const s = net.connect({host, port});
  let over = false;
  const finish = (r) => { if (over) return; over = true; s.destroy(); out.connect[i] = r; done(); };
  s.setTimeout(job.timeout, () => finish('blocked'));
  s.on('connect', () => finish('open'));
  s.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : 'blocked'));
});
"""

_LISTEN_JS = f"require('net').createServer(s => s.end()).listen({CANARY_PORT}, '0.0.0.0')"


@dataclass
class Reach:
    """One cell of the reachability matrix."""

    vantage: str  # a network key, "host", or "inside SERVICE"
    service: str
    address: str
    port: int
    expected: str | None  # "open" | "closed" | None (no expectation)
    observed: str = "?"  # "open" | "refused" | "blocked"
    via: str = ""  # the network the target address belongs to

    @property
    def reachable(self) -> bool:
        return self.observed == "open"

    @property
    def ok(self) -> bool:
        if self.expected is None:
            return True
        return self.reachable == (self.expected == "open")

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.vantage, "service": self.service, "address": self.address, "port": self.port,
                "network": self.via, "expected": self.expected, "observed": self.observed, "ok": self.ok}


@dataclass
class Check:
    """One probe that is not a matrix cell: what was tried, and whether it held."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


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
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, rule_id: str, service: str | None, message: str) -> None:
        rule = get_rule(rule_id)
        assert rule is not None, rule_id
        finding = rule.finding(service, message)
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
        """network key -> IP of a service's container."""
        container = self.container(service)
        if container is None:
            return {}
        found = {}
        for name, settings in (container.attrs.get("NetworkSettings") or {}).get("Networks", {}).items():
            key = next((k for k, a in self.networks.items() if a["Name"] == name), name)
            if settings.get("IPAddress"):
                found[key] = settings["IPAddress"]
        return found


# --- expectations --------------------------------------------------------------------


def _declared_networks(ctx: LiveContext, service: str) -> set[str]:
    source = ctx.declared.services.get(service) if ctx.declared else None
    svc = source or ctx.observed.services.get(service)
    return set(svc.networks) if svc else set()


def _internal(ctx: LiveContext, network: str) -> bool:
    topo = ctx.declared or ctx.observed
    return topo.is_internal(network)


def listening_ports(ctx: LiveContext, svc: Service) -> list[int]:
    """Ports a service serves inside its container: Node-RED's, the edge's proxied and published targets."""
    if svc.role is Role.NODE_RED:
        return [NODE_RED_PORT]
    ports = sorted({p.target for p in svc.ports if p.target})
    return ports


def expected(ctx: LiveContext, vantage: str, target: Service, target_net: str) -> str | None:
    """What the security model says about a connection from `vantage` to `target`'s address on `target_net`."""
    if vantage == "host":
        return "closed" if target.role is Role.NODE_RED else None
    if vantage != target_net:
        return "closed"  # bridges are isolated from each other
    if target.role is Role.NODE_RED:
        edges = [e.name for e in ctx.by_role(Role.EDGE)]
        shared = any(vantage in _declared_networks(ctx, e) for e in edges)
        legit = vantage in _declared_networks(ctx, target.name) and shared and _internal(ctx, vantage)
        return "open" if legit else "closed"
    if target.role is Role.EDGE:
        return "open" if vantage in _declared_networks(ctx, target.name) else "closed"
    return None


# --- the reachability matrix ---------------------------------------------------------------


def _classify(address: str, port: int, allowed: list[str]) -> str:
    probes.check_target(address, allowed)
    try:
        with socket.create_connection((address, port), CONNECT_TIMEOUT):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "blocked"


def probe_image(ctx: LiveContext) -> str | None:
    """An image the stack already has, with `node` in it: Node-RED's. Nothing is pulled."""
    for svc in ctx.by_role(Role.NODE_RED):
        container = ctx.container(svc.name)
        if container is not None:
            return container.attrs["Image"]  # the image id: exact, local
    return None


def run_probe_container(ctx: LiveContext, image: str, network: str, job: dict[str, Any]) -> dict[str, Any]:
    """A throwaway container on one network, running the connect script as nobody."""
    for host, _ in job["targets"]:
        probes.check_target(host, ctx.subnets())
    # Not `remove=True`: docker-py then removes without `v`, and an image that declares VOLUMEs
    # (Node-RED's /data) would leave one anonymous volume behind per probe.
    container = ctx.engine.containers.create(
        image,
        ["-e", _CONNECT_JS, json.dumps(job)],
        entrypoint=["node"],
        network=ctx.networks[network]["Name"],
        user="65534:65534",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        mem_limit="64m",
        labels={PROBE_LABEL: ctx.project},
    )
    try:
        container.start()
        container.wait()
        output = container.logs(stdout=True, stderr=False)
    finally:
        container.remove(force=True, v=True)
    return json.loads(output.decode() or "{}")


def exec_connect(ctx: LiveContext, service: str, targets: list[tuple[str, int]], files: list[str] = ()) -> dict[str, Any] | None:
    """Run the connect script inside an existing container (its own vantage point)."""
    container = ctx.container(service)
    if container is None:
        return None
    allowed = ctx.subnets() + ctx.extra_subnets
    for host, _ in targets:
        probes.check_target(host, allowed)
    job = {"targets": targets, "timeout": int(CONNECT_TIMEOUT * 1000), "files": list(files)}
    result = container.exec_run(["node", "-e", _CONNECT_JS, json.dumps(job)])
    try:
        return json.loads(result.output.decode())
    except ValueError:
        return None


def matrix(ctx: LiveContext, pool: ThreadPoolExecutor) -> None:
    targets: list[tuple[Service, str, str, int]] = []  # (service, network, ip, port)
    for svc in ctx.observed.services.values():
        ports = listening_ports(ctx, svc)
        for net, ip in ctx.addresses(svc.name).items():
            for port in ports:
                targets.append((svc, net, ip, port))
    if not targets:
        return
    image = probe_image(ctx)
    jobs = []
    if image:
        for network in ctx.networks:
            jobs.append(pool.submit(_matrix_from_network, ctx, image, network, targets))
    else:
        ctx.check("reachability matrix", False, "no Node-RED container to take a probe image from: container vantage points skipped")
    allowed = ctx.subnets()
    host_cells = []
    for svc, net, ip, port in targets:
        want = expected(ctx, "host", svc, net)
        if want is not None:
            host_cells.append((Reach("host", svc.name, ip, port, want, via=net), pool.submit(_classify, ip, port, allowed)))
    for svc in ctx.by_role(Role.EDGE):
        for port in svc.ports:
            if port.host_port is None:
                continue
            address = "127.0.0.1" if port.all_interfaces else port.host_ip
            cell = Reach("host", svc.name, address, port.host_port, "open", via="published")
            host_cells.append((cell, pool.submit(_classify, address, port.host_port, allowed)))
    for job in jobs:
        job.result()
    for cell, future in host_cells:
        cell.observed = future.result()
        _record(ctx, cell)


def _matrix_from_network(ctx: LiveContext, image: str, network: str, targets: list[tuple[Service, str, str, int]]) -> None:
    job = {"targets": [[ip, port] for _, _, ip, port in targets], "timeout": int(CONNECT_TIMEOUT * 1000)}
    try:
        result = run_probe_container(ctx, image, network, job)
    except Exception as exc:  # noqa: BLE001 - a probe that cannot run is reported, not fatal
        ctx.check(f"probe container on {network}", False, f"could not run: {exc}")
        return
    for (svc, net, ip, port), observed in zip(targets, result.get("connect", []), strict=False):
        cell = Reach(network, svc.name, ip, port, expected(ctx, network, svc, net), observed, via=net)
        _record(ctx, cell)


def _record(ctx: LiveContext, cell: Reach) -> None:
    with ctx.lock:
        ctx.matrix.append(cell)
    if cell.ok:
        return
    target = ctx.observed.services.get(cell.service)
    if cell.reachable:
        where = "the host" if cell.vantage == "host" else f"network {cell.vantage}"
        message = f"{cell.service}:{cell.port} ({cell.address} on {cell.via}) opens from {where}; the security model says it must not"
        if cell.vantage == "host" and target is not None and target.role is Role.NODE_RED:
            ctx.report("SG302", cell.service, message + _firewall_hint(ctx, cell.via))
        else:
            ctx.report("SG301", cell.service, message)
    else:
        ctx.report("SG301", cell.service, f"{cell.service}:{cell.port} ({cell.address}) does not open from network {cell.vantage} ({cell.observed}); it should")


def _firewall_hint(ctx: LiveContext, network: str) -> str:
    attrs = ctx.networks.get(network) or {}
    bridge = ((attrs.get("Options") or {}).get("com.docker.network.bridge.name")) or f"br-{attrs.get('Id', '')[:12]}"
    return f"; fix (as root): iptables -I INPUT -i {bridge} -j DROP (stackgen up does this)"


# --- egress, host gateway, keys ------------------------------------------------------------


def egress(ctx: LiveContext) -> None:
    """Node-RED's way out: default route, a canary on a network of ours, the host's bridge gateways."""
    node_reds = ctx.by_role(Role.NODE_RED)
    if not node_reds:
        return
    node_red = node_reds[0].name
    image = probe_image(ctx)
    canary_network = canary = None
    listeners: list[socket.socket] = []
    targets: list[tuple[str, int]] = []
    labels: list[str] = []
    try:
        if image and not ctx.egress_allowed:
            name = f"stackgen-probe-{ctx.project}-{secrets.token_hex(3)}"
            canary_network = ctx.engine.networks.create(name, driver="bridge", labels={PROBE_LABEL: ctx.project})
            subnet = ctx.engine.api.inspect_network(canary_network.id)["IPAM"]["Config"][0]["Subnet"]
            ctx.extra_subnets = [subnet]
            canary = ctx.engine.containers.run(
                image, ["-e", _LISTEN_JS], entrypoint=["node"], network=name, user="65534:65534", read_only=True,
                cap_drop=["ALL"], security_opt=["no-new-privileges:true"], mem_limit="64m",
                labels={PROBE_LABEL: ctx.project}, detach=True,
            )
            canary.reload()
            canary_ip = canary.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
            _wait_listening(canary, CANARY_PORT)
            targets.append((canary_ip, CANARY_PORT))
            labels.append(f"canary {canary_ip}:{CANARY_PORT} on a network of its own")
        for key in sorted(_declared_networks(ctx, node_red)):
            attrs = ctx.networks.get(key)
            if not attrs or not attrs.get("Internal"):
                continue
            for config in (attrs.get("IPAM") or {}).get("Config") or []:
                gateway = config.get("Gateway")
                if not gateway:
                    continue
                listener = _host_listener(gateway)
                if listener is None:
                    continue
                listeners.append(listener)
                targets.append((gateway, listener.getsockname()[1]))
                labels.append(f"host listener {gateway}:{listener.getsockname()[1]} (gateway of {key})")
        for svc in ctx.by_role(Role.CERTBOT):
            for net, ip in ctx.addresses(svc.name).items():
                targets.append((ip, 443))
                labels.append(f"certbot {ip} on {net}")
        result = exec_connect(ctx, node_red, targets)
        if result is None:
            ctx.check("egress", False, f"could not run a probe inside {node_red}")
            return
        if not ctx.egress_allowed:
            # Docker gives containers on internal networks a default route via the bridge gateway, where the
            # engine (FORWARD) and stackgen's host rule (INPUT) drop it: only a route via another gateway is a way out.
            internal_gateways = {
                config.get("Gateway")
                for attrs in ctx.networks.values() if attrs.get("Internal")
                for config in (attrs.get("IPAM") or {}).get("Config") or []
            }
            routes = result.get("route") or []
            outward = [gw for gw in routes if gw not in internal_gateways]
            detail = "default routes via " + (", ".join(routes) or "none") + f" (internal gateways: {', '.join(sorted(g for g in internal_gateways if g))})"
            if not ctx.check("no route out of node-red", not outward, detail):
                ctx.report("SG303", node_red, f"Node-RED has a default route via {', '.join(outward)}, "
                                              "not an internal network's gateway, although egress is denied")
        for label, (host, port), outcome in zip(labels, targets, result.get("connect", []), strict=False):
            blocked = outcome == "blocked"
            ctx.check(f"node-red -> {label}", blocked, outcome)
            if blocked:
                continue
            if label.startswith("host listener"):
                network = label.rsplit("gateway of ", 1)[-1].rstrip(")")
                ctx.report("SG302", node_red, f"Node-RED reaches the host at {host}:{port} through the bridge gateway ({outcome})"
                           + _firewall_hint(ctx, network))
            elif label.startswith("canary"):
                ctx.report("SG303", node_red, f"Node-RED reaches a canary on another network ({host}:{port}, {outcome}) although egress is denied")
            else:
                ctx.report("SG301", node_red, f"Node-RED reaches the certificate sidecar at {host} ({outcome})")
    finally:
        for listener in listeners:
            listener.close()
        if canary is not None:
            canary.remove(force=True, v=True)
        if canary_network is not None:
            canary_network.remove()
        ctx.extra_subnets = []


def _wait_listening(container, port: int, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        script = f"require('net').connect({port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"
        result = container.exec_run(["node", "-e", script])
        if result.exit_code == 0:
            return
        time.sleep(0.1)


def _host_listener(address: str) -> socket.socket | None:
    """A listener on the host, bound to a bridge gateway address: what a host service would be."""
    try:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((address, 0))
        listener.listen(8)
    except OSError:
        return None
    threading.Thread(target=_accept_loop, args=(listener,), daemon=True).start()
    return listener


def _accept_loop(listener: socket.socket) -> None:
    while True:
        try:
            connection, _ = listener.accept()
            connection.close()
        except OSError:
            return


def keys(ctx: LiveContext) -> None:
    """Where the private key is, probed from inside the containers."""
    if not ctx.cert_name:
        return
    key = f"/etc/letsencrypt/live/{ctx.cert_name}/privkey.pem"
    for svc in ctx.observed.services.values():
        if svc.role is Role.NODE_RED:
            result = exec_connect(ctx, svc.name, [], files=[key])
            if result is not None:
                state = result.get("files", {}).get(key)
                if not ctx.check(f"key not readable in {svc.name}", state != "readable", f"{key}: {state}"):
                    ctx.report("SG304", svc.name, f"{key} is readable inside {svc.name}")
        elif svc.role is Role.EDGE:
            container = ctx.container(svc.name)
            if container is None:
                continue
            probe = "/etc/letsencrypt/.stackgen-probe"
            result = container.exec_run(["sh", "-c", f"if touch {probe} 2>/dev/null; then rm -f {probe}; echo WRITABLE; else echo READONLY; fi"])
            writable = b"WRITABLE" in result.output
            if not ctx.check(f"key volume read-only in {svc.name}", not writable, result.output.decode().strip()):
                ctx.report("SG304", svc.name, f"the key volume is writable inside {svc.name}")
        elif svc.role is Role.CERTBOT:
            container = ctx.container(svc.name)
            if container is None:
                continue
            result = container.exec_run(["sh", "-c", f"stat -L -c '%a %g' {key}"])
            text = result.output.decode().strip()
            if result.exit_code != 0:
                ctx.check(f"key mode in {svc.name}", False, f"no key yet ({text})")
                continue
            mode, _, group = text.partition(" ")
            good = mode == "600" or (mode == "640" and group == "1500")
            if not ctx.check(f"key mode in {svc.name}", good, text):
                ctx.report("SG304", svc.name, f"{key} has mode {mode}, group {group}: expected 0600, or 0640 with group 1500 (the edge's)")


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


def tls(ctx: LiveContext, pool: ThreadPoolExecutor) -> None:
    address, http_port, https_port = edge_endpoint(ctx)
    edge = (ctx.by_role(Role.EDGE) or [None])[0]
    if edge is None or https_port is None or not ctx.domains:
        ctx.check("edge TLS", False, "no published HTTPS port or no domain known: TLS probes skipped")
        return
    jobs = [pool.submit(_certificate, ctx, edge.name, address, https_port, d) for d in ctx.domains if not d.startswith("*.")]
    jobs.append(pool.submit(_protocols, ctx, edge.name, address, https_port))
    jobs.append(pool.submit(_http_policy, ctx, edge.name, address, http_port, https_port))
    jobs.append(pool.submit(_node_red_through_edge, ctx, edge.name, address, https_port))
    for job in jobs:
        job.result()


def _certificate(ctx: LiveContext, edge: str, address: str, port: int, domain: str) -> None:
    from stackgen.live import certificates

    try:
        cert = certificates.fetch(address, port, domain)
    except OSError as exc:
        ctx.check(f"certificate for {domain}", False, str(exc))
        ctx.report("SG305", edge, f"no TLS handshake for {domain} on {address}:{port}: {exc}")
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
    ctx.report("SG305", edge, f"the certificate served for {domain} " + "; ".join(problems))


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


def _node_red_through_edge(ctx: LiveContext, edge: str, address: str, port: int) -> None:
    domain = ctx.domains[0].removeprefix("*.")
    node_red = (ctx.by_role(Role.NODE_RED) or [None])[0]
    name = node_red.name if node_red else None
    if ctx.editor_path is not None:
        root = ctx.editor_path.rstrip("/") + "/"
        try:
            status = probes.https_request(address, port, domain, root + "flows", timeout=5).status
        except OSError as exc:
            status = f"error {exc}"
        if not ctx.check("admin API refuses anonymous GET /flows", status in (401, 403), str(status)):
            ctx.report("SG308", name, f"GET {root}flows without a token answered {status} (expected 401)")
        try:
            upgraded = probes.websocket_upgrade(address, port, domain, root + "comms", timeout=5)
        except OSError:
            upgraded = 0
        if not ctx.check("editor websocket upgrades", upgraded == 101, str(upgraded)):
            ctx.report("SG309", edge, f"GET {root}comms with Upgrade: websocket answered {upgraded} (expected 101)")
    path = f"/stackgen-probe-{secrets.token_hex(4)}"
    try:
        response = probes.https_request(address, port, domain, path, timeout=5)
        ok = response.status == 404 and b"Cannot GET" in response.body
        detail = f"{response.status}"
    except OSError as exc:
        ok, detail = False, str(exc)
    if not ctx.check("unknown path reaches Node-RED only", ok, detail):
        ctx.report("SG310", edge, f"GET {path} answered {detail}, not Node-RED's own 404: something else is proxied")


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
    observed = observe(engine, project, declared)
    if not observed.services:
        raise StackgenError(f"project {project}: no running containers (start it with `stackgen up`)")
    ctx = LiveContext(engine, project, observed, declared, project_networks(engine, project), ca_file=ca_file, min_days=min_days)
    if stack is not None:
        ctx.domains = list(stack.domains)
        ctx.cert_name = stack.cert_name if stack.tls.mode != "files" else None
        ctx.editor_path = stack.node_red.editor.path if stack.node_red.editor.enabled else None
        ctx.egress_allowed = stack.node_red.egress
    elif declared is not None:
        ctx.egress_allowed = any(not declared.is_internal(n) for s in declared.by_role(Role.NODE_RED) for n in s.networks)
    judged = verify_topology(observed, policy, probes=lambda: _probe(ctx, probe_level))
    return LiveResult(observed, judged.findings, judged.summary, judged.exit_code, ctx.matrix, ctx.checks,
                      time.monotonic() - start)


def _probe(ctx: LiveContext, probe_level: str) -> list[Finding]:
    """Run the probes `probe_level` asks for (all, cheap, none) at once; their findings."""
    if probe_level != "none":
        with ThreadPoolExecutor(max_workers=8) as pool:
            jobs = [pool.submit(tls, ctx, pool), pool.submit(keys, ctx)]
            if probe_level == "all":
                jobs += [pool.submit(matrix, ctx, pool), pool.submit(egress, ctx)]
            for job in jobs:
                job.result()
    return ctx.findings


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
