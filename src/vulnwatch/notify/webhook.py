"""Generic webhook sink: CloudEvents 1.0 in structured mode, optionally HMAC-signed.

One event -> one CloudEvent of type ``io.vulnwatch.image.<kind>`` whose ``data`` is
:meth:`vulnwatch.model.Event.to_dict`. Several events (digest mode) -> one CloudEvent of
type ``io.vulnwatch.digest`` whose ``data.events`` lists them. The CloudEvent ``id`` is
stable across retries, so receivers de-duplicate on it (delivery is at least once).

With a ``secret`` the request carries ``X-Vulnwatch-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact request body bytes with the secret as key.

The POST itself (outcome classification, ``Retry-After``) is :func:`vulnwatch.notify._http.post_message`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx

from ..logs import reveal
from ..model import Event, EventKind, stable_id
from ._http import post_message
from .interface import Notifier

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "X-Vulnwatch-Signature"
DIGEST_TYPE = "io.vulnwatch.digest"
TYPE_PREFIX = "io.vulnwatch.image."

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

    @classmethod
    def from_config(cls, sink: Any) -> "WebhookNotifier":
        return cls(sink.name, reveal(sink.url), secret=reveal(sink.secret), timeout=sink.timeout.total_seconds(),
                   headers={k: reveal(v) for k, v in sink.headers.items()})

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
