"""Slack sink: an incoming webhook, Block Kit messages.

One event -> a message with a header (``repository:tag``, what happened), the image's
registry / digest / scanner, counts per severity with deltas against the previous
snapshot, then the new findings most severe first (each linked), the fixed ones and the
changed ones, each list cut at ``max_listed`` with "and N more". Several events (digest
mode) -> one message: the most severe images each in a section of their own, as long as
every other image still fits as one line after them; then one line per image; then
"…and N more images" if even the lines do not all fit.

Slack limits respected: a header's text <= 150 characters (a long repository name is cut,
the kind never), a section's text <= 3000, <= 50 blocks per message, and the whole message
within ``max_payload_bytes`` (default 12,000: Slack refuses messages whose blocks add up to
more than about 13,000 characters); a plain ``text`` fallback is always included
(notifications and clients without Block Kit show it). Only the listed findings are
formatted (the ``max_listed`` most severe of each list), so a digest over thousands of
findings costs the memory of its message.

The webhook URL is a secret: it is never logged, never in an error and not in ``repr``.
Messages are paced to one per ``min_interval`` seconds per notifier (Slack's rate limit
for incoming webhooks is about one message per second); HTTP 429 ``Retry-After`` is
passed on as :attr:`DeliveryError.retry_after`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from ..diff import KIND_LABELS
from ..logs import reveal
from ..model import Event, EventKind, Finding, FindingChange, Severity
from ._http import post_message
from ._payload import (DEFAULT_MAX_PAYLOAD_BYTES, priority_text, rescore_parts, change_text, check_max_payload, count_parts, cut_subject,
                       digest_order, first_listed, json_bytes, json_size, JsonBudget, reason_labels,
                       reason_text, severity_order)
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


_order = severity_order


def _fixed_text(f: Finding) -> str:
    if f.fixed_versions:
        return escape(", ".join(f.fixed_versions))
    return "no fix yet" if not f.fixable else "fix available"


def added_line(f: Finding) -> str:
    """``• :red_circle: CRITICAL <link|CVE-…> `pkg` 1.0 → 1.1``."""
    return (f"• {SEVERITY_EMOJI[f.severity]} *{f.severity.name}* {link(f.link, f.vulnerability_id)} "
            f"`{escape(f.package_name)}` {escape(f.package_version)} → {_fixed_text(f)}{priority_text(f)}")


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
    parts += rescore_parts(c)
    return (f"• {link(b.link, b.vulnerability_id)} `{escape(b.package_name)}` "
            f"{escape(b.package_version)}: " + ", ".join(parts))


def bullet_list(title: str, lines: Sequence[str], max_listed: int, limit: int = SECTION_MAX,
                total: int | None = None) -> str:
    """``title`` then up to ``max_listed`` lines, "and N more" for the rest, within ``limit`` chars.
    ``lines`` may be only the first of ``total`` lines (default: all of them)."""
    total = len(lines) if total is None else total
    out = [title]
    size = len(title)
    shown = 0
    for line in lines[:max_listed]:
        rest = total - shown - 1
        reserve = len(f"\n_…and {rest} more_") if rest else 0
        if size + 1 + len(line) + reserve > limit:
            break
        out.append(line)
        size += 1 + len(line)
        shown += 1
    if shown < total:
        out.append(f"_…and {total - shown} more_")
    return _truncate("\n".join(out), limit)


def counts_text(event: Event) -> str:
    """``CRITICAL 2 (+1) · HIGH 0 (-3) · …``: non-zero severities now or before, with deltas."""
    parts = [f"*{name}* {n}" + (f" ({delta:+d})" if delta is not None else "")
             for name, n, delta in count_parts(event)]
    return " · ".join(parts) if parts else "no findings"


def headline(event: Event, limit: int = HEADER_MAX) -> str:
    """``repository:tag — new image`` within ``limit`` characters: a long subject is cut, the
    kind always stays."""
    return cut_subject(event.subject, f" — {KIND_LABEL[EventKind(event.kind)]}", limit)


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


_summary = change_text


def event_blocks(event: Event, max_listed: int, section_max: int = SECTION_MAX) -> list[dict[str, Any]]:
    """The blocks of a one-event message (list sections within ``section_max`` characters)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(event), "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _truncate(_about(event), SECTION_MAX)}]},
        _section(counts_text(event)),
    ]
    if event.reasons:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": _truncate(f"*Why:* {escape(reason_text(event))}", SECTION_MAX)}]})
    for name, title, line in (("added", "New findings", added_line), ("fixed", "Fixed", fixed_line),
                              ("changed", "Changed", changed_line)):
        total = len(getattr(event, name))
        if total:
            lines = [line(x) for x in first_listed(event, name, max_listed)]
            blocks.append(_section(bullet_list(f"*{title} ({total})*", lines, max_listed, section_max, total)))
    return blocks


def _image_lines(event: Event, max_listed: int) -> tuple[list[str], int]:
    """A digest image's listed lines (new ones first, then fixed) and how many there are in all."""
    lines = [added_line(f) for f in first_listed(event, "added", max_listed)]
    lines += [fixed_line(f) for f in first_listed(event, "fixed", max_listed - len(lines))]
    return lines, len(event.added) + len(event.fixed)


def image_section(event: Event, max_listed: int) -> dict[str, Any]:
    """A digest image in detail: headline, about, counts, change, its most severe findings."""
    title = f"*{escape(headline(event))}* · {_about(event)}\n{counts_text(event)} · {_summary(event)}"
    if event.reasons:
        title += f"\n_Why:_ {escape(reason_text(event, 400))}"
    lines, total = _image_lines(event, max_listed)
    return _section(bullet_list(title, lines, max_listed, SECTION_MAX, total) if total else title)


def image_line(event: Event) -> str:
    """A digest image in one line: headline, counts, change."""
    why = f" · {escape(reason_labels(event))}" if event.reasons else ""
    return f"• *{escape(headline(event, 100))}* · {counts_text(event)} · {_summary(event)}{why}"


def _more_images(n: int) -> dict[str, Any]:
    return _section(f"_…and {n} more images_")


def digest_blocks(events: Sequence[Event], max_listed: int,
                  max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES["slack"], used: int = 0) -> list[dict[str, Any]]:
    """The blocks of a digest message within ``max_bytes`` (``used``: what the rest of the
    message takes): a summary, the most severe images in detail while every other image still
    fits as a line after them, the others one line each, then "…and N more images"."""
    added = sum(len(e.added) for e in events)
    fixed = sum(len(e.fixed) for e in events)
    budget = JsonBudget(max_bytes, used + 2)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": f"vulnwatch digest: {len(events)} images changed"}},
        _section(f"{added} new findings, {fixed} fixed across {len(events)} images"),
    ]
    for b in blocks:
        budget.take(b)
    ordered = digest_order(events)
    lines = [image_line(e) for e in ordered]
    more_cost = json_size(_more_images(len(events))) + 1
    # what the lines of images i.. take once packed in sections: bytes, characters
    tail_bytes = [0] * (len(lines) + 1)
    tail_chars = [0] * (len(lines) + 1)
    for i in range(len(lines) - 1, -1, -1):
        tail_bytes[i] = tail_bytes[i + 1] + json_size(lines[i])
        tail_chars[i] = tail_chars[i + 1] + len(lines[i]) + 1
    detailed = 0
    for i, e in enumerate(ordered):
        pair = [{"type": "divider"}, image_section(e, max_listed)]
        cost = budget.cost(pair[0]) + json_size(pair[1]) + 1
        sections = -(-tail_chars[i + 1] // (SECTION_MAX - 300))  # the rest's line sections, with room
        rest = tail_bytes[i + 1] + 80 * (sections + 1) if sections else 0
        if len(blocks) + 2 + sections + 2 > BLOCKS_MAX or not budget.fits(cost, rest):
            break
        for b in pair:
            budget.take(b)
            blocks.append(b)
        detailed += 1
    shown = detailed
    if detailed < len(ordered):
        blocks.append({"type": "divider"})
        budget.take(blocks[-1])
        text = ""
        for line in lines[detailed:]:
            candidate = f"{text}\n{line}" if text else line
            reserve = more_cost if shown + 1 < len(ordered) else 0
            if len(candidate) <= SECTION_MAX and budget.fits(budget.cost(_section(candidate)), reserve):
                text = candidate
                shown += 1
                continue
            if not text:
                break
            budget.take(_section(text))
            blocks.append(_section(text))
            text = ""
            if len(blocks) + 2 > BLOCKS_MAX or not budget.fits(budget.cost(_section(line)), reserve):
                break
            text = line
            shown += 1
        if text:
            budget.take(_section(text))
            blocks.append(_section(text))
    if shown < len(events):
        blocks.append(_more_images(len(events) - shown))
    return blocks


def fallback_text(events: Sequence[Event]) -> str:
    """The plain ``text`` of a message (shown in notifications and by clients without blocks)."""
    if len(events) == 1:
        e = events[0]
        return _truncate(f"vulnwatch: {headline(e)}: {_summary(e)}", SECTION_MAX)
    added = sum(len(e.added) for e in events)
    fixed = sum(len(e.fixed) for e in events)
    return f"vulnwatch digest: {len(events)} images changed, {added} new findings, {fixed} fixed"


def render(events: Sequence[Event], max_listed: int = 10,
           max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES["slack"]) -> dict[str, Any]:
    """The JSON payload for ``events`` (one-event message or digest), within ``max_bytes``
    of compact JSON."""
    text = fallback_text(events)
    if len(events) > 1:
        return {"text": text, "blocks": digest_blocks(events, max_listed, max_bytes,
                                                      used=json_size({"text": text, "blocks": []}) - 2)}
    payload: dict[str, Any] = {}
    for section_max in (SECTION_MAX, 2000, 1200, 600, 300):  # shorter lists until it fits
        payload = {"text": text, "blocks": event_blocks(events[0], max_listed, section_max)}
        if json_size(payload) <= max_bytes:
            break
    return payload


class SlackNotifier(Notifier):
    """Posts Block Kit messages to a Slack incoming webhook. ``repr`` shows only the name."""

    def __init__(self, name: str, url: str, *, timeout: float = 10.0, min_interval: float = 1.0,
                 max_listed: int = 10, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES["slack"],
                 verify_tls: bool = True, client: httpx.Client | None = None,
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
        self.max_payload_bytes = check_max_payload("slack", name, max_payload_bytes)
        self._sleep = sleep
        self._clock = clock
        self._last_post: float | None = None
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False)

    @classmethod
    def from_config(cls, sink: Any) -> "SlackNotifier":
        return cls(sink.name, reveal(sink.url), timeout=sink.timeout.total_seconds(), max_listed=sink.max_listed,
                   max_payload_bytes=sink.max_payload_bytes, verify_tls=sink.verify_tls)

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r})"

    def render(self, events: Sequence[Event]) -> dict[str, Any]:
        """The payload :meth:`send` would post."""
        return render(events, self.max_listed, self.max_payload_bytes)

    def _pace(self) -> None:
        if self._last_post is None:
            return
        wait = self.min_interval - (self._clock() - self._last_post)
        if wait > 0:
            self._sleep(wait)

    def send(self, events: Sequence[Event]) -> None:
        if not events:
            return
        body = json_bytes(self.render(events))
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
