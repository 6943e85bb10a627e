"""Output formats for ``vulnwatch scan``: name -> :class:`Formatter`.

``table`` (people), ``json`` (``vulnwatch.scan/v1``), ``sarif`` (SARIF 2.1.0) and
``cyclonedx`` (CycloneDX 1.6 JSON). Use :func:`get_formatter` to build one by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from .interface import FormatError, Formatter

_CLASSES = {"table": ("table", "TableFormatter"), "json": ("json", "JsonFormatter"),
            "sarif": ("sarif", "SarifFormatter"), "cyclonedx": ("cyclonedx", "CycloneDxFormatter")}


def _class(name: str) -> type[Formatter]:
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


class _Formats(Mapping[str, Formatter]):
    """Name -> formatter, each module imported on first use (cyclonedx-python-lib is slow to
    import, and ``vulnwatch scan --format json`` should not pay for it)."""

    def __init__(self) -> None:
        self._made: dict[str, Formatter] = {}

    def __getitem__(self, name: str) -> Formatter:
        if name not in _CLASSES:
            raise KeyError(name)
        if name not in self._made:
            self._made[name] = _class(name)()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


FORMATS: Mapping[str, Formatter] = _Formats()
"""Format name (as typed after ``--format``) -> formatter with default options (formatters hold
no state between calls, so these instances can be shared). ``table`` here is 120 columns
without colour; use :func:`get_formatter` for another width or colour."""


def __getattr__(name: str):
    """``from vulnwatch.formats import CycloneDxFormatter`` etc. still work (imported lazily)."""
    for key, (_module, cls) in _CLASSES.items():
        if cls == name:
            return _class(key)
    raise AttributeError(name)


def get_formatter(name: str, *, width: int = 120, color: bool = False) -> Formatter:
    """The formatter called ``name``. ``width`` and ``color`` apply to ``table`` only.

    Raises :class:`FormatError` naming the known formats when ``name`` is not one of them.
    """
    if name not in FORMATS:
        raise FormatError(name, f"unknown output format; use one of: {', '.join(FORMATS)}")
    if name == "table":
        return _class("table")(width=width, color=color)
    return FORMATS[name]


__all__ = ["FORMATS", "CycloneDxFormatter", "FormatError", "Formatter", "JsonFormatter", "SarifFormatter",
           "TableFormatter", "get_formatter"]
