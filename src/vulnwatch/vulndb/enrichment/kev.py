"""CISA's Known Exploited Vulnerabilities catalog (``known_exploited_vulnerabilities.json``).

The catalog as CISA publishes it: ``catalogVersion``, ``dateReleased`` and ``vulnerabilities[]``
with ``cveID``, ``dateAdded``, ``dueDate``, ``knownRansomwareCampaignUse`` (``Known`` /
``Unknown``). An entry without a CVE id or a ``dateAdded`` is skipped and named.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._read import load_json, read_bytes
from .interface import CVE_ID, EnrichmentData, EnrichmentError, EnrichmentSource

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


class KevSource(EnrichmentSource):
    name = "kev"
    default_url = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return b'"catalogVersion"' in head or (b'"cveID"' in head and b'"dateAdded"' in head)

    def read(self, path: Path) -> EnrichmentData:
        doc = load_json(read_bytes(path), str(path))
        if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
            raise EnrichmentError(f"{path}: not a KEV catalog (no vulnerabilities list)")
        out = EnrichmentData(version=str(doc.get("catalogVersion") or doc.get("dateReleased") or "") or None)
        seen = set()
        for i, v in enumerate(doc["vulnerabilities"]):
            where = f"{path.name}: vulnerabilities[{i}]"
            if not isinstance(v, dict):
                out.skip(where, "not an object")
                continue
            cve, added = v.get("cveID"), v.get("dateAdded")
            if not isinstance(cve, str) or not CVE_ID.match(cve):
                out.skip(where, f"cveID {cve!r} is not a CVE id")
                continue
            if not isinstance(added, str) or not _DATE.match(added):
                out.skip(f"{where} ({cve})", f"dateAdded {added!r} is not a date")
                continue
            due = v.get("dueDate")
            ransom = v.get("knownRansomwareCampaignUse")
            if cve in seen:
                continue
            seen.add(cve)
            out.kev.append((cve, added[:10], due[:10] if isinstance(due, str) and _DATE.match(due) else None,
                            1 if isinstance(ransom, str) and ransom.strip().lower() == "known" else None))
        out.records = len(out.kev)
        return out
