"""Linux capabilities: drop them all, and do not add back the ones that reach the host."""

from __future__ import annotations

from collections.abc import Iterator

from stackgen.findings import Severity
from stackgen.topology import Service, Source, Topology
from stackgen.verify.rules.base import Rule

# Each of these alone is a known path from the container to the host (module loading, raw I/O,
# mount/namespace syscalls, ptrace, open_by_handle_at, kexec, eBPF).
HOST_TAKEOVER = {
    "ALL": "every capability",
    "SYS_ADMIN": "mount, namespaces and most of the kernel's admin surface",
    "SYS_MODULE": "loading kernel modules",
    "SYS_RAWIO": "raw I/O ports and /dev/mem",
    "SYS_PTRACE": "tracing and injecting code into processes",
    "DAC_READ_SEARCH": "open_by_handle_at, which reads host files (the 'shocker' escape)",
    "SYS_BOOT": "kexec_load, booting a new kernel",
    "BPF": "loading eBPF programs into the kernel",
}
# Powerful but bounded: they reach host-wide state (network config, clock, kernel log, MAC policy).
POWERFUL = {
    "NET_ADMIN": "host-wide network configuration when combined with host networking, and packet tampering",
    "SYS_TIME": "setting the host clock",
    "SYSLOG": "reading the kernel log (addresses that defeat KASLR)",
    "PERFMON": "performance monitoring of the kernel",
    "SYS_NICE": "starving other processes of CPU",
    "SYS_RESOURCE": "overriding resource limits",
    "IPC_LOCK": "locking unbounded memory",
    "IPC_OWNER": "bypassing IPC permission checks",
    "LEASE": "file leases on shared files",
    "MAC_ADMIN": "changing AppArmor/SELinux policy",
    "MAC_OVERRIDE": "overriding AppArmor/SELinux policy",
    "LINUX_IMMUTABLE": "changing immutable file flags",
    "AUDIT_CONTROL": "reconfiguring kernel auditing",
    "AUDIT_READ": "reading the audit log",
    "SYS_PACCT": "process accounting",
    "SYS_TTY_CONFIG": "configuring host terminals",
    "WAKE_ALARM": "waking the host",
    "BLOCK_SUSPEND": "blocking host suspend",
    "CHECKPOINT_RESTORE": "checkpointing other processes",
    "NET_BROADCAST": "broadcast and multicast listening",
}

CAP_DROP_ALL = Rule(
    id="SG012",
    name="cap-drop-all",
    severity=Severity.MEDIUM,
    title="Capabilities not dropped",
    why="""Docker leaves a dozen capabilities on by default (CHOWN, DAC_OVERRIDE, SETUID, NET_RAW,
    ...). Few services need any; `cap_drop: [ALL]` removes them so a compromised process has less
    to work with, and `cap_add` documents the exceptions.""",
    bad="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
    """,
    good="""
        services:
          node-red:
            image: nodered/node-red:4.0.9
            cap_drop: [ALL]
    """,
    fix="Add `cap_drop: [ALL]` and `cap_add` only what the service is shown to need.",
    compose_lint=("CL-0006",),
    kics=("Container Capabilities Unrestricted (ce76b7d0)",),
)


@CAP_DROP_ALL.per_service
def _cap_drop(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if "ALL" not in svc.cap_drop:
        yield "keeps Docker's default capabilities (no `cap_drop: [ALL]`)", svc.at("cap_drop")


def _added(svc: Service, table: dict[str, str]) -> Iterator[tuple[str, Source | None]]:
    for cap in svc.cap_add:
        if cap in table:
            yield f"adds capability {cap}: {table[cap]}", svc.at("cap_add")


TAKEOVER_CAP = Rule(
    id="SG013",
    name="host-takeover-capability",
    severity=Severity.CRITICAL,
    title="Host-takeover capability added",
    why="""Capabilities such as SYS_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_PTRACE, DAC_READ_SEARCH,
    SYS_BOOT, BPF (or ALL) each have a published path from the container to the host. Added to
    Node-RED, a flow can use them.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            cap_add: [SYS_ADMIN]
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            cap_drop: [ALL]
    """,
    fix="Remove the capability; solve the need another way (a volume instead of mounting, a sidecar "
    "outside the stack).",
    compose_lint=("CL-0024", "CL-0011", "CL-0027"),
    kics=("Container Capabilities Unrestricted (ce76b7d0)",),
)
TAKEOVER_CAP.per_service(lambda svc, topo: _added(svc, HOST_TAKEOVER))

POWERFUL_CAP = Rule(
    id="SG014",
    name="powerful-capability",
    severity=Severity.HIGH,
    title="Host-reaching capability added",
    why="""Capabilities such as NET_ADMIN, SYS_TIME, SYSLOG, PERFMON, SYS_NICE, IPC_LOCK or MAC_ADMIN
    act on host-wide state (the clock, the kernel log, scheduling, memory, security policy) rather
    than on the container alone.""",
    bad="""
        services:
          app:
            image: alpine:3.20
            cap_add: [NET_ADMIN]
    """,
    good="""
        services:
          app:
            image: alpine:3.20
            cap_drop: [ALL]
            cap_add: [NET_BIND_SERVICE]
    """,
    fix="Remove the capability unless the service is a system tool that really needs it; then suppress with a reason.",
    compose_lint=("CL-0011", "CL-0028", "CL-0029", "CL-0030"),
    kics=("Container Capabilities Unrestricted (ce76b7d0)",),
)
POWERFUL_CAP.per_service(lambda svc, topo: _added(svc, POWERFUL))

RULES = (CAP_DROP_ALL, TAKEOVER_CAP, POWERFUL_CAP)

FILE_CAPS = Rule(
    id="SG042",
    name="file-capabilities-not-granted",
    severity=Severity.HIGH,
    title="Image's binary needs a capability that was dropped",
    why="""Some official images give their main binary a file capability (the `caddy` image:
    `setcap cap_net_bind_service=+ep /usr/bin/caddy`). After `cap_drop: [ALL]` the kernel refuses to
    exec a binary whose file capabilities it cannot grant ("exec /usr/bin/caddy: operation not
    permitted"), even with `no-new-privileges`: the hardened service never starts, and the usual
    reaction, removing `cap_drop`, gives back a dozen capabilities instead of one.""",
    bad="""
        services:
          edge:
            image: caddy:2.11.7-alpine
            cap_drop: [ALL]
    """,
    good="""
        services:
          edge:
            image: caddy:2.11.7-alpine
            cap_drop: [ALL]
            cap_add: [NET_BIND_SERVICE]
    """,
    fix="Keep `cap_drop: [ALL]` and add back exactly the binary's file capabilities with `cap_add`.",
)


@FILE_CAPS.per_service
def _file_caps(svc: Service, topo: Topology) -> Iterator[tuple[str, Source | None]]:
    if not svc.image or svc.build or "ALL" not in svc.cap_drop:
        return
    from stackgen.upstream.filecaps import image_file_capabilities  # not contracts: no pydantic in verify

    needed = image_file_capabilities(svc.image_name)
    missing = sorted(needed - set(svc.cap_add))
    if missing:
        yield (f"{svc.image_name}'s main binary carries file capabilities {', '.join(missing)}, dropped by "
               f"`cap_drop: [ALL]` and not added back: the container will not start"), svc.at("cap_drop")


RULES = RULES + (FILE_CAPS,)
