"""Events -> messages: the ``Notifier`` interface.

Implementations, one module each, by ``notifications[].type`` in :data:`vulnwatch.notify.NOTIFIERS`:
``slack`` (incoming webhook, Block Kit), ``teams`` (Workflows webhook, Adaptive Card),
``webhook`` (CloudEvents 1.0), ``email`` (SMTP), ``console`` (text on standard error). What
HTTP notifiers share is in ``_http``; keeping messages within ``max_payload_bytes`` is ``_payload``. Routing (which events a sink wants)
is :mod:`vulnwatch.delivery.routing`; delivery with retries from the outbox is
:mod:`vulnwatch.delivery.outbox`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from ..model import Event


class DeliveryError(Exception):
    """A message was not accepted.

    ``retryable`` False means retrying cannot help (e.g. HTTP 400/404: the URL or payload is
    wrong; SMTP 5xx; a TLS certificate that does not verify) and the delivery is dead-lettered
    at once. ``retry_after`` (seconds) is the
    receiver's own request (HTTP 429 ``Retry-After``). Messages never contain the URL or
    any other secret.
    """

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Notifier(abc.ABC):
    """Sends events to one configured sink."""

    name: str
    """The sink's configured name (``notifications[].name``)."""

    @classmethod
    def from_config(cls, sink: Any) -> "Notifier":
        """The notifier of one configured sink (a ``notifications[]`` entry of its type).
        Secrets are revealed with :func:`vulnwatch.logs.reveal`, which registers them for
        redaction. Every class in :data:`vulnwatch.notify.NOTIFIERS` implements it."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from the configuration")

    @abc.abstractmethod
    def send(self, events: Sequence[Event]) -> None:
        """Deliver one message: a single event (per-image mode) or several (digest mode).
        Raises :class:`DeliveryError`."""

    def close(self) -> None:
        """Release connections."""
