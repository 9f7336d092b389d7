"""Draining on SIGTERM: stop accepting, answer every request in flight or queued, exit 0 within a bound.

uvicorn already stops listening on SIGTERM and waits for open requests; ``DrainingServer`` adds what a load
balancer and a supervisor need: ``/healthz`` answers 503 ``{"status": "draining"}`` from the signal on; the
requests still waiting for the model after ``drain_seconds`` get a 503 ("shutting down", ``Retry-After``)
rather than a dropped connection; only what is still running ``GRACE_SECONDS`` later (the model's batch in
progress) is cancelled; and the process exits 0 (uvicorn raises the signal again after its shutdown, which
would end the process with -SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Callable

import uvicorn

logger = logging.getLogger("multifield.server")

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_SECONDS = 5.0  # after the drain deadline: for the 503 answers, and the model's batch in progress
# Between closing the listening socket and closing idle connections, until no new request has been read for
# this long: uvicorn closes a connection whose request it has not read yet as idle, and a busy event loop may
# not yet have read a request that a client sent before the signal.
SETTLE_SECONDS = 0.5


class DrainingServer(uvicorn.Server):
    """A uvicorn server that sets ``draining`` on the first SIGTERM or SIGINT and then shuts down gracefully:
    ``give_up`` is called once ``drain_seconds`` have passed (to answer the requests still queued), and
    the tasks still running ``GRACE_SECONDS`` later are cancelled. The ``config``'s own
    ``timeout_graceful_shutdown`` is replaced. A second SIGINT (Ctrl+C twice) forces the exit at once, as in uvicorn.
    """

    def __init__(self, config: uvicorn.Config, draining: threading.Event, drain_seconds: float, give_up: Callable[[], None]):
        config.timeout_graceful_shutdown = drain_seconds + GRACE_SECONDS
        super().__init__(config)
        self.draining = draining
        self.drain_seconds = drain_seconds
        self.give_up = give_up

    async def shutdown(self, sockets=None) -> None:
        deadline = asyncio.get_running_loop().call_later(self.drain_seconds, self._give_up)
        for server in self.servers:
            server.close()  # no new connections from now on
        await self._settle()
        try:
            await super().shutdown(sockets)
        finally:
            deadline.cancel()

    async def _settle(self) -> None:
        """Wait until no request has started for ``SETTLE_SECONDS`` (each starts a task), at most ``drain_seconds``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.drain_seconds
        known, quiet_since = set(self.server_state.tasks), loop.time()
        while loop.time() < end and loop.time() - quiet_since < SETTLE_SECONDS:
            await asyncio.sleep(0.05)
            current = set(self.server_state.tasks)
            if current - known:
                quiet_since = loop.time()
            known |= current

    def _give_up(self) -> None:
        logger.warning("draining: %s s passed; the requests still waiting for the model are answered 503", self.drain_seconds)
        self.give_up()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig in DRAIN_SIGNALS and not self.should_exit:
            self.draining.set()
            logger.info("%s: draining: no new connections; answering the requests in flight (at most %s s)",
                        signal.Signals(sig).name, self.config.timeout_graceful_shutdown)
            self.should_exit = True
            return
        super().handle_exit(sig, frame)
