"""Notifier implementations by name, for the config to pick (``notifications[].type``)."""

from __future__ import annotations

from typing import Any

from .interface import Notifier
from .console import ConsoleNotifier
from .slack import SlackNotifier
from .webhook import WebhookNotifier

NOTIFIERS: dict[str, type[Notifier]] = {
    "slack": SlackNotifier,
    "webhook": WebhookNotifier,
    "console": ConsoleNotifier,
}
"""Sink type name -> class. Every class takes ``(name, url, **options)``."""

NOTIFIER_TYPES = NOTIFIERS
"""The same map under the name :mod:`vulnwatch.build` uses."""


def notifier_class(kind: str) -> type[Notifier]:
    """The class for sink type ``kind``; ValueError naming the known types otherwise."""
    try:
        return NOTIFIERS[kind]
    except KeyError:
        raise ValueError(f"notification type {kind!r} is unknown; use one of: "
                         f"{', '.join(sorted(NOTIFIERS))}") from None


def create_notifier(kind: str, name: str, url: str, **options: Any) -> Notifier:
    """Build the notifier of type ``kind`` for sink ``name``; options are the class's keyword args."""
    cls = notifier_class(kind)
    try:
        return cls(name, url, **options)
    except TypeError as e:  # unknown option: name it without echoing values (they may be secrets)
        raise ValueError(f"notification {name!r} ({kind}): {e}") from None
