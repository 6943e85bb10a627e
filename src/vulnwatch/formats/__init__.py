"""Scan results -> text, one module per output format.  [add a format here]

``table`` (people), ``json`` (``vulnwatch.scan/v1``), ``sarif`` (SARIF 2.1.0) and ``cyclonedx``
(CycloneDX 1.6 JSON). :data:`FORMATS` maps each name to a ready formatter; :func:`get_formatter`
builds one with options. Adding a format: a module here implementing
:class:`~vulnwatch.formats.interface.Formatter`, and its entry in :data:`FORMATTERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from ..lazy import exports
from .interface import FormatError, Formatter

if TYPE_CHECKING:
    from .json import JsonFormatter
    from .sarif import SarifFormatter
    from .table import TableFormatter

# each formatter's module imported when it is chosen (a `run` imports the verbs' modules, not a format)
__getattr__ = exports(__name__, {"JsonFormatter": ".json:JsonFormatter", "SarifFormatter": ".sarif:SarifFormatter",
                                 "TableFormatter": ".table:TableFormatter"})


def _table() -> type[Formatter]:
    from .table import TableFormatter

    return TableFormatter


def _json() -> type[Formatter]:
    from .json import JsonFormatter

    return JsonFormatter


def _sarif() -> type[Formatter]:
    from .sarif import SarifFormatter

    return SarifFormatter


def _cyclonedx() -> type[Formatter]:
    # cyclonedx-python-lib takes about 0.3 s to import: paid by `--format cyclonedx` only
    from .cyclonedx import CycloneDxFormatter

    return CycloneDxFormatter


FORMATTERS: dict[str, Callable[[], type[Formatter]]] = {
    "table": _table,
    "json": _json,
    "sarif": _sarif,
    "cyclonedx": _cyclonedx,
}
"""Format name (as typed after ``--format``) -> its class (each entry returns the class, so a
format with a heavy library loads it only when chosen)."""


class _Formats(Mapping[str, Formatter]):
    """Name -> formatter with default options, each made on first use (formatters hold no state
    between calls, so the instances are shared)."""

    def __init__(self) -> None:
        self._made: dict[str, Formatter] = {}

    def __getitem__(self, name: str) -> Formatter:
        if name not in self._made:
            self._made[name] = FORMATTERS[name]()()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(FORMATTERS)

    def __len__(self) -> int:
        return len(FORMATTERS)


FORMATS: Mapping[str, Formatter] = _Formats()
"""Format name -> formatter with default options. ``table`` here is 120 columns without colour;
use :func:`get_formatter` for another width or colour."""


def get_formatter(name: str, *, width: int = 120, color: bool = False) -> Formatter:
    """The formatter called ``name``. ``width`` and ``color`` apply to ``table`` only.

    Raises :class:`FormatError` naming the known formats when ``name`` is not one of them.
    """
    if name not in FORMATTERS:
        raise FormatError(name, f"unknown output format; use one of: {', '.join(FORMATTERS)}")
    if name == "table":
        return _table()(width=width, color=color)  # type: ignore[call-arg]
    return FORMATS[name]


__all__ = ["FORMATS", "FORMATTERS", "FormatError", "Formatter", "JsonFormatter", "SarifFormatter",
           "TableFormatter", "get_formatter"]
