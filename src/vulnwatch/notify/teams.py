"""Microsoft Teams sink: an Adaptive Card posted to a Teams Workflows (or incoming) webhook.

The body is the message shape Teams Workflows accept::

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {"type": "AdaptiveCard", "version": "1.4", "body": [...],
                                  "msteams": {"width": "Full"}, ...}}]}

with the content of the Slack message: a headline (``repository:tag — kind``; a long
repository is cut, never the kind), the registry / digest / scanner as facts, the counts per
severity with deltas, then the new, fixed and changed findings most severe first, each
linked, each list cut at ``max_listed`` with "…and N more". Digest mode: one card, the most
severe images in detail while every other image still fits as a line after them, then one
line per image, then "…and N more images".

Teams refuses messages over 28 KB: the whole request stays within ``max_payload_bytes``
(default 27 KiB), lists getting shorter as needed. Card elements used: ``TextBlock``,
``FactSet``, ``Container`` (all Adaptive Cards 1.0, so every Teams client renders them);
text from events is escaped for the card's markdown (``*``, ``_``, ``[``, ``]``, ``(``,
``)``, ``\\``); only ``http(s)`` links are made links.

The webhook URL carries its signature (``sig=``): it is a secret, never logged, never in an
error and not in ``repr``. Outcomes are classified by :func:`vulnwatch.notify._http.post_message`
(429 ``Retry-After`` kept); the retired Office 365 connectors answer HTTP 200 with an error
text ("Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP
error 429 ..."), which is classified by the status it names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import httpx

from ..logs import reveal
from ..model import Event, EventKind, Finding, FindingChange, Severity
from ._http import post_message
from ..diff import KIND_LABELS
from ._payload import (DEFAULT_MAX_PAYLOAD_BYTES, priority_text, rescore_parts, change_text, check_max_payload, count_parts, cut_subject,
                       digest_order, first_listed, json_bytes, json_size, JsonBudget, reason_labels,
                       reason_text)
from .interface import DeliveryError, Notifier

log = logging.getLogger(__name__)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
HEADLINE_MAX = 150
TEAMS_LIMIT = 28 * 1024
"""What Teams documents as its message size limit ("28 KB")."""

SEVERITY_MARK = {
    Severity.CRITICAL: "🔴",
    Severity.HIGH: "🟠",
    Severity.MEDIUM: "🟡",
    Severity.LOW: "🔵",
    Severity.NEGLIGIBLE: "⚪",
    Severity.UNKNOWN: "⚫",
}

_MARKDOWN = re.compile(r"([\\*_\[\]()])")
_LEGACY_FAILURE = re.compile(r"delivery failed.*?HTTP error (\d{3})", re.I | re.S)


def escape(text: str) -> str:
    """``text`` with the characters the card's markdown acts on backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", text)


def link(url: str, label: str) -> str:
    """A markdown link ``[label](url)``; the label alone when the URL is not http(s)."""
    if not url.lower().startswith(("https://", "http://")):
        return escape(label)
    safe = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{escape(label)}]({safe})"


def _fixed_text(f: Finding) -> str:
    if f.fixed_versions:
        return escape(", ".join(f.fixed_versions))
    return "no fix yet" if not f.fixable else "fix available"


def added_line(f: Finding) -> str:
    """``🔴 **CRITICAL** [CVE-…](url) openssl 3.0.11 → 3.0.13``."""
    return (f"{SEVERITY_MARK[f.severity]} **{f.severity.name}** {link(f.link, f.vulnerability_id)} "
            f"{escape(f.package_name)} {escape(f.package_version)} → {_fixed_text(f)}{priority_text(f)}")


def fixed_line(f: Finding) -> str:
    return (f"✅ {link(f.link, f.vulnerability_id)} {escape(f.package_name)} {escape(f.package_version)} "
            f"(was {f.severity.name})")


def changed_line(c: FindingChange) -> str:
    a, b = c.before, c.after
    parts = [f"{a.severity.name} → **{b.severity.name}**" if "severity" in c.what else b.severity.name]
    if "cvss_score" in c.what:
        parts.append(f"CVSS {a.cvss_score if a.cvss_score is not None else '?'} → "
                     f"{b.cvss_score if b.cvss_score is not None else '?'}")
    if "fix_available" in c.what:
        parts.append(f"fix: {_fixed_text(b)}" if b.fixable else "fix withdrawn")
    parts += rescore_parts(c)
    return (f"🔁 {link(b.link, b.vulnerability_id)} {escape(b.package_name)} {escape(b.package_version)}: "
            + ", ".join(parts))


def headline(event: Event, limit: int = HEADLINE_MAX) -> str:
    """``repository:tag — kind`` within ``limit`` characters (the repository is cut, not the kind)."""
    return cut_subject(event.subject, f" — {KIND_LABELS[EventKind(event.kind)]}", limit)


def counts_text(event: Event) -> str:
    """``**CRITICAL** 2 (+1) · **HIGH** 1 · …``."""
    parts = [f"**{name}** {n}" + (f" ({delta:+d})" if delta is not None else "")
             for name, n, delta in count_parts(event)]
    return " · ".join(parts) if parts else "no findings"


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _line(text: str) -> dict[str, Any]:
    return _text(text, spacing="None")


def _facts(event: Event) -> dict[str, Any]:
    img = event.image
    facts = [{"title": "Registry", "value": escape(img.registry)},
             {"title": "Digest", "value": img.short_digest},
             {"title": "Scanner", "value": escape(event.scanner)}]
    if event.kind == EventKind.REBUILD and event.previous_digest:
        tags = ", ".join(event.moved_tags) or ", ".join(img.tags)
        moved = f" ({escape(tags[:500])} moved)" if tags else ""
        facts.append({"title": "Rebuilt from", "value": event.previous_digest.split(":", 1)[-1][:12] + moved})
    return {"type": "FactSet", "facts": facts}


def _list_container(title: str, lines: Sequence[str], total: int) -> dict[str, Any]:
    items = [_text(f"**{title} ({total})**")] + [_line(x) for x in lines]
    if total > len(lines):
        items.append(_line(f"_…and {total - len(lines)} more_"))
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def card(body: list[dict[str, Any]], fallback: str) -> dict[str, Any]:
    """An Adaptive Card around ``body``."""
    return {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": CARD_VERSION,
            "fallbackText": fallback, "body": body, "msteams": {"width": "Full"}}


def message(content: dict[str, Any]) -> dict[str, Any]:
    """The request body Teams Workflows accept, around one card."""
    return {"type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": content}]}


def fallback_text(events: Sequence[Event]) -> str:
    if len(events) == 1:
        return f"vulnwatch: {headline(events[0])}: {change_text(events[0])}"
    added = sum(len(e.added) for e in events)
    fixed = sum(len(e.fixed) for e in events)
    return f"vulnwatch digest: {len(events)} images changed, {added} new findings, {fixed} fixed"


_LISTS = (("added", "New findings", added_line), ("fixed", "Fixed", fixed_line),
          ("changed", "Changed", changed_line))


def _event_body(event: Event, max_listed: int, budget: JsonBudget) -> list[dict[str, Any]]:
    body = [_text(headline(event), size="Medium", weight="Bolder"), _facts(event), _text(counts_text(event))]
    if event.reasons:
        body.append(_text(f"**Why:** {escape(reason_text(event))}", isSubtle=True))
    for el in body:
        budget.take(el)
    wanted = [(name, title, fmt) for name, title, fmt in _LISTS if getattr(event, name)]
    for i, (name, title, fmt) in enumerate(wanted):
        total = len(getattr(event, name))
        lines = [fmt(x) for x in first_listed(event, name, max_listed)]
        # keep room for the title and "…and N more" of each list still to come
        reserve = sum(json_size(_list_container(t, [], len(getattr(event, n)))) + 1 for n, t, _ in wanted[i + 1:])
        while lines and not budget.fits(budget.cost(_list_container(title, lines, total)), reserve):
            lines.pop()
        body.append(_list_container(title, lines, total))
        budget.take(body[-1])
    return body


def _image_container(event: Event, max_listed: int) -> dict[str, Any]:
    """A digest image in detail."""
    img = event.image
    items = [_text(f"**{escape(headline(event))}**"),
             _line(f"registry {escape(img.registry)} · digest {img.short_digest} · scanner {escape(event.scanner)}"),
             _line(f"{counts_text(event)} · {change_text(event)}")]
    if event.reasons:
        items.append(_line(f"Why: {escape(reason_text(event, 400))}"))
    lines = [added_line(f) for f in first_listed(event, "added", max_listed)]
    lines += [fixed_line(f) for f in first_listed(event, "fixed", max_listed - len(lines))]
    items += [_line(x) for x in lines]
    total = len(event.added) + len(event.fixed)
    if total > len(lines):
        items.append(_line(f"_…and {total - len(lines)} more_"))
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def image_line(event: Event) -> str:
    why = f" · {escape(reason_labels(event))}" if event.reasons else ""
    return f"• **{escape(headline(event, 100))}** · {counts_text(event)} · {change_text(event)}{why}"


def _digest_body(events: Sequence[Event], max_listed: int, budget: JsonBudget) -> list[dict[str, Any]]:
    added = sum(len(e.added) for e in events)
    fixed = sum(len(e.fixed) for e in events)
    body = [_text(f"vulnwatch digest: {len(events)} images changed", size="Medium", weight="Bolder"),
            _text(f"{added} new findings, {fixed} fixed across {len(events)} images")]
    for el in body:
        budget.take(el)
    ordered = digest_order(events)
    lines = [_line(image_line(e)) for e in ordered]
    more_cost = json_size(_line(f"_…and {len(events)} more images_")) + 1
    tail = [0] * (len(lines) + 1)  # bytes of the lines of images i.., in one container
    for i in range(len(lines) - 1, -1, -1):
        tail[i] = tail[i + 1] + json_size(lines[i]) + 1
    shown = 0
    for i, e in enumerate(ordered):
        detail = _image_container(e, max_listed)
        rest = tail[i + 1] + 80 if i + 1 < len(ordered) else 0
        if not budget.fits(budget.cost(detail), rest):
            break
        budget.take(detail)
        body.append(detail)
        shown += 1
    if shown < len(ordered):
        container: dict[str, Any] = {"type": "Container", "separator": True, "spacing": "Medium", "items": []}
        budget.take(container)  # its items are counted one by one below
        items = JsonBudget(budget.limit, budget.used)
        for line in lines[shown:]:
            reserve = more_cost if shown + 1 < len(ordered) else 0
            if not items.take(line, reserve):
                break
            container["items"].append(line)
            shown += 1
        budget.used = items.used
        body.append(container)
    if shown < len(events):
        more = _line(f"_…and {len(events) - shown} more images_")
        budget.take(more)
        body.append(more)
    return body


def render(events: Sequence[Event], max_listed: int = 10,
           max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES["teams"]) -> dict[str, Any]:
    """The request body for ``events`` (one event, or a digest), within ``max_bytes`` of compact JSON."""
    text = fallback_text(events)
    empty = message(card([], text))
    budget = JsonBudget(max_bytes, json_size(empty))
    body = _event_body(events[0], max_listed, budget) if len(events) == 1 else _digest_body(events, max_listed, budget)
    return message(card(body, text))


def _legacy_failure(response: httpx.Response, who: str) -> DeliveryError | None:
    """The error an Office 365 connector reports in a 2xx answer, if any."""
    try:
        text = response.text[:500]
    except Exception:  # undecodable: not the connector's error text
        return None
    m = _LEGACY_FAILURE.search(text)
    if not m:
        return None
    status = int(m.group(1))
    retryable = status >= 500 or status in (408, 429)
    hint = "" if retryable else "; the message was refused (retrying will not help)"
    return DeliveryError(f"{who}: Teams answered that delivery failed with HTTP {status}{hint}",
                         retryable=retryable)


class TeamsNotifier(Notifier):
    """Posts Adaptive Cards to a Teams Workflows webhook. ``repr`` shows only the name."""

    def __init__(self, name: str, url: str, *, timeout: float = 10.0, max_listed: int = 10,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES["teams"], verify_tls: bool = True,
                 client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"teams sink {name!r}: url must start with https:// (or http:// for a local receiver)")
        if max_listed < 1:
            raise ValueError(f"teams sink {name!r}: max_listed must be at least 1")
        self.name = name
        self._url = url
        self.max_listed = max_listed
        self.max_payload_bytes = check_max_payload("teams", name, max_payload_bytes)
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False)

    @classmethod
    def from_config(cls, sink: Any) -> "TeamsNotifier":
        return cls(sink.name, reveal(sink.url), timeout=sink.timeout.total_seconds(), max_listed=sink.max_listed,
                   max_payload_bytes=sink.max_payload_bytes, verify_tls=sink.verify_tls)

    def __repr__(self) -> str:
        return f"TeamsNotifier(name={self.name!r})"

    def render(self, events: Sequence[Event]) -> dict[str, Any]:
        """The request body :meth:`send` would post."""
        return render(events, self.max_listed, self.max_payload_bytes)

    def body(self, events: Sequence[Event]) -> bytes:
        """The exact bytes :meth:`send` posts."""
        return json_bytes(self.render(events))

    def send(self, events: Sequence[Event]) -> None:
        if not events:
            return
        response = post_message(self._client, self._url, self.body(events),
                                {"Content-Type": "application/json; charset=utf-8"}, sink=self.name, kind="teams")
        error = _legacy_failure(response, f"teams sink {self.name!r}")
        if error is not None:
            raise error
        log.debug("teams sink %r accepted a card about %d event(s)", self.name, len(events))

    def close(self) -> None:
        if self._own_client:
            self._client.close()
