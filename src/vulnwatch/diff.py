"""What changed between two scans: a pure function from snapshots to an :class:`Event`.

No I/O and no state: the pipeline reads the previous snapshot from the store, calls
:func:`diff`, and writes the snapshot and the event in one transaction.

Finding identity is :attr:`vulnwatch.model.Finding.key` (vulnerability, ecosystem,
package, installed version):

- ``added``: keys in the current scan only;
- ``fixed``: keys in the compared-against scan only;
- ``changed``: keys in both whose severity, CVSS score, fixability or fixed versions
  differ (:class:`vulnwatch.model.FindingChange`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .model import (Event, EventKind, Finding, FindingChange, ScanResult, ScanState, by_finding_key,
                    priority_order, stable_id, utcnow)

__all__ = ["KIND_LABELS", "change_parts", "diff", "event_id_of", "summarize", "finding_order"]


def finding_order(finding: Finding) -> tuple:
    """Sort key: by priority (:func:`vulnwatch.model.priority_order`: in KEV, severity, EPSS),
    then by vulnerability id, package and version."""
    return priority_order(finding)


def _meaningful(result: ScanResult | None) -> ScanResult | None:
    """A snapshot to compare against, or None when it holds no real findings (UNSUPPORTED)."""
    if result is None or result.state is not ScanState.COMPLETE:
        return None
    return result


def diff(current: ScanResult, previous: ScanResult | None, tag_base: ScanResult | None = None,
         moved_tags: Iterable[str] = (), *, now: datetime | None = None,
         epss_threshold: float = 0.1) -> Event | None:
    """The event describing how ``current`` differs, or None when nothing worth telling changed.

    ``previous`` is the stored snapshot of the same digest. ``tag_base`` is the snapshot of
    the digest a tag pointed to before, used only when ``previous`` is None: the tag moved
    to a new digest, and the event is a ``REBUILD`` against it (``moved_tags`` names the
    tags that moved). With neither, the image is new: a ``NEW_IMAGE`` event with every
    finding ``added``, or None if it has no findings.

    A current result that is not ``COMPLETE`` (the scanner cannot scan this image) never
    makes an event; a not-``COMPLETE`` previous snapshot counts as no snapshot.
    ``now`` is the event's ``occurred_at`` (default: the current time). A finding whose EPSS
    score moved by at least ``epss_threshold`` is ``changed`` (``what`` has ``epss``), as is one
    listed in or removed from KEV (``kev``).
    """
    if current.state is not ScanState.COMPLETE:
        return None
    base = _meaningful(previous)
    previous_digest: str | None = None
    tags: tuple[str, ...] = ()
    if base is not None:
        kind = EventKind.FINDINGS_CHANGED
    else:
        base = _meaningful(tag_base) if previous is None else None
        if base is not None and base.image.digest != current.image.digest:
            kind = EventKind.REBUILD
            previous_digest = base.image.digest
            tags = tuple(sorted(set(moved_tags)))
        elif base is not None:  # the tag's old digest is this digest: nothing moved
            kind = EventKind.FINDINGS_CHANGED
        else:
            kind = EventKind.NEW_IMAGE

    now_by_key = by_finding_key(current.findings)
    before_by_key = by_finding_key(base.findings) if base is not None else {}

    added = sorted((f for k, f in now_by_key.items() if k not in before_by_key), key=finding_order)
    fixed = sorted((f for k, f in before_by_key.items() if k not in now_by_key), key=finding_order)
    changed = sorted((c for c in (FindingChange(before_by_key[k], f, epss_threshold)
                                  for k, f in now_by_key.items() if k in before_by_key) if c.what),
                     key=lambda c: finding_order(c.after))
    if not (added or fixed or changed):
        return None

    change_keys = sorted([["+", *f.key] for f in added] + [["-", *f.key] for f in fixed]
                         + [["~", *c.after.key, *c.what] for c in changed])
    img = current.image
    event_id = event_id_of(current, previous, base, kind, change_keys)
    return Event(
        id=event_id,
        kind=kind,
        image=img,
        scanner=current.scanner,
        occurred_at=now if now is not None else utcnow(),
        added=tuple(added),
        fixed=tuple(fixed),
        changed=tuple(changed),
        counts=current.counts,
        previous_counts=base.counts if base is not None else {},
        previous_digest=previous_digest,
        moved_tags=tags,
    )


def event_id_of(current: ScanResult, previous: ScanResult | None, base: ScanResult | None, kind: EventKind,
                change_keys: list) -> str:
    """The id of a change: derived only from the image, the identity of the snapshot it is
    measured from, and the change itself -- never from when the new scan ran.

    The snapshot identity is the digest and ``scanned_at`` of what was compared against (the
    tag's previous digest for a rebuild) or, for an image new to us, of the stored snapshot of
    this digest that did not count (an unsupported scan), if any. So two writers that see the
    same change from the same snapshot (overlapping cycles, a retry after a crash) make the same
    id, and the outbox keeps it once; the same findings reached again later from a different
    snapshot are a new change with a new id."""
    img = current.image
    origin = base if base is not None else previous
    return stable_id(img.registry, img.repository, img.digest, kind.value,
                     origin.image.digest if origin is not None else None,
                     origin.scanned_at.isoformat() if origin is not None else None,
                     change_keys)


KIND_LABELS = {
    EventKind.NEW_IMAGE: "new image",
    EventKind.FINDINGS_CHANGED: "findings changed",
    EventKind.REBUILD: "rebuild",
}
"""How every message names an event kind."""


def change_parts(event: Event) -> list[tuple[str, int]]:
    """What changed, counted: ``[("new", 2), ("fixed", 1), ("changed", 1)]``, in that order,
    parts with a zero count left out. The one source of every summary of a change (this
    module's :func:`summarize`, the messages of each notifier); each caller formats it."""
    parts = [("new", len(event.added)), ("fixed", len(event.fixed)), ("changed", len(event.changed))]
    return [(what, n) for what, n in parts if n]


_SIGNS = {"new": "+", "fixed": "-", "changed": ""}


def summarize(event: Event) -> str:
    """One line for humans, e.g. ``rebuild: +2 new, -10 fixed, 1 changed`` (zero parts left out)."""
    parts = [f"{_SIGNS[what]}{n} {what}" for what, n in change_parts(event)]
    return f"{KIND_LABELS.get(event.kind, event.kind.value)}: {', '.join(parts) or 'no change'}"
