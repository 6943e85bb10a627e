"""What the notifiers share to keep a message within a receiver's size limit.

Every notifier has a ``max_payload_bytes`` (configurable per sink; the defaults are below).
Messages are built piece by piece with a :class:`JsonBudget` that counts the exact bytes the
compact JSON encoding (:func:`json_bytes`) will take, so nothing larger than the limit is
ever assembled: a digest over many large events costs the memory of one message, not of
every event's findings serialised at once.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..diff import REASON_LABELS, change_parts, coverage_change
from ..model import Event, EventKind, Finding, Severity, stable_id

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "MIN_PAYLOAD_BYTES", "JsonBudget", "change_text", "check_max_payload",
           "count_parts", "cut_subject", "digest_order", "first_listed", "json_bytes", "json_size",
           "most_severe", "severity_order"]

T = TypeVar("T")

MIN_PAYLOAD_BYTES = 4096
"""The smallest ``max_payload_bytes`` a sink accepts (room for the headline and a few findings)."""

DEFAULT_MAX_PAYLOAD_BYTES = {
    "webhook": 256 * 1024,
    # Slack documents per-block limits only (section text 3,000 characters, 50 blocks), but
    # rejects messages whose blocks add up to more than about 13,000 characters
    # (msg_blocks_too_long); bytes >= characters, so 12,000 bytes stays under it.
    "slack": 12_000,
    # Teams: "the message size limit is 28 KB" (the whole request); 1 KiB left for its envelope.
    "teams": 27 * 1024,
    # SMTP servers accept 10 MB and more (Postfix's default message_size_limit is 10,240,000);
    # 1 MiB is plenty for a readable message.
    "email": 1024 * 1024,
}
"""Default ``max_payload_bytes`` per sink type: what the receivers accept."""


def check_max_payload(kind: str, name: str, value: int) -> int:
    """``value`` if it is a usable ``max_payload_bytes``, else ``ValueError`` naming the sink."""
    if value < MIN_PAYLOAD_BYTES:
        raise ValueError(f"{kind} sink {name!r}: max_payload_bytes must be at least {MIN_PAYLOAD_BYTES}")
    return value


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON: the exact bytes the HTTP notifiers send."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_size(obj: Any) -> int:
    """``len(json_bytes(obj))``."""
    return len(json_bytes(obj))


class JsonBudget:
    """Bytes left for the items of one JSON array, in the compact encoding.

    ``limit`` is what the whole array may take once filled (``[`` ``]`` excluded: give the
    size of the enclosing document with the array empty as ``used``). ``take(item)`` adds
    an item if it fits (with its separating comma) and says whether it did; ``reserve``
    keeps bytes back for what must still follow (an "and N more" line).
    """

    def __init__(self, limit: int, used: int = 0) -> None:
        self.limit = limit
        self.used = used
        self.count = 0

    def cost(self, item: Any) -> int:
        """Bytes ``item`` would add to the array."""
        return json_size(item) + (1 if self.count else 0)

    def fits(self, cost: int, reserve: int = 0) -> bool:
        return self.used + cost + reserve <= self.limit

    def take(self, item: Any, reserve: int = 0) -> bool:
        cost = self.cost(item)
        if not self.fits(cost, reserve):
            return False
        self.used += cost
        self.count += 1
        return True

    @property
    def left(self) -> int:
        return self.limit - self.used


def severity_order(f: Finding) -> tuple:
    """By priority: listed in KEV first, then most severe, then highest EPSS, then the highest
    CVSS score, then by id and package (:func:`vulnwatch.model.priority_order`)."""
    return (not f.in_kev, -int(f.severity), -(f.epss if f.epss is not None else -1.0), -(f.cvss_score or 0.0),
            f.vulnerability_id, f.package_name)


def priority_text(f: Finding) -> str:
    """`` [KEV] EPSS 0.45`` (a leading space) for a finding in KEV or with an EPSS score; empty otherwise."""
    parts = []
    if f.in_kev:
        parts.append("[KEV" + (", ransomware" if f.kev is not None and f.kev.ransomware else "") + "]")
    if f.epss is not None:
        parts.append(f"EPSS {f.epss:.2f}")
    return (" " + " ".join(parts)) if parts else ""


def rescore_parts(c) -> list[str]:
    """What a re-score changed beyond severity/CVSS/fix: ``listed in KEV``, ``EPSS 0.02 → 0.45``."""
    a, b = c.before, c.after
    parts = []
    if "kev" in c.what:
        parts.append("listed in KEV" if b.in_kev else "removed from KEV")
    if "epss" in c.what:
        parts.append(f"EPSS {a.epss if a.epss is not None else '?'} → {b.epss if b.epss is not None else '?'}")
    return parts


def most_severe(items: Iterable[T], n: int, key: Callable[[T], Any]) -> list[T]:
    """The ``n`` first items of ``sorted(items, key=key)`` without sorting (or copying) them all."""
    return heapq.nsmallest(n, items, key=key)


def first_listed(event: Event, name: str, n: int) -> list:
    """The ``n`` most severe entries of ``event.<name>`` (``added``, ``fixed`` or ``changed``,
    a change ranked by its after side) in the order messages list them."""
    items = getattr(event, name)
    if name == "changed":
        return most_severe(items, n, key=lambda c: severity_order(c.after))
    return most_severe(items, n, key=severity_order)


def change_text(event: Event) -> str:
    """``2 new, 1 fixed, 1 changed`` (:func:`vulnwatch.diff.change_parts`, without signs); for a
    ``coverage`` event, what moved (:func:`vulnwatch.diff.coverage_change`)."""
    if event.kind is EventKind.COVERAGE:
        return coverage_change(event.previous_coverage, event.coverage)
    return ", ".join(f"{n} {what}" for what, n in change_parts(event)) or "no finding changes"


def reason_text(event: Event, limit: int = 600) -> str:
    """Why the findings moved, in one line within ``limit`` characters: each reason's summary,
    ``; ``-separated (``advisory data changed: Debian (version ..., imported ...)``); empty for an
    event without reasons (stored before they existed)."""
    text = "; ".join(r.summary for r in event.reasons)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def reason_labels(event: Event) -> str:
    """The reasons' kinds, short: ``ignore rule expired, re-scored``."""
    return ", ".join(dict.fromkeys(REASON_LABELS.get(r.kind, r.kind.value) for r in event.reasons))


def digest_order(events: Sequence[Event]) -> list[Event]:
    """The images of a digest as messages list them: the most severe new finding first."""
    return sorted(events, key=lambda e: (-max((int(f.severity) for f in e.added), default=-1),
                                         e.image.repository, e.image.digest))


def count_parts(event: Event) -> list[tuple[str, int, int | None]]:
    """``[(severity name, count now, change or None), ...]``, most severe first, for the
    severities present now or before; the change is None for a new image (nothing to compare
    with) or when the count did not move. What every message's counts line shows."""
    now, before = event.counts, event.previous_counts
    out = []
    for sev in sorted(Severity, reverse=True):
        n, p = now.get(sev.name, 0), before.get(sev.name, 0)
        if n or p:
            out.append((sev.name, n, n - p if before and n != p else None))
    return out


def cut_subject(subject: str, suffix: str, limit: int) -> str:
    """``subject + suffix`` within ``limit`` characters, cutting the subject (never the suffix,
    e.g. `` — findings changed``) and marking the cut with ``…``."""
    room = limit - len(suffix)
    if len(subject) > room:
        subject = subject[: max(0, room - 1)] + "…"
    return subject + suffix


def digest_id(events: Sequence[Event]) -> str:
    """The id of a digest: derived from the set of its event ids (the same events, the same id)."""
    return stable_id("digest", sorted(e.id for e in events))

