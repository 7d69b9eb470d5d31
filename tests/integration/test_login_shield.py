"""The login shield against real running stacks (Caddy and NGINX; Traefik is held statically in
tests/unit/generate/test_login_shield.py): a client rotating user names gets 429 after `attempts` failures,
headers it forges do not reset or evade the count, and the right password still works from a clean
address during that client's ban. Also measured: the login attempts before the first 429.

Traffic only to our own containers: the guessing client is a probe container on a network this test
creates, joined by the stack's edge (`stackgen.live.access.ProbeNetwork`, the mechanism `verify --live` uses
too); the clean address is the host's loopback, through the published port.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time

import pytest

from stackgen.live import access
from stackgen.spec import LoginShield
from stackgen.stackdir import load_stack
from tests.images.build import pinned
from tests.integration.harness import PASSWORD, LiveStack, start_stack, stop_stack

pytestmark = pytest.mark.engine

ATTEMPTS = 12  # more than the default limit (5): the count must stop them


def admin_root(stack: LiveStack) -> str:
    spec = load_stack(stack.directory)
    path = spec.node_red.editor.path
    return "" if path == "/" else path.rstrip("/")


@pytest.fixture(scope="module", params=["caddy", "nginx"])
def shielded(request, engine, local_images, tmp_path_factory):
    live = start_stack(engine, tmp_path_factory.mktemp(f"shield-{request.param}"), request.param)
    live.admin_root = admin_root(live)
    yield live
    stop_stack(live)


@contextlib.contextmanager
def outsiders(stack: LiveStack):
    """A network of this test's own that probe clients and the stack's edge share (a fresh address space each time)."""
    with access.probe_network(stack.engine, f"{stack.project}-out-{secrets.token_hex(3)}", {"org.stackgen.test": stack.project}) as network:
        network.attach(stack.container("edge"))
        yield network


def probe(stack: LiveStack, network: access.ProbeNetwork, steps: list[dict]) -> tuple[list[access.Result], str]:
    """Run `steps` from a new probe client on `network`: its results, and its address there. The client keeps its
    address until the network goes, so the next client gets another one."""
    login = f"{stack.admin_root}/auth/token"
    requests = [access.login_step(login, step["user"], step["password"], step.get("headers")) if "user" in step else step
                for step in steps]
    client = network.client(pinned("node-red"), user="1000:1000")
    return client.run(requests, host=stack.domain), client.address


def node_red_events(stack: LiveStack, client: str) -> list[dict]:
    lines = stack.container("node-red").logs(stdout=True, stderr=False).decode("utf-8", "replace").splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{") and '"event":"stackgen.login_' in line]
    return [e for e in events if e["client"] == client or e["client"].startswith("198.51.100.")]


def edge_access_log(stack: LiveStack, client: str) -> list[int]:
    """The statuses the edge's JSON access log records for `client` (Caddy: request.remote_ip; NGINX: client)."""
    statuses = []
    for line in stack.container("edge").logs(stdout=True, stderr=True).decode("utf-8", "replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        address = record.get("client") or (record.get("request") or {}).get("remote_ip")
        if address == client and "status" in record:
            statuses.append(int(record["status"]))
    return statuses


def test_rotating_user_names_get_429_and_forged_headers_do_not_help(shielded: LiveStack):
    stack = shielded
    limit = LoginShield().attempts
    steps = []
    for n in range(ATTEMPTS):
        forged = f"198.51.100.{n + 1}"  # a new "address" with every attempt: it must not start a new count
        steps.append({
            "user": f"guess{n}", "password": "wrong",
            "headers": {"X-Real-IP": forged, "X-Forwarded-For": forged, "X-Stackgen-Client": forged, "Forwarded": f"for={forged}"},
        })
    steps.append({"user": "admin", "password": PASSWORD, "headers": {"X-Real-IP": "127.0.0.1", "X-Forwarded-For": "127.0.0.1"}})
    steps.append({"method": "GET", "path": "/"})  # not a login: never refused by the shield
    with outsiders(stack) as network:
        results, address = probe(stack, network, steps)
        statuses = [r.status for r in results]
        first = statuses.index(429) if 429 in statuses else None
        print(f"\n[{stack.edge}] login attempts before the first 429: {first} (statuses {statuses})")
        assert first == limit, statuses
        assert all(s in (401, 403, 500) for s in statuses[:limit]), statuses
        assert set(statuses[limit:ATTEMPTS + 1]) == {429}, "the ban holds for every later attempt, the right password included"
        assert statuses[-1] not in (0, 429), statuses
        retry = int(results[limit].retry_after)
        assert 0 < retry <= LoginShield().ban_seconds

        # A clean address (the host, through the published port) logs in with the right password during the ban.
        assert stack.token()

    time.sleep(0.5)
    events = node_red_events(stack, address)
    assert not any(e["client"].startswith("198.51.100.") for e in events), "a forged header was counted as the client"
    failures = [e for e in events if e["event"] == "stackgen.login_failure"]
    bans = [e for e in events if e["event"] == "stackgen.login_ban"]
    assert len(failures) == limit and {e["status"] for e in failures} <= {401, 403, 500}, events
    assert len(bans) == 1 and bans[0]["ban_seconds"] == LoginShield().ban_seconds
    # The edge's JSON access log names the client and the statuses (what fail2ban/CrowdSec could read there too).
    assert edge_access_log(stack, address).count(429) >= ATTEMPTS - limit


def test_a_second_outsider_is_not_affected_by_the_first_ones_ban(shielded: LiveStack):
    stack = shielded
    limit = LoginShield().attempts
    with outsiders(stack) as network:
        guesses, first = probe(stack, network, [{"user": f"x{n}", "password": "wrong"} for n in range(limit + 1)])
        assert guesses[-1].status == 429
        clean, second = probe(stack, network, [{"user": "admin", "password": PASSWORD}])
        assert second != first
        assert clean[0].status == 200, clean


# Runs inside the Node-RED container: basic-auth requests to Node-RED itself, as the edge would send them.
BASIC_PROBE = r"""
const http = require("http");
const steps = JSON.parse(process.env.STEPS);
function get(step) {
    return new Promise((resolve) => {
        const headers = {"X-Real-IP": step.client};
        if (step.creds) { headers.Authorization = "Basic " + Buffer.from(step.creds).toString("base64"); }
        http.get({host: "127.0.0.1", port: 1880, path: "/", headers: headers, timeout: 15000}, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode));
        }).on("error", () => resolve(0));
    });
}
(async () => { const out = []; for (const s of steps) { out.push(await get(s)); } console.log(JSON.stringify(out)); })();
"""


def test_http_node_basic_auth_is_shielded_in_a_real_node_red(engine, local_images, tmp_path):
    """`http_node_auth` set: the shield and its basic-auth check run in Node-RED itself (bcrypt found through
    Node-RED's install), 429 after the limit for that address, the right password works from another."""
    from stackgen.generate.render import render
    from stackgen.spec import Stack
    from tests.golden import EXAMPLE_HASH  # bcrypt of "change-me-please"

    spec = Stack.model_validate({
        "project": "shield-basic", "domains": ["nodered.example.org"], "email": "ops@example.org",
        "node_red": {"admin_password_hash": EXAMPLE_HASH, "http_node_auth": {"user": "viewer", "password_hash": EXAMPLE_HASH}},
    })
    for item in render(spec):
        if item.path.startswith("node-red/"):
            (tmp_path / item.path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / item.path).write_bytes(item.content)
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    node_red = engine.containers.run(
        pinned("node-red"), ["--settings", "/etc/stackgen/node-red/settings.js"], detach=True, user="1000:1000",
        read_only=True, tmpfs={"/tmp": "size=64m,mode=1777", "/data": "size=64m,uid=1000,gid=1000"}, cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], network_mode="none", labels={"org.stackgen.test": "shield-basic"},
        volumes={str(tmp_path / "node-red"): {"bind": "/etc/stackgen/node-red", "mode": "ro"},
                 str(secret): {"bind": "/run/secrets/node_red_credential_secret", "mode": "ro"}},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if node_red.exec_run(["wget", "-qO-", "http://127.0.0.1:1880/editor/"]).exit_code == 0:
                break
            time.sleep(0.5)
        limit = LoginShield().attempts
        steps = [{"client": "203.0.113.9", "creds": "viewer:wrong"}] * limit + [
            {"client": "203.0.113.9", "creds": "viewer:change-me-please"},  # banned address: 429 even when right
            {"client": "203.0.113.9"},  # no credentials: not a login attempt, the usual 401 prompt
            {"client": "203.0.113.10", "creds": "viewer:change-me-please"},  # another address: through
            {"client": "203.0.113.10", "creds": "admin:change-me-please"},  # wrong user: 401
        ]
        result = node_red.exec_run(["node", "-e", BASIC_PROBE], environment={"STEPS": json.dumps(steps)})
        statuses = json.loads(result.output.decode().strip().splitlines()[-1])
        logs = node_red.logs(stdout=True, stderr=False).decode("utf-8", "replace")
    finally:
        node_red.remove(force=True)
    assert statuses[:limit] == [401] * limit, statuses
    assert statuses[limit:limit + 2] == [429, 401], statuses
    assert statuses[limit + 2] not in (0, 401, 429), statuses  # past the auth: Node-RED's own answer (404, no flows)
    assert statuses[limit + 3] == 401, statuses
    assert '"event":"stackgen.login_ban","client":"203.0.113.9","surface":"http-node"' in logs
