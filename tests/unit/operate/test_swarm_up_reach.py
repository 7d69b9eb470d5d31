"""`up` on a swarm stack checks, once the tasks converged, that the edge reaches every Node-RED instance over its overlay
(operate/swarm.reach): from inside the edge's task container, with the edge image's own HTTP client. Against the shared
FakeEngine as a swarm whose tasks may run on another node (a node id the fake does not list is shown as that id).

What is decided: any HTTP answer passes (a 404 too); no answer within the bound fails `up` naming the instance, its node
and the edge's, and across nodes on an encrypted overlay the likely cause (no IPsec ESP) with the fix; an edge on
another node is a warning that nothing was checked; an overlay deployed encrypted that the file now renders plain is
refused before deploying (`docker stack deploy` keeps an existing network as it is)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen import engine as engines
from stackgen.constants import STACK_NAMESPACE_LABEL
from stackgen.errors import StackgenError
from stackgen.generate import workflow
from stackgen.operate import lifecycle, swarm
from stackgen.spec import Stack
from tests.support.fakes import FakeEngine
from tests.unit.operate.test_swarm_operate import LABELS, SERVICES, two_instance_stack

OTHER = "node-id-2"  # a second node: the fake lists only node-1, so its tasks show this id as their node
TIMED_OUT = (1, "", "wget: download timed out\n")
ANSWERED = (0, "", "")


def _stack(encrypted: bool) -> Stack:
    stack = two_instance_stack()
    if encrypted:
        return stack
    return Stack.model_validate(stack.model_dump(exclude_none=True) | {"swarm": {"encrypted_overlays": False}})


@pytest.fixture
def encrypted_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "enc"
    workflow.init(directory, _stack(True))
    return directory


@pytest.fixture
def plain_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "plain"
    workflow.init(directory, _stack(False))
    return directory


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    fake.swarm_init()
    fake.swarm.node_labels.update({label: "true" for label in LABELS})
    monkeypatch.setattr(engines, "client", lambda timeout=60: fake)
    monkeypatch.setattr(swarm, "REACH_SECONDS", 0.3)  # the bound: short here, each instance is asked again until it runs out
    return fake


def deploy(monkeypatch, engine: FakeEngine, answers, *, nodes: dict[str, str] | None = None, logs: bytes = b"") -> list[list[str]]:
    """`docker stack deploy` answered by the fake: every service one running healthy task, on `nodes[key]` (default this
    node; a task on another node has no container here); the edge's task container answers `exec_run` with
    `answers(url)` -> (exit code, stdout, stderr). Returns the commands run inside the edge."""
    nodes = nodes or {}
    ran: list[list[str]] = []

    def cli(*args, cwd=None, check=True, timeout=None):
        if args[:2] == ("stack", "deploy"):
            for key in SERVICES:
                service = engine.swarm.service("p", key)
                if key in nodes:
                    service.task(container=f"elsewhere-{key}", node=nodes[key])
                else:
                    container = engine.swarm.task_container("p", key)
                    service.task(container=container.id)
                    if key == "edge":
                        container._exec = lambda command: (ran.append(command), answers(command[-1]))[1]
                engine.swarm.logs[service.id] = logs
        return engines.ComposeResult(0, "", "")

    monkeypatch.setattr(engines, "docker_cli", cli)
    return ran


def test_the_edge_asks_each_instance_at_its_editor_with_its_images_wget_and_up_passes(encrypted_dir, engine, monkeypatch):
    ran = deploy(monkeypatch, engine, lambda url: ANSWERED, nodes={"node-red-b": OTHER})
    result = lifecycle.up(encrypted_dir, timeout=5, poll=0)
    assert sorted(ran) == [["wget", "-q", "-T", "3", "-O", "/dev/null", "http://node-red-b:1880/editor"],
                           ["wget", "-q", "-T", "3", "-O", "/dev/null", "http://node-red:1880/editor"]], "once each: answered"
    check = result.reach
    assert not check.skipped and not check.unreachable and check.client == "wget"
    assert [(r.instance, r.node, r.networks, r.encrypted) for r in check.reaches] == [
        ("node-red", "node-1", ["internal"], ["internal"]), ("node-red-b", OTHER, ["internal-b"], ["internal-b"])]
    assert check.summary().startswith("the edge reaches every instance over its overlay: node-red (this node), "
                                      f"node-red-b (node {OTHER}) answered in ")


def test_any_http_answer_counts_and_a_late_one_is_waited_for(encrypted_dir, engine, monkeypatch):
    asked: dict[str, int] = {}

    def answers(url):
        asked[url] = asked.get(url, 0) + 1
        if "node-red-b" in url:  # not yet known on the edge's node, then answering
            return (1, "", "wget: bad address 'node-red-b:1880'\n") if asked[url] == 1 else ANSWERED
        return (1, "", "wget: server returned error: HTTP/1.1 404 Not Found\n")

    deploy(monkeypatch, engine, answers, nodes={"node-red-b": OTHER})
    monkeypatch.setattr(swarm, "REACH_SECONDS", 2.0)
    check = lifecycle.up(encrypted_dir, timeout=5, poll=0).reach
    assert not check.unreachable
    assert asked == {"http://node-red:1880/editor": 1, "http://node-red-b:1880/editor": 2}


def test_across_nodes_on_an_encrypted_overlay_up_fails_naming_the_nodes_the_missing_esp_and_the_fix(encrypted_dir, engine, monkeypatch):
    ran = deploy(monkeypatch, engine, lambda url: TIMED_OUT if "node-red-b" in url else ANSWERED, nodes={"node-red-b": OTHER},
                 logs=b"Node-RED log lines\n")
    with pytest.raises(lifecycle.StackFailed) as caught:
        lifecycle.up(encrypted_dir, timeout=5, poll=0)
    message = str(caught.value)
    assert caught.value.service == "node-red-b"
    assert message.startswith("the edge (edge, on node node-1) gets no answer from instance node-red-b within 0s, although "
                              "every task runs healthy")
    assert f"  node-red-b runs on node {OTHER}: http://node-red-b:1880/editor: wget: download timed out" in message
    assert "Likely cause: internal-b is encrypted (IPsec ESP between the nodes) and a node's kernel has no IPsec ESP" in message
    assert "`grep CONFIG_INET_ESP /boot/config-$(uname -r)`" in message
    assert "`Failed Adding ... SA: function not implemented`" in message
    assert "set `swarm: {encrypted_overlays: false}` in stack.yaml" in message
    assert f"`stackgen down {encrypted_dir}` (a deployed network keeps its encryption)" in message
    assert "passwords, session tokens, flows) as plain VXLAN, readable and injectable" in message
    assert "UDP 4789" not in message and "same node" not in message
    assert caught.value.logs == "", "B's log lines say nothing about a network between the nodes"
    assert len([c for c in ran if "node-red-b" in c[-1]]) >= 1 and len([c for c in ran if c[-1].endswith("node-red:1880/editor")]) == 1


def test_across_nodes_on_a_plain_overlay_the_cause_is_the_network_between_them(plain_dir, engine, monkeypatch):
    deploy(monkeypatch, engine, lambda url: TIMED_OUT if "node-red-b" in url else ANSWERED, nodes={"node-red-b": OTHER})
    with pytest.raises(lifecycle.StackFailed) as caught:
        lifecycle.up(plain_dir, timeout=5, poll=0)
    message = str(caught.value)
    assert f"node-red-b runs on node {OTHER}" in message and "ESP" not in message
    assert "Across nodes (node-red-b, unencrypted overlay): the nodes must reach each other on UDP 4789 (VXLAN)" in message


def test_an_instance_on_the_edges_node_that_does_not_answer_fails_up_with_its_logs(encrypted_dir, engine, monkeypatch):
    refused = (1, "", "wget: can't connect to remote host (10.0.1.5): Connection refused\n")
    deploy(monkeypatch, engine, lambda url: refused, logs=b"Error: listen EADDRINUSE\n")
    with pytest.raises(lifecycle.StackFailed) as caught:
        lifecycle.up(encrypted_dir, timeout=5, poll=0)
    message = str(caught.value)
    assert "gets no answer from instances node-red, node-red-b" in message
    assert "  node-red runs on the same node as the edge: http://node-red:1880/editor: wget: can't connect" in message
    assert "ESP" not in message, "one node: nothing crosses, encryption is moot"
    assert "On the edge's own node: the instance's task is healthy but does not answer" in message
    assert caught.value.service == "node-red" and caught.value.logs == "Error: listen EADDRINUSE\n"


def test_an_edge_on_another_node_is_not_checked_and_up_warns(encrypted_dir, engine, monkeypatch):
    ran = deploy(monkeypatch, engine, lambda url: TIMED_OUT, nodes={"edge": OTHER, "certbot": OTHER})
    check = lifecycle.up(encrypted_dir, timeout=5, poll=0).reach
    assert ran == [] and check.reaches == []
    assert check.skipped.startswith(f"not checked that the edge reaches each instance: its task runs on node {OTHER}, not on "
                                    "this one (node-1)")
    from stackgen.cli.app import app

    shown = CliRunner().invoke(app, ["up", str(encrypted_dir), "--timeout", "5"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "warning: not checked that the edge reaches each instance" in " ".join(shown.output.split())


def test_cli_up_says_the_edge_reaches_every_instance_or_fails_with_the_cause(encrypted_dir, engine, monkeypatch):
    from stackgen.cli.app import app

    deploy(monkeypatch, engine, lambda url: ANSWERED, nodes={"node-red-b": OTHER})
    passed = CliRunner().invoke(app, ["up", str(encrypted_dir), "--timeout", "5"], env={"COLUMNS": "300"})
    assert passed.exit_code == 0, passed.output
    assert f"the edge reaches every instance over its overlay: node-red (this node), node-red-b (node {OTHER})" in passed.output
    engine.swarm.services.clear()
    engine.items.clear()
    deploy(monkeypatch, engine, lambda url: TIMED_OUT if "node-red-b" in url else ANSWERED, nodes={"node-red-b": OTHER})
    failed = CliRunner().invoke(app, ["up", str(encrypted_dir), "--timeout", "5"], env={"COLUMNS": "300"})
    assert failed.exit_code == 1
    said = " ".join(failed.output.split())
    assert "gets no answer from instance node-red-b" in said and "encrypted_overlays: false" in said


def test_an_overlay_deployed_encrypted_that_the_file_renders_plain_is_refused_before_deploying(plain_dir, engine, monkeypatch):
    ran = deploy(monkeypatch, engine, lambda url: ANSWERED)
    calls = []
    deploying = engines.docker_cli
    monkeypatch.setattr(engines, "docker_cli", lambda *a, **k: (calls.append(a), deploying(*a, **k))[1])
    engine.networks.add("p_internal-b", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm", Driver="overlay",
                        Options={"encrypted": "true", "com.docker.network.driver.overlay.vxlanid_list": "4097"})
    with pytest.raises(StackgenError) as caught:
        lifecycle.up(plain_dir, timeout=5, poll=0)
    assert str(caught.value).startswith("p_internal-b: deployed encrypted, and compose.swarm.yaml now renders it without "
                                        "encryption (swarm.encrypted_overlays: false), but `docker stack deploy` keeps")
    assert f"`stackgen down {plain_dir}`, then `stackgen up {plain_dir}`" in str(caught.value)
    assert calls == [] and ran == []


def test_an_overlay_deployed_plain_that_the_file_encrypts_is_a_note(encrypted_dir, engine, monkeypatch):
    deploy(monkeypatch, engine, lambda url: ANSWERED)
    engine.networks.add("p_public", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm", Driver="overlay", Options={})
    result = lifecycle.up(encrypted_dir, timeout=5, poll=0)
    assert any(n.startswith("network p_public exists unencrypted and compose.swarm.yaml wants it encrypted") for n in result.notes)


def test_the_deployed_networks_encryption_is_what_counts():
    engine = FakeEngine()
    engine.swarm_init()
    engine.networks.add("p_internal", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm", Driver="overlay", Options={"encrypted": ""})
    document = {"networks": {"internal": {"driver": "overlay"}, "public": {"driver_opts": {"encrypted": "true"}}, "other": None}}
    assert swarm._encrypted(engine, "p", document) == {"internal": True, "public": True, "other": False}


def test_the_http_client_is_the_edge_images_own():
    assert swarm._http_client({"x-stackgen": {"edge": "traefik"}}) == "wget", "traefik's image has busybox wget, no curl"
    assert swarm._http_client({"x-stackgen": {"edge": "nginx"}}) == "wget"
    _, curl_answered = swarm._CLIENTS["curl"]
    assert curl_answered(0, "404") and not curl_answered(0, "000") and not curl_answered(28, "000")
