"""Rendered stacks held to the upstream image contracts (stackgen/upstream/contracts/*.yaml), without an engine.

Each check here is a way a stack that passes every twin-based test could still fail on a user's
machine with the official image: a command the image lacks, a file capability the kernel refuses
to grant after `cap_drop: [ALL]`, a stop signal nobody handles, a DNS plugin image that does not
exist or a flag it does not take, a tag not published for the stack's platform.
"""

from __future__ import annotations

import re
import typing

import pytest

from stackgen.generate.render import Context, compose_document, default_images, render
from stackgen.operate import renewal
from stackgen.spec import DnsProvider, Platform, Stack
from stackgen.upstream.contracts import CONTRACT_NAMES, Contract, ContractError, all_contracts, load_contract, runs_on
from tests.golden import EXAMPLE_HASH, combos, golden_stack
from tests.support.shell_commands import command_words, external_commands, healthcheck_commands

PLATFORMS = typing.get_args(Platform)
SERVICE_CONTRACT = {"node-red": "node-red", "certbot": "certbot"}


def contract_of(stack: Stack, service: str) -> Contract:
    if service == "edge":
        return load_contract(stack.edge)
    if service == "certbot" and stack.tls.mode == "certbot-dns01":
        return load_contract("certbot-dns")
    return load_contract(SERVICE_CONTRACT[service])


def stacks() -> list[Stack]:
    """Every edge x TLS mode, on every platform, and every DNS provider."""
    found = []
    for edge, mode in combos():
        for platform in PLATFORMS:
            stack = golden_stack(edge, mode)
            found.append(stack.model_copy(update={"platform": platform}))
    for provider in typing.get_args(DnsProvider):
        stack = golden_stack("nginx", "certbot-dns01")
        found.append(stack.model_copy(update={"tls": stack.tls.model_copy(update={"dns_provider": provider})}))
    return found


def stack_id(stack: Stack) -> str:
    extra = f"-{stack.tls.dns_provider}" if stack.tls.dns_provider else ""
    return f"{stack.edge}-{stack.tls.mode}{extra}-{stack.platform.replace('/', '')}"


ALL_STACKS = stacks()


# --- the contracts themselves -------------------------------------------------------------


def test_every_contract_loads_and_every_fact_has_a_source():
    contracts = all_contracts()
    assert set(contracts) == set(CONTRACT_NAMES)
    for name, contract in contracts.items():
        assert contract.name == name
        for source in contract.sources.values():
            assert "/" in source.repo and source.path and source.ref, f"{name}: incomplete source {source}"


def test_a_fact_naming_an_undeclared_source_is_rejected():
    data = load_contract("caddy").model_dump()
    data["stop_signal"]["source"] = "hearsay"
    with pytest.raises(ValueError, match="undeclared sources: stop_signal: hearsay"):
        Contract.model_validate(data)


def test_unknown_contract_name_is_an_error():
    with pytest.raises(ContractError, match="unknown image contract"):
        load_contract("apache")


def test_file_capability_parsing():
    data = load_contract("caddy").model_dump()
    data["main_binary"]["file_capabilities"] = "cap_net_bind_service,cap_net_raw+ep"
    assert Contract.model_validate(data).main_binary.capabilities == {"NET_BIND_SERVICE", "NET_RAW"}
    data["main_binary"]["file_capabilities"] = None
    assert Contract.model_validate(data).main_binary.capabilities == frozenset()


def test_default_versions_are_current_majors():
    """A security tool must not install two-year-old software: the pinned majors are today's."""
    assert load_contract("node-red").tags[0].major >= 5
    assert load_contract("certbot").tags[0].major >= 5
    caddy = load_contract("caddy").tags[0].version.split(".")
    assert (int(caddy[0]), int(caddy[1])) >= (2, 11)
    assert load_contract("traefik").tags[0].major == 3


# --- tools: every command our scripts and healthchecks call exists in the image ---------------


def scripts_by_service(stack: Stack) -> dict[str, list[tuple[str, str]]]:
    rendered = {f.path: f.content.decode() for f in render(stack)}
    found: dict[str, list[tuple[str, str]]] = {"edge": [("edge/entrypoint.sh", rendered["edge/entrypoint.sh"])]}
    if Context(stack).sidecar:
        found["certbot"] = [(p, rendered[p]) for p in ("certbot/run.sh", "certbot/deploy-hook.sh")]
    return found


@pytest.mark.parametrize("stack", ALL_STACKS, ids=stack_id)
def test_every_command_a_rendered_script_calls_exists_in_the_image(stack):
    for service, scripts in scripts_by_service(stack).items():
        contract = contract_of(stack, service)
        for path, text in scripts:
            missing = external_commands(text) - contract.tool_names
            assert not missing, f"{path} calls {sorted(missing)}, which {contract.image} does not have"


@pytest.mark.parametrize("stack", ALL_STACKS, ids=stack_id)
def test_every_healthcheck_and_entrypoint_command_exists_in_the_image(stack):
    document = compose_document(Context(stack))
    for name, service in document["services"].items():
        contract = contract_of(stack, name)
        needed = healthcheck_commands(list(service["healthcheck"]["test"]))
        if "entrypoint" in service:
            needed.add(service["entrypoint"][0].rsplit("/", 1)[-1])
        missing = needed - contract.tool_names
        assert not missing, f"{name}: {sorted(missing)} not in {contract.image}"


@pytest.mark.parametrize("edge", ["caddy", "nginx"])
def test_commands_exec_into_running_containers_exist(edge):
    """The supervisor's renewal execs the reload and renew commands inside the containers."""
    stack = golden_stack(edge, "certbot-http01")
    reload = renewal.reload_command(edge)
    words = set(external_commands(reload[2])) | {"sh"} if reload[0] == "sh" else {reload[0]}
    assert words <= load_contract(edge).tool_names
    assert renewal.renew_command(stack, False)[0] in load_contract("certbot").tool_names


def test_the_check_catches_a_missing_tool():
    """The tokenizer finds commands in every position our scripts use."""
    script = 'x=$(od -An /dev/urandom); if cksum < f; then cp a b && mv b c | tr a b; fi\nsleep 1 &\nf() { caddy run; }\n'
    assert {"od", "cksum", "cp", "mv", "tr", "sleep", "caddy"} <= external_commands(script)
    assert "f" not in external_commands(script) and "x" not in command_words(script)
    # A comment ends at its line; `#` inside a word is no comment.
    assert {"cat", "md5sum"} <= external_commands('cat a  # trailing comment\nname=${x##*/}; md5sum "$name"\n')
    assert "for" not in command_words("for file in a b; do cp $file x; done") and "file" not in command_words("for file in a; do :; done")


# --- capabilities: file capabilities of the main binary vs cap_drop/cap_add -----------------


@pytest.mark.parametrize("stack", ALL_STACKS, ids=stack_id)
def test_capabilities_match_the_main_binarys_file_capabilities(stack):
    """After cap_drop: [ALL] the kernel refuses to exec a binary whose file capabilities it cannot grant
    ("exec /usr/bin/caddy: operation not permitted"); and nothing beyond them is added back."""
    document = compose_document(Context(stack))
    for name, service in document["services"].items():
        needed = contract_of(stack, name).main_binary.capabilities
        added = set(service.get("cap_add", []))
        if "ALL" in service.get("cap_drop", []):
            assert needed <= added, f"{name}: binary needs {sorted(needed)}; compose adds {sorted(added)}"
        assert added <= needed, f"{name}: adds {sorted(added - needed)} beyond the binary's file capabilities"


def test_caddy_edge_gets_exactly_net_bind_service():
    service = compose_document(Context(golden_stack("caddy", "certbot-http01")))["services"]["edge"]
    assert service["cap_drop"] == ["ALL"] and service["cap_add"] == ["NET_BIND_SERVICE"]
    for edge in ("nginx", "traefik"):
        assert "cap_add" not in compose_document(Context(golden_stack(edge, "certbot-http01")))["services"]["edge"]


# --- stop signals --------------------------------------------------------------------------


def trapped_signals(script: str) -> set[str]:
    found: set[str] = set()
    for match in re.finditer(r"^\s*trap\s+('[^']*'|\"[^\"]*\"|\S+)\s+([A-Z0-9 ]+)$", script, re.M):
        found |= {s if s.startswith("SIG") else "SIG" + s for s in match.group(2).split()}
    return found


@pytest.mark.parametrize("stack", ALL_STACKS, ids=stack_id)
def test_entrypoints_handle_the_signal_docker_sends(stack):
    """Docker sends the compose stop_signal, else the image's STOPSIGNAL, to PID 1 (our /bin/sh)."""
    document = compose_document(Context(stack))
    for service, scripts in scripts_by_service(stack).items():
        compose_service = document["services"][service]
        sent = compose_service.get("stop_signal") or contract_of(stack, service).stop_signal_name
        entry = scripts[0][1] if service == "edge" else dict(scripts)["certbot/run.sh"]
        assert sent in trapped_signals(entry), f"{service}: {sent} is sent on stop but the entrypoint does not trap it"


def test_edge_stop_signal_is_the_images():
    for edge in ("caddy", "nginx", "traefik"):
        service = compose_document(Context(golden_stack(edge, "certbot-http01")))["services"]["edge"]
        assert service["stop_signal"] == load_contract(edge).stop_signal_name
    assert load_contract("nginx").stop_signal_name == "SIGQUIT"


# --- certbot DNS plugins -------------------------------------------------------------------


def test_every_dns_provider_has_an_official_plugin_image():
    plugins = {p.provider: p for p in load_contract("certbot-dns").plugins}
    assert set(typing.get_args(DnsProvider)) == set(plugins)
    assert "gandi" not in plugins, "certbot publishes no Gandi image (the plugin is third-party)"
    for plugin in plugins.values():
        assert plugin.image == f"certbot/dns-{plugin.provider}"


@pytest.mark.parametrize("provider", typing.get_args(DnsProvider))
def test_rendered_dns_flags_are_the_plugins_own(provider):
    stack = golden_stack("nginx", "certbot-dns01")
    stack = stack.model_copy(update={"tls": stack.tls.model_copy(update={"dns_provider": provider})})
    plugin = load_contract("certbot-dns").plugin(provider)
    run = {f.path: f.content.decode() for f in render(stack)}["certbot/run.sh"]
    options = set(re.findall(r"(--dns-[a-z0-9-]+)", run))
    allowed = {o for o in (plugin.credentials_option, plugin.propagation_option) if o}
    assert options <= allowed, f"run.sh passes {sorted(options - allowed)}, which certbot-dns-{provider} does not take"
    assert f"--authenticator {plugin.authenticator}" in run
    certbot = compose_document(Context(stack))["services"]["certbot"]
    assert certbot["image"].startswith(plugin.image + ":")
    if plugin.credentials_option:
        assert f"{plugin.credentials_option} /run/secrets/dns_credentials" in run
    else:
        assert certbot["environment"].get("AWS_SHARED_CREDENTIALS_FILE") == "/run/secrets/dns_credentials"


def test_gandi_is_rejected_with_the_field_named():
    from pydantic import ValidationError

    data = golden_stack("nginx", "certbot-dns01").model_dump(mode="json")
    data["tls"]["dns_provider"] = "gandi"
    with pytest.raises(ValidationError, match="tls.dns_provider"):
        Stack.model_validate(data)


# --- platforms -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ALL_STACKS, ids=stack_id)
def test_default_image_tags_are_published_for_the_stacks_platform(stack):
    images = default_images(stack)
    for service, reference in images.items():
        contract = contract_of(stack, service)
        repository, _, tag = reference.rpartition(":")
        assert repository == (contract.plugin(stack.tls.dns_provider).image if service == "certbot" and stack.tls.dns_provider else contract.image)
        entry = next(t for t in contract.tags if t.tag == tag)
        assert runs_on(stack.platform, entry.platforms), f"{reference} is not published for {stack.platform}"


def test_armv7_runs_armv6_images_but_arm64_never_32_bit():
    assert runs_on("linux/arm/v7", ["linux/amd64", "linux/arm/v6"])
    assert not runs_on("linux/arm/v6", ["linux/arm/v7"])
    assert not runs_on("linux/arm64", ["linux/arm/v7"])
    assert not runs_on("linux/arm/v7", ["linux/arm64", "linux/amd64"])


def test_armv7_gets_the_newest_node_red_that_still_publishes_it():
    contract = load_contract("node-red")
    stack = golden_stack("caddy", "certbot-http01").model_copy(update={"platform": "linux/arm/v7"})
    tag = default_images(stack)["node-red"].rpartition(":")[2]
    assert contract.tags[0].major >= 5 and "linux/arm/v7" not in contract.tags[0].platforms
    assert tag == contract.tag_for("linux/arm/v7").tag and tag.startswith("4.")
    from stackgen.generate.render import version_notes

    assert "publishes no linux/arm/v7 image" in version_notes(stack)[0]
    assert version_notes(stack.model_copy(update={"platform": "linux/arm64"})) == []


def test_explicit_node_red_5_on_armv7_is_refused_naming_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"node_red\.version|publishes no linux/arm/v7"):
        Stack.model_validate({
            "project": "p", "domains": ["a.example.org"], "email": "a@example.org", "platform": "linux/arm/v7",
            "node_red": {"admin_password_hash": EXAMPLE_HASH, "version": f"{load_contract('node-red').tags[0].version}"},
        })
