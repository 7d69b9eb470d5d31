"""node_red.editor: who may reach the editor (allow), where it lives (path, host)."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from stackgen.errors import problems
from stackgen.spec import EVERYONE, PRIVATE_NETWORKS, Stack
from tests.golden import EXAMPLE_HASH

BASE = {
    "project": "home",
    "domains": ["nodered.example.org", "*.lab.example.org"],
    "email": "ops@example.org",
    "tls": {"mode": "certbot-dns01", "dns_provider": "cloudflare", "dns_credentials_file": "secrets/cf.ini"},
    "node_red": {"admin_password_hash": EXAMPLE_HASH},
}


def stack_with(**editor) -> Stack:
    spec = copy.deepcopy(BASE)
    spec["node_red"]["editor"] = editor
    return Stack.model_validate(spec)


def refused(**editor) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as info:
        stack_with(**editor)
    first = problems(info.value)[0]
    return tuple(str(p) for p in first.loc), first.message


def test_defaults_keep_the_editor_private_under_its_own_prefix():
    editor = stack_with().node_red.editor
    assert editor.path == "/editor"
    assert editor.allow == list(PRIVATE_NETWORKS)
    assert editor.allow == ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]
    assert editor.host is None and not editor.open_to_everyone


def test_an_existing_file_that_set_the_path_keeps_it():
    assert stack_with(path="/").node_red.editor.path == "/"
    assert stack_with(path="/admin").node_red.editor.path == "/admin"


def test_networks_are_normalised():
    editor = stack_with(allow=["10.1.2.3/8", "192.168.1.7", "FD00::1/8", "2001:DB8::/32"]).node_red.editor
    assert editor.allow == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "2001:db8::/32"]


def test_everyone_is_recognised():
    assert stack_with(allow=list(EVERYONE)).node_red.editor.open_to_everyone
    assert not stack_with(allow=["0.0.0.0/0"]).node_red.editor.open_to_everyone


@pytest.mark.parametrize("bad", [
    "10.0.0.0/33", "x", "", " 10.0.0.0/8", "10.0.0.0/8\n", "fe80::/64%eth0", "10.0.0.0/8;deny", "::ffff:10.0.0.0/104",
    "10.0.0.0/8 1", "$(id)", "300.0.0.0/8",
])
def test_a_bad_network_is_refused_naming_the_field(bad):
    loc, message = refused(allow=["10.0.0.0/8", bad])
    assert loc[:3] == ("node_red", "editor", "allow")


def test_duplicates_and_an_empty_list_are_refused():
    assert refused(allow=["10.0.0.0/8", "10.1.0.0/8"])[0][:3] == ("node_red", "editor", "allow")
    loc, message = refused(allow=[])
    assert loc[:3] == ("node_red", "editor", "allow") and "enabled: false" in message


@pytest.mark.parametrize("host", ["nodered.example.org", "editor.lab.example.org", "NODERED.example.org."])
def test_the_editor_host_is_covered_by_the_certificate(host):
    assert stack_with(host=host).node_red.editor.host == host.lower().rstrip(".")


@pytest.mark.parametrize("host", ["other.example.org", "a.b.lab.example.org", "lab.example.org"])
def test_a_host_the_certificate_does_not_cover_is_refused(host):
    loc, message = refused(host=host)
    assert loc == ("node_red", "editor", "host") and "certificate" in message


@pytest.mark.parametrize("host", ["*.lab.example.org", "10.0.0.1", "a b.example.org", "x.example.org;"])
def test_a_host_that_is_not_one_name_is_refused(host):
    assert refused(host=host)[0][:3] == ("node_red", "editor", "host")
