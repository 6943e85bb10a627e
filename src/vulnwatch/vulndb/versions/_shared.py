"""What every version scheme checks before parsing: bounded length, ASCII digits only."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..interface import VersionError

MAX_VERSION_LENGTH = 256
"""The longest version any scheme parses; longer strings are refused (the OSV import refuses
them too): a 100,000-digit "version" must cost nothing and convert to no integer."""


def guarded(key: Callable[[Any, str], Any] | None = None, *, ascii_digits: bool = True) -> Any:
    """Wrap a scheme's ``key(version)``: refuse over-long versions and non-ASCII digits (``²``
    passes ``str.isdigit`` but ``int`` refuses it) with :class:`VersionError`, before parsing.

    ``@guarded(ascii_digits=False)``: only the length and type checks, for a scheme whose
    native tool orders versions with other digits (Maven's ``Character.isDigit`` takes
    ``٨`` as 8); such a scheme tells digits apart itself."""
    if key is None:
        return functools.partial(guarded, ascii_digits=ascii_digits)

    @functools.wraps(key)
    def checked(self: Any, version: str) -> Any:
        if not isinstance(version, str):
            raise VersionError(repr(version), self.name, "a version is a string")
        if len(version) > MAX_VERSION_LENGTH:
            raise VersionError(version[:40] + "...", self.name, f"longer than {MAX_VERSION_LENGTH} characters")
        if ascii_digits and not version.isascii() and any(c.isdigit() for c in version if not c.isascii()):
            raise VersionError(version, self.name, "digits must be ASCII 0-9")
        return key(self, version)

    return checked
