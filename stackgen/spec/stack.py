"""`Stack`: the whole of stack.yaml, version 1 (`node_red`, one Node-RED) or version 2 (`instances`)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from stackgen.spec.base import (
    _EMAIL,
    _HOSTNAME,
    _PROJECT,
    _TIMEZONE,
    SPEC_VERSION,
    TARGETS,
    Edge,
    FieldError,
    Platform,
    StrictModel,
    Target,
    _covers,
    _is_ip_like,
)
from stackgen.spec.instances import DEFAULT_INSTANCE, MAX_INSTANCES, Instance, check_instances
from stackgen.spec.node_red import NodeRed
from stackgen.spec.parts import Images, Logging, Ports, Swarm, Tls
from stackgen.upstream.contracts import load_contract


class Stack(StrictModel):
    """A Node-RED stack: Node-RED behind an edge, with a certificate sidecar."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        json_schema_extra={"$id": "https://stackgen.dev/schema/stack-v1.json", "title": "stackgen stack.yaml"},
    )

    version: Literal[1, 2] = Field(
        SPEC_VERSION,
        description="Version of this file's format: 1, one Node-RED (`node_red`); 2, several (`instances`).",
    )
    project: str = Field(..., description="Compose project name (lowercase letters, digits, - and _).")
    domains: list[str] = Field(
        ..., min_length=1,
        description="Host names the edge serves; the first names the certificate, which covers them all. With `instances`, "
        "every instance's host names must be here (or under a wildcard here), and every name here belongs to an instance.",
    )
    email: str = Field(..., description="ACME account e-mail (expiry notices).")
    edge: Edge = Field("caddy", description="The edge proxy: the only published service.")
    tls: Tls = Field(default_factory=Tls, description="Certificates.")
    ports: Ports = Field(default_factory=Ports, description="Published ports of the edge.")
    platform: Platform = Field("linux/amd64", description="Target platform (Raspberry Pi: linux/arm64 or linux/arm/v7).")
    images: Images = Field(default_factory=Images, description="Image overrides.")
    node_red: NodeRed | None = Field(None, description="Node-RED (version 1: the stack's one instance). Required in version 1.")
    instances: list[Instance] | None = Field(
        None, min_length=1, max_length=MAX_INSTANCES,
        description="Version 2: several Node-RED instances behind the one edge and certificate, each isolated from the others. "
        "Required in version 2 (instead of `node_red`).",
    )
    timezone: str = Field("Etc/UTC", description="TZ of the containers.")
    logging: Logging = Field(default_factory=Logging, description="Log rotation.")
    target: Target = Field(
        "compose",
        description="Where the stack runs. compose: compose.yaml (`stackgen up`). swarm: compose.yaml and compose.swarm.yaml, "
        "a stack file for `docker stack deploy` (docs/swarm.md says what Swarm cannot express). "
        "`stackgen generate --target` overrides it for one run.",
    )
    swarm: Swarm | None = Field(None, description="Settings of compose.swarm.yaml (target: swarm) alone; unset: the defaults.")

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: object) -> object:
        if value not in TARGETS:
            raise ValueError(f"{value!r} is not a target: compose (compose.yaml) or swarm (compose.swarm.yaml, for docker stack deploy)")
        return value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _PROJECT.fullmatch(value):
            raise ValueError("lowercase letters, digits, - and _, starting with a letter or digit")
        return value

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        cleaned = []
        for raw in value:
            name = raw.strip().lower().rstrip(".")
            if len(name) > 253 or not _HOSTNAME.fullmatch(name):
                raise ValueError(f"{raw!r} is not a valid host name")
            if _is_ip_like(name):
                raise ValueError(f"{raw!r} is an IP address, not a host name")
            cleaned.append(name)
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("duplicate domain")
        return cleaned

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError(f"{value!r} is not an e-mail address stackgen accepts (letters, digits and . _ % + - before the @, a host name after it)")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if not _TIMEZONE.fullmatch(value):
            raise ValueError(f"{value!r} is not a time zone name such as Europe/Berlin")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Self:
        """Version 1 has `node_red`, version 2 `instances`: each refuses the other's key, naming it."""
        if self.version == 1:
            if self.instances is not None:
                raise FieldError(("instances",), "several Node-RED instances need `version: 2` (a version 1 file has `node_red`)")
            if self.node_red is None:
                raise FieldError(("node_red",), "required (or, with version: 2, `instances`)")
        else:
            if self.node_red is not None:
                raise FieldError(("node_red",), "version 2 lists `instances` (each holds these settings); it has no `node_red`")
            if self.instances is None:
                raise FieldError(("instances",), "required with version: 2 (a list of Node-RED instances)")
            if self.images.node_red is not None:
                raise FieldError(("images", "node_red"), "version 2: each instance has its own image (instances[].image)")
        return self

    @model_validator(mode="after")
    def _combinations(self) -> Self:
        wildcard = [d for d in self.domains if d.startswith("*.")]
        if wildcard and self.tls.mode not in ("certbot-dns01", "files"):
            where = ("domains", self.domains.index(wildcard[0]))
            raise FieldError(where, f"wildcard domain {wildcard[0]} needs tls.mode certbot-dns01 (HTTP-01 cannot prove a wildcard)")
        for where, node_red, image in self._node_red_settings():
            if node_red.version and not image:
                major = int(node_red.version.split(".", 1)[0])
                contract = load_contract("node-red")
                platforms = contract.platforms_of_major(major)
                if platforms is not None and not contract.major_runs_on(major, self.platform):
                    newest = load_contract("node-red").tag_for(self.platform).tag
                    raise FieldError(
                        (*where, "version"),
                        f"Node-RED {major}.x publishes no {self.platform} image (only {', '.join(sorted(platforms))}); "
                        f"use {newest} or leave version unset",
                    )
            editor_host = node_red.editor.host
            if editor_host is not None and not any(_covers(d, editor_host) for d in self.domains):
                raise FieldError(
                    (*where, "editor", "host"),
                    f"{editor_host} is not one of domains, nor covered by a wildcard in domains: the certificate would not cover it "
                    "(add it to domains)",
                )
        if self.instances is not None:
            check_instances(self.domains, self.instances)
        if self.tls.mode == "edge-acme" and self.edge == "nginx":
            raise FieldError(("tls", "mode"), "edge-acme needs an edge with a built-in ACME client (caddy or traefik); nginx has none")
        return self

    @property
    def encrypted_overlays(self) -> bool:
        """compose.swarm.yaml encrypts its overlays (`swarm.encrypted_overlays`, true unless set false)."""
        return self.swarm is None or self.swarm.encrypted_overlays

    @property
    def cert_name(self) -> str:
        """certbot's lineage name: the first domain without a wildcard prefix."""
        return self.domains[0].removeprefix("*.")

    def _node_red_settings(self) -> list[tuple[tuple[str | int, ...], NodeRed, str | None]]:
        """(where in the file, settings, image override) of each Node-RED."""
        if self.instances is not None:
            return [(("instances", i), inst, inst.image) for i, inst in enumerate(self.instances)]
        return [(("node_red",), self.node_red, self.images.node_red)] if self.node_red is not None else []

    @property
    def node_reds(self) -> list[Instance]:
        """Every Node-RED of the stack: `instances`, or (version 1) `node_red` as the instance named node-red, serving every domain."""
        if self.instances is not None:
            return list(self.instances)
        assert self.node_red is not None, "validated: version 1 has node_red"
        if isinstance(self.node_red, Instance):  # a view (`view`): that instance
            return [self.node_red]
        return [Instance.model_construct(**dict(self.node_red), name=DEFAULT_INSTANCE, domains=list(self.domains), image=self.images.node_red)]

    def view(self, instance: Instance) -> Stack:
        """This stack as a version 1 stack of `instance` alone: what its settings.js and its service are rendered from
        (a copy, not validated again: every part of it already was)."""
        images = self.images.model_copy(update={"node_red": instance.image})
        return self.model_copy(update={"version": 1, "instances": None, "node_red": instance, "images": images})
