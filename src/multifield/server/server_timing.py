"""``ServerTimingMiddleware``: tells the client how long the server spent on its request."""

from __future__ import annotations

import time


class ServerTimingMiddleware:
    """ASGI middleware adding ``Server-Timing: app;dur=<milliseconds>`` to every HTTP answer: the time from
    the request reaching the application to its answer starting, queueing for the model included. Set
    beside the latency a client measures, it separates the server's share from the network's and the
    client's own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message):
            if message["type"] == "http.response.start":
                spent = f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", spent)]}
            await send(message)

        await self.app(scope, receive, timed_send)
