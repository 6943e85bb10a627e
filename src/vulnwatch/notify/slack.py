"""Slack sink: an incoming webhook, Block Kit messages.

One event -> a message with a header (``repository:tag``, what happened), the image's
registry / digest / scanner, counts per severity with deltas against the previous
snapshot, then the new findings most severe first (each linked), the fixed ones and the
changed ones, each list cut at ``max_listed`` with "and N more". Several events (digest
mode) -> one message with a short section per image.

Slack limits respected: a header's text <= 150 characters, a section's text <= 3000,
<= 50 blocks per message; a plain ``text`` fallback is always included (notifications and
clients without Block Kit show it).

The webhook URL is a secret: it is never logged, never in an error and not in ``repr``.
Messages are paced to one per ``min_interval`` seconds per notifier (Slack's rate limit
for incoming webhooks is about one message per second); HTTP 429 ``Retry-After`` is
passed on as :attr:`DeliveryError.retry_after`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from ..diff import KIND_LABELS, change_parts
from ..logs import reveal
from ..model import Event, EventKind, Finding, FindingChange, Severity
from ._http import post_message
from .interface import DeliveryError, Notifier

log = logging.getLogger(__name__)

HEADER_MAX = 150
SECTION_MAX = 3000
BLOCKS_MAX = 50

KIND_LABEL = KIND_LABELS

SEVERITY_EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.HIGH: ":large_orange_circle:",
    Severity.MEDIUM: ":large_yellow_circle:",
    Severity.LOW: ":large_blue_circle:",
    Severity.NEGLIGIBLE: ":white_circle:",
    Severity.UNKNOWN: ":black_circle:",
}


def escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """A mrkdwn link ``<url|label>``."""
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")
    return f"<{safe_url}|{escape(label)}>"


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _order(f: Finding) -> tuple:
    return (-int(f.severity), -(f.cvss_score or 0.0), f.vulnerability_id, f.package_name)


def _fixed_text(f: Finding) -> str:
    if f.fixed_versions:
        return escape(", ".join(f.fixed_versions))
    return "no fix yet" if not f.fixable else "fix available"


def added_line(f: Finding) -> str:
    """``• :red_circle: CRITICAL <link|CVE-…> `pkg` 1.0 → 1.1``."""
    return (f"• {SEVERITY_EMOJI[f.severity]} *{f.severity.name}* {link(f.link, f.vulnerability_id)} "
            f"`{escape(f.package_name)}` {escape(f.package_version)} → {_fixed_text(f)}")


def fixed_line(f: Finding) -> str:
    return (f"• {link(f.link, f.vulnerability_id)} `{escape(f.package_name)}` "
            f"{escape(f.package_version)} (was {f.severity.name})")


def changed_line(c: FindingChange) -> str:
    a, b = c.before, c.after
    parts = []
    if "severity" in c.what:
        parts.append(f"{a.severity.name} → *{b.severity.name}*")
    else:
        parts.append(b.severity.name)
    if "cvss_score" in c.what:
        parts.append(f"CVSS {a.cvss_score if a.cvss_score is not None else '?'} → "
                     f"{b.cvss_score if b.cvss_score is not None else '?'}")
    if "fix_available" in c.what:
        parts.append(f"fix: {_fixed_text(b)}" if b.fixable else "fix withdrawn")
    return (f"• {link(b.link, b.vulnerability_id)} `{escape(b.package_name)}` "
            f"{escape(b.package_version)}: " + ", ".join(parts))


def bullet_list(title: str, lines: Sequence[str], max_listed: int, limit: int = SECTION_MAX) -> str:
    """``title`` then up to ``max_listed`` lines, "and N more" for the rest, within ``limit`` chars."""
    out = [title]
    size = len(title)
    shown = 0
    for line in lines[:max_listed]:
        rest = len(lines) - shown - 1
        reserve = len(f"\n_…and {rest} more_") if rest else 0
        if size + 1 + len(line) + reserve > limit:
            break
        out.append(line)
        size += 1 + len(line)
        shown += 1
    if shown < len(lines):
        out.append(f"_…and {len(lines) - shown} more_")
    return _truncate("\n".join(out), limit)


def counts_text(event: Event) -> str:
    """``CRITICAL 2 (+1) · HIGH 0 (-3) · …``: non-zero severities now or before, with deltas."""
    now, before = event.counts, event.previous_counts
    parts = []
    for sev in sorted(Severity, reverse=True):
        n, p = now.get(sev.name, 0), before.get(sev.name, 0)
        if not n and not p:
            continue
        delta = f" ({n - p:+d})" if before and n != p else ""
        parts.append(f"*{sev.name}* {n}{delta}")
    return " · ".join(parts) if parts else "no findings"


def headline(event: Event) -> str:
    """``repository:tag — new image``."""
    return f"{event.subject} — {KIND_LABEL[EventKind(event.kind)]}"


def _about(event: Event) -> str:
    img = event.image
    bits = [f"registry `{escape(img.registry)}`", f"digest `{img.short_digest}`",
            f"scanner `{escape(event.scanner)}`"]
    if event.kind == EventKind.REBUILD and event.previous_digest:
        tags = ", ".join(event.moved_tags) or ", ".join(img.tags)
        moved = f" ({escape(tags)} moved)" if tags else ""
        bits.append(f"rebuilt from `{_short(event.previous_digest)}`{moved}")
    return " · ".join(bits)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(text, SECTION_MAX)}}


def _summary(event: Event) -> str:
    """``2 new, 1 fixed, 1 changed`` (:func:`vulnwatch.diff.change_parts`, without signs)."""
    return ", ".join(f"{n} {what}" for what, n in change_parts(event)) or "no finding changes"


def event_blocks(event: Event, max_listed: int) -> list[dict[str, Any]]:
    """The blocks of a one-event message."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _truncate(headline(event), HEADER_MAX),
                                    "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(_about(event), SECTION_MAX)}]},
        _section(counts_text(event)),
    ]
    if event.added:
        lines = [added_line(f) for f in sorted(event.added, key=_order)]
        blocks.append(_section(bullet_list(f"*New findings ({len(lines)})*", lines, max_listed)))
    if event.fixed:
        lines = [fixed_line(f) for f in sorted(event.fixed, key=_order)]
        blocks.append(_section(bullet_list(f"*Fixed ({len(lines)})*", lines, max_listed)))
    if event.changed:
        ordered = sorted(event.changed, key=lambda c: _order(c.after))
        lines = [changed_line(c) for c in ordered]
        blocks.append(_section(bullet_list(f"*Changed ({len(lines)})*", lines, max_listed)))
    return blocks


def digest_blocks(events: Sequence[Event], max_listed: int) -> list[dict[str, Any]]:
    """The blocks of a digest message: a summary, then one section (and divider) per image."""
    added = sum(len(e.added) for e in events)
    fixed = sum(len(e.fixed) for e in events)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": f"vulnwatch digest: {len(events)} images changed"}},
        _section(f"{added} new findings, {fixed} fixed across {len(events)} images"),
    ]
    ordered = sorted(events, key=lambda e: (-max((int(f.severity) for f in e.added), default=-1),
                                            e.image.repository, e.image.digest))
    room = BLOCKS_MAX - len(blocks) - 1  # keep one for "and N more images"
    shown = 0
    for e in ordered:
        if room < 2:
            break
        title = (f"*{escape(headline(e))}* · {_about(e)}\n{counts_text(e)} · {_summary(e)}")
        lines = [added_line(f) for f in sorted(e.added, key=_order)]
        lines += [fixed_line(f) for f in sorted(e.fixed, key=_order)]
        text = bullet_list(title, lines, max_listed) if lines else title
        blocks += [{"type": "divider"}, _section(text)]
        room -= 2
        shown += 1
    if shown < len(events):
        blocks.append(_section(f"_…and {len(events) - shown} more images_"))
    return blocks


def fallback_text(events: Sequence[Event]) -> str:
    """The plain ``text`` of a message (shown in notifications and by clients without blocks)."""
    if len(events) == 1:
        e = events[0]
        return _truncate(f"vulnwatch: {headline(e)}: {_summary(e)}", SECTION_MAX)
    added = sum(len(e.added) for e in events)
    fixed = sum(len(e.fixed) for e in events)
    return f"vulnwatch digest: {len(events)} images changed, {added} new findings, {fixed} fixed"


def render(events: Sequence[Event], max_listed: int = 10) -> dict[str, Any]:
    """The JSON payload for ``events``: one-event message or digest."""
    blocks = event_blocks(events[0], max_listed) if len(events) == 1 else digest_blocks(events, max_listed)
    return {"text": fallback_text(events), "blocks": blocks[:BLOCKS_MAX]}


class SlackNotifier(Notifier):
    """Posts Block Kit messages to a Slack incoming webhook. ``repr`` shows only the name."""

    def __init__(self, name: str, url: str, *, timeout: float = 10.0, min_interval: float = 1.0,
                 max_listed: int = 10, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"slack sink {name!r}: url must start with https:// (or http:// for a local receiver)")
        if max_listed < 1:
            raise ValueError(f"slack sink {name!r}: max_listed must be at least 1")
        self.name = name
        self._url = url
        self.min_interval = min_interval
        self.max_listed = max_listed
        self._sleep = sleep
        self._clock = clock
        self._last_post: float | None = None
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_config(cls, sink: Any) -> "SlackNotifier":
        return cls(sink.name, reveal(sink.url), timeout=sink.timeout.total_seconds())

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r})"

    def render(self, events: Sequence[Event]) -> dict[str, Any]:
        """The payload :meth:`send` would post."""
        return render(events, self.max_listed)

    def _pace(self) -> None:
        if self._last_post is None:
            return
        wait = self.min_interval - (self._clock() - self._last_post)
        if wait > 0:
            self._sleep(wait)

    def send(self, events: Sequence[Event]) -> None:
        if not events:
            return
        body = json.dumps(self.render(events), ensure_ascii=False).encode("utf-8")
        self._pace()
        try:
            post_message(self._client, self._url, body, {"Content-Type": "application/json; charset=utf-8"},
                         sink=self.name, kind="slack")
        except DeliveryError:
            self._last_post = self._clock()
            raise
        self._last_post = self._clock()
        log.debug("slack sink %r accepted a message about %d event(s)", self.name, len(events))

    def close(self) -> None:
        if self._own_client:
            self._client.close()
