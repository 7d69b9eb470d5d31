#!/usr/bin/env python3
"""Write the hash-pinned requirements of the certbot DNS plugin twins (tests/images/certbot-dns/requirements/).

    python3 -m tests.images.pin_certbot_dns

One file per official plugin (certbot/dns-<provider>, the 13 of stackgen/upstream/contracts/certbot-dns.yaml):
``certbot-dns-<provider>`` at certbot's own version (the plugins are released in lockstep with certbot) and
every dependency it adds to the certbot twin, each ``name==version --hash=sha256:...``. pip resolves them
(``pip install --dry-run --report``, nothing installed) for the certbot twin's interpreter and platform
(build.BASE_PYTHON, manylinux x86_64, wheels only), constrained to the versions certbot/requirements.txt pins,
so a plugin never moves a package the certbot twin already has. A package two plugins share gets the same
pin in both (checked), so the wheels can be downloaded once for all of them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stackgen.upstream.contracts import load_contract
from tests.images import build

OUT = build.HERE / "certbot-dns" / "requirements"
CERTBOT_REQUIREMENTS = build.HERE / "certbot" / "requirements.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def certbot_pins() -> dict[str, str]:
    pins = {}
    for line in CERTBOT_REQUIREMENTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("==")
            pins[canonical(name)] = rest.split()[0]
    return pins


def resolve(provider: str, pins: dict[str, str], work: Path) -> list[tuple[str, str, str]]:
    """(name, version, sha256) of what certbot-dns-<provider> adds to the certbot twin."""
    constraints = work / "constraints.txt"
    report = work / f"{provider}.json"
    abi = "cp" + build.BASE_PYTHON.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
           "--dry-run", "--ignore-installed", "--only-binary=:all:", "--target", str(work / "target"),
           "--python-version", build.BASE_PYTHON, "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none",
           "--constraint", str(constraints), "--report", str(report),
           f"certbot=={pins['certbot']}", f"acme=={pins['acme']}", f"certbot-dns-{provider}=={pins['certbot']}"]
    for platform in (*build._MANYLINUX_X86_64, "any"):
        cmd += ["--platform", platform]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{provider}: pip could not resolve:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    found = []
    for item in json.loads(report.read_text())["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if canonical(name) in pins:
            if pins[canonical(name)] != version:
                raise SystemExit(f"{provider}: resolved {name}=={version}, the certbot twin pins {pins[canonical(name)]}")
            continue
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        found.append((canonical(name), version, digest))
    return sorted(found)


def main() -> int:
    pins = certbot_pins()
    providers = [p.provider for p in load_contract("certbot-dns").plugins]
    with tempfile.TemporaryDirectory(prefix="pin-certbot-dns-") as tmp:
        work = Path(tmp)
        (work / "constraints.txt").write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
        with ThreadPoolExecutor(4) as pool:
            resolved = dict(zip(providers, pool.map(lambda p: resolve(p, pins, work), providers), strict=True))
    seen: dict[str, tuple[str, str]] = {}
    for provider, packages in resolved.items():
        for name, version, digest in packages:
            if seen.setdefault(name, (version, digest)) != (version, digest):
                raise SystemExit(f"{name}: {provider} wants {version}, another plugin {seen[name][0]}: resolve them together")
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in set(OUT.glob("*.txt")) - {OUT / f"{p}.txt" for p in providers}:
        stale.unlink()
    for provider, packages in resolved.items():
        lines = [
            f"# certbot/dns-{provider}: certbot-dns-{provider} {pins['certbot']} and what it adds to the certbot twin",
            f"# (certbot/requirements.txt), pinned with hashes (wheels for CPython {build.BASE_PYTHON}, manylinux x86_64).",
            "# Written by `python3 -m tests.images.pin_certbot_dns`; installed offline by certbot-dns/Dockerfile.",
            *(f"{name}=={version} --hash=sha256:{digest}" for name, version, digest in packages),
        ]
        (OUT / f"{provider}.txt").write_text("\n".join(lines) + "\n")
        print(f"{provider}: {len(packages)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
