"""``BodyLimitMiddleware``: refuses a request body that is too large, before anything parses it."""

from __future__ import annotations

import json
from typing import Iterable

from multifield.server.settings import ServerSettings


def error_body(status: int, code: str, message: str, details: list | None = None) -> tuple[int, bytes]:
    return status, json.dumps({"error": {"code": code, "message": message, "details": details or []}}).encode()


class BodyLimitMiddleware:
    """ASGI middleware that reads a request body up to ``max_body_bytes`` and hands it on, or answers 413.

    A ``Content-Length`` over the limit is refused without reading a byte; a body sent in chunks (or with a
    wrong length) is counted while it is read, and refused as soon as it passes the limit. On the JSON
    endpoints (POST to ``json_paths``) the body must also be declared JSON (a request without ``Content-Type``, as a
    cross-site form can send, is refused with 415) and be UTF-8 (RFC 8259; otherwise 400). The body is held
    in memory, never on disk.

    Args:
        app: the ASGI application to call.
        settings: its ``max_body_bytes`` is the limit.
        json_paths: the paths whose bodies must be UTF-8 JSON.
    """

    def __init__(self, app, settings: ServerSettings, json_paths: Iterable[str] = ()):
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.json_paths = frozenset(json_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await send_answer(send, *error_body(400, "invalid_content_length", "the Content-Length header is not a number"))
                return
            if int(declared) > limit:
                await send_answer(send, *_too_large(int(declared), limit, declared=True))
                return
        json_body = scope["method"] == "POST" and scope["path"] in self.json_paths
        if json_body:
            content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type != b"application/json" and not content_type.endswith(b"+json"):
                said = f"the body is {content_type.decode('latin-1')}" if content_type else "the request has no Content-Type"
                await send_answer(
                    send,
                    *error_body(415, "unsupported_media_type", f"{said}; send JSON with Content-Type: application/json"),
                )
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_answer(send, *_too_large(size, limit, declared=False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        if json_body:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as error:
                await send_answer(
                    send,
                    *error_body(
                        400,
                        "invalid_encoding",
                        f"the body is not UTF-8 (byte {error.start} cannot be decoded); send JSON encoded as UTF-8",
                    ),
                )
                return

        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(size: int, limit: int, declared: bool) -> tuple[int, bytes]:
    said = f"declares {size} bytes" if declared else f"passed {limit} bytes"
    return error_body(
        413,
        "body_too_large",
        f"the request body {said}; at most {limit} bytes are accepted: send fewer records per request",
    )


async def send_answer(send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Answer a request with ``body`` (JSON) from ASGI middleware, closing the connection (its body may be unread)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
