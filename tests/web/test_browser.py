"""The pages in a real browser (Debian's Chromium, headless, through Playwright): rows and
numbers as the API and the store have them, sorting and filters, the charts drawn from the
store's data, and a dead letter re-queued from the events page and delivered to a real
receiver. A screenshot of each page goes to tests/web/artifacts/."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.web.conftest import WRITE_TOKEN, load


@pytest.fixture
def site(sqlite_fleet, serve):
    s = serve(load(sqlite_fleet))
    s.api = lambda path, **params: httpx.get(s.url + path, params=params, timeout=30).json()
    return s


def chart_values(page, chart: str, series: str = "total") -> list[int]:
    page.wait_for_selector(f"figure[data-chart='{chart}'][data-drawn]")
    return [int(c.get_attribute("data-value"))
            for c in page.locator(f"figure[data-chart='{chart}'] circle[data-series='{series}']").all()]


def repos(page) -> list[str]:
    return [r.get_attribute("data-repository") for r in page.locator("tr.image-row").all()]


def test_fleet_overview(site, page):
    api = site.api("/api/v1/images")
    page.goto(site.url + "/")
    assert repos(page) == [r["image"]["repository"] for r in api["items"]]
    for r in api["items"]:
        row = page.locator(f"tr.image-row[data-digest='{r['image']['digest']}']")
        assert row.locator("td.total").inner_text() == str(r["total"])
        for sev, n in r["counts"].items():
            assert row.locator(f"td[data-severity='{sev}']").inner_text() == str(n)
        assert row.locator("td.kev").inner_text() == (str(r["kev"]) if r["kev"] is not None else "—")  # stored count
        cov = row.locator(".warn.coverage")
        if r["coverage"] and r["coverage"]["state"] != "complete":
            assert cov.get_attribute("title") == r["coverage"]["text"]
        else:
            assert cov.count() == 0
        spark = row.locator("svg.spark")
        if r["trend"]:
            assert spark.get_attribute("data-values") == ",".join(str(t["total"]) for t in r["trend"])
    assert page.locator("tr.image-row[data-repository='evil/app'] .warn.error").inner_text() == "scan failed"
    assert page.locator("tr.image-row[data-repository='tools/empty'] .warn[title*='no Name/Version']").count() == 1
    trend = site.api("/api/v1/fleet/trend")
    assert chart_values(page, "fleet-trend") == [p["total"] for p in trend["points"]]
    assert chart_values(page, "fleet-trend", "HIGH") == [p["counts"]["HIGH"] for p in trend["points"]]
    assert page.locator("[data-fleet-total='UNKNOWN']").inner_text() == str(trend["points"][-1]["counts"]["UNKNOWN"])
    page.shot("overview")

    page.click("th a[data-sort='total']")                           # sort by total, most first
    page.wait_for_url("**sort=total**")
    totals = [int(r.get_attribute("data-total")) for r in page.locator("tr.image-row").all()]
    assert totals == sorted(totals, reverse=True)
    page.click("th a[data-sort='total']")                           # again: fewest first
    page.wait_for_url("**order=asc**")
    totals = [int(r.get_attribute("data-total")) for r in page.locator("tr.image-row").all()]
    assert totals == sorted(totals)
    page.click("th a[data-sort='repository']")
    page.wait_for_url("**sort=repository**")
    assert repos(page) == sorted(repos(page), reverse=True)

    page.goto(site.url + "/")
    page.fill("input[name=q]", "tools")
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")
    assert sorted(repos(page)) == ["tools/base", "tools/empty"]
    page.goto(site.url + "/")
    with page.expect_navigation():                                  # a select submits by itself (app.js)
        page.select_option("select[name=severity]", "HIGH")
    assert sorted(repos(page)) == ["example/api", "example/webapp"]
    with page.expect_navigation():
        page.check("input[name=superseded]")
    assert sorted(repos(page)) == ["example/api", "example/webapp", "example/webapp"]
    assert page.locator("tr.image-row.superseded").count() == 1


def test_image_page(site, page):
    page.goto(site.url + "/")
    page.click("tr.image-row[data-repository='example/webapp'] a")
    page.wait_for_url("**/images/local/example/webapp@sha256:*")
    path = page.url.split(site.url, 1)[1]
    detail = site.api("/api/v1" + path)
    assert page.locator("tr.finding").count() == detail["findings_total"] == 71
    assert chart_values(page, "image-history") == [h["total"] for h in detail["history"]]
    first = detail["findings"][0]
    link = page.locator(f"tr.finding[data-id='{first['vulnerability_id']}'] a", has_text="advisory").first
    assert link.get_attribute("href") == first["link"]
    assert [e.get_attribute("data-kind") for e in page.locator("li.event").all()] == ["rebuild"]
    assert "CVE-2019-10906 Jinja2 2.10" in page.locator("li.event").inner_text()
    page.shot("image")

    with page.expect_navigation():
        page.select_option("select[name=severity]", "MEDIUM")
    sevs = [r.get_attribute("data-severity") for r in page.locator("tr.finding").all()]
    assert sorted(sevs) == ["HIGH", "MEDIUM", "MEDIUM"]
    with page.expect_navigation():
        page.select_option("select[name=fixable]", "yes")
    assert all(r.get_attribute("data-fixable") == "yes" for r in page.locator("tr.finding").all())
    page.goto(site.url + path)
    page.fill("input[name=package]", "libcurl")
    with page.expect_navigation():
        page.press("input[name=package]", "Enter")
    pkgs = {r.get_attribute("data-package") for r in page.locator("tr.finding").all()}
    assert pkgs == {"libcurl4"}
    assert page.locator("#findings-count").inner_text().endswith("of 71")

    page.goto(site.url + path)
    page.click("text=previous digest")                              # the digest the tag moved from
    page.wait_for_url(f"**@{detail['timeline'][0]['previous_digest']}")
    assert [e.get_attribute("data-kind") for e in page.locator("li.event").all()] == [
        "rebuild", "findings_changed", "new_image"]
    assert chart_values(page, "image-history") == [69, 73]
    moved = page.locator("li.event[data-kind='findings_changed'] li.reason")   # each reason, its data versions
    assert moved.count() >= 1 and moved.locator("li.data-source").count() >= 1
    assert "version" in moved.locator("li.data-source").first.inner_text() or \
        "imported" in moved.locator("li.data-source").first.inner_text()
    assert "superseded" in page.locator("p.meta").inner_text()
    page.shot("image-superseded")


def test_vulnerability_page(site, page):
    page.goto(site.url + "/")
    page.fill("header input[name=id]", "CVE-2023-23916")
    with page.expect_navigation():
        page.press("header input[name=id]", "Enter")
    page.wait_for_url("**/vulnerabilities/CVE-2023-23916")
    doc = site.api("/api/v1/vulnerabilities/CVE-2023-23916")
    assert page.locator("#affected-images").inner_text() == str(doc["images"]) == "3"
    rows = [(r.get_attribute("data-repository"), r.get_attribute("data-package"))
            for r in page.locator("tr.affected").all()]
    assert rows == [(a["image"]["repository"], a["package_name"]) for a in doc["affected"]]
    page.shot("vulnerability")
    r = page.goto(site.url + "/vulnerabilities/CVE-1999-0001")
    assert r.status == 404 and "no current image has CVE-1999-0001" in page.locator("main").inner_text()
    page.console_errors.remove("Failed to load resource: the server responded with a status of 404 (Not Found)")


def test_remediation_page(site, page):
    page.goto(site.url + "/remediation")
    doc = site.api("/api/v1/remediation")
    ups = page.locator("tr.upgrade").all()
    assert [(u.get_attribute("data-package"), u.get_attribute("data-target"), u.get_attribute("data-findings"))
            for u in ups] == [(u["package"], u["target"], str(u["findings"])) for u in doc["upgrades"]]
    assert "upgrade Jinja2 to 2.11.3 fixes 2 findings (0 critical) in 1 image" in page.locator("#upgrades").inner_text()
    mttr = page.locator("tr.mttr")
    assert mttr.count() == 1 and mttr.get_attribute("data-repository") == "example/webapp"
    assert mttr.get_attribute("data-fixed") == "2"
    page.shot("remediation")


def test_events_page_requeue_a_dead_letter_and_it_is_delivered(tmp_path, serve, receiver, page):
    from tests.web.fleet import fill

    fleet = fill(tmp_path / "f", f"{{path: {tmp_path / 'f' / 'state.db'}}}")
    s = serve(load(fleet, hook_url=f"{receiver.url}/hook", web=f"web: {{write_token: {WRITE_TOKEN}}}"))
    page.goto(s.url + "/events")
    page.shot("events")
    dead = httpx.get(s.url + "/api/v1/deliveries", params={"status": "dead"}).json()["items"]
    assert page.locator("span.count[data-status='dead']").inner_text() == str(len(dead))
    assert page.locator("button.requeue").count() == 0                  # locked until the token is given
    page.fill("#unlock input[name=write_token]", WRITE_TOKEN)
    with page.expect_navigation():
        page.click("#unlock button")
    assert "unlocked" in page.locator("#done").inner_text()
    page.click("nav.tabs a[href='/events?status=dead']")
    page.wait_for_url("**status=dead")
    target = dead[0]
    with page.expect_navigation():
        page.click(f"tr.delivery[data-id='{target['id']}'] button.requeue")
    assert f"delivery {target['id']} re-queued" in page.locator("#done").inner_text()
    assert "it is now delivered" in page.locator("#done").inner_text()
    page.goto(s.url + "/events")
    assert page.locator(f"tr.delivery[data-id='{target['id']}']").get_attribute("data-status") == "delivered"
    assert target["event"] in {json.loads(r.body)["id"] for r in receiver.requests}
    page.shot("events-after-requeue")
