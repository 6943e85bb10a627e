"""Generic webhook sink: CloudEvents 1.0 in structured mode, optionally HMAC-signed.

One event -> one CloudEvent of type ``io.vulnwatch.image.<kind>`` whose ``data`` is
:meth:`vulnwatch.model.Event.to_dict`. Several events (digest mode) -> one CloudEvent of
type ``io.vulnwatch.digest`` whose ``data.events`` lists them. The CloudEvent ``id`` is
stable across retries, so receivers de-duplicate on it (delivery is at least once).

A message larger than ``max_payload_bytes`` (default 256 KiB, what common receivers accept)
is sent as several CloudEvents, each within the limit, in order: the same ``type``,
``source`` and ``subject``, the extension attributes ``groupid`` (the id the whole message
would have had), ``part`` (1-based) and ``parts``, and their own ``id`` derived from the group
id and the part number (the same on every retry). Each part's ``data`` has the shape of the
whole message's with a consecutive slice of the ``added`` / ``fixed`` / ``changed`` lists;
concatenating them in part order gives the whole lists back. Parts are built one at a time.

With a ``secret`` the request carries ``X-Vulnwatch-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact request body bytes with the secret as key.

The POST itself (outcome classification, ``Retry-After``) is :func:`vulnwatch.notify._http.post_message`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import httpx

from ..logs import reveal
from ..model import Event, EventKind, FindingChange, stable_id
from ._http import post_message
from ._payload import digest_id
from ._payload import DEFAULT_MAX_PAYLOAD_BYTES, check_max_payload, json_bytes, json_size
from .interface import DeliveryError, Notifier

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "X-Vulnwatch-Signature"
DIGEST_TYPE = "io.vulnwatch.digest"
TYPE_PREFIX = "io.vulnwatch.image."

def _rfc3339(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def cloudevent_attributes(event: Event) -> dict[str, Any]:
    """The context attributes of one event's CloudEvent (everything but ``data``)."""
    img = event.image
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": f"vulnwatch/{img.registry}/{img.repository}",
        "type": TYPE_PREFIX + EventKind(event.kind).value,
        "subject": f"{img.repository}@{img.digest}",
        "time": _rfc3339(event.occurred_at),
        "datacontenttype": "application/json",
    }


def cloudevent(event: Event) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode envelope of one event."""
    return {**cloudevent_attributes(event), "data": event.to_dict()}


def digest_envelope(events: Sequence[Event], data: Any) -> dict[str, Any]:
    registries = sorted({e.image.registry for e in events})
    source = f"vulnwatch/{registries[0]}" if len(registries) == 1 else "vulnwatch"
    return {
        "specversion": "1.0",
        "id": digest_id(events),
        "source": source,
        "type": DIGEST_TYPE,
        "time": _rfc3339(max(e.occurred_at for e in events)),
        "datacontenttype": "application/json",
        "data": data,
    }


def digest_cloudevent(events: Sequence[Event]) -> dict[str, Any]:
    """One CloudEvent for several events (digest mode); its id derives from theirs."""
    return digest_envelope(events, {"count": len(events), "events": [e.to_dict() for e in events]})


def encode(envelope: Mapping[str, Any]) -> bytes:
    """The exact body bytes sent (and signed): compact UTF-8 JSON."""
    return json_bytes(envelope)


def sign(body: bytes, secret: str) -> str:
    """Value of ``X-Vulnwatch-Signature`` for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header_value: str | None) -> bool:
    """Receiver side: whether ``header_value`` is the signature of ``body`` (constant time)."""
    return bool(header_value) and hmac.compare_digest(sign(body, secret), header_value)


# --- messages larger than max_payload_bytes: parts ------------------------------------------

PART_ATTRIBUTES = ("groupid", "part", "parts")
"""CloudEvents extension attributes of a message sent in parts (lowercase alphanumerics, as
the CloudEvents naming rules require): ``groupid`` is the id the whole message would have had
(the event id, or the digest id), ``part`` the 1-based number of this part, ``parts`` how many
there are."""

_LISTS = ("added", "fixed", "changed")
_MAX_PARTS_DIGITS = 6  # part numbers are budgeted at this many digits


def part_id(group_id: str, part: int, parts: int) -> str:
    """The CloudEvent ``id`` of part ``part`` of ``parts``: derived from the group id and the
    numbers only, so a retry sends every part again under the same id."""
    return stable_id("part", group_id, part, parts)


def _header(event: Event) -> dict[str, Any]:
    """``Event.to_dict()`` with empty finding lists (the lists are filled per part)."""
    return dataclasses.replace(event, added=(), fixed=(), changed=()).to_dict()


def _item(event: Event, name: str, index: int) -> dict[str, Any]:
    """Entry ``index`` of list ``name`` exactly as :meth:`Event.to_dict` writes it."""
    x = getattr(event, name)[index]
    if isinstance(x, FindingChange):
        return dataclasses.replace(event, added=(), fixed=(), changed=(x,)).to_dict()["changed"][0]
    return x.to_dict()


def _shrunk(d: dict[str, Any], room: int) -> dict[str, Any]:
    """A finding entry cut to fit ``room`` bytes: title shortened, links and aliases dropped.
    Only a finding with a pathological title (far beyond any real advisory) gets here."""
    findings = [d["before"], d["after"]] if "before" in d else [d]
    for f in findings:
        f["title"] = f["title"][:200]
        f["links"] = f["links"][:1]
        f["aliases"] = f["aliases"][:3]
    if json_size(d) > room:
        for f in findings:
            f["title"] = ""
            f["links"] = []
            f["aliases"] = []
    return d


@dataclasses.dataclass
class _Slice:
    """The part of one event that goes into one part: a range of each list."""

    event: int
    ranges: dict[str, list[int]] = dataclasses.field(default_factory=dict)


class _Parts:
    """Plans how ``events`` are cut into bodies of at most ``limit`` bytes, then builds them one
    at a time: only the sizes of the entries are kept between the two passes."""

    def __init__(self, events: Sequence[Event], limit: int, digest: bool) -> None:
        self.events = events
        self.limit = limit
        self.digest = digest
        self.group_id = digest_id(events) if digest else events[0].id

    # what every part's envelope takes, with empty lists
    def _envelope(self, data: Any, part: int | None = None, parts: int | None = None) -> dict[str, Any]:
        base = digest_envelope(self.events, data) if self.digest else {**cloudevent_attributes(self.events[0]),
                                                                      "data": data}
        if part is None:
            return base
        env = {k: v for k, v in base.items() if k != "data"}
        env["id"] = part_id(self.group_id, part, parts or 1)
        env.update(groupid=self.group_id, part=part, parts=parts)
        env["data"] = base["data"]
        return env

    def _room(self, header_size: int) -> int:
        """Bytes one entry may take: a part with just this event and this entry must fit."""
        return self.limit - self.overhead - header_size

    def plan(self) -> list[list[_Slice]]:
        big = 10 ** _MAX_PARTS_DIGITS - 1
        if self.digest:
            self.overhead = json_size(self._envelope({"count": len(self.events), "events": []}, big, big))
        else:
            self.overhead = json_size(self._envelope({}, big, big)) - 2  # "{}" is the header's place
        # the exact size of the message in one piece, counted on the way
        if self.digest:
            whole = json_size(self._envelope({"count": len(self.events), "events": []})) + len(self.events) - 1
        else:
            whole = json_size(self._envelope({})) - 2
        parts: list[list[_Slice]] = []
        cur: list[_Slice] = []
        used = self.overhead
        for ei, ev in enumerate(self.events):
            header = json_size(_header(ev))
            whole += header
            if self._room(header) < 64:
                raise DeliveryError(f"an event of {ev.subject} does not fit max_payload_bytes "
                                    f"({self.limit}) even without its findings", retryable=False)
            sl: _Slice | None = None
            items = [(name, j) for name in _LISTS for j in range(len(getattr(ev, name)))]
            if not items:
                need = header + (1 if cur else 0)
                if cur and used + need > self.limit:
                    parts.append(cur)
                    cur, used = [], self.overhead
                    need = header
                cur.append(_Slice(ei))
                used += need
                continue
            for name, j in items:
                size = json_size(_item(ev, name, j))
                whole += size + (1 if j else 0)
                size = min(size, self._room(header))
                need = size + (1 if sl is not None and name in sl.ranges else 0)
                if sl is None:
                    need += header + (1 if cur else 0)
                if cur and used + need > self.limit:
                    parts.append(cur)
                    cur, used, sl = [], self.overhead, None
                    need = size + header
                if sl is None:
                    sl = _Slice(ei)
                    cur.append(sl)
                sl.ranges.setdefault(name, [j, j])[1] = j + 1
                used += need
        if cur:
            parts.append(cur)
        self.whole_size = whole
        return parts

    def _data_of(self, sl: _Slice) -> dict[str, Any]:
        ev = self.events[sl.event]
        d = _header(ev)
        room = self._room(json_size(d))
        for name in _LISTS:
            start, end = sl.ranges.get(name, (0, 0))
            entries = []
            for j in range(start, end):
                x = _item(ev, name, j)
                entries.append(x if json_size(x) <= room else _shrunk(x, room))
            d[name] = entries
        return d

    def bodies(self, plan: list[list[_Slice]]) -> Iterator[bytes]:
        n = len(plan)
        for k, slices in enumerate(plan, 1):
            if self.digest:
                data: Any = {"count": len(self.events), "events": [self._data_of(sl) for sl in slices]}
            else:
                data = self._data_of(slices[0])
            body = encode(self._envelope(data, k, n))
            if len(body) > self.limit:  # the plan counts exact bytes: this is a bug, not the input
                raise AssertionError(f"part {k}/{n} is {len(body)} bytes, over {self.limit}")
            yield body


class WebhookNotifier(Notifier):
    """POSTs CloudEvents to one URL. ``repr`` shows only the sink name."""

    def __init__(self, name: str, url: str, *, secret: str | None = None, timeout: float = 10.0,
                 headers: dict[str, str] | None = None, verify_tls: bool = True,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES["webhook"],
                 client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook sink {name!r}: url must start with http:// or https://")
        self.name = name
        self.max_payload_bytes = check_max_payload("webhook", name, max_payload_bytes)
        self._url = url
        self._secret = secret
        self._headers = dict(headers or {})
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, verify=verify_tls, follow_redirects=False)

    @classmethod
    def from_config(cls, sink: Any) -> "WebhookNotifier":
        return cls(sink.name, reveal(sink.url), secret=reveal(sink.secret), timeout=sink.timeout.total_seconds(),
                   headers={k: reveal(v) for k, v in sink.headers.items()}, verify_tls=sink.verify_tls,
                   max_payload_bytes=sink.max_payload_bytes)

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r})"

    def envelope(self, events: Sequence[Event]) -> dict[str, Any]:
        """The CloudEvent of ``events`` in one piece (what :meth:`send` posts when it fits
        ``max_payload_bytes``)."""
        return cloudevent(events[0]) if len(events) == 1 else digest_cloudevent(events)

    def bodies(self, events: Sequence[Event]) -> Iterator[bytes]:
        """The bodies :meth:`send` posts for ``events``, built one at a time: the whole
        CloudEvent when it fits ``max_payload_bytes``, else its parts (see :data:`PART_ATTRIBUTES`)."""
        if not events:
            return
        parts = _Parts(events, self.max_payload_bytes, digest=len(events) > 1)
        plan = parts.plan()
        if parts.whole_size <= self.max_payload_bytes:
            yield encode(self.envelope(events))
            return
        log.info("webhook sink %r: message of %d bytes sent in %d parts of at most %d bytes", self.name,
                 parts.whole_size, len(plan), self.max_payload_bytes)
        yield from parts.bodies(plan)

    def headers_for(self, body: bytes) -> dict[str, str]:
        """The headers sent with ``body`` (the signature included; secrets included: do not log)."""
        headers = {**self._headers, "Content-Type": CONTENT_TYPE}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        return headers

    def requests(self, events: Sequence[Event]) -> Iterator[tuple[bytes, dict[str, str]]]:
        """Exact bodies and headers :meth:`send` posts, in order (secrets included: do not log)."""
        for body in self.bodies(events):
            yield body, self.headers_for(body)

    def request(self, events: Sequence[Event]) -> tuple[bytes, dict[str, str]]:
        """The first (for a message that fits, the only) body and its headers."""
        return next(iter(self.requests(events)))

    def send(self, events: Sequence[Event]) -> None:
        """POST the CloudEvent, or each of its parts in order. A failed part fails the whole
        delivery: the retry sends every part again, byte for byte, under the same ids."""
        n = 0
        for body, headers in self.requests(events):
            post_message(self._client, self._url, body, headers, sink=self.name, kind="webhook")
            n += 1
        log.debug("webhook sink %r accepted %d event(s) in %d request(s)", self.name, len(events), n)

    def close(self) -> None:
        if self._own_client:
            self._client.close()
