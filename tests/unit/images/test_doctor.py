"""`stackgen doctor`'s emulation check against fake binfmt_misc directories (no root, no kernel needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.images import doctor
from stackgen.images.registry import Platform

# As the kernel shows Debian's qemu-user-static registrations (recorded on the build machine).
AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
ARM = """enabled
interpreter /usr/libexec/qemu-binfmt/arm-binfmt-P
flags: PF
offset 0
magic 7f454c4601010100000000000000000002002800
mask ffffffffffffff00fffffffffffffffffeffffff
"""
AMD64, ARM64, ARMV7 = (Platform.parse(p) for p in ("linux/amd64", "linux/arm64", "linux/arm/v7"))


def binfmt(tmp_path: Path, **handlers: str) -> Path:
    root = tmp_path / "binfmt_misc"
    root.mkdir()
    (root / "register").write_text("")
    (root / "status").write_text("enabled\n")
    for name, text in handlers.items():
        (root / name.replace("_", "-")).write_text(text)
    return root


def test_handlers_are_matched_by_elf_machine_not_by_name(tmp_path):
    root = binfmt(tmp_path, my_arm64_emulator=AARCH64, qemu_arm=ARM)
    findings = doctor.emulation_findings([ARM64, ARMV7], root, native=AMD64)
    assert [f.ok for f in findings] == [True, True]
    assert "my-arm64-emulator" in findings[0].detail and "qemu-arm" in findings[1].detail


def test_aarch64_handler_does_not_count_for_32_bit_arm(tmp_path):
    root = binfmt(tmp_path, qemu_aarch64=AARCH64)
    findings = doctor.emulation_findings([ARM64, ARMV7], root, native=AMD64)
    assert findings[0].ok and not findings[1].ok
    assert "no binfmt handler for arm binaries" in findings[1].detail
    assert "qemu-user-static" in findings[1].fix


def test_disabled_handler_and_missing_f_flag_are_failures_with_fixes(tmp_path):
    root = binfmt(tmp_path, qemu_aarch64=AARCH64.replace("enabled", "disabled"), qemu_arm=ARM.replace("flags: PF", "flags: P"))
    disabled, no_f = doctor.emulation_findings([ARM64, ARMV7], root, native=AMD64)
    assert not disabled.ok and disabled.fix == f"echo 1 > {root / 'qemu-aarch64'}"
    assert not no_f.ok and "lacks the F flag" in no_f.detail


def test_unmounted_binfmt_misc(tmp_path):
    findings = doctor.emulation_findings([ARM64], tmp_path / "nothing", native=AMD64)
    assert not findings[0].ok and "is not mounted" in findings[0].detail and "mount -t binfmt_misc" in findings[0].fix


@pytest.mark.parametrize(("native", "target"), [(AMD64, AMD64), (ARM64, ARM64), (ARM64, ARMV7)])
def test_native_platforms_need_no_emulation(tmp_path, native, target):
    findings = doctor.emulation_findings([target], tmp_path / "nothing", native=native)
    assert findings[0].ok and findings[0].detail.startswith("native")
