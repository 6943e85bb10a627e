"""``/metrics``: the store's totals in the Prometheus text format (computed at each scrape).

What the store does not record yet is listed by ``vulnwatch_not_recorded{metric="..."} 1``
instead of a made-up value: cycle durations (a cycle's timing is not stored). KEV findings
come from each current snapshot's stored KEV count. "Last successful cycle" is derived: the last time a cycle recorded or
confirmed an image of the registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..store.interface import Store

NOT_RECORDED = {
    "cycle_duration_seconds": "how long a monitoring cycle took (cycles do not record their timing yet)",
}


class _StoreCollector:
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self):
        st = self.store.stats()
        g = GaugeMetricFamily("vulnwatch_images", "Watched images (current digests) per registry.",
                              labels=["registry"])
        for reg, n in sorted(st.images.items()):
            g.add_metric([reg], n)
        yield g
        g = GaugeMetricFamily("vulnwatch_findings", "Findings over the current images, per severity.",
                              labels=["severity"])
        for sev, n in st.findings.items():
            g.add_metric([sev], n)
        yield g
        yield GaugeMetricFamily("vulnwatch_kev_findings",
                                "Findings over the current images listed in CISA's Known Exploited Vulnerabilities "
                                "catalog (suppressed ones not counted).", value=st.kev)
        g = GaugeMetricFamily("vulnwatch_last_checked_timestamp_seconds",
                              "Last time a cycle recorded or confirmed an image of the registry (Unix time): "
                              "the last successful cycle.", labels=["registry"])
        for reg, at in sorted(st.last_checked.items()):
            g.add_metric([reg], at.timestamp())
        yield g
        g = GaugeMetricFamily("vulnwatch_scan_failures", "Images whose last scan attempt failed, per registry.",
                              labels=["registry"])
        for reg in sorted(set(st.images) | set(st.failing)):
            g.add_metric([reg], st.failing.get(reg, 0))
        yield g
        yield GaugeMetricFamily("vulnwatch_outbox_depth", "Deliveries waiting in the outbox (pending).",
                                value=st.deliveries.get("pending", 0))
        yield GaugeMetricFamily("vulnwatch_deliveries_failed",
                                "Pending deliveries that failed at least once (to be retried).", value=st.retrying)
        yield GaugeMetricFamily("vulnwatch_deliveries_dead", "Dead letters (gave up; re-queue them).",
                                value=st.deliveries.get("dead", 0))
        g = GaugeMetricFamily("vulnwatch_deliveries", "Outbox rows per status.", labels=["status"])
        for status, n in sorted(st.deliveries.items()):
            g.add_metric([status], n)
        yield g
        g = GaugeMetricFamily("vulnwatch_not_recorded", "Metrics the store does not record yet (see docs/dashboard.md).",
                              labels=["metric"])
        for name in NOT_RECORDED:
            g.add_metric([name], 1)
        yield g


def render(store: Store) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(store))
    return generate_latest(registry)
