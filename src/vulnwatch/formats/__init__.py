"""Output formats for ``vulnwatch scan``: name -> :class:`Formatter`.

``table`` (people), ``json`` (``vulnwatch.scan/v1``), ``sarif`` (SARIF 2.1.0) and
``cyclonedx`` (CycloneDX 1.6 JSON). Use :func:`get_formatter` to build one by name.
"""

from __future__ import annotations

from .cyclonedx import CycloneDxFormatter
from .interface import FormatError, Formatter
from .json import JsonFormatter
from .sarif import SarifFormatter
from .table import TableFormatter

FORMATS: dict[str, Formatter] = {
    "table": TableFormatter(),
    "json": JsonFormatter(),
    "sarif": SarifFormatter(),
    "cyclonedx": CycloneDxFormatter(),
}
"""Format name (as typed after ``--format``) -> formatter with default options (formatters hold
no state between calls, so these instances can be shared). ``table`` here is 120 columns
without colour; use :func:`get_formatter` for another width or colour."""


def get_formatter(name: str, *, width: int = 120, color: bool = False) -> Formatter:
    """The formatter called ``name``. ``width`` and ``color`` apply to ``table`` only.

    Raises :class:`FormatError` naming the known formats when ``name`` is not one of them.
    """
    if name not in FORMATS:
        raise FormatError(name, f"unknown output format; use one of: {', '.join(FORMATS)}")
    if name == "table":
        return TableFormatter(width=width, color=color)
    return FORMATS[name]


__all__ = ["FORMATS", "CycloneDxFormatter", "FormatError", "Formatter", "JsonFormatter", "SarifFormatter",
           "TableFormatter", "get_formatter"]
