"""Which events (and which findings in them) a notification sink wants.

A :class:`Route` is the filter configured for one sink; :func:`route` applies it to one
event. Filtering keeps the event's identity (image, kind, counts) and narrows its
``added`` / ``fixed`` / ``changed`` lists; ``counts`` and ``previous_counts`` stay those
of the whole image so that a message can still say "CRITICAL 2 (+1)".

The outbox keeps whole events; each sink's route is applied when it is sent.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from ..model import Event, EventKind, Finding, FindingChange, FindingFilter, Severity, stable_id

MODES = ("per_image", "digest")
"""Delivery modes: one message per event, or one message for all events due at once."""

Mode = Literal["per_image", "digest"]


@dataclass(frozen=True)
class Route:
    """The filter of one sink. The defaults let everything through."""

    min_severity: Severity = Severity.UNKNOWN
    """Findings rated below this are left out of ``added`` / ``fixed`` / ``changed``."""
    fixable_only: bool = False
    """Leave out findings with no known fix."""
    kev_only: bool = False
    """Leave out findings not listed in CISA's KEV catalog."""
    min_epss: float | None = None
    """Leave out findings whose EPSS score is below this (or unknown)."""
    repositories: tuple[str, ...] = ()
    """Glob patterns (:func:`fnmatch.fnmatchcase`) matched against ``<registry name>/<repository>``
    (as the config documents: ``prod/*`` is everything in the registry named ``prod``); empty
    means every repository."""
    mode: Mode = "per_image"
    """``per_image``: one message per event; ``digest``: one message for all due events."""
    kinds: frozenset[EventKind] = frozenset(EventKind)
    """Event kinds the sink wants (default: all)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"notification mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not isinstance(self.min_severity, Severity):
            object.__setattr__(self, "min_severity", _severity(self.min_severity))
        if isinstance(self.repositories, str):
            object.__setattr__(self, "repositories", (self.repositories,))
        elif not isinstance(self.repositories, tuple):
            object.__setattr__(self, "repositories", tuple(self.repositories))
        if not isinstance(self.kinds, frozenset) or not all(isinstance(k, EventKind) for k in self.kinds):
            object.__setattr__(self, "kinds", frozenset(_kind(k) for k in self.kinds))

    @property
    def filters_findings(self) -> bool:
        """True when the route narrows findings (a severity floor or fixable only)."""
        return self.findings.narrows

    def matches_repository(self, registry: str, repository: str) -> bool:
        """Whether ``repository`` (or ``registry/repository``) matches one of the globs."""
        if not self.repositories:
            return True
        full = f"{registry}/{repository}"
        return any(fnmatchcase(full, p) for p in self.repositories)

    @functools.cached_property
    def findings(self) -> FindingFilter:
        """The route's finding filter (the one every output and sink applies)."""
        return FindingFilter(min_severity=self.min_severity, fixable_only=self.fixable_only, kev_only=self.kev_only,
                             min_epss=self.min_epss)

    def wants(self, finding: Finding) -> bool:
        """Whether one finding passes the severity floor and the fixable filter."""
        return self.findings.wants(finding)


def _severity(value: object) -> Severity:
    if isinstance(value, int):
        return Severity(value)
    try:
        return Severity.from_name(str(value))
    except ValueError:
        raise ValueError(f"min_severity {value!r} is not one of {', '.join(Severity.__members__)}") from None


def _kind(value: object) -> EventKind:
    try:
        return EventKind(value)
    except ValueError:
        known = ", ".join(k.value for k in EventKind)
        raise ValueError(f"event kind {value!r} is not one of {known}") from None


def _change_wanted(change: FindingChange, r: Route) -> bool:
    return r.wants(change.before) or r.wants(change.after)


def route(event: Event, r: Route) -> Event | None:
    """The part of ``event`` that sink route ``r`` wants, or None if it wants nothing.

    None when the kind is not wanted, the repository does not match, or the finding filters
    leave no added, fixed or changed finding (a ``coverage`` event, which has none, is filtered
    by kind and repository only). A changed finding stays if either its
    before or after side passes. An event without findings at all (a clean new image, a
    rebuild with identical findings) passes only routes that do not filter findings.

    When findings were left out, the returned event gets its own stable id (derived from
    the original id and the filter), so a receiver never sees one id with two contents.
    """
    if event.kind not in r.kinds:
        return None
    if not r.matches_repository(event.image.registry, event.image.repository):
        return None
    if not r.filters_findings or event.kind is EventKind.COVERAGE:
        return event      # a coverage event carries no findings: only kind and repository filter it
    added = tuple(f for f in event.added if r.wants(f))
    fixed = tuple(f for f in event.fixed if r.wants(f))
    changed = tuple(c for c in event.changed if _change_wanted(c, r))
    if not (added or fixed or changed):
        return None
    if (len(added), len(fixed), len(changed)) == (len(event.added), len(event.fixed), len(event.changed)):
        return event
    extra = (r.kev_only, r.min_epss) if (r.kev_only or r.min_epss is not None) else ()   # ids as before otherwise
    new_id = stable_id("routed", event.id, r.min_severity.name, r.fixable_only, *extra)
    return dataclasses.replace(event, id=new_id, added=added, fixed=fixed, changed=changed)
