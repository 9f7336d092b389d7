"""Draining on SIGTERM: stop accepting, answer every request in flight or queued, exit 0 within a bound.

uvicorn already stops listening on SIGTERM and waits for open requests (up to ``timeout_graceful_shutdown``,
here ``ServerSettings.drain_seconds``); ``DrainingServer`` adds what a load balancer and a supervisor need:
``/healthz`` answers 503 ``{"status": "draining"}`` from the signal on, and the process exits 0 once drained
(uvicorn raises the signal again after its shutdown, which would end the process with -SIGTERM).
The model's queue is only closed after the open requests are answered (the application's lifespan ends last).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

logger = logging.getLogger("multifield.server")

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class DrainingServer(uvicorn.Server):
    """A uvicorn server that sets ``draining`` on the first SIGTERM or SIGINT and then shuts down gracefully.

    A second SIGINT (Ctrl+C twice) still forces the exit at once, as in uvicorn.
    """

    def __init__(self, config: uvicorn.Config, draining: threading.Event):
        super().__init__(config)
        self.draining = draining

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig in DRAIN_SIGNALS and not self.should_exit:
            self.draining.set()
            logger.info("%s: draining: no new connections; answering the requests in flight (at most %s s)",
                        signal.Signals(sig).name, self.config.timeout_graceful_shutdown)
            self.should_exit = True
            return
        super().handle_exit(sig, frame)
