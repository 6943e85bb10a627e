"""What changed between two scans: a pure function from snapshots to an :class:`Event`.

No I/O and no state: the pipeline reads the previous snapshot from the store, calls
:func:`diff`, and writes the snapshot and the event in one transaction.

Finding identity is :attr:`vulnwatch.model.Finding.key` (vulnerability, ecosystem,
package, installed version):

- ``added``: keys in the current scan only;
- ``fixed``: keys in the compared-against scan only;
- ``changed``: keys in both whose severity, CVSS score, fixability or fixed versions
  differ (:class:`vulnwatch.model.FindingChange`).

Suppressed findings (:attr:`vulnwatch.model.ScanResult.suppressed`, moved there by the policy
stage) are not findings here: one suppressed now is neither ``added`` nor ``fixed`` (a rule
that starts to apply makes no event), and one suppressed before that counts now is ``added``,
explained by an ``ignore_rule_expired`` or ``ignore_rule_removed`` reason.

Every event says why its findings moved (:attr:`vulnwatch.model.Event.reasons`, made by
:func:`explain`): a new image, a rebuild (the image changed), an ignore rule that expired or was
removed, a re-score, or changed advisory data (with the data's version and date, from ``data``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from .runs import PACKAGE, SID, Run, runs, severity_counts
from .model import (ChangeReason, Coverage, DataSource, Event, EventKind, Finding, FindingChange, ReasonKind, ScanResult,
                    ScanState, Suppression, by_finding_key, priority_order, stable_id, stable_id_of_text, utcnow)

__all__ = ["KIND_LABELS", "REASON_LABELS", "RESCORE_FIELDS", "change_parts", "coverage_change", "coverage_event",
           "diff", "event_id_of", "explain", "summarize", "finding_order", "why"]

RESCORE_FIELDS = {"severity", "cvss_score", "kev", "epss"}
""":attr:`~vulnwatch.model.FindingChange.what` names that make a change a re-score (a ``rescore``
reason) when nothing else about the finding changed: its severity or CVSS score, a KEV listing
added or removed, an EPSS move over ``epss_threshold`` -- what an enrichment update moves."""


def _rescore_text(c: FindingChange) -> str:
    """One re-scored finding for a reason's summary: ``CVE-1 LOW -> CRITICAL``, ``CVE-2 listed in
    KEV``, ``CVE-3 EPSS 0.02 -> 0.45``."""
    b, a = c.before, c.after
    parts = []
    if "severity" in c.what or "cvss_score" in c.what:
        parts.append(f"{b.severity.name} -> {a.severity.name}")
    if "kev" in c.what:
        parts.append(f"listed in KEV ({a.kev.date_added})" if a.kev is not None else "removed from KEV")
    if "epss" in c.what:
        parts.append(f"EPSS {_epss(b.epss)} -> {_epss(a.epss)}")
    return f"{a.vulnerability_id} {', '.join(parts)}"


def _epss(v: float | None) -> str:
    return "none" if v is None else f"{v:.2f}"


def finding_order(finding: Finding) -> tuple:
    """Sort key: by priority (:func:`vulnwatch.model.priority_order`: in KEV, severity, EPSS),
    then by vulnerability id, package and version (cached by object: the events of a data update
    share the findings of each moved package)."""
    hit = _ORDERS.get(id(finding))
    if hit is None or hit[0] is not finding:
        if len(_ORDERS) >= 1 << 16:
            _ORDERS.clear()
        hit = _ORDERS[id(finding)] = (finding, priority_order(finding))
    return hit[1]


def _change_order(c: FindingChange) -> tuple:
    return finding_order(c.after)


_ORDERS: dict[int, tuple[Finding, tuple]] = {}
"""id of a finding -> (the finding, its :func:`finding_order`); the entry keeps it alive."""


def _meaningful(result: ScanResult | None) -> ScanResult | None:
    """A snapshot to compare against, or None when it holds no real findings (UNSUPPORTED)."""
    if result is None or result.state is not ScanState.COMPLETE:
        return None
    return result


def diff(current: ScanResult, previous: ScanResult | None, tag_base: ScanResult | None = None,
         moved_tags: Iterable[str] = (), *, now: datetime | None = None,
         data: Sequence[DataSource] = (), epss_threshold: float = 0.1) -> Event | None:
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
    ``now`` is the event's ``occurred_at`` (default: the current time). ``data`` is the data the
    current result was judged by (advisory and enrichment sources with their versions), for the
    reasons of an event about the same image.
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

    suppressed_now = {f.key for f in current.suppressed}
    added, fixed, changed = _changes(current.findings, base.findings if base is not None else (), epss_threshold)
    added.sort(key=finding_order)
    fixed = sorted((f for f in fixed if f.key not in suppressed_now), key=finding_order)
    changed.sort(key=_change_order)
    if not (added or fixed or changed):
        return None

    entries = sorted([_entry("+", f) for f in added] + [_entry("-", f) for f in fixed]
                     + [_change_entry(c) for c in changed])
    img = current.image
    event_id = _event_id(current, previous, base, kind, [text for _key, text in entries])
    at = now if now is not None else utcnow()
    reasons = explain(kind, current, base, added, fixed, changed, now=at, data=data)
    return Event(
        id=event_id,
        kind=kind,
        image=img,
        scanner=current.scanner,
        occurred_at=at,
        added=tuple(added),
        fixed=tuple(fixed),
        changed=tuple(changed),
        counts=severity_counts(current.findings),
        previous_counts=severity_counts(base.findings) if base is not None else {},
        previous_digest=previous_digest,
        moved_tags=tags,
        reasons=reasons,
    )


def _compare(now: Sequence[Finding], before: Sequence[Finding], epss_threshold: float
             ) -> tuple[list[Finding], list[Finding], list[FindingChange]]:
    """(added, fixed, changed) of ``now`` against ``before``, by finding key, unsorted."""
    now_by_key, before_by_key = by_finding_key(now), by_finding_key(before)
    added = [f for k, f in now_by_key.items() if k not in before_by_key]
    fixed = [f for k, f in before_by_key.items() if k not in now_by_key]
    changed = [c for c in (FindingChange(before_by_key[k], f, epss_threshold)
                           for k, f in now_by_key.items() if k in before_by_key) if c.what]
    return added, fixed, changed


_PAIRS: dict[tuple, tuple[tuple, tuple, tuple]] = {}
"""(set id before, set id now, EPSS threshold) -> what moved between the two sets of one package."""


def _package_runs(found: Sequence[Run]) -> dict[tuple, Run] | None:
    """``{(ecosystem, package, version): run}`` of a result's runs (the sets they are stored in);
    None when one package's findings are not in one run, or two runs differ only by purl (then
    their finding keys could meet across runs)."""
    out = dict(zip(map(PACKAGE, found), found))
    return out if len(out) == len(found) else None


def _changes(now: Sequence[Finding], before: Sequence[Finding], epss_threshold: float
             ) -> tuple[list[Finding], list[Finding], list[FindingChange]]:
    """:func:`_compare`, a package at a time: what moved is computed once per pair of a
    package's finding sets (findings are stored per distinct package, and a data update moves the
    same packages in every image holding them), and a package whose set is the same on both
    sides costs a set look-up (a set id names its package, so a set on both sides is a package
    that did not move). Finding keys name their package, so comparing package by package is
    comparing the whole; when packages cannot be told apart by their runs the whole is
    compared."""
    if not now or not before:
        return _compare(now, before, epss_threshold)
    runs_now, runs_before = runs(now), runs(before)
    sids_now, sids_before = set(map(SID, runs_now)), set(map(SID, runs_before))
    moved_now = [r for r in runs_now if r.sid not in sids_before]
    moved_before = [r for r in runs_before if r.sid not in sids_now]
    if not moved_now and not moved_before:
        return [], [], []
    by_now, by_before = _package_runs(runs_now), _package_runs(runs_before)
    if by_now is None or by_before is None:
        return _compare(now, before, epss_threshold)
    added: list[Finding] = []
    fixed: list[Finding] = []
    changed: list[FindingChange] = []
    keys = dict.fromkeys([r.package for r in moved_now] + [r.package for r in moved_before])
    for k in keys:
        run_now, run_before = by_now.get(k), by_before.get(k)
        pair = (run_before.sid if run_before is not None else "", run_now.sid if run_now is not None else "",
                epss_threshold)
        moved = _PAIRS.get(pair)
        if moved is None:
            a, f, c = _compare(run_now.items if run_now is not None else (),
                               run_before.items if run_before is not None else (), epss_threshold)
            if len(_PAIRS) >= 1 << 16:
                _PAIRS.clear()
            # each in the event's order: an event's lists are these merged (a sort of sorted runs)
            moved = _PAIRS[pair] = (tuple(sorted(a, key=finding_order)), tuple(sorted(f, key=finding_order)),
                                    tuple(sorted(c, key=_change_order)))
        added += moved[0]
        fixed += moved[1]
        changed += moved[2]
    return added, fixed, changed


def coverage_event(current: ScanResult, previous: ScanResult | None, tag_base: ScanResult | None = None, *,
                   now: datetime | None = None, data: Sequence[DataSource] = ()) -> Event | None:
    """A ``coverage`` event when the image's coverage moved, else None.

    Compared with ``previous`` (the same digest's snapshot) or, when there is none, ``tag_base``
    (the digest its tag pointed to before: a rebuild onto a release the data does not cover).
    Coverage moves when an ecosystem it needs gains or loses advisory data, or the set of
    packages not judged changes (:attr:`vulnwatch.model.Coverage.key`; record counts and import
    dates do not count). Nothing to compare with (a new image, a snapshot stored before coverage
    was kept, a scanner that says nothing about coverage) is no event: the change is unknown. The
    event carries no findings; ``coverage`` and ``previous_coverage`` say what moved, its one
    reason says why (the advisory data, with its version, or the rebuild)."""
    if current.state is not ScanState.COMPLETE or current.coverage is None:
        return None
    base = _meaningful(previous) if previous is not None else _meaningful(tag_base)
    if base is None or base.coverage is None or base.coverage.key == current.coverage.key:
        return None
    img = current.image
    at = now if now is not None else utcnow()
    rebuilt = base.image.digest != img.digest
    text = coverage_change(base.coverage, current.coverage)
    if rebuilt:
        reason = ChangeReason(ReasonKind.IMAGE_CHANGED, f"image changed: {', '.join(img.tags) or 'its tag'} rebuilt, "
                              f"digest {_short(base.image.digest)} -> {_short(img.digest)}; {text}")
    else:
        moved = {e.split(":", 1)[0] for e in _moved_ecosystems(base.coverage, current.coverage)}
        ds = tuple(d for d in data if d.kind == "advisory" and d.name in moved)
        reason = ChangeReason(ReasonKind.ADVISORY_DATA_CHANGED, text + (
            f"; data: {'; '.join(d.describe() for d in ds)}" if ds else ""), data=ds)
    return Event(
        id=stable_id(img.registry, img.repository, img.digest, EventKind.COVERAGE.value, base.image.digest,
                     base.scanned_at.isoformat(), [list(map(list, part)) for part in current.coverage.key]),
        kind=EventKind.COVERAGE, image=img, scanner=current.scanner, occurred_at=at,
        counts=current.counts, previous_counts=base.counts,
        previous_digest=base.image.digest if rebuilt else None, reasons=(reason,),
        coverage=current.coverage, previous_coverage=base.coverage)


def _moved_ecosystems(before: Coverage, after: Coverage) -> set[str]:
    b = {e.ecosystem: e.present for e in before.ecosystems}
    a = {e.ecosystem: e.present for e in after.ecosystems}
    out = {e for e in set(a) | set(b) if a.get(e) != b.get(e)}
    out |= {u.ecosystem for u in set(before.unjudged) ^ set(after.unjudged)}
    return out


def coverage_change(before: Coverage | None, after: Coverage | None) -> str:
    """What moved between two coverages, in one line: ``coverage missing -> complete: advisory data
    now covers Alpine:v3.17; 14 packages judged now``."""
    if after is None:
        return "coverage not known"
    head = f"coverage {before.state} -> {after.state}" if before is not None and before.state != after.state \
        else f"coverage {after.state}"
    if before is None:
        return f"{head}: {after.summary()}"
    parts = []
    b = {e.ecosystem for e in before.ecosystems if e.present}
    a = {e.ecosystem for e in after.ecosystems if e.present}
    came = sorted(a - b)
    gone = sorted(set(after.missing) - set(before.missing))
    if came:
        parts.append("advisory data now covers " + ", ".join(came))
    if gone:
        parts.append("no advisory data any more for " + ", ".join(gone))
    old, new = set(before.unjudged), set(after.unjudged)
    if new - old:
        names = sorted(f"{u.name}@{u.version}" if u.version else u.name for u in new - old)
        parts.append(f"{len(new - old)} package{'s' if len(new - old) != 1 else ''} not judged now ("
                     + ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") + ")")
    if old - new:
        parts.append(f"{len(old - new)} package{'s' if len(old - new) != 1 else ''} judged now")
    return head + (": " + "; ".join(parts) if parts else "")


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def _data_for(data: Sequence[DataSource], findings: Iterable[Finding], kinds: tuple[str, ...]) -> tuple[DataSource, ...]:
    """The sources of ``kinds`` that judge ``findings`` (an advisory source by the findings'
    ecosystems, ``Debian`` for ``Debian:12``); every one of those kinds when none is named."""
    wanted = {e.split(":", 1)[0] for e in {f.ecosystem for f in findings} if e}
    pool = [d for d in data if d.kind in kinds]
    advisory = [d for d in pool if d.kind == "advisory" and d.name in wanted]
    return tuple(advisory + [d for d in pool if d.kind != "advisory"]) if advisory else tuple(pool)


def _rule_text(s: Suppression) -> str:
    return f"{s.rule or s.kind} ({s.source})"


def explain(kind: EventKind, current: ScanResult, base: ScanResult | None, added: Sequence[Finding],
            fixed: Sequence[Finding], changed: Sequence[FindingChange], *, now: datetime,
            data: Sequence[DataSource] = ()) -> tuple[ChangeReason, ...]:
    """Why the findings of an event moved, each added, fixed and changed finding explained once:

    - a new image (``new_image``) or a rebuild (``image_changed``, naming the tags and both digests);
    - for the same image: a finding suppressed in ``base`` that counts now is back because its
      rule expired (``ignore_rule_expired``) or is gone (``ignore_rule_removed``), one reason per
      rule; a change only of :data:`RESCORE_FIELDS` (severity, score, KEV listing, EPSS) is a ``rescore``
      (with the advisory and enrichment data's versions); everything else moved with the
      advisory data (``advisory_data_changed``, with the sources' versions and dates from ``data``).
    """
    if kind is EventKind.NEW_IMAGE:
        return (ChangeReason(ReasonKind.NEW_IMAGE, f"new image: digest {_short(current.image.digest)} seen for the "
                             "first time"),)
    if kind is EventKind.REBUILD and base is not None:
        tags = ", ".join(current.image.tags) or "its tag"
        return (ChangeReason(ReasonKind.IMAGE_CHANGED, f"image changed: {tags} rebuilt, digest "
                             f"{_short(base.image.digest)} -> {_short(current.image.digest)}"),)
    reasons: list[ChangeReason] = []
    was_suppressed = {f.key: f.suppression for f in (base.suppressed if base is not None else ())
                      if f.suppression is not None}
    back: dict[tuple[bool, Suppression], list[Finding]] = {}
    rest_added = [] if was_suppressed else list(added)
    for f in added if was_suppressed else ():
        s = was_suppressed.get(f.key)
        if s is None:
            rest_added.append(f)
        else:
            back.setdefault((s.expired(now), s), []).append(f)
    for (expired, s), found in back.items():
        names = ", ".join(sorted({f"{f.vulnerability_id} in {f.package_name}" for f in found}))
        if expired:
            reasons.append(ChangeReason(ReasonKind.IGNORE_RULE_EXPIRED, f"ignore rule expired on {s.expires}: "
                                        f"{names} ({_rule_text(s)})", tuple(f.key for f in found), suppression=s))
        else:
            reasons.append(ChangeReason(ReasonKind.IGNORE_RULE_REMOVED, f"ignore rule no longer applies (removed or "
                                        f"changed): {names} ({_rule_text(s)})", tuple(f.key for f in found),
                                        suppression=s))
    rescored = [c for c in changed if set(c.what) <= RESCORE_FIELDS]
    other_changes = [c for c in changed if not set(c.what) <= RESCORE_FIELDS]
    if rescored:
        what = sorted({w for c in rescored for w in c.what})
        ds = _data_for(data, [c.after for c in rescored], ("advisory", "enrichment"))
        reasons.append(ChangeReason(ReasonKind.RESCORE, f"re-scored ({', '.join(what)}): "
                                    + ", ".join(_rescore_text(c) for c in rescored[:5])
                                    + (f" and {len(rescored) - 5} more" if len(rescored) > 5 else "")
                                    + (f"; data: {'; '.join(d.describe() for d in ds)}" if ds else ""),
                                    tuple(c.after.key for c in rescored), ds))
    moved = [*rest_added, *fixed, *(c.after for c in other_changes)]
    if moved:
        ds = _data_for(data, moved, ("advisory",))
        if ds:
            text = "advisory data changed: " + "; ".join(d.describe() for d in ds)
        elif current.vulnerability_source_updated_at is not None:
            text = (f"advisory data changed: {current.scanner} data as of "
                    f"{current.vulnerability_source_updated_at.isoformat(timespec='minutes')}")
        else:
            text = f"advisory data changed: {current.scanner} reported different findings for the same image"
        # the findings it explains, unless it is the only reason (below)
        reasons.append(ChangeReason(ReasonKind.ADVISORY_DATA_CHANGED, text,
                                    tuple(f.key for f in moved) if reasons else (), ds))
    if len(reasons) == 1 and reasons[0].findings:   # one reason explains everything: no need to list
        reasons[0] = replace(reasons[0], findings=())  # the findings again
    return tuple(reasons)


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


def _event_id(current: ScanResult, previous: ScanResult | None, base: ScanResult | None, kind: EventKind,
              entries: list[str]) -> str:
    """:func:`event_id_of` with the change keys given as their JSON texts, in order (each
    encoded once per finding, :func:`_entry`): the same text ``json.dumps`` makes of the parts."""
    img = current.image
    origin = base if base is not None else previous
    head = json.dumps([img.registry, img.repository, img.digest, kind.value,
                       origin.image.digest if origin is not None else None,
                       origin.scanned_at.isoformat() if origin is not None else None])
    return stable_id_of_text(head[:-1] + ", [" + ", ".join(entries) + "]]")


_ENTRIES: dict[tuple[str, int], tuple[Finding, tuple[list, str]]] = {}


def _entry(sign: str, f: Finding) -> tuple[list, str]:
    """A change key of an added (``+``) or fixed (``-``) finding, and its JSON text (cached by
    object: the events of a data update share the findings of each moved package)."""
    hit = _ENTRIES.get((sign, id(f)))
    if hit is None or hit[0] is not f:
        if len(_ENTRIES) >= 1 << 16:
            _ENTRIES.clear()
        key = [sign, *f.key]
        hit = _ENTRIES[(sign, id(f))] = (f, (key, json.dumps(key)))
    return hit[1]


def _change_entry(c: FindingChange) -> tuple[list, str]:
    key = ["~", *c.after.key, *c.what]
    return key, json.dumps(key)


KIND_LABELS = {
    EventKind.NEW_IMAGE: "new image",
    EventKind.FINDINGS_CHANGED: "findings changed",
    EventKind.REBUILD: "rebuild",
    EventKind.COVERAGE: "coverage changed",
}
"""How every message names an event kind."""


def change_parts(event: Event) -> list[tuple[str, int]]:
    """What changed, counted: ``[("new", 2), ("fixed", 1), ("changed", 1)]``, in that order,
    parts with a zero count left out. The one source of every summary of a change (this
    module's :func:`summarize`, the messages of each notifier); each caller formats it."""
    parts = [("new", len(event.added)), ("fixed", len(event.fixed)), ("changed", len(event.changed))]
    return [(what, n) for what, n in parts if n]


_SIGNS = {"new": "+", "fixed": "-", "changed": ""}

REASON_LABELS = {
    ReasonKind.NEW_IMAGE: "new image",
    ReasonKind.IMAGE_CHANGED: "image changed",
    ReasonKind.ADVISORY_DATA_CHANGED: "advisory data changed",
    ReasonKind.ENRICHMENT_DATA_CHANGED: "enrichment data changed",
    ReasonKind.RESCORE: "re-scored",
    ReasonKind.IGNORE_RULE_EXPIRED: "ignore rule expired",
    ReasonKind.IGNORE_RULE_REMOVED: "ignore rule removed",
}
"""How every message names a reason kind."""


def why(event: Event) -> str:
    """The reasons of an event in one line: ``why: ignore rule expired on 2026-12-01: ...; re-scored ...``
    (empty when the event carries none: one stored before reasons existed)."""
    return "why: " + "; ".join(r.summary for r in event.reasons) if event.reasons else ""


def summarize(event: Event) -> str:
    """One line for humans, e.g. ``rebuild: +2 new, -10 fixed, 1 changed`` (zero parts left out)."""
    if event.kind is EventKind.COVERAGE:
        return f"{KIND_LABELS[event.kind]}: {coverage_change(event.previous_coverage, event.coverage)}"
    parts = [f"{_SIGNS[what]}{n} {what}" for what, n in change_parts(event)]
    return f"{KIND_LABELS.get(event.kind, event.kind.value)}: {', '.join(parts) or 'no change'}"
