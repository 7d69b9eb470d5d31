"""Hostile strings in every string field of the spec: refused naming the field, or rendered so that every
file still means the same (issue 11, part 1).

The fields are found by walking the pydantic models (`spec_string_fields`), so a field added to
spec.py is in the property at once, and `FIELDS` must say how to make values for it (a test fails
until it does). For each field, hypothesis draws an edge and a TLS mode that use it, and a value: a
valid one, a valid one with hostile fragments inserted (quotes, `$(…)`, backticks, `${…}`, newlines,
`;`, `#`, braces, Caddy placeholders, unicode, NUL), or random text from those characters. Either
`Stack` refuses it with a ValidationError whose location is that field, or every rendered file
passes `rendered_meaning.check`: compose.yaml and Traefik's YAML read back to the intended scalars
(and Compose would interpolate nothing), the Caddyfile and nginx.conf lex to the directives of the
plain-value file with the value as one token in its place, settings.js lexes with each value as one
string literal, local_ca.py parses with the values as its constants, and the shell scripts parse
(sh, bash, dash) and, run with stub commands, hand each value over as one argument and start nothing else.

Budget, fixed (derandomize, no example database): EXAMPLES per field for the property (1120 values, about
200 of them accepted, rendered and checked), and a deterministic sweep of every fragment at the start, middle
and end of a valid value of every field (about 5100 values, 200 rendered); together about 25 s on 2 cores.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from stackgen.composefile.loader import load_compose
from stackgen.errors import format_spec_error, problems
from stackgen.generate.render import config_token, render
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH, combos, golden_stack
from tests.support import rendered_instances, rendered_meaning

EXAMPLES = 40

# --- the fields of the spec --------------------------------------------------------------------------


def spec_string_fields(model: type[BaseModel] = Stack, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Every field that holds text, by path: "text", "choice" (a Literal of strings) or "list" (list of text).

    Unknown kinds of annotation raise: a new kind of field must be classified here, not skipped."""
    found: dict[tuple[str, ...], str] = {}
    for name, info in model.model_fields.items():
        found.update(_classify(info.annotation, prefix + (name,)))
    return found


def _classify(annotation: Any, path: tuple[str, ...]) -> dict[tuple[str, ...], str]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is str:
        return {path: "text"}
    if annotation in (int, bool, float):
        return {}
    if origin in (Union, types.UnionType):
        found: dict[tuple[str, ...], str] = {}
        for arg in args:
            if arg is not type(None):
                found.update(_classify(arg, path))
        return found
    if origin is Literal:
        if all(isinstance(a, str) for a in args):
            return {path: "choice"}
        if all(isinstance(a, (int, bool)) for a in args):
            return {}
    if origin is list:
        inner = _classify(args[0], path)
        if inner == {path: "text"}:
            return {path: "list"}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return spec_string_fields(annotation, path)
    if origin is list and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return spec_string_fields(args[0], path)  # `instances`: judged on one of them (base_spec_v2)
    raise TypeError(f"{'.'.join(path)}: no hostile-value strategy for fields of type {annotation!r}; classify it here")


def choices_of(path: tuple[str, ...]) -> tuple[str, ...]:
    """The strings a "choice" field takes (its Literal, under any Optional)."""
    model: Any = Stack
    for part in path[:-1]:
        model = _model_of(model.model_fields[part].annotation)
    annotation = model.model_fields[path[-1]].annotation
    while typing.get_origin(annotation) is not Literal:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_args(annotation)


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel))


# --- how to make values for each field -----------------------------------------------------------------

ACME_MODES = ("certbot-http01", "certbot-dns01", "edge-acme")


@dataclass(frozen=True)
class Entry:
    valid: tuple[str, ...] = ()  # valid values: seeds for mutation, and plain renderings of the edge of the range
    modes: tuple[str, ...] = ()  # TLS modes that use the field (empty: all)
    near: tuple[str, ...] = ()  # refused values close to valid ones (seeds for mutation only)

    @property
    def seeds(self) -> tuple[str, ...]:
        return self.valid + self.near


IMAGES = ("nodered/node-red:5.0.7", "registry.example:5000/team/node-red_x:v1.2-rc.1@sha256:" + "a" * 64, "caddy", "traefik:v3.6.2")
FIELDS: dict[tuple[str, ...], Entry] = {
    ("project",): Entry(("p", "a" * 63, "my_stack-1", "0-x")),
    ("domains",): Entry(("nodered.example.org", "x" * 63 + ".example.org", "a-1.b-2.example.org", "NODE.Example.Org.")),
    ("email",): Entry(("ops@example.org", "a.b+tag%x_y-z@sub.example.org", "o@x.io"), near=("ops@example.org.",)),
    ("edge",): Entry(("caddy", "nginx", "traefik")),
    ("tls", "mode"): Entry(("certbot-http01", "certbot-dns01", "edge-acme", "internal", "files")),
    ("tls", "acme_directory"): Entry(("https://ca.home.arpa/acme/acme/directory", "https://ca.example:9000/dir/a=b,c~d%20+x", "https://x"),
                                     ACME_MODES),
    ("tls", "ca_bundle"): Entry(("ca.pem", "/etc/ssl/ca+x@y.pem", "ca/home-ca.pem"), ACME_MODES),
    ("tls", "dns_provider"): Entry(("cloudflare", "route53", "rfc2136"), ("certbot-dns01",)),
    ("tls", "dns_credentials_file"): Entry(("secrets/dns.ini", "/root/.secrets/cloudflare.ini", "a@b+c/d-e_f.ini"), ("certbot-dns01",)),
    ("tls", "cert_file"): Entry(("tls/fullchain.pem", "/etc/tls/a+b@c.pem", "certs/x/fullchain.pem"), ("files",)),
    ("tls", "key_file"): Entry(("tls/privkey.pem", "/etc/tls/key@x.pem", "keys/privkey.pem"), ("files",)),
    ("ports", "bind_address"): Entry(("127.0.0.1", "::1", "0.0.0.0", "fe80::1", "::ffff:192.0.2.1", "2001:db8::8"),
                                     near=("fe80::1%eth0",)),
    ("platform",): Entry(("linux/amd64", "linux/arm64", "linux/arm/v7")),
    ("target",): Entry(("compose", "swarm")),
    ("images", "node_red"): Entry(IMAGES),
    ("images", "edge"): Entry(IMAGES),
    ("images", "certbot"): Entry(IMAGES, ("certbot-http01", "certbot-dns01", "internal")),
    ("node_red", "version"): Entry(("5.0.7", "4.1.0-beta.1", "10.20.30")),
    ("node_red", "admin_user"): Entry(("admin", "ops.admin@home-lab_1", "a" * 64)),
    ("node_red", "admin_password_hash"): Entry((EXAMPLE_HASH,)),
    ("node_red", "credential_secret_file"): Entry(("secrets/node_red_credential_secret", "/run/x/secret", "s+e@c.ret")),
    ("node_red", "http_node_auth", "user"): Entry(("dash", "a.b@c_d-e")),
    ("node_red", "http_node_auth", "password_hash"): Entry((EXAMPLE_HASH,)),
    ("node_red", "editor", "path"): Entry(("/", "/admin", "/admin/flows-1.v2~x")),
    ("node_red", "editor", "allow"): Entry(("10.0.0.0/8", "::1/128", "fd00::/8", "192.168.1.7/32", "2001:db8::/32", "0.0.0.0/0"),
                                           near=("10.0.0.0/33", "fe80::/64%eth0")),
    ("node_red", "editor", "host"): Entry(("flows.example.org", "nodered.example.org"), near=("*.example.org", "flows.example.org.x")),
    ("node_red", "extra_nodes"): Entry(("node-red-dashboard", "@flowfuse/node-red-dashboard@^1.2.3", "node-red-contrib-x@>=1.0.0<2||3.x")),
    ("node_red", "base_image"): Entry(IMAGES),
    ("node_red", "memory_limit"): Entry(("384m", "1g", "65536k")),
    ("timezone",): Entry(("Etc/UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+1")),
    ("logging", "max_size"): Entry(("5m", "10k", "1g")),
}
# Version 2: each field of an instance, judged on the second of two (`base_spec_v2`); its node_red settings take
# the node_red values, its own fields (and those whose values must fit that instance) their own.
FIELDS.update({("instances", *path[1:]): entry for path, entry in FIELDS.items() if path[0] == "node_red"})
FIELDS.update({
    ("instances", "name"): Entry(("lab", "site-b2", "a" * 24, "x-1-y"), near=("Lab", "a" * 25, "lab-", "node_red", "node-red")),
    ("instances", "domains"): Entry(("lab.example.org", "x" * 63 + ".example.org", "LAB.Example.Org.")),
    ("instances", "image"): Entry(IMAGES),
    # Not its own domain: the stack would then list one name fewer, and each file one token fewer than the baseline.
    ("instances", "editor", "host"): Entry(("lab-editor.example.org", "y" * 63 + ".example.org"), near=("*.example.org", "flows.example.org")),
    ("instances", "credential_secret_file"): Entry(("secrets/node_red_lab_credential_secret", "/run/x/secret", "s+e@c.ret")),
    # Judged with `lab` under /lab on a host name it shares with node-red (`base_spec_v2(path_routed=True)`).
    ("instances", "path"): Entry(("/lab", "/a.b/c-d_e~f", "/" + "x" * 63, "/Lab/"),
                                 near=("/", "/lab/../x", "/.well-known", "//lab", "lab", "/admin")),
})
# The fields whose values reach the path-routing rules (host and path patterns): judged on the path-routed layout.
PATH_ROUTED = {("instances", "path"), ("instances", "domains"), ("instances", "editor", "host"), ("instances", "editor", "path")}

# Hostile pieces by class; a drawn piece picks a class first, so each class is drawn often.
FRAGMENT_CLASSES: dict[str, tuple[str, ...]] = {
    "quote": ("'", '"', "`", "'; pwn; '", '"; pwn; "'),
    "substitution": ("$(pwn)", "`pwn`", "${PWN}", "$PWN", "$$", "{env.PWN}", "{$PWN}", "{{ .X }}", "@GENERATION@"),
    "line break": ("\n", "\r", "\r\n", "\u2028", "\x85"),
    "space": (" ", "\t", "\u00a0", "\ufeff"),
    "separator": (";pwn", "|pwn", "&pwn", "&&pwn", ">x", "<x", "#", "# x", ","),
    "bracket": ("{", "}", "[", "]", "(", ")"),
    "escape": ("\\", "\\n", "%", "%0a", "\x00", "\x1b"),
    "unicode": ("ü", "İ", "\u212a", "\u202e", "\ufb01"),
    "path": ("..", "../", "*", "@", ":", "/", "=", "!", "?", "~", "-", "--pwn"),
}
FRAGMENTS = tuple(f for members in FRAGMENT_CLASSES.values() for f in members)
ALPHABET = sorted(set("".join(FRAGMENTS) + "ab.-_/@:"))
fragments = st.sampled_from(sorted(FRAGMENT_CLASSES)).flatmap(lambda c: st.sampled_from(FRAGMENT_CLASSES[c]))


def insert(value: str, fragment: str, where: str | int) -> str:
    at = {"start": 0, "end": len(value), "middle": len(value) // 2}.get(where, where) if isinstance(where, str) else where % (len(value) + 1)
    return value[:at] + fragment + value[at:]


def values_for(entry: Entry) -> st.SearchStrategy[str]:
    """A valid value; one with 1-3 hostile pieces at its start, end or anywhere; or random hostile text."""
    seeds = st.sampled_from(entry.seeds)
    where = st.one_of(st.sampled_from(["start", "end", "middle"]), st.integers(0, 300))
    pieces = st.lists(st.tuples(fragments, where), min_size=1, max_size=3)

    def mutate(value: str, chosen: list[tuple[str, str | int]]) -> str:
        for fragment, at in chosen:
            value = insert(value, fragment, at)
        return value

    mutated = st.builds(mutate, seeds, pieces)
    random_text = st.text(alphabet=st.sampled_from(ALPHABET), max_size=24)
    return st.one_of(seeds, mutated, mutated, mutated, random_text)


# --- stacks ----------------------------------------------------------------------------------------------


def base_spec(edge: str, mode: str) -> dict:
    """A stack using every optional field the combination allows, with plain values."""
    tls: dict = {"mode": mode}
    domains = ["nodered.example.org", "flows.example.org"]
    if mode in ACME_MODES:
        tls.update(acme_directory="https://ca.home.arpa/acme/acme/directory", ca_bundle="ca/home-ca.pem")
    if mode == "certbot-dns01":
        tls.update(dns_provider="cloudflare", dns_credentials_file="secrets/cloudflare.ini")
        domains = ["*.example.org", "example.org"]
    elif mode == "files":
        tls.update(cert_file="tls/fullchain.pem", key_file="tls/privkey.pem")
    return {
        "project": "hostile",
        "domains": domains,
        "email": "ops@example.org",
        "edge": edge,
        "tls": tls,
        "ports": {"bind_address": "127.0.0.1", "http": 8080, "https": 8443},
        "node_red": {
            "admin_password_hash": EXAMPLE_HASH,
            "http_node_auth": {"user": "dash", "password_hash": EXAMPLE_HASH},
            "editor": {"path": "/admin", "allow": ["10.0.0.0/8", "fd00::/8"], "host": domains[1]},
            "extra_nodes": ["node-red-dashboard", "node-red-contrib-modbus@5.0.0"],
            "memory_limit": "384m",
        },
        "timezone": "Europe/Berlin",
        "logging": {"max_size": "5m", "max_files": 2},
    }


def base_spec_v2(edge: str, mode: str, path_routed: bool = False) -> dict:
    """`base_spec` as version 2: its Node-RED as instance node-red, and a second instance `lab` with the same
    settings, on lab.example.org and (its editor) lab-editor.example.org. `path_routed`: lab is under /lab there and
    on nodered.example.org too, whose root is node-red's (under the certificate's wildcard with DNS-01: nobody's)."""
    spec = base_spec(edge, mode)
    node_red = spec.pop("node_red")
    exact = [d for d in spec["domains"] if not d.startswith("*.")]
    lab = {**copy.deepcopy(node_red), "name": "lab", "domains": ["lab.example.org"]}
    lab["editor"]["host"] = "lab-editor.example.org"
    if path_routed:
        lab.update(path="/lab", domains=["lab.example.org", "nodered.example.org"])
    spec["domains"] = spec["domains"] + ["lab.example.org", "lab-editor.example.org"]
    spec.update(version=2, instances=[{**node_red, "name": "node-red", "domains": exact}, lab])
    return spec


# A value of the instance's host names replaces the name in the stack's domains too (the certificate must cover it).
_MIRRORED = {("instances", "domains"): "lab.example.org", ("instances", "editor", "host"): "lab-editor.example.org"}


def with_value(spec: dict, path: tuple[str, ...], value: Any) -> dict:
    node = spec
    if path[0] == "instances":
        if path in _MIRRORED:
            mirrored = value[0] if isinstance(value, list) else value
            others = [d for d in spec["domains"] if d != _MIRRORED[path]]
            clean = mirrored.strip().lower().rstrip(".") if isinstance(mirrored, str) else mirrored
            spec["domains"] = others if clean in others else [mirrored if d == _MIRRORED[path] else d for d in spec["domains"]]
        node, path = spec["instances"][1], path[1:]
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return spec


def spec_for(path: tuple[str, ...], edge: str, mode: str) -> dict:
    return base_spec_v2(edge, mode, path in PATH_ROUTED) if path[0] == "instances" else base_spec(edge, mode)


def located(loc: tuple) -> tuple:
    """A problem's location without the instance's index: `instances.1.name` is the field `instances.name`."""
    return loc[:1] + loc[2:] if loc[:1] == ("instances",) and len(loc) > 1 and isinstance(loc[1], int) else loc


def combos_for(path: tuple[str, ...]) -> list[tuple[str, str]]:
    modes = FIELDS[path].modes
    return [(e, m) for e, m in combos() if not modes or m in modes]


def test_every_string_field_of_the_spec_has_an_entry():
    fields = spec_string_fields()
    assert set(fields) == set(FIELDS), (
        f"string fields without an entry in FIELDS: {sorted(set(fields) - set(FIELDS))}; "
        f"entries for no field: {sorted(set(FIELDS) - set(fields))}"
    )
    assert len(fields) >= 28
    for path, kind in fields.items():
        if kind == "choice":
            assert set(FIELDS[path].valid) <= set(choices_of(path)), path


@pytest.mark.parametrize(("edge", "mode"), combos())
def test_plain_stacks_at_the_edge_of_every_range_render_faithfully(edge, mode):
    """The check itself, on valid values only: the longest and oddest values of every field, every combination."""
    spec = base_spec(edge, mode)
    for path, entry in FIELDS.items():
        if path[0] == "instances":
            continue  # version 2: test_plain_two_instance_stacks_render_faithfully
        if spec_string_fields()[path] in ("text", "list") and (not entry.modes or mode in entry.modes):
            value = max(entry.valid, key=len)
            if path == ("domains",):
                value = [spec["domains"][0], value.lower().rstrip(".")]
            elif path == ("node_red", "editor", "allow"):
                value = sorted(entry.valid, key=len)[-2:]  # as many as the plain file has: one line holds them
            elif path == ("node_red", "extra_nodes"):
                value = list(entry.valid)
            elif path == ("node_red", "version"):
                continue  # 10.x has no contract entry: covered by the property
            with_value(spec, path, value)
    stack = Stack.model_validate(spec)
    rendered_meaning.check(stack, Stack.model_validate(base_spec(edge, mode)))


@pytest.mark.parametrize("path_routed", [False, True], ids=["by-host", "by-path"])
@pytest.mark.parametrize(("edge", "mode"), combos())
def test_plain_two_instance_stacks_render_faithfully(edge, mode, path_routed):
    """Version 2: the second instance takes the longest valid value of each of its fields, every combination (routed
    by its own host names, and under a path prefix of a shared one)."""
    spec = base_spec_v2(edge, mode, path_routed)
    for path, entry in FIELDS.items():
        if path[0] != "instances" or spec_string_fields()[path] not in ("text", "list") or (entry.modes and mode not in entry.modes):
            continue
        value = max(entry.valid, key=len)
        if path in (("instances", "editor", "allow"), ("instances", "extra_nodes")):
            value = list(entry.valid) if path[-1] == "extra_nodes" else sorted(entry.valid, key=len)[-2:]
        elif path == ("instances", "domains"):
            value = [value.lower().rstrip(".")] + (["nodered.example.org"] if path_routed else [])
        elif path == ("instances", "version"):
            continue  # 10.x has no contract entry: covered by the property
        elif path == ("instances", "path") and not path_routed:
            continue
        with_value(spec, path, value)
    rendered_instances.check(Stack.model_validate(spec), Stack.model_validate(base_spec_v2(edge, mode, path_routed)))


def judge(path: tuple[str, ...], edge: str, mode: str, value: Any) -> str:
    """The property for one value: "refused" (naming the field) or "rendered" (every file checked)."""
    spec = spec_for(path, edge, mode)
    baseline = Stack.model_validate(spec)
    if spec_string_fields()[path] == "list":
        lab = spec["instances"][1] if "instances" in spec else {}
        lists = {("domains",): spec["domains"], ("node_red", "extra_nodes"): spec.get("node_red", {}).get("extra_nodes"),
                 ("node_red", "editor", "allow"): spec.get("node_red", {}).get("editor", {}).get("allow"),
                 ("instances", "domains"): lab.get("domains"), ("instances", "extra_nodes"): lab.get("extra_nodes"),
                 ("instances", "editor", "allow"): lab.get("editor", {}).get("allow")}
        value = [value] + list(lists[path])[1:]
    try:
        stack = Stack.model_validate(with_value(spec, path, value))
    except ValidationError as exc:
        found = [located(p.loc)[: len(path)] for p in problems(exc)]
        assert path in found, f"refused, but not naming {'.'.join(path)}: {format_spec_error(exc)}"
        assert re.sub(r"\[\d+\]", "", format_spec_error(exc)).count(".".join(path))
        return "refused"
    (rendered_instances if path[0] == "instances" else rendered_meaning).check(stack, baseline)
    return "rendered"


@pytest.mark.parametrize("path", sorted(FIELDS), ids=".".join)
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_a_hostile_value_is_refused_naming_its_field_or_rendered_meaning_the_same(path, data):
    entry = FIELDS[path]
    edge, mode = data.draw(st.sampled_from(combos_for(path)), label="combination")
    if spec_string_fields()[path] == "choice":
        value = data.draw(values_for(entry).filter(lambda v: v not in choices_of(path)), label="value")
    else:
        value = data.draw(values_for(entry), label="value")
    judge(path, edge, mode, value)


@pytest.mark.parametrize("path", sorted(FIELDS), ids=".".join)
def test_every_hostile_fragment_at_the_start_middle_and_end_of_a_valid_value(path):
    """The deterministic half: each fragment of each class, at three places in a valid value of the field,
    over the field's edge x mode combinations in turn. Every failure is listed, not just the first."""
    entry, combinations = FIELDS[path], combos_for(path)
    failures = []
    for idx, (fragment, where) in enumerate((f, w) for f in FRAGMENTS for w in ("start", "middle", "end")):
        edge, mode = combinations[idx % len(combinations)]
        value = insert(entry.seeds[idx % len(entry.seeds)], fragment, where)
        if spec_string_fields()[path] == "choice" and value in choices_of(path):
            continue
        try:
            judge(path, edge, mode, value)
        except Exception as exc:  # noqa: BLE001 - every failing value is reported
            failures.append(f"{edge}/{mode} {value!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    assert not failures, "\n".join(failures)


# --- the renderer's own guards (defense in depth: what if the spec let a value through) ------------------


def test_every_interpolation_in_a_config_blueprint_is_a_token_or_json():
    root = Path(str(resources.files("stackgen.generate") / "blueprints"))
    found = 0
    for name in ("caddy/Caddyfile.j2", "nginx/nginx.conf.j2", "traefik/dynamic.yml.j2", "traefik/traefik.yml.j2",
                 "node-red/settings.js.j2"):
        for expression in re.findall(r"\{\{(.*?)\}\}", (root / name).read_text(), re.S):
            expression = expression.strip()
            found += 1
            if name.endswith("settings.js.j2"):
                assert re.search(r"\|\s*tojson$", expression), f"{name}: {{{{ {expression} }}}}"
            elif expression != "host_rule":  # built in the template from `d | token`
                # A token may go on to have its dots escaped for a regular expression (nginx, Traefik); `quoted` is
                # for generate/headers.py's fixed header values (it refuses anything a language would read as syntax).
                plain = re.sub(r'\s*\|\s*replace\("\.", "\\\\\."\)$', "", expression)
                assert re.search(r"\|\s*(token|tojson|quoted)$|map\(\"token\"\)", plain), f"{name}: {{{{ {expression} }}}}"
    assert found > 30


@pytest.mark.parametrize("value", ["a b", "a;b", "a{b", "a}b", "{env.X}", "$x", "a'b", 'a"b', "a`b", "a#b", "a\\b", "a\nb"])
def test_the_token_filter_refuses_what_is_not_one_plain_token(value):
    with pytest.raises(ValueError, match="unsafe value for a configuration file"):
        config_token(value)


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_a_value_the_spec_should_have_refused_stops_rendering(edge):
    stack = golden_stack(edge, "files")
    evil = Stack.model_construct(**{**dict(stack), "domains": ["nodered.example.org;evil", "flows.example.org"]})
    with pytest.raises(ValueError, match="unsafe value"):
        render(evil)


def test_a_dollar_in_a_compose_value_reaches_compose_as_itself(tmp_path):
    """compose.yaml escapes `$` as `$$`: read as Compose reads it (stackgen's loader), the value is unchanged."""
    stack = golden_stack("caddy", "internal")
    stack = Stack.model_construct(**{**dict(stack), "timezone": "Etc/$HOME${X:-y}$$"})
    for item in render(stack):
        (tmp_path / item.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / item.path).write_bytes(item.content)
    topology = load_compose([tmp_path / "compose.yaml"], environ={"HOME": "/root", "X": "x"})
    assert topology.services["node-red"].environment["TZ"] == "Etc/$HOME${X:-y}$$"


# --- what the property found, kept as examples ----------------------------------------------------------


@pytest.mark.parametrize(("path", "mode", "value"), [
    # A pattern's `$` matches before a trailing newline: each of these got through `re.match`.
    (("email",), "edge-acme", "ops@example.org\n"),  # broke Caddy's `email` directive
    (("node_red", "editor", "path"), "internal", "/admin\n"),  # a line break inside a settings.js string
    (("node_red", "memory_limit"), "internal", "384m\n"),  # a ValueError inside render
    (("tls", "cert_file"), "files", "tls/fullchain.pem\n"),  # broke Traefik's YAML and the Caddyfile
    (("node_red", "base_image"), "internal", "nodered/node-red:5.0.7\n"),  # a line of its own in the Dockerfile
    (("node_red", "version"), "internal", "5.0.7\n"),
    (("project",), "internal", "p\n"),
    (("timezone",), "internal", "Etc/UTC\n"),
    # Any text is an IPv6 scope for Python, and the scope reached compose.yaml, which Compose interpolates.
    (("ports", "bind_address"), "internal", "fe80::1%${HOME}"),
    (("ports", "bind_address"), "internal", "fe80::1%$(id)"),
    # Not validated at all: it reaches compose.yaml (a secret's `file:`).
    (("node_red", "credential_secret_file"), "internal", "secrets/${HOME}"),
    (("node_red", "credential_secret_file"), "internal", "secrets/a\x85b"),
])
def test_values_the_property_found_are_refused_naming_their_field(path, mode, value):
    assert judge(path, "caddy", mode, value) == "refused"


# --- the lexers see a break-out (the check is only as good as they are) ---------------------------------


def test_the_lexers_see_what_a_value_would_break():
    from tests.support import config_lexers as lex

    plain = lex.nginx_directives("http {\n    server_name a.org b.org;\n}\n")
    broken = lex.nginx_directives("http {\n    server_name a.org;include /etc/passwd; b.org;\n}\n")
    assert [d.name for d in plain] == ["http", "server_name"]
    assert [d.name for d in broken] == ["http", "server_name", "include", "b.org"]
    assert lex.nginx_directives("a x}y;")[0].args == ["x}y"], "inside a word, } is a character"
    with pytest.raises(lex.LexError):
        lex.nginx_directives("a 'x'y;")
    lines = lex.caddyfile_lines('email a@b.org\n\tacme_ca "x y" `z\nw` {env.X}\n')
    assert [[t.text for t in line] for line in lines] == [["email", "a@b.org"], ["acme_ca", "x y", "z\nw", "{env.X}"]]
    assert lex.placeholders(lines[1][3]) == ["{env.X}"]
    with pytest.raises(lex.LexError):
        lex.js_tokens('a = "x\ny";')
    tokens = lex.js_tokens('x = {u: "a\\u0022b", p: \'c\'}; // "no"')
    assert [t.text for t in lex.js_property(tokens, "u")] == ['a"b'] and [t.text for t in lex.js_property(tokens, "p")] == ["c"]
