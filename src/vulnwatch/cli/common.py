"""What every verb shares: the consoles, the per-invocation state, and how messages reach the user.

Results (tables, JSON) go to standard output; progress, failures, warnings, notes and summaries
to standard error, as lines for people or, with ``--log-format json``, as one JSON object per
line (:func:`report`). A table on a terminal fits the terminal; anywhere else (a pipe, a file, a
CI log) it is as wide as its values, never cut.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from rich.console import Console

from .. import logs

WIDE = 100_000
"""Width of a table that is not shown on a terminal: as wide as its widest value."""

SEVERITY_STYLE = {"CRITICAL": "bold red", "HIGH": "red", "MEDIUM": "yellow", "LOW": "cyan",
                  "NEGLIGIBLE": "dim", "UNKNOWN": "dim"}

_report_log = logging.getLogger("vulnwatch.cli")


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Consoles:
    """Rich consoles made for the streams of the moment (tests swap ``sys.stdout``)."""

    @property
    def out(self) -> Console:
        terminal = Console(soft_wrap=True).is_terminal
        return Console(soft_wrap=True, highlight=False, width=None if terminal else WIDE)

    @property
    def err(self) -> Console:
        return Console(stderr=True, soft_wrap=True, highlight=False)


consoles = _Consoles()


def stdout_is_terminal() -> bool:
    """Whether results are shown to a person at a terminal (tables then fit its width)."""
    return Console(soft_wrap=True).is_terminal


@dataclass
class State:
    """One invocation: the global options and the configuration once loaded."""

    config_path: Optional[Path]
    """``--config`` (before or after the verb), ``$VULNWATCH_CONFIG``, ``./vulnwatch.yaml``, or None."""
    log_format: str = "text"
    """``text`` or ``json`` (``--log-format``)."""
    quiet: bool = False
    """``-q``: no progress, notes or summaries on standard error; results, warnings and errors stay."""
    config: Any = None
    """The loaded :class:`~vulnwatch.config.Config`, once :func:`~.app.load` ran."""
    sections: Any = None
    """The sections that configuration was loaded with (None: all)."""
    _first_line: float | None = field(default=None, repr=False)
    _last_line: float = field(default=0.0, repr=False)

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json"

    @property
    def interactive(self) -> bool:
        """Progress bars only for a human at a terminal, and not with ``-q``."""
        return self.log_format == "text" and not self.quiet and consoles.err.is_terminal

    def progress_line(self, text: str, every: float = 5.0) -> None:
        """A progress line on standard error for a log that is no terminal (a CI job): once the
        stage has taken ``every`` seconds, then at most one per ``every`` seconds; none with ``-q``.
        (With JSON logs it is an ``info`` object, ``event: progress``.)"""
        if self.quiet or self.interactive:
            return
        now = time.monotonic()
        if self._first_line is None:
            self._first_line = now              # a short stage prints nothing
        if now - self._first_line < every or now - self._last_line < every:
            return
        self._last_line = now
        report(self, "info", "progress", text)


def report(state: State | None, level: str, event: str, text: str, *, style: str = "", **fields: Any) -> None:
    """Tell the user about a failure (``error``), a ``warning``, a note or a summary (``info``).

    Text logs: ``text`` on standard error (``info`` left out with ``-q``). JSON logs: one object
    ``{"time", "level", "logger": "vulnwatch.cli", "message": text, "event": event, **fields}``,
    whatever ``--log-level`` says (these are the command's own output), ``info`` left out with
    ``-q``. Everything goes through :func:`vulnwatch.logs.redact`."""
    quiet = state is not None and state.quiet
    if quiet and level == "info":
        return
    if state is not None and state.json_logs:
        lvl = {"error": logging.ERROR, "warning": logging.WARNING}.get(level, logging.INFO)
        record = _report_log.makeRecord(_report_log.name, lvl, "(cli)", 0, text, (), None,
                                        extra={"event": event, **{k: _plain(v) for k, v in fields.items()}})
        for handler in logging.getLogger().handlers:
            handler.handle(record)
        return
    console = consoles.err
    console.print(logs.redact(text), style=style or {"error": "red", "warning": "yellow"}.get(level, ""),
                  highlight=False, markup=False)


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def without_subject(message: str, *subjects: str) -> str:
    """``message`` without a leading ``subject: `` the caller names already (no
    ``cannot open X: X: ...``)."""
    changed = True
    while changed:
        changed = False
        for s in subjects:
            if s and message.startswith(f"{s}: "):
                message = message[len(s) + 2:]
                changed = True
    return message


def counts_text(counts: dict[str, int]) -> str:
    parts = [f"{k[0]}:{v}" for k, v in counts.items() if v]
    return " ".join(parts) if parts else "none"


def stdout_write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
