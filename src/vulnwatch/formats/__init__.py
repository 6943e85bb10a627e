"""Output formats for ``vulnwatch scan``: name -> :class:`Formatter` class.

``table`` (people), ``json`` (``vulnwatch.scan/v1``), ``sarif`` (SARIF 2.1.0) and
``cyclonedx`` (CycloneDX 1.6 JSON). Use :func:`get_formatter` to build one by name.
"""

from __future__ import annotations

from .cyclonedx import CycloneDxFormatter
from .interface import FormatError, Formatter
from .json import JsonFormatter
from .sarif import SarifFormatter
from .table import TableFormatter

FORMATS: dict[str, type[Formatter]] = {
    "table": TableFormatter,
    "json": JsonFormatter,
    "sarif": SarifFormatter,
    "cyclonedx": CycloneDxFormatter,
}
"""Format name (as typed after ``--format``) -> formatter class."""


def get_formatter(name: str, *, width: int = 120, color: bool = False) -> Formatter:
    """The formatter called ``name``. ``width`` and ``color`` apply to ``table`` only.

    Raises :class:`FormatError` naming the known formats when ``name`` is not one of them.
    """
    try:
        cls = FORMATS[name]
    except KeyError:
        raise FormatError(name, f"unknown output format; use one of: {', '.join(FORMATS)}") from None
    if cls is TableFormatter:
        return TableFormatter(width=width, color=color)
    return cls()


__all__ = ["FORMATS", "CycloneDxFormatter", "FormatError", "Formatter", "JsonFormatter", "SarifFormatter",
           "TableFormatter", "get_formatter"]
