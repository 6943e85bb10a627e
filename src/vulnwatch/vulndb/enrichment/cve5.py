"""CVE JSON 5 records (the CVE Program's format, ``cvelistV5``; CISA's vulnrichment).

One record per file (``CVE-YYYY-N.json``), in a folder (recursively), a zip of them (the
``cvelistV5`` archive) or one file. CVSS comes from ``containers.cna.metrics[]`` (the CNA's) and
``containers.adp[].metrics[]`` (each ADP's, e.g. CISA-ADP), keys ``cvssV4_0``, ``cvssV3_1``,
``cvssV3_0``, ``cvssV2_0`` with their ``vectorString``. Rejected records carry nothing.
"""

from __future__ import annotations

from pathlib import Path

from ._read import json_members, load_json
from .interface import CVE_ID, RANKS, EnrichmentData, EnrichmentError, EnrichmentSource, vector_ok

_METRICS = {"cvssV4_0": "CVSS_V4", "cvssV3_1": "CVSS_V3", "cvssV3_0": "CVSS_V3", "cvssV2_0": "CVSS_V2"}


class Cve5Source(EnrichmentSource):
    name = "cve5"
    default_url = None   # the whole cvelistV5 archive is large: configure a URL (or import a folder)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return b'"CVE_RECORD"' in head or b'"cveMetadata"' in head

    def read(self, path: Path) -> EnrichmentData:
        out = EnrichmentData()
        found = 0
        newest = ""
        for label, data in json_members(path):
            try:
                doc = load_json(data, label)
            except EnrichmentError as e:
                out.skip(label, str(e))
                continue
            meta = doc.get("cveMetadata") if isinstance(doc, dict) else None
            if not isinstance(meta, dict):
                continue       # not a CVE record (a README, a delta log): not counted
            cid = meta.get("cveId")
            if not isinstance(cid, str) or not CVE_ID.match(cid):
                out.skip(label, f"cveId {cid!r} is not a CVE id")
                continue
            found += 1
            if isinstance(meta.get("dateUpdated"), str):
                newest = max(newest, meta["dateUpdated"])
            if meta.get("state") == "REJECTED":
                continue
            containers = doc.get("containers") if isinstance(doc.get("containers"), dict) else {}
            cna = containers.get("cna") if isinstance(containers.get("cna"), dict) else {}
            org = (cna.get("providerMetadata") or {}).get("shortName") or meta.get("assignerShortName") or "cna"
            self._metrics(out, cid, f"cna:{org}", RANKS["cve5:cna"], cna.get("metrics"), label)
            for adp in containers.get("adp") or ():
                if isinstance(adp, dict):
                    name = (adp.get("providerMetadata") or {}).get("shortName") or "adp"
                    self._metrics(out, cid, f"adp:{name}", RANKS["cve5:adp"], adp.get("metrics"), label)
        if not found:
            raise EnrichmentError(f"{path}: no CVE JSON 5 record found")
        out.records = found
        out.version = newest or None
        return out

    @staticmethod
    def _metrics(out: EnrichmentData, cid: str, provider: str, rank: int, metrics: object, label: str) -> None:
        for m in metrics if isinstance(metrics, list) else ():
            if not isinstance(m, dict):
                continue
            for key, kind in _METRICS.items():
                block = m.get(key)
                if isinstance(block, dict):
                    vector = block.get("vectorString")
                    if vector_ok(vector):
                        out.cvss.append((cid, provider, rank, kind, vector))
                    else:
                        out.skip(f"{label} ({cid})", f"{provider} {key}: no usable vectorString")
