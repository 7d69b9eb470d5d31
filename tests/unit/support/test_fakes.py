"""The shared fake engine answers as the engine does: the tests that seed it rely on these."""

from __future__ import annotations

import pytest
from docker.errors import ImageNotFound, NotFound

from tests.support.fakes import FakeContainer, FakeEngine

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"


def test_containers_are_listed_with_the_engines_filters():
    engine = FakeEngine([FakeContainer("web"), FakeContainer("db", {"Status": "exited"})], project="p")
    assert [c.name for c in engine.containers.list(filters={"label": [f"{PROJECT}=p"]})] == ["p-web-1"], "running only"
    assert len(engine.containers.list(all=True, filters={"label": f"{PROJECT}=p"})) == 2
    assert engine.containers.list(all=True, filters={"label": [f"{PROJECT}=p", f"{SERVICE}=db"]})[0].status == "exited"
    assert engine.containers.list(all=True, filters={"label": [f"{PROJECT}=other"]}) == []
    assert engine.containers.get("id-web").name == engine.containers.get("p-web-1").name == "p-web-1"
    with pytest.raises(NotFound):
        engine.containers.get("nope")
    with pytest.raises(ImageNotFound):
        engine.images.get("caddy:2")


def test_the_event_stream_delivers_only_what_its_filters_admit():
    engine = FakeEngine(project="p")
    app = engine.add("app")
    ours = engine.events(decode=True, filters={"type": "container", "label": [f"{PROJECT}=p"], "event": ["health_status", "die"]})
    theirs = engine.events(decode=True, filters={"label": [f"{PROJECT}=q"]})
    engine.emit(app, "health_status: unhealthy")
    engine.emit(app, "exec_die")
    engine.emit(app, "die")
    assert [ours.items.get_nowait()["Action"] for _ in range(ours.items.qsize())] == ["health_status: unhealthy", "die"], \
        "health_status matches by prefix, other actions exactly"
    assert theirs.items.empty()


def test_an_engine_that_goes_down_refuses_until_it_comes_back():
    engine = FakeEngine(project="p")
    engine.add("app")
    engine.go_down()
    with pytest.raises(ConnectionError):
        engine.connect()
    engine.come_back()
    assert engine.connect().containers.list()[0].restarts == 0
