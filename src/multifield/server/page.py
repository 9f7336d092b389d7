"""The web page of ``multifield serve`` (``GET /``: a form with the model's fields, answered through
``POST /v1/predict?attention=true``) and ``GET /v1/example``, a random movie for its "random example" button.

The page is plain HTML, CSS and JavaScript shipped as package data in ``static/``: no build step, nothing
loaded from elsewhere (its Content-Security-Policy allows this server only). The examples are a fixed
sample of the bundled movies' test split, shipped in ``static/examples.json``; no client-named file is read.
"""

from __future__ import annotations

import json
import random
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from multifield.server.schemas import ErrorResponse

STATIC_FILES = {"index.html": "text/html", "page.css": "text/css", "page.js": "text/javascript"}
# The page, its stylesheet and its script come from this server only; the script builds the answer with DOM
# calls (textContent), never from markup, so a record holding <script> shows as text.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class Example(BaseModel):
    """A movie for the form: its fields that the model reads, and its true labels."""

    record: dict[str, Any] = Field(description="The example's id and the fields of the model it has.")
    labels: list[str] | None = Field(None, description="Its true labels, when the model's label field is theirs.")
    index: int = Field(description="Its position in the sample (GET /v1/example?index=N gives it again).")
    count: int = Field(description="The examples in the sample.")
    source: str = Field(description="Where the examples come from, and their terms.")


@cache
def static_file(name: str) -> bytes:
    """A file shipped in ``server/static/`` (``name`` may hold ``/``), read once."""
    return resources.files("multifield.server").joinpath("static", *name.split("/")).read_bytes()


def add_static_route(app: FastAPI, url: str, name: str, media_type: str, headers: dict[str, str]) -> None:
    """``GET url`` answers the shipped file ``name``. The file is bound here, not taken from the request:
    the endpoint has no parameters at all."""

    async def asset():
        return Response(static_file(name), media_type=f"{media_type}; charset=utf-8", headers=headers)

    app.add_api_route(url, asset, methods=["GET"], include_in_schema=False)


@lru_cache(maxsize=1)
def example_sample() -> dict:
    return json.loads(static_file("examples.json"))


def add_page_routes(app: FastAPI, config) -> None:
    """``GET /`` (the page), ``GET /static/page.css``, ``GET /static/page.js`` and ``GET /v1/example``."""
    sample = example_sample()
    keys = [name for name in config.fields if any(name in record for record in sample["records"])]
    label_field = config.labels.field

    @app.get("/", include_in_schema=False)
    async def page():
        return Response(static_file("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    for name, media_type in STATIC_FILES.items():
        if name != "index.html":
            add_static_route(app, f"/static/{name}", name, media_type, PAGE_HEADERS)

    @app.get(
        "/v1/example",
        response_model=Example,
        responses={404: {"model": ErrorResponse, "description": "No example has a field of this model."}},
        summary="A random example record (for the web page's form)",
        tags=["model"],
    )
    async def example(
        index: int | None = Query(None, ge=0, description="Which example (modulo their number); random if absent."),
    ):
        records = sample["records"]
        if not keys:
            return JSONResponse(
                {"error": {"code": "no_examples", "message": "the shipped examples (movies) have none of this model's fields",
                           "details": []}},
                status_code=404,
            )
        position = random.randrange(len(records)) if index is None else index % len(records)
        chosen = records[position]
        record = {config.id_field: chosen.get("id")}
        record.update({name: chosen[name] for name in keys if name in chosen})
        labels = chosen.get(label_field) if label_field in chosen else None
        return JSONResponse(
            {"record": record, "labels": labels, "index": position, "count": len(records), "source": sample["about"]}
        )
