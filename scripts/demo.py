#!/usr/bin/env python3
"""`make demo`: the reference Caddy stack, running on this machine, with a local ACME CA.

Renders into .demo/ (git-ignored), compose project `stackgen-demo`, domain
nodered.localhost, the edge on 127.0.0.1. No registry is needed: the images are
the local ones (tests/images), and pebble plays Let's Encrypt. Running it again
while the demo is up is harmless; `make demo-down` removes everything of it.
"""

from __future__ import annotations

import secrets
import socket
import sys
from pathlib import Path

from stackgen import engine as engines
from stackgen import stackdir
from stackgen.errors import StackgenError
from stackgen.generate import workflow
from stackgen.generate.passwords import hash_password
from stackgen.live import probes
from stackgen.live.checks import verify_live
from stackgen.operate import lifecycle
from stackgen.spec import Stack
from tests import acme
from tests.images.build import pinned

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
PROJECT = "stackgen-demo"
DOMAIN = "nodered.localhost"
PEBBLE = f"{PROJECT}-pebble"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick(preferred: int) -> int:
    if port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_stack(engine) -> None:
    ca_bundle = acme.prepare(engine, DEMO)
    password = secrets.token_urlsafe(12)
    stack = Stack.model_validate(
        {
            "project": PROJECT,
            "domains": [DOMAIN],
            "email": "demo@stackgen.test",
            "edge": "caddy",
            "tls": {"mode": "certbot-http01", "acme_directory": acme.DIRECTORY_URL, "ca_bundle": str(ca_bundle)},
            "ports": {"bind_address": "127.0.0.1", "http": pick(8080), "https": pick(8443)},
            "images": {"node_red": pinned("node-red"), "edge": pinned("caddy"), "certbot": pinned("certbot")},
            "node_red": {"admin_password_hash": hash_password(password)},
        }
    )
    workflow.init(DEMO / "stack", stack)
    password_file = DEMO / "admin-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)


def pebble_container(engine):
    matches = engine.containers.list(all=True, filters={"name": f"^{PEBBLE}$"})
    return matches[0] if matches else None


def up() -> int:
    engine = engines.client()
    directory = DEMO / "stack"
    if not (directory / "stack.yaml").exists():
        create_stack(engine)
    engines.compose(directory, "create")
    public = f"{PROJECT}_public"
    pebble = pebble_container(engine)
    if pebble is None:
        pebble = acme.start(engine, PEBBLE, public, DEMO, labels={"org.stackgen.demo": PROJECT})
    else:
        if pebble.status != "running":
            pebble.start()
        pebble.reload()
        if public not in pebble.attrs["NetworkSettings"]["Networks"]:
            engine.networks.get(public).connect(pebble, aliases=["pebble"])
    root = DEMO / "ca.pem"
    if not root.exists():
        root.write_text(acme.issuing_root(pebble))
    try:
        result = lifecycle.up(directory, timeout=300)
    except lifecycle.StackFailed as exc:
        print(exc.logs, file=sys.stderr)
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    stack = stackdir.load_stack(directory)
    editor = stack.node_red.editor.path.rstrip("/") + "/"  # the editor's own prefix (default /editor/)
    response = probes.https_request("127.0.0.1", stack.ports.https, DOMAIN, editor, cafile=str(root))
    # The certificate is issued: the local CA leaves the project's network, so that the stack on it is
    # exactly what compose.yaml declares (a running `verify --live` reports any other container as SG201).
    # A later `make demo` reconnects it (for a new certificate); renewal is 60 days away.
    engine.networks.get(public).disconnect(pebble)
    live = verify_live(engine, directory=directory, ca_file=str(root))
    active = [f for f in live.findings if not f.suppressed]
    print()
    print(f"stackgen demo is up ({result.seconds:.0f}s): verified HTTPS {response.status}, "
          f"certificate for {', '.join(response.names)} (serial {response.serial})")
    print(f"  editor:     https://{DOMAIN}:{stack.ports.https}{editor}   (HTTP on :{stack.ports.http} redirects; "
          f"from {', '.join(stack.node_red.editor.allow)} only)")
    print(f"  log in:     user admin, password in {DEMO / 'admin-password'}")
    shield = stack.node_red.login_shield
    print(f"  shield:     {'on' if shield.enabled else 'OFF'}: {shield.attempts} failed logins from one address within "
          f"{shield.window_seconds // 60} min -> 429 for {shield.ban_seconds // 60} min (docs/shield.md)")
    print(f"  trust CA:   {root}  (the local ACME CA that issued the certificate; import it in your browser)")
    print(f"  try:        curl --cacert {root} https://{DOMAIN}:{stack.ports.https}{editor}")
    print(f"  verify:     .venv/bin/stackgen verify {directory / 'compose.yaml'}")
    print(f"  live:       .venv/bin/stackgen verify --live {directory} --ca-file {root}")
    print(f"              (just ran: {len(active)} finding(s), {len(live.matrix)} reachability cells, exit {live.exit_code})")
    for finding in active:
        print(f"              {finding.rule} {finding.service}: {finding.message}", file=sys.stderr)
    print("  remove:     make demo-down")
    return live.exit_code


def down() -> int:
    try:
        engine = engines.client()
    except StackgenError as exc:
        print(f"demo-down: {exc}", file=sys.stderr)
        return 1
    pebble = pebble_container(engine)
    if pebble is not None:
        pebble.remove(force=True)
    directory = DEMO / "stack"
    if (directory / "stack.yaml").exists():
        lifecycle.down(directory, volumes=True)
    import shutil

    shutil.rmtree(DEMO, ignore_errors=True)
    print("demo removed (containers, networks, volumes, .demo/)")
    return 0


if __name__ == "__main__":
    sys.exit(down() if sys.argv[1:] == ["down"] else up())
