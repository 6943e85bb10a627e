"""Findings stored per distinct package: content-addressed finding sets (SQL store, migration 7).

A scanner's findings come package by package (the built-in matcher makes one run of findings per
distinct package, and images of a fleet share most packages), so a snapshot's findings are cut
into consecutive runs with the same (ecosystem, package, version, purl): each run is a *set*,
stored once in ``finding_sets`` under the hash of its JSON text and referred to by id from every
snapshot (and scan history entry) that holds it. A snapshot's findings are its sets' findings,
in order: nothing about a result changes, only how often its bytes are written.

Sets are immutable (the id is the hash of the text), so any process may cache them by id. The
runs themselves (their walk, sums, counts and ids) are :mod:`vulnwatch.runs`, shared with the
scanner and the diff; this module is what storing them adds.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from ..model import Event, Finding
from ..runs import (SEVERITIES, finding_parts, runs, runs_of, set_id, severity_counts, signature_total,
                    walk)

__all__ = ["Summary", "event_text", "finding_parts", "runs_of", "severity_counts", "split", "split_dicts",
           "set_id", "signature_total", "summarise", "summary"]


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


_SEVERITIES = SEVERITIES
_walk = walk
_runs = runs
_PAIR = operator.attrgetter("pair")
_TOTAL = operator.attrgetter("total")
_COUNTS = operator.attrgetter("counts")
_KEV = operator.attrgetter("kev")


def split(findings: Sequence[Finding]) -> list[tuple[str, str]]:
    """``findings`` as consecutive sets: [(set id, JSON text of the set's findings), ...]."""
    return summarise(findings)[0]


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
