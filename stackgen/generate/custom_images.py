"""A Node-RED that declares extra nodes runs an image built with them, or the stack is not written.

Why: a hardened Node-RED is read-only and cannot install nodes at run time, so `node_red.extra_nodes`
(`instances[].extra_nodes`) reach it only through the image `stackgen build` makes. Rendering such a
Node-RED with the official image would start it without its nodes, and every flow using them breaks
at run time with nothing said when the files were written. So `generate` refuses, naming the field
and its line, when the image the stack would run cannot hold what the spec declares:

* no image set (never built, or built with `--no-write`): the official image has none of the nodes;
* the official Node-RED image set (e.g. pinned by `images check --pin` before any build);
* the nodes changed since the last build: the build context's `package.json` (what the image was
  built from) lists other packages.

An image of the user's own (any other reference) is trusted: stackgen cannot look inside it here
(generate never reaches the engine). This module is the one place that says where an instance's
build context is and how an `extra_nodes` entry reads as an npm dependency, for `generate` and
`stackgen.images` (which builds there) alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stackgen.errors import StackgenError, dotted, line_of
from stackgen.stackdir import SPEC_NAME
from stackgen.upstream.contracts import load_contract


def npm_dependency(spec: str) -> tuple[str, str]:
    """`name` or `name@range` (scoped names too) -> (name, range); no range means npm's `latest`."""
    at = spec.rfind("@")
    if at > 0:
        return spec[:at], spec[at + 1 :]
    return spec, "latest"


def needs_build(node_red: Any) -> bool:
    """True when a Node-RED's image must be built: it declares extra nodes, or a base image of its own."""
    return bool(node_red.extra_nodes) or node_red.base_image is not None


def context_name(node_red: Any) -> str:
    """The build context directory (under DIR) of a Node-RED: its service's configuration directory, so a version 1
    stack keeps `DIR/node-red/` and each instance of several has its own (`DIR/node-red-<name>/`)."""
    return str(node_red.service)


def image_fields(stack: Any) -> list[tuple[tuple[str | int, ...], str, Any]]:
    """(where its settings are, the field naming its image, the Node-RED) for each Node-RED of the stack."""
    if stack.instances is not None:
        return [(("instances", i), f"instances[{i}].image", inst) for i, inst in enumerate(stack.instances)]
    return [(("node_red",), "images.node_red", stack.node_reds[0])]


def official_image(image: str) -> bool:
    """True when `image` is the official Node-RED image (any tag or digest): one that holds no extra nodes."""
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        repository = repository.removeprefix(prefix)
    return repository == load_contract("node-red").image


def _built_from(context: Path) -> dict[str, str] | None:
    """The dependencies of the last build in `context` (its package.json), or None when there was none."""
    try:
        return dict(json.loads((context / "package.json").read_text())["dependencies"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_custom_images(stack: Any, directory: Path, lines: bool = True) -> None:
    """Refuse a stack whose Node-RED would run without the nodes (or base) it declares; see the module's docstring.

    `lines`: name the line in DIR/stack.yaml (False when `stack` is not what the file holds, e.g. an edit not yet written)."""
    if not any(needs_build(node_red) for _, _, node_red in image_fields(stack)):
        return  # the common case: nothing declared, nothing read
    path = directory / SPEC_NAME
    document: Any = None
    if lines and path.is_file():
        try:
            from ruamel.yaml import YAML

            document = YAML(typ="rt").load(path.read_text())
        except Exception:  # noqa: BLE001 - line numbers are a courtesy; the spec was validated already
            document = None

    def at(loc: tuple[str | int, ...]) -> str:
        line = line_of(document, loc) if document is not None else None
        return f"{path}:{line}" if line else str(path)

    for where, field, node_red in image_fields(stack):
        if not needs_build(node_red):
            continue
        declared = (*where, "extra_nodes") if node_red.extra_nodes else (*where, "base_image")
        what = (f"{dotted(declared)} declares {', '.join(node_red.extra_nodes)}" if node_red.extra_nodes
                else f"{dotted(declared)} is {node_red.base_image}")
        build = f"`stackgen build {directory}`" + (f" (or --instance {node_red.name})" if stack.instances is not None else "")
        image = node_red.image
        if image is None:
            raise StackgenError(f"{at(declared)}: {what}, but {field} is unset: the official image would run without them "
                                f"(a read-only Node-RED cannot install nodes). Run {build}, which sets {field}, then generate again")
        if official_image(image):
            raise StackgenError(f"{at(declared)}: {what}, but {field} is the official image {image}, which has none of them. "
                                f"Run {build}, which sets {field} to the image it builds, then generate again")
        built = _built_from(directory / context_name(node_red))
        wanted = dict(npm_dependency(n) for n in node_red.extra_nodes)
        if built is not None and built != wanted:
            raise StackgenError(f"{at(declared)}: {what}, but {field} ({image}) was built from "
                                f"{context_name(node_red)}/package.json, which lists {', '.join(sorted(built)) or 'no nodes'}: "
                                f"extra_nodes changed since the last build. Run {build} again, then generate")


def awaits_build(node_red: Any) -> bool:
    """True when a Node-RED declares what only a build gives it but runs no built image yet (unset, or the official one)."""
    return needs_build(node_red) and (node_red.image is None or official_image(node_red.image))
