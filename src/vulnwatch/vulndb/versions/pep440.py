"""Python package versions: PEP 440, plus the pre-PEP 440 ("legacy") versions PyPI still serves.

A PEP 440 version is ordered by :class:`packaging.version.Version`.

PyPI still serves releases uploaded before PEP 440 was enforced (``2004d``, ``0.9-eevee``,
``1.0-SNAPSHOT``, ``2013-01-21T20:33:09+0100``...), and advisories list them. pip and
``packaging`` < 22 ordered them with ``LegacyVersion``; this module orders them the same way:

- every legacy version sorts before every PEP 440 version;
- among themselves, by the old setuptools key: the lower-cased string is cut into runs
  of digits, runs of letters, ``.``, ``-`` and runs of any other characters; ``.`` is
  dropped; ``pre``, ``preview`` and ``rc`` become ``c``, ``dev`` becomes ``@`` and ``-``
  becomes ``final-``; digit runs compare as 8-wide zero-padded strings, everything else as
  ``*``-prefixed strings (so ``*@`` (dev) < ``*a`` < ``*c`` (rc) < ``*final`` < ``*final-``
  < numbers); the key ends with ``*final``. Before each non-number part (that one included) that sorts below
  ``*final`` (a pre-release word), trailing ``*final-`` parts are dropped; before every
  non-number part, trailing zero numbers are dropped (so ``1.0`` == ``1``).

Hand-written: ``packaging`` removed ``LegacyVersion`` in 22.0 and no maintained library
here offers that ordering (``packaging-legacy`` would, but is not a dependency of this
project; the tests check this code against the original ``LegacyVersion`` of packaging
21.3, which setuptools still vendors). Refused (:class:`VersionError`): the empty string
and strings with whitespace or control characters inside, which no PyPI release has.
"""

from __future__ import annotations

import re
from functools import lru_cache

from packaging.version import InvalidVersion, Version

from ..interface import VersionError, VersionScheme
from ._shared import guarded

# runs of digits | runs of ASCII letters | "." | "-" | runs of anything else
_LEGACY_PART = re.compile(r"\d+|[a-z]+|\.|-|[^a-z\d.-]+")
_LEGACY_WORDS = {"pre": "c", "preview": "c", "rc": "c", "dev": "@", "-": "final-"}
_FINAL = "*final"
_ZERO = "00000000"

LEGACY, PEP440 = 0, 1
"""First item of a key: every legacy version sorts before every PEP 440 one."""


def legacy_key(version: str) -> tuple[str, ...]:
    """The pre-PEP 440 sort key of ``version`` (see the module docstring)."""
    parts: list[str] = []
    for raw in [*_LEGACY_PART.findall(version.lower()), None]:
        if raw == ".":
            continue
        if raw is None:  # the closing "*final" goes through the same rules
            word = _FINAL
        else:
            word = _LEGACY_WORDS.get(raw, raw)
            if word[0] in "0123456789":
                parts.append(word.zfill(8))
                continue
            word = "*" + word
        if word < _FINAL:  # a pre-release word: "1.0-rc1" orders like "1.0rc1"
            while parts and parts[-1] == "*final-":
                parts.pop()
        while parts and parts[-1] == _ZERO:
            parts.pop()
        parts.append(word)
    return tuple(parts)


@lru_cache(maxsize=100_000)
def pep440_key(version: str) -> tuple:
    """``(PEP440, Version)`` for a PEP 440 version, ``(LEGACY, legacy key)`` for any other
    non-empty string without whitespace; raises :class:`VersionError` otherwise."""
    try:
        return (PEP440, Version(version))
    except InvalidVersion:
        pass
    if not version or not version.isprintable() or any(c.isspace() for c in version):
        raise VersionError(version, "PyPI", "empty, or contains whitespace or control characters")
    return (LEGACY, legacy_key(version))


def is_legacy(version: str) -> bool:
    """True when ``version`` is ordered by the legacy rules (not a PEP 440 version)."""
    return pep440_key(version)[0] == LEGACY


class Pep440Versions(VersionScheme):
    """PyPI versions: PEP 440, and legacy versions before all of them."""

    name = "pep440"

    @guarded
    def key(self, version: str) -> tuple:
        return pep440_key(version)
