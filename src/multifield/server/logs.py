"""The server's own log lines (warm-up done, errors) on the console, beside uvicorn's."""

from __future__ import annotations

import logging


def log_to_console() -> None:
    """Show the server's own lines (warm-up done, errors) on the console, as uvicorn shows its own."""
    logger = logging.getLogger("multifield.server")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


__all__ = ["log_to_console"]
