"""The ``vulnwatch`` command: the app of :mod:`.app` with every verb group registered."""

from __future__ import annotations

import sys

from . import monitor, scan  # noqa: F401  (register run, status, events, check-config; scan, db)
from . import serve  # noqa: F401  (register serve)
from . import watch  # noqa: F401  (register watch: the daemon)
from .app import EXIT_INTERRUPTED, app


OPTIONAL_IMPORTS_NOT_USED = ("trio", "httpx._main")
"""What the libraries we use import when it is installed, and the command never uses: ``httpcore``
imports ``trio`` (an async library; our HTTP clients are synchronous), ``httpx`` its command-line
client (``httpx._main``: click, pygments, rich's syntax and progress). Together ~40 ms of every
start that makes an HTTP request (a ``scan``); both modules handle their absence."""


def skip_unused_optional_imports() -> None:
    """Make ``import`` of :data:`OPTIONAL_IMPORTS_NOT_USED` fail in this process (a ``None`` in
    ``sys.modules`` is the import system's "not importable"), unless already imported. For the
    command's own process only, never on import of this module: a program that imports vulnwatch
    keeps its trio."""
    for name in OPTIONAL_IMPORTS_NOT_USED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def main() -> None:
    skip_unused_optional_imports()
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


__all__ = ["app", "main"]


if __name__ == "__main__":   # python -m vulnwatch.cli.main
    main()
