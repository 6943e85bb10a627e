import pytest

from tests.support.events import change, event, finding
from vulnwatch.model import EventKind, Severity
from vulnwatch.delivery.routing import Route, route


def test_default_route_passes_event_unchanged_even_without_findings():
    ev = event(added=[finding("CVE-1", Severity.LOW)])
    assert route(ev, Route()) is ev
    clean = event(EventKind.NEW_IMAGE)
    assert route(clean, Route()) is clean
    assert route(clean, Route(min_severity=Severity.LOW)) is None


def test_min_severity_filters_added_fixed_and_changed_but_keeps_counts():
    ev = event(added=[finding("CVE-C", Severity.CRITICAL), finding("CVE-L", Severity.LOW)],
               fixed=[finding("CVE-M", Severity.MEDIUM), finding("CVE-H", Severity.HIGH)],
               changed=[change("CVE-UP", Severity.LOW, Severity.HIGH),
                        change("CVE-DOWN", Severity.CRITICAL, Severity.LOW),
                        change("CVE-LOW", Severity.LOW, Severity.MEDIUM)],
               counts={"CRITICAL": 1, "LOW": 7}, previous_counts={"LOW": 3})
    out = route(ev, Route(min_severity=Severity.HIGH))
    assert [f.vulnerability_id for f in out.added] == ["CVE-C"]
    assert [f.vulnerability_id for f in out.fixed] == ["CVE-H"]
    # a changed finding counts when either side qualifies
    assert [c.after.vulnerability_id for c in out.changed] == ["CVE-UP", "CVE-DOWN"]
    assert out.counts == ev.counts and out.previous_counts == ev.previous_counts
    assert out.id != ev.id and route(ev, Route(min_severity=Severity.HIGH)).id == out.id
    assert out.image == ev.image and out.kind == ev.kind


def test_fixable_only_and_nothing_left_gives_none():
    ev = event(added=[finding("CVE-NOFIX", Severity.CRITICAL, fixed=()), finding("CVE-FIX", Severity.LOW)])
    out = route(ev, Route(fixable_only=True))
    assert [f.vulnerability_id for f in out.added] == ["CVE-FIX"]
    assert route(ev, Route(fixable_only=True, min_severity=Severity.MEDIUM)) is None


def test_repository_globs_match_registry_slash_repo():
    ev = event(added=[finding("CVE-1")], repository="team/app", registry="prod")
    assert route(ev, Route(repositories=("prod/team/*",))) is ev
    assert route(ev, Route(repositories=("prod/*",))) is ev
    assert route(ev, Route(repositories=("*/team/app",))) is ev
    # the registry name comes first, as the config documents: a bare repository glob does not
    # match (else "prod/*" would also catch a repository called prod/x in another registry)
    assert route(ev, Route(repositories=("team/*",))) is None
    other = event(added=[finding("CVE-1")], repository="prod/x", registry="dev")
    assert route(other, Route(repositories=("prod/*",))) is None
    assert route(ev, Route(repositories=("other/*", "staging/*"))) is None


def test_kinds_filter_and_validation():
    ev = event(EventKind.REBUILD, added=[finding("CVE-1")])
    assert route(ev, Route(kinds=frozenset({EventKind.NEW_IMAGE}))) is None
    assert route(ev, Route(kinds=frozenset({"rebuild"}))) is ev
    with pytest.raises(ValueError, match="mode 'hourly'"):
        Route(mode="hourly")
    with pytest.raises(ValueError, match="event kind 'deleted'"):
        Route(kinds=frozenset({"deleted"}))
    assert Route(min_severity="high").min_severity is Severity.HIGH
