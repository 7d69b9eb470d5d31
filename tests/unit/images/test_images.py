"""Manifest reading without a network: references, platforms, recorded manifests, a fake registry, pinning.

Recorded JSON under data/manifests/: `local-build-*` were read from the local registry of the
integration tests (a `stackgen build` of arm64 + arm/v7); the OCI index and the arm/v6-only list
follow the published shapes (a buildx index with an attestation entry; certbot's amd64/arm32v6/
arm64v8 list, with arm64's `v8` variant).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from stackgen.errors import StackgenError
from stackgen.images.check import check_images, pin, stack_images
from stackgen.images.registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    Entry,
    ImageRef,
    ManifestNotFound,
    Platform,
    Registry,
    RegistryError,
    RegistryUnreachable,
    Response,
    check_registry_host,
    compatibility,
    is_loopback,
    manifest_list,
    parse_index,
    platform_of_config,
    sha256_digest,
)
from stackgen.spec import Stack
from stackgen.upstream.contracts import load_contract
from tests.support.fakes import FakeEngine, FakeRegistry, linux

DATA = Path(__file__).parent.parent / "data" / "manifests"
HASH = "$2b$10$8Rl3dm2WS59eF2aCdMwpQeBH22YmBKPmoeO.UTSxEMBtlgrKOYLfS"


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "host"),
    [
        ("caddy:2.8.4-alpine", "docker.io", "library/caddy", "2.8.4-alpine", "registry-1.docker.io"),
        ("nodered/node-red:4.0.9", "docker.io", "nodered/node-red", "4.0.9", "registry-1.docker.io"),
        ("nodered/node-red", "docker.io", "nodered/node-red", "latest", "registry-1.docker.io"),
        ("docker.io/library/nginx:1", "docker.io", "library/nginx", "1", "registry-1.docker.io"),
        ("ghcr.io/owner/app:v1", "ghcr.io", "owner/app", "v1", "ghcr.io"),
        ("127.0.0.1:5000/stackgen/x-node-red:4.0.9-abc", "127.0.0.1:5000", "stackgen/x-node-red", "4.0.9-abc", "127.0.0.1:5000"),
        ("localhost/stackgen/x:1", "localhost", "stackgen/x", "1", "localhost"),
    ],
)
def test_reference_parsing(text, registry, repository, tag, host):
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.api_host) == (registry, repository, tag, host)
    assert ref.reference == tag


def test_digest_reference_asks_for_the_digest_and_pins_the_users_spelling():
    digest = "sha256:" + "a" * 64
    ref = ImageRef.parse(f"nodered/node-red:4.0.9@{digest}")
    assert (ref.tag, ref.digest, ref.reference) == ("4.0.9", digest, digest)
    other = "sha256:" + "b" * 64
    assert ref.pinned(other) == f"nodered/node-red:4.0.9@{other}"
    assert ImageRef.parse("caddy:2").pinned(other) == f"caddy:2@{other}"


@pytest.mark.parametrize("text", ["", "Caddy:2", "caddy@sha256:abc", "a b", "nodered//x"])
def test_bad_references_are_value_errors(text):
    with pytest.raises(ValueError):
        ImageRef.parse(text)


def test_mirror_keeps_the_repository_path():
    ref = ImageRef.parse("caddy:2.8.4-alpine").on("127.0.0.1:5000")
    assert (ref.api_host, ref.repository, ref.reference) == ("127.0.0.1:5000", "library/caddy", "2.8.4-alpine")


@pytest.mark.parametrize("value", ["http://127.0.0.1:5000", "127.0.0.1:5000/v2", "host name", "h:99999", ""])
def test_registry_host_usage_errors(value):
    with pytest.raises(StackgenError, match="--registry"):
        check_registry_host(value)


def test_loopback_registries_use_plain_http():
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.org") and not is_loopback("10.0.0.5:5000")
    assert Registry("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert Registry("ghcr.io").base == "https://ghcr.io"


# ----------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/x86_64", "linux/amd64"),
        ("LINUX/ARM/V6", "linux/arm/v6"),
    ],
)
def test_platforms_normalise_like_containerd(text, expected):
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize("text", ["linux", "arm64", "linux//v7", "a/b/c/d"])
def test_bad_platforms(text):
    with pytest.raises(ValueError):
        Platform.parse(text)


def test_compatibility_arm_v7_runs_older_arm_but_arm64_wants_arm64():
    v7, v6, v5, v8 = (Platform.parse(f"linux/arm/v{n}") for n in (7, 6, 5, 8))
    arm64 = Platform.parse("linux/arm64")
    assert compatibility(v7, v7) == 0
    assert compatibility(v7, v6) == 1 and compatibility(v7, v5) == 2
    assert compatibility(v6, v7) is None, "a v6 machine cannot run v7 code"
    assert compatibility(arm64, v7) is None and compatibility(arm64, v8) is None, "a 64-bit stack never silently gets 32-bit"
    assert compatibility(Platform.parse("linux/amd64"), arm64) is None


# ----------------------------------------------------------------------------- recorded manifests


def test_recorded_local_build_list():
    entries = parse_index(json.loads(recorded("local-build-list.json")))
    assert [str(e.platform) for e in entries] == ["linux/arm64", "linux/arm/v7"]
    assert all(e.media_type == DOCKER_MANIFEST and e.size == 1562 for e in entries)


def test_recorded_buildx_index_skips_attestations_and_normalises_v8():
    entries = parse_index(json.loads(recorded("buildx-oci-index.json")))
    known = [e for e in entries if e.platform.known]
    assert [str(e.platform) for e in known] == ["linux/amd64", "linux/arm/v7", "linux/arm64"]
    assert len(entries) == 4, "the attestation entry is parsed but never matches a real platform"


def test_recorded_single_manifest_config_gives_its_platform():
    config = json.loads(recorded("local-build-armv7-config.json"))
    assert str(platform_of_config(config)) == "linux/arm/v7"
    assert config["config"]["User"] == "1000:1000"


def test_manifest_list_document_round_trips():
    entries = parse_index(json.loads(recorded("local-build-list.json")))
    body = manifest_list(entries)
    assert parse_index(json.loads(body)) == entries
    assert json.loads(body)["mediaType"] == DOCKER_LIST
    assert body == recorded("local-build-list.json").rstrip(b"\n"), "byte-identical to what the build pushed"


def test_inspect_a_list_and_a_single_image():
    fake = FakeRegistry()
    fake.add_manifest("library/caddy", "2", recorded("buildx-oci-index.json"), OCI_INDEX)
    single = fake.add_image("stackgen/x", "1", linux("arm", "v7"))
    registry = Registry("registry.example", transport=fake)
    info = registry.inspect(ImageRef.parse("registry.example/library/caddy:2"))
    assert info.list_digest == sha256_digest(recorded("buildx-oci-index.json"))
    assert [str(p) for p in info.platforms] == ["linux/amd64", "linux/arm/v7", "linux/arm64"]
    info = registry.inspect(ImageRef.parse("registry.example/stackgen/x:1"))
    assert info.list_digest is None
    assert [(str(e.platform), e.digest) for e in info.entries] == [("linux/arm/v7", single)]


def test_anonymous_bearer_token_is_fetched_once_and_reused():
    fake = FakeRegistry(token="t0k3n")
    fake.add_manifest("nodered/node-red", "4.0.9", recorded("local-build-list.json"), DOCKER_LIST)
    registry = Registry("registry.example", transport=fake)
    registry.manifest("nodered/node-red", "4.0.9")
    registry.manifest("nodered/node-red", "4.0.9")
    token_calls = [c for c in fake.calls if c[1].startswith("https://auth.example/token")]
    assert len(token_calls) == 1
    assert "scope=repository%3Anodered%2Fnode-red%3Apull" in token_calls[0][1]
    assert fake.calls[-1][2]["Authorization"] == "Bearer t0k3n"


def test_a_manifest_fetched_by_digest_must_hash_to_it():
    fake = FakeRegistry()
    body = recorded("local-build-list.json")
    wrong = "sha256:" + "0" * 64
    fake.manifests[("x/y", wrong)] = (DOCKER_LIST, body)
    with pytest.raises(RegistryError, match="corrupt or tampered"):
        Registry("registry.example", transport=fake).manifest("x/y", wrong)


def test_missing_manifest_names_repository_and_tag():
    with pytest.raises(ManifestNotFound, match="registry registry.example: no manifest library/caddy:9"):
        Registry("registry.example", transport=FakeRegistry()).manifest("library/caddy", "9")


def test_unreachable_registry_names_it():
    def refused(*_):
        raise ConnectionRefusedError(111, "Connection refused")

    def unresolvable(*_):
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(RegistryUnreachable, match=r"registry 127.0.0.1:1: unreachable \(connection refused at http://127.0.0.1:1\)"):
        Registry("127.0.0.1:1", transport=refused).manifest("a/b", "1")
    with pytest.raises(RegistryUnreachable, match="registry mirror.invalid: unreachable \\(name does not resolve\\)"):
        Registry("mirror.invalid", transport=unresolvable).manifest("a/b", "1")


def test_put_manifest_returns_the_digest_of_the_body():
    fake = FakeRegistry()
    body = recorded("local-build-list.json")
    digest = Registry("registry.example", transport=fake).put_manifest("s/x", "1", body, DOCKER_LIST)
    assert digest == sha256_digest(body) and fake.manifests[("s/x", "1")] == (DOCKER_LIST, body)


# ----------------------------------------------------------------------------- stack checks and pinning


def stack(platform: str = "linux/arm64", **images) -> Stack:
    return Stack.model_validate({"project": "pi", "domains": ["nodered.example.org"], "email": "a@example.org",
                                 "platform": platform, "images": images, "node_red": {"admin_password_hash": HASH}})


# The tags the stacks pin, from the one place they live (stackgen/contracts).
NODE_RED_TAG = load_contract("node-red").tag_for("linux/arm64").tag
CADDY_TAG = load_contract("caddy").tag_for("linux/arm64").tag
CERTBOT_TAG = load_contract("certbot").tag_for("linux/arm64").tag


def mirror() -> tuple[FakeRegistry, dict[str, dict[str, str]]]:
    """The default images of a caddy stack on one mirror: node-red and caddy multi-arch, certbot without arm/v7."""
    fake = FakeRegistry()
    digests: dict[str, dict[str, str]] = {}
    for repository, tag, platforms in [
        ("nodered/node-red", NODE_RED_TAG, [linux("amd64"), linux("arm64"), linux("arm", "v7")]),
        ("library/caddy", CADDY_TAG, [linux("amd64"), linux("arm64"), linux("arm", "v6"), linux("arm", "v7")]),
        ("certbot/certbot", CERTBOT_TAG, [linux("amd64"), linux("arm64", "v8"), linux("arm", "v6")]),
    ]:
        entries = []
        for config in platforms:
            digest = fake.add_image(repository, None, config)
            platform = platform_of_config(config)
            digests.setdefault(repository, {})[str(platform)] = digest
            entries.append(Entry(platform, digest, DOCKER_MANIFEST, 100))
        fake.add_manifest(repository, tag, manifest_list(entries), DOCKER_LIST)
    return fake, digests


def test_stack_images_only_for_rendered_services():
    assert set(stack_images(stack())) == {"node-red", "edge", "certbot"}
    no_sidecar = Stack.model_validate({"project": "pi", "domains": ["nodered.example.org"], "email": "a@example.org",
                                       "tls": {"mode": "edge-acme"}, "node_red": {"admin_password_hash": HASH}})
    assert set(stack_images(no_sidecar)) == {"node-red", "edge"}


def test_check_through_a_mirror_reports_each_platform_digest():
    fake, digests = mirror()
    checks = check_images(stack_images(stack()), Platform.parse("linux/arm64"), registry="127.0.0.1:5000",
                          source="registry", registry_factory=lambda host: Registry(host, transport=fake))
    assert all(c.ok for c in checks)
    assert {c.service: c.digest for c in checks} == {
        "node-red": digests["nodered/node-red"]["linux/arm64"],
        "edge": digests["library/caddy"]["linux/arm64"],
        "certbot": digests["certbot/certbot"]["linux/arm64"],
    }
    assert {c.source for c in checks} == {"registry 127.0.0.1:5000"}
    assert all(call[1].startswith("http://127.0.0.1:5000/v2/") for call in fake.calls), "every read goes to the mirror"


def test_check_arm_v7_prefers_exact_and_accepts_v6_with_a_note():
    fake, digests = mirror()
    checks = {c.service: c for c in check_images(stack_images(stack("linux/arm/v7")), Platform.parse("linux/arm/v7"),
                                                  registry="127.0.0.1:5000", registry_factory=lambda h: Registry(h, transport=fake))}
    assert checks["edge"].digest == digests["library/caddy"]["linux/arm/v7"] and checks["edge"].rank == 0
    assert checks["certbot"].ok and checks["certbot"].digest == digests["certbot/certbot"]["linux/arm/v6"]
    assert checks["certbot"].note == "linux/arm/v6 image, runs on linux/arm/v7"


def test_check_fails_naming_the_image_without_the_platform():
    fake, _ = mirror()
    fake.add_image("acme/edge", "1", linux("amd64"))
    images = stack_images(stack(edge="registry.example/acme/edge:1"))
    checks = {c.service: c for c in check_images(images, Platform.parse("linux/arm64"), registry="127.0.0.1:5000",
                                                  registry_factory=lambda h: Registry(h, transport=fake))}
    assert not checks["edge"].ok and checks["edge"].status == "missing"
    assert checks["edge"].note == "registry.example/acme/edge:1 has no linux/arm64 image (offers: linux/amd64)"
    assert checks["node-red"].ok and checks["certbot"].ok


def test_an_unreachable_registry_is_asked_once_and_every_image_says_so():
    calls = []

    def refused(method, url, *_):
        calls.append(url)
        raise ConnectionRefusedError(111, "Connection refused")

    checks = check_images(stack_images(stack()), Platform.parse("linux/arm64"), registry="127.0.0.1:9",
                          source="registry", registry_factory=lambda h: Registry(h, transport=refused))
    assert len(calls) == 1
    assert all(c.status == "error" and "registry 127.0.0.1:9: unreachable" in c.note for c in checks)


def test_auto_source_falls_back_to_the_local_engine_when_the_registry_is_down():
    def refused(*_):
        raise ConnectionRefusedError(111, "Connection refused")

    digest = "sha256:" + "d" * 64
    engine = FakeEngine(images={"localhost/stackgen/pi-node-red:1": {"Os": "linux", "Architecture": "arm64", "RepoDigests": []},
                         "caddy:2.8.4-alpine": {"Os": "linux", "Architecture": "arm64", "RepoDigests": [f"caddy@{digest}"]}})
    images = {"node-red": "localhost/stackgen/pi-node-red:1", "edge": "caddy:2.8.4-alpine", "certbot": "certbot/certbot:v2.11.0"}
    checks = {c.service: c for c in check_images(images, Platform.parse("linux/arm64"), source="auto", engine=engine,
                                                  registry_factory=lambda h: Registry(h, transport=refused))}
    assert checks["node-red"].ok and checks["node-red"].digest is None, "built locally: no digest to pin"
    assert checks["node-red"].source.startswith("local engine (registry localhost: unreachable")
    assert checks["edge"].ok and checks["edge"].digest == digest
    assert checks["certbot"].status == "error" and "registry-1.docker.io: unreachable" in checks["certbot"].note


def test_pin_writes_platform_digests_into_stack_yaml(tmp_path):
    from stackgen.stackdir import dump_stack, load_stack

    (tmp_path / "stack.yaml").write_bytes(dump_stack(stack()))
    fake, digests = mirror()
    checks = check_images(stack_images(stack()), Platform.parse("linux/arm64"), registry="127.0.0.1:5000",
                          registry_factory=lambda h: Registry(h, transport=fake))
    written = pin(tmp_path, checks)
    pinned = load_stack(tmp_path).images
    assert pinned.node_red == f"nodered/node-red:{NODE_RED_TAG}@{digests['nodered/node-red']['linux/arm64']}"
    assert pinned.edge == f"caddy:{CADDY_TAG}@{digests['library/caddy']['linux/arm64']}"
    assert written["images.certbot"] == pinned.certbot
    assert (tmp_path / "stack.yaml").stat().st_mode & 0o777 == 0o600


def test_pin_refuses_a_failed_check(tmp_path):
    from stackgen.stackdir import dump_stack

    (tmp_path / "stack.yaml").write_bytes(dump_stack(stack()))
    before = (tmp_path / "stack.yaml").read_bytes()
    fake, _ = mirror()
    checks = check_images(stack_images(stack("linux/arm/v7", node_red="nodered/node-red:9.9.9")), Platform.parse("linux/arm/v7"),
                          registry="127.0.0.1:5000", registry_factory=lambda h: Registry(h, transport=fake))
    with pytest.raises(StackgenError, match="not pinning: nodered/node-red:9.9.9 failed the check"):
        pin(tmp_path, checks)
    assert (tmp_path / "stack.yaml").read_bytes() == before


def test_a_redirect_to_blob_storage_does_not_carry_the_token():
    fake = FakeRegistry(token="t0k3n")
    config = json.dumps(linux("arm64")).encode()
    digest = sha256_digest(config)
    seen: list[tuple[str, dict]] = []

    def transport(method, url, headers, body, timeout):
        if url.startswith("https://blobs.example/"):
            seen.append((url, dict(headers)))
            return Response(200, {}, config)
        if "/blobs/" in url and headers.get("Authorization"):
            return Response(307, {"location": "https://blobs.example/x?sig=1"}, b"")
        return fake(method, url, headers, body, timeout)

    assert Registry("registry.example", transport=transport).blob("a/b", digest) == config
    assert seen and "Authorization" not in seen[0][1]
