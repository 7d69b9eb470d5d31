"""Path-routed instances in stack.yaml (`instances[].path`): what the spec accepts, normalises and refuses naming the
field: one root per host name, prefixes that do not nest, none over the root owner's editor, editor hosts kept whole;
and instance add/remove on the model with a path."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from stackgen.errors import problems
from stackgen.instances.edit import SpecEditError, add_instance, remove_instance
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH, golden_stack

SHARED = {
    "version": 2,
    "project": "paths",
    "domains": ["site.example.org", "b.example.org"],
    "email": "ops@example.org",
    "instances": [
        {"name": "node-red", "domains": ["site.example.org"], "admin_password_hash": EXAMPLE_HASH},
        {"name": "lab", "domains": ["site.example.org", "b.example.org"], "path": "/lab", "admin_password_hash": EXAMPLE_HASH},
    ],
}


def spec(**instance_changes) -> dict:
    """SHARED with changes to instance `lab` (key=value; None deletes), and a third instance under `third=`."""
    data = copy.deepcopy(SHARED)
    third = instance_changes.pop("third", None)
    for key, value in instance_changes.items():
        if value is None:
            data["instances"][1].pop(key, None)
        else:
            data["instances"][1][key] = value
    if third is not None:
        data["instances"].append({"name": "third", "admin_password_hash": EXAMPLE_HASH, **third})
    return data


def refused(data: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        Stack.model_validate(data)
    first = problems(caught.value)[0]
    return first.loc, first.message


def test_a_path_routed_instance_has_its_prefix_its_editor_under_it_and_its_endpoints_under_it():
    root, lab = Stack.model_validate(SHARED).instances
    assert (root.route_prefix, root.editor_root, root.node_root) == ("", "/editor", "/")
    assert (lab.path, lab.route_prefix, lab.editor_root, lab.node_root) == ("/lab", "/lab", "/lab/editor", "/lab/")
    at_root = Stack.model_validate(spec(editor={"path": "/"})).instances[1]
    assert at_root.editor_root == "/lab", "the editor at / of a prefixed instance is its whole prefix"
    deeper = Stack.model_validate(spec(path="/sites/lab.v2", editor={"path": "/admin/x"})).instances[1]
    assert deeper.editor_root == "/sites/lab.v2/admin/x" and deeper.node_root == "/sites/lab.v2/"


@pytest.mark.parametrize("written, stored", [("/lab", "/lab"), ("/Lab/", "/lab"), ("/A.b/c-D_e~f", "/a.b/c-d_e~f")])
def test_a_path_is_stored_in_one_spelling(written, stored):
    assert Stack.model_validate(spec(path=written)).instances[1].path == stored


@pytest.mark.parametrize("path", ["/", "lab", "//lab", "/lab//x", "/.well-known", "/lab/..", "/lab/./x", "/la b", "/lab?x",
                                  "/lab#x", "/lab%2f", "/läb", "/lab\n", "/" + "x" * 64, "/K\u212a"])
def test_refused_paths_name_the_field(path):
    loc, message = refused(spec(path=path))
    assert loc == ("instances", 1, "path"), (loc, message)


@pytest.mark.parametrize(
    "changes, loc, words",
    [
        # two roots on one host name
        ({"path": None}, ("instances", 1, "domains", 0), "already routes to instance 'node-red' (at its root)"),
        # prefixes on one host name: equal or nested either way, whatever the case
        ({"third": {"domains": ["b.example.org"], "path": "/lab"}}, ("instances", 2, "path"), "must not nest"),
        ({"third": {"domains": ["b.example.org"], "path": "/LAB/x"}}, ("instances", 2, "path"), "overlaps /lab of instance 'lab'"),
        ({"path": "/lab/x", "third": {"domains": ["b.example.org"], "path": "/lab"}}, ("instances", 2, "path"), "must not nest"),
        # over the root owner's editor (/editor): its paths would stop reaching it
        ({"path": "/editor"}, ("instances", 1, "path"), "overlaps the editor of instance 'node-red' (/editor)"),
        ({"path": "/Editor/sub"}, ("instances", 1, "path"), "editor"),
        ({"path": "/ed"}, None, None),
        # an editor host is its instance's alone, prefix or not
        ({"editor": {"host": "site.example.org"}}, ("instances", 1, "editor", "host"), None),
        ({"third": {"domains": ["b.example.org"], "path": "/c", "editor": {"host": "site.example.org"}}},
         ("instances", 2, "editor", "host"), "already routes"),
    ],
)
def test_host_names_and_prefixes_are_shared_only_soundly(changes, loc, words):
    data = spec(**changes)
    if loc is None:
        Stack.model_validate(data)
        return
    got, message = refused(data)
    assert got[: len(loc)] == loc, (got, message)
    assert words is None or words in message, message


def test_an_editor_host_that_is_another_instances_domain_is_refused_either_way():
    data = spec(editor={"host": "b.example.org"}, domains=["site.example.org"])
    Stack.model_validate(data)  # its own: fine
    data["instances"].append({"name": "third", "admin_password_hash": EXAMPLE_HASH, "domains": ["b.example.org"], "path": "/c"})
    loc, message = refused(data)
    assert loc == ("instances", 2, "domains", 0) and "its editor host" in message


def test_prefixes_that_share_no_host_name_may_be_equal_and_different_ones_may_share():
    Stack.model_validate(spec(third={"domains": ["c.example.org"], "path": "/lab"}) | {"domains": [*SHARED["domains"], "c.example.org"]})
    Stack.model_validate(spec(third={"domains": ["site.example.org", "b.example.org"], "path": "/labs"}))
    Stack.model_validate(spec(third={"domains": ["b.example.org"]}))  # b's root: nobody's until now


def test_a_root_editor_at_slash_lets_prefixes_in():
    data = spec()
    data["instances"][0]["editor"] = {"path": "/"}
    Stack.model_validate(data)


def test_add_with_a_path_and_no_host_name_shares_the_first_and_says_what_sharing_means():
    edited = add_instance(golden_stack("caddy", "internal"), "lab", [], {"admin_password_hash": EXAMPLE_HASH, "path": "/Lab"})
    lab = edited.stack.instances[1]
    assert (lab.domains, lab.path) == (["nodered.example.org"], "/lab")
    assert edited.stack.domains == ["nodered.example.org", "flows.example.org"], "the certificate is unchanged"
    assert any("shares nodered.example.org with instance node-red" in note and "browser origin" in note for note in edited.notes)
    with pytest.raises(SpecEditError) as caught:
        add_instance(golden_stack("caddy", "internal"), "lab", [], {"admin_password_hash": EXAMPLE_HASH})
    assert caught.value.loc == ("instance", "domains")
    with pytest.raises(SpecEditError) as caught:
        add_instance(golden_stack("caddy", "internal"), "lab", [], {"admin_password_hash": EXAMPLE_HASH, "path": "/editor"})
    assert caught.value.loc == ("instance", "path") and "editor" in caught.value.message


def test_remove_keeps_a_host_name_another_instance_still_has():
    stack = add_instance(golden_stack("caddy", "internal"), "lab", ["nodered.example.org", "lab.example.org"],
                         {"admin_password_hash": EXAMPLE_HASH, "path": "/lab"}).stack
    assert stack.domains == ["nodered.example.org", "flows.example.org", "lab.example.org"]
    edited = remove_instance(stack, "lab")
    assert edited.stack.domains == ["nodered.example.org", "flows.example.org"], "lab.example.org went, the shared name stayed"
    assert edited.notes == ["the certificate no longer covers lab.example.org"]
