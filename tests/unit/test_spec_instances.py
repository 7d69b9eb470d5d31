"""Several Node-RED instances in stack.yaml (format version 2): what the spec accepts, what it refuses naming the
field, and the version 1 -> 2 migration and instance add/remove on the model (stackgen.instances.edit)."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from stackgen.errors import StackgenError, problems
from stackgen.generate.context import Context
from stackgen.generate.render import render
from stackgen.instances.edit import SpecEditError, add_instance, remove_instance, to_instances
from stackgen.spec import Stack
from stackgen.stackdir import SPEC_HEADER, dump_stack, parse_stack
from tests.golden import EXAMPLE_HASH, example_specs, golden_stack

TWO = {
    "version": 2,
    "project": "multi",
    "domains": ["a.example.org", "b.example.org"],
    "email": "ops@example.org",
    "instances": [
        {"name": "node-red", "domains": ["a.example.org"], "admin_password_hash": EXAMPLE_HASH},
        {"name": "site-b", "domains": ["b.example.org"], "admin_password_hash": EXAMPLE_HASH},
    ],
}


def two(**changes) -> dict:
    """TWO with `instances__1__egress=True`-style changes (an int part indexes a list)."""
    spec = copy.deepcopy(TWO)
    for dotted_key, value in changes.items():
        node = spec
        *parents, leaf = dotted_key.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if leaf.isdigit():
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return spec


def refused(spec: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        Stack.model_validate(spec)
    first = problems(caught.value)[0]
    return first.loc, first.message


def test_two_instances_each_get_their_own_names():
    stack = Stack.model_validate(TWO)
    default, other = stack.node_reds
    assert (default.service, default.data_volume, default.secret_name, default.internal_network, default.egress_network) == (
        "node-red", "node-red-data", "node_red_credential_secret", "internal", "egress")
    assert default.credential_secret_file == "secrets/node_red_credential_secret"
    assert (other.service, other.data_volume, other.secret_name, other.internal_network, other.egress_network) == (
        "node-red-site-b", "node-red-site-b-data", "node_red_site_b_credential_secret", "internal-site-b", "egress-site-b")
    assert other.credential_secret_file == "secrets/node_red_site_b_credential_secret"


def test_version_1_is_one_instance_named_node_red_serving_every_domain():
    stack = golden_stack("caddy", "certbot-dns01")
    (only,) = stack.node_reds
    assert only.name == "node-red" and only.service == "node-red" and only.domains == stack.domains
    assert stack.view(only) is not stack


@pytest.mark.parametrize(
    "spec, loc, words",
    [
        (two(instances__1__name="Site B"), ("instances", 1, "name"), "lowercase"),
        (two(instances__1__name="a" * 25), ("instances", 1, "name"), "at most 24"),
        (two(instances__1__name="b--c"), ("instances", 1, "name"), "single hyphens"),
        (two(instances__1__name="node-red"), ("instances", 1, "name"), "duplicate instance name"),
        (two(instances__1__domains=["*.example.org"]), ("instances", 1, "domains"), "wildcard"),
        (two(instances__1__domains=["c.example.org"], domains=["a.example.org", "b.example.org"]),
         ("instances", 1, "domains", 0), "certificate would not cover"),
        (two(instances__1__domains=["a.example.org"]), ("instances", 1, "domains", 0), "already routes to instance 'node-red'"),
        (two(domains=["a.example.org", "b.example.org", "c.example.org"]), ("domains", 2), "routes to no instance"),
        (two(instances__1__editor={"host": "a.example.org"}), ("instances", 1, "editor", "host"), "already routes"),
        (two(instances__1__credential_secret_file="secrets/node_red_credential_secret"),
         ("instances", 1, "credential_secret_file"), "own credential secret"),
        (two(instances__1__version="5.0.7", platform="linux/arm/v7"), ("instances", 1, "version"), "publishes no linux/arm/v7"),
        (two(instances__1__image="not an image"), ("instances", 1, "image"), "image reference"),
        (two(instances__1__egres=True), ("instances", 1, "egres"), "unknown key"),
        (two(version=1), ("instances",), "version: 2"),
        (two(node_red={"admin_password_hash": EXAMPLE_HASH}), ("node_red",), "has no `node_red`"),
        (two(images={"node_red": "nodered/node-red:5.0.7"}), ("images", "node_red"), "its own image"),
        (two(instances=[]), ("instances",), "at least 1"),
    ],
)
def test_refusals_name_the_field(spec, loc, words):
    got_loc, message = refused(spec)
    assert got_loc[: len(loc)] == loc, (got_loc, message)
    assert words in message


def test_version_2_without_instances_and_version_1_without_node_red():
    spec = two()
    del spec["instances"]
    assert refused(spec)[0] == ("instances",)
    spec = two(version=1)
    del spec["instances"]
    assert refused(spec)[0] == ("node_red",)


def test_an_instance_may_use_a_name_under_the_certificates_wildcard():
    spec = two(domains=["a.example.org", "*.example.org"], tls={"mode": "certbot-dns01", "dns_provider": "cloudflare",
                                                              "dns_credentials_file": "secrets/cf.ini"})
    assert Stack.model_validate(spec).instances[1].domains == ["b.example.org"]


def test_file_errors_name_the_line_of_the_instance_field(tmp_path):
    text = dump_stack(Stack.model_validate(TWO)).decode().replace("name: site-b", "name: Site-B")
    with pytest.raises(StackgenError) as caught:
        parse_stack(text, tmp_path / "stack.yaml")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "Site-B" in row)
    assert f"stack.yaml:{line}: instances[1].name:" in str(caught.value)


def test_version_2_round_trips_with_name_and_domains_first(tmp_path):
    stack = Stack.model_validate(TWO)
    text = dump_stack(stack).decode()
    assert "  - name: site-b\n    domains:\n      - b.example.org\n" in text
    assert parse_stack(text, tmp_path / "stack.yaml") == stack


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.name)
def test_version_1_files_are_written_as_before(path: Path):
    """init writes a version 1 file exactly as before instances existed (the model dumped, nothing reordered)."""
    stack = parse_stack(path.read_text(), path)
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    before = io.StringIO()
    before.write(SPEC_HEADER)
    yaml.dump(stack.model_dump(mode="json", exclude_none=True), before)
    assert dump_stack(stack) == before.getvalue().encode()
    assert stack.version == 1 and "instances" not in before.getvalue()
    assert parse_stack(dump_stack(stack).decode(), path) == stack


def test_migration_keeps_the_node_red_names_and_settings():
    v1 = golden_stack("nginx", "certbot-http01").model_copy(deep=True)
    v1.images.node_red = "registry.local/me/node-red:5.0.7-nodes"
    v1.node_red.egress = True
    edited = to_instances(v1)
    (only,) = edited.stack.instances
    assert edited.stack.version == 2 and edited.stack.node_red is None and edited.stack.images.node_red is None
    assert (only.name, only.service, only.data_volume, only.internal_network) == ("node-red", "node-red", "node-red-data", "internal")
    assert only.domains == v1.domains and only.image == "registry.local/me/node-red:5.0.7-nodes" and only.egress
    assert only.credential_secret_file == v1.node_red.credential_secret_file
    assert edited.stack.domains == v1.domains and "version 2" in edited.notes[0]
    assert to_instances(edited.stack).stack is edited.stack


def test_migration_of_wildcard_domains_routes_the_exact_names_and_says_so():
    edited = to_instances(golden_stack("caddy", "certbot-dns01"))  # domains: *.example.org, example.org
    assert edited.stack.instances[0].domains == ["example.org"]
    assert any("*.example.org" in note for note in edited.notes)
    only_wildcard = golden_stack("caddy", "certbot-dns01").model_copy(update={"domains": ["*.example.org"]})
    with pytest.raises(SpecEditError) as caught:
        to_instances(only_wildcard)
    assert caught.value.loc == ("domains",)


def test_add_extends_the_certificate_unless_a_wildcard_covers_the_name():
    v1 = golden_stack("caddy", "certbot-http01")  # nodered.example.org, flows.example.org
    edited = add_instance(v1, "lab", ["Lab.Example.org."], {"admin_password_hash": EXAMPLE_HASH})
    assert edited.stack.domains == ["nodered.example.org", "flows.example.org", "lab.example.org"]
    assert [i.name for i in edited.stack.instances] == ["node-red", "lab"]
    assert any("now also covers lab.example.org" in note for note in edited.notes)
    wildcard = add_instance(golden_stack("caddy", "certbot-dns01"), "lab", ["lab.example.org"], {"admin_password_hash": EXAMPLE_HASH})
    assert wildcard.stack.domains == ["*.example.org", "example.org"]


@pytest.mark.parametrize(
    "name, domains, settings, loc, words",
    [
        ("node-red", ["x.example.org"], {}, ("instances", "name"), "already exists"),
        ("lab", ["flows.example.org"], {}, ("instance", "domains", 0), "already routes"),
        ("Lab", ["lab.example.org"], {}, ("instance", "name"), "lowercase"),
        ("lab", ["*.example.org"], {}, ("instance", "domains"), "wildcard"),
        ("lab", ["lab.example.org"], {"editor": {"allow": []}}, ("instance", "editor", "allow"), "enabled: false"),
    ],
)
def test_add_refusals_name_the_field(name, domains, settings, loc, words):
    with pytest.raises(SpecEditError) as caught:
        add_instance(golden_stack("caddy", "certbot-http01"), name, domains, {"admin_password_hash": EXAMPLE_HASH, **settings})
    assert caught.value.loc[: len(loc)] == loc and words in caught.value.message, caught.value


def test_remove_drops_the_instances_names_and_refuses_the_last():
    stack = add_instance(golden_stack("caddy", "certbot-http01"), "lab", ["lab.example.org"], {"admin_password_hash": EXAMPLE_HASH}).stack
    edited = remove_instance(stack, "lab")
    assert [i.name for i in edited.stack.instances] == ["node-red"] and edited.removed.name == "lab"
    assert edited.stack.domains == ["nodered.example.org", "flows.example.org"]
    with pytest.raises(SpecEditError, match="only Node-RED"):
        remove_instance(edited.stack, "node-red")
    with pytest.raises(SpecEditError, match="only Node-RED"):
        remove_instance(golden_stack("caddy", "certbot-http01"), "node-red")
    with pytest.raises(SpecEditError, match="no instance 'nope'"):
        remove_instance(stack, "nope")


def test_removing_the_instance_that_named_the_certificate_renames_it():
    stack = Stack.model_validate(TWO)
    edited = remove_instance(stack, "node-red")
    assert edited.stack.domains == ["b.example.org"] and edited.stack.cert_name == "b.example.org"
    assert any("now named b.example.org" in note for note in edited.notes)


# Every host name the edge serves, for any instance (its domains, its editor host), is a name of the certificate
# (certbot's -d list) or under a wildcard there; a spec that would serve one the certificate does not name is refused,
# naming the field.


def certificate_names(stack: Stack) -> list[str]:
    """The names certbot asks for: the -d arguments of the rendered certbot/run.sh."""
    run_sh = next(f for f in render(stack) if f.path == "certbot/run.sh").content.decode()
    return [name.strip("'") for name in re.findall(r"-d (\S+)", run_sh)]


def served_hosts(stack: Stack) -> set[str]:
    """Every host name the edge routes: each route's hosts and its editor host."""
    return {h for r in Context(stack).routes for h in (*r.hosts, *([r.editor_host] if r.editor_host else []))}


def covered(names: list[str], host: str) -> bool:
    return any(n == host or (n.startswith("*.") and host.partition(".")[2] == n[2:]) for n in names)


def test_init_single_instance_editor_host_is_a_certificate_name():
    v1 = golden_stack("caddy", "certbot-http01").model_dump(mode="python", exclude_none=True)
    v1["domains"].append("editor.example.org")
    v1["node_red"]["editor"]["host"] = "editor.example.org"
    stack = Stack.model_validate(v1)
    assert stack.node_red.editor.host == "editor.example.org"
    assert "editor.example.org" in certificate_names(stack)
    assert "editor.example.org" in served_hosts(stack)
    assert all(covered(certificate_names(stack), h) for h in served_hosts(stack))


def test_init_single_instance_editor_host_outside_the_certificate_is_refused_naming_the_field():
    v1 = golden_stack("caddy", "certbot-http01").model_dump(mode="python", exclude_none=True)
    v1["node_red"]["editor"]["host"] = "editor.example.org"
    loc, message = refused(v1)
    assert loc == ("node_red", "editor", "host") and "certificate would not cover" in message and "add it to domains" in message


def test_an_instance_editor_host_outside_the_certificate_is_refused_naming_the_field():
    loc, message = refused(two(instances__1__editor={"host": "edit-b.example.org"}))
    assert loc == ("instances", 1, "editor", "host") and "certificate would not cover" in message, (loc, message)


def test_add_puts_the_editor_host_in_the_certificate_and_remove_takes_it_out():
    v1 = golden_stack("caddy", "certbot-http01")  # nodered.example.org, flows.example.org
    edited = add_instance(v1, "lab", ["lab.example.org"], {"admin_password_hash": EXAMPLE_HASH, "editor": {"host": "Lab-Editor.Example.org."}})
    stack = edited.stack
    assert stack.instances[1].editor.host == "lab-editor.example.org" and stack.instances[1].domains == ["lab.example.org"]
    assert stack.domains == ["nodered.example.org", "flows.example.org", "lab.example.org", "lab-editor.example.org"]
    assert any("now also covers lab-editor.example.org" in note for note in edited.notes)
    assert {"lab.example.org", "lab-editor.example.org"} <= served_hosts(stack)
    assert all(covered(certificate_names(stack), h) for h in served_hosts(stack))
    removed = remove_instance(stack, "lab")
    assert removed.stack.domains == ["nodered.example.org", "flows.example.org"]
    assert any("no longer covers lab.example.org, lab-editor.example.org" in note for note in removed.notes)


def test_add_with_only_a_path_and_an_editor_host_certifies_the_editor_host():
    edited = add_instance(golden_stack("nginx", "certbot-http01"), "lab", [],
                          {"admin_password_hash": EXAMPLE_HASH, "path": "/lab", "editor": {"host": "lab-editor.example.org"}})
    assert edited.stack.domains[-1] == "lab-editor.example.org"
    assert all(covered(certificate_names(edited.stack), h) for h in served_hosts(edited.stack))


def test_add_leaves_an_editor_host_under_the_wildcard_to_the_wildcard():
    wildcard = add_instance(golden_stack("caddy", "certbot-dns01"), "lab", ["lab.example.org"],
                            {"admin_password_hash": EXAMPLE_HASH, "editor": {"host": "lab-editor.example.org"}})
    assert wildcard.stack.domains == ["*.example.org", "example.org"]
    assert all(covered(wildcard.stack.domains, h) for h in served_hosts(wildcard.stack))


@pytest.mark.parametrize(
    "editor_host, words",
    [
        ("*.example.org", "no wildcard"),
        ("192.0.2.7", "no wildcard, no IP address"),
        ("flows.example.org", "already routes to instance 'node-red'"),
    ],
)
def test_add_refuses_an_editor_host_naming_its_field_and_not_domains(editor_host, words):
    with pytest.raises(SpecEditError) as caught:
        add_instance(golden_stack("caddy", "certbot-http01"), "lab", ["lab.example.org"],
                     {"admin_password_hash": EXAMPLE_HASH, "editor": {"host": editor_host}})
    assert caught.value.loc == ("instance", "editor", "host") and words in caught.value.message, caught.value
