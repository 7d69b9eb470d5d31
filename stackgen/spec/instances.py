"""Several Node-RED instances (format version 2): `Instance` (a `NodeRed` with a name, the host names routed to it,
its path prefix and image) and the routing table the stack's instances must form (`check_instances`): names and
secrets each one instance's, one instance at most at the root of a host name, prefixes on one host name that do not
nest nor cover the root instance's editor, editor hosts wholly their instance's, every host name under the
certificate and every exact name of the certificate routed."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from stackgen.spec.base import _HOSTNAME, _MAX_ROUTE_PATH, _ROUTE_PATH, FieldError, _covers, _image, _is_ip_like
from stackgen.spec.node_red import NodeRed

# Several Node-RED instances (format version 2). The instance a version 1 file describes is named `node-red`,
# and keeps the names such a stack always had (service node-red, network internal, volume node-red-data).
DEFAULT_INSTANCE = "node-red"
MAX_INSTANCES = 32
# A Compose service, network, volume and secret name, a directory and an NGINX variable (with - as _) once
# prefixed: lowercase letters and digits in words joined by single hyphens, at most 24.
_INSTANCE_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def instance_service(name: str) -> str:
    """The Compose service (and configuration directory) of the instance called `name`."""
    return DEFAULT_INSTANCE if name == DEFAULT_INSTANCE else f"{DEFAULT_INSTANCE}-{name}"


class Instance(NodeRed):
    """One Node-RED of several: the `node_red` settings, plus a name, the host names routed to it and its image.

    Each instance gets its own internal network shared only with the edge, its own data volume, credential
    secret and admin password: no instance can reach another."""

    name: str = Field(
        ...,
        description="Instance name: lowercase letters and digits, words joined by single hyphens (at most 24). Its service is "
        "`node-red-<name>` (`node-red` keeps the names of a one-instance stack), its volume `<service>-data`, its network `internal-<name>`.",
    )
    domains: list[str] = Field(
        ..., min_length=1,
        description="Host names the edge routes to this instance (no wildcard; no name of another instance). "
        "Each must be one of the stack's `domains` or covered by a wildcard there: the one certificate covers them all.",
    )
    path: str | None = Field(
        None,
        description="A URL path prefix such as /lab: the instance is served under it on each of its host names (editor at "
        "<path><editor.path>, HTTP-in endpoints and dashboard under <path>/), so several instances can share one host name. "
        "Node-RED knows it (httpAdminRoot, httpNodeRoot), the edge passes paths through unchanged. Unset: the root of its host "
        "names, which one instance at most may own per host name. Prefixes on one host name must not nest. Matched without "
        "regard to case. Instances on one host name share a browser origin: see the README.",
    )
    image: str | None = Field(
        None, description="Image override for this instance (what `images.node_red` is to a one-instance stack). Unset: the official image of `version`.",
    )
    credential_secret_file: str = Field(
        "secrets/node_red_credential_secret",
        description="File holding this instance's credentialSecret. Default: secrets/<service with _>_credential_secret "
        "(secrets/node_red_<name>_credential_secret); no two instances share one.",
    )

    @model_validator(mode="before")
    @classmethod
    def _secret_default(cls, data: object) -> object:
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str) and _INSTANCE_NAME.fullmatch(name) and "credential_secret_file" not in data:  # else `name` is blamed
            data = {**data, "credential_secret_file": "secrets/" + instance_service(data["name"]).replace("-", "_") + "_credential_secret"}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 24 or not _INSTANCE_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: lowercase letters and digits, words joined by single hyphens, starting with a letter, at most 24")
        return value

    @field_validator("domains")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        cleaned = []
        for raw in value:
            name = raw.strip().lower().rstrip(".")
            if name.startswith("*."):
                raise ValueError(f"{raw!r}: an instance's host names are exact names (a wildcard belongs in the stack's domains, the certificate)")
            if len(name) > 253 or not _HOSTNAME.fullmatch(name) or _is_ip_like(name):
                raise ValueError(f"{raw!r} is not a valid host name")
            cleaned.append(name)
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("duplicate domain")
        return cleaned

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return _image(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = value[:-1] if value.endswith("/") and value != "/" else value
        if cleaned == "/":
            raise ValueError("`/` is the root of the host names: leave path out for that")
        if len(cleaned) > _MAX_ROUTE_PATH or not _ROUTE_PATH.fullmatch(cleaned):
            raise ValueError(f"{value!r} is not a path prefix such as /lab: segments of letters, digits and . _ ~ - "
                             f"(none starting with a dot), at most {_MAX_ROUTE_PATH} characters")
        return cleaned.lower()  # the edges match it without regard to case, as Node-RED does: one spelling

    @property
    def route_prefix(self) -> str:
        return self.path or ""

    @property
    def service(self) -> str:
        return instance_service(self.name)

    @property
    def is_default(self) -> bool:
        """The instance of a one-instance stack keeps that stack's names."""
        return self.name == DEFAULT_INSTANCE

    @property
    def data_volume(self) -> str:
        return f"{self.service}-data"

    @property
    def secret_name(self) -> str:
        """The compose secret (always mounted as /run/secrets/node_red_credential_secret inside)."""
        return self.service.replace("-", "_") + "_credential_secret"

    @property
    def internal_network(self) -> str:
        return "internal" if self.is_default else f"internal-{self.name}"

    @property
    def egress_network(self) -> str:
        return "egress" if self.is_default else f"egress-{self.name}"

    @property
    def hosts(self) -> list[str]:
        """Every host name routed to this instance: its domains, and its editor's host."""
        extra = self.editor.host
        return list(self.domains) + ([extra] if extra and extra not in self.domains else [])


def check_instances(domains: list[str], instances: list[Instance]) -> None:
    """Names and secrets each belong to one instance. Host names: one instance at most owns the root of each, others
    share it under prefixes that do not nest (nor hold the root owner's editor); an editor host is its instance's
    alone. The certificate covers every host name, and every name it is for reaches an instance."""
    routed: dict[str, list[int]] = {}  # host name -> the instances served on it
    editor_hosts: dict[str, int] = {}
    seen_names: set[str] = set()
    seen_secrets: dict[str, str] = {}
    for i, inst in enumerate(instances):
        if inst.name in seen_names:
            raise FieldError(("instances", i, "name"), f"duplicate instance name {inst.name!r}")
        seen_names.add(inst.name)
        if inst.credential_secret_file in seen_secrets:
            raise FieldError(("instances", i, "credential_secret_file"),
                             f"{inst.credential_secret_file} is already instance {seen_secrets[inst.credential_secret_file]}'s: "
                             "each instance has its own credential secret")
        seen_secrets[inst.credential_secret_file] = inst.name
        fields: list[tuple[tuple[str | int, ...], str]] = [(("instances", i, "domains", j), h) for j, h in enumerate(inst.domains)]
        if inst.editor.host is not None:
            fields.append((("instances", i, "editor", "host"), inst.editor.host))
        for where, host in fields:
            others = [k for k in routed.get(host, []) if k != i]
            if host in editor_hosts and editor_hosts[host] != i:
                raise FieldError(where, f"{host} already routes to instance {instances[editor_hosts[host]].name!r} (its editor host, "
                                        "all of it editor traffic)")
            if where[2] == "editor" and others:
                raise FieldError(where, f"{host} already routes to instance {instances[others[0]].name!r}: an editor host "
                                        "is its instance's alone")
            if where[2] == "editor" and host in inst.domains:
                continue  # one of its own names, checked as such
            for k in others:
                _check_shared_host(instances, host, i, k, where)
            if where[2] == "domains" and not any(_covers(d, host) for d in domains):
                raise FieldError(where, f"{host} is not one of the stack's domains, nor covered by a wildcard there: "
                                        "the certificate would not cover it (add it to domains)")
            routed.setdefault(host, []).append(i)
        if inst.editor.host is not None:
            editor_hosts[inst.editor.host] = i
    for k, domain in enumerate(domains):
        if not domain.startswith("*.") and domain not in routed:
            raise FieldError(("domains", k), f"{domain} routes to no instance: add it to an instance's domains, or remove it")


def _nested(a: str, b: str) -> bool:
    """True when path prefixes `a` and `b` (lowercase, no trailing slash) are one, or one holds the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _check_shared_host(instances: list[Instance], host: str, i: int, k: int, where: tuple[str | int, ...]) -> None:
    """Instance `i` joins instance `k` on `host`: one of them at most at the root, prefixes that do not nest, and no
    prefix over the root owner's editor (its paths are that Node-RED's own: they would stop reaching it)."""
    inst, other = instances[i], instances[k]
    if not inst.path and not other.path:
        raise FieldError(where, f"{host} already routes to instance {other.name!r} (at its root): give one of them a `path` "
                                "to share the host name")
    if inst.path and other.path and _nested(inst.path, other.path):
        raise FieldError(("instances", i, "path"), f"{inst.path} on {host} overlaps {other.path} of instance {other.name!r}: "
                                                   "the prefixes on one host name must not nest")
    root, prefixed, blame = (other, inst, i) if inst.path else (inst, other, k)
    editor = root.editor.path.lower()
    if root.editor.enabled and editor != "/" and prefixed.path and _nested(prefixed.path, editor):
        raise FieldError(("instances", blame, "path"), f"{prefixed.path} on {host} overlaps the editor of instance {root.name!r} "
                                                       f"({root.editor.path}): its paths would no longer reach it")
