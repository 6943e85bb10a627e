"""Version comparators, one module per ecosystem family, and the registry that picks one.

>>> comparator_for("Debian:12").compare("1.0~rc1-1", "1.0-1")
-1

Each comparator is a :class:`~vulnwatch.vulndb.interface.VersionScheme`: ``key(version)``
gives a sort key (cached), ``compare(a, b)`` gives -1/0/1; an unparsable version
raises :class:`~vulnwatch.vulndb.interface.VersionError`.
"""

from __future__ import annotations

import re

from ..interface import UnsupportedEcosystem, VersionError, VersionScheme, ecosystem_base
from .apk import Apk3Versions, ApkVersions
from .dpkg import DpkgVersions
from .golang import GoVersions
from .maven import MavenVersions
from .pep440 import Pep440Versions
from .rpm import RpmVersions
from ._semver import SemverVersions

DPKG = DpkgVersions()
APK = ApkVersions("apk", zero_fix=True)
"""apk-tools 2.12.12 to 2.14: Alpine 3.18 to 3.22, an ``Alpine`` without release, Wolfi, Chainguard."""
APK_2_12 = ApkVersions("apk-2.12", zero_fix=False)
"""apk-tools before 2.12.12: Alpine up to 3.17 (``1.0_rc1`` after ``1.0``)."""
APK3 = Apk3Versions()
"""apk-tools 3: Alpine 3.23 and later."""
RPM = RpmVersions()
PEP440 = Pep440Versions()
MAVEN = MavenVersions()
SEMVER = SemverVersions()
GO = GoVersions()

_BY_BASE: dict[str, VersionScheme] = {
    "Debian": DPKG,
    "Ubuntu": DPKG,
    "Alpine": APK,
    "Chainguard": APK,
    "Wolfi": APK,
    "Red Hat": RPM,
    "AlmaLinux": RPM,
    "Rocky Linux": RPM,
    "openSUSE": RPM,
    "SUSE": RPM,
    "Mageia": RPM,
    "openEuler": RPM,
    "Photon OS": RPM,
    "Azure Linux": RPM,
    "PyPI": PEP440,
    "npm": SemverVersions("npm"),
    "Go": GO,
    "crates.io": SemverVersions("crates.io"),
    "Maven": MAVEN,
}

ECOSYSTEMS: tuple[str, ...] = tuple(sorted(_BY_BASE))
"""Ecosystem names (without release suffix) that have a comparator."""


def comparator_for(ecosystem: str) -> VersionScheme:
    """The comparator of an OSV ecosystem, release suffix allowed (``Alpine:v3.19``, ``Ubuntu:22.04:LTS``).

    Raises :class:`UnsupportedEcosystem` (a :class:`VersionError`) for an ecosystem
    without one; for those, only exact ``versions`` lists can be matched.
    """
    base = ecosystem_base(ecosystem)
    scheme = _BY_BASE.get(base)
    if scheme is None:
        raise UnsupportedEcosystem(ecosystem, ECOSYSTEMS)
    if base == "Alpine":
        return _alpine(ecosystem)
    return scheme


def _alpine(ecosystem: str) -> VersionScheme:
    """The apk-tools generation of an Alpine release: ``Alpine:v3.11`` -> :data:`APK_2_12`,
    ``Alpine:v3.19`` -> :data:`APK`, ``Alpine:v3.23`` -> :data:`APK3`."""
    m = re.fullmatch(r"Alpine:v?(\d+)\.(\d+)", ecosystem.strip())
    if not m:
        return APK
    release = (int(m[1]), int(m[2]))
    if release <= (3, 17):
        return APK_2_12
    return APK3 if release >= (3, 23) else APK


def semver_for(ecosystem: str) -> VersionScheme:
    """The comparator for the ``SEMVER`` ranges of an ecosystem's records: plain semver
    (:data:`SEMVER`), except for ``Go``, whose installed versions may be spelled the Go
    toolchain's way (``go1.21rc2`` for the range bound ``1.21.0-rc.2``, see :mod:`.golang`).
    Versions that are semver compare the same either way."""
    return GO if ecosystem_base(ecosystem) == "Go" else SEMVER


__all__ = ["comparator_for", "semver_for", "ECOSYSTEMS", "VersionScheme", "VersionError", "UnsupportedEcosystem",
           "DpkgVersions", "ApkVersions", "RpmVersions", "Pep440Versions", "SemverVersions", "GoVersions",
           "Apk3Versions", "MavenVersions", "SEMVER", "GO", "DPKG", "APK", "APK_2_12", "APK3", "RPM", "PEP440",
           "MAVEN"]
