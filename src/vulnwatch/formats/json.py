"""``--format json``: the ``vulnwatch.scan/v1`` document.

One JSON object, keys always present (``null`` when unknown), 2-space indented, keys in the
order below. Lists are in a stable order, so two renderings of the same result are identical.

``schema``
    Always ``"vulnwatch.scan/v1"``. A consumer should check it; fields are only ever added
    within v1, never renamed or removed.
``image``
    ``registry`` (configured registry name), ``repository``, ``digest`` (``sha256:...``),
    ``tags`` (list), ``pushed_at`` (ISO 8601 or null), ``media_type``, ``size_bytes``.
``distro``
    OS ecosystem detected in the image (``Debian:12``), null when unknown.
``scanner``
    Which scanner produced the result (``ecr-basic``, ``ecr-enhanced``, ``builtin``).
``state``
    ``COMPLETE``, or ``UNSUPPORTED`` when the scanner cannot scan this image (findings empty).
``scanned_at``, ``vulnerability_source_updated_at``
    ISO 8601 times with offset; the second is null when the scanner does not say.
``packages``
    The inventory, ordered by ecosystem, name, version, path: objects with ``name``,
    ``version``, ``ecosystem``, ``purl``, ``source_name``, ``source_version``, ``path``,
    ``layer`` (null when unknown). Empty for scanners that do not list packages (ECR).
``findings``
    :meth:`vulnwatch.model.Finding.to_dict` objects by priority: listed in KEV first, then
    severity, then EPSS, then CVSS score. Each says where its severity came from
    (``severity_source``), its KEV entry (``kev``: ``date_added``, ``due_date``,
    ``known_ransomware``, or null) and ``epss`` / ``epss_percentile`` (null when unknown).
    Omitted with ``--sbom-only``.
``coverage``
    What the advisory data could judge (null when the scanner does not say): ``state``
    (``complete``, ``partial``, ``missing``), ``missing`` (ecosystems and releases without
    data), ``ecosystems`` (each: ``ecosystem``, ``packages``, ``present``, ``records``,
    ``updated_at``, ``age_days``), ``unjudged_count`` and ``unjudged`` (``ecosystem``, ``name``,
    ``version``, ``reason``).
``counts``
    Findings per severity name, every severity present, most severe first. Omitted with
    ``--sbom-only``. Suppressed findings are not counted.
``suppressed``
    Findings an ignore rule or VEX statement suppresses, as ``findings`` are, each with a
    ``suppression`` object: ``kind`` (``ignore`` or ``vex``), ``reason``, ``source`` (``FILE:LINE``,
    or ``FILE#statements[N]``), ``rule`` (what it matches), ``status`` and ``justification`` (VEX),
    ``expires`` (``YYYY-MM-DD`` or null). Omitted with ``--sbom-only``.
``notes``
    Human-readable remarks from the scanner (list of strings).

:data:`JSON_SCHEMA` is the same description as a JSON Schema (draft 2020-12).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..model import Package, ScanResult, Severity, severity_counts
from ._shared import package_order, severity_order
from .interface import Formatter

SCHEMA_ID = "vulnwatch.scan/v1"
"""Value of the ``schema`` key."""

_nullable_str = {"type": ["string", "null"]}
_severity_names = [s.name for s in Severity]

JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://vulnwatch.invalid/schemas/scan-v1.json",
    "title": "vulnwatch scan result (vulnwatch.scan/v1)",
    "type": "object",
    "required": ["schema", "image", "distro", "scanner", "state", "scanned_at",
                 "vulnerability_source_updated_at", "packages", "notes"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "image": {
            "type": "object",
            "required": ["registry", "repository", "digest", "tags", "pushed_at", "media_type", "size_bytes"],
            "properties": {
                "registry": {"type": "string"},
                "repository": {"type": "string"},
                "digest": {"type": "string", "pattern": "^[a-z0-9]+:[a-f0-9]+$"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "pushed_at": {"type": ["string", "null"], "format": "date-time"},
                "media_type": _nullable_str,
                "size_bytes": {"type": ["integer", "null"], "minimum": 0},
            },
        },
        "distro": _nullable_str,
        "scanner": {"type": "string"},
        "state": {"enum": ["COMPLETE", "UNSUPPORTED"]},
        "scanned_at": {"type": "string", "format": "date-time"},
        "vulnerability_source_updated_at": {"type": ["string", "null"], "format": "date-time"},
        "packages": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "version", "ecosystem", "purl", "source_name", "source_version",
                         "path", "layer"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "ecosystem": {"type": "string"}, "purl": _nullable_str,
                           "source_name": _nullable_str, "source_version": _nullable_str,
                           "path": _nullable_str, "layer": _nullable_str},
        }},
        "findings": {"type": "array", "items": {
            "type": "object",
            "required": ["vulnerability_id", "aliases", "package_name", "package_version", "ecosystem",
                         "purl", "fixed_versions", "fix_available", "fixable", "severity",
                         "cvss_score", "cvss_vector", "title", "links", "scanner", "exploit_available"],
            "properties": {
                "vulnerability_id": {"type": "string"},
                "aliases": {"type": "array", "items": {"type": "string"}},
                "package_name": {"type": "string"}, "package_version": {"type": "string"},
                "ecosystem": {"type": "string"}, "purl": _nullable_str,
                "fixed_versions": {"type": "array", "items": {"type": "string"}},
                "fix_available": {"type": ["boolean", "null"]}, "fixable": {"type": "boolean"},
                "severity": {"enum": _severity_names},
                "cvss_score": {"type": ["number", "null"], "minimum": 0, "maximum": 10},
                "cvss_vector": _nullable_str, "title": {"type": "string"},
                "links": {"type": "array", "items": {"type": "string"}},
                "scanner": {"type": "string"}, "exploit_available": {"type": ["boolean", "null"]},
                "severity_source": {"type": "string"},
                "kev": {"type": ["object", "null"], "properties": {
                    "date_added": {"type": "string"}, "due_date": _nullable_str,
                    "known_ransomware": {"type": ["boolean", "null"]}}},
                "epss": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "epss_percentile": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            },
        }},
        "coverage": {"type": ["object", "null"], "properties": {
            "state": {"enum": ["complete", "partial", "missing"]},
            "missing": {"type": "array", "items": {"type": "string"}},
            "ecosystems": {"type": "array", "items": {"type": "object", "required": ["ecosystem", "present"]}},
            "unjudged_count": {"type": "integer", "minimum": 0},
            "unjudged": {"type": "array", "items": {"type": "object", "required": ["name", "reason"]}}}},
        "suppressed": {"type": "array", "items": {
            "type": "object", "required": ["vulnerability_id", "package_name", "package_version", "severity",
                                           "suppression"],
            "properties": {"suppression": {
                "type": "object", "required": ["kind", "reason", "source", "rule", "status", "justification",
                                               "expires"],
                "properties": {"kind": {"enum": ["ignore", "vex"]}, "reason": {"type": "string"},
                               "source": {"type": "string"}, "rule": {"type": "string"},
                               "status": _nullable_str, "justification": _nullable_str,
                               "expires": {"type": ["string", "null"], "format": "date"}}}},
        }},
        "counts": {"type": "object", "required": _severity_names,
                   "additionalProperties": False,
                   "properties": {n: {"type": "integer", "minimum": 0} for n in _severity_names}},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}
"""JSON Schema of the document :class:`JsonFormatter` writes."""


def _time(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def package_to_dict(p: Package) -> dict[str, Any]:
    """JSON-ready form of one inventory entry (every field, null when unknown)."""
    return {"name": p.name, "version": p.version, "ecosystem": p.ecosystem, "purl": p.purl,
            "source_name": p.source_name, "source_version": p.source_version, "path": p.path,
            "layer": p.layer}


def scan_to_dict(result: ScanResult, *, sbom_only: bool = False) -> dict[str, Any]:
    """The ``vulnwatch.scan/v1`` document as a dict (see the module docstring)."""
    img = result.image
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "image": {"registry": img.registry, "repository": img.repository, "digest": img.digest,
                  "tags": list(img.tags), "pushed_at": _time(img.pushed_at),
                  "media_type": img.media_type, "size_bytes": img.size_bytes},
        "distro": result.distro,
        "scanner": result.scanner,
        "state": result.state.value,
        "scanned_at": _time(result.scanned_at),
        "vulnerability_source_updated_at": _time(result.vulnerability_source_updated_at),
        "packages": [package_to_dict(p) for p in package_order(result.packages)],
    }
    if not sbom_only:
        doc["findings"] = [f.to_dict() for f in severity_order(result.findings)]
        doc["counts"] = severity_counts(result.findings)
        doc["coverage"] = result.coverage.to_dict() if result.coverage is not None else None
        doc["suppressed"] = [f.to_dict() for f in severity_order(result.suppressed)]
    doc["notes"] = list(result.notes)
    return doc


class JsonFormatter(Formatter):
    """The ``vulnwatch.scan/v1`` JSON document, for machines."""

    name = "json"
    media_type = "application/json"

    def render(self, result: ScanResult, *, sbom_only: bool = False) -> str:
        return json.dumps(scan_to_dict(result, sbom_only=sbom_only), indent=2, ensure_ascii=False) + "\n"
