"""The local test images (tests/images) keep the contract the rendered compose relies on.

Every container here is short-lived and removed; the only network is one this module creates
(internal, so nothing can leave it) and removes.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid

import docker
import pytest

from tests.images import build

pytestmark = pytest.mark.engine

NODE_RED_VERSION = json.loads((build.HERE / "node-red" / "package.json").read_text())["dependencies"]["node-red"]


# ----------------------------------------------------------------------------- helpers


def sh(engine, image: str, script: str, **kwargs) -> str:
    """Run ``/bin/sh -c script`` in a throw-away container without network; return its output."""
    kwargs.setdefault("network_mode", "none")
    return _run_removed(engine, build.ALL_IMAGES[image], ["-c", script], entrypoint=["/bin/sh"], **kwargs)


def _run_removed(engine, image: str, command, **kwargs) -> str:
    """Run to the end and remove the container with its anonymous volumes (the certbot twin declares
    VOLUMEs, as upstream's image does: `remove=True` would leave them behind)."""
    container = engine.containers.create(image, command, **kwargs)
    try:
        container.start()
        code = container.wait(timeout=120)["StatusCode"]
        out = container.logs(stdout=True, stderr=True).decode()
        assert code == 0, f"{image} {command!r} exited {code}:\n{out}"
        return out
    finally:
        container.remove(force=True, v=True)


def run(engine, image: str, args: list[str], **kwargs) -> str:
    """Run the image's own ENTRYPOINT with ``args``; return stdout+stderr."""
    kwargs.setdefault("network_mode", "none")
    return _run_removed(engine, build.ALL_IMAGES[image], args, **kwargs)


def exec_ok(container, cmd, **kwargs) -> str:
    code, out = container.exec_run(cmd, **kwargs)
    text = out.decode(errors="replace")
    assert code == 0, f"{cmd!r} exited {code}:\n{text}"
    return text


def wait_for(container, cmd, timeout: float = 30.0) -> str:
    """Retry ``cmd`` inside ``container`` until it exits 0; return its output."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        assert container.status == "running", f"container exited:\n{container.logs().decode(errors='replace')}"
        code, out = container.exec_run(cmd)
        if code == 0:
            return out.decode(errors="replace")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{cmd!r} still failing after {timeout}s: {out.decode(errors='replace')}\n"
                f"--- logs:\n{container.logs().decode(errors='replace')}"
            )
        time.sleep(0.3)


def put_file(container, path: str, data: bytes, mode: int = 0o644, uid: int = 0) -> None:
    directory, _, name = path.rpartition("/")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), mode, uid, uid
        tar.addfile(info, io.BytesIO(data))
    assert container.put_archive(directory or "/", buf.getvalue())


def get_file(container, path: str) -> bytes:
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.getmembers()[0]
        return tar.extractfile(member).read()


def remove(container) -> None:
    if container is None:
        return
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


@pytest.fixture
def started(engine, local_images):
    """Start detached containers; all are removed at teardown."""
    made = []

    def start(image: str, **kwargs):
        if "network" not in kwargs:
            kwargs.setdefault("network_mode", "none")
        container = engine.containers.run(build.ALL_IMAGES[image], detach=True, **kwargs)
        made.append(container)
        return container

    yield start
    for container in made:
        remove(container)


@pytest.fixture
def network(engine):
    """A fresh internal bridge network (no way out), removed at teardown."""
    net = engine.networks.create(f"stackgen-test-{uuid.uuid4().hex[:10]}", driver="bridge", internal=True)
    yield net
    net.reload()
    for container in net.containers:
        remove(container)
    net.remove()


# ----------------------------------------------------------------------------- all images


@pytest.mark.parametrize("name", list(build.ALL_IMAGES))
def test_image_is_labelled_with_its_recipe_and_declares_upstreams_volumes(engine, local_images, name):
    image = engine.images.get(build.ALL_IMAGES[name])
    assert image.id == local_images[name]
    assert image.labels[build.RECIPE_LABEL] == build.recipe_hash(name)
    # Only what upstream declares (certbot/certbot: /etc/letsencrypt, /var/lib/letsencrypt; see test_twins.py).
    expected = {"/etc/letsencrypt", "/var/lib/letsencrypt"} if name == "certbot" else set()
    assert set(image.attrs["Config"].get("Volumes") or {}) == expected
    if name != build.BASE:
        assert image.labels[build.BASE_ID_LABEL] == local_images[build.BASE]


@pytest.mark.parametrize(
    ("name", "tools", "uid"),
    [
        ("caddy", "caddy sh wget", "0"),  # caddy:*-alpine has no USER
        ("nginx", "nginx sh wget", "101"),
        ("certbot", "certbot sh wget python3", "0"),
        ("node-red", "node sh wget", "1000"),
        ("pebble", "pebble sh wget openssl", None),
    ],
)
def test_contract_tools_on_path_and_default_user(engine, local_images, name, tools, uid):
    out = sh(engine, name, f"for t in {tools}; do command -v $t || exit 1; done; echo uid=$(id -u)")
    found = out.split()[-1]
    if uid is None:
        assert found != "uid=0", out  # any non-root user
    else:
        assert found == f"uid={uid}", out


# ----------------------------------------------------------------------------- edges


def test_caddy_version(engine, local_images):
    out = run(engine, "caddy", ["caddy", "version"])  # no ENTRYPOINT in caddy:*-alpine
    assert out.startswith("v2.11."), out


def test_nginx_version_logs_and_mime_types(engine, local_images):
    assert "nginx version: nginx/1." in run(engine, "nginx", ["nginx", "-v"])  # ENTRYPOINT /docker-entrypoint.sh
    out = sh(engine, "nginx", "readlink /var/log/nginx/error.log /var/log/nginx/access.log; test -s /etc/nginx/mime.types && echo mime-ok")
    assert out.split() == ["/dev/stderr", "/dev/stdout", "mime-ok"], out


@pytest.mark.parametrize(("name", "port"), [("caddy", 80), ("nginx", 8080)])
def test_edge_serves_http_unprivileged(started, name, port):
    # caddy runs as root by default (upstream): as 101 it binds :80 through /usr/bin/caddy's file capability.
    edge = started(name, user="101:101") if name == "caddy" else started(name)
    headers = wait_for(edge, ["sh", "-c", f"wget -qS -O /dev/null http://127.0.0.1:{port}/ 2>&1"], timeout=20)
    assert "200 OK" in headers
    assert exec_ok(edge, ["sh", "-c", "ps -o uid= -p 1"]).strip() == "101"


# ----------------------------------------------------------------------------- node-red


def test_node_red_runs_as_1000_with_appended_args(engine, local_images, started):
    # The compose contract: `command: ["--settings", FILE]` is appended by entrypoint.sh to red.js --userDir /data.
    node_red = engine.containers.create(
        build.IMAGES["node-red"], ["--settings", "/tmp/stackgen-settings.js"], network_mode="none",
    )
    try:
        put_file(node_red, "/tmp/stackgen-settings.js",
                 b"module.exports = { uiPort: 1885, flowFile: 'flows.json', credentialSecret: false };\n")
        node_red.start()
        body = wait_for(node_red, ["wget", "-qO-", "http://127.0.0.1:1885/settings"], timeout=45)
        assert json.loads(body)["version"] == NODE_RED_VERSION
        assert "<title>Node-RED</title>" in exec_ok(node_red, ["wget", "-qO-", "http://127.0.0.1:1885/"])
        ids = exec_ok(node_red, ["sh", "-c", "id -u; id -g; ps -o uid= -p 1; stat -c %u:%g /data /usr/src/node-red"])
        assert ids.split() == ["1000", "1000", "1000", "1000:0", "1000:0"], ids  # node-red:root, as upstream
        # Node-RED wrote its runtime state into /data as uid 1000.
        assert ".config.runtime.json" in exec_ok(node_red, ["ls", "-A", "/data"])
        # (red.js renames its process title, so ask the engine what it ran.)
        node_red.reload()
        assert [node_red.attrs["Path"], *node_red.attrs["Args"]] == [
            "./entrypoint.sh", "--settings", "/tmp/stackgen-settings.js",
        ]
    finally:
        remove(node_red)


def test_node_red_image_config(engine, local_images):
    config = engine.images.get(build.IMAGES["node-red"]).attrs["Config"]
    assert config["Entrypoint"] == ["./entrypoint.sh"]  # nodered/node-red's
    assert not config.get("Cmd")  # so compose's command: is all that gets appended
    assert config["User"] == "node-red"  # uid 1000
    assert config["WorkingDir"] == "/usr/src/node-red"
    assert "1880/tcp" in config["ExposedPorts"]


def test_node_red_pinned_version_installed(engine, local_images):
    out = sh(engine, "node-red", "node -p \"require('/usr/src/node-red/node_modules/node-red/package.json').version\"")
    assert out.strip() == NODE_RED_VERSION


# ----------------------------------------------------------------------------- certbot + pebble


def test_certbot_version(engine, local_images):
    assert run(engine, "certbot", ["--version"]).startswith("certbot 5.")


def test_pebble_directory_over_tls(started):
    pebble = started("pebble")
    body = wait_for(pebble, ["wget", "-qO-", "--ca-certificate=/etc/pebble/ca.pem", "https://localhost:14000/dir"])
    assert "newAccount" in json.loads(body)
    # Real verification: without that CA, or for a name not in the cert, wget says 5 (SSL failure).
    code, _ = pebble.exec_run(["wget", "-qO-", "https://localhost:14000/dir"])
    assert code == 5
    code, _ = pebble.exec_run(["wget", "-qO-", "--ca-certificate=/etc/pebble/ca.pem", "https://127.0.0.2:14000/dir"])
    assert code == 5


def test_certbot_gets_a_certificate_from_pebble(engine, local_images, network, started):
    """certbot (http-01, standalone) against pebble on an internal network, trusting /etc/pebble/ca.pem."""
    domain = "edge.stackgen.test"
    pebble = started("pebble", network=network.name,
                     networking_config={network.name: engine.api.create_endpoint_config(aliases=["pebble"])})
    wait_for(pebble, ["wget", "-qO-", "--ca-certificate=/etc/pebble/ca.pem", "https://localhost:14000/dir"])
    ca = get_file(pebble, "/etc/pebble/ca.pem")
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")

    certbot = started("certbot", entrypoint=["sleep", "300"], network=network.name,
                      networking_config={network.name: engine.api.create_endpoint_config(aliases=[domain])})
    put_file(certbot, "/tmp/pebble-ca.pem", ca)
    # BusyBox wget (as in upstream's image) has no --ca-certificate: ask with certbot's python instead.
    directory = exec_ok(certbot, ["python3", "-c", "import ssl, urllib.request; print(urllib.request.urlopen("
                                  "'https://pebble:14000/dir', context=ssl.create_default_context(cafile='/tmp/pebble-ca.pem')).read().decode())"])
    assert "newOrder" in json.loads(directory)

    exec_ok(certbot, [
        "certbot", "certonly", "--standalone", "--non-interactive", "--agree-tos",
        "--register-unsafely-without-email", "--server", "https://pebble:14000/dir",
        "-d", domain,
    ], environment={"REQUESTS_CA_BUNDLE": "/tmp/pebble-ca.pem"})
    cert = exec_ok(certbot, ["openssl", "x509", "-noout", "-subject", "-issuer", "-ext", "subjectAltName",
                             "-in", f"/etc/letsencrypt/live/{domain}/fullchain.pem"])
    assert f"DNS:{domain}" in cert
    assert "Pebble" in cert  # issued by pebble's (per-run) intermediate
