"""The engine facade's label look-ups: one filter shape, one set of label names (stackgen.constants)."""

from __future__ import annotations

import pytest

from stackgen import engine as engines
from stackgen.constants import NUMBER_LABEL, ONEOFF_LABEL, PROJECT_LABEL, SERVICE_LABEL, VOLUME_LABEL
from tests.support.fakes import FakeContainer, FakeEngine


def test_label_filter_is_a_list_of_key_value_pairs():
    assert engines.label_filter("p") == {"label": [f"{PROJECT_LABEL}=p"]}
    assert engines.label_filter("p", service="edge", number="1") == {
        "label": [f"{PROJECT_LABEL}=p", f"{SERVICE_LABEL}=edge", f"{NUMBER_LABEL}=1"]
    }
    with pytest.raises(KeyError):
        engines.label_filter("p", colour="red")


def engine_with_two_projects() -> FakeEngine:
    return FakeEngine([
        FakeContainer("node-red", project="p"),
        FakeContainer("edge", project="p", status="exited"),
        FakeContainer("edge", project="other", id="id-other-edge"),
    ])


def test_project_containers_and_a_services_container():
    engine = engine_with_two_projects()
    assert sorted(engines.service_of(c) for c in engines.project_containers(engine, "p")) == ["edge", "node-red"]
    assert [engines.service_of(c) for c in engines.project_containers(engine, "p", all_=False)] == ["node-red"]
    assert engines.service_container(engine, "p", "edge") is None, "running ones only, unless asked"
    assert engines.service_container(engine, "p", "edge", all_=True).id == "id-edge"
    assert engines.service_container(engine, "other", "edge").id == "id-other-edge"
    assert engines.service_container(engine, "p", "certbot") is None


def test_project_volumes_by_compose_key():
    engine = FakeEngine()
    engine.volumes_by_name["p_data"] = engines.volume_labels("p", "data")
    engine.volumes_by_name["p_certs"] = engines.volume_labels("p", "certs", **{"org.stackgen.restored-from": "a.tar.gz"})
    engine.volumes_by_name["q_data"] = engines.volume_labels("q", "data")
    assert engine.volumes_by_name["p_data"] == {PROJECT_LABEL: "p", VOLUME_LABEL: "data"}
    assert sorted(v.name for v in engines.project_volumes(engine, "p")) == ["p_certs", "p_data"]
    assert [v.name for v in engines.project_volumes(engine, "p", "data")] == ["p_data"]


def test_oneoff_and_sdk_errors_without_importing_docker_elsewhere():
    assert engines.is_oneoff({ONEOFF_LABEL: "True"}) and not engines.is_oneoff({})
    from docker.errors import ImageNotFound, NotFound

    assert engines.NotFound is NotFound and engines.ImageNotFound is ImageNotFound
    with pytest.raises(AttributeError):
        engines.NoSuchThing  # noqa: B018
