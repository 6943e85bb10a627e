"""Severity of an OSV record: CVSS vectors -> base score and rating, else the source's own rating.

Order of preference for one affected package: its ``affected[].severity`` vectors,
then the record's top-level ``severity``; among vectors ``CVSS_V3`` then
``CVSS_V4`` then ``CVSS_V2`` (the first that parses wins). Without a usable
vector: ``affected[].ecosystem_specific.severity``, then
``affected[].database_specific.severity``, then the record's
``database_specific.severity`` (GHSA's ``MODERATE``, Ubuntu's priority, ...).
Otherwise :attr:`Severity.UNKNOWN`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Mapping

import cvss
from cvss.exceptions import CVSSError

from ..model import Severity

log = logging.getLogger(__name__)

VECTOR_PREFERENCE = ("CVSS_V3", "CVSS_V4", "CVSS_V2")

_MAX_VECTOR_LENGTH = 1024
"""Longer strings are not scored (the longest valid CVSS v4 vector with every optional
metric is about 250 characters)."""


@dataclass(frozen=True)
class Rating:
    """A severity as the matcher reports it."""

    severity: Severity
    """The rating."""
    score: float | None = None
    """CVSS base score, when it came from a vector."""
    vector: str | None = None
    """The CVSS vector it came from, when it did."""
    source: str = ""
    """Where it came from (:attr:`vulnwatch.model.Finding.severity_source`): ``record:<id>`` (the
    record's own CVSS), ``alias:<id>`` (another record of the same vulnerability), ``cve5:cna:<org>``,
    ``cve5:adp:<org>``, ``nvd:<source>`` (enrichment), ``text:<id>`` (the record's own rating)."""


UNKNOWN = Rating(Severity.UNKNOWN)


def rating_from_score(score: float, version: int = 3) -> Severity:
    """Qualitative rating of a CVSS base score (v3/v4 bands; v2 uses NVD's LOW/MEDIUM/HIGH)."""
    if version == 2:
        return Severity.LOW if score < 4.0 else Severity.MEDIUM if score < 7.0 else Severity.HIGH
    if score == 0.0:
        return Severity.NEGLIGIBLE
    if score < 4.0:
        return Severity.LOW
    if score < 7.0:
        return Severity.MEDIUM
    if score < 9.0:
        return Severity.HIGH
    return Severity.CRITICAL


@functools.lru_cache(maxsize=1 << 14)
def score_vector(kind: str, vector: str) -> Rating | None:
    """Score one ``severity[]`` entry; None when its type is not CVSS or the vector does not parse.

    Never raises: a vector the ``cvss`` package refuses (``CVSSError``) or fails on in
    any other way (its parsing is not specified for arbitrary strings; a bug there must
    not stop a scan) is simply not usable, and the next source of a rating is tried.
    """
    if not isinstance(vector, str) or len(vector) > _MAX_VECTOR_LENGTH:
        return None
    try:
        if kind == "CVSS_V3":
            c3 = cvss.CVSS3(vector)
            score = float(c3.scores()[0])
            severity = Severity.parse(c3.severities()[0])
        elif kind == "CVSS_V4":
            c4 = cvss.CVSS4(vector)
            score = float(c4.base_score)
            severity = Severity.parse(c4.severity)
        elif kind == "CVSS_V2":
            score = float(cvss.CVSS2(vector).scores()[0])
            severity = rating_from_score(score, 2)
        else:
            return None
    except CVSSError:
        return None
    except Exception:  # see above; RecursionError included
        log.debug("cvss failed on %s vector %r", kind, vector, exc_info=True)
        return None
    if not 0.0 <= score <= 10.0:  # NaN or out of range: not a CVSS base score
        return None
    return Rating(severity, score, vector)


def _from_vectors(entries: Any) -> Rating | None:
    if not isinstance(entries, list):
        return None
    by_kind: dict[str, str] = {}
    for e in entries:
        if isinstance(e, Mapping) and isinstance(e.get("score"), str):
            by_kind.setdefault(str(e.get("type")), e["score"])
    for kind in VECTOR_PREFERENCE:
        if kind in by_kind:
            rating = score_vector(kind, by_kind[kind])
            if rating is not None:
                return rating
    return None


def _from_specific(*blocks: Any) -> Rating | None:
    for block in blocks:
        if isinstance(block, Mapping):
            value = block.get("severity")
            if isinstance(value, str):
                sev = Severity.parse(value)
                if sev is not Severity.UNKNOWN:
                    return Rating(sev)
    return None


def rate_vectors(record: Mapping[str, Any], affected: Mapping[str, Any] | None = None) -> Rating | None:
    """The rating of ``record``'s own CVSS vectors for one ``affected`` entry (its own first,
    then the record's), or None when it has no usable vector."""
    if not isinstance(record, Mapping):
        return None
    if not isinstance(affected, Mapping):
        affected = {}
    return _from_vectors(affected.get("severity")) or _from_vectors(record.get("severity"))


def rate_text(record: Mapping[str, Any], affected: Mapping[str, Any] | None = None) -> Rating | None:
    """The record's own textual rating (``ecosystem_specific`` / ``database_specific``
    ``severity``: GHSA's ``MODERATE``, a distribution's urgency), or None."""
    if not isinstance(record, Mapping):
        return None
    if not isinstance(affected, Mapping):
        affected = {}
    return _from_specific(affected.get("ecosystem_specific"), affected.get("database_specific"),
                          record.get("database_specific"))


def kind_rank(kind: str) -> int:
    """Position of a vector kind in :data:`VECTOR_PREFERENCE` (unknown kinds last)."""
    try:
        return VECTOR_PREFERENCE.index(kind)
    except ValueError:
        return len(VECTOR_PREFERENCE)


def best_vector(entries: "list[tuple[str, str, str]]") -> Rating | None:
    """The first usable of ``(kind, vector, source)`` triples, in the order given (sort them
    with :func:`kind_rank` first)."""
    for kind, vector, source in entries:
        r = score_vector(kind, vector)
        if r is not None:
            return Rating(r.severity, r.score, r.vector, source)
    return None


def rate(record: Mapping[str, Any], affected: Mapping[str, Any] | None = None) -> Rating:
    """Severity of ``record`` for one of its ``affected`` entries (see module doc for the order).

    Never raises: parts of the wrong type count as absent (:data:`UNKNOWN` at worst).
    """
    if not isinstance(record, Mapping):
        record = {}
    if not isinstance(affected, Mapping):
        affected = {}
    return (_from_vectors(affected.get("severity"))
            or _from_vectors(record.get("severity"))
            or _from_specific(affected.get("ecosystem_specific"), affected.get("database_specific"),
                              record.get("database_specific"))
            or UNKNOWN)
