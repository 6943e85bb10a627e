"""Findings stored per distinct package: content-addressed finding sets (SQL store, migration 7).

A scanner's findings come package by package (the built-in matcher makes one run of findings per
distinct package, and images of a fleet share most packages), so a snapshot's findings are cut
into consecutive runs with the same (ecosystem, package, version, purl): each run is a *set*,
stored once in ``finding_sets`` under the hash of its JSON text and referred to by id from every
snapshot (and scan history entry) that holds it. A snapshot's findings are its sets' findings,
in order: nothing about a result changes, only how often its bytes are written.

Sets are immutable (the id is the hash of the text), so any process may cache them by id.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from ..model import Event, Finding, FindingChange, Severity, finding_hash

__all__ = ["Summary", "event_dict", "event_list_ids", "event_parts", "finding_parts", "runs_of", "severity_counts",
           "split", "split_dicts", "split_event_lists", "set_id", "signature_total", "summarise", "summary"]


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


_SEVERITIES = [s.name for s in sorted(Severity, reverse=True)]
_PARTS: dict[int, tuple] = {}


def finding_parts(f: Finding) -> tuple[Finding, str, int, str, tuple, str]:
    """(the finding, its stored JSON, its :func:`~vulnwatch.model.finding_hash`, its key as
    JSON, its set key, its severity name), cached by object (the entry keeps the object alive,
    so its id is not reused while cached): a fleet's results share their Finding objects (the
    matcher makes them once per distinct package), and hashing a frozen dataclass for an
    ``lru_cache`` costs more than what it saves."""
    hit = _PARTS.get(id(f))
    if hit is None or hit[0] is not f:
        if len(_PARTS) >= 1 << 17:
            _PARTS.clear()
        hit = _PARTS[id(f)] = (f, _dumps(f.to_dict()), finding_hash(f), _dumps(list(f.key)),
                               (f.ecosystem, f.package_name, f.package_version, f.purl), f.severity.name)
    return hit


def signature_total(findings: Iterable[Finding]) -> tuple[int, int]:
    """(count, sum of finding hashes) of ``findings`` (see :func:`~vulnwatch.model.signature_of`),
    a stored set at a time (each set's sum kept with it)."""
    seq = findings if isinstance(findings, tuple) else tuple(findings)
    n = total = 0
    for run in _runs(seq):
        total += run.total
        n += len(run.items)
    return n, total


def set_id(text: str) -> str:
    """The id of a set: 128 bits of BLAKE2b of its JSON text, in hex."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def split(findings: Sequence[Finding]) -> list[tuple[str, str]]:
    """``findings`` as consecutive sets: [(set id, JSON text of the set's findings), ...]."""
    return summarise(findings)[0]


class _Run:
    __slots__ = ("items", "sid", "text", "pair", "total", "counts", "kev")

    def __init__(self, items: tuple, sid: str, text: str, total: int, counts: tuple[int, ...], kev: int) -> None:
        self.items, self.sid, self.text, self.total, self.counts, self.kev = items, sid, text, total, counts, kev
        self.pair = (sid, text)


_RUN_AT: dict[int, _Run] = {}
"""id of a run's first finding -> the run (which keeps its findings alive, so ids stay unique)."""
_SEV_INDEX = {name: n for n, name in enumerate(_SEVERITIES)}
_PAIR = operator.attrgetter("pair")
_TOTAL = operator.attrgetter("total")
_COUNTS = operator.attrgetter("counts")
_KEV = operator.attrgetter("kev")


def _make_run(items: tuple) -> _Run:
    parts = [finding_parts(f) for f in items]
    text = "[" + ",".join([p[1] for p in parts]) + "]"
    counts = [0] * len(_SEVERITIES)
    for p in parts:
        counts[_SEV_INDEX[p[5]]] += 1
    return _Run(items, set_id(text), text, sum(p[2] for p in parts), tuple(counts),
                sum(1 for f in items if f.kev is not None))


_LIST_AT: dict[int, _Run] = {}
""":data:`_RUN_AT` for the lists inside events: a package's delta starts with the same finding as
its whole set more often than not, and one cache for both would evict each with the other."""
_WALKS: dict[int, tuple[tuple, list[_Run]]] = {}
"""id of a findings tuple -> (the tuple, its runs): recording one result walks its findings for
its diff, its counts, its sets and its signature; the entry keeps the tuple alive."""


def _runs(seq: tuple) -> list[_Run]:
    hit = _WALKS.get(id(seq))
    if hit is not None and hit[0] is seq:
        return hit[1]
    runs = list(_walk(seq))
    if len(_WALKS) >= 1 << 11:
        _WALKS.clear()
    _WALKS[id(seq)] = (seq, runs)
    return runs


def _walk(seq: tuple, at: dict[int, _Run] = _RUN_AT) -> Iterable[_Run]:
    n = len(seq)
    i = 0
    get = at.get
    while i < n:
        f = seq[i]
        run = get(id(f))
        if run is None or seq[i:i + len(run.items)] != run.items:
            key = finding_parts(f)[4]
            j = i + 1
            while j < n and finding_parts(seq[j])[4] == key:
                j += 1
            run = _make_run(seq[i:j])
            if len(at) >= 1 << 16:
                at.clear()
            at[id(f)] = run
        yield run
        i += len(run.items)


def runs_of(findings: Sequence[Finding]) -> list[tuple[str, tuple[Finding, ...]]]:
    """``findings`` as their consecutive sets: [(set id, the set's findings), ...] (see
    :func:`summarise`; two sets with one id hold the same findings)."""
    seq = findings if isinstance(findings, tuple) else tuple(findings)
    return [(run.sid, run.items) for run in _runs(seq)]


class Summary(NamedTuple):
    """What storing a result's findings needs of them, in one pass (:func:`summary`)."""

    sets: list[tuple[str, str]]
    """Their sets as :func:`split` gives them."""
    total: int
    """The sum of their finding hashes (:func:`~vulnwatch.model.signature_of`)."""
    counts: dict[str, int]
    """:func:`~vulnwatch.model.severity_counts`."""
    kev: int
    """How many are listed in KEV (:attr:`~vulnwatch.model.ScanResult.kev_count`)."""


def summary(findings: Sequence[Finding]) -> Summary:
    """One pass over ``findings``. A run already seen (the same finding objects in a row: the
    matcher hands out one tuple per distinct package) costs one slice comparison, not a step per
    finding; the sums over runs are C-level (``map``/``zip``): an image has ~70 runs, and a
    Python loop over each run's severity counts was a third of the time."""
    runs = _runs(findings if isinstance(findings, tuple) else tuple(findings))
    counts = [sum(c) for c in zip(*map(_COUNTS, runs))] if runs else [0] * len(_SEVERITIES)
    return Summary(list(map(_PAIR, runs)), sum(map(_TOTAL, runs)), dict(zip(_SEVERITIES, counts)),
                   sum(map(_KEV, runs)))


def severity_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """:func:`~vulnwatch.model.severity_counts` of ``findings``, a stored set at a time (each
    set's counts kept with it)."""
    seq = findings if isinstance(findings, tuple) else tuple(findings)
    counts = [0] * len(_SEVERITIES)
    for run in _runs(seq):
        for k, c in enumerate(run.counts):
            if c:
                counts[k] += c
    return dict(zip(_SEVERITIES, counts))


def summarise(findings: Sequence[Finding]) -> tuple[list[tuple[str, str]], int, dict[str, int]]:
    """(their sets as :func:`split` gives them, the sum of their finding hashes,
    :func:`~vulnwatch.model.severity_counts`): :func:`summary` without the KEV count."""
    s = summary(findings)
    return s.sets, s.total, s.counts


_EVENT_LISTS = ("added", "fixed", "changed")


def _change_text(c: FindingChange) -> str:
    return ('{"before":' + finding_parts(c.before)[1] + ',"after":' + finding_parts(c.after)[1]
            + ',"what":' + _dumps(list(c.what)) + ',"epss_threshold":' + _dumps(c.epss_threshold) + "}")


def _list(texts: Sequence[str]) -> tuple[str, str]:
    text = "[" + ",".join(texts) + "]"
    return set_id(text), text


def event_parts(event: Event) -> tuple[str, list[tuple[str, str]]]:
    """(the stored body of ``event``, its finding lists as [(list id, JSON text), ...]).

    The finding lists inside events are stored per distinct package, as snapshots' findings are:
    an event's ``added``, ``fixed`` and ``changed`` are cut into consecutive runs of one package
    (``changed`` by the package of its ``after``), each run's JSON array is stored once in
    ``event_lists`` under the hash of its text, and the body holds ``"lists": {"added": [ids],
    "fixed": [ids], "changed": [ids]}`` in their place. A data update that moves one package in
    10,000 images writes that package's delta once, not 10,000 times; :func:`event_dict` puts an
    event back together. The texts come from :func:`finding_parts` and the runs' cache, so a
    run shared by many events is encoded once."""
    head = replace(event, added=(), fixed=(), changed=()).to_dict()
    lists: list[tuple[str, str]] = []
    refs: dict[str, list[str]] = {}
    for k in ("added", "fixed"):
        runs = list(_walk(getattr(event, k), _LIST_AT))
        refs[k] = [r.sid for r in runs]
        lists.extend(r.pair for r in runs)
    changed: list[str] = []
    run: list[str] = []
    key = None
    for c in event.changed:
        k = finding_parts(c.after)[4]
        if run and k != key:
            lists.append(_list(run))
            changed.append(lists[-1][0])
            run = []
        key = k
        run.append(_change_text(c))
    if run:
        lists.append(_list(run))
        changed.append(lists[-1][0])
    refs["changed"] = changed
    for k in _EVENT_LISTS:
        del head[k]
    head["lists"] = refs
    return _dumps(head), lists


def event_list_ids(body: dict) -> list[str]:
    """The ids of the finding lists a stored event body refers to (none for a body written
    with its lists inline, before migration 13)."""
    refs = body.get("lists")
    return [lid for k in _EVENT_LISTS for lid in refs.get(k, ())] if refs is not None else []


def event_dict(body: dict, lists: Mapping[str, list]) -> dict:
    """A stored event body (:func:`event_parts`) as :meth:`~vulnwatch.model.Event.to_dict` gave
    it, its lists' items taken from ``lists`` (list id -> the parsed JSON array); a body with its
    lists inline is returned as it is. A list that is not in ``lists`` raises ``KeyError``."""
    refs = body.pop("lists", None)
    if refs is not None:
        for k in _EVENT_LISTS:
            body[k] = [item for lid in refs.get(k, ()) for item in lists[lid]]
    return body


def split_event_lists(body: dict) -> tuple[dict, list[tuple[str, str]]]:
    """A body stored with its lists inline (``to_dict()``) as :func:`event_parts` stores it,
    for the migration of existing events: (the new body, its lists)."""
    lists: list[tuple[str, str]] = []
    refs: dict[str, list[str]] = {}
    for k in _EVENT_LISTS:
        pick = (lambda d: d.get("after") or {}) if k == "changed" else (lambda d: d)
        parts = split_dicts(body.pop(k, None) or [], lambda d: _dict_key(pick(d)))
        refs[k] = [lid for lid, _ in parts]
        lists.extend(parts)
    body["lists"] = refs
    return body, lists


def _dict_key(d: dict) -> tuple:
    return (d.get("ecosystem") or "", d.get("package_name"), d.get("package_version"), d.get("purl"))


def split_dicts(findings: Sequence[dict], key=None) -> list[tuple[str, str]]:
    """:func:`split` for findings as stored (dicts), for the migration of inline findings;
    ``key`` gives an item's package key (default: the item is a finding)."""
    key_of = key or _dict_key
    out: list[tuple[str, str]] = []
    run: list[str] = []
    current = None
    for d in findings:
        k = key_of(d)
        if run and k != current:
            out.append(_list(run))
            run = []
        current = k
        run.append(_dumps(d))
    if run:
        out.append(_list(run))
    return out
