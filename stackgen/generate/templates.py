"""The blueprints (jinja2 templates shipped in the package) and the configuration files rendered from them.

Values from stack.yaml reach six languages here; the filters below are the only way in (`| sh`, `| word`,
`| words` in shell, `| token` in the Caddyfile, nginx.conf and Traefik's YAML): a value never becomes syntax."""

from __future__ import annotations

import re
import shlex
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from stackgen.constants import CLIENT_ADDRESS_HEADER
from stackgen.generate import instances
from stackgen.generate.context import Context
from stackgen.generate.files import RenderedFile
from stackgen.generate.headers import quoted

# `word` is for comments and double-quoted strings, where `*` (a wildcard domain) is literal.
_SHELL_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./*-]+$")


def shell_quote(value: Any) -> str:
    """`| sh` in shell blueprints: the value as exactly one word, whatever it holds (safe words unchanged)."""
    return shlex.quote(str(value))


def shell_word(value: Any) -> str:
    """`| word` in shell blueprints, where quoting would be wrong (comments, inside double quotes):
    the value must be a plain word already, else rendering stops (the spec let an unsafe value through)."""
    text = str(value)
    if not _SHELL_WORD.match(text):
        raise ValueError(f"unsafe value for a shell script: {text!r}")
    return text


def shell_words(values: Any) -> str:
    """`| words`: a list of plain words, space-separated (for messages inside double quotes)."""
    return " ".join(shell_word(v) for v in values)


# One token, taken literally, in a Caddyfile, nginx.conf and Traefik's YAML (plain or single-quoted): no white
# space, quotes, backticks, backslash, `;`, `#`, `$`, braces (Caddy placeholders, nginx blocks, Go templates).
_CONFIG_TOKEN = re.compile(r"[A-Za-z0-9_@%+=:,./*~-]*")


def config_token(value: Any) -> str:
    """`| token` in the Caddyfile, nginx and Traefik blueprints: the spec admits only plain values, and this
    stops rendering if one that is not got through (the languages' quoting rules differ; none is needed)."""
    text = str(value)
    if not _CONFIG_TOKEN.fullmatch(text):
        raise ValueError(f"unsafe value for a configuration file: {text!r}")
    return text


@cache
def templates() -> jinja2.Environment:
    """The blueprints (shipped in the package); strict: a missing value is an error, not an empty string.

    Shell blueprints (`*.sh.j2`) interpolate only through `| sh`, `| word` or `| words`, the Caddyfile, nginx
    and Traefik blueprints through `| token` or `| tojson`, settings.js through `| tojson` (a unit test holds
    every `{{ }}` to that): a value from stack.yaml never becomes syntax."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("stackgen.generate", "blueprints"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    environment.filters.update(sh=shell_quote, word=shell_word, words=shell_words, token=config_token, quoted=quoted)
    return environment


def template(name: str, ctx: Context, **extra: Any) -> bytes:
    text = templates().get_template(name).render(s=ctx.s, ctx=ctx, **extra)
    return text.encode()


def static_blueprint(name: str) -> bytes:
    """A blueprint shipped as it is written (no values: `node-red/shield.js`, configured by settings.js)."""
    return (resources.files("stackgen.generate") / "blueprints" / name).read_bytes()


def config_files(ctx: Context) -> list[RenderedFile]:
    """The files the services read (everything rendered except compose.yaml itself)."""
    files = [
        RenderedFile("node-red/settings.js", template("node-red/settings.js.j2", ctx, client_header=CLIENT_ADDRESS_HEADER)),
        RenderedFile("node-red/shield.js", static_blueprint("node-red/shield.js")),
        RenderedFile("node-red/csp.js", static_blueprint("node-red/csp.js")),
        RenderedFile("node-red/csp-shim.js", static_blueprint("node-red/csp-shim.js")),
        RenderedFile("edge/entrypoint.sh", template("edge/entrypoint.sh.j2", ctx), 0o755),
        RenderedFile("README.md", template("stack/README.md.j2", ctx)),
    ]
    for config in ctx.edge_entry.configs:
        flags = {} if config.bootstrap is None else {"bootstrap": config.bootstrap}
        files.append(RenderedFile(f"edge/{config.name}", template(config.template, ctx, **flags)))
    if ctx.sidecar:
        files.append(RenderedFile("certbot/run.sh", template("certbot/run.sh.j2", ctx), 0o755))
        files.append(RenderedFile("certbot/deploy-hook.sh", template("certbot/deploy-hook.sh.j2", ctx), 0o755))
        if ctx.local_ca:
            files.append(RenderedFile("certbot/local_ca.py", template("certbot/local_ca.py.j2", ctx)))
    if ctx.multi:  # several Node-RED instances: each renders its node-red files into its own directory
        return instances.instance_files(ctx, files, config_files)
    return files

