"""ScanResult -> text: the ``Formatter`` interface for ``vulnwatch scan --format``.

Implementations, one module each: ``table`` (rich, for people), ``json`` (the documented
``vulnwatch.scan/v1`` document), ``sarif`` (SARIF 2.1.0, for code-scanning dashboards) and
``cyclonedx`` (CycloneDX 1.6 JSON: an SBOM with vulnerabilities). The name -> class map is
:data:`vulnwatch.formats.FORMATS`.

A formatter is a pure function of the :class:`~vulnwatch.model.ScanResult`: no I/O, no clock
(times come from the result), same input -> same output.
"""

from __future__ import annotations

import abc
from ..model import Image, ScanResult


class FormatError(Exception):
    """A scan result cannot be rendered in the requested format.

    The message names the format and, when it is about one result, the image, and says
    what to do instead.
    """

    def __init__(self, format_name: str, message: str, *, image: Image | None = None) -> None:
        where = f" ({image.repository}@{image.digest})" if image is not None else ""
        super().__init__(f"format {format_name!r}{where}: {message}")
        self.format_name = format_name
        self.image = image


class Formatter(abc.ABC):
    """Renders one :class:`ScanResult` as a string (the caller writes it where it wants)."""

    name: str = ""
    """Format name as typed after ``--format`` (``table``, ``json``, ``sarif``, ``cyclonedx``)."""
    media_type: str = "text/plain"
    """Media type of the rendered text (for files and HTTP answers)."""
    supports_sbom_only: bool = True
    """Whether :meth:`render` accepts ``sbom_only=True`` (SARIF has no place for an inventory)."""

    @abc.abstractmethod
    def render(self, result: ScanResult, *, sbom_only: bool = False) -> str:
        """The result as text. With ``sbom_only``, only the package inventory (no findings).

        Raises :class:`FormatError` when the result cannot be expressed in this format.
        """
