"""The file capabilities of a known upstream image's main binary, read from the contracts without pydantic.

Why not `stackgen.upstream.contracts.load_contract`: `verify` asks for every hardened service of anyone's
compose file (SG042), and validating the contracts imports pydantic and builds its models (~85 ms,
more than the rest of a 200-service verify). The same YAML files stay the one place these facts live;
`load_contract` validates them strictly (and its tests hold every contract to it), this module reads two
keys of each: `image` and `main_binary.file_capabilities`. A unit test holds both readings equal.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["CONTRACT_NAMES", "capability_names", "image_file_capabilities"]

# The families a rendered stack can run; the file stem of each contract.
CONTRACT_NAMES = ("node-red", "caddy", "nginx", "traefik", "certbot", "certbot-dns")


def capability_names(file_capabilities: str | None) -> frozenset[str]:
    """libcap's text form (`cap_net_bind_service=ep`) -> compose's names ({"NET_BIND_SERVICE"})."""
    if not file_capabilities:
        return frozenset()
    # "cap_a,cap_b=ep" or "cap_a,cap_b+ep": the names come before the operator.
    names = re.split(r"[=+-]", file_capabilities, maxsplit=1)[0]
    return frozenset(n.strip().upper().removeprefix("CAP_") for n in names.split(",") if n.strip())


@cache
def _by_image() -> dict[str, frozenset[str]]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[str, frozenset[str]] = {}
    for name in CONTRACT_NAMES:
        text = (resources.files("stackgen.upstream") / "contracts" / f"{name}.yaml").read_text(encoding="utf-8")
        data = yaml.load(text, Loader=loader)
        found.setdefault(data["image"], capability_names((data.get("main_binary") or {}).get("file_capabilities")))
    return found


def image_file_capabilities(repository: str) -> frozenset[str]:
    """File capabilities of the main binary of a known upstream image (`caddy` -> NET_BIND_SERVICE).

    `repository` as `topology.image_parts` gives it (no registry, no `library/`). Unknown images: none.
    """
    return _by_image().get(repository, frozenset())
