"""SG112: Node-RED's editor reachable from anywhere with no protection (issue 13, item 5).

Each exposure the file can show (a port on every interface or a public address, host networking, a borrowed
namespace, Traefik routers, caddy-docker-proxy sites, nginx-proxy's VIRTUAL_HOST) makes it fire; each
protection (an address restriction or auth layer at that proxy, a private or VPN bind, adminAuth or
`httpAdminRoot: false` in a settings.js next to the compose file, a route that misses the editor) keeps it
quiet. Our own stacks never trigger it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.findings import Finding
from stackgen.verify.pipeline import verify

ROOT = Path(__file__).resolve().parents[3]
RULE = "SG112"


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def sg112(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> list[Finding]:
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    compose = tmp_path / "compose.yaml"
    compose.write_text(text)
    return [f for f in verify([compose], environ={}).findings if f.rule == RULE and not f.suppressed]


def node_red(extra: str = "", image: str = "nodered/node-red:5.0.7") -> str:
    """A Node-RED service (plus whatever `extra` adds under it), its data in a bind mount next to the file."""
    return f"services:\n  node-red:\n    image: {image}\n    volumes: ['./data:/data']\n{extra}"


def traefik(*labels: str, others: str = "") -> str:
    listed = "".join(f"      - {label}\n" for label in labels)
    return node_red("    labels:\n" + listed) + others


ROUTED = ("traefik.enable=true", "traefik.http.routers.nr.rule=Host(`nr.example.org`)",
          "traefik.http.routers.nr.entrypoints=websecure")

DEFAULT_SETTINGS = """\
module.exports = {
    uiPort: process.env.PORT || 1880,
    /** To password protect the Node-RED editor and admin API, the following
     * property can be used. See https://nodered.org/docs/security.html for details.
     */
    //adminAuth: {
    //    type: "credentials",
    //    users: [{ username: "admin", password: "$2a$08$...", permissions: "*" }]
    //},
    httpNodeRoot: "/",
};
"""
WITH_ADMIN_AUTH = DEFAULT_SETTINGS.replace("    //adminAuth: {\n    //    type", "    adminAuth: {\n        type").replace(
    '    //    users: [{ username: "admin", password: "$2a$08$...", permissions: "*" }]\n    //},',
    '        users: [{ username: "admin", password: "$2a$08$...", permissions: "*" }]\n    },')


# --- exposures -------------------------------------------------------------------------


@pytest.mark.parametrize("ports", ["['1880:1880']", "['0.0.0.0:1880:1880']", "['[::]:1880:1880']", "['1880']",
                                   "['93.184.215.14:1880:1880']", "[{target: 1880, published: 8080}]"])
def test_a_published_editor_port_is_exposure(tmp_path: Path, ports: str) -> None:
    (finding,) = sg112(tmp_path, node_red(f"    ports: {ports}\n"))
    assert finding.severity.value == "critical" and finding.service == "node-red" and finding.line == 5
    assert "1880/tcp" in finding.message and ("every host interface" in finding.message or "public address" in finding.message)


def test_the_port_from_the_images_PORT_variable_is_the_editor(tmp_path: Path) -> None:
    assert sg112(tmp_path, node_red("    environment: {PORT: '8080'}\n    ports: ['8080:8080']\n"))
    assert not sg112(tmp_path, node_red("    ports: ['1881:1881']\n"))  # another port of its own: not the editor


def test_host_networking_is_exposure(tmp_path: Path) -> None:
    (finding,) = sg112(tmp_path, node_red("    network_mode: host\n"))
    assert "host networking" in finding.message


def test_the_port_of_the_service_whose_namespace_it_borrows(tmp_path: Path) -> None:
    text = node_red("    network_mode: service:vpn\n") + (
        "  vpn:\n    image: qmcgaw/gluetun:v3\n    ports: ['1880:1880']\n    x-stackgen: {role: other}\n")
    (finding,) = sg112(tmp_path, text)
    assert "through vpn" in finding.message


def test_a_traefik_router_without_middleware_is_exposure(tmp_path: Path) -> None:
    (finding,) = sg112(tmp_path, traefik(*ROUTED))
    assert "Traefik router nr routes Host(`nr.example.org`) to it with no middleware" in finding.message


def test_traefik_enable_alone_makes_the_default_router(tmp_path: Path) -> None:
    (finding,) = sg112(tmp_path, traefik("traefik.enable=true"))
    assert "Traefik's default rule" in finding.message
    assert not sg112(tmp_path, traefik("traefik.enable=false", *ROUTED[1:]))


def test_caddy_docker_proxy_site_is_exposure(tmp_path: Path) -> None:
    (finding,) = sg112(tmp_path, traefik("caddy=nr.example.org", "caddy.reverse_proxy={{upstreams 1880}}"))
    assert "caddy-docker-proxy site nr.example.org" in finding.message


def test_nginx_proxy_virtual_host_is_exposure(tmp_path: Path) -> None:
    (finding,) = sg112(tmp_path, node_red("    environment: {VIRTUAL_HOST: nr.example.org}\n"))
    assert "VIRTUAL_HOST=nr.example.org" in finding.message and finding.line == 5


def test_every_exposure_is_listed_in_one_finding(tmp_path: Path) -> None:
    text = node_red("    ports: ['1880:1880']\n    environment: {VIRTUAL_HOST: nr.example.org}\n")
    (finding,) = sg112(tmp_path, text)
    assert "every host interface" in finding.message and "VIRTUAL_HOST" in finding.message


# --- what the finding says about the login ---------------------------------------------


def test_settings_js_without_admin_auth_is_named(tmp_path: Path) -> None:
    (finding,) = sg112(tmp_path, node_red("    ports: ['1880:1880']\n"), {"data/settings.js": DEFAULT_SETTINGS})
    assert "data/settings.js sets no adminAuth" in finding.message


def test_unread_settings_say_where_they_are(tmp_path: Path) -> None:
    (finding,) = sg112(tmp_path, node_red("    ports: ['1880:1880']\n"))
    assert "data/settings.js, which could not be read" in finding.message
    text = "services:\n  node-red:\n    image: nodered/node-red:5.0.7\n    volumes: ['nr:/data']\n    ports: ['1880:1880']\nvolumes:\n  nr: {}\n"
    (finding,) = sg112(tmp_path, text)
    assert "in a volume or the image" in finding.message


# --- protections -----------------------------------------------------------------------


@pytest.mark.parametrize("host_ip", ["127.0.0.1", "192.168.1.10", "10.8.0.1", "100.101.102.103", "[fd7a:115c:a1e0::1]", "[::1]"])
def test_a_private_or_vpn_bind_is_no_exposure(tmp_path: Path, host_ip: str) -> None:
    assert not sg112(tmp_path, node_red(f"    ports: ['{host_ip}:1880:1880']\n"))


def test_admin_auth_in_settings_next_to_the_file_protects(tmp_path: Path) -> None:
    assert not sg112(tmp_path, node_red("    ports: ['1880:1880']\n"), {"data/settings.js": WITH_ADMIN_AUTH})


def test_admin_auth_in_a_settings_file_given_by_the_command(tmp_path: Path) -> None:
    extra = ("    command: [--settings, /etc/nr/settings.js]\n    ports: ['1880:1880']\n"
             "    labels: [x=1]\n")
    text = node_red(extra).replace("['./data:/data']", "['./data:/data', './nr/settings.js:/etc/nr/settings.js:ro']")
    assert not sg112(tmp_path, text, {"nr/settings.js": WITH_ADMIN_AUTH, "data/settings.js": DEFAULT_SETTINGS})
    assert sg112(tmp_path, text, {"nr/settings.js": DEFAULT_SETTINGS, "data/settings.js": WITH_ADMIN_AUTH})


def test_the_editor_switched_off_protects(tmp_path: Path) -> None:
    settings = "module.exports = { httpAdminRoot: false, httpNodeRoot: '/' };\n"
    assert not sg112(tmp_path, node_red("    ports: ['1880:1880']\n"), {"data/settings.js": settings})


def test_a_settings_file_outside_the_project_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "settings.js").write_text(WITH_ADMIN_AUTH)
    (tmp_path / "project").mkdir()
    compose = tmp_path / "project" / "compose.yaml"
    compose.write_text(node_red("    ports: ['1880:1880']\n").replace("./data:/data", "../outside:/data"))
    assert [f.rule for f in verify([compose], environ={}).findings].count(RULE) == 1


@pytest.mark.parametrize("middleware", [
    "traefik.http.middlewares.lan.ipallowlist.sourcerange=192.168.0.0/16",
    "traefik.http.middlewares.lan.ipwhitelist.sourcerange=192.168.0.0/16",
    "traefik.http.middlewares.lan.basicauth.users=admin:$$2y$$05$$abc",
    "traefik.http.middlewares.lan.digestauth.users=admin:realm:abc",
    "traefik.http.middlewares.lan.forwardauth.address=http://authelia:9091/api/verify?rd=https://auth.example.org",
])
def test_a_traefik_guard_middleware_on_the_router_protects(tmp_path: Path, middleware: str) -> None:
    assert not sg112(tmp_path, traefik(*ROUTED, "traefik.http.routers.nr.middlewares=lan@docker", middleware))


def test_a_guard_defined_on_another_service_and_through_a_chain(tmp_path: Path) -> None:
    others = ("  authelia:\n    image: authelia/authelia:4.38\n    labels:\n"
              "      - traefik.http.middlewares.authelia.forwardauth.address=http://authelia:9091/api/verify\n"
              "      - traefik.http.middlewares.secure.chain.middlewares=headers,authelia\n"
              "      - traefik.http.middlewares.headers.headers.stsseconds=31536000\n")
    assert not sg112(tmp_path, traefik(*ROUTED, "traefik.http.routers.nr.middlewares=secure", others=others))


def test_middlewares_that_guard_nothing_do_not_protect(tmp_path: Path) -> None:
    labels = (*ROUTED, "traefik.http.routers.nr.middlewares=hdr,compress,secure-headers@file,chain-no-auth@file",
              "traefik.http.middlewares.hdr.headers.stsseconds=31536000",
              "traefik.http.middlewares.compress.compress=true")
    (finding,) = sg112(tmp_path, traefik(*labels))
    assert "with no middleware that restricts by address or asks for a login" in finding.message


@pytest.mark.parametrize("name", ["authelia@file", "middlewares-authentik@file", "chain-oauth@file", "oauth2-proxy@file",
                                  "lan-only@file", "local-ipwhitelist@file", "tinyauth@docker", "vpn@file"])
def test_a_guard_defined_elsewhere_is_judged_by_its_name(tmp_path: Path, name: str) -> None:
    assert not sg112(tmp_path, traefik(*ROUTED, f"traefik.http.routers.nr.middlewares={name}"))


def test_an_auth_plugin_protects(tmp_path: Path) -> None:
    labels = (*ROUTED, "traefik.http.routers.nr.middlewares=oidc",
              "traefik.http.middlewares.oidc.plugin.traefik-oidc-auth.provider.url=https://id.example.org")
    assert not sg112(tmp_path, traefik(*labels))


def test_a_client_ip_rule_protects(tmp_path: Path) -> None:
    rule = "traefik.http.routers.nr.rule=Host(`nr.example.org`) && ClientIP(`192.168.0.0/16`)"
    assert not sg112(tmp_path, traefik("traefik.enable=true", rule))


def test_every_router_needs_its_own_protection(tmp_path: Path) -> None:
    labels = (*ROUTED, "traefik.http.routers.nr.middlewares=lan",
              "traefik.http.middlewares.lan.ipallowlist.sourcerange=192.168.0.0/16",
              "traefik.http.routers.nr-alt.rule=Host(`nodered.example.org`)")
    (finding,) = sg112(tmp_path, traefik(*labels))
    assert "router nr-alt" in finding.message and "router nr " not in finding.message


def test_an_https_redirect_router_does_not_reach_node_red(tmp_path: Path) -> None:
    labels = ("traefik.enable=true", "traefik.http.routers.nr-http.rule=Host(`nr.example.org`)",
              "traefik.http.routers.nr-http.middlewares=to-https",
              "traefik.http.middlewares.to-https.redirectscheme.scheme=https",
              "traefik.http.routers.nr.rule=Host(`nr.example.org`)", "traefik.http.routers.nr.middlewares=authelia@file")
    assert not sg112(tmp_path, traefik(*labels))
    assert not sg112(tmp_path, traefik("traefik.enable=true", "traefik.http.routers.r.middlewares=redirect-to-https@file"))


def endpoints_for(path: str) -> tuple[str, ...]:
    return ("traefik.enable=true", f"traefik.http.routers.api.rule=Host(`nr.example.org`) && PathPrefix(`{path}`)")


def test_routes_that_miss_the_editor(tmp_path: Path) -> None:
    assert not sg112(tmp_path, traefik(*endpoints_for("/api")))  # the editor at Node-RED's default "/": /api is an endpoint
    public = ("traefik.enable=true", "traefik.http.routers.pub.rule=Host(`nr.example.org`) && !PathPrefix(`/editor`)")
    assert not sg112(tmp_path, traefik(*public))
    other_port = (*ROUTED, "traefik.http.services.nr.loadbalancer.server.port=1881")
    assert not sg112(tmp_path, traefik(*other_port))


def test_routes_to_the_editors_path(tmp_path: Path) -> None:
    named = ("traefik.enable=true", "traefik.http.routers.nr.rule=Host(`x.example.org`) && PathPrefix(`/nodered`)")
    assert sg112(tmp_path, traefik(*named))  # a path named for Node-RED holds its editor
    flows = ("traefik.enable=true", "traefik.http.routers.nr.rule=Host(`x.example.org`) && PathPrefix(`/flows`)")
    assert sg112(tmp_path, traefik(*flows))  # the admin API at the default root
    settings = "module.exports = { httpAdminRoot: '/api/admin' };\n"
    assert sg112(tmp_path, traefik(*endpoints_for("/api")), {"data/settings.js": settings})  # read: the editor is under /api


@pytest.mark.parametrize("labels", [
    ("caddy=nr.example.org", "caddy.reverse_proxy={{upstreams 1880}}", "caddy.basic_auth.admin=$$2a$$14$$abc"),
    ("caddy=nr.example.org", "caddy.reverse_proxy={{upstreams 1880}}", "caddy.basicauth.admin=$$2a$$14$$abc"),
    ("caddy=nr.example.org", "caddy.reverse_proxy={{upstreams 1880}}", "caddy.forward_auth=authelia:9091",
     "caddy.forward_auth.uri=/api/verify?rd=https://auth.example.org"),
    ("caddy=nr.example.org", "caddy.@outside.not.remote_ip=private_ranges", "caddy.respond=@outside 403",
     "caddy.reverse_proxy={{upstreams 1880}}"),
    ("caddy=nr.example.org", "caddy.import=authelia", "caddy.reverse_proxy={{upstreams 1880}}"),
    ("caddy_1=mcp.example.org", "caddy_1.reverse_proxy_0=/mcp/* {{upstreams 1880}}"),
    ("caddy=nr.example.org", "caddy.reverse_proxy={{upstreams 1881}}"),
])
def test_caddy_docker_proxy_protections(tmp_path: Path, labels: tuple[str, ...]) -> None:
    assert not sg112(tmp_path, traefik(*labels))


def test_caddy_handle_path_named_for_node_red_is_exposure(tmp_path: Path) -> None:
    labels = ("caddy=x.example.org", "caddy.handle_path=/nodered/*", "caddy.handle_path.0_reverse_proxy={{upstreams 1880}}")
    assert sg112(tmp_path, traefik(*labels))


def test_nginx_proxy_protections(tmp_path: Path) -> None:
    internal = node_red("    environment: {VIRTUAL_HOST: nr.example.org, NETWORK_ACCESS: internal}\n")
    assert not sg112(tmp_path, internal)
    proxy = ("  proxy:\n    image: nginxproxy/nginx-proxy:1.6\n    ports: ['443:443']\n"
             "    volumes: ['./htpasswd:/etc/nginx/htpasswd:ro']\n")
    assert not sg112(tmp_path, node_red("    environment: {VIRTUAL_HOST: nr.example.org}\n") + proxy)


def test_no_exposure_no_finding(tmp_path: Path) -> None:
    text = ("services:\n  node-red:\n    image: nodered/node-red:5.0.7\n    networks: [internal]\n"
            "networks:\n  internal: {internal: true}\n")
    assert not sg112(tmp_path, text)
    assert not sg112(tmp_path, "services:\n  grafana:\n    image: grafana/grafana:11.1.0\n    ports: ['3000:3000']\n"
                               "    labels: [traefik.enable=true]\n    environment: {VIRTUAL_HOST: g.example.org}\n")


def test_a_reason_suppresses_it(tmp_path: Path) -> None:
    text = node_red("    ports: ['1880:1880']\n    x-stackgen:\n      ignore:\n"
                    "        - {rule: SG112, reason: adminAuth is set in the data volume's settings.js}\n")
    assert not sg112(tmp_path, text)


# --- our own stacks ----------------------------------------------------------------------


OURS = sorted((ROOT / "tests" / "golden").glob("*/compose.yaml")) + sorted((ROOT / "compose").glob("*/compose.yaml"))


@pytest.mark.parametrize("path", OURS, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in OURS])
def test_our_stacks_never_trigger_it_and_their_admin_auth_is_read(path: Path) -> None:
    result = verify([path], environ={})
    assert not [f for f in result.findings if f.rule == RULE]
    (nr,) = [s for s in result.topology.services.values() if s.role.value == "node-red"]
    settings = nr.node_red_settings
    assert settings is not None and settings.admin_auth is True and settings.path == "/etc/stackgen/node-red/settings.js"


def test_our_stack_published_by_hand_is_still_protected_by_its_admin_auth(tmp_path: Path) -> None:
    """Hand-edited to publish 1880, a generated stack bypasses the edge (SG102 says so) but its editor still
    asks for a login: adminAuth is read from its settings.js."""
    golden = ROOT / "tests" / "golden" / "caddy-certbot-http01"
    text = (golden / "compose.yaml").read_text().replace("    networks:\n      - internal\n",
                                                         "    networks:\n      - internal\n    ports: ['1880:1880']\n", 1)
    settings = (golden / "node-red" / "settings.js").read_text()
    found = sg112(tmp_path, text, {"node-red/settings.js": settings, "node-red/shield.js": "",
                                   "secrets/node_red_credential_secret": "x"})
    assert not found


# --- a running stack ---------------------------------------------------------------------


def test_a_running_stack_is_judged_with_its_compose_files_settings() -> None:
    """The engine shows labels and ports but not settings.js: the declared topology's reading stands in."""
    from stackgen.topology import NodeRedSettings, Port, Role, Service, Topology
    from stackgen.verify.rules.editor_exposure import EDITOR_UNPROTECTED

    def running(declared: Topology | None) -> Topology:
        svc = Service("node-red", image="nodered/node-red:5.0.7", role=Role.NODE_RED, ports=[Port(1880, "1880", None)])
        return Topology(services={"node-red": svc}, origin="engine", declared=declared)

    (finding,) = EDITOR_UNPROTECTED.run(running(None))
    assert "its settings.js was not read" in finding.message
    declared = Topology(services={"node-red": Service("node-red", role=Role.NODE_RED, node_red_settings=NodeRedSettings(
        "/data/settings.js", "data/settings.js", admin_auth=True))})
    assert EDITOR_UNPROTECTED.run(running(declared)) == []
