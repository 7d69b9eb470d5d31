"""A real stack under test: `stackgen init` (+ any `stackgen instance add`) + `stackgen up` against pebble, on
loopback ports.

The compose file under test is exactly what users get except for image names
(the local images) and the ACME directory (pebble, a private CA: a real
feature of the spec). Pebble joins the stack's `public` network as `pebble`,
before `stackgen up`, so certbot's first attempt already reaches it.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from stackgen import engine as engines
from stackgen.cli.app import app
from stackgen.live import probes
from tests import acme
from tests.images.build import pinned

PASSWORD = "integration-admin-pw"
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveStack:
    """Handles a test needs on a running stack."""

    engine: object
    directory: Path
    project: str
    edge: str
    domain: str
    http_port: int
    https_port: int
    pebble: object
    issuing_root: Path = field(default=None)  # type: ignore[assignment]
    admin_root: str = ""  # node_red.editor.path, when a test moves the editor
    added: list[str] = field(default_factory=list)  # the output of each `stackgen instance add` start_stack ran
    bring_up: float = 0.0  # seconds from compose create to every service healthy (start_stack)

    def container(self, service: str):
        for container in engines.project_containers(self.engine, self.project):
            if container.labels.get("com.docker.compose.service") == service:
                container.reload()
                return container
        raise LookupError(service)

    def exec(self, service: str, command: list[str], user: str | None = None) -> tuple[int, str]:
        result = self.container(service).exec_run(command, user=user or "")
        return result.exit_code, result.output.decode("utf-8", "replace")

    def https(self, path: str = "/", **kwargs) -> probes.Response:
        return probes.https_request("127.0.0.1", self.https_port, self.domain, path, cafile=str(self.issuing_root), **kwargs)

    def http(self, path: str = "/") -> probes.Response:
        return probes.http_request("127.0.0.1", self.http_port, self.domain, path)

    def network(self, short: str):
        return self.engine.networks.get(f"{self.project}_{short}")

    def address(self, service: str, network_short: str) -> str:
        settings = self.container(service).attrs["NetworkSettings"]["Networks"]
        return settings[f"{self.project}_{network_short}"]["IPAddress"]

    def subnet(self, network_short: str) -> str:
        return self.network(network_short).attrs["IPAM"]["Config"][0]["Subnet"]

    def refresh_issuing_root(self) -> None:
        self.issuing_root.write_text(acme.issuing_root(self.pebble))

    def token(self) -> str:
        body = f"client_id=node-red-admin&grant_type=password&scope=*&username=admin&password={PASSWORD}".encode()
        response = self.https(f"{self.admin_root}/auth/token", method="POST", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 200, response.body
        return json.loads(response.body)["access_token"]

    def up(self, timeout: int = 240):
        result = runner.invoke(app, ["up", str(self.directory), "--timeout", str(timeout)])
        assert result.exit_code == 0, result.output
        return result

    def down(self, *extra: str):
        result = runner.invoke(app, ["down", str(self.directory), *extra])
        assert result.exit_code == 0, result.output
        return result


def password_file(workdir: Path, name: str, password: str) -> Path:
    """`password` in a file of `workdir` (made if missing), for --admin-password-file."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(password + "\n")
    return path


def start_stack(engine, workdir: Path, edge: str, *, project_prefix: str = "sgtest", domain: str | None = None,
                editor_path: str | None = "/", instances: Sequence[Sequence[str]] = (),
                stack_class: type[LiveStack] = LiveStack) -> LiveStack:
    """`stackgen init` (instance node-red on `domain`, password PASSWORD), then `stackgen instance add DIR *args` for each
    argument list of `instances` (each must succeed; its output is kept in `added`), then pebble and `stackgen up`.
    `editor_path` None leaves init's default (/editor). `bring_up` is compose create to every service healthy."""
    project = f"{project_prefix}-{edge}-{secrets.token_hex(3)}"
    domain = domain or f"nodered-{edge}.stackgen.test"
    http_port, https_port = free_port(), free_port()
    pw = password_file(workdir, "pw.txt", PASSWORD)
    ca_bundle = acme.prepare(engine, workdir)
    directory = workdir / "stack"
    result = runner.invoke(
        app,
        [
            "init", str(directory), "--non-interactive", "--project", project, "--domain", domain,
            "--email", "ops@stackgen.test", "--edge", edge, "--admin-password-file", str(pw),
            "--acme-directory", acme.DIRECTORY_URL, "--ca-bundle", str(ca_bundle),
            "--bind-address", "127.0.0.1", "--http-port", str(http_port), "--https-port", str(https_port),
            "--image-node-red", pinned("node-red"), "--image-edge", pinned(edge), "--image-certbot", pinned("certbot"),
            # The editor where these tests address it (the default moved to /editor); the host's probes arrive from
            # the published port's bridge gateway, a private address inside node_red.editor.allow's default.
            *(["--editor-path", editor_path] if editor_path is not None else []),
        ],
    )
    assert result.exit_code == 0, result.output
    added = []
    for args in instances:
        step = runner.invoke(app, ["instance", "add", str(directory), *args])
        assert step.exit_code == 0, step.output
        added.append(step.output)
    began = time.monotonic()
    engines.compose(directory, "create")  # networks exist now; pebble joins `public` before anything starts
    pebble = acme.start(engine, f"{project}-pebble", f"{project}_public", workdir, labels={"org.stackgen.test": project})
    stack = stack_class(engine, directory, project, edge, domain, http_port, https_port, pebble, workdir / "pebble-root.pem")
    stack.added = added
    try:
        stack.refresh_issuing_root()
        stack.up()
    except BaseException:
        stop_stack(stack)
        raise
    stack.bring_up = time.monotonic() - began
    return stack


def stop_stack(stack: LiveStack) -> None:
    try:
        stack.pebble.remove(force=True)  # first: an attached pebble would keep `public` from being removed
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass
    runner.invoke(app, ["down", str(stack.directory), "--volumes"])
    engines.compose(stack.directory, "down", "--volumes", "--remove-orphans", check=False)
