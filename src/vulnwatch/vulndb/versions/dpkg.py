"""Debian / Ubuntu versions, ordered as ``dpkg --compare-versions`` orders them.

``[epoch:]upstream[-revision]``: the epoch is compared as a number; upstream and
revision (split at the LAST hyphen) are compared with dpkg's ``verrevcmp``:
alternating runs of non-digits and digits; non-digit runs compare character by
character where ``~`` sorts before everything (even the end of the string),
then the end of the run, then letters, then every other character; digit runs
compare as numbers (missing = 0).

The sort key encodes exactly that: each non-digit run becomes a tuple of
character weights closed by a 0 (the "end of run" weight), paired with its
number; trailing pairs equal to "empty run, 0" are dropped so that ``1.0-0``
equals ``1.0`` the way dpkg has it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..interface import VersionError, VersionScheme
from ._shared import guarded

_RUNS = re.compile(r"(\D*)(\d*)")
_END = ((0,), 0)


def _weight(c: str) -> int:
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _part_key(part: str) -> tuple:
    pairs = []
    for text, digits in _RUNS.findall(part):
        if not text and not digits:
            continue
        pairs.append((tuple(_weight(c) for c in text) + (0,), int(digits) if digits else 0))
    while pairs and pairs[-1] == _END:
        pairs.pop()
    pairs.append(_END)
    return tuple(pairs)


@lru_cache(maxsize=200_000)
def dpkg_key(version: str) -> tuple:
    """Sort key of a dpkg version; raises :class:`VersionError` as dpkg would refuse it."""
    v = version.strip()
    if not v:
        raise VersionError(version, "dpkg", "empty version")
    if any(c.isspace() for c in v):
        raise VersionError(version, "dpkg", "contains whitespace")
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        if not e.isdigit():
            raise VersionError(version, "dpkg", "epoch is not a number")
        epoch = int(e)
        if not v:
            raise VersionError(version, "dpkg", "nothing after the epoch colon")
    if "-" in v:
        upstream, revision = v.rsplit("-", 1)
        if not revision:
            raise VersionError(version, "dpkg", "empty revision after '-'")
    else:
        upstream, revision = v, ""
    if not upstream:
        raise VersionError(version, "dpkg", "empty upstream version")
    return (epoch, _part_key(upstream), _part_key(revision))


class DpkgVersions(VersionScheme):
    """Debian package versions (``Debian``, ``Ubuntu`` and derivatives)."""

    name = "dpkg"

    @guarded
    def key(self, version: str) -> tuple:
        return dpkg_key(version)
