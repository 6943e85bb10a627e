"""What the pages and the API show, computed from a read-only store.

Fleet-wide aggregates (fleet trend, remediation, mean time to remediate) are cached until the
store's :meth:`~vulnwatch.store.interface.Store.data_version` changes (and for at most
:data:`CACHE_SECONDS`); everything else is read on each request.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..config import Config
from ..diff import REASON_LABELS, coverage_change, summarize
from ..model import Coverage, CoverageSummary, Event, EventKind, Finding, Image, Severity, utcnow
from ..store.interface import (Delivery, DeliveryStatus, FleetQuery, HistoryEntry, Store, StoreError,
                               TrendPoint)
from . import schemas as S
from .versions import needed_fix, version_key

CACHE_SECONDS = 300.0
SEVERITIES = [s.name for s in sorted(Severity, reverse=True)]


class NotFound(LookupError):
    """The thing asked for is not in the store."""


class Conflict(ValueError):
    """The request does not fit the thing's state (e.g. re-queueing a delivery that is not dead)."""


class ReadOnly(PermissionError):
    """Writes are off (no ``web.write_token``)."""


def image_url(img: Image) -> str:
    return f"/images/{quote(img.registry, safe='')}/{quote(img.repository, safe='/')}@{quote(img.digest, safe=':')}"


def vuln_url(vid: str) -> str:
    return f"/vulnerabilities/{quote(vid, safe='')}"


def image_ref(img: Image) -> S.ImageRef:
    return S.ImageRef(registry=img.registry, repository=img.repository, digest=img.digest,
                      short_digest=img.short_digest, tags=list(img.tags), url=image_url(img))


def counts_of(counts: dict[str, int] | None) -> S.Counts:
    return S.Counts(**{k: int(v) for k, v in (counts or {}).items() if k in SEVERITIES})


def trend_value(at: datetime, counts: dict[str, int]) -> S.TrendValue:
    values = {k: int(counts.get(k, 0)) for k in SEVERITIES}       # built without validation: many per page
    return S.TrendValue.model_construct(at=at, total=sum(values.values()), counts=S.Counts.model_construct(**values))


def finding_out(f: Finding) -> S.FindingOut:
    return S.FindingOut(vulnerability_id=f.vulnerability_id, aliases=list(f.aliases), package_name=f.package_name,
                        package_version=f.package_version, ecosystem=f.ecosystem, severity=f.severity.name,
                        cvss_score=f.cvss_score, fixable=f.fixable, fixed_versions=list(f.fixed_versions),
                        title=f.title, link=f.link, url=vuln_url(f.vulnerability_id),
                        severity_source=f.severity_source, kev=f.kev is not None,
                        kev_date_added=f.kev.date_added if f.kev is not None else None, epss=f.epss,
                        suppressed=(f"{f.suppression.reason} ({f.suppression.source})" if f.suppression is not None
                                    else None))


def priority_key(f: Finding):
    """Fix-first order: listed in KEV, then severity, then EPSS, then score."""
    return (f.kev is None, -f.severity, -(f.epss or 0.0), -(f.cvss_score or 0), f.vulnerability_id, f.package_name)


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def event_out(ev: Event, here: str | None = None) -> S.EventOut:
    """``here``: the digest whose timeline this is (a rebuild away from it reads differently)."""
    if ev.kind is EventKind.NEW_IMAGE:
        why = "first scan of this digest"
    elif ev.kind is EventKind.FINDINGS_CHANGED:
        why = "same digest, findings moved: new or changed advisory data, or a re-score"
    elif ev.kind is EventKind.COVERAGE:
        why = coverage_change(ev.previous_coverage, ev.coverage)
    elif here is not None and ev.previous_digest == here and ev.image.digest != here:
        why = (f"tag {', '.join(ev.moved_tags) or '?'} moved away from this digest to "
               f"{_short(ev.image.digest)} (a rebuild)")
    else:
        why = (f"tag {', '.join(ev.moved_tags) or '?'} moved to this digest from "
               f"{_short(ev.previous_digest) or 'an earlier digest'} (a rebuild)")
    return S.EventOut(
        id=ev.id, kind=ev.kind.value, occurred_at=ev.occurred_at, image=image_ref(ev.image), summary=summarize(ev),
        why=why, added=[f"{f.vulnerability_id} {f.package_name} {f.package_version}" for f in ev.added],
        fixed=[f"{f.vulnerability_id} {f.package_name} {f.package_version}" for f in ev.fixed],
        changed=[f"{c.after.vulnerability_id} {c.after.package_name}: "
                 + ", ".join(_change_text(c, w) for w in c.what) for c in ev.changed],
        previous_digest=ev.previous_digest, moved_tags=list(ev.moved_tags),
        reasons=[S.ReasonOut(kind=r.kind.value, label=REASON_LABELS.get(r.kind, r.kind.value), summary=r.summary,
                             data=[S.DataSourceOut(kind=d.kind, name=d.name, version=d.version, updated_at=d.updated_at)
                                   for d in r.data]) for r in ev.reasons])


def coverage_out(c: CoverageSummary | None) -> S.CoverageOut | None:
    if c is None:
        return None
    return S.CoverageOut(state=c.state, missing=list(c.missing), unjudged=c.unjudged, text=c.text())


def coverage_detail(c: Coverage | None, shown: int = 50) -> S.CoverageDetailOut | None:
    if c is None:
        return None
    b = c.brief()
    return S.CoverageDetailOut(
        state=b.state, missing=list(b.missing), unjudged=b.unjudged, text=b.text(),
        ecosystems=[S.EcosystemCoverageOut(ecosystem=e.ecosystem, packages=e.packages, present=e.present,
                                           records=e.records, updated_at=e.updated_at) for e in c.ecosystems],
        unjudged_packages=[f"{u.name} {u.version}: {u.reason}".replace("  ", " ") for u in c.unjudged[:shown]])


def _change_text(c, what: str) -> str:
    if what == "severity":
        return f"severity {c.before.severity.name} -> {c.after.severity.name}"
    if what == "cvss_score":
        return f"CVSS {c.before.cvss_score} -> {c.after.cvss_score}"
    return f"fix {', '.join(c.before.fixed_versions) or 'none'} -> {', '.join(c.after.fixed_versions) or 'none'}"


def delivery_out(d: Delivery) -> S.DeliveryOut:
    return S.DeliveryOut(id=d.id, event=d.event.id, kind=d.event.kind.value, subject=d.event.subject,
                         summary=summarize(d.event), image=image_ref(d.event.image), sink=d.sink,
                         status=d.status.value, attempts=d.attempts, created_at=d.created_at,
                         next_attempt_at=d.next_attempt_at, delivered_at=d.delivered_at, last_error=d.last_error)


class Dashboard:
    """The read side over ``store`` (opened read-only) and the write actions over ``cfg``."""

    def __init__(self, cfg: Config, store: Store, *, writer: Callable[[], Any] | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self._writer = writer
        self._cache: dict[Any, tuple[str | None, float, Any]] = {}
        self._lock = threading.Lock()

    # -- caching ---------------------------------------------------------------------------
    def _cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        version = self.store.data_version()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and version is not None and hit[0] == version and now - hit[1] < CACHE_SECONDS:
                return hit[2]
        value = compute()
        with self._lock:
            self._cache[key] = (version, now, value)
        return value

    # -- fleet -----------------------------------------------------------------------------
    def overview(self, query: FleetQuery, page: int, spark: int = 20) -> S.FleetPageOut:
        result = self.store.fleet(query)
        histories = self.store.histories([r.status.image.key for r in result.images], limit=spark)
        items = []
        totals = dict.fromkeys(SEVERITIES, 0)
        for r in result.images:
            st = r.status
            c = counts_of(st.counts)
            for k, v in c.model_dump().items():
                totals[k] += v
            hist = histories.get(st.image.key, [])
            items.append(S.FleetRow(
                image=image_ref(st.image), scanner=st.scanner, counts=c, total=sum(c.model_dump().values()),
                last_scanned_at=st.last_scanned_at, last_checked_at=st.last_checked_at, notes=list(r.notes),
                kev=st.kev, coverage=coverage_out(st.coverage),
                last_error=st.last_error, superseded=r.superseded,
                trend=[trend_value(h.scanned_at, h.counts) for h in reversed(hist)]))
        per = max(1, query.limit)
        return S.FleetPageOut(total=result.total, page=page, per_page=per, pages=max(1, math.ceil(result.total / per)),
                              sort=query.sort, order="desc" if query.descending else "asc", items=items,
                              totals=counts_of(totals))

    def fleet_totals(self) -> tuple[dict[str, int], list[str]]:
        """Findings per severity over the current images, and the registries (cached like the trend)."""
        def compute():
            st = self.store.stats()
            return st.findings, sorted(set(st.images) | set(st.failing))
        return self._cached("totals", compute)

    def trend(self, days: int = 90) -> S.TrendOut:
        def compute() -> list[TrendPoint]:
            return self.store.fleet_trend(since=utcnow() - timedelta(days=days), buckets=120)
        points = self._cached(("trend", days), compute)
        return S.TrendOut(days=days, points=[trend_value(p.at, p.counts) for p in points])

    # -- one image ---------------------------------------------------------------------------
    def image(self, registry: str, repository: str, digest: str, *, severity: Severity | None = None,
              fixable: bool | None = None, package: str = "", kev: bool = False) -> S.ImageDetailOut:
        snap = self.store.snapshot(registry, repository, digest, with_inventory=False)
        key = (registry, repository, digest)
        rows = self.store.fleet(FleetQuery(registry=registry, text=repository, include_superseded=True,
                                           sort="repository", descending=False, limit=100_000)).images
        row = next((r for r in rows if r.status.image.key == key), None)
        if snap is None and row is None:
            raise NotFound(f"no image {registry}/{repository}@{digest} in the store")
        img = snap.image if snap else row.status.image
        history = self.store.history(registry, repository, digest, limit=500)
        timeline = self.store.recent_events(registry, repository, digest, limit=200)
        findings = list(snap.findings) if snap else []
        total = len(findings)
        pkg = package.strip().lower()
        findings = [f for f in findings
                    if (severity is None or f.severity >= severity)
                    and (fixable is None or f.fixable == fixable)
                    and (not pkg or pkg in f.package_name.lower())
                    and (not kev or f.kev is not None)]
        findings.sort(key=priority_key)
        kev_total = sum(1 for f in snap.findings if f.kev is not None) if snap else None
        return S.ImageDetailOut(
            image=image_ref(img), scanner=snap.scanner if snap else (row.status.scanner if row else None),
            scanned_at=snap.scanned_at if snap else None, state=snap.state.value if snap else None,
            distro=snap.distro if snap else None, counts=counts_of(snap.counts if snap else {}),
            notes=list(snap.notes) if snap else [], last_error=row.status.last_error if row else None,
            superseded=row.superseded if row else False, findings_total=total,
            findings=[finding_out(f) for f in findings], kev=kev_total,
            coverage=coverage_detail(snap.coverage) if snap else None,
            suppressed=[finding_out(f) for f in sorted(snap.suppressed, key=priority_key)] if snap else [],
            history=[trend_value(h.scanned_at, h.counts) for h in reversed(history)],
            timeline=[event_out(e, here=digest) for e in timeline])

    # -- one vulnerability ---------------------------------------------------------------------
    def vulnerability(self, vid: str) -> S.VulnerabilityOut:
        hits = self.store.affected(vid)
        if not hits:
            raise NotFound(f"no current image has {vid}")
        aliases = sorted({a for h in hits for a in (h.finding.vulnerability_id, *h.finding.aliases)} - {vid})
        worst = max(hits, key=lambda h: h.finding.severity).finding
        links = list(dict.fromkeys(link for h in hits for link in (h.finding.link, *h.finding.links)))
        sinces = [h.since for h in hits if h.since is not None]
        hits.sort(key=lambda h: (h.image.registry, h.image.repository, h.image.digest, h.finding.package_name))
        return S.VulnerabilityOut(
            id=vid, aliases=aliases, title=next((h.finding.title for h in hits if h.finding.title), ""),
            severity=worst.severity.name, links=links, first_seen=min(sinces) if sinces else None,
            images=len({h.image.key for h in hits}),
            affected=[S.AffectedOut(image=image_ref(h.image), package_name=h.finding.package_name,
                                    package_version=h.finding.package_version, ecosystem=h.finding.ecosystem,
                                    severity=h.finding.severity.name, fixed_versions=list(h.finding.fixed_versions),
                                    since=h.since) for h in hits])

    # -- remediation ---------------------------------------------------------------------------
    def remediation(self, days: int = 90) -> S.RemediationOut:
        return S.RemediationOut(days=days, upgrades=self._cached("upgrades", self._upgrades),
                                mttr=self._cached(("mttr", days), lambda: self._mttr(days)))

    def _upgrades(self) -> list[S.UpgradeOut]:
        summary = self.store.fixable_summary()
        by_pkg: dict[tuple[str, str], list] = defaultdict(list)
        for g in summary.groups:
            by_pkg[(g.ecosystem, g.package)].append(g)
        out = []
        for (eco, pkg), groups in by_pkg.items():
            needs = [needed_fix(g.version, g.fixed_versions) for g in groups]
            needs = [n for n in needs if n]
            if not needs:
                continue
            target = max(needs, key=version_key)
            n = sum(g.findings for g in groups)
            crit = sum(g.findings for g in groups if g.severity == "CRITICAL")
            high = sum(g.findings for g in groups if g.severity == "HIGH")
            m = summary.images_by_package.get((eco, pkg), 0)
            out.append(S.UpgradeOut(
                ecosystem=eco, package=pkg, installed=sorted({g.version for g in groups}, key=version_key),
                target=target, findings=n, critical=crit, high=high, images=m,
                vulnerabilities=sorted({g.vulnerability_id for g in groups}),
                text=f"upgrade {pkg} to {target} fixes {n} finding{'s' * (n != 1)} ({crit} critical) "
                     f"in {m} image{'s' * (m != 1)}"))
        out.sort(key=lambda u: (-u.critical, -u.high, -u.findings, -u.images, u.ecosystem, u.package))
        return out

    def _mttr(self, days: int) -> list[S.MttrOut]:
        fixes = self.store.fixes(utcnow() - timedelta(days=days))
        per: dict[tuple[str, str], list] = defaultdict(list)
        for f in fixes:
            per[(f.registry, f.repository)].append(f)
        out = []
        for (reg, repo), items in sorted(per.items()):
            spans = [(f.fixed_at - f.first_seen).total_seconds() for f in items if f.first_seen is not None]
            mean = sum(spans) / len(spans) if spans else None
            out.append(S.MttrOut(registry=reg, repository=repo, fixed=len(items), measured=len(spans),
                                 mean_seconds=mean, mean_days=mean / 86400 if mean is not None else None))
        return out

    # -- outbox --------------------------------------------------------------------------------
    def deliveries(self, status: DeliveryStatus | None = None, limit: int = 100) -> S.DeliveriesOut:
        rows = self.store.deliveries(status, limit=limit)
        return S.DeliveriesOut(counts=self.store.stats().deliveries, items=[delivery_out(d) for d in rows],
                               writable=self._writer is not None)

    def requeue(self, delivery_id: int) -> S.RequeueOut:
        """Put one dead letter back in the queue, then run a delivery (through the pipeline)."""
        if self._writer is None:
            raise ReadOnly("this server is read-only: set web.write_token to enable write actions")
        d = self.store.delivery(delivery_id)
        if d is None:
            raise NotFound(f"no delivery {delivery_id}")
        if d.status is not DeliveryStatus.DEAD:
            raise Conflict(f"delivery {delivery_id} is {d.status.value}, not a dead letter")
        pipeline = self._writer()
        try:
            n = pipeline.store.retry_dead([delivery_id])
            report = pipeline.deliver()
        finally:
            pipeline.close()
        after = self.store.delivery(delivery_id)
        return S.RequeueOut(requeued=n, delivered=report.delivered, failed=report.failed, dead=report.dead,
                            status=after.status.value if after else "unknown")


__all__ = ["Dashboard", "NotFound", "Conflict", "ReadOnly", "StoreError", "image_url", "vuln_url"]
