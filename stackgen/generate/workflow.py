"""A stack directory written from its spec: `init` (stack.yaml, then everything) and `generate`
(read the spec -> validate -> render -> plan -> write safely; hand edits stop it, or are backed up).

Why here and not in the CLI or in `stackdir`: `init`, `generate`, `restore` and the tests all need
it; the CLI only parses and prints, and `stackdir` (vocabulary, below `generate/`) only reads.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from stackgen.constants import NODE_RED_UID
from stackgen.errors import StackgenError
from stackgen.generate import files
from stackgen.generate.context import CERTBOT_UID
from stackgen.generate.custom_images import check_custom_images
from stackgen.generate.render import render
from stackgen.spec import NodeRed, Stack
from stackgen.stackdir import SPEC_NAME, dump_stack, load_stack


@dataclass
class GenerateResult:
    """What `generate` did: the plan it carried out, backups it made, warnings to show."""

    plan: files.Plan
    backups: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    secrets_created: list[Path] = field(default_factory=list)


def referenced_files(stack: Stack) -> dict[str, str]:
    """Files the spec points at that must exist before rendering, by field."""
    found = {}
    for name in ("ca_bundle", "dns_credentials_file", "cert_file", "key_file"):
        value = getattr(stack.tls, name)
        if value:
            found[f"tls.{name}"] = value
    return found


def check_references(stack: Stack, directory: Path) -> None:
    for field_name, value in referenced_files(stack).items():
        path = Path(value) if value.startswith("/") else directory / value
        if not path.is_file():
            raise StackgenError(f"{directory / SPEC_NAME}: {field_name}: file not found: {path}")


def generate(directory: Path, force: bool = False, stack: Stack | None = None, target: str | None = None) -> GenerateResult:
    """Render every file from `stack.yaml` and write what changed. Hand edits stop it (or are backed up with force).

    `target`: the spec's `target` for this run (swarm: compose.swarm.yaml too). A compose.swarm.yaml written by an
    earlier run and no longer asked for is removed like any file no longer rendered (kept if edited by hand), so no
    stack file outlives the spec it was made from.
    """
    from_file = stack is None
    stack = stack or load_stack(directory)
    check_references(stack, directory)
    check_custom_images(stack, directory, lines=from_file)  # declared extra nodes never silently missing at run time
    rendered = render(stack)
    swarm_warnings: list[str] = []
    if (target or stack.target) == "swarm":
        rendered, swarm_warnings = with_swarm_file(stack, directory, rendered)
    plan = files.plan(directory, rendered)
    if plan.conflicts and not force:
        raise files.HandEditError(plan)
    result = GenerateResult(plan, warnings=swarm_warnings)
    for where, instance in _credential_fields(stack):  # each Node-RED its own secret, made once and never overwritten
        secret_path = _in(directory, instance.credential_secret_file)
        try:
            created, warning = files.ensure_secret(secret_path, lambda: secrets.token_hex(32).encode() + b"\n", NODE_RED_UID)
        except OSError as exc:
            raise StackgenError(f"{secret_path}: {where}: cannot write the secret ({exc.strerror})") from None
        if created:
            result.secrets_created.append(secret_path)
        if warning:
            result.warnings.append(warning)
    if stack.tls.mode == "certbot-dns01" and stack.tls.dns_credentials_file:
        # certbot runs as uid 0 without capabilities (no CAP_DAC_OVERRIDE): like any other user, it
        # reads a 0600 file only if it owns it. Compose cannot set a file secret's owner.
        dns_path = _in(directory, stack.tls.dns_credentials_file)
        try:
            _, warning = files.ensure_secret(dns_path, _must_exist, CERTBOT_UID)
        except OSError as exc:
            raise StackgenError(f"{dns_path}: tls.dns_credentials_file: cannot secure the DNS credentials ({exc.strerror})") from None
        if warning:
            result.warnings.append(warning)
    result.backups = files.apply(plan, rendered, force=force)
    return result


def with_swarm_file(stack: Stack, directory: Path, rendered: list[files.RenderedFile]) -> tuple[list[files.RenderedFile], list[str]]:
    """`rendered` plus compose.swarm.yaml (generate/swarm.py), transformed from the rendered compose.yaml.

    The CA bundle the spec names is read here (it becomes a swarm config, named by its content); secrets are
    never read: they stay file secrets."""
    from stackgen.generate import swarm

    known = list(rendered)
    if stack.tls.ca_bundle:
        path = _in(directory, stack.tls.ca_bundle)
        try:
            known.append(files.RenderedFile(stack.tls.ca_bundle, path.read_bytes()))
        except OSError as exc:
            raise StackgenError(f"{path}: tls.ca_bundle: cannot read ({exc.strerror})") from None
    compose_yaml = next(f.content for f in rendered if f.path == "compose.yaml")
    swarm_file, warnings = swarm.swarm_file(compose_yaml, known, encrypted=stack.encrypted_overlays)
    return sorted([*rendered, swarm_file], key=lambda f: f.path), warnings


def _credential_fields(stack: Stack) -> list[tuple[str, NodeRed]]:
    """(the field that names it, the settings) of each Node-RED's credential secret."""
    if stack.instances is None:
        assert stack.node_red is not None
        return [("node_red.credential_secret_file", stack.node_red)]
    return [(f"instances[{i}].credential_secret_file", inst) for i, inst in enumerate(stack.instances)]


def _must_exist() -> bytes:
    raise FileNotFoundError("checked by check_references")  # pragma: no cover - check_references ran first


def _in(directory: Path, value: str) -> Path:
    return Path(value) if value.startswith("/") else directory / value


def ensure_writable_dir(directory: Path) -> None:
    """Fail before writing anything when DIR (or the parent that would hold it) is not writable."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise StackgenError(f"{probe}: not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StackgenError(f"{probe}: not writable")


def init(directory: Path, stack: Stack) -> GenerateResult:
    """Write `stack.yaml` into a new stack directory, then render. All or nothing."""
    if (directory / SPEC_NAME).exists():
        raise StackgenError(f"{directory / SPEC_NAME}: already exists; edit it and run `stackgen generate {directory}`")
    ensure_writable_dir(directory)
    check_references(stack, directory)
    render(stack)  # a template error must surface before anything is written
    created_dir = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        files.write_atomic(directory / SPEC_NAME, dump_stack(stack), 0o600)
        return generate(directory, stack=stack)
    except OSError as exc:
        _undo_init(directory, created_dir)
        raise StackgenError(f"{exc.filename or directory}: cannot write ({exc.strerror})") from None
    except BaseException:
        _undo_init(directory, created_dir)
        raise


def _undo_init(directory: Path, created_dir: bool) -> None:
    """Remove what a failed init wrote: a stack directory is complete or absent."""
    import shutil

    if created_dir:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        (directory / SPEC_NAME).unlink(missing_ok=True)
