"""The web page's routes without a browser: the page and its assets, their headers, and GET /v1/example."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient
from server_helpers import assert_error_body

from multifield.server.page import add_page_routes, example_sample

REPO = Path(__file__).resolve().parents[2]


def test_page_and_assets_are_served_from_this_server_only(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert '<script src="/static/page.js"' in page.text and 'href="/static/page.css"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for path, kind in (("/static/page.js", "text/javascript"), ("/static/page.css", "text/css")):
        asset = client.get(path)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert "http://" not in asset.text and "https://" not in asset.text
    assert "innerHTML" not in client.get("/static/page.js").text  # answers are built with textContent
    assert_error_body(client.get("/static/examples.json"), 404, "not_found")
    css = client.get("/static/page.css").text
    assert client.get("/static/page.css", params={"name": "examples.json"}).text == css  # no file from the request
    assert_error_body(client.get("/static/../app.py"), 404)
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_example_holds_the_models_fields_and_the_true_labels(client):
    fields = set(client.get("/v1/model").json()["fields"])
    body = client.get("/v1/example", params={"index": 3}).json()
    count = body["count"]
    assert count == len(example_sample()["records"]) and body["index"] == 3
    assert set(body["record"]) == fields | {"id"}
    assert body["labels"] and "TMDb" in body["source"]
    assert client.get("/v1/example", params={"index": 3 + count}).json()["record"] == body["record"]
    assert 0 <= client.get("/v1/example").json()["index"] < count
    assert_error_body(client.get("/v1/example", params={"index": -1}), 422, "invalid_request")


def test_no_example_for_a_model_without_the_movies_fields():
    app = FastAPI()
    config = SimpleNamespace(fields={"subject": None, "body": None}, labels=SimpleNamespace(field="tags"), id_field="id")
    add_page_routes(app, config)
    response = TestClient(app).get("/v1/example")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_examples"


def test_the_static_files_are_package_data():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "server/static/*" in package_data["multifield"]
    static = REPO / "src" / "multifield" / "server" / "static"
    assert {"index.html", "page.css", "page.js", "examples.json"} <= {path.name for path in static.iterdir()}
