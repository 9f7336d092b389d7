"""Who may ask the server: an API key, required when other machines can reach it.

``multifield serve`` on a loopback address needs no key; on any other address it refuses to start without
one (``--api-key-file PATH`` or the ``MULTIFIELD_API_KEY`` environment variable: never a command-line
argument, which ``ps`` shows to every user), unless ``--no-auth`` says so. With a key, every request but
``GET /healthz`` and the web page's own files (which hold no model data; the page asks for the key when
its first request is refused) must carry ``Authorization: Bearer KEY``, compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from pathlib import Path
from typing import Mapping

from multifield.errors import MultifieldError
from multifield.server.body_limit import error_body, send_answer

API_KEY_VARIABLE = "MULTIFIELD_API_KEY"
MIN_KEY_CHARS = 16
# Paths answered without a key: the health check (for load balancers) and the page's shell and assets.
OPEN_PATHS = frozenset({"/healthz", "/", "/static/page.css", "/static/page.js"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_api_key(key_file: Path | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The key in ``key_file`` (surrounding whitespace ignored), else in ``MULTIFIELD_API_KEY``, else None."""
    if key_file is not None:
        try:
            key, source = key_file.read_text(encoding="utf-8").strip(), f"--api-key-file {key_file}"
        except (OSError, UnicodeDecodeError) as error:
            raise MultifieldError(f"--api-key-file {key_file}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    elif environ.get(API_KEY_VARIABLE) is not None:
        key, source = environ[API_KEY_VARIABLE].strip(), f"${API_KEY_VARIABLE}"
    else:
        return None
    if len(key) < MIN_KEY_CHARS or not key.isprintable() or any(char.isspace() for char in key):
        raise MultifieldError(
            f"{source}: an API key must be at least {MIN_KEY_CHARS} printable characters without spaces "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return key


def check_access(host: str, api_key: str | None, no_auth: bool) -> None:
    """Refuse to listen where other machines can reach the server without a key, unless ``no_auth``."""
    if no_auth and api_key is not None:
        raise MultifieldError(f"--no-auth and an API key (--api-key-file or ${API_KEY_VARIABLE}) contradict each other; give one")
    if api_key is None and not no_auth and not is_loopback(host):
        raise MultifieldError(
            f"--host {host}: other machines can reach this server, so it needs an API key: put one in a file and pass "
            f"--api-key-file PATH, or set ${API_KEY_VARIABLE}; or pass --no-auth to serve anyone who can connect"
        )


class ApiKeyMiddleware:
    """ASGI middleware answering 401 (the JSON error body, ``WWW-Authenticate: Bearer``) to a request without
    ``Authorization: Bearer KEY``, before its body is read; ``OPEN_PATHS`` pass without a key."""

    def __init__(self, app, api_key: str):
        self.app = app
        self.expected = api_key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                given = credentials.strip() if scheme.lower() == b"bearer" else b""
                break
        if given is not None and hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        problem = "this server needs an API key" if given is None else "the API key is wrong"
        await send_answer(
            send,
            *error_body(401, "unauthorized", f"{problem}: send the header Authorization: Bearer KEY"),
            headers=[(b"www-authenticate", b'Bearer realm="multifield"')],
        )
