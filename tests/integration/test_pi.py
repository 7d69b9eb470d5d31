"""Raspberry Pi support, for real: a local registry, a multi-platform base built under QEMU,
`stackgen build` for arm64 + arm/v7, containers of the result run under emulation, and
`stackgen images check` / `--pin` against the registry.

Everything stays on this machine: the registry is Debian's `docker-registry`, started here on
127.0.0.1 with a config this module writes (filesystem storage in a temporary directory, no
auth) and stopped afterwards; containers run with `network_mode="none"`; builds run with
`--network=none`. Images that `images check` looks for under public names (nodered/node-red,
caddy, certbot/certbot) are tiny synthetic images pushed to the local registry and read through
`--registry`, which is exactly how a mirror is used.

Under CI=true a missing engine, emulator or registry binary fails these tests (never a skip).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.generate import files
from stackgen.images import doctor
from stackgen.images.registry import DOCKER_LIST, DOCKER_MANIFEST, Entry, ImageRef, Platform, Registry, manifest_list
from stackgen.stackdir import SPEC_NAME, dump_stack, load_stack
from stackgen.upstream.contracts import load_contract
from tests.integration.conftest import _unavailable

pytestmark = pytest.mark.engine

runner = CliRunner()
ARM64, ARMV7 = Platform.parse("linux/arm64"), Platform.parse("linux/arm/v7")
EXTRA_NODE = "node-red-node-random"
EXTRA_SPEC = f"{EXTRA_NODE}@0.4.1"  # pinned: the lock is made afresh each session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def emulation():
    """QEMU handlers for arm64 and arm, registered with the F flag (scripts/ensure-emulation.sh)."""
    findings = doctor.emulation_findings([ARM64, ARMV7])
    bad = [f for f in findings if not f.ok]
    if bad:
        _unavailable("no emulation for " + "; ".join(f"{f.topic}: {f.detail}" for f in bad) + " (run scripts/ensure-emulation.sh)")
    return findings


@dataclass
class LocalRegistry:
    host: str
    root: Path
    log: Path

    def client(self) -> Registry:
        return Registry(self.host)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in a temporary directory; stopped afterwards."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.access(binary, os.X_OK):
        _unavailable("docker-registry is not installed (run scripts/ensure-emulation.sh)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = root / "registry.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=handle, stderr=subprocess.STDOUT)
    local = LocalRegistry(f"127.0.0.1:{port}", root, log)
    deadline = time.monotonic() + 20
    while True:
        try:
            local.client().ping()
            break
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"docker-registry did not answer on {local.host}:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield local
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="session")
def pushed_tags(engine, registry):
    """Tags these tests create (under the registry's name, or localhost/stackgen/): removed at the end,
    since the registry's port changes every session. Tags that existed before are left alone."""
    before = {tag for image in engine.images.list() for tag in image.tags}
    yield
    for image in engine.images.list():
        for tag in image.tags:
            if tag not in before and tag.startswith((registry.host + "/", "localhost/stackgen/")):
                try:
                    engine.images.remove(tag)
                except Exception:  # noqa: BLE001 - still used by a container that is going away
                    pass


def push(engine, source: str, target: str) -> None:
    """Tag a local image under the registry's name and push it."""
    repository, tag = target.rsplit(":", 1)
    engine.images.get(source).tag(repository, tag)
    for chunk in engine.images.push(repository, tag, stream=True, decode=True):
        if "error" in chunk:
            pytest.fail(f"push {target}: {chunk['error']}")


@pytest.fixture(scope="session")
def node_base(engine, emulation, registry, pushed_tags):
    """The multi-platform base: Debian arm64 + armhf rootfs with Node.js (built under QEMU, cached), pushed
    and joined into a manifest list. Returns its reference in the local registry."""
    from tests.images.multiarch.build import ensure_multiarch

    try:
        bases = ensure_multiarch(["linux/arm64", "linux/arm/v7"])
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"building the multi-arch test base failed: {exc}")
    for platform, base in bases.items():
        print(f"\nnode-base {platform}: {'cached' if base.cached else f'rootfs {base.rootfs_seconds:.1f}s + docker build {base.build_seconds:.1f}s'}")
    client = registry.client()
    entries = []
    for platform, base in bases.items():
        slug = platform.replace("/", "-")
        push(engine, base.tag, f"{registry.host}/stackgen-test/node-base:{slug}")
        media_type, digest, size = client.descriptor("stackgen-test/node-base", slug)
        entries.append(Entry(Platform.parse(platform), digest, media_type, size))
    client.put_manifest("stackgen-test/node-base", "1", manifest_list(entries), DOCKER_LIST)
    return f"{registry.host}/stackgen-test/node-base:1"


def make_stack(directory: Path, platform: str, **changes) -> Path:
    """`stackgen init` (non-interactive), then set spec fields (dotted names) through the model."""
    password = directory.parent / f"{directory.name}.pw"
    password.write_text("pi-integration-password\n")
    result = invoke("init", str(directory), "--non-interactive", "--domain", "nodered.example.org", "--email", "ops@example.org",
                    "--edge", "caddy", "--platform", platform, "--admin-password-file", str(password))
    assert result.exit_code == 0, result.output
    if changes:
        stack = load_stack(directory)
        for dotted, value in changes.items():
            target = stack
            *parents, last = dotted.split(".")
            for name in parents:
                target = getattr(target, name)
            setattr(target, last, value)
        files.write_atomic(directory / SPEC_NAME, dump_stack(stack), 0o600)
    return directory


@dataclass
class Built:
    directory: Path
    reference: str
    output: str
    seconds: dict[str, float]


@pytest.fixture(scope="session")
def built(engine, registry, node_base, pushed_tags, tmp_path_factory):
    """`stackgen build` of a stack with one extra node, for linux/arm64 and linux/arm/v7, pushed to the registry."""
    directory = make_stack(tmp_path_factory.mktemp("pi") / "stack", "linux/arm64", **{"node_red.extra_nodes": [EXTRA_SPEC]})
    started = time.monotonic()
    result = invoke("build", str(directory), "--platform", "linux/arm64", "--platform", "linux/arm/v7",
                    "--registry", registry.host, "--base", node_base)
    assert result.exit_code == 0, result.output
    seconds = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(linux/[a-z0-9/]+): ([0-9.]+)s", result.output, re.M)}
    print(f"\nstackgen build (arm64 + arm/v7) in {time.monotonic() - started:.1f}s; per platform: {seconds}")
    reference = load_stack(directory).images.node_red
    assert reference and "@sha256:" in reference
    return Built(directory, reference, result.output, seconds)


# ----------------------------------------------------------------------------- stackgen build


def test_build_pushes_a_manifest_list_with_both_platforms(built, registry):
    ref = ImageRef.parse(built.reference)
    manifest = registry.client().manifest(ref.repository, ref.tag)
    print("\nmanifest list:\n" + manifest.body.decode())
    assert manifest.media_type == DOCKER_LIST
    assert manifest.digest == ref.digest, "stack.yaml must point at the list the build pushed"
    info = registry.client().inspect(ref)
    assert info.platforms == sorted([ARM64, ARMV7])
    for entry in info.entries:  # each entry's image really is what the list says
        single = registry.client().inspect(ImageRef.parse(f"{registry.host}/{ref.repository}@{entry.digest}"))
        assert single.entries[0].platform == entry.platform
    assert set(built.seconds) == {"linux/arm64", "linux/arm/v7"}
    assert "[linux/arm64]" in built.output and "[linux/arm/v7]" in built.output  # progress per platform


def _pull(engine, reference: str, platform: Platform):
    """Pull one platform of a list (never `docker run --platform`: the engine would try to pull again)."""
    repository, digest = reference.split("@")
    repository = repository.rsplit(":", 1)[0]
    try:  # a list digest already pulled for another platform would be "up to date": drop that reference first
        engine.images.remove(f"{repository}@{digest}")
    except Exception:  # noqa: BLE001 - not pulled yet
        pass
    engine.api.pull(repository, tag=digest, platform=str(platform))
    return engine.images.get(f"{repository}@{digest}")


def _run(engine, image_id: str, command: list[str]) -> str:
    return engine.containers.run(image_id, command, entrypoint=[], network_mode="none", remove=True,
                                 stdout=True, stderr=True).decode().strip()


def test_arm64_container_of_the_build_runs_under_emulation(built, engine):
    image = _pull(engine, built.reference, ARM64)
    assert (image.attrs["Os"], image.attrs["Architecture"]) == ("linux", "arm64")
    assert _run(engine, image.id, ["uname", "-m"]) == "aarch64"
    assert _run(engine, image.id, ["node", "-e", "console.log(process.arch)"]) == "arm64"
    version = _run(engine, image.id, ["node", "-e", f"console.log(require('/usr/src/node_modules/{EXTRA_NODE}/package.json').version)"])
    lock = json.loads((built.directory / "node-red" / "package-lock.json").read_text())
    assert version == lock["packages"][f"node_modules/{EXTRA_NODE}"]["version"]  # the locked version, baked in
    config = image.attrs["Config"]
    assert config["User"] == "1000:1000"
    assert not config.get("Volumes")
    assert config["Healthcheck"]["Test"][:3] == ["CMD", "node", "-e"]
    assert _run(engine, image.id, ["id", "-u"]) == "1000"
    owner = _run(engine, image.id, ["stat", "-c", "%u", f"/usr/src/node_modules/{EXTRA_NODE}/package.json"])
    assert owner == "0", "baked-in code must not be writable by the uid Node-RED runs as"


def test_armv7_container_of_the_build_runs_under_emulation(built, engine):
    image = _pull(engine, built.reference, ARMV7)
    assert (image.attrs["Architecture"], image.attrs.get("Variant")) == ("arm", "v7")
    assert _run(engine, image.id, ["uname", "-m"]) == "armv7l"
    assert _run(engine, image.id, ["node", "-e", "console.log(process.arch)"]) == "arm"


def test_build_for_a_platform_the_base_lacks_names_platform_and_step(engine, registry, node_base, pushed_tags, tmp_path):
    """The failure users hit when an upstream image drops arm/v7: the build says so, with platform and step."""
    client = registry.client()
    arm64_only = [e for e in client.inspect(ImageRef.parse(node_base)).entries if e.platform == ARM64]
    client.put_manifest("stackgen-test/node-base", "arm64-only", manifest_list(arm64_only), DOCKER_LIST)
    directory = make_stack(tmp_path / "stack", "linux/arm/v7")
    result = invoke("build", str(directory), "--registry", registry.host, "--base", f"{registry.host}/stackgen-test/node-base:arm64-only")
    assert result.exit_code == 1, result.output
    message = result.output.split("error:")[-1]
    assert "linux/arm/v7: the base image" in message and "node-base:arm64-only has no linux/arm/v7 image" in message, result.output
    assert "load metadata" in message, "names the step"
    assert "Traceback" not in result.output
    assert load_stack(directory).images.node_red is None, "a failed build must not touch stack.yaml"


# ----------------------------------------------------------------------------- images check


def _synthetic(client: Registry, repository: str, tag: str, platforms: list[str], single: bool = False) -> dict[str, str]:
    """Push a tiny image per platform (a real layer and config) and a manifest list over them; returns platform -> digest."""
    digests, entries = {}, []
    for text in platforms:
        platform = Platform.parse(text)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            data = f"{repository}:{tag} {platform}\n".encode()
            info = tarfile.TarInfo("etc/stackgen-synthetic")
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
        layer = gzip.compress(raw.getvalue(), mtime=0)
        config = {"architecture": platform.architecture, "os": platform.os, "config": {},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()]}}
        if platform.variant:
            config["variant"] = platform.variant
        config_bytes = json.dumps(config).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config_bytes),
                       "digest": client.put_blob(repository, config_bytes)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                        "digest": client.put_blob(repository, layer)}],
        }).encode()
        digest = client.put_manifest(repository, tag if single else f"{tag}-{platform.slug}", manifest, DOCKER_MANIFEST)
        digests[str(platform)] = digest
        entries.append(Entry(platform, digest, DOCKER_MANIFEST, len(manifest)))
    if not single:
        client.put_manifest(repository, tag, manifest_list(entries), DOCKER_LIST)
    return digests


# The stack's default images, as the contracts pin them (the one place versions live).
KEEP_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v6", "linux/arm/v7")
NODE_RED_64 = load_contract("node-red").reference("linux/arm64")
NODE_RED_32 = load_contract("node-red").reference("linux/arm/v7")
CADDY = load_contract("caddy").reference("linux/arm64")
CERTBOT = load_contract("certbot").reference("linux/arm64")


@pytest.fixture(scope="session")
def mirror(registry):
    """The stack's default images, as synthetic multi-platform images in the local registry (a mirror),
    each tag with the platforms its contract says upstream publishes (certbot: amd64, arm64, arm/v6 —
    an arm/v7 Pi runs the arm/v6 image; Node-RED 5: no 32-bit ARM)."""
    client = registry.client()
    images = {}
    for name in ("node-red", "caddy", "certbot"):
        contract = load_contract(name)
        repository = contract.image if "/" in contract.image else f"library/{contract.image}"
        for tag in contract.tags:
            platforms = [p for p in KEEP_PLATFORMS if p in tag.platforms]
            images[f"{contract.image}:{tag.tag}"] = _synthetic(client, repository, tag.tag, platforms)
    images["edge.example.org/amd64only/caddy:1"] = _synthetic(client, "amd64only/caddy", "1", ["linux/amd64"], single=True)
    return images


def _json_part(output: str) -> str:
    """The JSON document in mixed output (the runner merges stderr's error lines into it)."""
    return output[output.index("{") : output.rindex("}") + 1]


def _check(directory: Path, *args: str):
    result = invoke("images", "check", str(directory), *args)
    assert "Traceback" not in result.output
    return result


def test_images_check_passes_and_reports_each_platform_digest(registry, mirror, tmp_path):
    directory = make_stack(tmp_path / "stack", "linux/arm64")
    result = _check(directory, "--registry", registry.host, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    digests = {item["image"]: item["digest"] for item in report["images"]}
    assert digests == {image: mirror[image]["linux/arm64"] for image in (NODE_RED_64, CADDY, CERTBOT)}
    assert {item["source"] for item in report["images"]} == {f"registry {registry.host}"}


def test_images_check_on_arm_v7_accepts_arm_v6_certbot_and_says_so(registry, mirror, tmp_path):
    directory = make_stack(tmp_path / "stack", "linux/arm/v7")
    result = _check(directory, "--registry", registry.host)
    assert result.exit_code == 0, result.output
    assert "note: certbot: linux/arm/v6 image, runs on linux/arm/v7" in result.output
    report = {item["service"]: item for item in json.loads(_check(directory, "--registry", registry.host, "--format", "json").output)["images"]}
    assert (report["certbot"]["matched"], report["certbot"]["digest"]) == ("linux/arm/v6", mirror[CERTBOT]["linux/arm/v6"])
    assert (report["edge"]["matched"], report["edge"]["digest"]) == ("linux/arm/v7", mirror[CADDY]["linux/arm/v7"])  # exact beats v6
    assert report["node-red"]["image"] == NODE_RED_32 and report["node-red"]["matched"] == "linux/arm/v7"


def test_images_check_fails_naming_the_image_that_lacks_the_platform(registry, mirror, tmp_path):
    directory = make_stack(tmp_path / "stack", "linux/arm64", **{"images.edge": "edge.example.org/amd64only/caddy:1"})
    result = _check(directory, "--registry", registry.host)
    assert result.exit_code == 1, result.output
    assert "edge.example.org/amd64only/caddy:1 has no linux/arm64 image (offers: linux/amd64)" in result.output
    assert "nodered/node-red" not in result.output.split("error:", 1)[1], "only the failing image is blamed"


def test_pin_writes_digests_that_generate_renders(registry, mirror, tmp_path):
    directory = make_stack(tmp_path / "stack", "linux/arm64")
    result = _check(directory, "--registry", registry.host, "--pin")
    assert result.exit_code == 0, result.output
    stack = load_stack(directory)
    assert stack.images.node_red == f"{NODE_RED_64}@{mirror[NODE_RED_64]['linux/arm64']}"
    assert stack.images.edge == f"{CADDY}@{mirror[CADDY]['linux/arm64']}"
    assert stack.images.certbot == f"{CERTBOT}@{mirror[CERTBOT]['linux/arm64']}"
    assert (directory / SPEC_NAME).stat().st_mode & 0o777 == 0o600
    result = invoke("generate", str(directory))
    assert result.exit_code == 0, result.output
    compose = (directory / "compose.yaml").read_text()
    for image in (stack.images.node_red, stack.images.edge, stack.images.certbot):
        assert f"image: {image}\n" in compose
    assert "SG025" not in compose, "every image is pinned: no digest suppression left"
    again = _check(directory, "--registry", registry.host)  # a pinned stack checks by digest
    assert again.exit_code == 0, again.output


def test_images_check_of_an_unreachable_registry_is_a_clear_error(tmp_path):
    directory = make_stack(tmp_path / "stack", "linux/arm64")
    port = free_port()  # bound and released: nothing listens there
    result = _check(directory, "--registry", f"127.0.0.1:{port}", "--source", "registry")
    assert result.exit_code == 1, result.output
    assert f"registry 127.0.0.1:{port}: unreachable (connection refused" in result.output


def test_images_check_of_the_built_stack(built, registry, mirror):
    result = _check(built.directory, "--registry", registry.host, "--format", "json")
    assert result.exit_code == 0, result.output
    node_red = next(item for item in json.loads(result.output)["images"] if item["service"] == "node-red")
    info = registry.client().inspect(ImageRef.parse(built.reference))
    assert node_red["digest"] == next(e.digest for e in info.entries if e.platform == ARM64)
    assert node_red["list_digest"] == ImageRef.parse(built.reference).digest


def test_images_check_reads_the_local_engine(built, engine, local_images, tmp_path):
    """--source engine: the local image's recorded platform counts; an amd64-only local edge fails for arm64."""
    _pull(engine, built.reference, ARM64)
    directory = make_stack(tmp_path / "stack", "linux/arm64", **{
        "images.node_red": built.reference, "images.edge": "stackgen-local/caddy:latest", "images.certbot": "stackgen-local/certbot:latest"})
    result = _check(directory, "--source", "engine", "--format", "json")
    assert result.exit_code == 1, result.output
    report = {item["service"]: item for item in json.loads(_json_part(result.output))["images"]}
    assert report["node-red"]["status"] == "ok" and report["node-red"]["source"] == "local engine"
    assert report["edge"]["status"] == "missing" and report["edge"]["available"] == ["linux/amd64"]
    assert "stackgen-local/caddy:latest has no linux/arm64 image" in result.output


# ----------------------------------------------------------------------------- extra nodes, natively


def test_extra_node_is_loaded_by_node_red_from_the_baked_image(engine, local_images, pushed_tags, tmp_path):
    """amd64, no emulation: the nodes baked into /usr/src/node_modules are the ones Node-RED loads, read-only."""
    directory = make_stack(tmp_path / "stack", "linux/amd64", **{"node_red.extra_nodes": [EXTRA_SPEC]})
    result = invoke("build", str(directory), "--base", "stackgen-local/node-red:latest")
    assert result.exit_code == 0, result.output
    reference = load_stack(directory).images.node_red
    assert reference.startswith("localhost/stackgen/")
    container = engine.containers.run(reference, detach=True, network_mode="none", read_only=True,
                                      tmpfs={"/data": "uid=1000,gid=1000", "/tmp": ""})
    try:
        script = ("require('http').get({host:'127.0.0.1',port:1880,path:'/nodes',headers:{Accept:'application/json'}},"
                  "r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(JSON.stringify(JSON.parse(b)"
                  f".filter(n=>n.module==='{EXTRA_NODE}'))))}}).on('error',e=>{{console.error(e.message);process.exit(1)}})")
        deadline = time.monotonic() + 60
        while True:
            code, out = container.exec_run(["node", "-e", script])
            if code == 0:
                break
            container.reload()
            assert container.status == "running" and time.monotonic() < deadline, container.logs().decode()[-2000:]
            time.sleep(0.5)
        loaded = json.loads(out)
        assert loaded and loaded[0]["enabled"] and loaded[0]["types"] == ["random"], out
    finally:
        container.remove(force=True)


# ----------------------------------------------------------------------------- doctor


def test_doctor_reports_the_emulators(emulation):
    result = invoke("doctor", "--platform", "linux/arm64", "--platform", "linux/arm/v7")
    assert result.exit_code == 0, result.output
    assert "run linux/arm64" in result.output and "run linux/arm/v7" in result.output
    assert "FAIL" not in result.output
