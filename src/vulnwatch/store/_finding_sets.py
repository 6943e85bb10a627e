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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from ..model import Event, Finding, FindingChange
from ..runs import (SEVERITIES, Run, finding_parts, runs, runs_of, set_id, severity_counts, signature_total,
                    totals, walk)

__all__ = ["Summary", "event_dict", "event_list_ids", "event_parts", "finding_parts", "runs_of", "severity_counts",
           "split", "split_dicts", "split_event_lists", "set_id", "signature_total", "summarise", "summary"]


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


_SEVERITIES = SEVERITIES
_runs = runs
_PAIR = operator.attrgetter("pair")


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
    seq = findings if isinstance(findings, tuple) else tuple(findings)
    _n, total, counts, kev = totals(seq)
    return Summary(list(map(_PAIR, _runs(seq))), total, dict(zip(_SEVERITIES, counts)), kev)


def summarise(findings: Sequence[Finding]) -> tuple[list[tuple[str, str]], int, dict[str, int]]:
    """(their sets as :func:`split` gives them, the sum of their finding hashes,
    :func:`~vulnwatch.model.severity_counts`): :func:`summary` without the KEV count."""
    s = summary(findings)
    return s.sets, s.total, s.counts


_EVENT_LISTS = ("added", "fixed", "changed")
_LIST_AT: dict[int, Run] = {}
"""The runs' cache by first finding (:func:`~vulnwatch.runs.walk`) for the lists inside events: a
package's delta often starts with the same finding as its whole set, and one cache for both
would evict each with the other."""


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
        runs = list(walk(getattr(event, k), _LIST_AT))
        refs[k] = [r.sid for r in runs]
        lists.extend(r.pair for r in runs)
    parts = _cut(event.changed, lambda c: finding_parts(c.after)[4], _change_text)
    refs["changed"] = [lid for lid, _ in parts]
    lists.extend(parts)
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
    return _cut(findings, key or _dict_key, _dumps)


def _cut(items: Sequence, key_of, text_of) -> list[tuple[str, str]]:
    """``items`` cut into consecutive runs of one package key (``key_of``), each as (its id, its
    JSON array of ``text_of`` each item)."""
    out: list[tuple[str, str]] = []
    run: list[str] = []
    current = None
    for item in items:
        k = key_of(item)
        if run and k != current:
            out.append(_list(run))
            run = []
        current = k
        run.append(text_of(item))
    if run:
        out.append(_list(run))
    return out
