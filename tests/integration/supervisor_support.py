"""Helpers of the supervisor's integration tests: throwaway health projects, supervisors, a second engine.

Everything here stays on loopback and on containers it creates itself: test
containers run with `network_mode: none`, webhooks go to a listener on
127.0.0.1, and the second engine has no bridge, no iptables and no masquerading.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from stackgen.supervise.alerts import read_log
from stackgen.supervise.config import Settings
from stackgen.supervise.supervisor import Supervisor

BASE_IMAGE = "stackgen-local/base:latest"
SECOND = 1_000_000_000  # the engine's health timings are in nanoseconds
# Healthy while /tmp/ok exists; the loop makes SIGTERM quick (sh handles it between short sleeps).
OK_FILE_COMMAND = ["sh", "-c", "touch /tmp/ok; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class HealthProject:
    """Containers labelled as one compose project, with 1 s healthchecks, on an engine; a directory with its compose.yaml."""

    def __init__(self, engine, workdir: Path, name: str | None = None) -> None:
        self.engine = engine
        self.name = name or f"sgtest-sup-{secrets.token_hex(3)}"
        self.directory = workdir / self.name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.containers: dict[str, object] = {}

    def write_compose(self, services: list[str], extra: str = "") -> None:
        body = "".join(f"  {s}:\n    image: {BASE_IMAGE}\n" for s in services)
        (self.directory / "compose.yaml").write_text(f"name: {self.name}\nservices:\n{body}{extra}")

    def run(self, service: str, command: list[str] | None = None, health: list[str] | None = ("CMD", "test", "-f", "/tmp/ok"),
            restart: str = "unless-stopped"):
        kwargs = {}
        if health is not None:
            kwargs["healthcheck"] = {"test": list(health), "interval": SECOND, "timeout": SECOND, "retries": 1, "start_period": 0}
        container = self.engine.containers.run(
            BASE_IMAGE, command or OK_FILE_COMMAND, detach=True, name=f"{self.name}-{service}-1",
            labels={"com.docker.compose.project": self.name, "com.docker.compose.service": service,
                    "com.docker.compose.container-number": "1", "org.stackgen.test": self.name},
            network_mode="none", restart_policy={"Name": restart}, stop_signal="SIGTERM", **kwargs,
        )
        self.containers[service] = container
        return container

    def get(self, service: str):
        container = self.containers[service]
        container.reload()
        return container

    def health(self, service: str) -> str | None:
        return (self.get(service).attrs["State"].get("Health") or {}).get("Status")

    def started_at(self, service: str) -> str:
        return self.get(service).attrs["State"]["StartedAt"]

    def cleanup(self) -> None:
        for container in self.containers.values():
            with contextlib.suppress(Exception):
                container.remove(force=True)


@contextlib.contextmanager
def supervisor_thread(directory: Path, connect=None, **settings) -> Iterator[Supervisor]:
    """An in-process supervisor (a thread), stopped and joined at the end."""
    supervisor = Supervisor(directory, Settings(**settings), connect=connect)
    thread = threading.Thread(target=supervisor.run, name="test-supervisor", daemon=True)
    thread.start()
    try:
        assert supervisor.resynced.wait(30), "the supervisor did not connect"
        yield supervisor
    finally:
        supervisor.stop()
        thread.join(30)
        assert not thread.is_alive(), "the supervisor did not stop"


class SupervisorProcess:
    """`stackgen supervise DIR` as a real process (SIGTERM, restarts, DOCKER_HOST)."""

    def __init__(self, directory: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.log_path = directory / ".stackgen-supervisor" / "supervisor.jsonl"
        command = [str(Path(sys.executable).parent / "stackgen"), "supervise", str(directory), "--quiet", *args]
        self.stderr = open(directory / f"supervise-{time.monotonic_ns()}.stderr", "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=self.stderr)

    def log(self) -> list[dict]:
        return read_log(self.log_path)

    def events(self, name: str, since: int = 0) -> list[dict]:
        return [r for r in self.log()[since:] if r.get("event") == name]

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.stderr.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.stderr.close()


class PrivateDockerd:
    """A dockerd of a test's own: own socket, data and exec roots, containerd namespaces, cgroup parent, and network
    namespace (`unshare --net`: with only its own loopback, its bridges, iptables rules and published ports are seen by
    nobody else; a dockerd on the host's namespace could even delete the shared engine's `docker0`). With `uts`, also
    its own host name (`sgtest-KIND-TAG`: what `docker info` and Swarm call the node). One starter for every private
    engine the tests run (the supervisor's engine-restart test, the swarm tests); `start` again after `stop` starts
    the same daemon (same data) in a new namespace."""

    def __init__(self, kind: str, flags: tuple[str, ...] = (), uts: bool = False, client_timeout: float = 5) -> None:
        self.tag = secrets.token_hex(3)
        self.name = f"sgtest-{kind}-{self.tag}"
        self.run_dir = Path(f"/run/{self.name}")
        self.data_root = Path(f"/var/lib/{self.name}")
        self.socket = self.run_dir / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.log_path = self.run_dir / "dockerd.log"
        self.flags = flags
        self.uts = uts
        self.client_timeout = client_timeout
        self.process: subprocess.Popen | None = None
        self.client = None

    def command(self) -> list[str]:
        daemon = " ".join([
            shutil.which("dockerd") or "/usr/sbin/dockerd",
            f"--host={self.url}", f"--data-root={self.data_root}", f"--exec-root={self.run_dir / 'exec'}",
            f"--pidfile={self.run_dir / 'docker.pid'}", f"--config-file={self.run_dir / 'daemon.json'}",
            *self.flags,
            f"--containerd-namespace={self.name}", f"--containerd-plugins-namespace={self.name}-plugins",
            f"--cgroup-parent={self.name}", "--log-level=warn",
        ])
        setup = f"hostname {self.name} && " if self.uts else ""
        # `unshare` execs the shell, which execs dockerd: the process we hold is the daemon, in the new namespace(s).
        return ["unshare", "--net", *(["--uts"] if self.uts else []), "--", "sh", "-c", f"{setup}ip link set lo up && exec {daemon}"]

    def start(self, timeout: float = 60) -> None:
        import docker

        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.run_dir / "daemon.json").write_text("{}\n")
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, start_new_session=True)

        def answers():
            if self.process.poll() is not None:
                raise AssertionError(f"the private dockerd {self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                client = docker.DockerClient(base_url=self.url, timeout=self.client_timeout)
                client.ping()
                return client
            except Exception:  # noqa: BLE001 - not up yet
                return None

        if self.client is not None:
            self.client.close()
        self.client = wait_for(answers, timeout, f"the private dockerd {self.name} to answer", 0.3)

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

    def stop(self, timeout: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def cleanup(self) -> None:
        """Stop the daemon; remove its cgroup parent, mounts and directories."""
        try:
            if self.client is not None:
                self.client.close()
        finally:
            self.stop()
            # The daemon's cgroup parent, in every hierarchy (empty once its containers are gone): children first.
            for parent in Path("/sys/fs/cgroup").glob(f"*/{self.name}"):
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


class SecondEngine(PrivateDockerd):
    """A separate dockerd for the engine-restart test: no networking of its own (no bridge, iptables, masquerading)."""

    def __init__(self) -> None:
        super().__init__("docker", flags=("--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
                                          "--userland-proxy=false"))

    def load_image(self, image: str = BASE_IMAGE) -> None:
        self.load_images([image])
