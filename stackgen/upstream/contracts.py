"""Upstream image contracts: what our stacks depend on in each official image, with its source.

Why this exists: users pull the official images that `compose.yaml` names; our tests cannot
(no registry), so they run *twins*. The facts both sides must agree on (user, entrypoint, stop
signal, volumes, the main binary's file capabilities, the tools our scripts call, platforms per
tag) are written down once, in `stackgen/upstream/contracts/*.yaml`, each with the upstream file it was
read from. Render takes its default image tags from here (the one place versions live), unit
tests hold rendered stacks to these facts, and an integration test holds each twin to them.

The format is described in `stackgen/upstream/contracts/FORMAT.md`. Loading is strict: a typo in a
contract is an error, not a silently missing fact.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

# CONTRACT_NAMES and the file-capability reading live in a module without pydantic, for verify (SG042).
from stackgen.upstream.filecaps import CONTRACT_NAMES, capability_names, image_file_capabilities  # noqa: F401


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where a fact was read: repository, path inside it, and the ref (tag, branch or commit)."""

    repo: str
    path: str
    ref: str
    note: str | None = None


class Fact(_Strict):
    """One upstream fact and the key of its source."""

    value: Any = None
    source: str
    note: str | None = None


class UserFact(_Strict):
    uid: int | None = None
    gid: int | None = None
    name: str | None = None
    groups: list[str | int] = Field(default_factory=list)
    source: str
    note: str | None = None


class BinaryFact(_Strict):
    path: str | None = None
    file_capabilities: str | None = None
    source: str
    note: str | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """Capability names the binary carries as file capabilities (`cap_net_bind_service=ep` ->
        {"NET_BIND_SERVICE"}), in compose's spelling."""
        return capability_names(self.file_capabilities)


class Runtime(_Strict):
    """The language runtime a tag's image runs the program on (e.g. Node.js 20), and when upstream ends its support."""

    name: str
    major: int
    end_of_life: date | None = None
    source: str
    note: str | None = None


class Tag(_Strict):
    tag: str
    version: str
    platforms: list[str]
    source: str
    note: str | None = None
    runtime: Runtime | None = None

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])


class NoteFact(_Strict):
    fact: str
    value: Any = None
    source: str


class DnsPlugin(_Strict):
    provider: str
    image: str
    authenticator: str
    credentials_option: str | None = None
    propagation_option: str | None = None
    source: str
    note: str | None = None


class Contract(_Strict):
    name: str
    image: str
    program: str
    tags: list[Tag] = Field(min_length=1)
    sources: dict[str, Source]
    user: UserFact
    entrypoint: Fact
    cmd: Fact
    env: Fact
    workdir: Fact
    volumes: Fact
    stop_signal: Fact
    healthcheck: Fact
    exposed_ports: Fact
    main_binary: BinaryFact
    writes: Fact
    tools: Fact
    shell: Fact
    base: Fact
    notes: list[NoteFact] = Field(default_factory=list)
    plugins: list[DnsPlugin] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sources_exist(self) -> Contract:
        """Every fact must name a source this file declares: a fact without provenance is a guess."""
        missing: list[str] = []
        for key in type(self).model_fields:
            value = getattr(self, key)
            items = value if isinstance(value, list) else [value]
            for item in items:
                src = getattr(item, "source", None)
                if isinstance(src, str) and src not in self.sources:
                    missing.append(f"{key}: {src}")
                runtime = getattr(item, "runtime", None)
                if runtime is not None and runtime.source not in self.sources:
                    missing.append(f"{key}.runtime: {runtime.source}")
        if missing:
            raise ValueError("facts name undeclared sources: " + ", ".join(missing))
        tools = self.tools.value or []
        if not all(isinstance(name, str) for name in tools):
            # YAML reads a bare `true`/`false` as a boolean: a tool list must be quoted names.
            raise ValueError(f"tools: every entry must be a command name (quote true/false): {tools!r}")
        return self

    def tag_for(self, platform: str) -> Tag:
        """The preferred pinned tag with an image that runs on `platform` (first match wins).

        "Runs on" as the engine decides it (`images.compatibility`): an arm/v7 machine also runs
        arm/v6 images, which is all certbot and Traefik publish for 32-bit ARM.
        """
        for tag in self.tags:
            if runs_on(platform, tag.platforms):
                return tag
        raise LookupError(f"{self.image}: no pinned tag publishes an image for {platform}")

    def reference(self, platform: str) -> str:
        """`repository:tag` of the default image for `platform`."""
        return f"{self.image}:{self.tag_for(platform).tag}"

    def platforms_of_major(self, major: int) -> set[str] | None:
        """Platforms upstream publishes for a major version, as far as the pinned tags tell (None: unknown)."""
        found = [t for t in self.tags if t.major == major]
        if not found:
            return None
        return {p for t in found for p in t.platforms}

    def major_runs_on(self, major: int, platform: str) -> bool | None:
        """Whether the pinned tags of `major` have an image for `platform` (None: no tag of that major pinned)."""
        platforms = self.platforms_of_major(major)
        return None if platforms is None else runs_on(platform, sorted(platforms))

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(self.tools.value or [])

    @property
    def stop_signal_name(self) -> str:
        """The signal Docker sends to PID 1 on stop: the image's STOPSIGNAL, else SIGTERM."""
        value = self.stop_signal.value or "SIGTERM"
        value = str(value).upper()
        return value if value.startswith("SIG") else "SIG" + value

    def plugin(self, provider: str) -> DnsPlugin | None:
        return next((p for p in self.plugins if p.provider == provider), None)


def runs_on(platform: str, published: list[str]) -> bool:
    """Whether an engine on `platform` picks one of the `published` platforms of a tag."""
    from stackgen.upstream.platforms import Platform, compatibility

    target = Platform.parse(platform)
    return any(compatibility(target, Platform.parse(p)) is not None for p in published)


class ContractError(RuntimeError):
    """A contract file is missing or invalid: a packaging bug, never the user's input."""


@cache
def load_contract(name: str) -> Contract:
    """The contract of one image family (`node-red`, `caddy`, ...), validated."""
    if name not in CONTRACT_NAMES:
        raise ContractError(f"unknown image contract {name!r}; known: {', '.join(CONTRACT_NAMES)}")
    path = resources.files("stackgen.upstream") / "contracts" / f"{name}.yaml"
    try:
        # libyaml when present: ~6x faster than the pure-Python loader
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"stackgen/upstream/contracts/{name}.yaml: {exc}") from exc
    try:
        return Contract.model_validate(data)
    except ValueError as exc:
        raise ContractError(f"stackgen/upstream/contracts/{name}.yaml: {exc}") from exc


def all_contracts() -> dict[str, Contract]:
    return {name: load_contract(name) for name in CONTRACT_NAMES}


def edge_contract(edge: str) -> Contract:
    """The contract of an edge (`caddy`, `nginx`, `traefik`)."""
    return load_contract(edge)
