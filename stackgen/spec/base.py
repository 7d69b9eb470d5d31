"""The vocabulary every part of the spec shares: the choices (from stackgen.constants and the upstream contracts),
the patterns values must match in full, `FieldError`, `StrictModel` and the small checks several models make."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from stackgen.constants import EDGES, PLATFORMS, TLS_MODES
from stackgen.upstream.contracts import load_contract

SPEC_VERSION = 1

# The choices are written once, in stackgen.constants (the CLI offers the same lists without pydantic).
Edge = Literal[EDGES]  # type: ignore[valid-type]  # caddy, nginx, traefik
TlsMode = Literal[TLS_MODES]  # type: ignore[valid-type]  # certbot-http01, certbot-dns01, edge-acme, internal, files
Platform = Literal[PLATFORMS]  # type: ignore[valid-type]  # linux/amd64, linux/arm64, linux/arm/v7
# Only providers with an official certbot plugin image (certbot/dns-<name>): the list is the
# upstream contract's (stackgen/upstream/contracts/certbot-dns.yaml), so the two cannot drift apart.
DnsProvider = Literal[tuple(p.provider for p in load_contract("certbot-dns").plugins)]  # type: ignore[valid-type]

# Where a stack runs: compose.yaml alone, or also compose.swarm.yaml (stackgen/generate/swarm.py).
TARGETS = ("compose", "swarm")
Target = Literal[TARGETS]  # type: ignore[valid-type]

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# Every pattern below is applied with `fullmatch`, never `match`: a pattern's `$` also matches before a
# trailing newline, and `ops@example.org\n` got through to break settings.js, the Caddyfile and Traefik's
# YAML (found by tests/unit/generate/test_render_hostile.py).
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^(\*\.)?({_LABEL}\.)+{_LABEL}$")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Conservative on purpose: the address reaches shell scripts, a Caddyfile and Traefik's YAML. Letters,
# digits and . _ % + - before the @, a host name after it (quoting guards the scripts too).
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
# https URL without characters that mean something in a shell, a Caddyfile ({placeholders}) or YAML.
_ACME_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+=,-]*)?$")
# Host paths that reach edge configs (Caddyfile, nginx.conf, Traefik YAML) and scripts.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+@-]+$")
_BCRYPT = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([-.][A-Za-z0-9.]+)?$")
# repository[:tag][@sha256:digest]; deliberately conservative.
_IMAGE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
_NPM_PACKAGE = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9.^~<>=*|-]+)?$")
_EDITOR_PATH = re.compile(r"^/([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$")
_TIMEZONE = re.compile(r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
# A path-routed instance's prefix: segments of letters, digits and . _ ~ -, none starting with a dot (so no `.` or
# `..` segment, nothing an edge or a browser would resolve away), no empty segment.
_ROUTE_PATH = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")
_MAX_ROUTE_PATH = 64


class FieldError(ValueError):
    """A cross-field error that knows which field to blame.

    Pydantic reports errors raised in model validators at the model's own
    location; users need the field. `errors.py` reads `loc` back out.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _image(value: str | None) -> str | None:
    if value is not None and not _IMAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not an image reference (name[:tag][@sha256:digest])")
    return value


def _covers(domain: str, name: str) -> bool:
    """True when a certificate for `domain` (a name or `*.` one label) covers `name`."""
    if domain.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == domain[2:]
    return domain == name


def _is_ip_like(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return all(part.isdigit() for part in name.split("."))
