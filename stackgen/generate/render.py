"""`Stack` -> every file of a stack directory.

Why built this way: the compose document is built as plain data and dumped by
ruamel.yaml (so its structure can be reasoned about and tested as data), while
the configuration files of other programs (Caddy, NGINX, Traefik, Node-RED,
certbot) come from jinja2 templates in `stackgen/generate/blueprints/`, shipped inside
the package. Rendering is a pure function of the `Stack`: same spec, same bytes.

The parts, each its own module: `context` (what is derived from the Stack once), `edges` (one
record per edge), `templates` (the blueprints and the filters values pass through), `compose`
(compose.yaml as data). This module joins them, and keeps their names importable from here.
"""

from __future__ import annotations

from stackgen.constants import (  # noqa: F401 - importable from render, as before the split
    CERTS_GID,
    HTTP_INSIDE,
    HTTPS_INSIDE,
    INPUTS_LABEL,
    NODE_RED_PORT,
    NODE_RED_UID,
    ROLE_LABEL,
    UPSTREAM_LABEL,
)
from stackgen.generate.compose import (  # noqa: F401
    HEADER,
    bind,
    certbot_service,
    compose_document,
    dump_compose,
    edge_service,
    hardening,
    host_path,
    node_red_service,
    stamp_inputs,
    volume,
)
from stackgen.generate.context import (  # noqa: F401
    CERTBOT_LOG_BACKUPS,
    CERTBOT_UID,
    CPU_INDEX,
    EDGE_STOP_GRACE_SECONDS,
    EDGE_UID,
    PLATFORM_SIZING,
    STANDALONE_PORT,
    TLS_FILES_DIR,
    Context,
    certbot_image,
    default_images,
    node_red_tag,
    version_notes,
)
from stackgen.generate.files import RenderedFile
from stackgen.generate.templates import (  # noqa: F401
    config_files,
    config_token,
    shell_quote,
    shell_word,
    shell_words,
    template,
    templates,
)
from stackgen.spec import Stack


def render(stack: Stack) -> list[RenderedFile]:
    """Every generated file of the stack directory (secrets excluded: they are made once, never rendered)."""
    ctx = Context(stack)
    files = config_files(ctx)
    files.append(RenderedFile("compose.yaml", dump_compose(compose_document(ctx, files))))
    return sorted(files, key=lambda f: f.path)

