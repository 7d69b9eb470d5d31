"""Secrets in environment variables: visible in `docker inspect`, to every process, in crash dumps.

`*_FILE` variables that point at a file (`/run/secrets/...`) are the *fix*, not
the problem: they carry a path, never the secret, and are never flagged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology
from stackgen.verify.rules.base import Rule

_SECRET_WORDS = {"PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL", "CREDENTIALS", "APIKEY"}
_SECRET_PAIRS = {
    ("API", "KEY"),
    ("ACCESS", "KEY"),
    ("SECRET", "KEY"),
    ("PRIVATE", "KEY"),
    ("AUTH", "KEY"),
    ("ENCRYPTION", "KEY"),
    ("MASTER", "KEY"),
    ("CLIENT", "SECRET"),
    ("DB", "PASS"),
    ("ROOT", "PASS"),
    ("ADMIN", "PASS"),
}
# Suffixes that describe a secret without containing it.
_META_SUFFIXES = {
    "FILE",
    "PATH",
    "DIR",
    "LENGTH",
    "LEN",
    "MIN",
    "MAX",
    "POLICY",
    "ENABLED",
    "ENABLE",
    "REQUIRED",
    "TTL",
    "EXPIRY",
    "EXPIRES",
    "TIMEOUT",
    "ALGORITHM",
    "TYPE",
    "HASH",
    "URL",
    "URI",
    "ENDPOINT",
    "HEADER",
    "NAME",
    "USER",
    "USERNAME",
    "ID",
}
_NOT_SECRET_VALUES = {"", "true", "false", "yes", "no", "on", "off", "0", "1", "none", "null", "changeme?"}


def _words(key: str) -> list[str]:
    """`dbPassword_FILE` -> ["DB", "PASSWORD", "FILE"] (split on non-alphanumerics and camelCase)."""
    words: list[str] = []
    current = ""
    prev = ""
    for ch in key:
        if not ch.isalnum():
            if current:
                words.append(current)
            current = ""
        elif ch.isupper() and prev.islower() and current:
            words.append(current)
            current = ch
        else:
            current += ch
        prev = ch
    if current:
        words.append(current)
    return [w.upper() for w in words]


@functools.lru_cache(maxsize=4096)
def secret_key(key: str) -> bool:
    """Does the variable's name say it holds a credential?"""
    words = _words(key)
    if not words or words[-1] in _META_SUFFIXES or key.upper() == "PWD":
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    if any((a, b) in _SECRET_PAIRS for a, b in zip(words, words[1:], strict=False)):
        return True
    return words[-1] in ("PASS", "PWD", "PW")


def literal_secret(value: str | None) -> bool:
    """A value that could be the secret itself (not a path to it, not a flag)."""
    if value is None:
        return False
    text = value.strip()
    if text.lower() in _NOT_SECRET_VALUES:
        return False
    return not text.startswith(("/run/secrets/", "/var/run/secrets/", "file:"))


ENV_CREDENTIALS = Rule(
    id="SG026",
    name="env-credentials",
    severity=Severity.HIGH,
    title="Credential in an environment variable",
    why="""A password, token or key in `environment:` (or an `env_file`) is stored in the compose
    file or next to it, shown by `docker inspect`, inherited by every child process and often
    logged. Compose secrets are mounted as files under /run/secrets, readable only inside the
    container; most images accept a `*_FILE` variable pointing at one.""",
    bad="""
        services:
          db:
            image: postgres:16
            environment:
              POSTGRES_PASSWORD: hunter2
    """,
    good="""
        services:
          db:
            image: postgres:16
            environment:
              POSTGRES_PASSWORD_FILE: /run/secrets/db_password
            secrets: [db_password]
        secrets:
          db_password: {file: ./secrets/db_password}
    """,
    fix="Move the value into a compose secret (a file, mode 0600, outside version control) and "
    "point the service at /run/secrets/NAME, via `*_FILE` where the image supports it.",
    compose_lint=("CL-0020",),
)


@ENV_CREDENTIALS.per_service
def _env_credentials(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for key, value in svc.environment.items():
        if secret_key(key) and literal_secret(value):
            yield f"environment variable {key} holds a credential", svc.env_src.get(key) or svc.at("environment")


URL_CREDENTIALS = Rule(
    id="SG027",
    name="url-credentials",
    severity=Severity.HIGH,
    title="Credential inside a connection string",
    why="""`scheme://user:password@host` in an environment value carries the password as surely as a
    `*_PASSWORD` variable, under a name no one thinks of as secret (`DATABASE_URL`, `MQTT_URL`).""",
    bad="""
        services:
          app:
            image: alpine:3.20
            environment:
              DATABASE_URL: postgres://app:hunter2@db:5432/app
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            environment:
              DATABASE_URL_FILE: /run/secrets/database_url
            secrets: [database_url]
        secrets:
          database_url: {file: ./secrets/database_url}
    """,
    fix="Keep the whole URL in a compose secret, or pass the password separately through a secret file.",
    compose_lint=("CL-0021",),
)

# The scheme is bounded: with `*`, a long run of letters without `://` (a 100 KB variable) made search()
# quadratic, seconds per value (found by tests/unit/composefile/test_verify_fuzz.py's .env mutants).
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]{0,63}://([^/\s:@]*):([^/\s@]+)@")


@URL_CREDENTIALS.per_service
def _url_credentials(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for key, value in svc.environment.items():
        if not value or secret_key(key):
            continue  # SG026 already reports credential-named variables
        m = _URL.search(value)
        if m and m.group(2) and not m.group(2).startswith("$"):
            yield (
                f"environment variable {key} embeds a password in a URL",
                svc.env_src.get(key) or svc.at("environment"),
            )


RULES = (ENV_CREDENTIALS, URL_CREDENTIALS)
