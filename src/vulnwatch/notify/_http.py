"""What the HTTP notifiers share: one POST with the outcome classified, and ``Retry-After``.

Used by every notifier that posts to a URL (Slack, the CloudEvents webhook, Teams). Messages
name the sink, never the URL (it carries a token) or any header.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import datetime, timezone

import httpx

from ..logs import redact
from ..net import tls_verify_error
from .interface import DeliveryError

__all__ = ["parse_retry_after", "post_message"]

_RETRYABLE_4XX = {408, 425, 429}


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
    return redact(text, url, urls=True)


def post_message(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str],
                 *, sink: str, kind: str) -> httpx.Response:
    """POST ``body`` and classify the outcome; returns the 2xx response.

    Raises :class:`DeliveryError`: 429 -> retryable with ``retry_after``; 408/425, 5xx,
    timeouts and connection failures -> retryable; other 4xx and 3xx, and a TLS certificate
    that does not verify -> not retryable.
    Messages name the sink (``kind`` ``sink``), never the URL or headers.
    """
    who = f"{kind} sink {sink!r}"
    try:
        response = client.post(url, content=body, headers=dict(headers))
    except httpx.TimeoutException as e:
        raise DeliveryError(f"{who}: timed out ({type(e).__name__})") from None
    except httpx.TransportError as e:
        bad_cert = tls_verify_error(e)
        if bad_cert is not None:
            reason = redact(str(bad_cert.verify_message or bad_cert.reason or "failed"), url, urls=True)
            raise DeliveryError(f"{who}: TLS certificate verification failed ({reason}); give the receiver a "
                                "certificate this machine trusts, or set verify_tls: false for a test receiver",
                                retryable=False) from None
        raise DeliveryError(f"{who}: could not connect ({type(e).__name__}: {redact(str(e), url, urls=True)})") from None
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
