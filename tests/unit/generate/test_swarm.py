"""compose.swarm.yaml: the transformation of the rendered compose document for `docker stack deploy`.

Every edge x TLS mode of the golden matrix, plus what only a hand-made document shows (several Node-RED
instances, a bind address, keys Swarm cannot take). The live proof (`docker stack config`, a deploy on a
single-node swarm) is tests/integration/test_swarm.py.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.errors import StackgenError
from stackgen.generate import swarm
from stackgen.generate.files import Action, HandEditError, RenderedFile
from stackgen.generate.render import render
from stackgen.generate.workflow import generate, init
from stackgen.spec import Stack
from tests import golden

COMBOS = golden.combos()
IDS = [f"{edge}-{mode}" for edge, mode in COMBOS]
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# What a 3.9 stack file's service may hold (docker/cli's config_schema_v3.9.json), minus what Swarm ignores
# (`docker stack deploy` prints "Ignoring unsupported options" for build, container_name, depends_on, restart,
# security_opt, tmpfs, ...): a key outside this set is rejected or silently dropped.
SWARM_SERVICE_KEYS = {
    "cap_add", "cap_drop", "command", "configs", "credential_spec", "deploy", "dns", "dns_search", "domainname",
    "entrypoint", "environment", "env_file", "expose", "extra_hosts", "healthcheck", "hostname", "image", "init",
    "isolation", "labels", "logging", "networks", "ports", "read_only", "secrets", "stdin_open", "stop_grace_period",
    "stop_signal", "sysctls", "tty", "ulimits", "user", "volumes", "working_dir", "x-stackgen",
}
TOP_LEVEL_KEYS = {"version", "x-stackgen", "services", "networks", "volumes", "secrets", "configs"}


def transformed(stack: Stack, extra_files: dict[str, bytes] | None = None):
    files = render(stack) + [RenderedFile(path, content) for path, content in (extra_files or {}).items()]
    rendered = {f.path: f for f in files}
    compose = swarm.load_compose(rendered["compose.yaml"].content)
    return compose, swarm.swarm_document(compose, files), rendered


def golden_swarm(edge: str, mode: str):
    stack = golden.golden_stack(edge, mode)
    extra = {stack.tls.ca_bundle: CA_PEM} if stack.tls.ca_bundle else {}
    return (stack, *transformed(stack, extra))


@pytest.fixture(scope="module", params=COMBOS, ids=IDS)
def case(request):
    return golden_swarm(*request.param)


def _mounts(service: dict, kind: str) -> list[dict]:
    return [m for m in service.get("volumes") or [] if m.get("type") == kind]


def test_internal_networks_become_internal_encrypted_overlays(case):
    _, compose, result, _ = case
    networks = result.document["networks"]
    assert set(networks) == set(compose["networks"])
    for key, network in networks.items():
        assert network["driver"] == "overlay"
        assert network["driver_opts"]["encrypted"] == "true"
        assert bool(network.get("internal")) == bool((compose["networks"][key] or {}).get("internal"))
        assert not any(option.startswith("com.docker.network.bridge.") for option in network["driver_opts"])
        assert not network.get("attachable"), "an attachable overlay lets any container on a manager join it"
    assert networks["internal"]["internal"] is True
    header = swarm.header(result)
    assert "kernel lacks IPsec ESP (CONFIG_INET_ESP)" in header and "swarm.encrypted_overlays: false" in header
    assert "overlay encryption is OFF" not in header and not result.warnings


def test_overlay_encryption_off_leaves_no_encrypted_option_and_says_so_loudly(case):
    _, compose, _, rendered = case
    result = swarm.swarm_document(compose, rendered.values(), encrypted=False)
    for key, network in result.document["networks"].items():
        # The overlay driver encrypts when the option is there at all (`encrypted: "false"` would still encrypt).
        assert "encrypted" not in (network.get("driver_opts") or {}), key
        assert network["driver"] == "overlay" and bool(network.get("internal")) == bool((compose["networks"][key] or {}).get("internal"))
    assert result.document["networks"]["internal"]["internal"] is True
    header = swarm.header(result)
    assert "# WARNING: overlay encryption is OFF (stack.yaml swarm.encrypted_overlays: false)" in header
    assert "plain" in header and "IPsec (ESP, IP protocol 50)" not in header
    assert all(line.startswith("#") for line in header.splitlines())
    assert result.warnings == [swarm.UNENCRYPTED]


def test_an_encrypted_option_from_compose_does_not_survive_encryption_off():
    compose = {"name": "p", "services": {}, "networks": {"n": {"driver_opts": {"encrypted": "", "com.docker.network.bridge.name": "x"}}}}
    assert "driver_opts" not in swarm.swarm_document(compose, [], encrypted=False).document["networks"]["n"]
    assert swarm.swarm_document(compose, []).document["networks"]["n"]["driver_opts"] == {"encrypted": "true"}


def test_rendered_files_become_configs_never_bind_mounts(case):
    _, compose, result, rendered = case
    document = result.document
    for name, service in compose["services"].items():
        out = document["services"][name]
        for mount in _mounts(service, "bind"):
            path = mount["source"].removeprefix("./")
            if path in rendered:
                config = next(c for c in out["configs"] if c["target"] == mount["target"])
                assert document["configs"][config["source"]] == {"file": "./" + path}
                # the file's own mode, as the bind mount showed it (the edge's entrypoint overwrites its copies)
                assert config["mode"] == rendered[path].mode and (config["uid"], config["gid"]) == ("0", "0")
                digest = hashlib.sha256(path.encode() + b"\0" + rendered[path].content).hexdigest()[:8]
                assert config["source"].endswith(digest), "a changed file must be a new config (configs are immutable)"
        for mount in _mounts(out, "bind"):
            assert mount["source"].removeprefix("./") not in rendered, f"{name}: {mount['source']} is still a bind mount"
    for config in document.get("configs", {}).values():
        assert config["file"].removeprefix("./") in rendered or config["file"].removeprefix("./").startswith("ca/")


def test_secrets_are_long_syntax_owned_by_the_service_user(case):
    _, compose, result, _ = case
    document = result.document
    assert document["secrets"] == compose["secrets"]
    for name, service in compose["services"].items():
        uid = service["user"].split(":")[0]
        for entry in document["services"][name].get("secrets", []):
            assert entry["uid"] == uid and entry["mode"] == 0o400
            assert entry["source"] in compose["secrets"]
        assert len(document["services"][name].get("secrets", [])) == len(service.get("secrets", []))


def test_the_edge_publishes_in_host_mode(case):
    stack, compose, result, _ = case
    edge = result.document["services"]["edge"]
    assert edge["ports"] == [
        {"target": 8080, "published": stack.ports.http, "protocol": "tcp", "mode": "host"},
        {"target": 8443, "published": stack.ports.https, "protocol": "tcp", "mode": "host"},
    ]
    assert [name for name, service in result.document["services"].items() if service.get("ports")] == ["edge"]


def test_stateful_services_are_pinned_by_a_node_label(case):
    stack, compose, result, _ = case
    services = result.document["services"]
    label = f"org.stackgen.{stack.project}"

    def constraints(name):
        return services[name]["deploy"]["placement"]["constraints"]

    assert constraints("node-red")[0] == f"node.labels.{label}.node-red == true"
    assert constraints("edge")[0] == f"node.labels.{label}.edge == true"
    if "certbot" in services:  # certbot writes the key volume the edge reads: one node for both
        assert constraints("certbot")[0] == constraints("edge")[0]
        assert services["certbot"]["deploy"]["placement"]["max_replicas_per_node"] == 1
    assert services["node-red"]["deploy"]["placement"]["max_replicas_per_node"] == 1
    for name in services:
        assert {"node.platform.os == linux", "node.platform.arch == x86_64"} <= set(constraints(name))
    header = swarm.header(result)
    assert f"docker node update --label-add {label}.node-red=true NODE" in header
    assert f"docker node update --label-add {label}.edge=true NODE" in header
    assert {pin.label for pin in result.pins} == {f"{label}.node-red", f"{label}.edge"}


def test_limits_restart_and_hardening_carry_over(case):
    _, compose, result, _ = case
    for name, service in compose["services"].items():
        out = result.document["services"][name]
        limits = out["deploy"]["resources"]["limits"]
        assert limits == {"memory": service["mem_limit"], "cpus": str(service["cpus"]), "pids": service["pids_limit"]}
        assert out["deploy"]["restart_policy"] == {"condition": "any", "delay": "5s"}
        assert out["deploy"]["replicas"] == 1 and out["deploy"]["update_config"]["order"] == "stop-first"
        assert out["deploy"]["endpoint_mode"] == "dnsrr", "no virtual IP: no IPVS needed (not every kernel has it)"
        for key in ("image", "read_only", "cap_drop", "healthcheck", "logging", "environment", "networks", "stop_signal"):
            assert out.get(key) == service.get(key), f"{name}: {key}"
        assert out.get("cap_add") == service.get("cap_add")
        assert [m["target"] for m in _mounts(out, "tmpfs")] == [entry.split(":")[0] for entry in service["tmpfs"]]
        assert _mounts(out, "volume") == _mounts(service, "volume")
        assert out["deploy"]["labels"]["org.stackgen.role"] == service["labels"]["org.stackgen.role"]


def test_nothing_swarm_rejects_or_ignores(case):
    _, _, result, _ = case
    document = result.document
    assert set(document) <= TOP_LEVEL_KEYS and document["version"] == "3.9"
    for name, service in document["services"].items():
        assert set(service) <= SWARM_SERVICE_KEYS, f"{name}: {sorted(set(service) - SWARM_SERVICE_KEYS)}"
        for port in service.get("ports", []):
            assert "host_ip" not in port
    text = swarm.dump_swarm(result).decode()
    assert "\nname:" not in text and "platform:" not in text


def test_every_dropped_security_property_is_in_the_header(case):
    _, compose, result, _ = case
    header = swarm.header(result)
    for name, service in compose["services"].items():
        for option in service.get("security_opt", []):
            assert f"{name}: security_opt {option}" in header
        if "depends_on" in service:
            assert f"{name}: depends_on" in header
    for line in swarm.ALWAYS_LOST:
        assert line in header
    assert all(line.startswith("#") for line in header.splitlines())


def test_the_edge_reads_the_key_through_its_primary_group():
    stack, compose, result, _ = golden_swarm("nginx", "certbot-http01")
    assert compose["services"]["edge"]["group_add"] == ["1500"]
    assert result.document["services"]["edge"]["user"] == "101:1500"
    assert "group_add 1500 -> user 101:1500" in swarm.header(result)


def test_certbot_tmpfs_modes_are_reported_lost():
    *_, result, _ = golden_swarm("caddy", "certbot-http01")
    header = swarm.header(result)
    assert "certbot: tmpfs /var/lib/letsencrypt mode 0700" in header
    assert "restarted about every 5 min" in header


def test_files_mode_keeps_the_certificate_directory_a_bind_on_the_pinned_node():
    stack, compose, result, _ = golden_swarm("traefik", "files")
    edge = result.document["services"]["edge"]
    assert _mounts(edge, "bind") == [{"type": "bind", "source": "./tls", "target": "/etc/stackgen/tls", "read_only": True}]
    assert any("host paths ./tls" in why for pin in result.pins for why in pin.why)


def test_the_ca_bundle_becomes_a_config_when_its_content_is_known():
    stack, compose, result, _ = golden_swarm("caddy", "edge-acme")
    edge = result.document["services"]["edge"]
    assert not _mounts(edge, "bind")
    config = next(c for c in edge["configs"] if c["target"] == "/etc/stackgen/acme-ca.pem")
    assert result.document["configs"][config["source"]] == {"file": "./ca/home-ca.pem"}


def test_a_bind_address_swarm_cannot_keep_is_said_loudly():
    stack = golden.golden_stack("caddy", "certbot-http01").model_copy(deep=True)
    stack.ports.bind_address = "127.0.0.1"
    _, result, _ = transformed(stack)
    assert any("127.0.0.1" in warning for warning in result.warnings)
    assert "edge: ports host_ip 127.0.0.1" in swarm.header(result)


def test_same_input_same_bytes():
    stack = golden.golden_stack("nginx", "internal")
    first = swarm.dump_swarm(transformed(stack)[1])
    assert first == swarm.dump_swarm(transformed(Stack.model_validate(stack.model_dump()))[1])


def test_several_instances_are_classified_by_role_and_volume_not_by_name():
    """Node-RED instances (issue 14): each with its own volume, network and secret; each pinned on its own label."""
    stack = golden.golden_stack("caddy", "certbot-http01")
    compose, _, rendered = transformed(stack)
    services = compose["services"]
    first = services.pop("node-red")
    for suffix in ("a", "b"):
        instance = copy.deepcopy(first)
        instance["volumes"][0]["source"] = f"node-red-{suffix}-data"
        instance["networks"] = [f"internal-{suffix}"]
        instance["secrets"] = [f"node_red_{suffix}_credential_secret"]
        services[f"node-red-{suffix}"] = instance
        compose["volumes"][f"node-red-{suffix}-data"] = {}
        compose["networks"][f"internal-{suffix}"] = copy.deepcopy(compose["networks"]["internal"])
        compose["secrets"][f"node_red_{suffix}_credential_secret"] = {"file": f"./secrets/node_red_{suffix}_credential_secret"}
        services["edge"]["networks"][f"internal-{suffix}"] = None
    del compose["volumes"]["node-red-data"], compose["networks"]["internal"], services["edge"]["networks"]["internal"]
    del compose["secrets"]["node_red_credential_secret"]
    result = swarm.swarm_document(compose, rendered.values())
    out = result.document["services"]
    label = f"org.stackgen.{stack.project}"
    assert out["node-red-a"]["deploy"]["placement"]["constraints"][0] == f"node.labels.{label}.node-red-a == true"
    assert out["node-red-b"]["deploy"]["placement"]["constraints"][0] == f"node.labels.{label}.node-red-b == true"
    assert out["edge"]["deploy"]["placement"]["constraints"][0] == out["certbot"]["deploy"]["placement"]["constraints"][0]
    for suffix in ("a", "b"):
        assert result.document["networks"][f"internal-{suffix}"]["internal"] is True
        assert out[f"node-red-{suffix}"]["deploy"]["placement"]["max_replicas_per_node"] == 1
    # the instances share their rendered settings, so they share the config (same content, same key)
    assert out["node-red-a"]["configs"] == out["node-red-b"]["configs"]


def test_interpolation_escapes_and_quoting_survive():
    stack = golden.golden_stack("caddy", "internal")
    rendered = render(stack)
    compose_yaml = next(f.content for f in rendered if f.path == "compose.yaml")
    text = compose_yaml.replace(b"TZ: Etc/UTC", b"TZ: Etc/UTC\n      LITERAL: a$$b", 1)
    out = swarm.swarm_file(text, rendered)[0].content.decode()
    assert "LITERAL: a$$b" in out
    assert 'user: "1000:1000"' in out and 'max-file: "3"' in out


@pytest.mark.parametrize("key, value", [("privileged", True), ("network_mode", "host"), ("devices", ["/dev/ttyUSB0"])])
def test_keys_swarm_cannot_run_are_refused(key, value):
    stack = golden.golden_stack("caddy", "internal")
    compose, _, rendered = transformed(stack)
    compose["services"]["node-red"][key] = value
    with pytest.raises(StackgenError, match=key):
        swarm.swarm_document(compose, rendered.values())


def test_build_and_container_name_are_dropped_with_a_note():
    stack = golden.golden_stack("caddy", "internal")
    compose, _, rendered = transformed(stack)
    compose["services"]["node-red"] |= {"build": {"context": "./node-red"}, "container_name": "nr"}
    result = swarm.swarm_document(compose, rendered.values())
    assert not {"build", "container_name"} & set(result.document["services"]["node-red"])
    assert any("build dropped" in line for line in result.changed)


# --- generate: the file in the stack directory ---------------------------------------------------------------


def _stack(target: str = "compose") -> Stack:
    data = golden.golden_stack("caddy", "certbot-http01").model_dump(exclude_none=True)
    return Stack.model_validate(data | {"target": target})


def test_generate_with_target_swarm_writes_the_stack_file_and_a_later_compose_run_removes_it(tmp_path: Path):
    directory = tmp_path / "s"
    init(directory, _stack())
    assert not (directory / swarm.SWARM_FILE).exists()
    result = generate(directory, target="swarm")
    assert [f.action for f in result.plan.files if f.path == swarm.SWARM_FILE] == [Action.CREATE]
    text = (directory / swarm.SWARM_FILE).read_text()
    assert text.startswith("# Generated by stackgen") and "docker stack deploy -c compose.swarm.yaml golden-caddy-certbot-http01" in text
    assert [f.action for f in generate(directory, target="swarm").plan.files if f.path == swarm.SWARM_FILE] == [Action.UNCHANGED]
    removed = generate(directory)
    assert [f.action for f in removed.plan.files if f.path == swarm.SWARM_FILE] == [Action.REMOVE]
    assert not (directory / swarm.SWARM_FILE).exists()


def test_the_spec_target_writes_it_and_a_hand_edit_is_kept(tmp_path: Path):
    directory = tmp_path / "s"
    init(directory, _stack("swarm"))
    path = directory / swarm.SWARM_FILE
    assert path.exists()
    path.write_text(path.read_text() + "# mine\n")
    with pytest.raises(HandEditError):
        generate(directory)
    kept = generate(directory, target="compose")
    assert [f.action for f in kept.plan.files if f.path == swarm.SWARM_FILE] == [Action.ORPHAN] and path.exists()


def test_generate_reads_the_ca_bundle_for_its_config(tmp_path: Path):
    directory = tmp_path / "s"
    directory.mkdir()
    (directory / "ca").mkdir()
    (directory / "ca" / "home-ca.pem").write_bytes(CA_PEM)
    data = golden.golden_stack("caddy", "edge-acme").model_dump(exclude_none=True)
    init(directory, Stack.model_validate(data | {"target": "swarm"}))
    text = (directory / swarm.SWARM_FILE).read_text()
    assert "file: ./ca/home-ca.pem" in text and "type: bind" not in text


def test_spec_swarm_encrypted_overlays_false_reaches_the_stack_file_and_generate_warns(tmp_path: Path):
    directory = tmp_path / "s"
    init(directory, _stack("swarm"))
    assert "swarm:" not in (directory / "stack.yaml").read_text(), "unset: the default, not written"
    assert "encrypted: \"true\"" in (directory / swarm.SWARM_FILE).read_text()
    data = _stack("swarm").model_dump(exclude_none=True) | {"swarm": {"encrypted_overlays": False}}
    stack = Stack.model_validate(data)
    assert not stack.encrypted_overlays and _stack().encrypted_overlays
    result = generate(directory, stack=stack)
    assert [f.action for f in result.plan.files if f.path == swarm.SWARM_FILE] == [Action.UPDATE]
    text = (directory / swarm.SWARM_FILE).read_text()
    assert "encrypted:" not in text.split("\nversion:", 1)[1] and "# WARNING: overlay encryption is OFF" in text
    assert swarm.UNENCRYPTED in result.warnings
    with pytest.raises(ValueError, match=r"swarm[\s\S]*encrypt"):
        Stack.model_validate(data | {"swarm": {"encrypt": False}})


def test_a_target_that_is_not_one_is_refused_naming_the_field():
    data = golden.golden_stack("caddy", "internal").model_dump(exclude_none=True)
    with pytest.raises(ValueError, match=r"target[\s\S]*'kubernetes' is not a target: compose .* or swarm"):
        Stack.model_validate(data | {"target": "kubernetes"})


def test_cli_generate_target(tmp_path: Path):
    from stackgen.cli.app import app

    runner = CliRunner()
    directory = tmp_path / "s"
    init(directory, _stack())
    bad = runner.invoke(app, ["generate", str(directory), "--target", "kubernetes"])
    assert bad.exit_code == 2 and "--target: 'kubernetes' is not a target: compose or swarm" in bad.output
    good = runner.invoke(app, ["generate", str(directory), "--target", "swarm"])
    assert good.exit_code == 0, good.output
    assert "created" in good.output and "compose.swarm.yaml" in good.output and "docker stack deploy" in good.output
