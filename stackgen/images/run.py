"""Running BuildKit for `stackgen build`: which docker CLI builds, its output streamed and followed, and what came out.

Why this exists: a build is a docker CLI process (`buildx`, or a pre-23 CLI's own BuildKit), whose
plain progress output is all there is to say which platform and step is running or failed. Finding
that CLI, streaming its lines, reading steps and errors out of them, and the result and event types
the build reports in, are the same for both ways of building and for pushing
(`stackgen.images.push`); kept here so `stackgen.images.build` holds only the build itself. Its names
stay importable from `stackgen.images.build`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from stackgen.constants import BUILD_LABEL
from stackgen.errors import StackgenError
from stackgen.images.plan import Prepared
from stackgen.upstream.platforms import Platform


class BuildError(StackgenError):
    """A build step failed; names the platform and the step."""

    def __init__(self, message: str, platform: str | None = None, step: str | None = None, log: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.platform = platform
        self.step = step
        self.log = log
        self.reason = reason


# --------------------------------------------------------------------------- events


@dataclass
class Event:
    """Progress of one platform's build: kind is step, log, done, push or note."""

    platform: str
    kind: str
    text: str


Reporter = Callable[[Event], None]


def _quiet(_: Event) -> None:
    pass

# --------------------------------------------------------------------------- the docker CLI


@dataclass(frozen=True)
class Builder:
    """How this machine builds: `buildx` (one multi-platform build) or `buildkit` (one BuildKit build per platform)."""

    kind: str
    cli: str
    version: str = ""


def _cli_candidates() -> list[str]:
    found = [os.environ.get("STACKGEN_DOCKER_CLI") or "", shutil.which("docker") or "", "/usr/bin/docker", "/usr/local/bin/docker"]
    result, seen = [], set()
    for path in found:
        if path and os.access(path, os.X_OK):
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                result.append(path)
    return result


def _client_version(cli: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str:
    proc = run([cli, "--version"], capture_output=True, text=True)
    match = re.search(r"version (\d+\.\d+\.\d+)", proc.stdout or "")
    return match.group(1) if match else ""


def detect_builder(candidates: Sequence[str] | None = None, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Builder:
    """buildx when any docker CLI has it; else a CLI older than 23 (whose `docker build` does BuildKit without buildx)."""
    clis = list(candidates) if candidates is not None else _cli_candidates()
    if not clis:
        raise StackgenError("no docker CLI found: install docker (Debian: apt-get install docker.io)")
    for cli in clis:
        if run([cli, "buildx", "version"], capture_output=True, text=True).returncode == 0:
            return Builder("buildx", cli, _client_version(cli, run))
    for cli in clis:
        version = _client_version(cli, run)
        if version and int(version.split(".")[0]) < 23:
            return Builder("buildkit", cli, version)
    raise StackgenError(
        "no docker CLI here can build for another platform: install the buildx plugin "
        "(docker-buildx-plugin, or Debian's docker-buildx), or use a Docker 20.10 CLI (BuildKit without buildx)"
    )


Runner = Callable[[list[str], dict[str, str], Callable[[str], None]], int]


def stream(command: list[str], env: dict[str, str], on_line: Callable[[str], None]) -> int:
    """Run `command`, handing each output line (stdout and stderr merged) to `on_line`; returns the exit code."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        on_line(line.rstrip("\n"))
    return proc.wait()


_STEP = re.compile(r"^#(\d+) (\[[^\]]+\] .*)$")
_STEP_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")


@dataclass
class Progress:
    """Follows BuildKit's plain progress output: which step runs, which failed, the last lines."""

    steps: dict[str, str] = field(default_factory=dict)
    current: str | None = None
    failed: str | None = None
    error: str | None = None
    tail: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str | None:
        """Record one line; returns the step title when the line starts a new step."""
        self.tail = (self.tail + [line])[-40:]
        if match := _STEP.match(line):
            number, title = match.groups()
            if number not in self.steps:
                self.steps[number] = title
                self.current = title
                return title
        elif match := _STEP_ERROR.match(line):
            self.failed = self.steps.get(match.group(1), f"#{match.group(1)}")
            self.error = match.group(2)
        elif line.startswith(("error:", "ERROR:")) and not self.error:
            self.error = line.split(":", 1)[1].strip()
        return None

    def failure(self, platform: str) -> BuildError:
        step = self.failed or self.current or "(before the first step)"
        reason = self.error or "see the log"
        return BuildError(f"{platform}: build failed at step {step}: {reason}", platform, step, "\n".join(self.tail), reason)

# --------------------------------------------------------------------------- results, and steps both builders share


@dataclass
class PlatformBuild:
    platform: Platform
    seconds: float
    digest: str = ""
    reference: str = ""


@dataclass
class BuildResult:
    reference: str  # what the stack should run: REF@sha256:<list digest>, or the local tag
    builder: Builder
    platforms: list[PlatformBuild]
    list_digest: str | None = None
    manifest: bytes = b""
    written: str | None = None  # images.node_red value written into stack.yaml

def _common(prepared: Prepared) -> list[str]:
    """Label the image with its inputs' digest; RUN steps get no network unless native nodes must be rebuilt
    (those may download prebuilt binaries or headers)."""
    args = ["--label", f"{BUILD_LABEL}={prepared.digest}"]
    if not prepared.rebuild:
        args.append("--network=none")
    return args

def _explain(error: BuildError, base: str) -> BuildError:
    """Say plainly what BuildKit's words mean for the most common failure: the base lacks the platform."""
    if "no match for platform in manifest" in error.reason:
        error.args = (f"{error.platform}: the base image {base} has no {error.platform} image (step {error.step}: {error.reason})",)
    return error


def _check_local_platform(builder: Builder, local: str, platform: Platform, runner: Runner, env: dict[str, str]) -> None:
    """The engine's record of what was built: a builder that ignored --platform is caught here."""
    lines: list[str] = []
    command = [builder.cli, "image", "inspect", "--format", "{{.Os}} {{.Architecture}} {{.Variant}}", local]
    if runner(command, env, lines.append) != 0:
        raise BuildError(f"{platform}: built image {local} not found in the engine: {' '.join(lines)[-300:]}", str(platform), "inspect")
    fields = ((lines[-1] if lines else "").split() + ["", "", ""])[:3]
    got = Platform.of(*fields)
    if got != platform:
        raise BuildError(f"{platform}: the engine recorded {local} as {got}: the builder ignored --platform", str(platform), "inspect")
