"""The JSON API, /metrics, health and security, over HTTP against uvicorn, on stores filled by
real pipeline runs (SQLite and PostgreSQL). Expected values come from the store's own base
methods (images, history, deliveries) and from what the runs are known to have done."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import WRITE_TOKEN, load
from tests.web.fleet import HOOK_SECRET
from vulnwatch.build import open_store
from vulnwatch.store.interface import DeliveryStatus, StoreError

SEVS = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "NEGLIGIBLE", "UNKNOWN"]


@pytest.fixture
def api(fleet, serve):
    cfg = load(fleet)
    s = serve(cfg)
    with httpx.Client(base_url=s.url, timeout=30) as c:
        c.served = s
        c.cfg = cfg
        yield c


@pytest.fixture
def truth(api):
    store = open_store(api.cfg)
    yield store
    store.close()


def current(store):
    """Images with tags (this fleet has no untagged-by-choice image), by repository."""
    return {s.image.repository: s for s in store.images() if s.image.tags}


def test_overview_rows_counts_trends_match_the_store(api, truth):
    doc = api.get("/api/v1/images").json()
    want = current(truth)
    assert doc["total"] == len(want) == 5
    rows = {r["image"]["repository"]: r for r in doc["items"]}
    assert set(rows) == set(want)
    for repo, st in want.items():
        r = rows[repo]
        assert r["counts"] == {s: st.counts.get(s, 0) for s in SEVS} if st.counts else r["total"] == 0
        assert r["image"]["digest"] == st.image.digest and r["image"]["tags"] == list(st.image.tags)
        assert r["kev"] == st.kev == (None if st.last_scanned_at is None else 0)   # stored; no KEV data here
        assert r["superseded"] is False
        assert r["coverage"] == ({"state": st.coverage.state, "missing": list(st.coverage.missing),
                                  "unjudged": st.coverage.unjudged, "text": st.coverage.text()}
                                 if st.coverage is not None else None)
        history = truth.history(*st.image.key)
        assert [t["total"] for t in r["trend"]] == [sum(h.counts.values()) for h in reversed(history)]
    assert [t["total"] for t in rows["example/api"]["trend"]] == [68, 71]      # the re-match added 3
    assert "../../etc/passwd" in rows["evil/app"]["last_error"]
    assert any("no Name/Version header" in n for n in rows["tools/empty"]["notes"])
    # default order: most severe first (HIGH 1 ties: api before webapp by name), then totals
    assert [r["image"]["repository"] for r in doc["items"]][:2] == ["example/api", "example/webapp"]


@pytest.mark.parametrize("params, repos", [
    ({"q": "TOOLS"}, {"tools/base", "tools/empty"}),
    ({"q": "bullseye"}, {"tools/base"}),                      # a tag
    ({"registry": "evil"}, {"evil/app"}),
    ({"severity": "HIGH"}, {"example/api", "example/webapp"}),
    ({"severity": "CRITICAL"}, set()),
    ({"errors": "true"}, {"evil/app"}),
    ({"notes": "true"}, {"tools/empty"}),
])
def test_overview_filters(api, params, repos):
    doc = api.get("/api/v1/images", params=params).json()
    assert {r["image"]["repository"] for r in doc["items"]} == repos and doc["total"] == len(repos)


def test_overview_sorting_and_paging(api, truth):
    by_total = api.get("/api/v1/images", params={"sort": "total", "order": "desc"}).json()["items"]
    totals = [r["total"] for r in by_total]
    assert totals == sorted(totals, reverse=True) and totals[0] == 71
    names = [r["image"]["repository"] for r in
             api.get("/api/v1/images", params={"sort": "repository", "order": "asc"}).json()["items"]]
    assert names == sorted(names)
    everything = api.get("/api/v1/images", params={"superseded": "true", "sort": "repository",
                                                   "order": "asc"}).json()
    assert everything["total"] == 6
    old = [r for r in everything["items"] if r["superseded"]]
    assert [r["image"]["repository"] for r in old] == ["example/webapp"] and old[0]["image"]["tags"] == []
    p1 = api.get("/api/v1/images", params={"superseded": "true", "per_page": 5, "page": 1}).json()
    p2 = api.get("/api/v1/images", params={"superseded": "true", "per_page": 5, "page": 2}).json()
    assert (p1["pages"], len(p1["items"]), len(p2["items"])) == (2, 5, 1)
    keys = {r["image"]["digest"] for r in p1["items"] + p2["items"]}
    assert keys == {s.image.digest for s in truth.images()}
    assert api.get("/api/v1/images", params={"sort": "nope"}).status_code == 422


def test_fleet_trend_follows_the_runs(api, truth):
    points = api.get("/api/v1/fleet/trend").json()["points"]
    assert [p["at"] for p in points] == sorted(p["at"] for p in points)
    now = {s: sum(st.counts.get(s, 0) for st in current(truth).values()) for s in SEVS}
    assert points[-1]["counts"] == now and points[-1]["total"] == sum(now.values())
    totals = [p["total"] for p in points]
    # run 1 recorded 69 + 60 + 68 (+0), the re-match added 3 + 4 + 2, the rebuild fixed 2 and
    # the new tools/empty has none: the old webapp digest stops counting when its tag moved
    assert 197 in totals and 206 in totals and totals[-1] == 204 == sum(now.values())
    assert max(totals) == 206


def test_image_page_findings_filters_history_timeline(api, truth):
    st = current(truth)["example/webapp"]
    url = f"/api/v1/images/local/example/webapp@{st.image.digest}"
    doc = api.get(url).json()
    snap = truth.snapshot(*st.image.key, with_inventory=False)
    assert doc["findings_total"] == len(snap.findings) == len(doc["findings"]) == 71
    assert {f["vulnerability_id"] for f in doc["findings"]} == {f.vulnerability_id for f in snap.findings}
    high = api.get(url, params={"severity": "HIGH"}).json()["findings"]
    assert [f["severity"] for f in high] == ["HIGH"]
    unfixed = api.get(url, params={"fixable": "no"}).json()["findings"]
    assert all(not f["fixable"] for f in unfixed) and len(unfixed) == sum(not f.fixable for f in snap.findings)
    curl = api.get(url, params={"package": "CURL"}).json()["findings"]
    assert curl and {f["package_name"] for f in curl} == {"curl", "libcurl4"}
    assert all(f["link"].startswith("http") and f["url"] == f"/vulnerabilities/{f['vulnerability_id']}"
               for f in doc["findings"])
    assert len(doc["history"]) == 1
    [rebuild] = doc["timeline"]
    assert rebuild["kind"] == "rebuild" and rebuild["moved_tags"] == ["1.0"]
    assert sorted(rebuild["fixed"]) == ["CVE-2019-10906 Jinja2 2.10", "CVE-2020-28493 Jinja2 2.10"]
    assert "moved to this digest" in rebuild["why"]

    old = api.get(f"/api/v1/images/local/example/webapp@{rebuild['previous_digest']}").json()
    assert old["superseded"] and [e["kind"] for e in old["timeline"]] == ["rebuild", "findings_changed", "new_image"]
    assert "moved away from this digest" in old["timeline"][0]["why"]
    moved = old["timeline"][1]               # the re-match: its reason names the data, with its version
    assert moved["reasons"] and all(r["data"] for r in moved["reasons"] if r["kind"] == "advisory_data_changed")
    assert any(d["name"].endswith("/Debian") for r in moved["reasons"] for d in r["data"])
    assert all(d["version"] or d["updated_at"] for r in moved["reasons"] for d in r["data"])
    assert [h["total"] for h in old["history"]] == [69, 73]
    jinja = api.get(f"/api/v1/images/local/example/webapp@{rebuild['previous_digest']}",
                    params={"package": "jinja2"}).json()["findings"]
    assert {f["vulnerability_id"] for f in jinja} == {"CVE-2019-10906", "CVE-2020-28493"}
    assert api.get("/api/v1/images/local/example/webapp@sha256:0000").status_code == 404
    failed = api.get(f"/api/v1/images/evil/evil/app@{current(truth)['evil/app'].image.digest}").json()
    assert failed["findings"] == [] and "../../etc/passwd" in failed["last_error"]


def test_vulnerability_by_id_and_by_alias(api, truth):
    doc = api.get("/api/v1/vulnerabilities/CVE-2023-23916").json()       # curl, from the newer data
    assert doc["images"] == 3
    assert sorted((a["image"]["repository"], a["package_name"]) for a in doc["affected"]) == [
        (r, p) for r in ("example/api", "example/webapp", "tools/base") for p in ("curl", "libcurl4")]
    api_digest = current(truth)["example/api"].image.digest
    rematched_at = truth.history("local", "example/api", api_digest)[0].scanned_at   # newest: the re-match
    since = {a["image"]["repository"]: a["since"] for a in doc["affected"]}
    assert since["example/api"].replace("Z", "+00:00") == rematched_at.isoformat()
    assert doc["first_seen"] == min(since.values())
    alias = api.get("/api/v1/vulnerabilities/DSA-5365-1").json()
    assert alias["images"] == 3 and "CVE-2023-23916" in alias["aliases"]
    assert api.get("/api/v1/vulnerabilities/CVE-1999-0001").status_code == 404


def test_remediation_upgrades_and_mean_time_to_remediate(api):
    doc = api.get("/api/v1/remediation").json()
    ups = {u["package"]: u for u in doc["upgrades"]}
    assert ups["urllib3"]["target"] == "1.26.18" and ups["urllib3"]["images"] == 2
    assert ups["curl"]["target"] == "7.74.0-1.3+deb11u7" and ups["curl"]["images"] == 3
    j = ups["Jinja2"]                   # only example/api still has Jinja2 2.10: 2.10.1 and 2.11.3 fix it
    assert (j["target"], j["findings"], j["images"]) == ("2.11.3", 2, 1)
    assert j["text"] == "upgrade Jinja2 to 2.11.3 fixes 2 findings (0 critical) in 1 image"
    ranked = [(u["critical"], u["high"], u["findings"]) for u in doc["upgrades"]]
    assert ranked == sorted(ranked, reverse=True)
    [m] = doc["mttr"]
    assert (m["repository"], m["fixed"], m["measured"]) == ("example/webapp", 2, 2)
    assert 0 < m["mean_seconds"] < 120


def test_deliveries_and_no_secret_anywhere(api, truth):
    doc = api.get("/api/v1/deliveries").json()
    all_rows = truth.deliveries(limit=1000)
    assert [d["id"] for d in doc["items"]] == [d.id for d in all_rows]
    assert doc["counts"]["dead"] == len(truth.deliveries(DeliveryStatus.DEAD)) >= 2
    assert doc["writable"] is False
    dead = api.get("/api/v1/deliveries", params={"status": "dead"}).json()["items"]
    assert dead and all(d["status"] == "dead" and d["sink"] == "hook" and "could not connect" in d["last_error"]
                        for d in dead)
    hook_host = "127.0.0.1:9/"
    for path in ["/", "/events", "/remediation", "/api/v1/deliveries", "/api/v1/images", "/metrics",
                 "/openapi.json", dead[0]["image"]["url"], "/api/v1" + dead[0]["image"]["url"]]:
        body = api.get(path).text
        assert HOOK_SECRET not in body and hook_host not in body and WRITE_TOKEN not in body, path


def test_metrics(api, truth):
    r = api.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    m = {f.name: f for f in text_string_to_metric_families(r.text)}
    val = lambda name, **labels: next(s.value for s in m[name].samples if s.labels == labels)  # noqa: E731
    assert val("vulnwatch_images", registry="local") == 4 and val("vulnwatch_images", registry="evil") == 1
    cur = current(truth).values()
    for sev in SEVS:
        assert val("vulnwatch_findings", severity=sev) == sum(s.counts.get(sev, 0) for s in cur)
    assert val("vulnwatch_scan_failures", registry="evil") == 1
    assert val("vulnwatch_deliveries_dead") == len(truth.deliveries(DeliveryStatus.DEAD))
    assert val("vulnwatch_outbox_depth") == len(truth.deliveries(DeliveryStatus.PENDING))
    newest = max(s.last_checked_at for s in truth.images() if s.image.registry == "local")
    assert val("vulnwatch_last_checked_timestamp_seconds", registry="local") == pytest.approx(newest.timestamp())
    assert val("vulnwatch_kev_findings") == sum(s.kev or 0 for s in cur) == 0
    assert {s.labels["metric"] for s in m["vulnwatch_not_recorded"].samples} == {"cycle_duration_seconds"}


def test_health_and_the_store_is_read_only(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    store = api.served.app.state.store
    with pytest.raises(StoreError):
        store.retry_dead()
    with pytest.raises(StoreError):
        store.mark_delivered([1], at=__import__("vulnwatch.model", fromlist=["utcnow"]).utcnow())


def test_security_headers_and_no_inline_script(api):
    for path in ["/", "/events", "/api/v1/images", "/static/charts.js"]:
        h = api.get(path).headers
        csp = h["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
    import re
    for path in ["/", "/remediation", "/events", "/vulnerabilities/CVE-2023-23916"]:
        html = api.get(path).text
        scripts = re.findall(r"<script([^>]*)>", html)
        assert scripts and all('src="/static/' in s or 'type="application/json"' in s for s in scripts), path
        assert not re.search(r"\son[a-z]+=", html) and "style=" not in html and "https://cdn" not in html
        assert all(u.startswith("/static/") for u in re.findall(r'(?:src|href)="(/[^"]*\.(?:js|css))"', html))


@pytest.fixture
def sqlite_api(sqlite_fleet, serve):
    clients: list[httpx.Client] = []

    def start(web: str):
        cfg = load(sqlite_fleet, web=web)
        clients.append(httpx.Client(base_url=serve(cfg).url, timeout=30))
        return clients[-1]
    yield start
    for c in clients:
        c.close()


def test_token_and_basic_auth_on_every_route_but_health(sqlite_api):
    c = sqlite_api("web: {token: read-token-123}")
    for path in ["/", "/api/v1/images", "/metrics", "/openapi.json", "/static/style.css", "/events"]:
        r = c.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), path
        assert "read-token-123" not in r.text
    assert c.get("/api/v1/images", headers={"Authorization": "Bearer read-token-123"}).status_code == 200
    assert c.get("/api/v1/images", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert c.get("/", auth=("anyone", "read-token-123")).status_code == 200          # how a browser sends it
    assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    b = sqlite_api("web: {username: ops, password: basic-pass-1}")
    assert b.get("/api/v1/images").status_code == 401
    assert b.get("/api/v1/images", auth=("ops", "basic-pass-1")).status_code == 200
    assert b.get("/api/v1/images", auth=("ops", "wrong-pass-1")).status_code == 401
    bad = base64.b64encode(b"\xff\xfe").decode()
    assert b.get("/api/v1/images", headers={"Authorization": f"Basic {bad}"}).status_code == 401


def _dead_id(client) -> int:
    return client.get("/api/v1/deliveries", params={"status": "dead"}).json()["items"][0]["id"]


def test_write_routes_refuse_without_the_tokens(sqlite_api, sqlite_fleet):
    ro = sqlite_api("")
    dead = _dead_id(ro)
    r = ro.post(f"/api/v1/deliveries/{dead}/requeue", headers={"X-Write-Token": WRITE_TOKEN})
    assert r.status_code == 403 and "read-only" in r.json()["detail"]

    c = sqlite_api(f"web: {{write_token: {WRITE_TOKEN}}}")
    token = c.get("/api/v1/csrf").json()["csrf_token"]           # sets the vw_csrf cookie on the client
    url = f"/api/v1/deliveries/{dead}/requeue"
    assert c.post(url, headers={"X-CSRF-Token": token}).status_code == 401                      # no write token
    assert c.post(url, headers={"X-CSRF-Token": token, "X-Write-Token": "wrong-token-x"}).status_code == 401
    assert c.post(url, headers={"X-Write-Token": WRITE_TOKEN}).status_code == 403               # no CSRF token
    assert c.post(url, headers={"X-Write-Token": WRITE_TOKEN, "X-CSRF-Token": "0" * 64}).status_code == 403
    assert c.post(url, headers={"X-Write-Token": WRITE_TOKEN, "X-CSRF-Token": token,
                                "Origin": "http://evil.example"}).status_code == 403             # cross-site
    assert httpx.post(str(c.base_url) + url,                                                     # token, no cookie
                      headers={"X-Write-Token": WRITE_TOKEN, "X-CSRF-Token": token}).status_code == 403
    # the pages: the form needs the unlock cookie and the CSRF field
    assert c.post(f"/events/{dead}/requeue", data={"csrf_token": token}).status_code == 401
    assert c.post("/unlock", data={"write_token": WRITE_TOKEN}).status_code == 403
    assert c.post("/unlock", data={"write_token": "wrong-token-x", "csrf_token": token}).status_code == 401
    store = open_store(load(sqlite_fleet))
    try:
        assert store.delivery(dead).status is DeliveryStatus.DEAD                                # nothing written
    finally:
        store.close()
    # a delivery that is not dead is refused; an unknown one is 404
    ok = {"X-Write-Token": WRITE_TOKEN, "X-CSRF-Token": token}
    delivered = c.get("/api/v1/deliveries", params={"status": "delivered"}).json()["items"][0]["id"]
    assert c.post(f"/api/v1/deliveries/{delivered}/requeue", headers=ok).status_code == 409
    assert c.post("/api/v1/deliveries/999999/requeue", headers=ok).status_code == 404


def test_requeue_through_the_api_delivers_to_a_real_receiver(tmp_path, serve, receiver):
    from tests.web.fleet import fill

    fleet = fill(tmp_path / "f", f"{{path: {tmp_path / 'f' / 'state.db'}}}")
    s = serve(load(fleet, hook_url=f"{receiver.url}/hook", web=f"web: {{write_token: {WRITE_TOKEN}}}"))
    with httpx.Client(base_url=s.url, timeout=30) as c:
        dead = c.get("/api/v1/deliveries", params={"status": "dead"}).json()["items"][-1]
        token = c.get("/api/v1/csrf").json()["csrf_token"]
        r = c.post(f"/api/v1/deliveries/{dead['id']}/requeue",
                   headers={"X-Write-Token": WRITE_TOKEN, "X-CSRF-Token": token})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["requeued"] == 1 and out["status"] == "delivered" and out["delivered"] >= 1
        ids = {json.loads(req.body)["id"] for req in receiver.requests}
        assert dead["event"] in ids
        after = c.get("/api/v1/deliveries").json()["items"]
        assert next(d for d in after if d["id"] == dead["id"])["status"] == "delivered"
