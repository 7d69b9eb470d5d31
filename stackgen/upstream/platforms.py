"""Platforms (os/architecture[/variant]) and which image platform runs on which machine.

Vocabulary, not registry I/O: the image contracts choose a default tag per platform with it, the
registry client matches manifest lists with it, and `images doctor` names the host's with it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ARCH_ALIASES = {
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}


@dataclass(frozen=True, order=True)
class Platform:
    """os/architecture[/variant], normalised as containerd does (arm64/v8 == arm64, arm == arm/v7)."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r} is not a platform such as linux/arm64 or linux/arm/v7")
        return cls.of(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    @classmethod
    def of(cls, os_: str, architecture: str, variant: str = "") -> Platform:
        os_, architecture, variant = (os_ or "").lower(), (architecture or "").lower(), (variant or "").lower()
        if architecture in _ARCH_ALIASES:
            architecture, implied = _ARCH_ALIASES[architecture]
            variant = variant or implied
        if variant and variant[0].isdigit():
            variant = "v" + variant
        if architecture == "arm64" and variant == "v8":
            variant = ""
        if architecture == "amd64" and variant == "v1":
            variant = ""
        if architecture == "arm" and not variant:
            variant = "v7"
        return cls(os_, architecture, variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @property
    def slug(self) -> str:
        """A tag- and path-safe spelling: linux-arm64, linux-arm-v7."""
        return str(self).replace("/", "-")

    @property
    def known(self) -> bool:
        """False for the `unknown/unknown` entries buildx adds for attestations."""
        return self.os not in ("", "unknown") and self.architecture not in ("", "unknown")


def compatibility(target: Platform, candidate: Platform) -> int | None:
    """0 for an exact match, N for an older ARM variant N steps down that still runs, None otherwise.

    Like containerd's `platforms.Only` for 32-bit ARM: an arm/v7 machine runs arm/v6 and v5
    binaries (certbot, for one, publishes arm/v6 only). Deliberately *not* arm64 -> 32-bit arm:
    a 64-bit stack that silently gets a 32-bit image is the kind of surprise this check exists for.
    """
    if (candidate.os, candidate.architecture) != (target.os, target.architecture):
        return None
    if candidate.variant == target.variant:
        return 0
    if target.architecture == "arm":
        want, have = _arm_level(target.variant), _arm_level(candidate.variant)
        if want is not None and have is not None and 5 <= have < want:
            return want - have
    return None


def _arm_level(variant: str) -> int | None:
    return int(variant[1:]) if re.fullmatch(r"v[0-9]+", variant) else None
