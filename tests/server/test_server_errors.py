"""Bad input never gets a 5xx and never stops the server: each case gets a 4xx with a JSON error body
that says what was wrong and what is allowed, and the server answers a good request right after."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from server_helpers import assert_error_body, model_held

from multifield.server.body_limit import BodyLimitMiddleware
from multifield.server.settings import ServerSettings

GOOD = {"records": [{"id": "ok", "plot": "A detective hunts a killer."}]}

BAD_BODIES = {
    "invalid JSON": (b'{"records": [{"plot": "unfinished', 400, "invalid_json", "not valid JSON"),
    "not UTF-8": ('{"records": [{"plot": "caf\xe9"}]}'.encode("latin-1"), 400, "invalid_encoding", "UTF-8"),
    "nested too deeply": (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json", "JSON"),
    "a number for a text field": (b'{"records": [{"plot": 5}]}', 422, "invalid_request", "records[0].plot"),
    "an object for an items field": (b'{"records": [{"actors": {"a": 1}}]}', 422, "invalid_request", "records[0].actors"),
    "a number in an items list": (b'{"records": [{"actors": ["a", 5]}]}', 422, "invalid_request", "item 1"),
    "a JSON-array string of numbers": (b'{"records": [{"actors": "[1, 2]"}]}', 422, "invalid_request", "list of strings"),
    "an integer id that is a float": (b'{"records": [{"id": 1.5}]}', 422, "invalid_request", "records[0].id"),
    "no records": (b'{"records": []}', 422, "invalid_request", "1 to 1000 records"),
    "no records key": (b'{"rows": [{}]}', 422, "invalid_request", "records"),
    "an array, not an object": (b"[{}]", 422, "invalid_request", '{"records": [...]}'),
    "a 5 MB field": (json.dumps({"records": [{"plot": "x" * 5_000_000}]}).encode(), 422, "invalid_request", "100000"),
    "items over the characters limit": (
        json.dumps({"records": [{"features": ["x" * 1000] * 200}]}).encode(), 422, "invalid_request", "100000"
    ),
    "100,000 records": (json.dumps({"records": [{}] * 100_000}).encode(), 422, "invalid_request", "1000 records"),
}


def assert_still_serving(client):
    assert client.get("/healthz").status_code == 200
    response = client.post("/v1/predict", json=GOOD)
    assert response.status_code == 200 and response.json()["predictions"][0]["id"] == "ok"


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_body_gets_a_4xx_json_error(client, case):
    body, status, code, hint = BAD_BODIES[case]
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    error = assert_error_body(response, status, code)
    assert hint in error["message"], error["message"]
    assert len(response.content) < 10_000  # the error never echoes the input back
    assert_still_serving(client)


def test_validation_error_names_place_problem_and_allowed_values(client):
    body = {"records": [{"plot": 5, "actors": {"a": 1}}, {"title": ["a"]}]}
    error = assert_error_body(client.post("/v1/predict", json=body), 422, "invalid_request")
    details = {detail["location"]: detail for detail in error["details"]}
    assert set(details) == {"records[0].plot", "records[0].actors", "records[1].title"}
    assert details["records[0].plot"]["allowed"].startswith("a string of at most 100000 characters")
    assert "got a number" in details["records[0].plot"]["problem"]
    assert "list of strings" in details["records[0].actors"]["allowed"]
    assert "2 more problems" in error["message"]


def test_bad_query_parameter(client):
    response = client.post("/v1/predict", params={"attention": "maybe"}, json=GOOD)
    error = assert_error_body(response, 422, "invalid_request")
    assert error["details"][0]["location"] == "query.attention" and error["details"][0]["allowed"] == "true or false"


def test_body_over_the_limit_is_refused_before_parsing(client):
    too_large = b'{"records": [' + b'{"plot": "x"},' * 800_000 + b"{}]}"  # 11 MB of valid JSON
    error = assert_error_body(
        client.post("/v1/predict", content=too_large, headers={"content-type": "application/json"}), 413, "body_too_large"
    )
    assert str(10 * 1024 * 1024) in error["message"]

    def chunks():  # no Content-Length: counted while read
        for _ in range(12):
            yield b" " * (1024 * 1024)

    response = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert_error_body(response, 413, "body_too_large")
    assert_still_serving(client)


def test_body_limit_counts_bytes_as_they_arrive():
    """A body sent in chunks under a false Content-Length is cut off once it passes the limit."""
    settings = ServerSettings(max_body_bytes=4096)
    called, sent, chunks_read = [], [], []

    async def app(scope, receive, send):
        called.append(scope)

    async def receive():
        chunks_read.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": [(b"content-length", b"10"), (b"content-type", b"application/json")]}
    asyncio.run(BodyLimitMiddleware(app, settings, ["/v1/predict"])(scope, receive, send))
    assert not called and sent[0]["status"] == 413 and len(chunks_read) == 5
    assert json.loads(sent[1]["body"])["error"]["code"] == "body_too_large"


def test_wrong_content_type(client):
    response = client.post("/v1/predict", content=json.dumps(GOOD), headers={"content-type": "text/plain"})
    error = assert_error_body(response, 415, "unsupported_media_type")
    assert "application/json" in error["message"]
    response = client.post("/v1/predict", content=json.dumps(GOOD), headers={"content-type": ""})
    assert "no Content-Type" in assert_error_body(response, 415, "unsupported_media_type")["message"]


def test_unknown_path_and_method(client):
    assert_error_body(client.get("/v1/nothing"), 404, "not_found")
    response = client.get("/v1/predict")
    assert_error_body(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_full_queue_answers_503_with_retry_after(client, app, server_settings):
    batcher = app.state.batcher
    with model_held(batcher) as (entered, release, _):
        futures = [batcher.submit([{}])]
        assert entered.wait(30)
        futures += [batcher.submit([{}]) for _ in range(server_settings.max_queue_requests)]
        response = client.post("/v1/predict", json=GOOD)
        error = assert_error_body(response, 503, "overloaded")
        assert response.headers["retry-after"] == str(server_settings.retry_after_seconds)
        assert "busy" in error["message"]
        release.set()
        for future in futures:
            assert len(future.result(timeout=30)) == 1
    deadline = time.monotonic() + 10
    while batcher.queued_requests:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert_still_serving(client)
