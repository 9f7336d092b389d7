"""DirectRoute reads a request as FastAPI's own route does: the same arguments, the same validation errors."""

from typing import Optional

import pytest
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from multifield.server.direct_route import DirectRoute


class Item(BaseModel):
    name: Optional[str] = Field(None, max_length=5)


class Body(BaseModel):
    items: list[Item] = Field(min_length=1, max_length=2)


async def endpoint(body: Body, attention: bool = Query(False)):
    return JSONResponse({"items": body.model_dump()["items"], "attention": attention})


def client(route_class) -> TestClient:
    app = FastAPI()
    app.router.add_api_route("/p", endpoint, methods=["POST"], route_class_override=route_class)

    @app.exception_handler(RequestValidationError)
    async def errors(request, exc: RequestValidationError):
        return JSONResponse([{key: error.get(key) for key in ("type", "loc", "msg", "ctx")} for error in exc.errors()], 422)

    return TestClient(app)


REQUESTS = [
    ("", b'{"items": [{"name": "a"}, {}]}'),
    ("?attention=true", b'{"items": [{"name": "a"}]}'),
    ("?attention=0", b'{"items": [{"name": "a"}]}'),
    ("?attention=maybe", b'{"items": [{"name": "a"}]}'),
    ("?attention=maybe", b'{"items": []}'),
    ("", b""),
    ("", b'{"items": [{"name": "a"'),
    ("", b"[1, 2]"),
    ("", b'{"items": [{"name": 3}, {"name": "toolong"}, {}]}'),
    ("", b'{"other": 1}'),
    ("", b"null"),
    ("", b"[" * 100_000),
]


@pytest.mark.parametrize(("query", "body"), REQUESTS)
def test_direct_route_answers_as_fastapi_does(query, body):
    headers = {"Content-Type": "application/json"}
    expected = client(None).post(f"/p{query}", content=body, headers=headers)
    got = client(DirectRoute).post(f"/p{query}", content=body, headers=headers)
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())


def test_the_schema_is_fastapis():
    assert client(DirectRoute).get("/openapi.json").json() == client(None).get("/openapi.json").json()
