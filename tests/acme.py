"""Pebble, Let's Encrypt's ACME test CA, as a private CA for a stack: shared by the tests and `make demo`.

Pebble joins the stack's `public` network as `pebble` (where certbot looks for
https://pebble:14000/dir and where the edge answers for the stack's domains).
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

PEBBLE_IMAGE = "stackgen-local/pebble:latest"
DIRECTORY_URL = "https://pebble:14000/dir"
EDGE_HTTP_PORT_INSIDE = 8080  # HTTP-01 is validated against the edge container itself


def copy_out(container, path: str) -> bytes:
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        return archive.extractfile(archive.getmembers()[0]).read()


def prepare(engine, workdir: Path) -> Path:
    """Write pebble's TLS CA (what certbot must trust) and a config validating on the edge's port. Returns the CA path."""
    workdir.mkdir(parents=True, exist_ok=True)
    probe = engine.containers.create(PEBBLE_IMAGE, entrypoint=["true"], network_mode="none")
    try:
        (workdir / "pebble-tls-ca.pem").write_bytes(copy_out(probe, "/etc/pebble/ca.pem"))
        config = json.loads(copy_out(probe, "/etc/pebble/pebble-config.json"))
    finally:
        probe.remove(force=True)
    config["pebble"]["httpPort"] = EDGE_HTTP_PORT_INSIDE
    (workdir / "pebble.json").write_text(json.dumps(config))
    return workdir / "pebble-tls-ca.pem"


def start(engine, name: str, network: str, workdir: Path, labels: dict[str, str] | None = None):
    """Run pebble on `network` with the alias `pebble` (the network must exist: `docker compose create` first)."""
    pebble = engine.containers.create(
        PEBBLE_IMAGE,
        name=name,
        entrypoint=["pebble", "-config", "/etc/stackgen-test/pebble.json"],
        volumes={str(workdir / "pebble.json"): {"bind": "/etc/stackgen-test/pebble.json", "mode": "ro"}},
        environment={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        labels=labels or {},
        network=network,
        networking_config={network: engine.api.create_endpoint_config(aliases=["pebble"])},
    )
    pebble.start()
    return pebble


def issuing_root(pebble, attempts: int = 30) -> str:
    """The root that signs pebble's certificates (new at every pebble start): what a browser must trust."""
    for _ in range(attempts):
        result = pebble.exec_run(["wget", "-qO-", "--ca-certificate=/etc/pebble/ca.pem", "https://localhost:15000/roots/0"])
        text = result.output.decode()
        if result.exit_code == 0 and "BEGIN CERTIFICATE" in text:
            return text
        time.sleep(0.5)
    raise RuntimeError("pebble's management API did not answer with its root")
