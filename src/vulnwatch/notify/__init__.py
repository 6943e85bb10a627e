"""Events -> messages, one module per kind of sink.  [add a notifier here]

:data:`NOTIFIERS` maps each ``notifications[].type`` to its class; every class builds itself
from its config section with ``from_config``. Adding a notifier: a module here, its entry
below, its section in :mod:`vulnwatch.config.notifications`.
"""

from __future__ import annotations

from ..lazy import LazyMap
from .interface import DeliveryError, Notifier

NOTIFIERS: dict[str, type[Notifier]] = LazyMap(__name__, {
    "slack": ".slack:SlackNotifier",
    "teams": ".teams:TeamsNotifier",
    "webhook": ".webhook:WebhookNotifier",
    "email": ".email:EmailNotifier",
    "console": ".console:ConsoleNotifier",
})
"""Sink type name (``notifications[].type``) -> class, each module imported when first looked up
(a run without sinks loads no HTTP client: :mod:`vulnwatch.lazy`)."""

__all__ = ["NOTIFIERS", "DeliveryError", "Notifier"]
