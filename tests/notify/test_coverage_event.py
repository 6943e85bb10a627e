"""A "coverage" event (the image's coverage moved) reads sensibly in every message: what moved,
why, with the data's version; no finding lists; webhooks carry both coverages."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from vulnwatch.delivery.routing import Route, route
from vulnwatch.diff import coverage_event, summarize
from vulnwatch.model import (Coverage, DataSource, EcosystemCoverage, EventKind, Image, ScanResult, Severity,
                             UnjudgedPackage)
from vulnwatch.notify import console, slack, teams
from vulnwatch.notify.email import EmailNotifier
from vulnwatch.notify.webhook import cloudevent

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
IMG = Image("prod", "team/edge", "sha256:" + "c" * 64, tags=("3.17",))
MISSING = Coverage((EcosystemCoverage("Alpine:v3.17", 2, False),),
                   (UnjudgedPackage("Alpine:v3.17", "musl", "1.2.3-r5", "no advisory data for Alpine:v3.17"),
                    UnjudgedPackage("Alpine:v3.17", "busybox", "1.35.0-r31", "no advisory data for Alpine:v3.17")))
COMPLETE = Coverage((EcosystemCoverage("Alpine:v3.17", 2, True, records=5, updated_at=T0),))
DATA = (DataSource("advisory", "Alpine", version="Tue, 01 Dec 2026 06:00:00 GMT", updated_at=T0),
        DataSource("advisory", "PyPI", version="x"))


def _event(before=MISSING, after=COMPLETE):
    old = ScanResult(IMG, "builtin", T0, coverage=before)
    return coverage_event(ScanResult(IMG, "builtin", T0.replace(hour=9), coverage=after), old, data=DATA, now=T0)


def test_coverage_event_is_made_only_when_what_could_be_judged_moved():
    ev = _event()
    assert ev.kind is EventKind.COVERAGE and not (ev.added or ev.fixed or ev.changed)
    assert summarize(ev) == "coverage changed: coverage missing -> complete: advisory data now covers Alpine:v3.17; " \
                            "2 packages judged now"
    [why] = ev.reasons
    assert [d.name for d in why.data] == ["Alpine"] and "Tue, 01 Dec 2026 06:00:00 GMT" in why.summary
    later = Coverage((EcosystemCoverage("Alpine:v3.17", 2, True, records=9, updated_at=T0.replace(day=2)),))
    assert _event(COMPLETE, later) is None                  # more records, newer import: same coverage
    assert _event(None, COMPLETE) is None                   # not known before: no change to report
    back = _event(COMPLETE, MISSING)
    assert "no advisory data any more for Alpine:v3.17" in summarize(back)
    assert "2 packages not judged now (busybox@1.35.0-r31, musl@1.2.3-r5)" in summarize(back)
    assert _event().id == _event().id != back.id
    strict = Route(min_severity=Severity.CRITICAL, kev_only=True)
    assert route(ev, strict) is ev                          # no findings to filter: kind and repository only
    assert route(ev, Route(kinds=frozenset({EventKind.NEW_IMAGE}))) is None


def test_every_message_says_what_moved():
    ev = _event()
    text = "advisory data now covers Alpine:v3.17"
    blocks = json.dumps(slack.render([ev]))
    assert "coverage changed" in blocks and text in blocks and "New findings" not in blocks
    assert text in json.dumps(slack.render([ev, ev]))       # a digest line too
    card = json.dumps(teams.render([ev]))
    assert "coverage changed" in card and text in card
    msg = EmailNotifier("mail", host="smtp.example.com", sender="v@example.com",
                        recipients=["sec@example.com"]).message([ev])
    assert "coverage changed" in msg["Subject"] and text in msg["Subject"]
    assert text in msg.get_body(("plain",)).get_content()
    assert text in console.render(ev)
    data = cloudevent(ev)["data"]
    assert cloudevent(ev)["type"].endswith(".coverage")
    assert data["coverage"]["state"] == "complete" and data["previous_coverage"]["missing"] == ["Alpine:v3.17"]
    assert len(data["previous_coverage"]["unjudged"]) == 2
