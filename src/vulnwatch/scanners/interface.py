"""Image -> findings: the ``Scanner`` interface.

Implementations: ``ecr`` (ECR basic scanning and Inspector enhanced findings) and
``builtin`` (our own: layers -> catalogers -> OSV data).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping

from ..model import Image, ScanResult


class ScanError(Exception):
    """Scanning one image failed. Recorded per image; the run goes on.

    ``code`` is a short machine-readable reason (e.g. ``ImageNotFoundException``,
    ``ScanTimeout``, ``LayerTooLarge``); the message names the image.
    """

    def __init__(self, image: Image | str, message: str, *, code: str = "ScanFailed",
                 retryable: bool = False) -> None:
        super().__init__(f"{image}: {message}")
        self.image = image
        self.code = code
        self.retryable = retryable


class Scanner(abc.ABC):
    """Produces a :class:`ScanResult` for an image."""

    name: str
    """Scanner name recorded on results (``ecr-basic``, ``ecr-enhanced``, ``builtin``)."""
    stores_inventories: bool = False
    """True when results carry the image's whole inventory (large snapshots): the pipeline then
    hands ``previous`` snapshots over one at a time instead of reading them all at once."""

    @abc.abstractmethod
    def scan(self, image: Image, previous: ScanResult | None = None) -> ScanResult:
        """Scan one image. ``previous`` is the stored snapshot of the same digest, if any:
        a scanner may use it to pace itself (ECR's one scan per 24 h) or to return it when
        nothing new can be learnt. Raises :class:`ScanError`."""

    def scan_many(self, images: Iterable[Image],
                  previous: Mapping[tuple[str, str, str], ScanResult]) -> Iterator[tuple[Image, ScanResult | ScanError]]:
        """Scan many images, yielding each result or error as it completes (any order).

        The default is sequential; implementations may run calls in parallel.
        ``previous`` maps :attr:`Image.key` to the stored snapshot.
        """
        for image in images:
            try:
                yield image, self.scan(image, previous.get(image.key))
            except ScanError as e:
                yield image, e

    def close(self) -> None:
        """Release resources."""
