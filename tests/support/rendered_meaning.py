"""Does every file rendered from a `Stack` still mean what the spec says? (issue 11, part 1)

`check(stack, baseline)` reads each rendered file the way its program does and holds it to two
things: its structure is the structure of `baseline` (the same stack with plain values: same
directives, blocks, lines, keys, tokens), and each spec value sits exactly where it is meant to,
as exactly one token/scalar/argument with the intended value. The intended values are worked out
here from the spec, not read from render.py, so a renderer bug cannot vouch for itself.

Shell scripts are parsed by every shell present (sh, bash, dash) and run under dash with a PATH
of stubs only: the stubs record their argv (and, as the scripts run with `sh -a`, the variables
the script assigned), `pwn` is the command the hostile values try to start, and any other command
is "not found".
"""

from __future__ import annotations

import ast
import functools
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from stackgen.composefile.env import InterpolationError, substitute
from stackgen.generate.render import Context, compose_document, config_files, render
from stackgen.images import build
from stackgen.spec import Stack
from tests.support import config_lexers as lex

LETSENCRYPT = "/etc/letsencrypt/live"
TLS_FILES = "/etc/stackgen/tls"


# --- what the spec says -------------------------------------------------------------------------


def cert_name(stack: Stack) -> str:
    return stack.domains[0].removeprefix("*.")


def tls_paths(stack: Stack) -> tuple[str, str]:
    """Where the edge reads the certificate and key, from the spec alone."""
    tls = stack.tls
    if tls.mode == "files":
        assert tls.cert_file and tls.key_file
        cert_dir, key_dir = posixpath.dirname(tls.cert_file), posixpath.dirname(tls.key_file)
        if cert_dir == key_dir:
            return f"{TLS_FILES}/{posixpath.basename(tls.cert_file)}", f"{TLS_FILES}/{posixpath.basename(tls.key_file)}"
        return f"{TLS_FILES}/cert/{posixpath.basename(tls.cert_file)}", f"{TLS_FILES}/key/{posixpath.basename(tls.key_file)}"
    return f"{LETSENCRYPT}/{cert_name(stack)}/fullchain.pem", f"{LETSENCRYPT}/{cert_name(stack)}/privkey.pem"


def host_path(path: str) -> str:
    return path if path.startswith("/") else "./" + path


def traefik_rule(domains: list[str]) -> str:
    parts = []
    for domain in domains:
        if domain.startswith("*."):
            parts.append("HostRegexp(`^[a-z0-9-]+" + domain[1:].replace(".", "\\.") + "$`)")
        else:
            parts.append(f"Host(`{domain}`)")
    return " || ".join(parts)


# --- the check ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _rendered(spec_json: str) -> dict[str, str]:
    return {f.path: f.content.decode() for f in render(Stack.model_validate_json(spec_json))}


def check(stack: Stack, baseline: Stack) -> None:
    """Raise AssertionError (or LexError) when a rendered file does not mean what `stack` says."""
    files = {f.path: f.content.decode() for f in render(stack)}
    base = _rendered(baseline.model_dump_json())
    assert sorted(files) == sorted(base), "the same files as for plain values"
    check_compose(stack, files["compose.yaml"], base["compose.yaml"])
    check_settings_js(stack, files["node-red/settings.js"], base["node-red/settings.js"])
    if stack.edge == "caddy":
        for name in ("edge/Caddyfile", "edge/Caddyfile.bootstrap"):
            check_caddyfile(stack, files[name], base[name], bootstrap=name.endswith("bootstrap"))
    elif stack.edge == "nginx":
        for name in ("edge/nginx.conf", "edge/nginx.bootstrap.conf"):
            check_nginx(stack, files[name], base[name], bootstrap="bootstrap" in name)
    else:
        check_traefik(stack, files, base)
    if "certbot/local_ca.py" in files:
        check_local_ca(stack, files["certbot/local_ca.py"], base["certbot/local_ca.py"])
    check_build_context(stack, baseline)
    check_scripts(stack, files)


def _paths(node: Any, prefix: tuple = ()) -> set[tuple]:
    found = {prefix + (type(node).__name__ if not isinstance(node, (dict, list)) else "",)}
    if isinstance(node, dict):
        for key, value in node.items():
            found |= _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for idx, value in enumerate(node):
            found |= _paths(value, prefix + (idx,))
    return found


def _scalars(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _scalars(v)]
    if isinstance(node, list):
        return [s for v in node for s in _scalars(v)]
    return [node]


@functools.lru_cache(maxsize=256)
def _yaml_load_cached(text: str) -> Any:
    return _yaml_load(text)


def _yaml_load(text: str) -> Any:
    """Both YAML readers agree on the document (PyYAML/libyaml as Compose-alikes, ruamel as stackgen's own tests)."""
    first = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    second = YAML(typ="safe").load(text)
    assert first == second, "PyYAML and ruamel read the same document"
    return first


def interpolated(node: Any) -> Any:
    """What Compose makes of the file's values: every string interpolated (with nothing set)."""
    if isinstance(node, dict):
        return {key: interpolated(value) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(value) for value in node]
    if isinstance(node, str):
        try:
            return substitute(node, lambda name: None)
        except InterpolationError as exc:
            raise AssertionError(f"Compose refuses {node!r}: {exc}") from None
    return node


def check_compose(stack: Stack, text: str, base_text: str) -> None:
    document = interpolated(_yaml_load(text))
    ctx = Context(stack)
    assert document == compose_document(ctx, config_files(ctx)), "compose.yaml, interpolated as Compose does, is the document render built"
    # Structure: the key paths (and scalar types) of the plain-value stack, list positions aside (a cert_file
    # and key_file in two directories are two mounts), as is `x-stackgen.ignore` (there while an image lacks
    # a digest: the images fields decide it).
    def shape(doc: dict) -> set[tuple]:
        return {tuple("[]" if isinstance(k, int) else k for k in p) for p in _paths(doc) if p[:2] != ("x-stackgen", "ignore")}
    assert shape(document) == shape(_yaml_load_cached(base_text)), "compose.yaml has the structure of the plain-value file"
    services = document["services"]
    edge, node_red = services["edge"], services["node-red"]
    assert document["name"] == stack.project
    assert edge["networks"]["public"]["aliases"] == [d for d in stack.domains if not d.startswith("*.")]
    for service in services.values():
        assert service["environment"]["TZ"] == stack.timezone
        assert service["platform"] == stack.platform
        assert service["logging"]["options"]["max-size"] == (stack.logging.max_size or service["logging"]["options"]["max-size"])
    assert [p["host_ip"] for p in edge["ports"]] == [stack.ports.bind_address] * 2
    assert document["secrets"]["node_red_credential_secret"]["file"] == host_path(stack.node_red.credential_secret_file)
    if stack.tls.mode == "certbot-dns01":
        assert document["secrets"]["dns_credentials"]["file"] == host_path(stack.tls.dns_credentials_file or "")
    for name, override in (("node-red", stack.images.node_red), ("edge", stack.images.edge), ("certbot", stack.images.certbot)):
        if override and name in services:
            assert services[name]["image"] == override
    if not stack.images.node_red and stack.node_red.version:
        assert node_red["image"].endswith(":" + stack.node_red.version)
    if stack.node_red.memory_limit:
        assert node_red["mem_limit"] == stack.node_red.memory_limit
    binds = {m["source"]: m["target"] for m in edge["volumes"] if m["type"] == "bind"}
    if stack.tls.mode == "files":
        cert, key = tls_paths(stack)
        assert binds[host_path(posixpath.dirname(stack.tls.cert_file or ""))] == posixpath.dirname(cert)
        assert binds[host_path(posixpath.dirname(stack.tls.key_file or ""))] == posixpath.dirname(key)
    if stack.tls.ca_bundle and stack.tls.mode == "edge-acme":
        assert host_path(stack.tls.ca_bundle) in binds
    if "certbot" in services:
        test = services["certbot"]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL" and shlex.split(test[1]) == ["test", "-s", f"{LETSENCRYPT}/{cert_name(stack)}/fullchain.pem"]
        _sh_parses(test[1])
        if stack.tls.ca_bundle and stack.tls.uses_certbot:
            assert host_path(stack.tls.ca_bundle) in {m["source"] for m in services["certbot"]["volumes"] if m["type"] == "bind"}


def _js_shape(tokens: list[lex.Token]) -> list[tuple[str, str]]:
    return [(t.kind, "" if t.kind == "string" else t.text) for t in tokens]


def check_settings_js(stack: Stack, text: str, base_text: str) -> None:
    tokens = lex.js_tokens(text)
    assert _js_shape(tokens) == _js_shape(lex.js_tokens(base_text)), "settings.js has the structure of the plain-value file"
    node_red = stack.node_red
    assert [lex.js_string_value(t) for t in lex.js_property(tokens, "username")] == [node_red.admin_user]
    assert [lex.js_string_value(t) for t in lex.js_property(tokens, "password")] == [node_red.admin_password_hash]
    (root,) = lex.js_property(tokens, "httpAdminRoot")
    # A path-routed instance (instances[].path, seen through its view) is served under its prefix: Node-RED knows it.
    prefix = getattr(node_red, "path", None) or ""
    editor_root = (prefix + node_red.editor.path).rstrip("/") if prefix else node_red.editor.path
    if node_red.editor.enabled:
        assert lex.js_string_value(root) == editor_root
        assert [lex.js_string_value(t) for t in lex.js_property(tokens, "cookie_path")] == [editor_root.rstrip("/") or "/"]
    else:
        assert (root.kind, root.text) == ("ident", "false")
    assert [lex.js_string_value(t) for t in lex.js_property(tokens, "httpNodeRoot")] == [prefix + "/"]
    if node_red.http_node_auth and node_red.login_shield.enabled:
        # The login shield's list form: httpNodeAuth: [shield.httpNode, shield.basicAuth("user", "hash")].
        calls = [i for i, t in enumerate(tokens[:-5]) if t.kind == "ident" and t.text == "basicAuth" and tokens[i + 1].text == "("]
        assert len(calls) == 1
        at = calls[0]
        assert [tokens[at + 3].text, tokens[at + 5].text] == [",", ")"]
        assert lex.js_string_value(tokens[at + 2]) == node_red.http_node_auth.user
        assert lex.js_string_value(tokens[at + 4]) == node_red.http_node_auth.password_hash
    elif node_red.http_node_auth:
        assert [lex.js_string_value(t) for t in lex.js_property(tokens, "user")] == [node_red.http_node_auth.user]
        assert [lex.js_string_value(t) for t in lex.js_property(tokens, "pass")] == [node_red.http_node_auth.password_hash]


def _caddy_shape(lines: list[list[lex.Token]]) -> list[list[tuple[bool, str]]]:
    return [[(t.quoted, t.text if t.text in ("{", "}") and not t.quoted else "") for t in line] for line in lines]


def _caddy_directive(lines: list[list[lex.Token]], name: str) -> list[list[str]]:
    return [[t.text for t in line[1:]] for line in lines if line[0].text == name and not line[0].quoted]


def check_caddyfile(stack: Stack, text: str, base_text: str, bootstrap: bool) -> None:
    assert "{$" not in text, "Caddy replaces {$VAR} before it even lexes the file"
    lines = lex.caddyfile_lines(text)
    lex.caddyfile_check_braces(lines)
    base_lines = lex.caddyfile_lines(base_text)
    assert _caddy_shape(lines) == _caddy_shape(base_lines), "the Caddyfile has the lines and blocks of the plain-value file"
    placeholders = sorted(p for line in lines for t in line for p in lex.placeholders(t))
    base_placeholders = sorted(p for line in base_lines for t in line for p in lex.placeholders(t))
    assert placeholders == base_placeholders, "no value brings a placeholder"
    edge_acme = stack.tls.mode == "edge-acme"
    if edge_acme:
        assert _caddy_directive(lines, "email") == [[stack.email]]
        assert _caddy_directive(lines, "acme_ca") == [[stack.tls.directory_url]]
    if bootstrap:
        return
    tls_at = [idx for idx, line in enumerate(lines) if line[0].text == "tls"]
    assert len(tls_at) == 1
    site = lines[tls_at[0] - 1]  # the site block's address line: `tls` is its first directive
    if edge_acme:
        assert [t.text.rstrip(",") for t in site[:-1]] == stack.domains
    else:
        assert [t.text for t in site[:-1]] == [f"https://:{8443}"]
        cert, key = tls_paths(stack)
        assert _caddy_directive(lines, "tls") == [[cert, key, "{"]]
    assert _caddy_directive(lines, "@unknown") == [["not", "host", *stack.domains]]
    editor = stack.node_red.editor
    if editor.enabled:
        gates = [[t.text for t in line[2:]] for line in lines if [t.text for t in line[:2]] == ["not", "remote_ip"]]
        assert gates and all(gate == editor.allow for gate in gates), "every editor matcher holds node_red.editor.allow"


def _nginx_shape(directives: list[lex.Directive]) -> list[tuple]:
    # Inside geo and map blocks the first word of an entry is data (a network, a pattern, a host), not a directive.
    return [(_entry_name(d), len(d.words), tuple(w.quoted for w in d.words), d.end, d.context) for d in directives]


def _entry_name(directive: lex.Directive) -> str:
    if directive.context and directive.context[-1] in ("geo", "map") and directive.name != "default":
        return "<entry>"
    return directive.name


def check_nginx(stack: Stack, text: str, base_text: str, bootstrap: bool) -> None:
    directives = lex.nginx_directives(text)
    assert _nginx_shape(directives) == _nginx_shape(lex.nginx_directives(base_text)), "nginx.conf has the directives of the plain-value file"
    if bootstrap:
        return
    names = [d.args for d in directives if d.name == "server_name" and d.args != ["_"]]
    assert names == [stack.domains]
    assert not any(name.startswith("~") for name in names[0]), "a server_name starting with ~ is a regular expression"
    editor = stack.node_red.editor
    if editor.enabled:
        networks = [d.name for d in directives if d.context and d.context[-1] == "geo" and d.name != "default"]
        assert networks == editor.allow, "geo lists node_red.editor.allow"
        hosts = [d.name for d in directives if d.context[-1:] == ("map",) and d.name not in ("default",) and d.args == ["1"]
                 and "." in d.name and not d.name.startswith("~")]
        assert hosts == ([editor.host] if editor.host else []), "the editor's host map holds node_red.editor.host"
    cert, key = tls_paths(stack)
    for directive, path in (("ssl_certificate", cert), ("ssl_certificate_key", key)):
        args = [d.args for d in directives if d.name == directive]
        assert args == [[path]]
        assert not lex.nginx_variables(path), f"{directive} takes variables"


def check_traefik(stack: Stack, files: dict[str, str], base: dict[str, str]) -> None:
    for name in ("edge/traefik.yml", "edge/dynamic.yml", "edge/dynamic.bootstrap.yml"):
        document = _yaml_load(files[name])
        assert _paths(document) == _paths(_yaml_load_cached(base[name])), f"{name} has the structure of the plain-value file"
        for value in _scalars(document):
            # The file provider runs dynamic files through Go templates.
            assert not (isinstance(value, str) and "{{" in value), f"{name}: {value!r} would be a Go template"
        if name.startswith("edge/dynamic"):
            rule = document["http"]["routers"]["node-red"]["rule"]
            assert rule == traefik_rule(stack.domains)
            assert len(re.findall(r"`[^`]*`", rule)) == len(stack.domains), "one string literal per domain in the rule"
            if stack.node_red.editor.enabled:
                allowed = document["http"]["middlewares"]["editor-allow"]["ipAllowList"]["sourceRange"]
                assert allowed == stack.node_red.editor.allow, "the editor's ipAllowList holds node_red.editor.allow"
        else:
            acme = (document.get("certificatesResolvers") or {}).get("acme", {}).get("acme")
            if stack.tls.mode == "edge-acme":
                assert acme["email"] == stack.email and acme["caServer"] == stack.tls.directory_url
            else:
                assert acme is None


def _blank_constants(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.value = None
    return ast.dump(tree)


def check_local_ca(stack: Stack, text: str, base_text: str) -> None:
    tree = ast.parse(text)
    assert _blank_constants(ast.parse(text)) == _blank_constants(ast.parse(base_text)), "local_ca.py has the code of the plain-value file"
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    assert ast.literal_eval(assigned["DOMAINS"]) == stack.domains
    live = assigned["LIVE"]
    assert isinstance(live, ast.BinOp) and ast.literal_eval(live.right) == cert_name(stack)
    assert stack.project in {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}


def check_build_context(stack: Stack, baseline: Stack) -> None:
    """`stackgen build`'s package.json and Dockerfile (rendered from node_red.extra_nodes and base_image)."""
    package = json.loads(build.package_json(stack.project, stack.node_red.extra_nodes))
    assert package["name"] == f"{stack.project}-node-red-nodes"
    assert package["dependencies"] == dict(build.npm_dependency(n) for n in stack.node_red.extra_nodes)

    def dockerfile(s: Stack) -> list[str]:
        nodes = list(s.node_red.extra_nodes)
        return build.dockerfile(s, build.base_image(s), nodes, [], "none").decode().splitlines()

    lines, base_lines = dockerfile(stack), dockerfile(baseline)
    assert len(lines) == len(base_lines), "the Dockerfile has the lines of the plain-value file"
    base = build.base_image(stack)
    assert [line.split() for line in lines if line.startswith("FROM ")] == [["FROM", base]]
    labels = [line for line in lines if "org.stackgen.extra-nodes=" in line]
    names = ",".join(build.npm_dependency(n)[0] for n in stack.node_red.extra_nodes)
    assert [shlex.split(line.strip().rstrip("\\"))[0] for line in labels] == [f"org.stackgen.extra-nodes={names}"]


# --- shell ----------------------------------------------------------------------------------------

SHELLS = [s for s in ("sh", "bash", "dash") if shutil.which(s)]
# Every external command the blueprints' scripts run, and `pwn`: what hostile values try to start.
STUBBED = ("certbot", "python3", "od", "sleep", "chmod", "mkdir", "cp", "mv", "sed", "awk", "tr", "cksum", "rm", "cat",
           "caddy", "nginx", "traefik", "wget", "pwn")
_STUB = """#!/bin/sh
{ printf '%s\\0' "${0##*/}" "$@"; printf '\\1\\0'; printf '%s\\0' "CERT=${CERT-}" "KEY=${KEY-}" "LIVE=${LIVE-}"; } > "$STUB_CALLS/$$.call"
case ${0##*/} in certbot|python3) kill -TERM "$PPID" ;; esac
"""
_BASENAME = _STUB + 'printf "%s\\n" "${1##*/}"\n'


@functools.lru_cache(maxsize=512)
def _sh_parses(script: str) -> None:
    for shell in SHELLS:
        result = subprocess.run([shell, "-n"], input=script.encode(), capture_output=True, timeout=20)
        assert result.returncode == 0, f"{shell} -n: {result.stderr.decode()}"


@functools.lru_cache(maxsize=512)
def run_with_stubs(script: str) -> tuple[list[tuple[list[str], dict[str, str]]], str]:
    """Run `script` with dash (allexport on) and a PATH of stubs only, in a new directory that is also its
    HOME; return (calls, stderr). The same text runs the same way: the result is cached."""
    with tempfile.TemporaryDirectory(prefix="sg-stub-") as tmp:
        root = Path(tmp)
        bin_dir, calls = root / "bin", root / "calls"
        bin_dir.mkdir()
        calls.mkdir()
        for name in STUBBED + ("basename",):
            stub = bin_dir / name
            stub.write_text(_BASENAME if name == "basename" else _STUB)
            stub.chmod(0o755)
        (root / "script.sh").write_text(script)
        environment = {"PATH": str(bin_dir), "STUB_CALLS": str(calls), "HOME": str(root), "PWN": "pwn",
                       "STACKGEN_CERT_POLL_SECONDS": "0"}
        shell = shutil.which("dash") or "/bin/sh"
        result = subprocess.run([shell, "-a", str(root / "script.sh")], env=environment, cwd=root, capture_output=True,
                                timeout=20)
        recorded = []
        for path in calls.iterdir():
            parts = path.read_bytes().split(b"\0")[:-1]
            split = parts.index(b"\1")
            argv = [p.decode() for p in parts[:split]]
            variables = dict(p.decode().split("=", 1) for p in parts[split + 1 :])
            recorded.append((argv, variables))
        return recorded, result.stderr.decode(errors="replace")


def _nothing_else_ran(calls: list, stderr: str, allowed: set[str]) -> None:
    ran = {argv[0] for argv, _ in calls}
    assert "pwn" not in ran, "a value started a command"
    assert ran <= allowed, f"unexpected commands: {sorted(ran - allowed)}"
    assert "not found" not in stderr, stderr


def check_scripts(stack: Stack, files: dict[str, str]) -> None:
    for path, text in files.items():
        if path.endswith(".sh"):
            _sh_parses(text)
    cert, key = tls_paths(stack)
    # The edge's entrypoint: the edge (a stub) is started with CERT and KEY as the spec says.
    script = files["edge/entrypoint.sh"]
    state_line = "STATE=/tmp/stackgen\n"
    assert script.count(state_line) == 1
    calls, stderr = run_with_stubs(script.replace(state_line, 'STATE="$HOME/state"\n'))  # not the host's /tmp/stackgen
    _nothing_else_ran(calls, stderr, {"mkdir", "cp", "sed", "mv", "sleep", "cksum", stack.edge})
    edge_calls = [variables for argv, variables in calls if argv[0] == stack.edge]
    assert [(v["CERT"], v["KEY"]) for v in edge_calls] == [(cert, key)], stderr
    if not stack.tls.uses_sidecar:
        return
    # The sidecar: certbot (a stub) gets each value as exactly one argument.
    calls, stderr = run_with_stubs(files["certbot/run.sh"])
    if stack.tls.mode == "internal":
        _nothing_else_ran(calls, stderr, {"python3"})
        assert [argv for argv, _ in calls] == [["python3", "/etc/stackgen/certbot/local_ca.py"]]
    else:
        _nothing_else_ran(calls, stderr, {"certbot"})
        ((argv, variables),) = calls
        assert argv[argv.index("--email") + 1] == stack.email
        assert argv[argv.index("--server") + 1] == stack.tls.directory_url
        assert argv[argv.index("--cert-name") + 1] == cert_name(stack)
        assert argv[argv.index("--deploy-hook") + 1] == "/bin/sh /etc/stackgen/certbot/deploy-hook.sh"
        first = argv.index("-d")
        assert argv[first:] == [word for d in stack.domains for word in ("-d", d)]
        assert variables["LIVE"] == f"{LETSENCRYPT}/{cert_name(stack)}"
    # The deploy hook: the lineage it fixes is the spec's.
    calls, stderr = run_with_stubs(files["certbot/deploy-hook.sh"])
    _nothing_else_ran(calls, stderr, {"basename", "chmod"})
    chmods = [argv[1:] for argv, _ in calls if argv[0] == "chmod"]
    assert chmods == [["0644", f"/etc/letsencrypt/archive/{cert_name(stack)}/*.pem"]], (chmods, stderr)
