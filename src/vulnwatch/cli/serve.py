"""``vulnwatch serve``: the dashboard and HTTP API (:mod:`vulnwatch.web`) under uvicorn, reached
through :mod:`vulnwatch.web.interface` (entry points use one another only by their interface)."""

from __future__ import annotations

from typing import Optional

import typer

from .. import logs
from .app import EXIT_CONFIG, app, load
from .common import err_console

_LOOPBACK = ("127.", "::1", "localhost")


@app.command()
def serve(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default: web.host, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="TCP port (default: web.port, 8080)."),
) -> None:
    """Dashboard and HTTP API over the state store (read-only; see docs/dashboard.md)."""
    from ..store.interface import StoreError
    from ..web.interface import WebUnavailable, create_app, run

    cfg = load(ctx.obj)
    host = host or cfg.web.host
    port = port or cfg.web.port
    try:
        web_app = create_app(cfg)
    except WebUnavailable as e:
        err_console.print(str(e), highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    except StoreError as e:
        err_console.print(f"[bold red]state store error[/]\n{logs.redact(str(e))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    if not cfg.web.auth_required and not host.startswith(_LOOPBACK):
        err_console.print(f"warning: serving on {host} without authentication: anyone who can reach it can read "
                          "the findings; set web.token or web.username/web.password", highlight=False)
    err_console.print(f"vulnwatch dashboard on http://{host}:{port}/ (state {cfg.state.display_url()}, "
                      f"{'writes enabled' if cfg.web.write_token else 'read-only'})", highlight=False)
    run(web_app, host, port)
