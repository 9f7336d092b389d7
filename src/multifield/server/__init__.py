"""``multifield serve``: a FastAPI application that answers predictions over HTTP, batching concurrent requests.

``create_app(bundle_dir, settings)`` builds the application; ``serve`` runs it under uvicorn. FastAPI and
uvicorn come with the ``serve`` extra: ``pip install "multifield[serve]"``.
"""

from multifield.server.settings import ServerSettings


def _require_serving() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise ImportError(f'serving needs FastAPI and uvicorn: pip install "multifield[serve]" ({error})') from None


def create_app(bundle_dir, settings: ServerSettings | None = None, api_key: str | None = None):
    """The FastAPI application serving the bundle in ``bundle_dir``; with ``api_key``, requests need
    ``Authorization: Bearer API_KEY`` (see ``multifield.server.app``)."""
    _require_serving()
    from multifield.server.app import create_app as create

    return create(bundle_dir, settings, api_key=api_key)


def serve(bundle_dir, settings: ServerSettings | None = None, **options) -> None:
    """Serve the bundle in ``bundle_dir`` under uvicorn until stopped (see ``multifield.server.run``)."""
    _require_serving()
    from multifield.server.run import serve as run

    run(bundle_dir, settings, **options)


__all__ = ["ServerSettings", "create_app", "serve"]
