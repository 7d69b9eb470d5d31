#!/usr/bin/env python3
"""Benchmark: `stackgen up` -> first verified HTTPS response, beside a bare `docker compose up --wait`.

Both start from the same state (the stack's containers and networks created,
pebble running, no certificate yet) and stop the clock at the first HTTPS
response from the edge that verifies against pebble's root. Median of RUNS
runs each, printed with the ratio. Needs the engine and the local images
(`make images`). Traffic: loopback and the benchmark's own containers only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stackgen import engine as engines
from stackgen.generate import workflow
from stackgen.generate.passwords import hash_password
from stackgen.live import probes
from stackgen.operate import lifecycle
from stackgen.spec import Stack
from tests import acme
from tests.images.build import pinned
from tests.integration.harness import free_port

RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def first_verified_https(stack: Stack, root: Path, deadline: float) -> None:
    """The clock stops at the editor's page (its own prefix, /editor/ by default): a 200 there is Node-RED answering
    through the edge with a certificate that verifies. `/` is Node-RED's HTTP-in root, a 404 with no flows."""
    editor = stack.node_red.editor_root.rstrip("/") + "/"
    while time.monotonic() < deadline:
        try:
            response = probes.https_request("127.0.0.1", stack.ports.https, stack.domains[0], editor, cafile=str(root), timeout=2)
            if response.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("no verified HTTPS response")


def one_run(engine, workdir: Path, directory: Path, stack: Stack, bare: bool) -> float:
    engines.compose(directory, "down", "--volumes", check=False)
    engines.compose(directory, "create")
    pebble = acme.start(engine, f"{stack.project}-pebble", f"{stack.project}_public", workdir)
    root = workdir / "root.pem"
    root.write_text(acme.issuing_root(pebble))
    try:
        start = time.monotonic()
        if bare:
            subprocess.run(engines.compose_command() + ["-f", str(directory / "compose.yaml"), "up", "-d", "--wait"], check=True, capture_output=True)
        else:
            lifecycle.up(directory, timeout=300)
        first_verified_https(stack, root, start + 300)
        return time.monotonic() - start
    finally:
        pebble.remove(force=True)
        lifecycle.down(directory, volumes=True)  # also removes the host firewall rule `up` inserted


def main() -> int:
    engine = engines.client()
    workdir = Path(tempfile.mkdtemp(prefix="stackgen-bench-"))
    try:
        ca_bundle = acme.prepare(engine, workdir)
        stack = Stack.model_validate(
            {
                "project": f"sgbench-{secrets.token_hex(3)}",
                "domains": ["nodered-bench.stackgen.test"],
                "email": "bench@stackgen.test",
                "tls": {"acme_directory": acme.DIRECTORY_URL, "ca_bundle": str(ca_bundle)},
                "ports": {"bind_address": "127.0.0.1", "http": free_port(), "https": free_port()},
                "images": {"node_red": pinned("node-red"), "edge": pinned("caddy"), "certbot": pinned("certbot")},
                "node_red": {"admin_password_hash": hash_password("bench-password")},
            }
        )
        directory = workdir / "stack"
        workflow.init(directory, stack)
        ours, bare = [], []
        for i in range(RUNS):
            ours.append(one_run(engine, workdir, directory, stack, bare=False))
            bare.append(one_run(engine, workdir, directory, stack, bare=True))
            print(f"run {i + 1}/{RUNS}: stackgen up {ours[-1]:.2f}s   docker compose up --wait {bare[-1]:.2f}s", flush=True)
        m_ours, m_bare = statistics.median(ours), statistics.median(bare)
        print(f"up -> first verified HTTPS (median of {RUNS}): stackgen up {m_ours:.2f}s, "
              f"docker compose up --wait {m_bare:.2f}s, ratio {m_ours / m_bare:.2f}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
