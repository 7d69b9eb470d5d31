"""Each local test image is a *twin* of the upstream image our stacks name: the same program at the
version the contract pins, laid out as upstream lays it out. The facts come from the upstream
contracts (stackgen/upstream/contracts/<name>.yaml); this module holds every twin to them, so that a stack
that works against a twin works against the real image (and a renderer bug that would break on the
real image breaks here too).

Containers here are short-lived, have no network (or only an internal one this module creates),
and are removed with their volumes.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import uuid

import docker
import pytest

from stackgen.upstream.contracts import load_contract
from tests.images import build

pytestmark = pytest.mark.engine

TWINS = list(build.TWINS)

# The one twin that cannot run upstream's version: no registry here carries nginx.org's build, so the
# nginx twin runs Debian trixie's nginx. Written down in tests/images/nginx/Dockerfile and README.md.
NGINX_TWIN_VERSION = "1.26.3"
# Env keys that carry the build's own version or package release: checked against the twin's actual
# program (or, for the nginx twin, its recorded Debian version), not against the value read upstream.
VERSION_ENV = {"caddy": {"CADDY_VERSION"}, "node-red": {"NODE_RED_VERSION"}, "nginx": {"NGINX_VERSION", "PKG_RELEASE"}}
# The program's version, asked inside the twin.
VERSION_COMMAND = {
    "caddy": "caddy version",
    "node-red": "node -p \"require('/usr/src/node-red/node_modules/node-red/package.json').version\"",
    "nginx": "nginx -v 2>&1",
    "certbot": "certbot --version",
}


@pytest.fixture(scope="module")
def contracts():
    return {name: load_contract(name) for name in TWINS}


def config(engine, name: str) -> dict:
    return engine.images.get(build.IMAGES[name]).attrs["Config"]


def run_once(engine, image: str, command=None, **kwargs) -> tuple[int, str]:
    """Run a throw-away container to its end; return (exit code, stdout+stderr). Removed with its
    anonymous volumes (certbot's image declares VOLUMEs)."""
    kwargs.setdefault("network_mode", "none")
    container = engine.containers.create(image, command, **kwargs)
    try:
        container.start()
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        remove(container)


def sh(engine, name: str, script: str, **kwargs) -> str:
    """``/bin/sh -c script`` in a throw-away container of the twin (its default user), no network."""
    code, out = run_once(engine, build.IMAGES[name], ["-c", script], entrypoint=["/bin/sh"], **kwargs)
    assert code == 0, f"{name}: sh -c {script!r} exited {code}:\n{out}"
    return out


def remove(container) -> None:
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


def wait_until(container, cmd, timeout: float = 45.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        assert container.status == "running", container.logs().decode(errors="replace")
        code, out = container.exec_run(cmd)
        if code == 0:
            return out.decode(errors="replace")
        if time.monotonic() > deadline:
            raise AssertionError(f"{cmd!r} still failing after {timeout}s: {out.decode(errors='replace')}\n"
                                 f"--- logs:\n{container.logs().decode(errors='replace')}")
        time.sleep(0.3)


@pytest.fixture
def cleanup(engine):
    """Containers and volumes registered here are removed at teardown."""
    containers, volumes = [], []
    yield containers, volumes
    for container in containers:
        remove(container)
    for volume in volumes:
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass


# ----------------------------------------------------------------------------- image config = contract


@pytest.mark.parametrize("name", TWINS)
def test_twin_config_matches_the_contract(engine, local_images, contracts, name):
    c, cfg = contracts[name], config(engine, name)
    assert (cfg.get("Entrypoint") or None) == c.entrypoint.value
    assert (cfg.get("Cmd") or None) == c.cmd.value
    assert (cfg.get("WorkingDir") or None) in ({c.workdir.value} if c.workdir.value else {None, "/"})
    assert sorted(cfg.get("Volumes") or {}) == sorted(c.volumes.value or [])
    assert (cfg.get("StopSignal") or "SIGTERM") == c.stop_signal_name
    assert sorted(cfg.get("ExposedPorts") or {}) == sorted(c.exposed_ports.value or [])
    health = cfg.get("Healthcheck") or {}
    assert (health.get("Test") or None) == c.healthcheck.value
    # The image's user, spelt as upstream spells it (a name or a uid), and what it resolves to.
    user = cfg.get("User") or ""
    if c.user.uid == 0 and not user:
        pass  # no USER instruction, as upstream
    elif user.split(":")[0].isdigit():
        assert int(user.split(":")[0]) == c.user.uid
    else:
        assert user.split(":")[0] == c.user.name


@pytest.mark.parametrize("name", TWINS)
def test_twin_env_has_the_contract_keys(engine, local_images, contracts, name):
    c = contracts[name]
    env = dict(item.split("=", 1) for item in config(engine, name).get("Env") or [])
    for key, expected in (c.env.value or {}).items():
        assert key in env, f"{name}: ENV {key} missing (upstream: {expected})"
        if key in VERSION_ENV.get(name, set()):
            continue  # a version: test_twin_runs_the_pinned_program_version
        expected = str(expected)
        if "${PATH}" in expected:  # e.g. PATH=/usr/src/node-red/node_modules/.bin:${PATH}
            prefix = expected.split("${PATH}", 1)[0]
            assert env[key].startswith(prefix), (key, env[key], expected)
            assert "/usr/local/bin" in env[key].split(":"), (key, env[key])
        else:
            assert env[key] == expected, (key, env[key], expected)


@pytest.mark.parametrize("name", TWINS)
def test_twin_default_user_resolves_as_upstream(engine, local_images, contracts, name):
    c = contracts[name]
    out = sh(engine, name, "id -u; id -g; id -un").split()
    assert int(out[0]) == c.user.uid
    if c.user.gid is not None:
        assert int(out[1]) == c.user.gid
    if c.user.name:
        assert out[2] == c.user.name


# ----------------------------------------------------------------------------- program and versions


@pytest.mark.parametrize("name", TWINS)
def test_twin_runs_the_pinned_program_version(engine, local_images, contracts, name):
    c = contracts[name]
    pinned = c.tags[0].version
    out = sh(engine, name, VERSION_COMMAND[name]).strip()
    env = dict(item.split("=", 1) for item in config(engine, name).get("Env") or [])
    if name == "caddy":
        assert out.startswith(f"v{pinned} "), out
        assert env["CADDY_VERSION"] == f"v{pinned}"
    elif name == "node-red":
        assert out == pinned
        assert env["NODE_RED_VERSION"] == f"v{pinned}"
        # Node.js: the major of upstream's base image (node:24-alpine).
        major = re.search(r"node:(\d+)", str(c.base.value)).group(1)
        node = sh(engine, name, "node --version").strip()
        assert node.startswith(f"v{major}."), node
        assert env["NODE_VERSION"] == node.lstrip("v")
    elif name == "certbot":
        assert out == f"certbot {pinned}"
    elif name == "nginx":
        # Not upstream's version (no registry carries nginx.org's build): Debian trixie's, recorded.
        assert out == f"nginx version: nginx/{NGINX_TWIN_VERSION}", out
        assert env["NGINX_VERSION"] == NGINX_TWIN_VERSION
        assert pinned != NGINX_TWIN_VERSION, "the nginx twin now matches upstream: drop the recorded difference"


def test_nginx_version_difference_is_written_down(contracts):
    upstream = contracts["nginx"].tags[0].version
    dockerfile = (build.HERE / "nginx" / "Dockerfile").read_text()
    assert upstream in dockerfile and NGINX_TWIN_VERSION in dockerfile
    readme = (build.HERE.parents[1] / "README.md").read_text()
    rows = [line for line in readme.splitlines()
            if line.startswith("|") and "nginx-unprivileged" in line and NGINX_TWIN_VERSION in line]
    assert rows, "README.md's twin table names the nginx twin's Debian version"
    assert upstream in rows[0], rows[0]


def test_node_red_twin_package_json_start_script(engine, local_images):
    package = json.loads(sh(engine, "node-red", "cat /usr/src/node-red/package.json"))
    assert package["scripts"]["start"] == "node $NODE_OPTIONS node_modules/node-red/red.js $FLOWS"
    assert package["dependencies"]["node-red"] == load_contract("node-red").tags[0].version


# ----------------------------------------------------------------------------- binary, tools, shell


@pytest.mark.parametrize("name", TWINS)
def test_twin_main_binary_file_capabilities(engine, local_images, contracts, name):
    binary = contracts[name].main_binary
    if not binary.path:
        assert binary.file_capabilities is None
        pytest.skip(f"{name}: the contract names no main binary path")
    out = sh(engine, name, f"test -x {binary.path} && getcap {binary.path}; echo rc=$?").strip().splitlines()
    assert out[-1] == "rc=0", out
    caps = out[0].split(None, 1)[1] if len(out) > 1 else None
    assert caps == binary.file_capabilities, f"{binary.path}: getcap says {caps!r}"


def test_caddy_file_capability_is_in_the_exported_filesystem(engine, local_images, contracts):
    """What a registry would carry: `docker export` has the xattr as a PAX header on usr/bin/caddy."""
    assert contracts["caddy"].main_binary.file_capabilities == "cap_net_bind_service=ep"
    container = engine.containers.create(build.IMAGES["caddy"], network_mode="none")
    try:
        stream = container.export(chunk_size=1 << 20)

        class Reader(io.RawIOBase):
            def __init__(self, chunks):
                self.chunks, self.buf = chunks, b""

            def readable(self):
                return True

            def readinto(self, b):
                while not self.buf:
                    try:
                        self.buf = next(self.chunks)
                    except StopIteration:
                        return 0
                n = min(len(b), len(self.buf))
                b[:n], self.buf = self.buf[:n], self.buf[n:]
                return n

        xattr = None
        with tarfile.open(fileobj=io.BufferedReader(Reader(iter(stream)), 1 << 20), mode="r|") as tar:
            for member in tar:
                if member.name.lstrip("./") == "usr/bin/caddy":
                    xattr = member.pax_headers.get("SCHILY.xattr.security.capability")
                    break
    finally:
        remove(container)
    assert xattr is not None, "usr/bin/caddy carries no security.capability xattr"
    raw = xattr.encode("utf-8", "surrogateescape")
    assert raw == build._file_capability_xattr(build.CAP_NET_BIND_SERVICE), raw


def test_caddy_binary_needs_net_bind_service_when_capabilities_are_dropped(engine, local_images):
    """The kernel refuses to exec a binary whose file capabilities it cannot grant: with every
    capability dropped (what our compose does), caddy only runs if NET_BIND_SERVICE is added back.
    True of the official image too; this is why the twin must carry the capability."""
    image = build.IMAGES["caddy"]
    hardened = {"user": "101:101", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}
    code, out = run_once(engine, image, ["caddy", "version"], **hardened)
    assert code != 0, out
    code, out = run_once(engine, image, ["caddy", "version"], cap_add=["NET_BIND_SERVICE"], **hardened)
    assert code == 0 and out.startswith("v2."), out


@pytest.mark.parametrize("name", TWINS)
def test_twin_has_every_contract_tool_on_path(engine, local_images, contracts, name):
    # (A YAML list of bare words reads `true`/`false` as booleans: they are the commands true/false.)
    tools = sorted({str(t).lower() if isinstance(t, bool) else str(t) for t in contracts[name].tool_names})
    script = "for t in " + " ".join(tools) + '; do command -v "$t" >/dev/null 2>&1 || echo "missing: $t"; done; echo done'
    out = sh(engine, name, script)
    missing = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("missing: ")]
    assert out.strip().endswith("done"), out
    assert not missing, f"{name}: tools of the contract not on PATH: {missing}"


@pytest.mark.parametrize("name", TWINS)
def test_twin_shell_is_the_contract_shell(engine, local_images, contracts, name):
    shell = contracts[name].shell.value
    assert shell == "busybox-ash", f"{name}: contract shell {shell!r} not handled by this test"
    # The running /bin/sh process itself, and the applet it runs as.
    out = sh(engine, name, 'readlink -f /bin/sh; readlink /proc/$$/exe; echo "${BASH_VERSION:-no-bash}"').split()
    assert out[0].endswith("/busybox") and out[1].endswith("/busybox"), out
    assert out[2] == "no-bash"
    # wget is BusyBox's too, as on Alpine (GNU-only options would fail there).
    assert "BusyBox" in sh(engine, name, "wget --help 2>&1 | head -1")


# ----------------------------------------------------------------------------- run as the rendered stacks do


def test_node_red_twin_runs_hardened_with_appended_settings(engine, local_images, cleanup):
    """As compose.yaml runs it: uid 1000:1000, read-only root, tmpfs /tmp, every capability dropped,
    a volume on /data (seeded from the image), `command: [--settings, FILE]` appended by entrypoint.sh."""
    containers, volumes = cleanup
    tag = uuid.uuid4().hex[:10]
    data = engine.volumes.create(f"sgtwin-data-{tag}")
    conf = engine.volumes.create(f"sgtwin-conf-{tag}")
    volumes += [data, conf]
    settings = "module.exports = { uiPort: 1885, credentialSecret: false, telemetry: { enabled: false } };\n"
    code, out = run_once(engine, build.IMAGES["node-red"], ["-c", 'printf "%s" "$S" > /conf/settings.js'],
                         entrypoint=["/bin/sh"], user="0:0", environment={"S": settings},
                         volumes={conf.name: {"bind": "/conf", "mode": "rw"}})
    assert code == 0, out
    node_red = engine.containers.run(
        build.IMAGES["node-red"], ["--settings", "/etc/stackgen/node-red/settings.js"], detach=True,
        user="1000:1000", read_only=True, tmpfs={"/tmp": "size=64m,mode=1777"}, cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], network_mode="none",
        environment={"NODE_OPTIONS": "--max-old-space-size=192", "TZ": "UTC"},
        volumes={data.name: {"bind": "/data", "mode": "rw"}, conf.name: {"bind": "/etc/stackgen/node-red", "mode": "ro"}},
    )
    containers.append(node_red)
    body = wait_until(node_red, ["wget", "-qO-", "http://127.0.0.1:1885/settings"])
    assert json.loads(body)["version"] == load_contract("node-red").tags[0].version
    # The rendered healthcheck (compose overrides the image's, which needs /data/settings.js).
    probe = ("require('http').get({host:'127.0.0.1',port:1885,path:'/',timeout:4000},"
             "r=>process.exit(r.statusCode<500?0:1)).on('error',()=>process.exit(1))")
    assert node_red.exec_run(["node", "-e", probe]).exit_code == 0
    code, out = node_red.exec_run(["sh", "-c", "ps -o uid= -o args= ; ls -A /data"])
    text = out.decode()
    assert code == 0 and "flows.json" in text and ".config.runtime.json" in text, text
    assert {line.split()[0] for line in text.splitlines() if "entrypoint.sh" in line or "node-red" in line} == {"1000"}, text
    node_red.reload()
    assert [node_red.attrs["Path"], *node_red.attrs["Args"]] == ["./entrypoint.sh", "--settings", "/etc/stackgen/node-red/settings.js"]
    node_red.stop(timeout=10)
    logs = node_red.logs().decode(errors="replace")
    assert "Stopped flows" in logs, logs  # SIGTERM reached Node-RED through entrypoint.sh


def test_nginx_twin_default_run_is_unprivileged_on_8080_even_read_only(engine, local_images, cleanup):
    containers, _ = cleanup
    nginx = engine.containers.run(
        build.IMAGES["nginx"], detach=True, read_only=True, tmpfs={"/tmp": "size=16m,mode=1777"},
        cap_drop=["ALL"], security_opt=["no-new-privileges:true"], network_mode="none",
    )
    containers.append(nginx)
    head = wait_until(nginx, ["sh", "-c", "wget -qS -O /dev/null http://127.0.0.1:8080/ 2>&1"], timeout=20)
    assert "200 OK" in head
    code, out = nginx.exec_run(["sh", "-c", "ps -o uid= -p 1; cat /tmp/nginx.pid"])
    assert code == 0 and out.decode().split()[0] == "101", out
    logs = nginx.logs().decode(errors="replace")
    assert "/docker-entrypoint.sh: Configuration complete; ready for start up" in logs, logs
    assert "can not modify /etc/nginx/conf.d/default.conf (read-only file system?)" in logs, logs
    nginx.stop(timeout=10)  # STOPSIGNAL SIGQUIT: a graceful exit
    nginx.reload()
    assert nginx.attrs["State"]["ExitCode"] == 0, nginx.logs().decode(errors="replace")


def test_certbot_twin_python_sees_certbots_packages_hardened(engine, local_images):
    """run.sh (local CA mode) runs `python3` with `cryptography`; compose runs certbot as 0:<gid>,
    read-only, every capability dropped, tmpfs on /tmp and certbot's work/log dirs."""
    script = (
        "command -v python3; command -v certbot; python3 -c 'import cryptography, josepy, acme, certbot; print(certbot.__version__)'; "
        "certbot --version; certbot certonly --help webroot >/dev/null && echo help-ok"
    )
    code, out = run_once(
        engine, build.IMAGES["certbot"], ["-c", script], entrypoint=["/bin/sh"], user="0:1500", read_only=True,
        tmpfs={"/tmp": "size=16m", "/var/lib/letsencrypt": "size=16m,mode=0700", "/var/log/letsencrypt": "size=16m,mode=0700"},
        cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
    )
    assert code == 0, out
    lines = out.split()
    assert lines[:2] == ["/usr/local/bin/python3", "/usr/local/bin/certbot"], out
    pinned = load_contract("certbot").tags[0].version
    assert pinned in lines and f"certbot {pinned}" in out and "help-ok" in out, out
