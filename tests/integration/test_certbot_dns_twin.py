"""The certbot DNS plugin twins (certbot/dns-<provider>, one image per official plugin: tests/images/certbot-dns/)
held to their contract (stackgen/upstream/contracts/certbot-dns.yaml), and the certbot command line stackgen renders
for DNS-01 run in them: for every DNS provider the spec offers, certbot must accept every argument run.sh passes.

How "accepts" is proven: the rendered stack's certbot service is run as compose runs it (its image's twin, its
entrypoint `/bin/sh /etc/stackgen/certbot/run.sh`, user, read-only root, tmpfs, capabilities, environment, the
rendered run.sh and deploy hook, a dummy credentials file as the dns_credentials secret), with no network and
`tls.acme_directory` on 127.0.0.1 at a closed port. certbot parses the whole command line first (argparse: any
unknown option is `error: unrecognized arguments` and exit 2), then loads and prepares the named authenticator
(a missing plugin: `... plugin does not appear to be installed`), and only then asks the ACME directory, which is
refused. So a run that ends in that refusal has had every argument accepted by the plugin image itself. Traffic:
only the container's own loopback. The negative tests show the same run failing for a flag the plugin lacks
(route53's old `--dns-route53-credentials`) and for another plugin's flag (absent, as upstream: one plugin per
image).
"""

from __future__ import annotations

import re
import time
import typing
import uuid
from pathlib import Path

import pytest
import yaml

from stackgen.generate import workflow
from stackgen.spec import Stack
from stackgen.spec.base import DnsProvider
from stackgen.upstream.contracts import load_contract
from tests.images import build
from tests.integration.test_twins import remove, run_once

pytestmark = pytest.mark.engine

CONTRACT = load_contract("certbot-dns")
PROVIDERS = [p.provider for p in CONTRACT.plugins]
SPEC_PROVIDERS = list(typing.get_args(DnsProvider))
# A directory URL on the container's own loopback, at a port nothing listens on: the request is refused.
CLOSED_ACME = "https://127.0.0.1:9/acme/directory"
# bcrypt of "change-me-please" (tests/golden.py)
ADMIN_HASH = "$2b$10$8Rl3dm2WS59eF2aCdMwpQeBH22YmBKPmoeO.UTSxEMBtlgrKOYLfS"
# What run.sh logs when obtain() failed: certbot has returned.
OBTAIN_FAILED = "stackgen-certbot: could not obtain the certificate"


def image(provider: str) -> str:
    return build.DNS_IMAGES[f"certbot-dns-{provider}"]


@pytest.fixture(scope="module")
def dns_images(engine):
    """The plugin twins (and the certbot twin under them), built or reused."""
    from tests.integration.conftest import _unavailable

    try:
        return build.ensure_images(list(build.DNS_IMAGES))
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"building the certbot DNS plugin twins failed: {exc}")


# ----------------------------------------------------------------------------- the recipe = the contract = the spec


def test_one_twin_per_official_plugin_and_per_spec_provider():
    """13 plugin images upstream (certbot-dns.yaml, from docker-bake.hcl), 13 recipes, 13 providers in the spec."""
    assert len(PROVIDERS) == 13
    assert sorted(build.DNS_PROVIDERS) == sorted(PROVIDERS) == sorted(SPEC_PROVIDERS)
    assert {build.PARENT[name] for name in build.DNS_IMAGES} == {"certbot"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plugin_pins_are_certbots_release_and_hashed(provider):
    """The plugin at certbot's own version (released in lockstep), nothing the certbot twin has moved, every pin hashed."""
    version = CONTRACT.tags[0].version
    assert load_contract("certbot").tags[0].version == version
    certbot = build._requirement_pins(build.HERE / "certbot" / "requirements.txt")
    req = build.HERE / build.DNS_RECIPE / "requirements" / f"{provider}.txt"
    pins = build._requirement_pins(req)
    assert (f"certbot-dns-{provider}", version) in pins
    assert not {name for name, _ in pins} & {name for name, _ in certbot}, "a plugin must not re-pin the certbot twin's packages"
    other = {f"certbot-dns-{p}" for p in PROVIDERS if p != provider}
    assert not {name for name, _ in pins} & other
    for line in req.read_text().splitlines():
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9._-]+==\S+ --hash=sha256:[0-9a-f]{64}", line), line


# ----------------------------------------------------------------------------- twin = contract


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plugin_twin_config_matches_the_contract(engine, dns_images, provider):
    cfg = engine.images.get(image(provider)).attrs["Config"]
    c = CONTRACT
    assert (cfg.get("Entrypoint") or None) == c.entrypoint.value
    assert (cfg.get("Cmd") or None) == c.cmd.value
    assert cfg.get("WorkingDir") == c.workdir.value
    assert sorted(cfg.get("Volumes") or {}) == sorted(c.volumes.value)
    assert (cfg.get("StopSignal") or "SIGTERM") == c.stop_signal_name
    assert sorted(cfg.get("ExposedPorts") or {}) == sorted(c.exposed_ports.value)
    assert ((cfg.get("Healthcheck") or {}).get("Test") or None) == c.healthcheck.value
    assert not cfg.get("User") and c.user.uid == 0
    labels = engine.images.get(image(provider)).labels
    assert labels[build.RECIPE_LABEL] == build.recipe_hash(f"certbot-dns-{provider}")
    assert labels[build.PARENT_ID_LABEL] == dns_images["certbot"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plugin_twin_registers_its_plugin_alone_at_the_pinned_version(engine, dns_images, provider):
    """`certbot plugins` lists the plugin's authenticator (its entry point registered) and no other DNS plugin;
    certbot and the plugin are the contract's version; `certbot --help dns-<p>` has the contract's options;
    the contract's tools are on PATH and /bin/sh is BusyBox, as in the certbot image the plugin image is FROM."""
    plugin = CONTRACT.plugin(provider)
    version = CONTRACT.tags[0].version
    tools = sorted({str(t).lower() if isinstance(t, bool) else str(t) for t in CONTRACT.tool_names})
    script = (
        "certbot --version; echo @@; certbot plugins --authenticators; echo @@; "
        f"python3 -c 'import importlib.metadata as m; print(m.version(\"certbot-dns-{provider}\"))'; echo @@; "
        f"certbot --help {plugin.authenticator}; echo @@; "
        "for t in " + " ".join(tools) + '; do command -v "$t" >/dev/null 2>&1 || echo "missing: $t"; done; '
        "readlink -f /bin/sh; echo @@"
    )
    code, out = run_once(engine, image(provider), ["-c", script], entrypoint=["/bin/sh"])
    assert code == 0, out
    certbot_version, plugins, plugin_version, help_text, tools_out, _ = out.split("@@")
    assert certbot_version.strip() == f"certbot {version}"
    assert plugin_version.strip() == version
    authenticators = re.findall(r"^\* (\S+)$", plugins, re.M)
    assert plugin.authenticator in authenticators, plugins
    assert [a for a in authenticators if a.startswith("dns-")] == [plugin.authenticator], "one DNS plugin per image, as upstream"
    assert f"Entry point: EntryPoint(name='{plugin.authenticator}'" in plugins
    options = set(re.findall(rf"^\s+(--{plugin.authenticator}-[a-z0-9-]+)", help_text, re.M))
    for option in (plugin.credentials_option, plugin.propagation_option):
        if option:
            assert option in options, f"{option} is not an option of {plugin.authenticator}: {sorted(options)}"
    if provider == "route53":  # the contract: no credentials and no propagation option (boto3's chain; waits for INSYNC)
        assert options == set(), options
    assert not [line for line in tools_out.splitlines() if line.startswith("missing: ")], tools_out
    assert tools_out.strip().splitlines()[-1] == "/usr/bin/busybox"


# ----------------------------------------------------------------------------- the rendered command line, run


def render(tmp_path: Path, provider: str) -> Path:
    """`stackgen init` of a certbot-dns01 stack with this provider (workflow.init), a dummy credentials file."""
    directory = tmp_path / provider
    (directory / "secrets").mkdir(parents=True)
    (directory / "secrets" / "dns.ini").write_text("# dummy credentials: the run never gets as far as the DNS provider\n")
    stack = Stack.model_validate({
        "project": f"sgdns-{provider}",
        "domains": ["*.example.org", "example.org"],
        "email": "ops@example.org",
        "edge": "caddy",
        "tls": {"mode": "certbot-dns01", "dns_provider": provider, "dns_credentials_file": "secrets/dns.ini",
                "acme_directory": CLOSED_ACME},
        "node_red": {"admin_password_hash": ADMIN_HASH},
    })
    workflow.init(directory, stack)
    return directory


def run_certbot_service(engine, directory: Path, run_sh: Path | None = None, image_override: str | None = None) -> str:
    """Run the rendered certbot service as compose runs it (no network) until run.sh reports that obtain() failed;
    stop it (SIGTERM: run.sh exits 0); return its log."""
    compose = yaml.safe_load((directory / "compose.yaml").read_text())
    service = compose["services"]["certbot"]
    repository, _, tag = service["image"].rpartition(":")
    provider = repository.removeprefix("certbot/dns-")
    assert repository == CONTRACT.plugin(provider).image and tag == CONTRACT.tags[0].tag, service["image"]
    mounts = {}
    for volume in service["volumes"]:
        if volume["type"] == "bind":
            source = (directory / volume["source"]).resolve()
            if volume["target"] == "/etc/stackgen/certbot/run.sh" and run_sh is not None:
                source = run_sh
            mounts[str(source)] = {"bind": volume["target"], "mode": "ro" if volume.get("read_only") else "rw"}
    # (certs, a named volume in compose: here the image's anonymous volume, removed with the container.)
    assert service["secrets"] == ["dns_credentials"]
    secret = (directory / compose["secrets"]["dns_credentials"]["file"]).resolve()
    mounts[str(secret)] = {"bind": "/run/secrets/dns_credentials", "mode": "ro"}
    tmpfs = dict(entry.split(":", 1) for entry in service["tmpfs"])
    container = engine.containers.create(
        image_override or image(provider), entrypoint=service["entrypoint"], user=service["user"],
        environment=service.get("environment") or {}, read_only=service["read_only"], tmpfs=tmpfs,
        cap_drop=service["cap_drop"], security_opt=service["security_opt"], volumes=mounts,
        network_mode="none", name=f"sgdns-{provider}-{uuid.uuid4().hex[:8]}",
    )
    try:
        container.start()
        deadline = time.monotonic() + 90
        while True:
            logs = container.logs().decode(errors="replace")
            if OBTAIN_FAILED in logs:
                break
            container.reload()
            assert container.status == "running", logs
            assert time.monotonic() < deadline, f"run.sh's obtain() did not return in 90 s:\n{logs}"
            time.sleep(0.3)
        container.stop(timeout=10)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0, "run.sh exits 0 on SIGTERM"
        return container.logs().decode(errors="replace")
    finally:
        remove(container)


def assert_accepted(logs: str, provider: str) -> None:
    assert "unrecognized arguments" not in logs, logs
    assert "does not appear to be installed" not in logs, logs
    assert "error: argument" not in logs, logs  # argparse: a known option with a bad value
    # certbot got past parsing and the plugin, to the ACME directory on loopback, which refused.
    assert re.search(r"127\.0\.0\.1.*port=9.*(Connection refused|Failed to establish)", logs, re.S), logs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """provider -> a rendered stack directory (all 13 rendered once for the module)."""
    root = tmp_path_factory.mktemp("dns01")
    return {p: render(root, p) for p in SPEC_PROVIDERS}


@pytest.mark.parametrize("provider", SPEC_PROVIDERS)
def test_rendered_certbot_command_line_is_accepted_by_the_plugin_image(engine, dns_images, rendered, provider):
    directory = rendered[provider]
    plugin = CONTRACT.plugin(provider)
    run_sh = (directory / "certbot" / "run.sh").read_text()
    # The command line under test is the one the stack ships: the plugin's authenticator and its own flags.
    assert f"--authenticator {plugin.authenticator} " in run_sh
    assert f"--server {CLOSED_ACME} " in run_sh
    flags = set(re.findall(r"(--dns-[a-z0-9-]+)", run_sh))
    assert flags == ({plugin.credentials_option} if plugin.credentials_option else set()), flags
    logs = run_certbot_service(engine, directory)
    assert_accepted(logs, provider)


def _with_flag(directory: Path, flag: str) -> Path:
    """A copy of the rendered run.sh with one more option after --authenticator (the secret as its value)."""
    run_sh = (directory / "certbot" / "run.sh").read_text()
    line = re.search(r"^(\s*)--authenticator \S+ \\\n", run_sh, re.M)
    assert line, run_sh
    edited = run_sh[:line.end()] + f"{line.group(1)}{flag} /run/secrets/dns_credentials \\\n" + run_sh[line.end():]
    path = directory / "certbot" / f"run-{flag.strip('-')}.sh"
    path.write_text(edited)
    return path


def test_route53s_old_credentials_flag_is_rejected(engine, dns_images, rendered):
    """What the test catches: route53 has no --dns-route53-credentials (credentials come from boto3's chain), so
    a run.sh passing it fails at parsing, before certbot asks any server."""
    logs = run_certbot_service(engine, rendered["route53"], run_sh=_with_flag(rendered["route53"], "--dns-route53-credentials"))
    assert "unrecognized arguments: --dns-route53-credentials /run/secrets/dns_credentials" in logs, logs
    assert "127.0.0.1" not in logs, logs


def test_another_plugins_command_line_is_rejected(engine, dns_images, rendered):
    """One plugin per image, as upstream: the cloudflare stack's command line, accepted by certbot/dns-cloudflare's
    twin above, fails at parsing in certbot/dns-route53's (no test passes because another plugin is installed)."""
    logs = run_certbot_service(engine, rendered["cloudflare"], image_override=image("route53"))
    assert "unrecognized arguments: --dns-cloudflare-credentials /run/secrets/dns_credentials" in logs, logs
    assert "127.0.0.1" not in logs, logs


def test_an_authenticator_missing_from_the_image_is_refused_before_the_acme_server(engine, dns_images, rendered):
    """The route53 stack's command line (no plugin flag: it parses anywhere) in certbot/dns-cloudflare's twin: certbot
    refuses the missing authenticator before it asks the ACME directory, so the refusal above (a connection to
    127.0.0.1) is only reached with the named plugin installed."""
    logs = run_certbot_service(engine, rendered["route53"], image_override=image("cloudflare"))
    assert "The requested dns-route53 plugin does not appear to be installed" in logs, logs
    assert "127.0.0.1" not in logs, logs
