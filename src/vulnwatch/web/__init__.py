"""The dashboard and HTTP API of ``vulnwatch serve`` (FastAPI, Jinja2 templates, no CDN).

* :mod:`.app` — routes: pages, ``/api/v1``, ``/metrics``, ``/healthz``, ``/readyz``;
* :mod:`.service` — what the pages show, from the store's read methods;
* :mod:`.security` — auth, CSRF, write token, response headers;
* :mod:`.metrics` — the Prometheus text format;
* :mod:`.charts` — sparklines; ``static/charts.js`` draws the larger charts;
* :mod:`.interface` — what the CLI uses: make the app, run it (loads FastAPI only then).

See ``docs/dashboard.md``.
"""

from __future__ import annotations


def create_app(cfg, store=None):
    """See :func:`vulnwatch.web.app.create_app`."""
    from .app import create_app as make

    return make(cfg, store)


__all__ = ["create_app"]
