"""Schemathesis against the application's own OpenAPI schema: generated requests, valid and invalid,
never get a 5xx, and every answer (status, headers, body) matches the schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

# A body over the size limit is refused with 413 before it is read: a rejection too.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415, 422]}}}
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_conform(app, client, mode):  # `client`: the model is warm before the first request
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    statuses = set()

    # schemathesis.pytest.from_fixture would be the usual entry, but it needs pytest < 9; @given works everywhere.
    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call_and_validate()
        statuses.add(response.status_code)

    check()
    assert max(statuses) < 500
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses
