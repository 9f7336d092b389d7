"""The FastAPI application of ``multifield serve``: ``POST /v1/predict``, ``GET /v1/model``, ``GET /healthz``,
and the web page at ``GET /`` (``server/page.py``)."""

import asyncio
import json
import logging
import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from multifield.compilation_cache import enable_compilation_cache
from multifield.errors import MultifieldError
from multifield.server.api_docs import add_docs_routes
from multifield.server.auth import API_KEY_VARIABLE, ApiKeyMiddleware
from multifield.server.body_limit import BodyLimitMiddleware
from multifield.server.direct_route import DirectRoute
from multifield.server.logs import log_to_console
from multifield.server.micro_batcher import MicroBatcher, Overloaded
from multifield.server.page import add_page_routes
from multifield.server.schemas import (
    ErrorResponse,
    Health,
    ModelInfo,
    PredictResponse,
    allowed_values,
    record_models,
)
from multifield.server.server_timing import ServerTimingMiddleware
from multifield.server.serving_model import ServingModel
from multifield.server.settings import ServerSettings
from multifield.version import __version__

logger = logging.getLogger("multifield.server")

BUNDLE_VARIABLE = "MULTIFIELD_SERVE_BUNDLE"
SETTINGS_VARIABLE = "MULTIFIELD_SERVE_SETTINGS"
PREDICT_PATH = "/v1/predict"
MAX_DETAILS = 50

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}


def _error(status: int, code: str, message: str, details: list | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or []}}, status_code=status, headers=headers
    )


def _json_bytes(value) -> bytes:
    """``value`` as compact UTF-8 JSON, by orjson; ids past 64 bits, which orjson refuses, by ``json``."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _description(model: ServingModel, settings: ServerSettings, keyed: bool = False) -> str:
    config = model.config
    fields = ", ".join(f"`{name}` ({field.kind})" for name, field in config.fields.items())
    return f"""Predicts the labels of records with the multifield model **{config.name}**
({len(model.predictor.labels)} labels; fields {fields}).

* `POST /v1/predict` with `{{"records": [{{...}}, ...]}}` answers `{{"predictions": [{{"id", "labels", "scores"}}, ...]}}`
  in the same order; `?attention=true` adds each attention field's `[word, weight]` pairs.
* Every field of a record is optional (missing or null means unknown), and so is `{config.id_field}`, which is echoed
  back (null if absent). **Keys that are not fields of the model are ignored**, so records may carry their labels
  or other columns.
* Limits: at most {settings.max_records} records per request, {settings.max_field_chars} characters per field,
  {settings.max_body_bytes} bytes per body. Text beyond the tokens a field reads (`GET /v1/model`) is cut off, as in training.
* Every error answer has the body `{{"error": {{"code", "message", "details": [{{"location", "problem", "allowed"}}]}}}}`.
  Bad input gets a 4xx: 400 (not JSON, not UTF-8), 413 (body too large), 415 (Content-Type not JSON), 422 (does not match the
  schema). 503 with `Retry-After` means the server is busy (or still warming up or draining, for `/healthz`).
{_KEY_NOTE if keyed else ""}* Concurrent requests are batched together for the model; a record's prediction does not depend on the records
  it is batched with.
"""


_KEY_NOTE = """* This server needs its API key: every request but `GET /healthz` (and the web page's own files) without
  `Authorization: Bearer KEY` gets 401.
"""


def _location(loc: tuple) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _allowed(key: tuple, allowed: dict[str, str], settings: ServerSettings) -> str | None:
    if key == ("body",):
        return 'a JSON object {"records": [...]}'
    if key == ("body", "records"):
        return f"a list of 1 to {settings.max_records} records"
    if len(key) == 3 and key[1] == "records":
        return "an object whose keys are the model's fields (see GET /v1/model); other keys are ignored"
    if len(key) == 4 and key[1] == "records":
        return allowed.get(key[3])
    if key == ("query", "attention"):
        return "true or false"
    return None


def validation_details(errors: list[dict], allowed: dict[str, str], settings: ServerSettings) -> list[dict]:
    """pydantic's errors, one per place in the request (a union's alternatives folded into one), without
    the input itself (which may be megabytes)."""
    groups: dict[tuple, list[dict]] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        key = loc[:4] if len(loc) > 4 and loc[:2] == ("body", "records") else loc
        groups.setdefault(key, []).append(error)
    details = []
    for key, group in groups.items():
        telling = [error for error in group if not error.get("type", "").endswith("_type")]
        error = telling[0] if telling else group[0]
        problem = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        item = [part for part in tuple(error.get("loc", ()))[len(key) :] if isinstance(part, int)]
        if item:
            problem = f"item {item[0]}: {problem}"
        if not telling and error.get("type") != "missing" and "input" in error:
            problem = f"{problem}; got {_json_kind(group[0]['input'])}"
        details.append({"location": _location(key), "problem": problem, "allowed": _allowed(key, allowed, settings)})
    return details


def create_app(bundle_dir: str | os.PathLike, settings: ServerSettings | None = None, api_key: str | None = None) -> FastAPI:
    """The application serving the bundle in ``bundle_dir``; with ``api_key``, every request but ``/healthz``
    and the web page's files needs ``Authorization: Bearer API_KEY`` (``server/auth.py``).

    The bundle is loaded here, so that a missing or untrusted bundle raises (a ``BundleError``) before a
    server starts; the model is warmed up on the model thread when the application starts, and
    ``/healthz`` answers 503 until that is done, and again once ``app.state.draining`` is set (on SIGTERM).
    """
    settings = settings or ServerSettings()
    model = ServingModel(bundle_dir, settings)
    batcher = MicroBatcher(model.predict, settings, first=model.warm_up)
    PredictRequest = record_models(model.config, settings)[1]
    allowed = allowed_values(model.config, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop)

    app = FastAPI(
        title=f"multifield: {model.config.name}",
        version=__version__,
        description=_description(model, settings, keyed=api_key is not None),
        lifespan=lifespan,
        docs_url=None,  # served by add_docs_routes from files shipped with the package, not from a CDN
        redoc_url=None,
    )
    app.state.model = model
    app.state.batcher = batcher
    app.state.settings = settings
    app.state.draining = threading.Event()
    # Outermost last: the timing, then CORS (a browser's preflight carries no key), the key, the body's limits.
    app.add_middleware(BodyLimitMiddleware, settings=settings, json_paths=[PREDICT_PATH])
    if api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"], max_age=600,
        )
    app.add_middleware(ServerTimingMiddleware)  # added last: outermost, so it times the body checks too

    add_error_handlers(app, allowed, settings)
    add_api_routes(app, model, batcher, settings, PredictRequest)
    return app


def add_error_handlers(app: FastAPI, allowed: dict[str, str], settings: ServerSettings) -> None:
    """Every error answered with the JSON error body: bad JSON 400, schema mismatches 422 with their details,
    unknown paths 404, wrong methods 405, and anything unexpected 500 (logged, never shown)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc: RequestValidationError):
        errors = list(exc.errors())
        invalid_json = [error for error in errors if error.get("type") == "json_invalid"]
        if invalid_json:
            error = invalid_json[0]
            position = error.get("loc", ("body", "?"))[-1]
            reason = (error.get("ctx") or {}).get("error", "JSON decode error")
            return _error(
                400,
                "invalid_json",
                f"the body is not valid JSON ({reason} at character {position}); "
                'send a JSON object {"records": [...]}',
            )
        details = validation_details(errors, allowed, settings)
        first = details[0]
        message = f"{first['location']}: {first['problem']}"
        if first["allowed"]:
            message += f" (allowed: {first['allowed']})"
        if len(details) > 1:
            message += f"; and {len(details) - 1} more problem{'s' if len(details) > 2 else ''}"
        return _error(422, "invalid_request", message, details[:MAX_DETAILS])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        status, detail = exc.status_code, exc.detail
        if status == 400 and detail == "There was an error parsing the body":
            return _error(
                400,
                "invalid_json",
                'the body could not be parsed as JSON (nested too deeply, or a number too long); send a JSON object {"records": [...]}',
            )
        if status == 404:
            return _error(404, "not_found", f"no endpoint {request.url.path}; the API is described at /docs", headers=exc.headers)
        if status == 405:
            return _error(
                405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}", headers=exc.headers
            )
        return _error(status, f"http_{status}", str(detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request, exc: Exception):
        logger.exception("error answering %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "the server failed to answer this request; the error is in its log")


def add_api_routes(app: FastAPI, model: ServingModel, batcher: MicroBatcher, settings: ServerSettings, PredictRequest) -> None:
    """``POST /v1/predict``, ``GET /v1/model``, ``GET /healthz``, the web page and the API docs."""
    info = model.info()

    error_responses = {
        400: {"model": ErrorResponse, "description": "The body is not JSON, or not UTF-8."},
        413: {"model": ErrorResponse, "description": "The body is larger than the limit."},
        415: {"model": ErrorResponse, "description": "The body is not declared as JSON."},
        422: {"model": ErrorResponse, "description": "The request does not match the schema."},
        503: {"model": ErrorResponse, "description": "Too many requests are waiting; retry later.", "headers": _RETRY_AFTER},
    }

    async def predict(
        body: PredictRequest,  # type: ignore[valid-type]
        attention: bool = Query(False, description="Add each attention field's [word, weight] pairs."),
    ):
        records = body.model_dump(by_alias=True)["records"]
        batcher.start()
        try:
            predictions = await batcher.submit_async(records, attention)
        except Overloaded as error:
            return _error(
                503,
                "overloaded",
                f"the server is busy: {error}; retry in {settings.retry_after_seconds} s",
                headers={"Retry-After": str(settings.retry_after_seconds)},
            )
        except MultifieldError as error:
            return _error(422, "invalid_record", str(error))
        return Response(_json_bytes({"predictions": predictions}), media_type="application/json")

    # Declared as FastAPI declares it (the schema and docs come from it), read and validated by DirectRoute.
    app.router.add_api_route(
        PREDICT_PATH,
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses=error_responses,
        summary="Predict the labels of records",
        tags=["predict"],
        route_class_override=DirectRoute,
    )

    @app.get("/v1/model", response_model=ModelInfo, summary="Describe the served model", tags=["model"])
    async def describe_model():
        return JSONResponse(info)

    add_page_routes(app, model.config)  # GET / (the web page) and GET /v1/example
    add_docs_routes(app, f"multifield: {model.config.name}")  # GET /docs, Swagger UI without a CDN

    @app.get(
        "/healthz",
        response_model=Health,
        responses={
            503: {"model": Health, "description": "Not ready: the model is warming up (or failed to), or the server is draining "
                  "before it stops.", "headers": _RETRY_AFTER}
        },
        summary="Readiness: 200 once the model is loaded and warmed up",
        tags=["health"],
    )
    async def healthz():
        if app.state.draining.is_set():
            return JSONResponse({"status": "draining"}, status_code=503, headers={"Retry-After": str(settings.retry_after_seconds)})
        batcher.start()
        if model.ready:
            return JSONResponse({"status": "ok"})
        return JSONResponse(
            {"status": model.status}, status_code=503, headers={"Retry-After": str(settings.retry_after_seconds)}
        )


def create_app_from_environment() -> FastAPI:
    """``create_app`` for uvicorn's worker processes, which read the bundle and settings from the environment."""
    log_to_console()
    enable_compilation_cache()  # as the command line does in the parent process: workers share the cache
    settings = ServerSettings.model_validate(json.loads(os.environ.get(SETTINGS_VARIABLE, "{}")))
    return create_app(Path(os.environ[BUNDLE_VARIABLE]), settings, api_key=os.environ.get(API_KEY_VARIABLE))
