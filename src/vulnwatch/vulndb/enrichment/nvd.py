"""NVD's CVE API 2.0 responses (``/rest/json/cves/2.0``), one or many pages.

A response is ``{"format": "NVD_CVE", "version": "2.0", "timestamp": ..., "vulnerabilities":
[{"cve": {"id", "metrics": {"cvssMetricV40" | "cvssMetricV31" | "cvssMetricV30" | "cvssMetricV2":
[{"source", "type": "Primary" | "Secondary", "cvssData": {"vectorString", ...}}]}}}]}``. A file,
a folder of such files (the pages of a download) or a zip of them.
"""

from __future__ import annotations

from pathlib import Path

from ._read import json_members, load_json
from .interface import CVE_ID, RANKS, EnrichmentData, EnrichmentError, EnrichmentSource, vector_ok

_METRICS = {"cvssMetricV40": "CVSS_V4", "cvssMetricV31": "CVSS_V3", "cvssMetricV30": "CVSS_V3",
            "cvssMetricV2": "CVSS_V2"}


class NvdSource(EnrichmentSource):
    name = "nvd"
    default_url = None   # the API pages and rate-limits: point vulndb.enrichment at a mirror

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return b'"NVD_CVE"' in head or (b'"resultsPerPage"' in head and b'"vulnerabilities"' in head)

    def read(self, path: Path) -> EnrichmentData:
        out = EnrichmentData()
        seen: set[str] = set()
        pages = 0
        for label, data in json_members(path):
            doc = load_json(data, label)
            if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
                out.skip(label, "not an NVD CVE API 2.0 response (no vulnerabilities list)")
                continue
            pages += 1
            if isinstance(doc.get("timestamp"), str):
                out.version = max(out.version or "", doc["timestamp"])
            for i, item in enumerate(doc["vulnerabilities"]):
                cve = item.get("cve") if isinstance(item, dict) else None
                cid = cve.get("id") if isinstance(cve, dict) else None
                where = f"{label}: vulnerabilities[{i}]"
                if not isinstance(cid, str) or not CVE_ID.match(cid):
                    out.skip(where, f"id {cid!r} is not a CVE id")
                    continue
                seen.add(cid)
                metrics = cve.get("metrics") if isinstance(cve.get("metrics"), dict) else {}
                for key, kind in _METRICS.items():
                    for m in metrics.get(key) or ():
                        if not isinstance(m, dict) or not isinstance(m.get("cvssData"), dict):
                            continue
                        vector = m["cvssData"].get("vectorString")
                        if not vector_ok(vector):
                            out.skip(f"{where} ({cid})", f"{key}: no usable vectorString")
                            continue
                        typ = "Primary" if m.get("type") == "Primary" else "Secondary"
                        provider = str(m.get('source') or 'nvd')
                        out.cvss.append((cid, provider, RANKS[f"nvd:{typ}"], kind, vector))
        if not pages:
            raise EnrichmentError(f"{path}: no NVD CVE API 2.0 response found")
        out.records = len(seen)
        return out
