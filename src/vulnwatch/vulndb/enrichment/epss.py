"""FIRST's EPSS scores: the daily CSV (``epss_scores-YYYY-MM-DD.csv.gz``).

A comment line ``#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z``, the header
``cve,epss,percentile``, then one line per CVE. Plain or gzip-compressed. A line whose id is
not a CVE or whose numbers are not in 0..1 is skipped and named.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ._read import read_bytes
from .interface import CVE_ID, EnrichmentData, EnrichmentError, EnrichmentSource


class EpssSource(EnrichmentSource):
    name = "epss"
    default_url = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        h = head.lstrip(b"\xef\xbb\xbf").lower()
        return h.startswith(b"#model_version") or h.startswith(b"cve,epss")

    def read(self, path: Path) -> EnrichmentData:
        try:
            text = read_bytes(path).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise EnrichmentError(f"{path}: not UTF-8 text ({e}); not an EPSS CSV") from None
        out = EnrichmentData()
        lines = text.splitlines()
        start = 0
        if lines and lines[0].startswith("#"):
            meta = dict(p.split(":", 1) for p in lines[0][1:].split(",") if ":" in p)
            out.version = (meta.get("score_date") or meta.get("model_version") or "").strip() or None
            start = 1
        reader = csv.reader(io.StringIO("\n".join(lines[start:])))
        header = next(reader, None)
        if not header or [h.strip().lower() for h in header[:3]] != ["cve", "epss", "percentile"]:
            raise EnrichmentError(f"{path}: no 'cve,epss,percentile' header; not an EPSS CSV")
        for n, row in enumerate(reader, start=start + 2):
            if not row:
                continue
            where = f"{path.name}: line {n}"
            try:
                cve, score, pct = row[0].strip(), float(row[1]), float(row[2]) if len(row) > 2 and row[2] else None
            except (ValueError, IndexError):
                out.skip(where, "not cve,epss,percentile")
                continue
            if not CVE_ID.match(cve):
                out.skip(where, f"{cve!r} is not a CVE id")
                continue
            if not 0.0 <= score <= 1.0 or (pct is not None and not 0.0 <= pct <= 1.0):
                out.skip(f"{where} ({cve})", "epss and percentile must be between 0 and 1")
                continue
            out.epss.append((cve, score, pct))
        out.records = len(out.epss)
        return out
