"""The Raspberry Pi / multi-arch commands: `images check`, `build`, `doctor`. `register(app)` adds them.

Thin, like the rest of the CLI: parse, call `stackgen.images.registry` / `stackgen.images.build` / `stackgen.images.doctor`, print.
Exit codes: 0 fine, 1 a failed check or build (or a registry that cannot be reached), 2 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from stackgen.cli.commands import summary
from stackgen.cli.errors import fail as _fail
from stackgen.cli.errors import print_error

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

PLATFORM_HELP = "Target platform: linux/amd64, linux/arm64 or linux/arm/v7 (default: stack.yaml's `platform`)."




def _stack(directory: Path):
    from stackgen.stackdir import load_stack

    return load_stack(directory)


def images_check(
    directory: Annotated[Path, typer.Argument(help="Stack directory holding stack.yaml.")] = Path("."),
    registry: Annotated[str | None, typer.Option(help="Read every manifest from this registry (HOST[:PORT]: a mirror or a local registry) "
                                                            "instead of each image's own.")] = None,
    platform: Annotated[str | None, typer.Option(help=PLATFORM_HELP)] = None,
    pin: Annotated[bool, typer.Option("--pin", help="Write each image's digest for the platform into stack.yaml (images.*); "
                                                    "then run `stackgen generate`.")] = False,
    source: Annotated[str, typer.Option(help="auto: the registry, else the local engine's image; registry; engine.")] = "auto",
    output_format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Confirm every image of the stack has the target platform; report its digest; optionally pin it."""
    from stackgen.errors import StackgenError
    from stackgen.images import check as checking
    from stackgen.images import registry as images
    from stackgen.images.build import parse_platforms

    try:
        if source not in ("auto", "registry", "engine"):
            raise StackgenError(f"--source: {source!r} is not one of auto, registry, engine")
        if output_format not in ("text", "json"):
            raise StackgenError(f"--format: {output_format!r} is not one of text, json")
        if registry is not None:
            registry = images.check_registry_host(registry)
        stack = _stack(directory)
        targets = parse_platforms([platform] if platform else [], stack.platform)
        if len(targets) != 1:
            raise StackgenError("--platform: one platform per check")
        target = targets[0]
        if pin and str(target) != stack.platform:
            raise StackgenError(f"--pin: the check is for {target} but stack.yaml says platform {stack.platform}; pin only for the stack's own platform")
        engine = _engine_or_none() if source in ("auto", "engine") else None
        if source == "engine" and engine is None:
            raise StackgenError("--source engine: no Docker engine answers")
        checks = checking.check_images(checking.stack_images(stack), target, registry=registry, source=source, engine=engine)
    except StackgenError as exc:
        raise _fail(str(exc)) from None
    failed = [c for c in checks if not c.ok]
    if output_format == "json":
        sys.stdout.write(json.dumps({"platform": str(target), "ok": not failed, "images": [c.as_json() for c in checks]}, indent=2) + "\n")
        sys.stdout.flush()
    else:
        _print_checks(checks, target)
    if failed:
        for check in failed:
            print_error(f"{check.service}: {check.note}")
        raise typer.Exit(1)
    if pin:
        notes: list[str] = []
        try:
            written = checking.pin(directory, checks, notes)
        except StackgenError as exc:
            raise _fail(str(exc), 1) from None
        for key, value in written.items():
            out.print(f"[green]pinned[/] {key}: {value}", highlight=False)
        for note in notes:
            out.print(f"note: {escape(note)}", highlight=False)
        out.print(f"next: [bold]stackgen generate {directory}[/]")


def _engine_or_none():
    from stackgen.engine import EngineUnavailable, client

    try:
        return client(timeout=20)
    except EngineUnavailable:
        return None


def _print_checks(checks, target) -> None:
    """One line per image (digests stay whole for copying; the terminal wraps, nothing is folded)."""
    out.print(f"images for {target}:", highlight=False)
    colour = {"ok": "green", "missing": "red", "error": "red"}
    width = max(len(c.image) for c in checks) if checks else 0
    status_width = max(len(c.status) for c in checks) if checks else 0
    for check in checks:
        status = check.status
        out.print(f"  [{colour.get(status.split()[0], 'yellow')}]{escape(status):<{status_width}}[/] {check.service:<9} {escape(check.image):<{width}}  "
                  f"{check.digest or '-'}  {escape('(' + check.source + ')') if check.source else ''}", highlight=False)
    for check in checks:
        if check.ok and check.note:
            out.print(f"note: {check.service}: {escape(check.note)}", highlight=False)


def build(
    directory: Annotated[Path, typer.Argument(help="Stack directory holding stack.yaml.")] = Path("."),
    platform: Annotated[list[str] | None, typer.Option("--platform", help="Target platform (repeat, or comma-separate). Default: stack.yaml's.")] = None,
    registry: Annotated[str | None, typer.Option(envvar="STACKGEN_REGISTRY", help="Push to this registry (HOST[:PORT]); needed for more than one platform. "
                                                    "Without it a single platform is built into the local engine.")] = None,
    base: Annotated[str | None, typer.Option(help="Image to start FROM (default: the official Node-RED image stackgen pins for the platform).")] = None,
    repository: Annotated[str | None, typer.Option(help="Repository in the registry (default: stackgen/<project>-node-red).")] = None,
    tag: Annotated[str | None, typer.Option(help="Tag (default: <node-red version>-<hash of the build inputs>).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every step again.")] = False,
    write: Annotated[bool, typer.Option("--write/--no-write", help="Set images.node_red (instances[].image) in stack.yaml to the "
                                                 "built image (then run `stackgen generate`).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every build log line, not only the steps.")] = False,
    instance: Annotated[list[str] | None, typer.Option("--instance", help="Version 2 stacks: build only this instance's image "
                                                       "(repeat for several). Default: every instance that declares extra_nodes "
                                                       "or base_image; the others are skipped with a note.")] = None,
) -> None:
    """Build the custom Node-RED image (base + node_red.extra_nodes, locked) for every target platform; with several
    instances, one image per instance that needs one (instances[].image)."""
    from stackgen.errors import StackgenError
    from stackgen.images import build as builds

    def report(event: builds.Event) -> None:
        if event.kind == "log" and not verbose:
            return
        style = {"step": "cyan", "done": "green", "push": "magenta", "note": "white"}.get(event.kind, "dim")
        text = event.text if len(event.text) <= 160 or verbose else event.text[:157] + "..."
        err.print(f"[{style}]{escape('[' + event.platform + ']')}[/] {escape(text)}", highlight=False)

    try:
        done = builds.build_stack(directory, platform or [], registry=registry, base=base, repository=repository, tag=tag,
                                  no_cache=no_cache, write=write, report=report, instances=instance or [])
    except builds.BuildError as exc:
        if exc.log:
            err.print(f"[bold]last lines of the {exc.platform or 'build'} log:[/]")
            err.print(exc.log, markup=False, highlight=False)
        raise _fail(str(exc), 1) from None
    except StackgenError as exc:
        code = 1 if isinstance(exc, _registry_errors()) else 2
        raise _fail(str(exc), code) from None
    for name, why in done.skipped:
        out.print(f"skipped instance {name}: {escape(why)}", highlight=False)
    for image in done.images:
        result = image.result
        for item in result.platforms:
            out.print(f"{item.platform}: {item.seconds:.1f}s" + (f"  {item.digest}" if item.digest else ""), highlight=False)
        who = f" for instance {', '.join(image.instances)}" if done.several else ""
        out.print(f"[green]built[/] {result.reference}{who}", highlight=False)
        for field_name in image.fields:
            out.print(f"stack.yaml: {field_name} = {result.reference}", highlight=False)
    if not done.images:
        out.print("nothing to build: no chosen instance declares extra_nodes or base_image", highlight=False)
    elif any(image.fields for image in done.images):
        out.print(f"next: [bold]stackgen generate {directory}[/]")


def _registry_errors() -> tuple[type, ...]:
    from stackgen.images.registry import RegistryError

    return (RegistryError,)


def doctor(
    directory: Annotated[Path | None, typer.Argument(help="Stack directory (its platform is the target).")] = None,
    platform: Annotated[list[str] | None, typer.Option("--platform", help="Target platform(s). "
                                                       "Default: the stack's, else linux/arm64 and linux/arm/v7.")] = None,
) -> None:
    """Check that this machine can build and run images for the target platforms (engine, builder, QEMU/binfmt)."""
    from stackgen.errors import StackgenError
    from stackgen.images import doctor as doctors
    from stackgen.images.build import parse_platforms

    try:
        if platform:
            targets = parse_platforms(platform, "")
        elif directory is not None:
            targets = parse_platforms([], _stack(directory).platform)
        else:
            targets = parse_platforms(["linux/arm64", "linux/arm/v7"], "")
    except StackgenError as exc:
        raise _fail(str(exc)) from None
    findings = doctors.diagnose(targets)
    width = max(len(f.topic) for f in findings)
    for finding in findings:
        mark = "[green]ok  [/]" if finding.ok else ("[red]FAIL[/]" if finding.required else "[yellow]warn[/]")
        out.print(f"{mark} {finding.topic:<{width}}  {escape(finding.detail)}", highlight=False)
    failed = [f for f in findings if not f.ok and f.required]
    for finding in failed:
        if finding.fix:
            out.print(f"fix ({finding.topic}): {finding.fix}", highlight=False)
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Add `images check`, `build` and `doctor` to stackgen's app."""
    images_app = typer.Typer(help=summary("images"), no_args_is_help=True)
    images_app.command("check")(images_check)
    app.add_typer(images_app, name="images")
    app.command("build", short_help=summary("build"))(build)
    app.command("doctor", short_help=summary("doctor"))(doctor)
