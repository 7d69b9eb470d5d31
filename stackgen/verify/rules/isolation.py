"""Container isolation: privileged mode, no-new-privileges, security profiles, read-only root."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology
from stackgen.verify.rules.base import Rule

PRIVILEGED = Rule(
    id="SG001",
    name="privileged",
    severity=Severity.CRITICAL,
    title="Privileged container",
    why="""`privileged: true` gives the container every capability, every host device and no
    seccomp/AppArmor confinement: a compromise of the service is a compromise of the host. For
    Node-RED, whose editor runs arbitrary code by design, it turns a flow into a host shell.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            privileged: true
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            cap_drop: [ALL]
    """,
    fix="Remove `privileged: true`; add back only the specific capabilities or devices the service needs.",
    compose_lint=("CL-0002",),
    kics=("Privileged Containers Enabled (ae5b6871)",),
)


@PRIVILEGED.per_service
def _privileged(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if svc.privileged:
        yield "runs privileged: all capabilities, all host devices, no confinement", svc.at("privileged")


NO_NEW_PRIVILEGES = Rule(
    id="SG011",
    name="no-new-privileges",
    severity=Severity.MEDIUM,
    title="Privilege escalation not blocked (no-new-privileges)",
    why="""Without `no-new-privileges`, a process in the container can gain privileges through
    setuid binaries or file capabilities, undoing the non-root user and dropped capabilities that
    contain a compromised service.""",
    bad="""
        services:
          edge:
            image: caddy:2.8.4
    """,
    good="""
        services:
          edge:
            image: caddy:2.8.4
            security_opt: ["no-new-privileges:true"]
    """,
    fix='Add `security_opt: ["no-new-privileges:true"]` to the service.',
    compose_lint=("CL-0003",),
    kics=("No New Privileges Not Set (27fcc7d6)", "Security Opt Not Set (610e266e)"),
)

_NNP_ON = {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}


@NO_NEW_PRIVILEGES.per_service
def _no_new_privileges(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    options = {o.strip().lower() for o in svc.security_opt}
    if not options & _NNP_ON:
        explicit_off = any(o.startswith("no-new-privileges") for o in options)
        what = "turns no-new-privileges off" if explicit_off else "does not set no-new-privileges"
        yield f"{what}: setuid binaries can regain privileges", svc.at("security_opt")


SECURITY_PROFILE = Rule(
    id="SG015",
    name="unconfined",
    severity=Severity.HIGH,
    title="Seccomp, AppArmor or SELinux confinement disabled",
    why="""Docker's default seccomp and AppArmor/SELinux profiles block the syscalls and files most
    container escapes use. `seccomp:unconfined`, `apparmor:unconfined`, `label:disable` or
    `systempaths=unconfined` remove that layer for the whole container.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            security_opt: ["seccomp:unconfined"]
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            security_opt: ["no-new-privileges:true"]
    """,
    fix="Remove the `unconfined`/`disable` entry from `security_opt`; if a syscall is really needed, "
    "ship a custom seccomp profile that allows just that one.",
    compose_lint=("CL-0009",),
    kics=("Default Seccomp Profile Disabled / Seccomp Disabled (404fde2c)",),
)


def _unconfined(option: str) -> str | None:
    text = option.strip().lower().replace("=", ":")
    if text in ("seccomp:unconfined", "apparmor:unconfined", "systempaths:unconfined"):
        return text.split(":", 1)[0]
    if text in ("label:disable", "label:type:spc_t"):
        return "SELinux"
    return None


@SECURITY_PROFILE.per_service
def _security_profile(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    for option in svc.security_opt:
        what = _unconfined(option)
        if what:
            yield f"disables {what} confinement (`{option}`)", svc.at("security_opt")


READ_ONLY = Rule(
    id="SG016",
    name="writable-rootfs",
    severity=Severity.LOW,
    title="Writable root filesystem",
    why="""A writable root filesystem lets an intruder replace binaries and plant persistence inside
    the container. `read_only: true` plus `tmpfs` for scratch directories keeps the image immutable;
    state belongs in named volumes.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            read_only: true
            tmpfs: ["/tmp"]
            volumes: ["node-red-data:/data"]
        volumes:
          node-red-data: {}
    """,
    fix="Set `read_only: true` and mount `tmpfs` (or volumes) on the few paths the service writes.",
    compose_lint=("CL-0007",),
)


@READ_ONLY.per_service
def _read_only(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if not svc.read_only:
        yield "root filesystem is writable (no `read_only: true`)", svc.at("read_only")


RULES = (PRIVILEGED, NO_NEW_PRIVILEGES, SECURITY_PROFILE, READ_ONLY)
