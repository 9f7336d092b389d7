"""Starting the server: one process, or several uvicorn workers that each load the bundle."""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn

from multifield.bundle import load_bundle
from multifield.server.app import BUNDLE_VARIABLE, SETTINGS_VARIABLE, create_app
from multifield.server.logs import log_to_console
from multifield.server.settings import ServerSettings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(
    bundle_dir: str | os.PathLike,
    settings: ServerSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = True,
    announce=print,
) -> None:
    """Load the bundle (raising ``BundleError`` if it is missing or untrusted), then serve it until stopped.

    With ``workers > 1``, each uvicorn worker process loads and warms up its own copy of the model; the
    bundle is loaded here once first, so that a bad bundle is reported before any worker starts.
    """
    settings = settings or ServerSettings()
    bundle_dir = Path(bundle_dir).resolve()
    log_to_console()
    if host not in LOCAL_HOSTS:
        announce(f"warning: listening on {host}: other machines can reach this server, and it has no authentication")
    if workers == 1:
        app = create_app(bundle_dir, settings)
        announce(f"serving {bundle_dir} at http://{_url_host(host)}:{port} (API docs at /docs); warming up")
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info")
        return
    load_bundle(bundle_dir)  # refuse a bad bundle before starting the workers
    os.environ[BUNDLE_VARIABLE] = str(bundle_dir)
    os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
    announce(f"serving {bundle_dir} at http://{_url_host(host)}:{port} with {workers} workers (API docs at /docs)")
    uvicorn.run(
        "multifield.server.app:create_app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
