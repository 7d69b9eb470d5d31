"""The spec side of instances: a version 1 stack as version 2, an instance added, an instance removed.

Pure functions of a `Stack` (no files, no engine): each returns the new, validated `Stack` and the notes a
user should read (what changed for the certificate, what a wildcard no longer routes). Errors are
`SpecEditError`s naming the field, so the CLI can name its flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from stackgen.errors import StackgenError, dotted, problems
from stackgen.spec import DEFAULT_INSTANCE, Instance, Stack
from stackgen.spec.base import _HOSTNAME, _is_ip_like


class SpecEditError(StackgenError):
    """A change the spec refuses; `loc` is the field (as pydantic names it), `message` what is wrong."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{dotted(loc)}: {message}" if loc else message)
        self.loc = loc
        self.message = message


@dataclass
class Edited:
    """The spec after a change, and what the user should know about it."""

    stack: Stack
    notes: list[str] = field(default_factory=list)
    removed: Instance | None = None


def _validated(data: dict[str, Any]) -> Stack:
    try:
        return Stack.model_validate(data)
    except ValidationError as exc:
        first = problems(exc)[0]
        raise SpecEditError(tuple(first.loc), first.message) from None


def _covers(domain: str, name: str) -> bool:
    if domain.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == domain[2:]
    return domain == name


def _plain_host(value: object) -> str | None:
    """`value` as the spec writes a host name (lowercase, no trailing dot) when it is one (no wildcard, no address); else None."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower().rstrip(".")
    return name if len(name) <= 253 and not name.startswith("*.") and _HOSTNAME.fullmatch(name) and not _is_ip_like(name) else None


def to_instances(stack: Stack) -> Edited:
    """Version 1 -> version 2. The one Node-RED becomes instance `node-red`: the same service, network, volume,
    secret and files, so its data stays where it is. It serves the exact names of `domains`; names that only a
    wildcard covered no longer reach it (a note says so). A version 2 stack is returned as it is."""
    if stack.instances is not None:
        return Edited(stack)
    exact = [d for d in stack.domains if not d.startswith("*.")]
    wildcards = [d for d in stack.domains if d.startswith("*.")]
    if not exact:
        raise SpecEditError(("domains",), f"only wildcards ({', '.join(wildcards)}): instances route exact host names; "
                                          "add the name Node-RED is reached at to domains (and generate) first")
    data = stack.model_dump(mode="python", exclude_none=True)
    instance = data.pop("node_red")
    instance.update(name=DEFAULT_INSTANCE, domains=exact)
    image = data["images"].pop("node_red", None)
    if image:
        instance["image"] = image
    data.update(version=2, instances=[instance])
    notes = [f"stack.yaml is now format version 2: its Node-RED is instance {DEFAULT_INSTANCE!r} (same service, network, "
             "volume and secret), serving " + ", ".join(exact)]
    if wildcards:
        notes.append(f"names under {', '.join(wildcards)} other than those reach no instance now (421): list each in an instance's domains")
    return Edited(_validated(data), notes)


def add_instance(stack: Stack, name: str, domains: list[str], settings: dict[str, Any]) -> Edited:
    """`stack` with one more instance called `name`, routed from `domains`; `settings` are its `node_red`-style
    settings (admin_password_hash at least), and its `path` when it is served under a prefix. A host name the
    certificate does not cover yet, its editor's host (`settings["editor"]["host"]`) too, is added to the stack's
    domains (certbot expands the certificate to it). With a
    `path` and no `domains`, the stack's first host name (the certificate's name) is the one shared."""
    edited = to_instances(stack)
    notes = list(edited.notes)
    current = edited.stack
    assert current.instances is not None
    if any(inst.name == name for inst in current.instances):
        raise SpecEditError(("instances", "name"), f"instance {name!r} already exists")
    if not domains:
        if not settings.get("path"):
            raise SpecEditError(("instance", "domains"), "a host name for the instance, or a `path` to serve it under on the stack's")
        exact = [d for d in current.domains if not d.startswith("*.")]
        domains = [exact[0] if exact else current.instances[0].hosts[0]]
    data = current.model_dump(mode="python", exclude_none=True)
    cleaned = [d.strip().lower().rstrip(".") for d in domains]
    # Every name the edge serves for it is the certificate's: its host names, and its editor's host (a name that is
    # not one, such as a wildcard, stays out of domains: the instance's editor.host then refuses it, naming its flag).
    editor_host = _plain_host((settings.get("editor") or {}).get("host"))
    for host in cleaned + ([editor_host] if editor_host else []):
        if host and not any(_covers(d, host) for d in data["domains"]):
            data["domains"].append(host)
            if current.tls.mode == "files":
                notes.append(f"the certificate in {current.tls.cert_file} must cover {host} (tls.mode files: stackgen cannot issue it)")
            else:
                notes.append(f"the certificate now also covers {host} (added to domains)")
    instance = {**settings, "name": name, "domains": cleaned}
    data["instances"].append(instance)
    index = len(data["instances"]) - 1
    try:
        result = Stack.model_validate(data)
    except ValidationError as exc:
        first = problems(exc)[0]
        loc = tuple(first.loc)
        # A problem of the new instance is the user's flag; name the instance rather than its index.
        if loc[:2] == ("instances", index):
            loc = ("instance", *loc[2:])
        raise SpecEditError(loc, first.message) from None
    added = result.node_reds[-1]
    for other in result.node_reds[:-1]:
        shared = [h for h in added.hosts if h in other.hosts]
        if shared:
            notes.append(f"{name} shares {', '.join(shared)} with instance {other.name}: one browser origin, so a page one "
                         "serves runs beside the other's editor (its login token): share host names only between instances "
                         "whose flow authors trust each other")
    return Edited(result, notes)


def remove_instance(stack: Stack, name: str) -> Edited:
    """`stack` without instance `name`. Its host names leave `domains` (wildcards stay); the last instance cannot go."""
    instances = stack.node_reds
    found = next((inst for inst in instances if inst.name == name), None)
    if found is None:
        known = ", ".join(inst.name for inst in instances)
        raise SpecEditError(("instances", "name"), f"no instance {name!r} (instances: {known})")
    if len(instances) == 1:
        raise SpecEditError(("instances",), f"{name!r} is the stack's only Node-RED: a stack keeps at least one "
                                            "(to remove the whole stack: stackgen down DIR, then delete the directory)")
    current = stack  # two or more instances: version 2 already
    data = current.model_dump(mode="python", exclude_none=True)
    data["instances"] = [entry for entry in data["instances"] if entry["name"] != name]
    dropped = set(found.hosts) - {h for inst in instances if inst.name != name for h in inst.hosts}  # shared ones stay
    data["domains"] = [d for d in data["domains"] if d not in dropped]
    notes = []
    if dropped & set(current.domains):
        notes.append("the certificate no longer covers " + ", ".join(d for d in current.domains if d in dropped))
    result = _validated(data)
    if result.cert_name != current.cert_name:
        notes.append(f"the certificate is now named {result.cert_name} (certbot obtains it on the next start; the old one stays in its volume)")
    return Edited(result, notes, removed=found)
