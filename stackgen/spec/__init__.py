"""The user's `stack.yaml`, as strict pydantic models.

Why strict: `stack.yaml` is the single source of truth for a security-relevant
deployment. A typo such as `egres: true` silently ignored would be worse than
an error, so every model forbids unknown keys, and every field carries a
description (the JSON Schema that editors use is generated from these models).

The models live in modules by subject; this package is where everyone imports them from:
`base` (choices, patterns, `FieldError`, `StrictModel`), `parts` (certificates, ports, images, logging, swarm),
`node_red` (one Node-RED's settings and its editor), `instances` (several, and how they share host names),
`stack` (the whole file).
"""

from __future__ import annotations

from stackgen.spec.base import (
    LETS_ENCRYPT,
    LETS_ENCRYPT_STAGING,
    SPEC_VERSION,
    TARGETS,
    DnsProvider,
    Edge,
    FieldError,
    Platform,
    StrictModel,
    Target,
    TlsMode,
)
from stackgen.spec.instances import DEFAULT_INSTANCE, MAX_INSTANCES, Instance, check_instances, instance_service
from stackgen.spec.node_red import EVERYONE, PRIVATE_NETWORKS, BasicAuth, Editor, LoginShield, NodeRed, allow_networks
from stackgen.spec.parts import Images, Logging, Ports, Swarm, Tls
from stackgen.spec.stack import Stack

__all__ = [
    "DEFAULT_INSTANCE", "EVERYONE", "LETS_ENCRYPT", "LETS_ENCRYPT_STAGING", "MAX_INSTANCES", "PRIVATE_NETWORKS", "SPEC_VERSION",
    "TARGETS", "BasicAuth", "allow_networks", "DnsProvider", "Edge", "Editor", "FieldError", "Images", "Instance", "Logging", "LoginShield",
    "NodeRed", "Platform", "Ports", "Stack", "StrictModel", "Swarm", "Target", "Tls", "TlsMode", "check_instances", "instance_service",
]
