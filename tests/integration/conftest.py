"""Fixtures for tests that need a Docker engine and the local test images (marker: engine)."""

from __future__ import annotations

import os

import pytest


def _unavailable(reason: str) -> None:
    """Under CI (CI=true) a missing engine or image is a failure, elsewhere a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine():
    """A docker SDK client for an engine that answers (DOCKER_HOST or the local socket)."""
    client = None
    try:
        import docker

        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - anything here means "no engine"
        _unavailable(f"no Docker engine answers ({exc}); start one with scripts/ensure-engine.sh")
    yield client
    client.close()


@pytest.fixture(scope="session")
def local_images(engine):
    """Build or reuse stackgen-local/* images (tests/images/build.py); returns {name: image id}."""
    from tests.images.build import ensure_images

    try:
        return ensure_images()
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"building the local test images failed: {exc}")
