"""Semantic versions (semver.org 2.0.0, section 11 precedence): npm, crates.io, SEMVER ranges, and the
base of Go's scheme (``golang``) — shared, hence a ``_`` module.

``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``: the three numbers compare as numbers; a
version with a pre-release sorts before the same version without one;
pre-release identifiers compare one by one (numeric ones as numbers and before
alphanumeric ones, alphanumeric ones in ASCII order; fewer identifiers sort
first when all before are equal); build metadata is ignored.

Leniency (as real-world data needs): a leading ``v`` is dropped (Go modules;
``+incompatible`` is build metadata and so ignored), missing minor/patch count
as 0, and leading zeros are accepted. ``npm`` also takes what node-semver's ``loose``
mode parses (``=1.2.3``, ``v 1.2.3``, ``1.2.3beta``: a prefix of ``v``, ``=`` and spaces,
and a pre-release without its ``-`` after all three numbers).
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..interface import VersionError, VersionScheme
from ._shared import guarded

_SEMVER = re.compile(
    r"^v?(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$", re.ASCII)

_LOOSE = re.compile(
    r"^[v=\s]*(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)"
    r"(?:-?(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$", re.ASCII)
"""node-semver's ``LOOSE`` version (``LOOSEPLAIN``, ``internal/re.js``)."""

_RELEASE = (1,)


def _pre_key(pre: str, version: str, ecosystem: str) -> tuple:
    ids = []
    for ident in pre.split("."):
        if not ident:
            raise VersionError(version, ecosystem, "empty pre-release identifier")
        if ident.isascii() and ident.isdigit():
            ids.append((0, int(ident), ""))
        else:
            ids.append((1, 0, ident))
    return (0, tuple(ids))


@lru_cache(maxsize=100_000)
def semver_key(version: str, ecosystem: str = "SemVer", loose: bool = False) -> tuple:
    """Sort key ``(major, minor, patch, pre-release key)``; raises :class:`VersionError`.
    ``loose``: node-semver's loose forms are accepted too (see the module docstring)."""
    m = _SEMVER.match(version.strip())
    if not m and loose:
        m = _LOOSE.match(version.strip())
    if not m:
        raise VersionError(version, ecosystem, "not MAJOR.MINOR.PATCH[-pre][+build]")
    pre = m.group("pre")
    return (int(m.group("major")), int(m.group("minor") or 0), int(m.group("patch") or 0),
            _pre_key(pre, version, ecosystem) if pre else _RELEASE)


class SemverVersions(VersionScheme):
    """SemVer 2.0.0 precedence (``npm``, ``crates.io``, and ``SEMVER`` ranges; ``Go`` adds its
    toolchain spellings in :class:`~.golang.GoVersions`)."""

    name = "semver"

    def __init__(self, ecosystem: str = "SemVer") -> None:
        self.ecosystem = ecosystem
        """Ecosystem named in the :class:`VersionError` of a version that does not parse."""
        self.loose = ecosystem == "npm"
        """node-semver's loose forms are versions too (npm only)."""

    @guarded
    def key(self, version: str) -> tuple:
        return semver_key(version, self.ecosystem, self.loose)
