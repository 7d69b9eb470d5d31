"""Rendered configs mean what the spec says, read by the real programs (issue 11, part 1 beyond shell):
the twins' Caddy adapts the Caddyfile, NGINX accepts nginx.conf (`nginx -t`), Node-RED's Node.js loads
settings.js — for stacks that use the edges of every value's valid range."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stackgen.generate.render import Context, render
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH
from tests.images import build

pytestmark = pytest.mark.engine

VARIANTS = {
    "many-names": {"domains": ["nodered.example.org", "a-1.b-2.example.org", "x" * 63 + ".example.org"]},
    "odd-admin": {"node_red": {"admin_password_hash": EXAMPLE_HASH, "admin_user": "ops.admin@home-lab_1",
                               "editor": {"path": "/admin/flows-1.v2"},
                               "http_node_auth": {"user": "dash-user", "password_hash": EXAMPLE_HASH}}},
    "high-ports": {"ports": {"bind_address": "::1", "http": 8080, "https": 8443}},
    # The longest valid host name (253 characters): NGINX's default names hash refused far shorter ones.
    "longest-name": {"domains": [".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "org"])]},
    # The editor gate (node_red.editor): its own host, networks of both families, dots in the prefix; and the editor at /.
    "editor-host": {"domains": ["nodered.example.org", "editor.example.org"],
                    "node_red": {"admin_password_hash": EXAMPLE_HASH,
                                 "editor": {"path": "/red.v2", "host": "editor.example.org",
                                            "allow": ["192.168.1.7/32", "10.0.0.0/8", "2001:db8::/32", "::1/128"]}}},
    "editor-root": {"node_red": {"admin_password_hash": EXAMPLE_HASH, "editor": {"path": "/", "allow": ["0.0.0.0/0", "::/0"]}}},
}


def stack(edge: str, variant: str) -> Stack:
    data = {"project": f"cfg-{edge}", "domains": ["nodered.example.org"], "email": "ops+tls@example.org", "edge": edge,
            "node_red": {"admin_password_hash": EXAMPLE_HASH}}
    data.update(VARIANTS[variant])
    return Stack.model_validate(data)


def write(stack: Stack, directory: Path) -> dict[str, str]:
    rendered = render(stack)
    for item in rendered:
        target = directory / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(item.content)
    return {item.path: item.content.decode() for item in rendered}


def self_signed(directory: Path, names: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if len(names[0]) <= 64 else "stackgen-test")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    for path in directory.iterdir():
        path.chmod(0o644)


def run(engine, image: str, command: list[str], volumes: dict, user: str = "0:0") -> str:
    container = engine.containers.create(build.ALL_IMAGES[image], command, entrypoint=[], volumes=volumes, user=user,
                                         network_mode="none")
    try:
        container.start()
        code = container.wait(timeout=120)["StatusCode"]
        output = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True, v=True)
    assert code == 0, output
    return output


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_caddy_adapts_the_caddyfile_to_the_intended_hosts(engine, local_images, tmp_path, variant):
    spec = stack("caddy", variant)
    files = write(spec, tmp_path)
    assert "edge/Caddyfile" in files
    out = run(engine, "caddy", ["caddy", "adapt", "--config", "/conf/Caddyfile", "--adapter", "caddyfile"],
              {str(tmp_path / "edge"): {"bind": "/conf", "mode": "ro"}})
    config = json.loads(out[out.index("{"):])
    text = json.dumps(config)
    for domain in spec.domains:
        assert f'"{domain}"' in text, f"{domain} missing from the adapted config"
    servers = config["apps"]["http"]["servers"]
    assert {tuple(s["listen"]) for s in servers.values()} == {(":8080",), (":8443",)}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_nginx_accepts_nginx_conf(engine, local_images, tmp_path, variant):
    spec = stack("nginx", variant)
    files = write(spec, tmp_path)
    live = tmp_path / "live"
    self_signed(live, spec.domains)
    ctx = Context(spec)
    script = "mkdir -p /tmp/stackgen && nginx -t -e stderr -c /conf/nginx.conf && nginx -t -e stderr -c /conf/nginx.bootstrap.conf"
    out = run(engine, "nginx", ["/bin/sh", "-c", script],
              {str(tmp_path / "edge"): {"bind": "/conf", "mode": "ro"},
               str(live): {"bind": str(Path(ctx.cert_path).parent), "mode": "ro"}}, user="101:101")
    assert "syntax is ok" in out
    server_names = [line for line in files["edge/nginx.conf"].splitlines() if "server_name" in line and "_" not in line.split()]
    assert any(all(d in line for d in spec.domains) for line in server_names)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_node_loads_settings_js_with_the_intended_values(engine, local_images, tmp_path, variant):
    spec = stack("caddy", variant)
    write(spec, tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    probe = ("const s=require('/conf/settings.js');console.log(JSON.stringify({root:s.httpAdminRoot,"
             "user:s.adminAuth.users[0].username,hash:s.adminAuth.users[0].password,node:s.httpNodeAuth||null,"
             "nodeKinds:Array.isArray(s.httpNodeAuth)?s.httpNodeAuth.map(f=>typeof f):null,"
             "adminMw:Array.isArray(s.httpAdminMiddleware)?s.httpAdminMiddleware.filter(f=>typeof f==='function').length:null,"
             "tele:s.telemetryEnabled,secret:s.credentialSecret}))")
    out = run(engine, "node-red", ["node", "-e", probe],
              {str(tmp_path / "node-red"): {"bind": "/conf", "mode": "ro"},
               str(secret): {"bind": "/run/secrets/node_red_credential_secret", "mode": "ro"}}, user="1000:1000")
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded["root"] == spec.node_red.editor.path
    assert loaded["user"] == spec.node_red.admin_user and loaded["hash"] == spec.node_red.admin_password_hash
    assert loaded["tele"] is False and loaded["secret"] == "s3cret"
    # The login shield (on by default): Node-RED's admin middleware, and first of httpNodeAuth's list (the basic-auth
    # check that follows it holds the user and hash in a closure; test_render_hostile checks them in the text).
    # Before it, csp.js (the editor's Content-Security-Policy) whenever the editor is served.
    expected_mw = (["csp"] if spec.node_red.editor.enabled else []) + (["shield"] if spec.node_red.login_shield.enabled else [])
    assert loaded["adminMw"] == (len(expected_mw) if expected_mw else None)
    if spec.node_red.http_node_auth and spec.node_red.login_shield.enabled:
        assert loaded["nodeKinds"] == ["function", "function"]
    elif spec.node_red.http_node_auth:
        assert loaded["node"] == {"user": spec.node_red.http_node_auth.user, "pass": spec.node_red.http_node_auth.password_hash}
