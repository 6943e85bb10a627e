"""Findings a package at a time: runs, what they sum to, and the id of each as a set.

A scanner's findings come package by package (the built-in matcher makes one tuple of findings
per distinct package, and the images of a fleet share most packages), so a result's findings
are consecutive *runs* with the same (ecosystem, package, version, purl). Each run is what the
SQL store keeps once as a finding set (``store/_finding_sets.py``: the set id is the hash of
the run's JSON text), what the diff compares a package at a time, and what a re-match from a
snapshot substitutes. Counting, signing, splitting or comparing a result therefore costs a
step per run, not per finding, when its runs are known:

- :func:`runs` walks a findings tuple into its runs once (cached by the tuple; a run seen
  before, the same finding objects in a row, costs one slice comparison);
- :func:`joined` makes the findings of given runs into one tuple whose walk is already known
  (a result built from runs, as a re-match builds one, is never walked a finding at a time).

Everything here is cached by object identity (each entry keeps its object alive, so an id is
not reused while it is cached): hashing a frozen dataclass costs more than what it saves.
Shared by the stages that need it (scanners, store, diff); imports nothing of ours but model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import operator
from collections.abc import Iterable, Sequence

from .model import Finding, Severity, finding_hash, signature_of

__all__ = ["Run", "finding_parts", "joined", "runs", "runs_of", "set_id", "severity_counts", "signature_total",
           "totals", "walk"]


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


SEVERITIES = [s.name for s in sorted(Severity, reverse=True)]
"""Severity names, most severe first (the order of :attr:`Run.counts`)."""
_SEV_INDEX = {name: n for n, name in enumerate(SEVERITIES)}
_PARTS: dict[int, tuple] = {}


def finding_parts(f: Finding) -> tuple[Finding, str, int, str, tuple, str]:
    """(the finding, its stored JSON, its :func:`~vulnwatch.model.finding_hash`, its key as
    JSON, its run key, its severity name), cached by object: a fleet's results share their
    Finding objects (the matcher makes them once per distinct package)."""
    hit = _PARTS.get(id(f))
    if hit is None or hit[0] is not f:
        if len(_PARTS) >= 1 << 17:
            _PARTS.clear()
        hit = _PARTS[id(f)] = (f, _dumps(f.to_dict()), finding_hash(f), _dumps(list(f.key)),
                               (f.ecosystem, f.package_name, f.package_version, f.purl), f.severity.name)
    return hit


def set_id(text: str) -> str:
    """The id of a set: 128 bits of BLAKE2b of its JSON text, in hex."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Run:
    """One package's consecutive findings, with what storing, signing and counting need."""

    __slots__ = ("items", "key", "package", "sid", "text", "pair", "total", "counts", "kev", "signature")

    def __init__(self, items: tuple, key: tuple, sid: str, text: str, total: int, counts: tuple[int, ...],
                 kev: int) -> None:
        self.items, self.key, self.sid, self.text = items, key, sid, text
        self.package = key[:3]
        """(ecosystem, package, version): what its findings' keys name (the key without the purl)."""
        self.total, self.counts, self.kev = total, counts, kev
        self.pair = (sid, text)
        self.signature = signature_of(len(items), total)
        """:func:`~vulnwatch.model.signature_of` the run's findings."""


ITEMS = operator.attrgetter("items")
KEY = operator.attrgetter("key")
PACKAGE = operator.attrgetter("package")
SID = operator.attrgetter("sid")
_TOTAL = operator.attrgetter("total")
_COUNTS = operator.attrgetter("counts")
_KEV = operator.attrgetter("kev")

_RUN_AT: dict[int, Run] = {}
"""id of a run's first finding -> the run (which keeps its findings alive, so ids stay unique)."""


def _make_run(items: tuple) -> Run:
    parts = [finding_parts(f) for f in items]
    text = "[" + ",".join([p[1] for p in parts]) + "]"
    counts = [0] * len(SEVERITIES)
    for p in parts:
        counts[_SEV_INDEX[p[5]]] += 1
    return Run(items, parts[0][4], set_id(text), text, sum(p[2] for p in parts), tuple(counts),
               sum(1 for f in items if f.kev is not None))


_WALKS: dict[int, tuple[tuple, list[Run]]] = {}
"""id of a findings tuple -> (the tuple, its runs): recording one result walks its findings for
its diff, its counts, its sets and its signature; the entry keeps the tuple alive."""


def runs(findings: Sequence[Finding]) -> list[Run]:
    """``findings`` as their runs, in order (cached by the tuple)."""
    return _walked(findings)[1]


def _walked(findings: Sequence[Finding]) -> list:
    seq = findings if isinstance(findings, tuple) else tuple(findings)
    hit = _WALKS.get(id(seq))
    if hit is not None and hit[0] is seq:
        return hit
    return _remember(seq, list(walk(seq)))


def _remember(seq: tuple, found: list[Run]) -> list:
    if len(_WALKS) >= 1 << 11:        # the older half goes (a batch being recorded is the newer)
        for k in list(itertools.islice(_WALKS, 1 << 10)):
            del _WALKS[k]
    hit = _WALKS[id(seq)] = [seq, found, None]
    return hit


def totals(findings: Sequence[Finding]) -> tuple[int, int, tuple[int, ...], int]:
    """(how many, the sum of their finding hashes, their counts per severity in
    :data:`SEVERITIES` order, how many are listed in KEV) of ``findings``, summed a run at a
    time, once per tuple (a result is counted for its diff, its event and its write)."""
    hit = _walked(findings)
    if hit[2] is None:
        found = hit[1]
        counts = tuple(map(sum, zip(*map(_COUNTS, found)))) if found else (0,) * len(SEVERITIES)
        hit[2] = (len(hit[0]), sum(map(_TOTAL, found)), counts, sum(map(_KEV, found)))
    return hit[2]


def walk(seq: tuple, at: dict[int, Run] = _RUN_AT) -> Iterable[Run]:
    """The runs of ``seq``, without caching the walk (each run is cached by its first finding, in
    ``at``)."""
    n = len(seq)
    i = 0
    get = at.get
    parts_of = _PARTS.get
    while i < n:
        f = seq[i]
        run = get(id(f))
        if run is not None:               # a run seen before starts here: is it all of this one?
            end = i + len(run.items)
            if run.items[0] is f and end == i + 1 or seq[i:end] == run.items:
                if end >= n:
                    yield run
                    return
                nxt = seq[end]
                p = parts_of(id(nxt))
                if p is None or p[0] is not nxt:
                    p = finding_parts(nxt)
                if p[4] != run.key:
                    yield run
                    i = end
                    continue
        key = finding_parts(f)[4]
        j = i + 1
        while j < n and finding_parts(seq[j])[4] == key:
            j += 1
        items = seq[i:j]
        run = _SPANS.get((id(f), j - i))       # the same findings in a row seen before
        if run is None or run.items != items:
            run = _make_run(items)
            if len(_SPANS) >= 1 << 16:
                _SPANS.clear()
            _SPANS[(id(f), j - i)] = run
        if len(at) >= 1 << 16:
            at.clear()
        at[id(f)] = run
        yield run
        i = j


_SPANS: dict[tuple[int, int], Run] = {}
"""(id of a run's first finding, its length) -> the run: a run found again after another one
starting at the same finding took its place in a walk's cache (the sorted lists of events cut
one package's findings into runs of different lengths) is not made again."""


def joined(parts: Sequence[Run]) -> tuple[Finding, ...]:
    """The findings of ``parts`` (runs of distinct packages), in order, as one tuple whose runs
    are known to be ``parts``: what :func:`runs` would find (two neighbours of one key would be
    one run; then the tuple is walked as any other)."""
    seq = tuple(itertools.chain.from_iterable(map(ITEMS, parts)))
    keys = list(map(KEY, parts))
    if not any(map(operator.eq, keys, keys[1:])):
        _remember(seq, list(parts))
    return seq


def run_of(items: tuple) -> Run | None:
    """The run of one package's findings (None for none; a tuple of several packages: its first)."""
    if not items:
        return None
    return next(iter(walk(items)))


def runs_of(findings: Sequence[Finding]) -> list[tuple[str, tuple[Finding, ...]]]:
    """``findings`` as their consecutive sets: [(set id, the set's findings), ...] (two sets with
    one id hold the same findings)."""
    return [(run.sid, run.items) for run in runs(findings)]


def signature_total(findings: Iterable[Finding]) -> tuple[int, int]:
    """(count, sum of finding hashes) of ``findings`` (see :func:`~vulnwatch.model.signature_of`),
    a run at a time (each run's sum kept with it)."""
    t = totals(findings if isinstance(findings, tuple) else tuple(findings))
    return t[0], t[1]


def severity_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """:func:`~vulnwatch.model.severity_counts` of ``findings``, a run at a time (each run's
    counts kept with it)."""
    return dict(zip(SEVERITIES, totals(findings)[2]))
