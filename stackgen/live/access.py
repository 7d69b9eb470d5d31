"""Client networks of our own around a running edge: who may reach the editor, and who gets banned.

The mechanism `stackgen verify --live` (access_probes.py: SG313-SG316) and the integration tests
(tests/integration/test_editor_access.py, test_login_shield.py, test_verify_live_access.py) share:

- `ProbeNetwork`: a network this code creates (internal: it routes nowhere), which the stack's edge
  joins for the duration of a probe. Its clients are the edge's only other members, so the edge sees
  their addresses as the TCP peer, exactly as it would see a client from the internet. For a compose
  edge it is a bridge network (the edge keeps its default route: its own bridge network holds the
  gateway). For a swarm edge (`overlay=True`: the edge is a task container) it is an *attachable internal
  overlay* of our own: a swarm task reaches the host, and its host-mode published ports, through an
  endpoint on docker_gwbridge that engine 20.10 ranks after every other, so joining any bridge network
  (an internal one too) moves the task's default gateway and port mappings to it and the published ports
  refuse connections while the edge is attached (measured: about 4 s per verify). An overlay endpoint
  never offers a gateway, so docker_gwbridge keeps it and the ports stay (measured: not one refused
  connection); the clients are plain containers on it (attachable), the edge's peers at their own
  addresses. `close()` removes the clients, disconnects whatever it attached and removes the network,
  whatever happened in between (callers use `with`).
- Where its subnet comes from: an *outsider* network takes a random /24 of 198.18.0.0/15, the range
  RFC 2544 reserves for benchmarking: never a LAN's, a VPN's or the internet's addresses, so an address
  from it is outside any sensible `node_red.editor.allow` (unless allow covers everyone). A /24 that
  overlaps allow, one of the engine's networks or a route of this host (proxy tools such as Clash put
  "fake IP" ranges there) is skipped. An *insider* network lets the engine choose the subnet from its own
  address pools (as for the stack's own networks; stackgen never picks a LAN range itself); `pinned=True`
  then recreates it with that subnet stated, so that clients can take random addresses (a fresh address
  per run: the login shield remembers a banned one for `ban_seconds`).
- `ProbeClient`: a throwaway container on such a network, made from an image the caller names (the
  verifier: the stack's own Node-RED image, which has `node`; nothing is pulled), non-root, read-only,
  without capabilities, with a bounded lifetime in case nobody removes it; `run()` executes HTTPS
  requests to the edge from it (one JSON line back per run).

Traffic only ever goes to the edge's address on a network this code created (checked before each run).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.live import probes

OUTSIDER_RANGE = "198.18.0.0/15"  # RFC 2544: benchmarking, never assigned to a network anyone uses
FORGED_RANGES = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")  # RFC 5737: documentation only
CLIENT_LIFETIME = 600  # seconds a probe client lives at most, should its remover die first
REQUEST_TIMEOUT = 15000  # ms, per request

# Runs in a probe client (node -e SCRIPT PLAN): HTTPS requests to the edge, in order; prints one JSON line.
# The certificate is not verified here (SG305 judges it); SNI and Host are the stack's name.
_REQUESTS_JS = r"""
const https = require("https");
const plan = JSON.parse(process.argv[1]);
function one(step) {
    return new Promise((resolve) => {
        const host = step.host || plan.host;
        const headers = Object.assign({"Host": host}, step.headers || {});
        let body;
        if (step.form) {
            body = new URLSearchParams(step.form).toString();
            headers["Content-Type"] = "application/x-www-form-urlencoded";
            headers["Content-Length"] = Buffer.byteLength(body);
        }
        const req = https.request({host: plan.address, port: plan.port, servername: host, method: step.method || "GET",
            path: step.path, headers: headers, rejectUnauthorized: false, agent: false, timeout: plan.timeout}, (res) => {
            let text = "";
            res.setEncoding("latin1");
            res.on("data", (d) => { if (text.length < 300) text += d; });
            res.on("end", () => resolve({status: res.statusCode, retry_after: res.headers["retry-after"] || null,
                www_authenticate: res.headers["www-authenticate"] || null, body: text.slice(0, 300)}));
        });
        req.on("error", (e) => resolve({status: 0, error: String(e)}));
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.end(body);
    });
}
(async () => {
    const out = [];
    let after = -1;
    for (const step of plan.steps) {
        const r = await one(step);
        out.push(r);
        if (after < 0 && plan.stop_on && plan.stop_on.includes(r.status)) { after = plan.then || 0; }
        else if (after > 0) { after -= 1; }
        if (after === 0) { break; }
    }
    console.log(JSON.stringify(out));
})();
"""


@dataclass
class Result:
    """One request's answer as the client saw it (status 0: no answer, `error` says why)."""

    status: int
    retry_after: str | None = None
    www_authenticate: str | None = None
    body: str = ""
    error: str | None = None

    @classmethod
    def of(cls, data: dict[str, Any]) -> Result:
        return cls(int(data.get("status") or 0), data.get("retry_after"), data.get("www_authenticate"),
                   str(data.get("body") or ""), data.get("error"))


def login_step(path: str, user: str, password: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A login attempt as the editor makes it (OAuth2 password grant, `POST <editor>/auth/token`)."""
    form = {"client_id": "node-red-admin", "grant_type": "password", "scope": "*", "username": user, "password": password}
    return {"method": "POST", "path": path, "form": form, "headers": dict(headers or {})}


@dataclass
class ProbeClient:
    """A container on a `ProbeNetwork` that sends requests to the edge."""

    network: ProbeNetwork
    container: Any
    address: str

    def run(self, steps: list[dict[str, Any]], *, host: str, stop_on: Iterable[int] = (), then: int = 0) -> list[Result]:
        """Run `steps` (dicts: method, path, host, headers, form) in order; stop `then` steps after a status in `stop_on`."""
        edge = self.network.edge_address
        if edge is None:
            raise RuntimeError(f"nothing attached to {self.network.name} to send requests to")
        probes.check_target(edge, [self.network.subnet])
        plan = {"address": edge, "port": self.network.edge_port, "host": host, "steps": steps,
                "stop_on": list(stop_on), "then": then, "timeout": REQUEST_TIMEOUT}
        exit_code, output = self.container.exec_run(["node", "-e", _REQUESTS_JS, json.dumps(plan)], demux=True)
        stdout = (output[0] or b"").decode("utf-8", "replace").strip().splitlines()
        if exit_code != 0 or not stdout:
            stderr = (output[1] or b"").decode("utf-8", "replace").strip()
            raise RuntimeError(f"the probe client at {self.address} printed nothing (exit {exit_code}): {stderr[-300:]}")
        return [Result.of(item) for item in json.loads(stdout[-1])]


@dataclass
class ProbeNetwork:
    """A bridge network of our own that the edge joins while clients on it probe it."""

    engine: Any
    network: Any
    subnet: str
    gateway: str | None
    overlay: bool = False
    edge_port: int = 8443
    edge_address: str | None = None
    attached: list[Any] = field(default_factory=list)
    clients: list[ProbeClient] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.network.name

    @classmethod
    def create(cls, engine, name: str, labels: dict[str, str], *, subnet: str | None = None, pinned: bool = False,
               internal: bool = True, overlay: bool = False) -> ProbeNetwork:
        """A new network: `subnet` if given, else one from the engine's pools (stated afterwards when `pinned`).
        `overlay`: an attachable overlay (swarm scope; the engine must be a swarm manager), for a swarm edge."""
        kind = {"driver": "overlay", "attachable": True, "scope": "swarm"} if overlay else {"driver": "bridge"}

        def make(ipam: dict[str, Any] | None):
            return engine.networks.create(name, internal=internal, labels=labels, ipam=ipam, check_duplicate=True, **kind)

        network = make(_ipam(subnet) if subnet else None)
        found, gateway = _subnet_of(engine, network)
        if subnet is None and pinned:
            _remove(network)  # the engine chose the subnet; state it so that addresses can be chosen
            network = make(_ipam(found))
            found, gateway = _subnet_of(engine, network)
        return cls(engine, network, found, gateway, overlay)

    def anchor(self, image: str, labels: dict[str, str] | None = None) -> ProbeClient:
        """An idle client that brings an overlay to this node before the edge joins it: the engine connects a swarm
        task's container (a managed container) only to a network this node already has ("network ... not found"
        otherwise), and a swarm network reaches a node with its first container there. Removed with the others."""
        return self.client(image, labels=labels)

    def attach(self, container, port: int | None = None) -> str:
        """Connect `container` (the edge) to this network; its address here is where clients send requests."""
        self.network.connect(container)
        self.attached.append(container)
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][self.name]["IPAddress"]
        self.edge_address = address
        if port is not None:
            self.edge_port = port
        return address

    def client(self, image: str, *, address: str | None = None, random_address: bool = False, user: str = "65534:65534",
               labels: dict[str, str] | None = None) -> ProbeClient:
        """A client container on this network (an address of its own choosing, or a random free one)."""
        if random_address and address is None:
            address = self.free_address()
        config = {self.name: self.engine.api.create_endpoint_config(ipv4_address=address)} if address else None
        container = self.engine.containers.create(
            image, ["-e", f"setTimeout(() => {{}}, {CLIENT_LIFETIME * 1000})"], entrypoint=["node"],
            network=self.name, networking_config=config, name=f"{self.name}-client-{secrets.token_hex(3)}",
            user=user, read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges:true"], mem_limit="96m",
            labels=dict(labels or self.network.attrs.get("Labels") or {}), auto_remove=True,
        )
        client = ProbeClient(self, container, address or "")
        self.clients.append(client)
        for attempt in range(3 if self.overlay else 1):
            try:
                container.start()
                break
            except Exception as exc:  # noqa: BLE001 - the SDK's errors are the engine facade's; only this one is retried
                # On an overlay the start waits for the manager to attach the container; a busy manager answers
                # "attaching to network failed ... context deadline exceeded", and the next start usually attaches.
                if attempt == 2 or "attaching to network failed" not in str(exc):
                    raise
        container.reload()
        client.address = container.attrs["NetworkSettings"]["Networks"][self.name]["IPAddress"]
        return client

    def free_address(self) -> str:
        """A random address of the subnet that no member holds (not the gateway, not the edge)."""
        net = ipaddress.ip_network(self.subnet)
        self.network.reload()
        taken = {self.gateway, self.edge_address}
        for member in (self.network.attrs.get("Containers") or {}).values():
            taken.add((member.get("IPv4Address") or "").split("/")[0])
        taken |= {c.address for c in self.clients}
        hosts = net.num_addresses - 2
        for _ in range(64):
            candidate = str(net.network_address + random.randint(2, hosts))
            if candidate not in taken:
                return candidate
        raise RuntimeError(f"no free address found in {self.subnet}")

    def close(self) -> None:
        """Clients removed, attached containers disconnected, the network removed: each tried, whatever failed before."""
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.container.remove(force=True, v=True)
        self.clients.clear()
        with contextlib.suppress(Exception):
            self.network.reload()
            for member in self.network.containers:
                self.network.disconnect(member, force=True)
        for container in self.attached:
            with contextlib.suppress(Exception):
                self.network.disconnect(container, force=True)
        self.attached.clear()
        with contextlib.suppress(Exception):
            # A swarm overlay's node attachment can outlive its last endpoint for tens of seconds on a busy node
            # (measured: still there 30 s after verify returned, under load); left behind, it is an attachable network
            # any container on a manager could join, so it is waited for longer than a bridge.
            _remove(self.network, 60.0 if (self.network.attrs or {}).get("Scope") == "swarm" else 15.0)

    def __enter__(self) -> ProbeNetwork:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def probe_network(engine, name: str, labels: dict[str, str], **options) -> Iterator[ProbeNetwork]:
    """`ProbeNetwork.create(...)` that is always closed."""
    network = ProbeNetwork.create(engine, name, labels, **options)
    try:
        yield network
    finally:
        network.close()


def _remove(network, seconds: float = 15.0) -> None:
    """Remove a network, retrying while the engine still counts an endpoint on it: a swarm network's node attachment
    outlives the last container's disconnect by a moment ("network ... has active endpoints"). Gone already: done."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            network.remove()
            return
        except Exception as exc:  # noqa: BLE001 - the SDK's errors are the engine facade's, and any is retried alike
            if type(exc).__name__ == "NotFound":
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _ipam(subnet: str) -> dict[str, Any]:
    net = ipaddress.ip_network(subnet)
    return {"Driver": "default", "Config": [{"Subnet": str(net), "Gateway": str(net.network_address + 1)}], "Options": {}}


def _subnet_of(engine, network, seconds: float = 10.0) -> tuple[str, str | None]:
    """The network's subnet and gateway; a swarm network without a stated subnet has none until the manager's
    allocator gives it one from the swarm's pools (its inspect shows no IPAM config until then), so it is awaited."""
    deadline = time.monotonic() + seconds
    while True:
        attrs = engine.api.inspect_network(network.id)
        config = ((attrs.get("IPAM") or {}).get("Config") or [{}])[0]
        if config.get("Subnet") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    network.reload()
    if not config.get("Subnet"):
        raise RuntimeError(f"network {attrs.get('Name') or network.id} has no subnet")
    return config["Subnet"], config.get("Gateway")


# --- choosing addresses ---------------------------------------------------------------------


def _networks(cidrs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found = []
    for cidr in cidrs:
        with contextlib.suppress(ValueError):
            found.append(ipaddress.ip_network(cidr, strict=False))
    return found


def covers(allow: Iterable[str], subnet: str) -> bool:
    """Does one network of `allow` hold all of `subnet`?"""
    inner = ipaddress.ip_network(subnet, strict=False)
    return any(net.version == inner.version and inner.subnet_of(net) for net in _networks(allow))


def open_to_everyone(allow: Iterable[str]) -> bool:
    """`allow` admits every IPv4 address (0.0.0.0/0 or the like): there is no outsider to probe from."""
    return covers(allow, "0.0.0.0/0")


def outsider_subnet(allow: Iterable[str], taken: Iterable[str] = (), rng: random.Random | None = None) -> str | None:
    """A random /24 of 198.18.0.0/15 overlapping none of `allow` and `taken` (the engine's networks, this host's
    routes); None when there is none (allow covers the whole range)."""
    avoid = _networks(list(allow) + list(taken))
    candidates = list(ipaddress.ip_network(OUTSIDER_RANGE).subnets(new_prefix=24))
    (rng or random).shuffle(candidates)
    for candidate in candidates:
        if not any(candidate.version == net.version and candidate.overlaps(net) for net in avoid):
            return str(candidate)
    return None


def allowed_address(allow: Iterable[str]) -> str:
    """An address `allow` admits, for a client to claim in a forged header (loopback when allow admits it)."""
    nets = [n for n in _networks(allow) if n.version == 4]
    for net in nets:
        if net.is_loopback:
            return str(net.network_address + 1)
    return str(nets[0].network_address + 1) if nets else "127.0.0.1"


def forged_address(allow: Iterable[str] = (), rng: random.Random | None = None) -> str:
    """What a guessing client claims to be: a random address `allow` admits (so that an edge which believes the
    header lets the request through to the login), loopback first (never a real client's); a documentation
    address (RFC 5737) when allow is unknown or admits everyone."""
    rng = rng or random
    nets = [n for n in _networks(allow) if n.version == 4 and n.prefixlen > 0 and n.num_addresses > 2]
    nets = [n for n in nets if n.is_loopback] or nets or [ipaddress.ip_network(rng.choice(FORGED_RANGES))]
    net = rng.choice(nets)
    return str(net.network_address + rng.randint(1, net.num_addresses - 2))


def engine_subnets(engine) -> list[str]:
    """Every subnet the engine's networks use."""
    found = []
    for network in engine.networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet"):
                found.append(config["Subnet"])
    return found


def host_routes(path: Path = Path("/proc/net/route")) -> list[str]:
    """This host's IPv4 routes other than the default one (CIDRs); empty where unreadable."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "00000000":
            continue
        destination = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
        with contextlib.suppress(ValueError):
            found.append(str(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)))
    return found
