"""Generic webhook sink: CloudEvents 1.0 in structured mode, optionally HMAC-signed.

One event -> one CloudEvent of type ``io.vulnwatch.image.<kind>`` whose ``data`` is
:meth:`vulnwatch.model.Event.to_dict`. Several events (digest mode) -> one CloudEvent of
type ``io.vulnwatch.digest`` whose ``data.events`` lists them. The CloudEvent ``id`` is
stable across retries, so receivers de-duplicate on it (delivery is at least once).

With a ``secret`` the request carries ``X-Vulnwatch-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact request body bytes with the secret as key.

This module also holds :func:`post_message`, the HTTP POST with error classification that
the Slack sink shares.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx

from ..model import Event, EventKind, stable_id
from .interface import DeliveryError, Notifier

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "X-Vulnwatch-Signature"
DIGEST_TYPE = "io.vulnwatch.digest"
TYPE_PREFIX = "io.vulnwatch.image."

_RETRYABLE_4XX = {408, 425, 429}
_URL_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every given secret and anything URL-shaped replaced by ``<redacted>``."""
    for s in secrets:
        if s:
            text = text.replace(s, "<redacted>")
    return _URL_RE.sub("<redacted>", text)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _short_body(response: httpx.Response, url: str) -> str:
    try:
        text = response.text
    except Exception:  # undecodable body: say nothing about it
        return ""
    text = " ".join(text.split())[:200]
    return redact(text, url)


def post_message(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str],
                 *, sink: str, kind: str) -> httpx.Response:
    """POST ``body`` and classify the outcome; returns the 2xx response.

    Raises :class:`DeliveryError`: 429 -> retryable with ``retry_after``; 408/425, 5xx,
    timeouts and connection failures -> retryable; other 4xx and 3xx -> not retryable.
    Messages name the sink (``kind`` ``sink``), never the URL or headers.
    """
    who = f"{kind} sink {sink!r}"
    try:
        response = client.post(url, content=body, headers=dict(headers))
    except httpx.TimeoutException as e:
        raise DeliveryError(f"{who}: timed out ({type(e).__name__})") from None
    except httpx.TransportError as e:
        raise DeliveryError(f"{who}: could not connect ({type(e).__name__}: {redact(str(e), url)})") from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    detail = _short_body(response, url)
    detail = f": {detail}" if detail else ""
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        hint = f"; asked to wait {retry_after:g}s" if retry_after is not None else ""
        raise DeliveryError(f"{who}: HTTP 429 rate limited{hint}{detail}", retryable=True,
                            retry_after=retry_after)
    if status >= 500 or status in _RETRYABLE_4XX:
        raise DeliveryError(f"{who}: HTTP {status}{detail}", retryable=True,
                            retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if 300 <= status < 400:
        raise DeliveryError(f"{who}: HTTP {status} redirect (not followed); set the sink's url to the "
                            "final address", retryable=False)
    raise DeliveryError(f"{who}: HTTP {status}{detail}; the receiver refused it, check the sink's url "
                        "and credentials (retrying will not help)", retryable=False)


def _rfc3339(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def cloudevent(event: Event) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode envelope of one event."""
    img = event.image
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": f"vulnwatch/{img.registry}/{img.repository}",
        "type": TYPE_PREFIX + EventKind(event.kind).value,
        "subject": f"{img.repository}@{img.digest}",
        "time": _rfc3339(event.occurred_at),
        "datacontenttype": "application/json",
        "data": event.to_dict(),
    }


def digest_cloudevent(events: Sequence[Event]) -> dict[str, Any]:
    """One CloudEvent for several events (digest mode); its id derives from theirs."""
    ids = sorted(e.id for e in events)
    registries = sorted({e.image.registry for e in events})
    source = f"vulnwatch/{registries[0]}" if len(registries) == 1 else "vulnwatch"
    return {
        "specversion": "1.0",
        "id": stable_id("digest", ids),
        "source": source,
        "type": DIGEST_TYPE,
        "time": _rfc3339(max(e.occurred_at for e in events)),
        "datacontenttype": "application/json",
        "data": {"count": len(events), "events": [e.to_dict() for e in events]},
    }


def encode(envelope: Mapping[str, Any]) -> bytes:
    """The exact body bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """Value of ``X-Vulnwatch-Signature`` for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header_value: str | None) -> bool:
    """Receiver side: whether ``header_value`` is the signature of ``body`` (constant time)."""
    return bool(header_value) and hmac.compare_digest(sign(body, secret), header_value)


class WebhookNotifier(Notifier):
    """POSTs CloudEvents to one URL. ``repr`` shows only the sink name."""

    def __init__(self, name: str, url: str, *, secret: str | None = None, timeout: float = 10.0,
                 headers: dict[str, str] | None = None, verify_tls: bool = True,
                 client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook sink {name!r}: url must start with http:// or https://")
        self.name = name
        self._url = url
        self._secret = secret
        self._headers = dict(headers or {})
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False)

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r})"

    def envelope(self, events: Sequence[Event]) -> dict[str, Any]:
        """The CloudEvent :meth:`send` would post for ``events``."""
        return cloudevent(events[0]) if len(events) == 1 else digest_cloudevent(events)

    def request(self, events: Sequence[Event]) -> tuple[bytes, dict[str, str]]:
        """Exact body and headers :meth:`send` would post (secrets included: do not log)."""
        body = encode(self.envelope(events))
        headers = {**self._headers, "Content-Type": CONTENT_TYPE}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        return body, headers

    def send(self, events: Sequence[Event]) -> None:
        if not events:
            return
        body, headers = self.request(events)
        post_message(self._client, self._url, body, headers, sink=self.name, kind="webhook")
        log.debug("webhook sink %r accepted %d event(s)", self.name, len(events))

    def close(self) -> None:
        if self._own_client:
            self._client.close()
