"""Access: an API key on every request but /healthz and the page's files; a bind other machines can reach
refused without one; CORS off unless origins are named."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from server_helpers import assert_error_body, free_port, read_records
from typer.testing import CliRunner

from multifield.cli import app as cli
from multifield.errors import MultifieldError
from multifield.server import ServerSettings, create_app
from multifield.server.auth import API_KEY_VARIABLE, OPEN_PATHS, check_access, is_loopback, read_api_key

EXECUTABLE = str(Path(sys.executable).with_name("multifield"))
KEY = "k3y-for-the-tests-0123456789abcdef"
ORIGIN = "https://labels.example.org"


@pytest.fixture(scope="module")
def keyed(trained_bundle):
    settings = ServerSettings(batch_sizes=(1, 4), warmup=False, cors_origins=(ORIGIN,))
    with TestClient(create_app(trained_bundle, settings, api_key=KEY)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_route_but_healthz_and_the_page_needs_the_key(keyed, movie_files):
    records = read_records(movie_files["test"], 2)
    wrong_keys = [{}, bearer("wrong"), bearer(KEY[:-1]), bearer(KEY + "x"), {"Authorization": KEY},
                  {"Authorization": f"Basic {KEY}"}, {"X-Api-Key": KEY}]
    asked = 0
    for headers in wrong_keys:
        for method, path in (("GET", "/v1/model"), ("GET", "/v1/example"), ("GET", "/openapi.json"), ("GET", "/docs"),
                             ("POST", "/v1/predict"), ("GET", "/no-such-path")):
            response = keyed.request(method, path, headers={**headers, "Content-Type": "application/json"},
                                     json={"records": records} if method == "POST" else None)
            error = assert_error_body(response, 401, "unauthorized")
            assert "Authorization: Bearer" in error["message"] and response.headers["www-authenticate"].startswith("Bearer")
            asked += 1
    assert asked == len(wrong_keys) * 6
    for path in sorted(OPEN_PATHS):
        assert keyed.get(path).status_code in (200, 503), path  # healthz: 503 until warm
    answer = keyed.post("/v1/predict", json={"records": records}, headers=bearer(KEY))
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    assert keyed.get("/v1/model", headers={"authorization": f"bearer {KEY}"}).status_code == 200  # case as RFC 7235


def test_cors_answers_only_the_named_origin(keyed, client):
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = keyed.options("/v1/predict", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    refused = keyed.options("/v1/predict", headers={**preflight, "Origin": "https://elsewhere.example"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # Without named origins (the session's app), no CORS header at all.
    plain = client.get("/v1/model", headers={"Origin": ORIGIN})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_the_key_comes_from_a_file_or_the_environment_never_too_short(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\n")
    assert read_api_key(key_file, {}) == KEY
    assert read_api_key(None, {API_KEY_VARIABLE: KEY}) == KEY
    assert read_api_key(None, {}) is None
    with pytest.raises(MultifieldError, match="at least 16"):
        read_api_key(None, {API_KEY_VARIABLE: "short"})
    with pytest.raises(MultifieldError, match="cannot be read"):
        read_api_key(tmp_path / "missing", {})


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
                                            ("example.org", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback
    if not loopback:
        with pytest.raises(MultifieldError, match="needs an API key"):
            check_access(host, None, no_auth=False)
        check_access(host, KEY, no_auth=False)
        check_access(host, None, no_auth=True)


def test_serve_refuses_a_reachable_bind_without_a_key_in_one_line(trained_bundle):
    runner = CliRunner()
    environment = {API_KEY_VARIABLE: None}
    result = runner.invoke(cli, ["serve", str(trained_bundle), "--host", "0.0.0.0"], env=environment)
    assert result.exit_code == 2 and "needs an API key" in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["serve", str(trained_bundle), "--host", "0.0.0.0", "--no-auth"], env={API_KEY_VARIABLE: KEY})
    assert result.exit_code == 2 and "contradict" in result.output
    result = runner.invoke(cli, ["serve", str(trained_bundle), "--cors-origin", "labels.example.org"], env=environment)
    assert result.exit_code == 2 and "--cors-origin" in result.output and "scheme://host" in result.output
    assert "--api-key" not in [option for option in runner.invoke(cli, ["serve", "--help"]).output.split()]


def test_serve_with_a_key_file_on_all_interfaces(trained_bundle, movie_files, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if key != API_KEY_VARIABLE}
    server = subprocess.Popen(
        [EXECUTABLE, "serve", str(trained_bundle), "--host", "0.0.0.0", "--port", str(port), "--api-key-file", str(key_file),
         "--batch-sizes", "1,4", "--no-access-log"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:  # open: no key
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready within 180 s"
            time.sleep(0.2)
        body = {"records": read_records(movie_files["test"], 1)}
        unauthenticated = [httpx.post(f"{url}/v1/predict", json=body, headers=headers, timeout=30).status_code
                           for headers in ({}, bearer("wrong-key-of-some-length"), bearer(KEY.upper()))]
        assert unauthenticated == [401, 401, 401]
        assert httpx.post(f"{url}/v1/predict", json=body, headers=bearer(KEY), timeout=30).status_code == 200
        assert KEY not in " ".join(Path(f"/proc/{server.pid}/cmdline").read_text().split("\0"))
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "needs the API key" in output and KEY not in output


def test_the_api_description_says_a_key_is_needed_only_when_it_is(keyed, client):
    assert "Authorization: Bearer KEY" in keyed.get("/openapi.json", headers=bearer(KEY)).json()["info"]["description"]
    assert "Authorization: Bearer" not in client.get("/openapi.json").json()["info"]["description"]
