"""The API docs at ``GET /docs`` (Swagger UI over ``/openapi.json``), served from this server.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN, so on a machine without internet access it shows
a blank page. Here the page loads the files of swagger-ui-dist 5 shipped in ``static/swagger-ui/``
(Apache-2.0; ``LICENSE`` and ``NOTICE`` beside them), each bound to its own route.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html

from multifield.server.page import add_static_route

ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
PREFIX = "/static/swagger-ui"


def add_docs_routes(app: FastAPI, title: str) -> None:
    """``GET /docs`` and the two files it loads. Create the app with ``docs_url=None``."""

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{title} - API docs",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    for name, media_type in ASSETS.items():
        add_static_route(app, f"{PREFIX}/{name}", f"swagger-ui/{name}", media_type, {"Cache-Control": "max-age=86400"})
