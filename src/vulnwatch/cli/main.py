"""The ``vulnwatch`` command: the app of :mod:`.app` with every verb group registered."""

from __future__ import annotations

import sys

from . import monitor, scan  # noqa: F401  (register run, status, events, check-config; scan, db)
from . import serve  # noqa: F401  (register serve)
from . import watch  # noqa: F401  (register watch: the daemon)
from .app import EXIT_INTERRUPTED, app


def main() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


__all__ = ["app", "main"]


if __name__ == "__main__":   # python -m vulnwatch.cli.main
    main()
