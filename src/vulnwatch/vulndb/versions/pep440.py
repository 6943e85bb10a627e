"""Python package versions (PEP 440), ordered by :mod:`packaging`."""

from __future__ import annotations

from functools import lru_cache

from packaging.version import InvalidVersion, Version

from ..interface import VersionError, VersionScheme


@lru_cache(maxsize=100_000)
def pep440_key(version: str) -> Version:
    """The :class:`packaging.version.Version` itself (it orders per PEP 440)."""
    try:
        return Version(version)
    except InvalidVersion:
        raise VersionError(version, "PyPI", "not a PEP 440 version") from None


class Pep440Versions(VersionScheme):
    """PyPI versions."""

    name = "pep440"

    def key(self, version: str) -> Version:
        return pep440_key(version)
