"""What can reach what in a running stack: the reachability matrix, Node-RED's way out, where the key can be read.

The probes of `stackgen verify --live` that test isolation (SG301-SG304), split from `checks.py` (which
observes, runs them with the edge's TLS and HTTP probes, and judges): a probe container on each
project network and the host try every service's listening ports against what the security model
expects; with several Node-RED instances, also from inside each instance's container (every other
instance's port: blocked) and inside the edge (each instance's port: open); inside each Node-RED
instance, the routing table, a canary on a network of our own and a listener on the host's bridge
gateway show whether it has a way out; inside each container, whether the key is readable.

Order (checks._isolation): the canary's network is created before any isolation probe runs, never beside
them: creating a network makes the engine rewrite its isolation chains (see `egress_canary`).

Probes only ever target loopback, the stack's own networks and the canary network created here (and
removed); probe containers use an image the stack already has (Node-RED's, which has `node`), run as
nobody, read-only, without capabilities, and are removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stackgen.constants import NODE_RED_PORT, PROBE_LABEL
from stackgen.live import probes
from stackgen.topology import Role, Service

if TYPE_CHECKING:
    from stackgen.live.checks import LiveContext

CONNECT_TIMEOUT = 1.5
CANARY_PORT = 18080
INSIDE = "inside "  # a vantage in a container's own network namespace: "inside node-red-b"
ON_NODE = " @ "  # a network vantage on another swarm node: "internal-lab @ worker-1" (a probe service placed there)


def vantage_network(vantage: str) -> str:
    """The network (or `host`, `inside X`) of a vantage, without the node it was probed from."""
    return vantage.split(ON_NODE, 1)[0]

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

    vantage: str  # a network key, "host", or "inside SERVICE" (that container's own network namespace)
    service: str
    address: str
    port: int
    expected: str | None  # "open" | "closed" | None (no expectation)
    observed: str = "?"  # "open" | "refused" | "blocked"
    via: str = ""  # the network the target address belongs to
    instances: tuple[str, str] | None = None  # (from, to): a Node-RED instance's network or container -> another instance

    @property
    def reachable(self) -> bool:
        return self.observed == "open"

    @property
    def ok(self) -> bool:
        if self.expected is None:
            return True
        return self.reachable == (self.expected == "open")

    def to_dict(self) -> dict[str, Any]:
        between = {"from": self.instances[0], "to": self.instances[1]} if self.instances else None
        return {"from": self.vantage, "service": self.service, "address": self.address, "port": self.port,
                "network": self.via, "expected": self.expected, "observed": self.observed, "ok": self.ok,
                "instances": between}


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
    """What the security model says about a connection from `vantage` to `target`'s address on `target_net`.

    From inside a container (`inside SERVICE`, only Node-RED targets are probed): another Node-RED instance never
    reaches one (instances are isolated from each other, whatever network they share); the edge reaches each
    instance on the internal network they share by declaration (a network it was never declared on: no expectation,
    the other cells judge that attachment). A vantage on another node (`NET @ NODE`) expects what NET does."""
    vantage = vantage_network(vantage)
    if vantage.startswith(INSIDE):
        source = ctx.observed.services.get(vantage.removeprefix(INSIDE))
        if target.role is not Role.NODE_RED or source is None:
            return None
        if source.role is not Role.EDGE:
            return "closed"
        if target_net not in _declared_networks(ctx, source.name):
            return "closed"
        if target_net in _declared_networks(ctx, target.name) and _internal(ctx, target_net):
            return "open"
        return None
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


def run_probe_container(ctx: LiveContext, image: str, network: str | None, job: dict[str, Any], *, beside: Any = None,
                        node: str | None = None) -> dict[str, Any]:
    """A throwaway container on one network (or, `beside` a container, in that container's network namespace: its
    own view, for an image without `node`), running the connect script as nobody; with `node` (a swarm node id), a
    probe service placed on that node (swarm_probe.OverlayProbes.on_node)."""
    for host, _ in job["targets"]:
        probes.check_target(host, ctx.subnets())
    where = {"network_mode": f"container:{beside.id}"} if beside is not None else {"network": ctx.networks[network or ""]["Name"]}
    engine = ctx.engine.on_node(node) if node else ctx.engine
    # Not `remove=True`: docker-py then removes without `v`, and an image that declares VOLUMEs
    # (Node-RED's /data) would leave one anonymous volume behind per probe.
    container = engine.containers.create(
        image,
        ["-e", _CONNECT_JS, json.dumps(job)],
        entrypoint=["node"],
        **where,
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
    """Run the connect script inside an existing container (its own vantage point); for a swarm task on another node,
    in its twin there (`twin_connect`)."""
    allowed = ctx.subnets() + ctx.extra_subnets
    for host, _ in targets:
        probes.check_target(host, allowed)
    job = {"targets": targets, "timeout": int(CONNECT_TIMEOUT * 1000), "files": list(files)}
    if service in ctx.remote:
        return twin_connect(ctx, service, job)
    container = ctx.container(service)
    if container is None:
        return None
    result = container.exec_run(["node", "-e", _CONNECT_JS, json.dumps(job)])
    try:
        return json.loads(result.output.decode())
    except ValueError:
        return None


def twin_connect(ctx: LiveContext, service: str, job: dict[str, Any]) -> dict[str, Any] | None:
    """The connect script in a stand-in for a swarm task on another node: a probe service on every network of that task,
    placed on its node (the same networks, the same node's overlay endpoints and routes; not its addresses, mounts or
    processes). None when it cannot run (the caller's check then says `not checked`)."""
    task = ctx.remote[service]
    image = probe_image(ctx)
    if image is None or not hasattr(ctx.engine, "twin") or not task.network_ids:
        return None
    try:
        probe = ctx.engine.twin(image, task.network_ids, task.node_id, ["node"], ["-e", _CONNECT_JS, json.dumps(job)],
                                {"user": "65534:65534", "read_only": True, "cap_drop": ["ALL"], "mem_limit": "64m",
                                 "labels": {PROBE_LABEL: ctx.project}})
        try:
            probe.start()
            probe.wait()
            output = probe.logs(stdout=True, stderr=False)
        finally:
            probe.remove(force=True, v=True)
        result = json.loads(output.decode().strip().splitlines()[-1] or "{}")
    except Exception:  # noqa: BLE001 - a probe that cannot run is reported by the caller, not fatal
        return None
    name = f"probe inside {service} (a stand-in)"
    if not any(c.name == name for c in ctx.checks):
        ctx.check(name, True, f"{task.describe()}: no exec reaches it from this node; a probe service on all of its networks, "
                              f"placed on node {task.node}, ran the probe in its place (the same networks and routes, not its "
                              "addresses or mounts)")
    return result


def matrix(ctx: LiveContext, pool: ThreadPoolExecutor) -> None:
    """Every listening port of every service from every project network and from the host; with several Node-RED
    instances also from inside each instance (every other instance's port) and inside the edge (each instance's)."""
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
        jobs += _remote_vantages(ctx, pool, image, targets)
    else:
        ctx.check("reachability matrix", False, "not checked: no Node-RED container to take a probe image from: container vantage points skipped")
    jobs += _instance_vantages(ctx, pool, image, [t for t in targets if t[0].role is Role.NODE_RED])
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


def _remote_vantages(ctx: LiveContext, pool: ThreadPoolExecutor, image: str,
                     targets: list[tuple[Service, str, str, int]]) -> list[Any]:
    """A swarm task on another node is probed from there too: a probe service on each stack network, placed on that
    node, against that node's targets (`NET @ NODE` cells). Cross-node overlay traffic (what this node's probes try) is
    what an encrypted overlay without IPsec ESP breaks; the target's own node sees its overlay endpoint directly."""
    jobs = []
    nodes: dict[str, list[tuple[Service, str, str, int]]] = {}
    for target in targets:
        task = ctx.remote.get(target[0].name)
        if task is not None:
            nodes.setdefault(task.node_id, []).append(target)
    for node_id, on_node in sorted(nodes.items()):
        name = ctx.remote[on_node[0][0].name].node
        if not hasattr(ctx.engine, "on_node"):
            ctx.check(f"probe container on node {name}", False, "not checked: this engine client cannot place probe services")
            continue
        for network in ctx.networks:
            jobs.append(pool.submit(_matrix_from_network, ctx, image, network, on_node, node_id, name))
    return jobs


def _instance_vantages(ctx: LiveContext, pool: ThreadPoolExecutor, image: str | None,
                       node_reds: list[tuple[Service, str, str, int]]) -> list[Any]:
    """Instance to instance, from the containers themselves: inside each Node-RED (its own `node`), every other
    instance's port at each of its addresses must be blocked; inside the edge (a probe container sharing its network
    namespace: edge images have no `node`), each instance's port must open on the network they share. Only with
    several instances: with one, the network cells say the same (the internal network is the edge's)."""
    services = {svc.name for svc, *_ in node_reds}
    if len(services) < 2:
        return []
    jobs = []
    for name in sorted(services):
        others = [t for t in node_reds if t[0].name != name]
        jobs.append(pool.submit(_matrix_inside, ctx, name, others))
    for edge in ctx.by_role(Role.EDGE):
        if image is None:
            continue
        jobs.append(pool.submit(_matrix_beside, ctx, image, edge.name, node_reds))
    return jobs


def _matrix_inside(ctx: LiveContext, service: str, targets: list[tuple[Service, str, str, int]]) -> None:
    result = exec_connect(ctx, service, [(ip, port) for _, _, ip, port in targets])
    if result is None:
        where = f" (its task is on node {ctx.remote[service].node})" if service in ctx.remote else ""
        ctx.check(f"probe inside {service}", False, f"not checked: could not run the connect script in its container{where}")
        return
    _cells(ctx, INSIDE + service, targets, result.get("connect", []))


def _matrix_beside(ctx: LiveContext, image: str, edge: str, targets: list[tuple[Service, str, str, int]]) -> None:
    container = ctx.container(edge)
    if container is None:
        ctx.check(f"probe inside {edge}", False, "not checked: no running container on this node")
        return
    job = {"targets": [[ip, port] for _, _, ip, port in targets], "timeout": int(CONNECT_TIMEOUT * 1000)}
    try:
        result = run_probe_container(ctx, image, None, job, beside=container)
    except Exception as exc:  # noqa: BLE001 - a probe that cannot run is reported, not fatal
        ctx.check(f"probe inside {edge}", False, f"not checked: could not run: {exc}")
        return
    _cells(ctx, INSIDE + edge, targets, result.get("connect", []))


def _matrix_from_network(ctx: LiveContext, image: str, network: str, targets: list[tuple[Service, str, str, int]],
                         node: str | None = None, node_name: str = "") -> None:
    job = {"targets": [[ip, port] for _, _, ip, port in targets], "timeout": int(CONNECT_TIMEOUT * 1000)}
    vantage = f"{network}{ON_NODE}{node_name}" if node else network
    try:
        result = run_probe_container(ctx, image, network, job, **({"node": node} if node else {}))
    except Exception as exc:  # noqa: BLE001 - a probe that cannot run is reported, not fatal
        ctx.check(f"probe container on {vantage}", False, f"not checked: could not run: {exc}")
        return
    _cells(ctx, vantage, targets, result.get("connect", []))


def _cells(ctx: LiveContext, vantage: str, targets: list[tuple[Service, str, str, int]], observed: list[str]) -> None:
    for (svc, net, ip, port), seen in zip(targets, observed, strict=False):
        cell = Reach(vantage, svc.name, ip, port, expected(ctx, vantage, svc, net), seen, via=net)
        cell.instances = instance_pair(ctx, vantage, svc)
        _record(ctx, cell)


def instance_pair(ctx: LiveContext, vantage: str, target: Service) -> tuple[str, str] | None:
    """(from, to) when `vantage` is one Node-RED instance's container or network (a network only it of the instances
    was declared on) and `target` another instance; None otherwise."""
    if target.role is not Role.NODE_RED or not ctx.several:
        return None
    to = ctx.instance_of(target.name)
    vantage = vantage_network(vantage)
    if vantage.startswith(INSIDE):
        source = ctx.instance_of(vantage.removeprefix(INSIDE))
    else:
        owners = [i for i in ctx.node_reds() if vantage in _declared_networks(ctx, i.service)]
        source = owners[0] if len(owners) == 1 else None
    if source is None or to is None or source.service == to.service:
        return None
    return source.name, to.name


def _record(ctx: LiveContext, cell: Reach) -> None:
    with ctx.lock:
        ctx.matrix.append(cell)
    if cell.ok:
        return
    target = ctx.observed.services.get(cell.service)
    if cell.vantage == "host":
        where = "the host"
    elif cell.vantage.startswith(INSIDE):
        where = cell.vantage
    elif ON_NODE in cell.vantage:
        network, _, node = cell.vantage.partition(ON_NODE)
        where = f"network {network} on node {node}"
    else:
        where = f"network {cell.vantage}"
    between = f" (instance {cell.instances[0]} reaches instance {cell.instances[1]} without the edge)" if cell.instances else ""
    if cell.reachable:
        message = f"{cell.service}:{cell.port} ({cell.address} on {cell.via}) opens from {where}{between}; the security model says it must not"
        if cell.vantage == "host" and target is not None and target.role is Role.NODE_RED:
            ctx.report("SG302", cell.service, message + _firewall_hint(ctx, cell.via))
        else:
            ctx.report("SG301", cell.service, message)
    else:
        ctx.report("SG301", cell.service, f"{cell.service}:{cell.port} ({cell.address}) does not open from {where} ({cell.observed}); it should")


def _firewall_hint(ctx: LiveContext, network: str) -> str:
    attrs = ctx.networks.get(network) or {}
    bridge = ((attrs.get("Options") or {}).get("com.docker.network.bridge.name")) or f"br-{attrs.get('Id', '')[:12]}"
    return f"; fix (as root): iptables -I INPUT -i {bridge} -j DROP (stackgen up does this)"


# --- egress, host gateway, keys ------------------------------------------------------------


@dataclass
class Canary:
    """A listener on a network of the verifier's own: what a Node-RED without egress must not reach."""

    address: str
    port: int = CANARY_PORT


_OWN = object()  # egress() without a canary given: it sets one up itself


@contextlib.contextmanager
def egress_canary(ctx: LiveContext) -> Iterator[Canary | None]:
    """The canary for the egress probes, set up (network, listener) before any isolation probe runs and removed after.

    Made first, not beside the matrix: creating a network makes the engine (20.10) rewrite FORWARD's jumps to its
    isolation chains, and in that instant a matrix probe crosses bridges (a false SG301) or a Node-RED reaches the
    canary (a false SG303). None when every instance may egress, there is no image, or it could not be set up (a
    failed check says so)."""
    image = probe_image(ctx)
    if image is None or all(inst.egress for inst in ctx.node_reds()):
        yield None
        return
    network = container = None
    canary = None
    try:
        try:
            name = f"stackgen-probe-{ctx.project}-{secrets.token_hex(3)}"
            network = ctx.engine.networks.create(name, driver="bridge", labels={PROBE_LABEL: ctx.project})
            subnet = ctx.engine.api.inspect_network(network.id)["IPAM"]["Config"][0]["Subnet"]
            ctx.extra_subnets = [subnet]
            container = ctx.engine.containers.run(
                image, ["-e", _LISTEN_JS], entrypoint=["node"], network=name, user="65534:65534", read_only=True,
                cap_drop=["ALL"], security_opt=["no-new-privileges:true"], mem_limit="64m",
                labels={PROBE_LABEL: ctx.project}, detach=True,
            )
            container.reload()
            _wait_listening(container, CANARY_PORT)
            canary = Canary(container.attrs["NetworkSettings"]["Networks"][name]["IPAddress"])
        except Exception as exc:  # noqa: BLE001 - reported, the other probes still run
            ctx.check("egress canary", False, f"not checked: could not be set up: {exc}")
        yield canary
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
        if network is not None:
            with contextlib.suppress(Exception):
                network.remove()
        ctx.extra_subnets = []


def egress(ctx: LiveContext, canary: Any = _OWN) -> None:
    """Each Node-RED instance's way out: default route, the canary, the host's bridge gateways, the certificate sidecar."""
    if canary is _OWN:
        with egress_canary(ctx) as own:
            egress(ctx, own)
        return
    instances = [inst for inst in ctx.node_reds() if inst.service in ctx.observed.services]
    if not instances:
        return
    with ThreadPoolExecutor(max_workers=min(4, len(instances))) as pool:
        for job in [pool.submit(_egress_of, ctx, inst, canary) for inst in instances]:
            job.result()


def _egress_of(ctx: LiveContext, instance: Any, canary: Canary | None) -> None:
    node_red = instance.service
    tag = ctx.tag(instance)
    subject = f"Node-RED {ctx.who(instance)}" if ctx.several else "Node-RED"
    listeners: list[socket.socket] = []
    targets: list[tuple[str, int]] = []
    labels: list[str] = []
    try:
        if canary is not None and not instance.egress:
            targets.append((canary.address, canary.port))
            labels.append(f"canary {canary.address}:{canary.port} on a network of its own")
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
            ctx.check(f"egress{tag}", False, f"not checked: could not run a probe inside {node_red}")
            return
        if not instance.egress:
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
            if not ctx.check(f"no route out of {node_red}", not outward, detail):
                ctx.report("SG303", node_red, f"{subject} has a default route via {', '.join(outward)}, "
                                              "not an internal network's gateway, although egress is denied")
        for label, (host, port), outcome in zip(labels, targets, result.get("connect", []), strict=False):
            blocked = outcome == "blocked"
            ctx.check(f"{node_red} -> {label}", blocked, outcome)
            if blocked:
                continue
            if label.startswith("host listener"):
                network = label.rsplit("gateway of ", 1)[-1].rstrip(")")
                ctx.report("SG302", node_red, f"{subject} reaches the host at {host}:{port} through the bridge gateway ({outcome})"
                           + _firewall_hint(ctx, network))
            elif label.startswith("canary"):
                ctx.report("SG303", node_red, f"{subject} reaches a canary on another network ({host}:{port}, {outcome}) although egress is denied")
            else:
                ctx.report("SG301", node_red, f"{subject} reaches the certificate sidecar at {host} ({outcome})")
    finally:
        for listener in listeners:
            listener.close()


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
        if svc.name in ctx.remote:
            _key_of_remote(ctx, svc, key)
        elif svc.role is Role.NODE_RED:
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


def _key_of_remote(ctx: LiveContext, svc: Service, key: str) -> None:
    """A swarm task on another node: no file in it can be tried from here. Its service spec says what it mounts: the key
    lives in the certificate sidecar's volume on the edge's node, so a Node-RED that mounts nothing at /etc/letsencrypt
    (nor the key volume) cannot read it; one that does is SG304 from its spec."""
    if svc.role is not Role.NODE_RED:
        return
    task = ctx.remote[svc.name]
    keyed = {m.source for s in ctx.observed.services.values() if s.role in (Role.CERTBOT, Role.EDGE) for m in s.mounts
             if m.is_volume and m.target.startswith("/etc/letsencrypt")}
    mounted = [m for m in svc.mounts if m.target.startswith("/etc/letsencrypt") or (m.is_volume and m.source in keyed)]
    detail = (f"{task.describe()}: its service spec mounts " + (", ".join(f"{m.source or m.type} at {m.target}" for m in mounted)
              if mounted else "nothing at /etc/letsencrypt nor the key's volume") + " (judged from the spec, no file tried in it)")
    if not ctx.check(f"key not readable in {svc.name}", not mounted, detail):
        ctx.report("SG304", svc.name, f"{svc.name} mounts the key's store per its service spec ({', '.join(m.target for m in mounted)})")
