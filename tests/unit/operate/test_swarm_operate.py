"""`up`, `down` and `status` on a swarm stack (`supervise`: tests/unit/supervise/test_supervisor_swarm.py), against
the shared FakeEngine made a one-node swarm: the engine facade finds a stack by its namespace label, `up` deploys
compose.swarm.yaml and judges the tasks (converged, failing with the task's error and the service's logs, waiting
with what Swarm says), `down` says what Swarm keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen import engine as engines
from stackgen.constants import STACK_NAMESPACE_LABEL, SWARM_SERVICE_LABEL
from stackgen.errors import StackgenError
from stackgen.generate import workflow
from stackgen.instances.edit import add_instance
from stackgen.operate import lifecycle, swarm
from stackgen.spec import Stack
from stackgen.stackdir import StackDir
from tests import golden
from tests.support.fakes import FakeContainer, FakeEngine

SERVICES = ("node-red", "node-red-b", "edge", "certbot")
LABELS = ("org.stackgen.p.node-red", "org.stackgen.p.node-red-b", "org.stackgen.p.edge")


def two_instance_stack(target: str = "swarm") -> Stack:
    data = golden.golden_stack("caddy", "certbot-http01").model_dump(exclude_none=True)
    stack = Stack.model_validate(data | {"project": "p", "target": target})
    return add_instance(stack, "b", ["b.example.org"], {"admin_password_hash": golden.EXAMPLE_HASH}).stack


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "s"
    workflow.init(directory, two_instance_stack())
    return directory


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    fake.swarm_init()
    fake.swarm.node_labels.update({label: "true" for label in LABELS})
    monkeypatch.setattr(engines, "client", lambda timeout=60: fake)
    return fake


def deploys(monkeypatch, engine: FakeEngine, tasks=None) -> list[tuple]:
    """`docker stack deploy` answered by the fake: each service of the stack appears with `tasks(service)` (default:
    one running task whose container is healthy). Returns the CLI calls."""
    calls: list[tuple] = []

    def cli(*args, cwd=None, check=True, timeout=None):
        calls.append((args, cwd))
        if args[:2] == ("stack", "deploy"):
            for key in SERVICES:
                service = engine.swarm.service("p", key)
                if tasks is None:
                    engine.swarm.task_container("p", key)
                    service.task(container=f"cid-{key}")
                else:
                    tasks(service, key)
        if args[:2] == ("stack", "rm"):
            engine.swarm.services.clear()
            engine.items.clear()
            engine.networks_by_name.clear()
        return engines.ComposeResult(0, "", "")

    monkeypatch.setattr(engines, "docker_cli", cli)
    return calls


# --- the engine facade: a swarm stack found by its labels --------------------------------------------------


def test_a_swarm_stacks_containers_networks_and_volumes_are_found_by_its_namespace():
    engine = FakeEngine()
    engine.swarm_init()
    engine.swarm.task_container("p", "edge", created="2030-01-01T00:00:01Z", id="old")
    engine.swarm.task_container("p", "edge", created="2030-01-01T00:00:09Z", id="new")
    engine.swarm.task_container("q", "edge", id="other")
    assert {c.id for c in engines.project_containers(engine, "p")} == {"old", "new"}
    assert engines.service_container(engine, "p", "edge").id == "new", "the newest task's container"
    assert [engines.service_of(c) for c in engines.project_containers(engine, "q")] == ["edge"]
    engine.networks.add("p_internal-b", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm", Driver="overlay")
    engine.networks.add("p_public", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm", Driver="overlay")
    assert [n.name for n in engines.project_networks(engine, "p", "internal-b")] == ["p_internal-b"]
    assert sorted(n.name for n in engines.project_networks(engine, "p")) == ["p_internal-b", "p_public"]
    engine.volumes_by_name["p_certs"] = {STACK_NAMESPACE_LABEL: "p"}
    assert [v.name for v in engines.project_volumes(engine, "p", "certs")] == ["p_certs"]


def test_a_compose_project_of_the_same_name_is_found_first():
    engine = FakeEngine([FakeContainer("edge", project="p")])
    engine.swarm_init()
    engine.swarm.task_container("p", "edge", id="task")
    assert [c.id for c in engines.project_containers(engine, "p")] == ["id-edge"]


def test_service_keys_of_task_containers():
    labels = {STACK_NAMESPACE_LABEL: "p", SWARM_SERVICE_LABEL: "p_node-red-b"}
    assert engines.service_key(labels, "p") == "node-red-b"
    assert engines.service_key(labels, "q") is None
    assert engines.swarm_service_key({SWARM_SERVICE_LABEL: "pebble"}) is None, "a service of no stack"


def test_swarm_role_and_services_of_an_engine_that_is_no_manager():
    engine = FakeEngine()
    assert engines.swarm_role(engine) == "none" and engines.stack_services(engine, "p") == []
    engine.swarm_init(manager=False)
    assert engines.swarm_role(engine) == "worker"


# --- the stack directory: which target -----------------------------------------------------------------------


def test_the_target_is_the_specs_or_the_stack_file_generate_wrote(tmp_path: Path):
    directory = tmp_path / "c"
    workflow.init(directory, two_instance_stack("compose"))
    assert StackDir(directory).target == "compose" and StackDir(directory).deployed_path.name == "compose.yaml"
    workflow.generate(directory, target="swarm")
    assert StackDir(directory).target == "swarm" and StackDir(directory).deployed_path.name == "compose.swarm.yaml"
    workflow.generate(directory)  # without --target swarm: the stack file goes, and so does the swarm target
    assert StackDir(directory).target == "compose"


# --- up ------------------------------------------------------------------------------------------------------


def test_up_deploys_the_stack_file_and_waits_for_every_task(stack_dir, engine, monkeypatch):
    calls = deploys(monkeypatch, engine)
    seen = []
    result = lifecycle.up(stack_dir, timeout=5, poll=0, on_progress=seen.append, resolve_image="never")
    assert calls == [(("stack", "deploy", "--prune", "--resolve-image", "never", "-c", "compose.swarm.yaml", "p"), StackDir(stack_dir).path)]
    assert result.firewall == "not-applicable" and set(result.states) == set(SERVICES)
    assert all(s.ready and s.node == "node-1" and s.health == "healthy" for s in result.states.values())
    assert seen and set(seen[-1]) == set(SERVICES)


def test_up_refuses_an_engine_that_is_not_a_swarm_manager(stack_dir, monkeypatch):
    fake = FakeEngine()
    monkeypatch.setattr(engines, "client", lambda timeout=60: fake)
    calls = deploys(monkeypatch, fake)
    with pytest.raises(swarm.NotASwarm, match=r"not a swarm manager \(none\).*docker swarm init"):
        lifecycle.up(stack_dir, timeout=1)
    fake.swarm_init(manager=False)
    with pytest.raises(swarm.NotASwarm, match=r"\(worker\).*run it on a manager"):
        lifecycle.up(stack_dir, timeout=1)
    assert calls == []


def test_up_names_the_node_labels_no_node_carries_before_deploying(stack_dir, engine, monkeypatch):
    calls = deploys(monkeypatch, engine)
    del engine.swarm.node_labels["org.stackgen.p.node-red-b"]
    with pytest.raises(StackgenError) as caught:
        lifecycle.up(stack_dir, timeout=1)
    assert "no node carries org.stackgen.p.node-red-b" in str(caught.value)
    assert "docker node update --label-add org.stackgen.p.node-red-b=true node-id-1" in str(caught.value)
    assert calls == []


def test_up_refuses_a_stack_file_stack_yaml_no_longer_describes(stack_dir, engine, monkeypatch):
    calls = deploys(monkeypatch, engine)
    path = StackDir(stack_dir).swarm_path
    path.unlink()
    with pytest.raises(StackgenError, match=r"compose.swarm.yaml not up to date with stack.yaml: run `stackgen generate"):
        lifecycle.up(stack_dir, timeout=1)
    assert calls == []


def test_a_task_that_keeps_failing_is_named_with_its_error_and_logs(stack_dir, engine, monkeypatch):
    def tasks(service, key):
        if key == "node-red-b":
            service.task("rejected", "shutdown", err="No such image: stackgen-local/node-red:nope", created="2099-01-01T00:00:00Z")
            service.task("rejected", "running", err="No such image: stackgen-local/node-red:nope", created="2099-01-01T00:00:05Z")
            engine.swarm.logs[service.id] = b"nothing ran\n"
        else:
            engine.swarm.task_container("p", key)
            service.task(container=f"cid-{key}")

    deploys(monkeypatch, engine, tasks)
    with pytest.raises(lifecycle.StackFailed) as caught:
        lifecycle.up(stack_dir, timeout=5, poll=0)
    assert caught.value.service == "node-red-b"
    assert str(caught.value) == ("node-red-b: No such image: stackgen-local/node-red:nope "
                                 "(2 failed tasks since up began; Swarm keeps replacing it)")
    assert caught.value.logs == "nothing ran\n"
    assert engine.swarm.logs_asked[-1] == ("sid-p_node-red-b", {"stdout": True, "stderr": True, "tail": 30})


def test_one_failed_task_is_not_yet_a_verdict_and_old_failures_do_not_count(stack_dir, engine, monkeypatch):
    def tasks(service, key):
        service.task("failed", "shutdown", err="task: non-zero exit (1)", created="2000-01-01T00:00:00Z")  # before up began
        service.task("failed", "shutdown", err="task: non-zero exit (1)", created="2099-01-01T00:00:00Z")
        engine.swarm.task_container("p", key)
        service.task(container=f"cid-{key}", created="2099-01-01T00:00:09Z")

    deploys(monkeypatch, engine, tasks)
    assert all(s.ready for s in lifecycle.up(stack_dir, timeout=5, poll=0).states.values())


def test_a_rolled_back_update_fails_up(stack_dir, engine, monkeypatch):
    def tasks(service, key):
        engine.swarm.task_container("p", key)
        service.task(container=f"cid-{key}")
        if key == "edge":
            service.attrs["UpdateStatus"] = {"State": "rollback_completed", "StartedAt": "2099-01-01T00:00:00Z",
                                             "Message": "rollback completed: update failed"}

    deploys(monkeypatch, engine, tasks)
    with pytest.raises(lifecycle.StackFailed, match=r"^edge: update rollback_completed: rollback completed: update failed$"):
        lifecycle.up(stack_dir, timeout=5, poll=0)


def test_a_task_nowhere_to_run_is_explained_when_up_gives_up(stack_dir, engine, monkeypatch):
    def tasks(service, key):
        if key == "certbot":
            service.task("pending", "running", err="no suitable node (scheduling constraints not satisfied on 1 node)")
        else:
            engine.swarm.task_container("p", key)
            service.task(container=f"cid-{key}")

    deploys(monkeypatch, engine, tasks)
    with pytest.raises(lifecycle.StackFailed, match=r"not converged after 0s: certbot: pending/- no suitable node \(scheduling"):
        lifecycle.up(stack_dir, timeout=0, poll=0)


def test_a_task_still_starting_is_waited_for_with_its_health(engine):
    service = engine.swarm.service("p", "node-red")
    engine.swarm.task_container("p", "node-red", health="starting")
    service.task("starting", container="cid-node-red")
    state = swarm.service_states(engine, "p", ["node-red", "edge"])
    assert state["node-red"].state == "starting" and state["node-red"].health == "starting" and not state["node-red"].ready
    assert state["node-red"].detail.startswith("waiting for its health check")
    assert state["edge"].state == "absent" and state["edge"].detail == "not deployed"


def test_a_task_on_another_node_is_judged_by_its_state():
    engine = FakeEngine()
    engine.swarm_init()
    service = engine.swarm.service("p", "node-red")
    service.task("running", container="elsewhere", node="node-id-1")
    assert swarm.service_states(engine, "p", ["node-red"])["node-red"].health == "healthy"


def test_a_failed_deploy_says_what_the_cli_said(stack_dir, engine, monkeypatch):
    monkeypatch.setattr(engines, "docker_cli", lambda *a, **k: engines.ComposeResult(1, "", "service edge: secret not found"))
    with pytest.raises(lifecycle.StackFailed, match=r"docker stack deploy failed \(1\): service edge: secret not found"):
        lifecycle.up(stack_dir, timeout=1)


# --- down ----------------------------------------------------------------------------------------------------


def _deployed(stack_dir, engine, monkeypatch) -> list[tuple]:
    calls = deploys(monkeypatch, engine)
    lifecycle.up(stack_dir, timeout=5, poll=0)
    engine.networks.add("p_internal", {STACK_NAMESPACE_LABEL: "p"}, Scope="swarm")
    for name in ("p_node-red-data", "p_certs"):
        engine.volumes_by_name[name] = {STACK_NAMESPACE_LABEL: "p"}
    engine.volumes_by_name["other_data"] = {STACK_NAMESPACE_LABEL: "other"}
    return calls


def test_down_removes_the_stack_and_keeps_volumes_saying_so(stack_dir, engine, monkeypatch):
    calls = _deployed(stack_dir, engine, monkeypatch)
    result = lifecycle.down(stack_dir)
    assert calls[-1] == (("stack", "rm", "p"), None)
    assert result.removed and result.volumes_removed == [] and sorted(result.volumes_kept) == ["p_certs", "p_node-red-data"]


def test_down_volumes_removes_this_nodes_volumes_of_the_stack_only(stack_dir, engine, monkeypatch):
    _deployed(stack_dir, engine, monkeypatch)
    result = lifecycle.down(stack_dir, volumes=True)
    assert sorted(result.volumes_removed) == ["p_certs", "p_node-red-data"] and list(engine.volumes_by_name) == ["other_data"]


def test_down_without_a_stack_says_so(stack_dir, engine, monkeypatch):
    calls = deploys(monkeypatch, engine)
    result = lifecycle.down(stack_dir)
    assert not result.removed and calls == []


def test_down_waits_for_the_task_containers_and_gives_up_naming_them(stack_dir, engine, monkeypatch):
    monkeypatch.setattr(engines, "docker_cli", lambda *a, **k: engines.ComposeResult(0, "", ""))
    engine.swarm.task_container("p", "edge", id="stuck")
    with pytest.raises(StackgenError, match=r"stack p: still there after 0s: p_edge.1.stuck"):
        swarm.down(stack_dir, timeout=0, poll=0)


# --- the CLI: up, down, status --------------------------------------------------------------------


def test_cli_up_and_down_say_what_swarm_does(stack_dir, engine, monkeypatch):
    from stackgen.cli.app import app

    deploys(monkeypatch, engine)
    runner = CliRunner()
    up = runner.invoke(app, ["up", str(stack_dir), "--resolve-image", "never", "--timeout", "5"])
    assert up.exit_code == 0, up.output
    assert "up p: deployed to the swarm, every service converged (tasks running and healthy)" in up.output
    assert "instance b: open https://b.example.org/editor" in up.output
    assert "host firewall: none needed for the internal overlays" in up.output
    engine.volumes_by_name["p_node-red-data"] = {STACK_NAMESPACE_LABEL: "p"}
    down = runner.invoke(app, ["down", str(stack_dir)])
    assert down.exit_code == 0, down.output
    assert "volumes kept (Swarm never removes a stack's volumes): p_node-red-data; --volumes deletes this node's" in down.output
    bad = runner.invoke(app, ["up", str(stack_dir), "--resolve-image", "sometimes"])
    assert bad.exit_code == 2 and "--resolve-image: 'sometimes' is not one of always, changed, never" in bad.output


def test_cli_up_prints_the_failing_services_logs(stack_dir, engine, monkeypatch):
    from stackgen.cli.app import app

    def tasks(service, key):
        for when in ("2099-01-01T00:00:00Z", "2099-01-01T00:00:07Z"):
            service.task("failed", "running", err="task: non-zero exit (1)", exit_code=1, created=when)
        engine.swarm.logs[service.id] = b"Error: settings.js: cannot read\n"

    deploys(monkeypatch, engine, tasks)
    result = CliRunner().invoke(app, ["up", str(stack_dir), "--timeout", "5"])
    assert result.exit_code == 1
    assert "task: non-zero exit (1) (2 failed tasks since up began" in result.output
    assert "Error: settings.js: cannot read" in result.output


def test_status_lists_services_with_their_tasks(stack_dir, engine, monkeypatch):
    from stackgen.cli.app import app

    deploys(monkeypatch, engine)
    lifecycle.up(stack_dir, timeout=5, poll=0)
    engine.swarm.services["p_edge"].attrs["Spec"]["EndpointSpec"]["Ports"] = [
        {"PublishedPort": 443, "TargetPort": 8443, "Protocol": "tcp", "PublishMode": "host"}]
    engine.swarm.services["p_certbot"].task("failed", "shutdown", err="task: non-zero exit (137): dockerexec: unhealthy container")
    from stackgen.operate import renewal

    monkeypatch.setattr(renewal, "served_certificate", lambda *a: (_ for _ in ()).throw(renewal.RenewalError("no answer")))
    from stackgen.supervise.status import collect_status

    report = collect_status(stack_dir)
    assert [s["service"] for s in report["swarm"]] == ["node-red", "node-red-b", "edge", "certbot"]
    certbot = report["swarm"][3]
    assert certbot["replicas"] == "1/1" and [t["state"] for t in certbot["tasks"]] == ["running", "failed"]
    assert certbot["tasks"][1]["error"] == "task: non-zero exit (137): dockerexec: unhealthy container"
    assert report["services"]["node-red-b"]["state"] == "running" and report["services"]["node-red-b"]["health"] == "healthy"
    shown = CliRunner().invoke(app, ["status", str(stack_dir)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "swarm services and tasks" in shown.output and "node-1" in shown.output
    assert "published: edge: 443->8443/tcp (host)" in shown.output


def test_verify_live_judges_a_swarm_stack_against_the_stack_file(stack_dir, monkeypatch):
    from stackgen.cli import verify as verify_cli
    from stackgen.live import checks

    asked = {}

    def verify_live(engine, **kwargs):
        asked.update(kwargs)
        raise StackgenError("stop here")

    monkeypatch.setattr(checks, "verify_live", verify_live)
    monkeypatch.setattr(engines, "client", lambda timeout=60: None)
    assert verify_cli.execute_live(stack_dir, None, None, 14, "none", "text", "high", [], None) == 2
    assert asked["directory"] == stack_dir and asked["files"] == [StackDir(stack_dir).swarm_path]
