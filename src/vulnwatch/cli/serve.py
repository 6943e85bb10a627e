"""``vulnwatch serve``: the dashboard and HTTP API (:mod:`vulnwatch.web`) under uvicorn, reached
through :mod:`vulnwatch.web.interface` (entry points use one another only by their interface)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import logs
from .app import EXIT_ERROR, app, config_option, exit_codes, fail, load, option, quiet_option, verb_state
from .common import report

_LOOPBACK = ("127.", "::1", "localhost")

SERVE_SECTIONS = ("state", "web")
"""What ``serve`` reads of the configuration: the state store it shows, and its own section."""


@app.command(epilog=exit_codes("0    stopped", "2    bad usage or configuration",
                               "3    could not serve: the web extra is not installed, the state store cannot "
                               "be used"))
def serve(
    ctx: typer.Context,
    host: Optional[str] = option(None, "--host", help="Address to listen on (default: web.host, 127.0.0.1)."),
    port: Optional[int] = option(None, "--port", min=1, max=65535, help="TCP port (default: web.port, 8080)."),
    config: Optional[Path] = config_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Dashboard and HTTP API over the state store (read-only; see docs/dashboard.md)."""
    from ..store.interface import StoreError
    from ..web.interface import WebUnavailable, create_app, run

    state = verb_state(ctx, config, quiet)
    cfg = load(state, SERVE_SECTIONS)
    host = host or cfg.web.host
    port = port or cfg.web.port
    try:
        web_app = create_app(cfg)
    except WebUnavailable as e:
        fail(state, EXIT_ERROR, "web_unavailable", str(e))
    except StoreError as e:
        fail(state, EXIT_ERROR, "store_error", f"state store error: {logs.redact(str(e))}")
    if not cfg.web.auth_required and not host.startswith(_LOOPBACK):
        report(state, "warning", "no_auth", f"warning: serving on {host} without authentication: anyone who can "
                                            "reach it can read the findings; set web.token or web.username/web.password",
               host=host)
    report(state, "info", "serving", f"vulnwatch dashboard on http://{host}:{port}/ (state {cfg.state.display_url()}, "
                                      f"{'writes enabled' if cfg.web.write_token else 'read-only'})",
           host=host, port=port)
    run(web_app, host, port)
