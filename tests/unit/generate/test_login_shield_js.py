"""The login shield's JavaScript (blueprints/node-red/shield.js), run under Node.js with a fake clock and fake
requests/responses (tests/unit/generate/shield_harness.js): the fastest real proof of its counting.
The live proof against a running stack is tests/integration/test_login_shield.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import stackgen.generate

SHIELD = Path(stackgen.generate.__file__).parent / "blueprints" / "node-red" / "shield.js"
HARNESS = Path(__file__).with_name("shield_harness.js")
NODE = shutil.which("node")
OPTIONS = {"attempts": 5, "window_seconds": 600, "ban_seconds": 900, "max_clients": 100, "client_header": "X-Real-IP"}

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the integration test runs it in the Node-RED twin)")


def run(steps: list[dict], options: dict | None = None, keys: list[str] | None = None, user: str = "user") -> dict:
    scenario = {"options": options or OPTIONS, "steps": steps, "keys": keys or [], "user": user}
    assert NODE is not None
    out = subprocess.run([NODE, str(HARNESS), str(SHIELD), json.dumps(scenario)], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def statuses(result: dict) -> list[int]:
    return [r["status"] for r in result["results"] if "status" in r]


def test_five_failures_ban_the_address_with_429_and_retry_after():
    result = run([{"status": 401}] * 5 + [{"status": 200}, {"advance": 60}, {"status": 200}])
    assert statuses(result) == [401] * 5 + [429, 429]
    refused = [r for r in result["results"] if r.get("status") == 429]
    assert all(not r["reached"] for r in refused), "a refused attempt must not reach Node-RED's password check"
    assert refused[0]["retry_after"] == "900" and refused[1]["retry_after"] == "840"
    events = [line["event"] for line in result["log"]]
    assert events == ["stackgen.login_failure"] * 5 + ["stackgen.login_ban"]
    assert all(line["client"] == "172.18.0.5" for line in result["log"])


def test_node_reds_own_lockout_answers_count_as_failures():
    # Node-RED's own throttle answers 403, then 500: each is a failed login from this address.
    result = run([{"status": 403}] * 3 + [{"status": 500}] * 2 + [{"status": 200}])
    assert statuses(result)[-1] == 429


def test_ban_ends_after_ban_seconds_and_the_count_starts_again():
    result = run([{"status": 401}] * 5 + [{"advance": 901}, {"status": 200}, {"status": 401}, {"status": 200}])
    assert statuses(result) == [401] * 5 + [200, 401, 200]


def test_failures_older_than_the_window_are_forgotten():
    steps = [{"status": 401}] * 4 + [{"advance": 601}] + [{"status": 401}] * 4 + [{"status": 200}]
    assert statuses(run(steps))[-1] == 200


def test_successes_do_not_count():
    steps = ([{"status": 200}] * 20) + [{"status": 401}] * 4 + [{"status": 200}]
    assert statuses(run(steps)) == [200] * 20 + [401] * 4 + [200]
    assert run([{"status": 200}] * 20)["log"] == []


def test_other_addresses_and_the_right_password_are_unaffected_by_a_ban():
    attacker = {"x-real-ip": "203.0.113.7"}
    admin = {"x-real-ip": "198.51.100.2"}
    steps = [{"status": 401, "headers": attacker}] * 5 + [
        {"status": 200, "headers": attacker},
        {"status": 200, "headers": admin},
    ]
    assert statuses(run(steps)) == [401] * 5 + [429, 200]


def test_the_address_the_edge_asserts_counts_not_the_socket():
    # Every request reaches Node-RED from the edge's one socket address; the edge's header tells clients apart.
    steps = [{"status": 401, "headers": {"x-real-ip": f"203.0.113.{i}"}, "peer": "172.18.0.2"} for i in range(10)]
    assert statuses(run(steps)) == [401] * 10


def test_without_the_header_the_socket_address_counts():
    steps = [{"status": 401, "peer": "::ffff:172.18.0.9"}] * 5 + [{"status": 200, "peer": "172.18.0.9"}]
    assert statuses(run(steps))[-1] == 429


def test_a_garbage_header_falls_back_to_the_socket_address():
    steps = [{"status": 401, "headers": {"x-real-ip": f"nonsense-{i}"}} for i in range(5)] + [{"status": 200}]
    assert statuses(run(steps))[-1] == 429


def test_ipv6_clients_are_counted_per_slash_64():
    steps = [{"status": 401, "headers": {"x-real-ip": f"2001:db8:1:2::{i:x}"}} for i in range(5)]
    steps.append({"status": 200, "headers": {"x-real-ip": "2001:db8:1:2:ffff::1"}})
    steps.append({"status": 200, "headers": {"x-real-ip": "2001:db8:1:3::1"}})
    assert statuses(run(steps)) == [401] * 5 + [429, 200]


def test_only_login_posts_are_guarded():
    steps = [{"status": 401}] * 5 + [
        {"method": "GET", "url": "/flows", "status": 401},
        {"method": "GET", "url": "/", "status": 200},
        {"method": "GET", "url": "/auth/token", "status": 200},
        {"method": "POST", "url": "/flows", "status": 401},
        {"method": "POST", "url": "/AUTH/Token/", "status": 200},
        {"method": "POST", "url": "/auth/token?x=1", "status": 200},
    ]
    assert statuses(run(steps)) == [401] * 5 + [401, 200, 200, 401, 429, 429]


def test_parallel_attempts_cannot_exceed_the_limit():
    # Ten attempts sent at once: five are checked, the rest refused before any answer is known.
    steps = [{"status": 401, "defer": True}] * 10 + [{"release": True}, {"status": 200}]
    result = run(steps)
    assert [r["reached"] for r in result["results"][:10]] == [True] * 5 + [False] * 5
    assert statuses(result)[5:10] == [429] * 5
    assert statuses(result)[-1] == 429


def test_the_table_is_bounded():
    options = dict(OPTIONS, max_clients=100)
    steps = [{"status": 401, "headers": {"x-real-ip": f"10.0.{i // 250}.{i % 250}"}} for i in range(300)]
    assert run(steps, options)["table"] <= 100


def test_log_lines_never_carry_user_names_or_passwords():
    result = run([{"surface": "http-node", "basic": "admin:hunter2-secret", "url": "/api"}] * 5)
    text = json.dumps(result["log"])
    assert "hunter2" not in text and "admin" not in text
    assert {line["surface"] for line in result["log"]} == {"http-node"}


def test_http_node_basic_auth_is_guarded_and_checked():
    right = {"surface": "http-node", "basic": "user:right", "url": "/api", "method": "GET"}
    wrong = {"surface": "http-node", "basic": "user:wrong", "url": "/api", "method": "GET"}
    bare = {"surface": "http-node", "url": "/api", "method": "GET"}
    result = run([right, bare, bare, bare, bare, bare] + [wrong] * 5 + [right, bare])
    # Requests without credentials get the browser's 401 prompt and never count; wrong ones do.
    assert statuses(result) == [200] + [401] * 5 + [401] * 5 + [429, 401]
    assert [line["event"] for line in result["log"]].count("stackgen.login_failure") == 5


def test_http_node_wrong_user_with_the_right_password_fails():
    result = run([{"surface": "http-node", "basic": "other:right", "method": "GET"}])
    assert statuses(result) == [401]


def test_client_keys():
    keys = run([], keys=["::ffff:192.0.2.1", "192.0.2.001", "2001:DB8::1", "[2001:db8::1]", "fe80::1%eth0", "1.2.3.999", "a:b:c", "", "x" * 80])["keys"]
    assert keys["::ffff:192.0.2.1"] == "192.0.2.1"
    assert keys["192.0.2.001"] == "192.0.2.1"
    assert keys["2001:DB8::1"] == keys["[2001:db8::1]"] == "2001:db8:0:0::/64"
    assert keys["fe80::1%eth0"] == "fe80:0:0:0::/64"
    assert keys["1.2.3.999"] is None and keys["a:b:c"] is None and keys[""] is None and keys["x" * 80] is None
