"""The FastAPI application: HTML pages, the JSON API under ``/api/v1``, ``/metrics``,
``/healthz``, ``/readyz`` and the OpenAPI document at ``/openapi.json``.

:func:`create_app` takes the whole :class:`~vulnwatch.config.Config` (``state`` and ``web``,
and the notification sinks for re-delivering a dead letter) and serves from the store opened
read-only; writes go through :func:`vulnwatch.build.build_pipeline`, with a store of their own.
"""

# No `from __future__ import annotations`: FastAPI resolves the route signatures at run time,
# and some of their types are local to create_app.

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from .. import __version__
from ..config import Config
from ..logs import redact
from ..model import Severity
from ..store.interface import FLEET_SORTS, DeliveryStatus, FleetQuery, Store, StoreError
from . import metrics, schemas as S
from .charts import sparkline
from .security import CSRF_COOKIE, HEADERS, WRITE_COOKIE, WRITE_SESSION_SECONDS, Guard
from .service import Conflict, Dashboard, NotFound, ReadOnly, SEVERITIES, image_url, vuln_url

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SeverityName = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "NEGLIGIBLE", "UNKNOWN"]
Sort = Literal[FLEET_SORTS]  # type: ignore[valid-type]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ERRORS = {404: {"model": S.Problem, "description": "Not in the store"},
           503: {"model": S.Problem, "description": "The state store is unavailable"}}


@dataclass(frozen=True)
class FleetParams:
    query: FleetQuery
    page: int


def chart_data(points: list[S.TrendValue]) -> dict[str, Any]:
    """What ``static/charts.js`` draws: a total series and one per severity that is ever non-zero."""
    series = [{"name": "total", "points": [[p.at.isoformat(), p.total] for p in points]}]
    for sev in SEVERITIES:
        values = [getattr(p.counts, sev) for p in points]
        if any(values):
            series.append({"name": sev, "points": [[p.at.isoformat(), v] for p, v in zip(points, values)]})
    return {"series": series}


def create_app(cfg: Config, store: Store | None = None) -> FastAPI:
    """The app over ``store`` (default: the configured store, opened read-only)."""
    from ..build import build_pipeline

    store = store or open_read_only(cfg)
    web = cfg.web
    guard = Guard(web)
    writer = (lambda: build_pipeline(cfg, with_watches=False)) if guard.writable else None
    dash = Dashboard(cfg, store, writer=writer)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals.update(SEVERITIES=SEVERITIES, sparkline=sparkline, version=__version__, vuln_url=vuln_url,
                       image_url=image_url, SORTS=FLEET_SORTS, chart_data=chart_data, writable=guard.writable)
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M:%S UTC") if d else "—"
    env.filters["days"] = lambda v: "—" if v is None else (f"{v:.1f} d" if v >= 1 else f"{v * 24:.1f} h"
                                                           if v * 24 >= 1 else f"{v * 86400:.0f} s")

    app = FastAPI(title="vulnwatch", version=__version__, docs_url=None, redoc_url=None,
                  description="Dashboard and HTTP API over the vulnwatch state store (read-only, except "
                              "re-queueing dead letters when web.write_token is set).")
    app.state.dashboard = dash
    app.state.store = store

    if web.trusted_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(web.trusted_hosts))

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if not guard.may_read(request):
            resp: Response = JSONResponse({"detail": "authentication required"}, status_code=401,
                                          headers={"WWW-Authenticate": 'Basic realm="vulnwatch", charset="UTF-8"'})
        else:
            resp = await call_next(request)
        for k, v in HEADERS.items():
            resp.headers.setdefault(k, v)
        if not request.url.path.startswith("/static/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # -- errors ------------------------------------------------------------------------------
    def _wants_html(request: Request) -> bool:
        return not request.url.path.startswith(("/api/", "/metrics", "/healthz", "/readyz", "/openapi"))

    def _error(request: Request, status: int, detail: str) -> Response:
        if _wants_html(request):
            return templates.TemplateResponse(request, "error.html", {"status": status, "detail": detail},
                                              status_code=status)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return _error(request, 404, str(exc))

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError):
        log.error("state store error: %s", exc)
        return _error(request, 503, redact(str(exc)))

    # -- shared parameters -------------------------------------------------------------------
    def fleet_params(
        q: Annotated[str, Query(max_length=200, description="Substring of registry, repository or tag.")] = "",
        registry: Annotated[str, Query(max_length=64, description="Only this registry (configured name).")] = "",
        severity: Annotated[SeverityName | Literal[""], Query(description="Only images with a finding this severe or worse.")] = "",
        notes: Annotated[bool, Query(description="Only images with coverage warnings.")] = False,
        errors: Annotated[bool, Query(description="Only images whose last scan failed.")] = False,
        superseded: Annotated[bool, Query(description="Include digests every tag moved away from.")] = False,
        sort: Annotated[Sort, Query(description="Order.")] = "severity",
        order: Annotated[Literal["asc", "desc"], Query()] = "desc",
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=5, le=500)] = web.page_size,
    ) -> FleetParams:
        query = FleetQuery(text=q.strip(), registry=registry or None,
                           min_severity=Severity[severity] if severity else None, with_notes=notes,
                           with_errors=errors, include_superseded=superseded, sort=sort,
                           descending=order == "desc", offset=(page - 1) * per_page, limit=per_page)
        return FleetParams(query=query, page=page)

    Fleet = Annotated[FleetParams, Depends(fleet_params)]

    def finding_filters(
        severity: Annotated[SeverityName | Literal[""], Query(description="This severity or worse.")] = "",
        fixable: Annotated[Literal["", "yes", "no"], Query(description="yes: a fix is known; no: none.")] = "",
        package: Annotated[str, Query(max_length=200, description="Substring of the package name.")] = "",
        kev: Annotated[Literal["", "yes"], Query(description="yes: only findings listed in CISA's KEV.")] = "",
    ) -> dict[str, Any]:
        return dict(severity=Severity[severity] if severity else None,
                    fixable=None if not fixable else fixable == "yes", package=package, kev=kev == "yes")

    Findings = Annotated[dict, Depends(finding_filters)]
    Registry = Annotated[str, PathParam(pattern=_NAME)]
    Days = Annotated[int, Query(ge=1, le=3650)]

    def _json(doc: BaseModel) -> Response:
        """The document as built (already a valid response model: no second validation pass)."""
        return Response(doc.model_dump_json(), media_type="application/json")

    def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        cookie = request.cookies.get(CSRF_COOKIE)
        new = cookie is None
        if new:
            cookie = guard.new_csrf_cookie()
        context = dict(context, csrf_token=guard.csrf_token(cookie), unlocked=guard.write_cookie_ok(request))
        resp = templates.TemplateResponse(request, name, context, status_code=status)
        if new:
            resp.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return resp

    def _qs(request: Request, **changes: Any) -> str:
        params = dict(request.query_params)
        params.update({k: v for k, v in changes.items() if v is not None})
        return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    env.globals["qs"] = _qs

    # -- JSON API ----------------------------------------------------------------------------
    @app.get("/api/v1/images", response_model=S.FleetPageOut, tags=["fleet"], responses={503: _ERRORS[503]},
             summary="Watched images: counts, last scan, coverage warnings, trend (paged)")
    def api_images(p: Fleet) -> Response:
        return _json(dash.overview(p.query, p.page))

    @app.get("/api/v1/fleet/trend", response_model=S.TrendOut, tags=["fleet"], responses={503: _ERRORS[503]},
             summary="Fleet totals over time")
    def api_trend(days: Days = 90) -> S.TrendOut:
        return dash.trend(days)

    @app.get("/api/v1/images/{registry}/{repository:path}@{digest}", response_model=S.ImageDetailOut,
             tags=["images"], responses=_ERRORS, summary="One image: findings, history, timeline")
    def api_image(registry: Registry, repository: str, digest: str, f: Findings) -> S.ImageDetailOut:
        return dash.image(registry, repository, digest, **f)

    @app.get("/api/v1/vulnerabilities/{vulnerability_id}", response_model=S.VulnerabilityOut, tags=["vulnerabilities"],
             responses=_ERRORS, summary="The current images and packages a vulnerability affects, since when")
    def api_vulnerability(vulnerability_id: Annotated[str, PathParam(max_length=200)]) -> S.VulnerabilityOut:
        return dash.vulnerability(vulnerability_id)

    @app.get("/api/v1/remediation", response_model=S.RemediationOut, tags=["remediation"],
             responses={503: _ERRORS[503]}, summary="Ranked upgrades; mean time to remediate per repository")
    def api_remediation(days: Days = 90) -> S.RemediationOut:
        return dash.remediation(days)

    @app.get("/api/v1/deliveries", response_model=S.DeliveriesOut, tags=["events"], responses={503: _ERRORS[503]},
             summary="Recent notifications and their delivery state")
    def api_deliveries(status: Annotated[Literal["", "pending", "delivered", "dead"], Query()] = "",
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> S.DeliveriesOut:
        return dash.deliveries(DeliveryStatus(status) if status else None, limit)

    @app.get("/api/v1/csrf", response_model=S.CsrfOut, tags=["events"],
             summary="A CSRF token (and its cookie) for the write routes")
    def api_csrf(request: Request, response: Response) -> S.CsrfOut:
        cookie = request.cookies.get(CSRF_COOKIE) or guard.new_csrf_cookie()
        response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return S.CsrfOut(csrf_token=guard.csrf_token(cookie))

    def _write_refusal(request: Request, token_ok: bool, csrf: str | None) -> tuple[int, str] | None:
        if not guard.writable:
            return 403, "this server is read-only: set web.write_token to enable write actions"
        if not token_ok:
            return 401, "a write action needs the write token"
        if not guard.csrf_ok(request, csrf):
            return 403, "missing or wrong CSRF token (or a cross-origin request)"
        return None

    @app.post("/api/v1/deliveries/{delivery_id}/requeue", response_model=S.RequeueOut, tags=["events"],
              responses={401: {"model": S.Problem}, 403: {"model": S.Problem}, 404: {"model": S.Problem},
                         409: {"model": S.Problem}, 503: {"model": S.Problem}},
              summary="Re-queue a dead letter and run a delivery (needs X-Write-Token and X-CSRF-Token)")
    def api_requeue(request: Request, delivery_id: Annotated[int, PathParam(ge=1, le=2**62)],
                    x_write_token: Annotated[str | None, Header()] = None,
                    x_csrf_token: Annotated[str | None, Header()] = None) -> Any:
        refusal = _write_refusal(request, guard.write_token_ok(x_write_token), x_csrf_token)
        if refusal:
            return JSONResponse({"detail": refusal[1]}, status_code=refusal[0])
        try:
            return dash.requeue(delivery_id)
        except Conflict as e:
            return JSONResponse({"detail": str(e)}, status_code=409)
        except ReadOnly as e:
            return JSONResponse({"detail": str(e)}, status_code=403)

    # -- operations --------------------------------------------------------------------------
    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"],
             summary="Prometheus metrics", responses={200: {"content": {"text/plain": {}}}})
    def get_metrics() -> Response:
        return Response(metrics.render(store), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="The state store answers",
             responses={503: {"model": S.Problem}})
    def readyz() -> Any:
        try:
            store.ping()
        except StoreError as e:
            log.error("not ready: %s", e)
            return JSONResponse({"detail": "the state store does not answer"}, status_code=503)
        return {"status": "ready"}

    # -- pages -------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page_overview(request: Request, p: Fleet) -> Response:
        data = dash.overview(p.query, p.page)
        totals, registries = dash.fleet_totals()          # the trend chart loads itself (charts.js)
        return _page(request, "overview.html", {"data": data, "totals": totals, "q": p.query,
                                                "registries": registries, "params": request.query_params})

    @app.get("/images/{registry}/{repository:path}@{digest}", response_class=HTMLResponse, include_in_schema=False)
    def page_image(request: Request, registry: Registry, repository: str, digest: str, f: Findings) -> Response:
        data = dash.image(registry, repository, digest, **f)
        return _page(request, "image.html", {"data": data, "params": request.query_params})

    @app.get("/vulnerabilities", response_class=HTMLResponse, include_in_schema=False)
    def page_vuln_search(request: Request, id: Annotated[str, Query(max_length=200)] = "") -> Response:
        if id.strip():
            return RedirectResponse(vuln_url(id.strip()), status_code=303)
        return _page(request, "vulnerability.html", {"data": None, "query": ""})

    @app.get("/vulnerabilities/{vulnerability_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_vulnerability(request: Request, vulnerability_id: Annotated[str, PathParam(max_length=200)]) -> Response:
        try:
            data = dash.vulnerability(vulnerability_id)
        except NotFound as e:
            return _page(request, "vulnerability.html", {"data": None, "query": vulnerability_id,
                                                         "missing": str(e)}, status=404)
        return _page(request, "vulnerability.html", {"data": data, "query": vulnerability_id})

    @app.get("/remediation", response_class=HTMLResponse, include_in_schema=False)
    def page_remediation(request: Request, days: Days = 90) -> Response:
        return _page(request, "remediation.html", {"data": dash.remediation(days)})

    @app.get("/events", response_class=HTMLResponse, include_in_schema=False)
    def page_events(request: Request, status: Annotated[Literal["", "pending", "delivered", "dead"], Query()] = "",
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    done: Annotated[str, Query(max_length=300)] = "") -> Response:
        data = dash.deliveries(DeliveryStatus(status) if status else None, limit)
        return _page(request, "events.html", {"data": data, "status": status, "done": done})

    @app.post("/unlock", include_in_schema=False)
    def page_unlock(request: Request, write_token: Annotated[str, Form(max_length=500)] = "",
                    csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
        refusal = _write_refusal(request, guard.write_token_ok(write_token), csrf_token)
        if refusal:
            return _error(request, *refusal)
        resp = RedirectResponse("/events?done=" + "write+actions+unlocked", status_code=303)
        resp.set_cookie(WRITE_COOKIE, guard.write_cookie(), max_age=WRITE_SESSION_SECONDS, httponly=True,
                        samesite="strict", path="/", secure=request.url.scheme == "https")
        return resp

    @app.post("/lock", include_in_schema=False)
    def page_lock(request: Request, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
        if not guard.csrf_ok(request, csrf_token):
            return _error(request, 403, "missing or wrong CSRF token (or a cross-origin request)")
        resp = RedirectResponse("/events?done=write+actions+locked", status_code=303)
        resp.delete_cookie(WRITE_COOKIE, path="/")
        return resp

    @app.post("/events/{delivery_id}/requeue", include_in_schema=False)
    def page_requeue(request: Request, delivery_id: Annotated[int, PathParam(ge=1, le=2**62)],
                     csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
        refusal = _write_refusal(request, guard.write_cookie_ok(request), csrf_token)
        if refusal:
            return _error(request, *refusal)
        try:
            r = dash.requeue(delivery_id)
        except (Conflict, ReadOnly) as e:
            return _error(request, 409 if isinstance(e, Conflict) else 403, str(e))
        msg = (f"delivery {delivery_id} re-queued; delivery run: {r.delivered} delivered, {r.failed} to retry, "
               f"{r.dead} dead; it is now {r.status}")
        return RedirectResponse("/events?" + urlencode({"done": msg}), status_code=303)

    return app


def open_read_only(cfg: Config) -> Store:
    """The configured store, opened read-only. A database that is missing or on an older schema
    is first created or migrated by a regular open (what every vulnwatch command does)."""
    from pathlib import Path as P

    from ..build import open_store
    from ..logs import reveal
    from ..store import STORES, scheme_of

    url = reveal(cfg.state.url) if cfg.state.url else f"sqlite:///{P(cfg.state.path).expanduser()}"
    cls = STORES.get(scheme_of(url))
    if cls is None:
        return open_store(cfg)            # raises the clear "unsupported scheme" StoreError
    try:
        return cls.open_read_only(url)
    except StoreError:
        open_store(cfg).close()
        return cls.open_read_only(url)
