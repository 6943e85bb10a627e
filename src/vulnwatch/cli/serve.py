"""``vulnwatch serve``: the dashboard and HTTP API (:mod:`vulnwatch.web`) under uvicorn."""

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
    cfg = load(ctx.obj)
    try:
        import uvicorn

        from ..web.app import create_app
    except ImportError as e:
        err_console.print(f"vulnwatch serve needs the web extra: pip install 'vulnwatch[web]' ({e.name} is missing)")
        raise typer.Exit(EXIT_CONFIG)
    from ..store.interface import StoreError

    host = host or cfg.web.host
    port = port or cfg.web.port
    try:
        web_app = create_app(cfg)
    except StoreError as e:
        err_console.print(f"[bold red]state store error[/]\n{logs.redact(str(e))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    if not cfg.web.auth_required and not host.startswith(_LOOPBACK):
        err_console.print(f"warning: serving on {host} without authentication: anyone who can reach it can read "
                          "the findings; set web.token or web.username/web.password", highlight=False)
    err_console.print(f"vulnwatch dashboard on http://{host}:{port}/ (state {cfg.state.display_url()}, "
                      f"{'writes enabled' if cfg.web.write_token else 'read-only'})", highlight=False)
    uvicorn.run(web_app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False)
