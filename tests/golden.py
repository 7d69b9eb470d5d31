"""The reference stacks: compose/ examples and the edge x TLS-mode golden matrix.

Shared by `scripts/render_examples.py` (writes them) and the tests (compare).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from stackgen.generate.custom_images import check_custom_images
from stackgen.generate.render import render
from stackgen.spec import Stack
from stackgen.stackdir import parse_stack

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "compose"
GOLDEN = ROOT / "tests" / "golden"

# bcrypt of "change-me-please": fixed so that golden output is stable.
EXAMPLE_HASH = "$2b$10$8Rl3dm2WS59eF2aCdMwpQeBH22YmBKPmoeO.UTSxEMBtlgrKOYLfS"

EDGES = ("caddy", "nginx", "traefik")
MODES = ("certbot-http01", "certbot-dns01", "edge-acme", "internal", "files")


def combos() -> list[tuple[str, str]]:
    """Every valid edge x TLS mode (nginx has no ACME client of its own)."""
    return [(e, m) for e in EDGES for m in MODES if not (e == "nginx" and m == "edge-acme")]


def golden_stack(edge: str, mode: str) -> Stack:
    tls: dict = {"mode": mode}
    domains = ["nodered.example.org", "flows.example.org"]
    if mode == "certbot-dns01":
        tls.update(dns_provider="cloudflare", dns_credentials_file="secrets/cloudflare.ini")
        domains = ["*.example.org", "example.org"]
    elif mode == "files":
        tls.update(cert_file="tls/fullchain.pem", key_file="tls/privkey.pem")
    elif mode == "edge-acme":
        tls.update(acme_directory="https://ca.home.arpa/acme/acme/directory", ca_bundle="ca/home-ca.pem")
    return Stack.model_validate(
        {
            "project": f"golden-{edge}-{mode}",
            "domains": domains,
            "email": "ops@example.org",
            "edge": edge,
            "tls": tls,
            "node_red": {"admin_password_hash": EXAMPLE_HASH},
        }
    )


def example_specs() -> list[Path]:
    return sorted(EXAMPLES.glob("*.stack.yaml"))


def example_stack(path: Path) -> Stack:
    """A reference stack, held to what `generate` demands of a user's (an example that declares extra nodes but would
    run an image without them is refused here as `generate` refuses it: the examples are rendered without the workflow)."""
    stack = parse_stack(path.read_text(), path)
    check_custom_images(stack, example_dir(path), lines=False)
    return stack


def example_dir(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".stack.yaml"))


def golden_dir(edge: str, mode: str) -> Path:
    return GOLDEN / f"{edge}-{mode}"


def rendered_tree(stack: Stack) -> dict[str, bytes]:
    return {f.path: f.content for f in render(stack)}


def on_disk(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def write_tree(directory: Path, stack: Stack) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    for rendered in render(stack):
        target = directory / rendered.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rendered.content)
        target.chmod(rendered.mode)
