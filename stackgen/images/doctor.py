"""`stackgen doctor`: can this machine build and run images for the target platforms?

Why: a build for a Pi on a laptop runs the image's RUN steps under QEMU user emulation,
registered with the kernel through binfmt_misc. When the handler is missing the failure is
an obscure `exec format error` deep inside a build; this names what is missing and what to
install, before anything is built.

Handlers are recognised by the ELF machine they match (not by name), so handlers registered by
Debian's qemu-user-static, by tonistiigi/binfmt or by hand all count. The `F` (fix binary) flag
matters: without it the emulator is looked up inside each container, where it does not exist.
"""

from __future__ import annotations

import platform as host_platform
import re
from dataclasses import dataclass
from pathlib import Path

from stackgen.images.registry import Platform

BINFMT = Path("/proc/sys/fs/binfmt_misc")

# ELF e_machine (little endian, at byte 18 of the header) and class (byte 4) per architecture.
ELF_MACHINE = {"arm64": (0xB7, 2), "arm": (0x28, 1), "amd64": (0x3E, 2), "386": (0x03, 1)}
QEMU_NAME = {"arm64": "aarch64", "arm": "arm", "amd64": "x86_64", "386": "i386"}

FIX_DEBIAN = "apt-get install qemu-user-static binfmt-support (Debian/Ubuntu; mount binfmt_misc first if it is not)"
FIX_DOCKER = "or, with Docker: docker run --privileged --rm tonistiigi/binfmt --install arm64,arm"


@dataclass(frozen=True)
class Handler:
    """One binfmt_misc registration."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    magic: bytes
    mask: bytes

    def matches(self, architecture: str) -> bool:
        if architecture not in ELF_MACHINE or len(self.magic) < 20:
            return False
        machine, elf_class = ELF_MACHINE[architecture]
        header = bytearray(20)
        header[0:4] = b"\x7fELF"
        header[4] = elf_class
        header[5] = 1  # little endian
        header[18] = machine
        mask = self.mask or b"\xff" * len(self.magic)
        return all((header[i] & mask[i]) == (self.magic[i] & mask[i]) for i in (0, 1, 2, 3, 4, 5, 18, 19))


def parse_handler(name: str, text: str) -> Handler:
    """A /proc/sys/fs/binfmt_misc/<name> file."""
    fields: dict[str, str] = {}
    enabled = False
    for line in text.splitlines():
        if line.strip() in ("enabled", "disabled"):
            enabled = line.strip() == "enabled"
            continue
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    return Handler(
        name,
        enabled,
        fields.get("interpreter", ""),
        fields.get("flags", ""),
        bytes.fromhex(fields.get("magic", "")) if re.fullmatch(r"[0-9a-f]*", fields.get("magic", "")) else b"",
        bytes.fromhex(fields.get("mask", "")) if re.fullmatch(r"[0-9a-f]*", fields.get("mask", "")) else b"",
    )


def read_handlers(root: Path = BINFMT) -> list[Handler] | None:
    """Every registered handler, or None when binfmt_misc is not mounted."""
    if not (root / "register").exists():
        return None
    handlers = []
    for entry in sorted(root.iterdir()):
        if entry.name in ("register", "status"):
            continue
        try:
            handlers.append(parse_handler(entry.name, entry.read_text()))
        except OSError:
            continue
    return handlers


def host() -> Platform:
    """This machine's platform, as the kernel reports it."""
    return Platform.of("linux", host_platform.machine())


@dataclass
class Finding:
    """One line of the doctor's report."""

    topic: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def emulation_findings(targets: list[Platform], root: Path = BINFMT, native: Platform | None = None) -> list[Finding]:
    """Per target: native, or emulated by an enabled handler (with the F flag), or what to install."""
    native = native or host()
    handlers = read_handlers(root)
    findings = []
    for target in targets:
        topic = f"run {target}"
        if target.architecture == native.architecture or (native.architecture == "arm64" and target.architecture == "arm"):
            note = "native" if target.architecture == native.architecture else "native (a 64-bit ARM CPU runs 32-bit ARM, if the kernel allows it)"
            findings.append(Finding(topic, True, note))
            continue
        if handlers is None:
            findings.append(Finding(topic, False, f"{root} is not mounted: no emulation for foreign platforms",
                                    f"mount -t binfmt_misc binfmt_misc {root}; then {FIX_DEBIAN}; {FIX_DOCKER}"))
            continue
        found = [h for h in handlers if h.matches(target.architecture)]
        enabled = [h for h in found if h.enabled]
        if not found:
            findings.append(Finding(topic, False, f"no binfmt handler for {QEMU_NAME.get(target.architecture, target.architecture)} binaries",
                                    f"{FIX_DEBIAN}; {FIX_DOCKER}"))
        elif not enabled:
            findings.append(Finding(topic, False, f"handler {found[0].name} is registered but disabled",
                                    f"echo 1 > {root / found[0].name}"))
        else:
            handler = enabled[0]
            if "F" in handler.flags:
                findings.append(Finding(topic, True, f"emulated: {handler.name} ({handler.interpreter}, flags {handler.flags})"))
            else:
                findings.append(Finding(topic, False, f"{handler.name} lacks the F flag: emulation works on the host but not inside containers",
                                        f"re-register with the F flag: {FIX_DEBIAN} (Debian's qemu-user-static sets it); {FIX_DOCKER}"))
    return findings


def builder_finding() -> Finding:
    """Which multi-platform build path `stackgen build` will take."""
    from stackgen.errors import StackgenError
    from stackgen.images.build import detect_builder

    try:
        builder = detect_builder()
    except StackgenError as exc:
        return Finding("build", False, str(exc), "install docker-buildx-plugin (Docker's packages) or docker-buildx (Debian)")
    if builder.kind == "buildx":
        return Finding("build", True, f"buildx ({builder.cli}): one multi-platform build")
    return Finding("build", True, f"no buildx: one BuildKit build per platform with {builder.cli} ({builder.version}), "
                                  "joined into a manifest list in the registry (--registry)")


def engine_finding() -> Finding:
    from stackgen.engine import EngineUnavailable, client

    try:
        engine = client(timeout=10)
    except EngineUnavailable as exc:
        return Finding("engine", False, str(exc))
    version = engine.version().get("Version", "?")
    engine.close()
    return Finding("engine", True, f"Docker engine {version}")


def diagnose(targets: list[Platform], root: Path = BINFMT, engine: bool = True) -> list[Finding]:
    findings = [Finding("host", True, str(host()), required=False)]
    if engine:
        findings.append(engine_finding())
    findings.append(builder_finding())
    findings.extend(emulation_findings(targets, root))
    return findings
