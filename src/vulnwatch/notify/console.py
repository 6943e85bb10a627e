"""Prints notifications as plain text to a stream (standard error by default, so that
standard output stays the command's own report, e.g. ``--format json``).

What the embedded example uses, and handy in CI jobs: the same events a Slack sink would get,
readable in a terminal log.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ..diff import finding_order, summarize, why
from ..model import Event, Finding
from .interface import Notifier


def _line(f: Finding) -> str:
    fixed = f" -> fixed in {', '.join(f.fixed_versions)}" if f.fixed_versions else " (no fix yet)"
    return (f"{f.severity.name:<10} {f.vulnerability_id:<20} {f.package_name} {f.package_version}{fixed}")


def render(event: Event, max_listed: int = 10) -> str:
    """A few lines: the headline, then the new, fixed and changed findings (most severe first)."""
    img = event.image
    out = [f"[vulnwatch] {event.subject} ({img.registry}, {img.short_digest}): {summarize(event)}"]
    if event.reasons:
        out.append(f"  {why(event)}")
    sections = (("new", sorted(event.added, key=finding_order)),
                ("fixed", sorted(event.fixed, key=finding_order)))
    for title, items in sections:
        for f in items[:max_listed]:
            out.append(f"  {title:<5} {_line(f)}")
        if len(items) > max_listed:
            out.append(f"  ... and {len(items) - max_listed} more {title}")
    for c in event.changed[:max_listed]:
        out.append(f"  changed {c.after.vulnerability_id} {c.after.package_name}: "
                   f"{c.before.severity.name} -> {c.after.severity.name} ({', '.join(c.what)})")
    return "\n".join(out)


class ConsoleNotifier(Notifier):
    """Writes each event as text to ``stream`` (default: standard error)."""

    def __init__(self, name: str, url: str | None = None, *, stream: TextIO | None = None,
                 max_listed: int = 10, timeout: float | None = None) -> None:
        self.name = name
        self.stream = stream
        self.max_listed = max_listed

    @classmethod
    def from_config(cls, sink: Any) -> "ConsoleNotifier":
        return cls(sink.name)

    def send(self, events: Sequence[Event]) -> None:
        out = self.stream or sys.stderr
        for e in events:
            out.write(render(e, self.max_listed) + "\n")
        out.flush()
