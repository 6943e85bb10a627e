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
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import NamedTuple

from ..model import Event, Finding, Severity, finding_hash

__all__ = ["Summary", "event_text", "finding_parts", "runs_of", "severity_counts", "split", "split_dicts",
           "set_id", "signature_total", "summarise", "summary"]


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


def _walk(seq: tuple) -> Iterable[_Run]:
    n = len(seq)
    i = 0
    get = _RUN_AT.get
    while i < n:
        f = seq[i]
        run = get(id(f))
        if run is None or seq[i:i + len(run.items)] != run.items:
            key = finding_parts(f)[4]
            j = i + 1
            while j < n and finding_parts(seq[j])[4] == key:
                j += 1
            run = _make_run(seq[i:j])
            if len(_RUN_AT) >= 1 << 16:
                _RUN_AT.clear()
            _RUN_AT[id(f)] = run
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


def event_text(event: Event) -> str:
    """``event.to_dict()`` as stored JSON, its findings' texts taken from :func:`finding_parts`
    (cached by object: the events of a data update share the findings of each moved package,
    so each is encoded once, not once per image). The same JSON value as encoding
    ``to_dict()``; only the order of the keys differs."""
    head = replace(event, added=(), fixed=(), changed=()).to_dict()
    for k in ("added", "fixed", "changed"):
        del head[k]
    text = _dumps(head)

    def listed(findings) -> str:
        return "[" + ",".join([finding_parts(f)[1] for f in findings]) + "]"

    changed = ",".join(['{"before":' + finding_parts(c.before)[1] + ',"after":' + finding_parts(c.after)[1]
                        + ',"what":' + _dumps(list(c.what)) + ',"epss_threshold":' + _dumps(c.epss_threshold) + "}"
                        for c in event.changed])
    return (text[:-1] + (',' if head else '') + '"added":' + listed(event.added) + ',"fixed":' + listed(event.fixed)
            + ',"changed":[' + changed + "]}")


def split_dicts(findings: Sequence[dict]) -> list[tuple[str, str]]:
    """:func:`split` for findings as stored (dicts), for the migration of inline findings."""
    out: list[tuple[str, str]] = []
    run: list[str] = []
    key = None
    for d in findings:
        k = (d.get("ecosystem") or "", d.get("package_name"), d.get("package_version"), d.get("purl"))
        if run and k != key:
            text = "[" + ",".join(run) + "]"
            out.append((set_id(text), text))
            run = []
        key = k
        run.append(_dumps(d))
    if run:
        text = "[" + ",".join(run) + "]"
        out.append((set_id(text), text))
    return out
