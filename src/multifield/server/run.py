"""Starting the server: one process, or several uvicorn workers that each load the bundle."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import uvicorn

from multifield.bundle import load_bundle
from multifield.server.app import BUNDLE_VARIABLE, SETTINGS_VARIABLE, create_app
from multifield.server.auth import API_KEY_VARIABLE, check_access, is_loopback
from multifield.server.logs import log_to_console
from multifield.server.settings import ServerSettings
from multifield.server.shutdown import DrainingServer


def serve(
    bundle_dir: str | os.PathLike,
    settings: ServerSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: bool = False,
    announce=print,
    api_key: str | None = None,
    no_auth: bool = False,
) -> None:
    """Load the bundle (raising ``BundleError`` if it is missing or untrusted), then serve it until stopped.

    A ``host`` other machines can reach needs ``api_key``, unless ``no_auth`` (``server/auth.py``). SIGTERM
    drains: the requests in flight are answered (for at most ``settings.drain_seconds``), then it returns.

    With ``workers > 1``, each uvicorn worker process loads and warms up its own copy of the model; the
    bundle is loaded here once first, so that a bad bundle is reported before any worker starts.
    """
    settings = settings or ServerSettings()
    bundle_dir = Path(bundle_dir).resolve()
    check_access(host, api_key, no_auth)
    log_to_console()
    if not is_loopback(host):
        said = "every request but /healthz needs the API key" if api_key else "--no-auth: anyone who can connect is served"
        announce(f"warning: listening on {host}: other machines can reach this server; {said}")
    if workers == 1:
        app = create_app(bundle_dir, settings, api_key=api_key)
        announce(f"serving {bundle_dir} at http://{_url_host(host)}:{port} (API docs at /docs); warming up")
        config = uvicorn.Config(app, host=host, port=port, access_log=access_log, log_level="info")
        # Past the deadline, the queued requests are refused (503), the batch in progress finishes.
        give_up = functools.partial(app.state.batcher.stop, timeout=0)
        DrainingServer(config, app.state.draining, settings.drain_seconds, give_up).run()
        return
    load_bundle(bundle_dir)  # refuse a bad bundle before starting the workers
    os.environ[BUNDLE_VARIABLE] = str(bundle_dir)
    os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
    if api_key is not None:
        os.environ[API_KEY_VARIABLE] = api_key  # read by each worker; the environment is private to this user
    else:
        os.environ.pop(API_KEY_VARIABLE, None)
    announce(f"serving {bundle_dir} at http://{_url_host(host)}:{port} with {workers} workers (API docs at /docs)")
    uvicorn.run(
        "multifield.server.app:create_app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=settings.drain_seconds,  # uvicorn's own drain; /healthz does not say so here
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
