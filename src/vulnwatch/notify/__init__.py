"""Events -> messages, one module per kind of sink.  [add a notifier here]

:data:`NOTIFIERS` maps each ``notifications[].type`` to its class; every class builds itself
from its config section with ``from_config``. Adding a notifier: a module here, its entry
below, its section in :mod:`vulnwatch.config.notifications`.
"""

from __future__ import annotations

from .console import ConsoleNotifier
from .email import EmailNotifier
from .interface import DeliveryError, Notifier
from .slack import SlackNotifier
from .teams import TeamsNotifier
from .webhook import WebhookNotifier

NOTIFIERS: dict[str, type[Notifier]] = {
    "slack": SlackNotifier,
    "teams": TeamsNotifier,
    "webhook": WebhookNotifier,
    "email": EmailNotifier,
    "console": ConsoleNotifier,
}
"""Sink type name (``notifications[].type``) -> class."""

__all__ = ["NOTIFIERS", "DeliveryError", "Notifier"]
