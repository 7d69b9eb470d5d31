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

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.supervisor_support import wait_for


class SwarmEngine:
    """A private dockerd (own socket, data and exec roots, network namespace), made a single-node swarm manager."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.run_dir = Path(f"/run/sgtest-swarm-{self.tag}")
        self.data_root = Path(f"/var/lib/sgtest-swarm-{self.tag}")
        self.url = f"unix://{self.run_dir / 'docker.sock'}"
        self.log_path = self.run_dir / "dockerd.log"
        self.process: subprocess.Popen | None = None
        self.client = None
        self.swarm = False

    def command(self) -> list[str]:
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        daemon = " ".join([
            dockerd, f"--host={self.url}", f"--data-root={self.data_root}", f"--exec-root={self.run_dir / 'exec'}",
            f"--pidfile={self.run_dir / 'docker.pid'}", f"--config-file={self.run_dir / 'daemon.json'}",
            f"--containerd-namespace=sgswarm-{self.tag}", f"--containerd-plugins-namespace=sgswarm-{self.tag}-plugins",
            f"--cgroup-parent=sgswarm-{self.tag}", "--log-level=warn",
        ])
        # `unshare` execs the shell, which execs dockerd: the process we hold is the daemon, in the new namespace.
        return ["unshare", "--net", "--", "sh", "-c", f"ip link set lo up && exec {daemon}"]

    def start(self, timeout: float = 60) -> None:
        import docker

        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.run_dir / "daemon.json").write_text("{}\n")
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, start_new_session=True)

        def answers():
            if self.process.poll() is not None:
                raise AssertionError(f"the swarm's dockerd exited: {self.log_path.read_text()[-2000:]}")
            try:
                client = docker.DockerClient(base_url=self.url, timeout=120)
                client.ping()
                return client
            except Exception:  # noqa: BLE001 - not up yet
                return None

        self.client = wait_for(answers, timeout, "the swarm's dockerd to answer", 0.3)

    def docker(self, *args: str, cli: str = "docker", cwd: Path | None = None, timeout: float = 300,
               check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([cli, "-H", self.url, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                                env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"})
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr or result.stdout}"
        return result

    def init_swarm(self) -> None:
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
        self.swarm = True

    @property
    def node(self) -> str:
        return self.docker("node", "ls", "-q").stdout.split()[0]

    def label_node(self, labels: list[str]) -> None:
        args = [part for label in labels for part in ("--label-add", f"{label}=true")]
        self.docker("node", "update", *args, self.node)

    def load_images(self, images: list[str]) -> float:
        """Copy images from the shared engine (nothing is pulled); returns the seconds it took."""
        started = time.monotonic()
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE,
                                env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"})
        load = subprocess.run(["docker", "-H", self.url, "load"], stdin=save.stdout, capture_output=True, text=True, timeout=600)
        save.stdout.close()
        save.wait(120)
        assert load.returncode == 0 and save.returncode == 0, load.stderr
        return time.monotonic() - started

    def in_namespace(self, code: str, *args: str, timeout: float = 60) -> object:
        """Run Python `code` inside the daemon's network namespace (its loopback: where host-mode ports are); JSON out."""
        command = ["nsenter", "-t", str(self.process.pid), "-n", sys.executable, "-c", code, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[2])
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def stack_containers(self, stack: str, service: str):
        return self.client.containers.list(filters={"label": [f"com.docker.swarm.service.name={stack}_{service}"]})

    def cleanup(self) -> None:
        try:
            if self.swarm and self.process is not None and self.process.poll() is None:
                self.docker("swarm", "leave", "--force", check=False, timeout=120)
                left = self.docker("ps", "-aq", check=False).stdout.split()  # every container here is this test's
                if left:
                    self.docker("rm", "-f", "-v", *left, check=False, timeout=120)
        finally:
            if self.client is not None:
                self.client.close()
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(60)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            # The daemon's cgroup parent, in every hierarchy (empty once its containers are gone): children first.
            for parent in Path("/sys/fs/cgroup").glob(f"*/sgswarm-{self.tag}"):
                for directory in sorted((p for p in parent.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        directory.rmdir()
                with contextlib.suppress(OSError):
                    parent.rmdir()
            for root in (self.data_root, self.run_dir):
                mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                          if len(line.split()) > 1 and line.split()[1].startswith(str(root))]
                for mount in sorted(mounts, key=len, reverse=True):
                    subprocess.run(["umount", "-l", mount], capture_output=True)
                shutil.rmtree(root, ignore_errors=True)
