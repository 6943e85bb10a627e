"""What the other entry points use of the web package (``vulnwatch serve`` in the CLI): make
the app of a config, and run it. FastAPI, Jinja2 and uvicorn load only here, on demand, so the
CLI starts without them and says clearly when the ``web`` extra is missing."""

from __future__ import annotations

from typing import Any


class WebUnavailable(RuntimeError):
    """The ``web`` extra is not installed; the message names the missing module."""


def create_app(cfg: Any, store: Any = None) -> Any:
    """The ASGI app of ``cfg`` (see :func:`vulnwatch.web.app.create_app`); raises
    :class:`WebUnavailable`, or :class:`~vulnwatch.store.interface.StoreError` when the store
    cannot be opened."""
    try:
        import uvicorn  # noqa: F401  (needed to run it)

        from .app import create_app as make
    except ImportError as e:
        raise WebUnavailable(f"vulnwatch serve needs the web extra: pip install 'vulnwatch[web]' "
                             f"({e.name} is missing)") from None
    return make(cfg, store)


def run(app: Any, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False)
