"""``DirectRoute``: a FastAPI route that reads and validates its JSON body and query in a few calls of its own.

``POST /v1/predict`` answers single records in about a millisecond of model time, so what FastAPI does around
each request (solving the endpoint's dependencies, parsing the content type again, building the endpoint's
context) is most of a request's cost under concurrent clients. The route keeps FastAPI's declaration, so the
OpenAPI schema and the API docs are unchanged, and its errors: a body that is not JSON and a request that does
not match the schema raise the same ``RequestValidationError`` (with the same ``type``, ``loc``, ``msg`` and
``ctx``) as FastAPI's own handler, for the application's error handlers to answer.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response


class DirectRoute(APIRoute):
    """A route whose endpoint is ``async def endpoint(body: Model, **query: bool) -> Response``: one pydantic
    model as the JSON body and boolean query parameters with defaults, returning its answer itself.

    The body is parsed with ``json.loads`` and validated with ``Model.model_validate``; each query parameter
    with the validation FastAPI applies to a ``bool``. Everything else (path matching, middleware, exception
    handlers, the schema) is FastAPI's.
    """

    def get_route_handler(self) -> Callable[[Request], Any]:
        parameters = inspect.signature(self.endpoint).parameters
        body_name, body_parameter = next(iter(parameters.items()))
        model: type[BaseModel] = body_parameter.annotation
        flags = {
            name: parameter.default.default if hasattr(parameter.default, "default") else parameter.default
            for name, parameter in list(parameters.items())[1:]
        }
        endpoint = self.endpoint
        boolean = TypeAdapter(bool)

        async def handler(request: Request) -> Response:
            errors: list[dict] = []
            arguments: dict[str, Any] = {}
            for name, default in flags.items():
                given = request.query_params.get(name)
                try:
                    arguments[name] = default if given is None else boolean.validate_python(given)
                except ValidationError as error:
                    errors += [{**item, "loc": ("query", name)} for item in error.errors(include_url=False)]
            data = _json_body(await request.body())
            if data is _MISSING:
                errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
            else:
                try:
                    arguments[body_name] = model.model_validate(data, from_attributes=True)  # as FastAPI validates
                except ValidationError as error:
                    errors += [{**item, "loc": ("body", *item["loc"])} for item in error.errors(include_url=False)]
            if errors:
                raise RequestValidationError(errors, body=None if data is _MISSING else data)
            return await endpoint(**arguments)

        return handler


_MISSING = object()


def _json_body(body: bytes) -> Any:
    """The JSON value of a request body, as FastAPI reads it: an empty body is missing, bad JSON a
    ``json_invalid`` error at its character, a body json cannot parse otherwise a 400."""
    if not body:
        return _MISSING
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", error.pos), "msg": "JSON decode error", "input": {},
              "ctx": {"error": error.msg}}],
            body=error.doc,
        ) from error
    except Exception as error:  # nested too deeply (RecursionError), and the like
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from error
