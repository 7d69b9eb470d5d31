"""Does every file rendered from a version 2 `Stack` (several instances) still mean what the spec says?

The version 2 counterpart of `rendered_meaning.check`, with its helpers: the structure of each file is that of
the baseline (the same stack with plain values; instance names, which become service, network, router and
matcher names, are replaced by their position first), and each value sits where it is meant to: each instance's
host names route to its own service alone, its editor gate holds its own `editor.allow`, its settings.js its own
settings (checked as a version 1 stack of that instance alone, `Stack.view`), and the one certificate covers
every name. The intended values are worked out from the spec here, not read from the renderer.
"""

from __future__ import annotations

import re
from typing import Any

from stackgen.generate.render import Context, compose_document, config_files, render
from stackgen.spec import Instance, Stack
from tests.support import config_lexers as lex
from tests.support import rendered_meaning as meaning


def _files(stack: Stack) -> dict[str, str]:
    return {f.path: f.content.decode() for f in render(stack)}


def _names(stack: Stack) -> dict[str, str]:
    """Every name derived from an instance's name -> a placeholder by its position (compose keys)."""
    found: dict[str, str] = {}
    assert stack.instances is not None
    for i, inst in enumerate(stack.instances):
        found.update({inst.service: f"<service{i}>", inst.data_volume: f"<volume{i}>", inst.secret_name: f"<secret{i}>",
                      inst.internal_network: f"<internal{i}>", inst.egress_network: f"<egress{i}>",
                      "_" + inst.name: f"_<instance{i}>"})
    return found


def _renamed(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {names.get(k, k) if isinstance(k, str) else k: _renamed(v, names) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    return node


def check(stack: Stack, baseline: Stack) -> None:
    """Raise AssertionError (or LexError) when a rendered file does not mean what `stack` says."""
    assert stack.instances is not None and baseline.instances is not None
    files, base = _files(stack), _files(baseline)

    def positions(s: Stack) -> dict[str, str]:
        return {inst.service: f"<{i}>" for i, inst in enumerate(s.instances or [])}

    def by_position(tree: dict[str, str], s: Stack) -> set[str]:
        moved = positions(s)
        return {moved.get(path.split("/", 1)[0], path.split("/", 1)[0]) + "/" + path.split("/", 1)[1] if "/" in path else path
                for path in tree}

    assert by_position(files, stack) == by_position(base, baseline), "the same files as for plain values"
    check_compose(stack, files["compose.yaml"], base["compose.yaml"], baseline)
    for inst, base_inst in zip(stack.instances, baseline.instances, strict=True):
        meaning.check_settings_js(stack.view(inst), files[f"{inst.service}/settings.js"], base[f"{base_inst.service}/settings.js"])
    if stack.edge == "caddy":
        for name in ("edge/Caddyfile", "edge/Caddyfile.bootstrap"):
            check_caddyfile(stack, files[name], base[name], bootstrap=name.endswith("bootstrap"))
    elif stack.edge == "nginx":
        for name in ("edge/nginx.conf", "edge/nginx.bootstrap.conf"):
            check_nginx(stack, files[name], base[name], bootstrap="bootstrap" in name)
    else:
        check_traefik(stack, files, base, baseline)
    if "certbot/local_ca.py" in files:
        meaning.check_local_ca(stack, files["certbot/local_ca.py"], base["certbot/local_ca.py"])
    meaning.check_scripts(stack.view(stack.instances[0]), files)


def check_compose(stack: Stack, text: str, base_text: str, baseline: Stack) -> None:
    document = meaning.interpolated(meaning._yaml_load(text))
    ctx = Context(stack)
    assert document == compose_document(ctx, config_files(ctx)), "compose.yaml, interpolated as Compose does, is the document render built"

    def shape(doc: dict, s: Stack) -> set[tuple]:
        renamed = _renamed(doc, _names(s))
        return {tuple("[]" if isinstance(k, int) else k for k in p) for p in meaning._paths(renamed) if p[:2] != ("x-stackgen", "ignore")}

    assert shape(document, stack) == shape(meaning._yaml_load(base_text), baseline), "compose.yaml has the structure of the plain-value file"
    services, edge = document["services"], document["services"]["edge"]
    assert list(edge["networks"]) == [inst.internal_network for inst in stack.instances or []] + ["public"]
    assert edge["networks"]["public"]["aliases"] == [d for d in stack.domains if not d.startswith("*.")]
    for inst in stack.instances or []:
        service = services[inst.service]
        assert service["networks"] == [inst.internal_network] + ([inst.egress_network] if inst.egress else [])
        assert document["networks"][inst.internal_network]["internal"] is True
        assert [m["source"] for m in service["volumes"] if m["type"] == "volume"] == [inst.data_volume]
        assert all(m["source"].startswith(f"./{inst.service}/") for m in service["volumes"] if m["type"] == "bind")
        assert document["secrets"][inst.secret_name]["file"] == meaning.host_path(inst.credential_secret_file)
        if inst.image:
            assert service["image"] == inst.image
        elif inst.version:
            assert service["image"].endswith(":" + inst.version)
        if inst.memory_limit:
            assert service["mem_limit"] == inst.memory_limit
    upstreams = [label for key, label in edge["labels"].items() if key.endswith(".upstream")]
    assert upstreams == [",".join(f"{inst.service}:1880" for inst in stack.instances or [])]


def _gate_lines(lines: list[list[lex.Token]]) -> list[list[str]]:
    return [[t.text for t in line[2:]] for line in lines if [t.text for t in line[:2]] == ["not", "remote_ip"]]


def check_caddyfile(stack: Stack, text: str, base_text: str, bootstrap: bool) -> None:
    assert "{$" not in text, "Caddy replaces {$VAR} before it even lexes the file"
    lines = lex.caddyfile_lines(text)
    lex.caddyfile_check_braces(lines)
    base_lines = lex.caddyfile_lines(base_text)
    assert meaning._caddy_shape(lines) == meaning._caddy_shape(base_lines), "the Caddyfile has the lines and blocks of the plain-value file"
    placeholders = sorted(p for line in lines for t in line for p in lex.placeholders(t))
    assert placeholders == sorted(p for line in base_lines for t in line for p in lex.placeholders(t)), "no value brings a placeholder"
    if bootstrap:
        return
    hosts = list(dict.fromkeys(h for inst in stack.instances or [] for h in inst.hosts))
    assert meaning._caddy_directive(lines, "@unknown") == [["not", "host", *hosts]]
    texts = [[t.text for t in line] for line in lines]
    expected_gates = []
    handles = []
    for inst in precedence(stack):
        if inst.path:  # host and path prefix (both must match): a block
            at = texts.index([f"@instance_{inst.name}", "{"])
            assert texts[at + 1:at + 4] == [["host", *inst.hosts], ["path", inst.path, inst.path + "/*"], ["}"]]
        else:
            assert meaning._caddy_directive(lines, f"@instance_{inst.name}") == [["host", *inst.hosts]]
        handle = [i for i, line in enumerate(texts) if line == ["handle", f"@instance_{inst.name}", "{"]]
        assert len(handle) == 1, f"one handle for instance {inst.name}"
        handles.append(handle[0])
        proxies = [line for line in lines[handle[0]:] if line[0].text == "reverse_proxy"][:1]
        assert [[t.text for t in line[1:2]] for line in proxies] == [[f"{inst.service}:1880"]], f"{inst.name}'s handle proxies to its own service"
        if inst.editor.enabled:
            expected_gates += [inst.editor.allow] * (2 if inst.editor.host else 1)
            at = texts.index([f"@editor_outsider_{inst.name}", "{"])
            root = editor_root(inst)
            assert texts[at + 1] == ["path", root, root.rstrip("/") + "/*"], f"{inst.name}'s editor gate matches its editor's path"
    assert handles == sorted(handles), "Caddy tries the handles in order: path prefixes before the roots of host names"
    assert _gate_lines(lines) == expected_gates, "each instance's editor matchers hold its editor.allow"
    unrooted = unrooted_hosts(stack)
    assert meaning._caddy_directive(lines, "@unrouted") == ([["host", *unrooted]] if unrooted else [])
    if unrooted:
        at = texts.index(["handle", "@unrouted", "{"])
        assert at > max(handles) and texts[at + 1] == ["respond", "not found", "404"]


def check_nginx(stack: Stack, text: str, base_text: str, bootstrap: bool) -> None:
    directives = lex.nginx_directives(text)
    assert meaning._nginx_shape(directives) == meaning._nginx_shape(lex.nginx_directives(base_text)), "nginx.conf has the directives of the plain-value file"
    if bootstrap:
        return
    assert [d.args for d in directives if d.name == "server_name" and d.args != ["_"]] == [stack.domains]
    maps = _map_entries(directives)
    instances = stack.instances or []
    if any(inst.path for inst in instances):
        rooted = {h: inst.service for inst in instances if not inst.path for h in inst.hosts}
        assert maps["$stackgen_host_instance"] == rooted | {h: "unrouted" for h in unrooted_hosts(stack)}
        prefixed = {inst.service: inst for inst in instances if inst.path}
        assert sorted(maps["$stackgen_instance"].values()) == sorted(prefixed), "one host-and-path pattern per path-routed instance"
        all_hosts = {h for inst in instances for h in inst.hosts}
        for key, service in maps["$stackgen_instance"].items():
            inst, pattern = prefixed[service], re.compile(key.removeprefix("~*"), re.I)
            for host in all_hosts:
                for path in (inst.path, inst.path + "/", inst.path.upper() + "/x/y"):
                    assert bool(pattern.search(f"{host}:{path}")) == (host in inst.hosts), (key, host, path)
                assert not pattern.search(f"{host}:{inst.path}x") and not pattern.search(f"{host}:/x{inst.path}")
                assert not pattern.search(f"x{host}:{inst.path}") and not pattern.search(f"{host}x:{inst.path}")
    else:
        expected = {h: inst.service for inst in instances for h in inst.hosts}
        assert maps["$stackgen_instance"] == expected, "each host name picks its own instance's service"
    for inst in instances:
        if inst.editor.enabled:
            (key,) = maps[f"$editor_by_path_{inst.name.replace('-', '_')}"]
            pattern, root = re.compile(key.removeprefix("~*"), re.I), editor_root(inst).rstrip("/")
            assert pattern.search(root or "/") and pattern.search(root.upper() + "/flows") and not pattern.search(root + "x/flows")
    assert maps["$stackgen_upstream"] == {inst.service: f"{inst.service}:1880" for inst in stack.instances or []}
    networks = [d.name for d in directives if d.context and d.context[-1] == "geo" and d.name != "default"]
    assert networks == [n for inst in stack.instances or [] if inst.editor.enabled for n in inst.editor.allow], "each geo lists its instance's editor.allow"
    cert, key = meaning.tls_paths(stack)
    assert [d.args for d in directives if d.name == "ssl_certificate"] == [[cert]]
    assert [d.args for d in directives if d.name == "ssl_certificate_key"] == [[key]]


def _map_entries(directives: list[lex.Directive]) -> dict[str, dict[str, str]]:
    """map blocks by their result variable: {key: value} (their default left out)."""
    found: dict[str, dict[str, str]] = {}
    current = None
    for d in directives:
        if d.name == "map" and d.context[-1:] != ("map",):
            current = d.args[-1] if d.args else None
            if current is not None:
                found[current] = {}
        elif current and d.context[-1:] == ("map",) and d.name != "default":
            found[current][d.name] = " ".join(d.args)
    return found


def check_traefik(stack: Stack, files: dict[str, str], base: dict[str, str], baseline: Stack) -> None:
    for name in ("edge/traefik.yml", "edge/dynamic.yml", "edge/dynamic.bootstrap.yml"):
        document = meaning._yaml_load(files[name])
        renamed, base_renamed = _renamed(document, _names(stack)), _renamed(meaning._yaml_load(base[name]), _names(baseline))
        shape, base_shape = meaning._paths(_keys_renamed(renamed, stack)), meaning._paths(_keys_renamed(base_renamed, baseline))
        assert shape == base_shape, f"{name} has the structure of the plain-value file"
        for value in meaning._scalars(document):
            assert not (isinstance(value, str) and "{{" in value), f"{name}: {value!r} would be a Go template"
        if not name.startswith("edge/dynamic"):
            continue
        routers, services = document["http"]["routers"], document["http"]["services"]
        for inst in stack.instances or []:
            router = routers[f"node-red_{inst.name}"]
            if inst.path:
                prefix = inst.path.replace(".", "\\.")
                assert router["rule"] == f"({meaning.traefik_rule(inst.hosts)}) && PathRegexp(`(?i)^{prefix}(/|$)`)"
                assert router["priority"] > max(r.get("priority", 0) for name, r in routers.items() if not _path_routed(name, stack))
            else:
                assert router["rule"] == meaning.traefik_rule(inst.hosts)
            assert len(re.findall(r"`[^`]*`", router["rule"])) == len(inst.hosts) + bool(inst.path), "one string literal per host name"
            assert router["service"] == f"node-red_{inst.name}"
            assert services[f"node-red_{inst.name}"]["loadBalancer"]["servers"] == [{"url": f"http://{inst.service}:1880"}]
            if inst.editor.enabled:
                editor = routers[f"node-red-editor_{inst.name}"]
                assert editor["service"] == f"node-red_{inst.name}"
                root = editor_root(inst).rstrip("/").replace(".", "\\.")
                assert f"({meaning.traefik_rule(inst.hosts)}) && PathRegexp(`(?i)^{root}(/|$)`)" in editor["rule"]
                assert editor["priority"] > router.get("priority", 0)
                allowed = document["http"]["middlewares"][f"editor-allow_{inst.name}"]["ipAllowList"]["sourceRange"]
                assert allowed == inst.editor.allow, "each editor's ipAllowList holds its instance's editor.allow"


def _keys_renamed(node: Any, stack: Stack) -> Any:
    """Router, middleware and service keys that end in `_<instance name>` -> by position."""
    suffixes = {"_" + inst.name: f"_<{i}>" for i, inst in enumerate(stack.instances or [])}
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if isinstance(key, str):
                for suffix, placeholder in suffixes.items():
                    if key.endswith(suffix):
                        key = key[: -len(suffix)] + placeholder
                        break
            out[key] = _keys_renamed(value, stack)
        return out
    if isinstance(node, list):
        return [_keys_renamed(v, stack) for v in node]
    return node


def editor_root(inst: Instance) -> str:
    """Where an instance's editor is (httpAdminRoot), worked out here: its editor path, under its prefix if it has one."""
    return (inst.path + inst.editor.path).rstrip("/") if inst.path else inst.editor.path


def precedence(stack: Stack) -> list[Instance]:
    """The order the edge must try the instances in: path prefixes first, then the roots of host names."""
    instances = stack.instances or []
    return [i for i in instances if i.path] + [i for i in instances if not i.path]


def unrooted_hosts(stack: Stack) -> list[str]:
    """Host names only path prefixes have (no instance at their root), in the spec's order."""
    instances = stack.instances or []
    rooted = {h for i in instances if not i.path for h in i.hosts}
    return [h for h in dict.fromkeys(h for i in instances for h in i.hosts) if h not in rooted]


def _path_routed(router: str, stack: Stack) -> bool:
    return any(router.endswith("_" + i.name) for i in stack.instances or [] if i.path)


def instance(stack: Stack, name: str) -> Instance:
    return next(i for i in stack.instances or [] if i.name == name)
