"""A single-node Docker Swarm for the swarm tests, on a private engine in a network namespace of its own.

Why not `docker swarm init` on the shared test engine: other tests (and other people's test runs) use that
engine at the same time, and a swarm adds networks (`ingress`, `docker_gwbridge`), iptables rules and a
listener on 2377 to it; leaving the swarm takes them away again under whatever runs then. A private dockerd
in its own network namespace (as the engine-restart test runs one) holds the swarm, its overlays and its
host-mode ports where nothing else looks: its namespace has only its own loopback, so a port "published on
every interface" is published on that loopback alone, and the probes reach it from inside (`nsenter -n`).
The finalizer leaves the swarm (`docker swarm leave --force`), stops the daemon and removes its directories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.supervisor_support import PrivateDockerd

# The link between two swarm engines' namespaces: a veth pair with a /30 from the benchmarking range (RFC 2544,
# 198.18.0.0/15), which no real network uses; it exists only inside the two namespaces (never on the host's).
LINK = "sglink0"
LINK_ADDRESSES = ("198.18.14.1", "198.18.14.2")


class SwarmEngine(PrivateDockerd):
    """A private dockerd (own socket, data and exec roots, network and UTS namespaces), made a swarm manager or joined
    to one as a worker (`link` a second engine's namespace to this one first)."""

    def __init__(self) -> None:
        super().__init__("swarm", uts=True, client_timeout=120)
        self.swarm = False
        self.address = "127.0.0.1"  # what it advertises: its end of a link once linked

    def docker(self, *args: str, cli: str = "docker", cwd: Path | None = None, timeout: float = 300,
               check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([cli, "-H", self.url, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                                env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"})
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr or result.stdout}"
        return result

    def ip(self, *args: str) -> None:
        """`ip ARGS` inside this engine's network namespace."""
        result = subprocess.run(["nsenter", "-t", str(self.process.pid), "-n", "ip", *args], capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr}"

    def link(self, other: SwarmEngine) -> None:
        """A veth pair between this engine's namespace and `other`'s (made inside ours, its peer moved straight into
        theirs: it never appears on the host), LINK_ADDRESSES[0] here and [1] there; each then advertises its end."""
        self.ip("link", "add", LINK, "type", "veth", "peer", "name", LINK, "netns", str(other.process.pid))
        for engine, address in ((self, LINK_ADDRESSES[0]), (other, LINK_ADDRESSES[1])):
            engine.ip("addr", "add", f"{address}/30", "dev", LINK)
            engine.ip("link", "set", LINK, "up")
            engine.address = address

    def init_swarm(self) -> None:
        self.docker("swarm", "init", "--advertise-addr", self.address)
        self.swarm = True

    def join(self, manager: SwarmEngine) -> None:
        """Join `manager`'s swarm as a worker (its worker token, over the link)."""
        token = manager.docker("swarm", "join-token", "--quiet", "worker").stdout.strip()
        self.docker("swarm", "join", "--token", token, "--advertise-addr", self.address, "--listen-addr",
                    f"{self.address}:2377", f"{manager.address}:2377", timeout=120)
        self.swarm = True

    @property
    def node(self) -> str:
        """This engine's node id."""
        return self.client.info()["Swarm"]["NodeID"]

    def label_node(self, labels: list[str], node: str | None = None) -> None:
        """Put `labels` (=true) on `node` (a manager labels any node), this engine's own by default."""
        args = [part for label in labels for part in ("--label-add", f"{label}=true")]
        self.docker("node", "update", *args, node or self.node)

    def in_namespace(self, code: str, *args: str, timeout: float = 60) -> object:
        """Run Python `code` inside the daemon's network namespace (its loopback: where host-mode ports are); JSON out."""
        command = ["nsenter", "-t", str(self.process.pid), "-n", sys.executable, "-c", code, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[2])
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def stack_containers(self, stack: str, service: str):
        return self.client.containers.list(filters={"label": [f"com.docker.swarm.service.name={stack}_{service}"]})

    def cleanup(self) -> None:
        """Leave the swarm (`docker swarm leave --force`), remove every container (all this test's), stop the daemon,
        remove its directories. The link goes with the namespaces."""
        try:
            if self.swarm and self.process is not None and self.process.poll() is None:
                self.docker("swarm", "leave", "--force", check=False, timeout=120)
                left = self.docker("ps", "-aq", check=False).stdout.split()  # every container here is this test's
                if left:
                    self.docker("rm", "-f", "-v", *left, check=False, timeout=120)
        finally:
            super().cleanup()
