"""`stackgen build` without an engine: inputs, the Dockerfile, progress parsing, and both build paths
driven through a fake runner and a fake registry (commands and the manifest list are asserted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stackgen.errors import StackgenError
from stackgen.generate.render import node_red_tag
from stackgen.images import build
from stackgen.images.registry import DOCKER_LIST, DOCKER_MANIFEST, Platform, Registry, Response, parse_index
from stackgen.spec import Stack
from stackgen.stackdir import dump_stack, load_stack
from stackgen.upstream.contracts import load_contract
from tests.support.fakes import FakeRegistry, linux

HASH = "$2b$10$8Rl3dm2WS59eF2aCdMwpQeBH22YmBKPmoeO.UTSxEMBtlgrKOYLfS"


def make_stack(platform: str = "linux/arm64", **node_red) -> Stack:
    return Stack.model_validate({"project": "pi", "domains": ["nodered.example.org"], "email": "a@example.org",
                                 "platform": platform, "node_red": {"admin_password_hash": HASH, **node_red}})


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    (tmp_path / "stack.yaml").write_bytes(dump_stack(make_stack()))
    return tmp_path


# ----------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("node-red-node-random", ("node-red-node-random", "latest")),
        ("node-red-dashboard@3.6.5", ("node-red-dashboard", "3.6.5")),
        ("@flowfuse/node-red-dashboard", ("@flowfuse/node-red-dashboard", "latest")),
        ("@flowfuse/node-red-dashboard@^1.2", ("@flowfuse/node-red-dashboard", "^1.2")),
    ],
)
def test_npm_dependency(spec, expected):
    assert build.npm_dependency(spec) == expected


def test_package_json_is_sorted_and_stable():
    one = build.package_json("pi", ["node-red-node-random", "@flowfuse/node-red-dashboard@1.2.3"])
    two = build.package_json("pi", ["@flowfuse/node-red-dashboard@1.2.3", "node-red-node-random"])
    assert one == two
    assert json.loads(one)["dependencies"] == {"@flowfuse/node-red-dashboard": "1.2.3", "node-red-node-random": "latest"}


def test_a_lock_is_reused_only_for_the_same_dependencies(tmp_path):
    package = build.package_json("pi", ["a@1"])
    lock = tmp_path / "package-lock.json"
    assert not build.lock_matches(package, lock)
    lock.write_text(json.dumps({"packages": {"": {"dependencies": {"a": "1"}}}}))
    assert build.lock_matches(package, lock)
    assert not build.lock_matches(build.package_json("pi", ["a@2"]), lock)


def test_install_scripts_come_from_the_lock():
    lock = {"packages": {
        "": {"dependencies": {}},
        "node_modules/serialport": {"version": "12.0.0"},
        "node_modules/@serialport/bindings-cpp": {"version": "12.0.1", "hasInstallScript": True},
        "node_modules/x/node_modules/dev-thing": {"version": "1.0.0", "hasInstallScript": True, "dev": True},
    }}
    assert build.install_scripts(lock) == ["@serialport/bindings-cpp"]


def test_base_image_never_comes_from_images_node_red():
    stack = make_stack()
    stack.images.node_red = "127.0.0.1:5000/stackgen/pi-node-red:4.0.9-abc@sha256:" + "a" * 64
    assert build.base_image(stack) == f"nodered/node-red:{load_contract('node-red').tag_for(stack.platform).tag}"
    assert build.base_image(stack, "example.org/nr:4") == "example.org/nr:4"


@pytest.mark.parametrize(("values", "expected"), [
    ([], ["linux/arm64"]),
    (["linux/arm64", "linux/arm/v7"], ["linux/arm64", "linux/arm/v7"]),
    (["linux/arm64,linux/arm", "linux/arm64"], ["linux/arm64", "linux/arm/v7"]),
])
def test_parse_platforms(values, expected):
    assert [str(p) for p in build.parse_platforms(values, "linux/arm64")] == expected


@pytest.mark.parametrize("value", ["linux/riscv64", "arm64", "windows/amd64"])
def test_unsupported_platforms_are_usage_errors(value):
    with pytest.raises(StackgenError, match="--platform"):
        build.parse_platforms([value], "linux/arm64")


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_without_extra_nodes():
    text = build.dockerfile(make_stack(), "nodered/node-red:4.0.9", [], [], "none").decode()
    assert text.splitlines()[5] == "FROM nodered/node-red:4.0.9"
    assert "COPY" not in text and "npm rebuild" not in text
    assert [line for line in text.splitlines() if line.startswith("USER")][-1] == "USER 1000:1000"
    assert "VOLUME" not in text.replace("no VOLUME", "")
    assert "HEALTHCHECK --interval=10s" in text and "port:1880" in text


def test_dockerfile_with_nodes_copies_per_platform_and_rebuilds_only_native_ones():
    text = build.dockerfile(make_stack(), "nodered/node-red:4.0.9", ["node-red-node-serialport@2"], ["@serialport/bindings-cpp"], "sha256:x").decode()
    assert "COPY .build/${TARGETOS}-${TARGETARCH}${TARGETVARIANT}/node_modules/ /usr/src/node_modules/" in text
    assert "RUN cd /usr/src && npm rebuild --foreground-scripts @serialport/bindings-cpp" in text
    assert text.index("npm rebuild") < text.index("USER 1000:1000")
    run = next(line for line in text.splitlines() if line.startswith('RUN ["node"'))
    assert json.loads(run[4:])[-1] == "node-red-node-serialport", "the check names each extra node"
    assert 'org.stackgen.package-lock="sha256:x"' in text


def test_platform_dir_matches_the_dockerfile_args():
    assert [build.platform_dir(Platform.parse(p)) for p in build.SUPPORTED] == ["linux-amd64", "linux-arm64", "linux-armv7"]


@pytest.mark.skipif(not shutil.which("node"), reason="needs node on the host")
@pytest.mark.parametrize(("arch", "ok"), [("amd64", True), ("arm64", False)])
def test_the_build_time_check_catches_a_builder_that_ignored_the_platform(arch, ok):
    """Run the Dockerfile's check with the host's node: an x64 node for an arm64 target must fail, naming both."""
    if os.uname().machine != "x86_64":
        pytest.skip("written for an x86_64 host")
    text = build.dockerfile(make_stack(), "b", [], [], "none").decode()
    argv = json.loads(next(line for line in text.splitlines() if line.startswith('RUN ["node"'))[4:])
    proc = subprocess.run(argv, env=dict(os.environ, TARGETOS="linux", TARGETARCH=arch), capture_output=True, text=True)
    assert (proc.returncode == 0) is ok
    if not ok:
        assert "node reports x64 but the target is linux/arm64" in proc.stderr


# ----------------------------------------------------------------------------- progress


FAILED_FROM = """\
#3 [internal] load metadata for 127.0.0.1:5000/stackgen-test/node-base:arm64-only
#3 sha256:a8779e19a3059fbb8ef7dca48dda3a0dd449193d234ad0341a96b7e59678f942
#3 ERROR: no match for platform in manifest sha256:fe2f48d27c29d365f674052e92ad7adff18ee9aff872d3017630f5a1d2c1225e: not found
------
 > [internal] load metadata for 127.0.0.1:5000/stackgen-test/node-base:arm64-only:
------
failed to solve with frontend dockerfile.v0: failed to create LLB definition: no match for platform in manifest sha256:fe2f: not found"""

FAILED_RUN = """\
#6 [2/4] COPY package.json package-lock.json /usr/src/
#6 DONE 0.1s
#8 [4/4] RUN ["node", "-e", "..."]
#8 1.201 stackgen: extra node x is missing
#8 ERROR: executor failed running [node -e ...]: exit code: 1"""


def test_progress_names_the_failed_step():
    progress = build.Progress()
    steps = [s for line in FAILED_RUN.splitlines() if (s := progress.feed(line))]
    assert steps == ["[2/4] COPY package.json package-lock.json /usr/src/", '[4/4] RUN ["node", "-e", "..."]']
    error = progress.failure("linux/arm/v7")
    assert str(error) == 'linux/arm/v7: build failed at step [4/4] RUN ["node", "-e", "..."]: executor failed running [node -e ...]: exit code: 1'
    assert error.platform == "linux/arm/v7" and error.step.startswith("[4/4] RUN")


def test_a_base_without_the_platform_is_said_plainly():
    progress = build.Progress()
    for line in FAILED_FROM.splitlines():
        progress.feed(line)
    error = build._explain(progress.failure("linux/arm/v7"), "127.0.0.1:5000/stackgen-test/node-base:arm64-only")
    assert str(error).startswith("linux/arm/v7: the base image 127.0.0.1:5000/stackgen-test/node-base:arm64-only has no linux/arm/v7 image")
    assert "[internal] load metadata" in str(error)


# ----------------------------------------------------------------------------- builder detection


def fake_run(answers: dict[tuple[str, ...], tuple[int, str]]):
    def run(command, **_):
        code, out = answers.get(tuple(command), (1, ""))
        return subprocess.CompletedProcess(command, code, out, "")
    return run


def test_detect_builder_prefers_buildx_then_an_old_cli():
    run = fake_run({("/new/docker", "--version"): (0, "Docker version 28.2.2, build e6534b4"),
                    ("/old/docker", "--version"): (0, "Docker version 20.10.24+dfsg1, build 297e128")})
    assert build.detect_builder(["/new/docker", "/old/docker"], run) == build.Builder("buildkit", "/old/docker", "20.10.24")
    run = fake_run({("/new/docker", "buildx", "version"): (0, "github.com/docker/buildx v0.17.1"),
                    ("/new/docker", "--version"): (0, "Docker version 28.2.2, build e6534b4")})
    assert build.detect_builder(["/new/docker", "/old/docker"], run).kind == "buildx"


def test_detect_builder_without_any_way_says_what_to_install():
    run = fake_run({("/new/docker", "--version"): (0, "Docker version 28.2.2, build e6534b4")})
    with pytest.raises(StackgenError, match="install the buildx plugin"):
        build.detect_builder(["/new/docker"], run)


# ----------------------------------------------------------------------------- the build, faked


class FakeDocker:
    """Records commands; builds 'succeed' and record the platform; pushes land in a FakeRegistry."""

    def __init__(self, registry: FakeRegistry, fail_platform: str | None = None) -> None:
        self.registry = registry
        self.commands: list[tuple[list[str], dict]] = []
        self.built: dict[str, Platform] = {}
        self.fail_platform = fail_platform

    def __call__(self, command, env, on_line):
        self.commands.append((command, env))
        if command[1] == "build":
            platform = Platform.parse(command[command.index("--platform") + 1])
            if str(platform) == self.fail_platform:
                on_line("#5 [2/2] RUN [\"node\", \"-e\", \"...\"]")
                on_line("#5 ERROR: executor failed running [node]: exit code: 1")
                return 1
            on_line("#5 [2/2] RUN [\"node\", \"-e\", \"...\"]")
            self.built[command[command.index("-t") + 1]] = platform
            return 0
        if command[1:3] == ["image", "inspect"]:
            platform = self.built[command[-1]]
            on_line(f"{platform.os} {platform.architecture} {platform.variant}")
            return 0
        if command[1] == "push":
            name = command[2]
            repository, tag = name.split("/", 1)[1].rsplit(":", 1)
            p = self.built[name]
            self.registry.add_image(repository, tag, linux(p.architecture, p.variant))
            return 0
        return 1


def test_per_platform_build_pushes_each_and_joins_a_manifest_list(stack_dir):
    fake_registry = FakeRegistry()
    docker = FakeDocker(fake_registry)
    events: list[build.Event] = []
    result = build.build(stack_dir, ["linux/arm64", "linux/arm/v7"], registry="127.0.0.1:5000",
                         builder=build.Builder("buildkit", "/usr/bin/docker", "20.10.24"), runner=docker, report=events.append,
                         registry_factory=lambda h: Registry(h, transport=fake_registry))
    builds = [c for c, _ in docker.commands if c[1] == "build"]
    assert [c[c.index("--platform") + 1] for c in builds] == ["linux/arm64", "linux/arm/v7"]
    assert all(env["DOCKER_BUILDKIT"] == "1" for c, env in docker.commands if c[1] == "build")
    assert all("--network=none" in c for c in builds), "no extra nodes to rebuild: RUN steps get no network"
    tag = builds[0][builds[0].index("-t") + 1]
    assert tag.startswith(f"127.0.0.1:5000/stackgen/pi-node-red:{node_red_tag(load_stack(stack_dir))}-") and tag.endswith("-linux-arm64")
    assert [c[2] for c, _ in docker.commands if c[1] == "push"] == [tag, tag.replace("linux-arm64", "linux-arm-v7")]
    repository, list_tag = result.reference.split("@")[0].split("/", 1)[1].rsplit(":", 1)
    media_type, body = fake_registry.manifests[(repository, list_tag)]
    assert media_type == DOCKER_LIST
    assert [str(e.platform) for e in parse_index(json.loads(body))] == ["linux/arm64", "linux/arm/v7"]
    assert all(e.media_type == DOCKER_MANIFEST for e in parse_index(json.loads(body)))
    assert load_stack(stack_dir).images.node_red == result.reference == result.written
    assert {e.platform for e in events if e.kind == "step"} == {"linux/arm64", "linux/arm/v7"}, "progress per platform"


def test_a_failed_platform_is_named_and_stack_yaml_is_untouched(stack_dir):
    before = (stack_dir / "stack.yaml").read_bytes()
    docker = FakeDocker(FakeRegistry(), fail_platform="linux/arm/v7")
    with pytest.raises(build.BuildError) as caught:
        build.build(stack_dir, ["linux/arm64", "linux/arm/v7"], registry="127.0.0.1:5000",
                    builder=build.Builder("buildkit", "docker"), runner=docker)
    assert caught.value.platform == "linux/arm/v7" and caught.value.step == '[2/2] RUN ["node", "-e", "..."]'
    assert (stack_dir / "stack.yaml").read_bytes() == before


def test_a_builder_that_ignores_platform_is_caught(stack_dir):
    class Liar(FakeDocker):
        def __call__(self, command, env, on_line):
            if command[1:3] == ["image", "inspect"]:
                on_line("linux amd64 ")
                return 0
            return super().__call__(command, env, on_line)

    with pytest.raises(build.BuildError, match="recorded .* as linux/amd64: the builder ignored --platform"):
        build.build(stack_dir, ["linux/arm64"], builder=build.Builder("buildkit", "docker"), runner=Liar(FakeRegistry()))


def test_several_platforms_need_a_registry(stack_dir):
    with pytest.raises(StackgenError, match="--registry: building for 2 platforms needs a registry"):
        build.build(stack_dir, ["linux/arm64", "linux/arm/v7"], builder=build.Builder("buildkit", "docker"), runner=FakeDocker(FakeRegistry()))


def test_one_platform_without_a_registry_stays_local(stack_dir):
    docker = FakeDocker(FakeRegistry())
    result = build.build(stack_dir, [], builder=build.Builder("buildkit", "docker"), runner=docker)
    assert result.reference.startswith(f"localhost/stackgen/pi-node-red:{node_red_tag(load_stack(stack_dir))}-") and "@" not in result.reference
    assert not [c for c, _ in docker.commands if c[1] == "push"]
    assert load_stack(stack_dir).images.node_red == result.reference


def test_buildx_is_one_build_for_all_platforms(stack_dir):
    fake_registry = FakeRegistry()
    commands = []

    def buildx(command, env, on_line):
        commands.append(command)
        on_line("#7 [linux/arm64 2/2] RUN [\"node\"]")
        fake_registry.add_manifest("stackgen/pi-node-red", command[command.index("-t") + 1].rsplit(":", 1)[1],
                                   b'{"schemaVersion":2,"manifests":[]}', DOCKER_LIST)
        return 0

    events: list[build.Event] = []
    result = build.build(stack_dir, ["linux/arm64", "linux/arm/v7"], registry="127.0.0.1:5000", builder=build.Builder("buildx", "docker"),
                         runner=buildx, report=events.append, registry_factory=lambda h: Registry(h, transport=fake_registry))
    assert len(commands) == 1
    command = commands[0]
    assert command[1:3] == ["buildx", "build"] and command[command.index("--platform") + 1] == "linux/arm64,linux/arm/v7"
    assert "--push" in command
    assert "@sha256:" in result.reference
    assert any(e.platform == "linux/arm64" and e.kind == "step" for e in events)


def test_join_falls_back_to_docker_manifest_when_the_registry_wants_credentials(stack_dir):
    """A registry that refuses an anonymous manifest PUT: the CLI (with its own credentials) joins the platforms."""
    fake_registry = FakeRegistry()
    docker = FakeDocker(fake_registry)
    cli: list[list[str]] = []

    def runner(command, env, on_line):
        if command[1] == "manifest":
            cli.append(command)
            if command[2] == "push":
                on_line("sha256:" + "e" * 64)
            return 0
        return docker(command, env, on_line)

    def deny_put(method, url, headers, body, timeout):
        if method == "PUT":
            return Response(401, {}, b"")
        return fake_registry(method, url, headers, body, timeout)

    result = build.build(stack_dir, ["linux/arm64", "linux/arm/v7"], registry="registry.example", builder=build.Builder("buildkit", "docker"),
                         runner=runner, registry_factory=lambda h: Registry(h, transport=deny_put))
    assert [c[2] for c in cli] == ["create", "annotate", "annotate", "push"]
    assert cli[2][cli[2].index("--variant") + 1] == "v7"
    assert result.reference.endswith("@sha256:" + "e" * 64)


def test_build_never_overwrites_a_dockerfile_it_did_not_write(stack_dir):
    own = stack_dir / "node-red" / "Dockerfile"
    own.parent.mkdir()
    own.write_text("FROM my/own:image\n")
    with pytest.raises(StackgenError, match="node-red/Dockerfile: not the Dockerfile stackgen generated"):
        build.build(stack_dir, [], builder=build.Builder("buildkit", "docker"), runner=FakeDocker(FakeRegistry()))
    assert own.read_text() == "FROM my/own:image\n"


def test_build_regenerates_its_own_dockerfile(stack_dir):
    build.build(stack_dir, [], builder=build.Builder("buildkit", "docker"), runner=FakeDocker(FakeRegistry()), write=False)
    stack = load_stack(stack_dir)
    stack.node_red.version = "4.0.8"
    (stack_dir / "stack.yaml").write_bytes(dump_stack(stack))
    build.build(stack_dir, [], builder=build.Builder("buildkit", "docker"), runner=FakeDocker(FakeRegistry()), write=False)
    assert "FROM nodered/node-red:4.0.8" in (stack_dir / "node-red" / "Dockerfile").read_text()
