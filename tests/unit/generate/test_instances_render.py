"""Two Node-RED instances rendered, for every edge x TLS mode: separate networks, volumes, secrets and files, each
host name routed to its own instance, one certificate for every name. Read from the rendered text (YAML, the
config lexers), independent of the renderer's helpers."""

from __future__ import annotations

import ast
import re

import pytest
from ruamel.yaml import YAML

from stackgen.generate.render import render
from stackgen.instances.edit import add_instance
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH, combos, golden_stack
from tests.support import config_lexers as lex
from tests.support import rendered_meaning

LAB = {"admin_password_hash": EXAMPLE_HASH, "admin_user": "lab-admin", "egress": True,
       "editor": {"path": "/lab-editor", "allow": ["10.9.0.0/16"]}}


def two(edge: str, mode: str) -> Stack:
    """The golden stack of the combination, plus an instance `lab` on lab.example.org."""
    return add_instance(golden_stack(edge, mode), "lab", ["lab.example.org"], LAB).stack


def tree(stack: Stack) -> dict[str, str]:
    return {f.path: f.content.decode() for f in render(stack)}


def ids(combo):
    return "-".join(combo)


@pytest.mark.parametrize("combo", combos(), ids=ids)
def test_each_instance_has_its_own_network_volume_secret_and_files(combo):
    stack = two(*combo)
    files = tree(stack)
    document = YAML(typ="safe").load(files["compose.yaml"])
    services, networks = document["services"], document["networks"]
    node_reds = {name: svc for name, svc in services.items() if svc["labels"]["org.stackgen.role"] == "node-red"}
    assert set(node_reds) == {"node-red", "node-red-lab"}
    assert node_reds["node-red"]["networks"] == ["internal"]
    assert node_reds["node-red-lab"]["networks"] == ["internal-lab", "egress-lab"]
    for name in ("internal", "internal-lab"):
        assert networks[name]["internal"] is True
    bridges = [networks[n]["driver_opts"]["com.docker.network.bridge.name"] for n in ("internal", "internal-lab")]
    assert len(set(bridges)) == 2 and all(len(b) <= 15 for b in bridges)
    # No network holds two Node-REDs; the internal ones hold their instance and the edge, nothing else.
    members: dict[str, set[str]] = {}
    for name, svc in services.items():
        for net in svc.get("networks") or []:
            members.setdefault(net, set()).add(name)
    assert members["internal"] == {"node-red", "edge"} and members["internal-lab"] == {"node-red-lab", "edge"}
    assert members["egress-lab"] == {"node-red-lab"}
    assert "certbot" not in members["internal"] | members["internal-lab"]
    # Volumes: each instance its own data; nobody else mounts it.
    mounts = {name: {m["source"] for m in svc.get("volumes") or [] if m["type"] == "volume"} for name, svc in services.items()}
    assert mounts["node-red"] == {"node-red-data"} and mounts["node-red-lab"] == {"node-red-lab-data"}
    assert not any({"node-red-data", "node-red-lab-data"} & sources for name, sources in mounts.items() if name not in node_reds)
    # Secrets: each its own file, seen inside under the one name settings.js reads.
    assert document["secrets"]["node_red_credential_secret"]["file"] == "./secrets/node_red_credential_secret"
    assert document["secrets"]["node_red_lab_credential_secret"]["file"] == "./secrets/node_red_lab_credential_secret"
    assert node_reds["node-red"]["secrets"] == ["node_red_credential_secret"]
    assert node_reds["node-red-lab"]["secrets"] == [{"source": "node_red_lab_credential_secret", "target": "node_red_credential_secret"}]
    # Files: each instance's configuration in its own directory, and only its own mounted.
    for service, directory in (("node-red", "node-red"), ("node-red-lab", "node-red-lab")):
        binds = [m["source"] for m in node_reds[service]["volumes"] if m["type"] == "bind"]
        assert binds and all(b.startswith(f"./{directory}/") for b in binds)
        assert all(b[2:] in files for b in binds)
    assert '"lab-admin"' in files["node-red-lab/settings.js"] and '"lab-admin"' not in files["node-red/settings.js"]
    assert '"/lab-editor"' in files["node-red-lab/settings.js"]
    # The edge joins both, and says whom it proxies to.
    assert list(services["edge"]["networks"]) == ["internal", "internal-lab", "public"]
    assert services["edge"]["labels"]["org.stackgen.upstream"] == "node-red:1880,node-red-lab:1880"
    assert "ports" not in node_reds["node-red"] and "ports" not in node_reds["node-red-lab"]


def _caddy_handles(text: str) -> dict[str, list[list[str]]]:
    """`handle @instance_X { ... }` blocks of the TLS site: instance -> its lines."""
    lines = [[t.text for t in line] for line in lex.caddyfile_lines(text)]
    found, current, depth = {}, None, 0
    for line in lines:
        if line[:1] == ["handle"] and line[1].startswith("@instance_"):
            current, depth = line[1].removeprefix("@instance_"), 1
            found[current] = []
            continue
        if current:
            depth += line.count("{") - line.count("}")
            if depth <= 0:
                current = None
            else:
                found[current].append(line)
    return found


@pytest.mark.parametrize("combo", [c for c in combos() if c[0] == "caddy"], ids=ids)
def test_caddy_routes_each_host_to_its_instance(combo):
    stack = two(*combo)
    text = tree(stack)["edge/Caddyfile"]
    lines = [[t.text for t in line] for line in lex.caddyfile_lines(text)]
    matchers = {line[0]: line[2:] for line in lines if line[0].startswith("@instance_") and line[1] == "host"}
    default_hosts = [d for d in stack.domains if d != "lab.example.org"] if combo[1] != "certbot-dns01" else ["example.org"]
    assert matchers == {"@instance_node-red": default_hosts, "@instance_lab": ["lab.example.org"]}
    handles = _caddy_handles(text)
    assert [line[1] for line in handles["lab"] if line[0] == "reverse_proxy"] == ["node-red-lab:1880"]
    assert [line[1] for line in handles["node-red"] if line[0] == "reverse_proxy"] == ["node-red:1880"]
    assert ["respond", "@editor_outsider_lab", "forbidden", "403"] in handles["lab"]
    gates = {line[0]: line for line in lines if line[:1] and line[0].startswith("@editor_outsider_")}
    assert set(gates) == {"@editor_outsider_node-red", "@editor_outsider_lab"}
    lab_gate = lines[lines.index(["@editor_outsider_lab", "{"]) + 1: lines.index(["@editor_outsider_lab", "{"]) + 3]
    assert lab_gate == [["path", "/lab-editor", "/lab-editor/*"], ["not", "remote_ip", "10.9.0.0/16"]]
    unknown = next(line for line in lines if line[0] == "@unknown")
    assert unknown == ["@unknown", "not", "host", *default_hosts, "lab.example.org"]


@pytest.mark.parametrize("combo", [c for c in combos() if c[0] == "nginx"], ids=ids)
def test_nginx_routes_each_host_to_its_instance(combo):
    stack = two(*combo)
    directives = lex.nginx_directives(tree(stack)["edge/nginx.conf"])
    maps: dict[str, dict[str, list[str]]] = {}
    current = None
    for d in directives:
        if d.name == "map" and d.context[-1:] != ("map",):
            current = d.args[-1]
            maps[current] = {}
        elif d.context[-1:] == ("map",) and current:
            maps[current][d.name] = d.args
    hosts = maps["$stackgen_instance"]
    assert hosts.pop("default") == [""]
    assert hosts["lab.example.org"] == ["node-red-lab"]
    assert {v[0] for k, v in hosts.items() if k != "lab.example.org"} == {"node-red"}
    assert maps["$stackgen_upstream"] == {"default": ["none"], "node-red": ["node-red:1880"], "node-red-lab": ["node-red-lab:1880"]}
    assert maps["$editor_refused_lab"] == {"default": ["0"], "node-red-lab:100": ["1"], "node-red-lab:010": ["1"], "node-red-lab:110": ["1"]}
    assert maps["$editor_refused"]["default"] == ["1"], "the combined editor gate fails closed"
    geo = [d for d in directives if d.context[-1:] == ("geo",) and d.name != "default"]
    assert [d.name for d in geo] == ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                     "fc00::/7", "10.9.0.0/16"]
    sets = [d.args for d in directives if d.name == "set" and d.args[0] == "$upstream"]
    assert sets == [["$upstream", "http://$stackgen_upstream"]]
    assert [d.args for d in directives if d.name == "server_name" and d.args != ["_"]] == [stack.domains]


@pytest.mark.parametrize("combo", [c for c in combos() if c[0] == "traefik"], ids=ids)
def test_traefik_routes_each_host_to_its_instance(combo):
    stack = two(*combo)
    dynamic = YAML(typ="safe").load(tree(stack)["edge/dynamic.yml"])
    routers, services = dynamic["http"]["routers"], dynamic["http"]["services"]
    assert routers["node-red_lab"]["rule"] == "Host(`lab.example.org`)"
    assert routers["node-red_lab"]["service"] == "node-red_lab"
    assert services["node-red_lab"]["loadBalancer"]["servers"] == [{"url": "http://node-red-lab:1880"}]
    assert services["node-red_node-red"]["loadBalancer"]["servers"] == [{"url": "http://node-red:1880"}]
    assert "lab.example.org" not in routers["node-red_node-red"]["rule"]
    assert routers["node-red-editor_lab"]["rule"] == "(Host(`lab.example.org`)) && PathRegexp(`(?i)^/lab-editor(/|$)`)"
    assert routers["node-red-editor_lab"]["middlewares"][0] == "editor-allow_lab"
    assert dynamic["http"]["middlewares"]["editor-allow_lab"]["ipAllowList"]["sourceRange"] == ["10.9.0.0/16"]
    if combo[1] == "edge-acme":
        for name in ("node-red_lab", "node-red_node-red", "node-red-editor_lab"):
            assert routers[name]["tls"]["domains"] == [{"main": stack.domains[0], "sans": stack.domains[1:]}], "one certificate"


@pytest.mark.parametrize("combo", [c for c in combos() if c[1] in ("certbot-http01", "certbot-dns01", "internal")], ids=ids)
def test_one_certificate_covers_every_instance(combo):
    stack = two(*combo)
    files = tree(stack)
    if combo[1] == "certbot-http01":
        assert stack.domains[-1] == "lab.example.org", "the new name joined the certificate"
    if combo[1] == "internal":
        constants = {t.id: n.value for n in ast.parse(files["certbot/local_ca.py"]).body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)}
        assert ast.literal_eval(constants["DOMAINS"]) == stack.domains
        return
    calls, _ = rendered_meaning.run_with_stubs(files["certbot/run.sh"])
    ((argv, _),) = calls
    assert argv[argv.index("--cert-name") + 1] == stack.cert_name
    assert argv[argv.index("-d"):] == [w for d in stack.domains for w in ("-d", d)], "one certbot run, every name"
    covered = [d for d in stack.domains if d == "lab.example.org" or (d.startswith("*.") and "lab.example.org".endswith(d[1:]))]
    assert covered


def test_a_wildcard_name_no_instance_has_gets_421_not_an_instance():
    stack = two("nginx", "certbot-dns01")  # domains *.example.org, example.org; lab.example.org under the wildcard
    text = tree(stack)["edge/nginx.conf"]
    assert re.search(r"if \(\$stackgen_upstream = none\) \{\s+return 421;", text)
    caddy = tree(two("caddy", "certbot-dns01"))["edge/Caddyfile"]
    assert "@unknown not host example.org lab.example.org\n\trespond @unknown \"unknown host\" 421" in caddy


def test_same_spec_same_bytes():
    first, again = render(two("traefik", "internal")), render(two("traefik", "internal"))
    assert [(f.path, f.content, f.mode) for f in first] == [(f.path, f.content, f.mode) for f in again]
