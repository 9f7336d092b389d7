"""The served test model: one application for the session (small batch shapes, a short queue), its
TestClient, warmed up before the first test that uses it."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from multifield.server import ServerSettings, create_app  # noqa: E402


@pytest.fixture(scope="session")
def server_settings() -> ServerSettings:
    # Two batch sizes keep the warm-up short; a short queue lets a test fill it.
    return ServerSettings(batch_sizes=(1, 16), max_batch_records=16, max_queue_requests=16, max_queue_records=64)


@pytest.fixture(scope="session")
def app(trained_bundle, server_settings):
    return create_app(trained_bundle, server_settings)


@pytest.fixture(scope="session")
def client(app):
    """A TestClient whose lifespan runs for the whole session; it waits until the model is warm.
    ``client.first_health`` is the answer /healthz gave right after start."""
    with TestClient(app) as test_client:
        test_client.first_health = test_client.get("/healthz")
        deadline = time.monotonic() + 180
        while test_client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "the model did not warm up within 180 s"
            time.sleep(0.1)
        yield test_client
