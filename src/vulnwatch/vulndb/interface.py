"""The offline vulnerability database (OSV data): shared values and the error type.

Layout of this package:

- ``versions/``: one version comparator per ecosystem family (``comparator_for``).
- ``index.py``: the local indexed store, one SQLite file (:class:`~.index.VulnIndex`).
- ``schema.py``: what a record may be (the OSV schema's types, size bounds), checked on
  import and again when the matcher loads a record.
- ``sync.py``: importing OSV exports (``all.zip`` or a folder of ``*.json``) and
  downloading them with conditional GET.
- ``match.py``: OSV range evaluation, packages -> findings (:class:`~.match.Matcher`).
- ``severity.py``: CVSS vectors and ecosystem ratings -> score and :class:`Severity`.

Imports only :mod:`vulnwatch.model`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any



DEFAULT_BASE_URL = "https://osv-vulnerabilities.storage.googleapis.com"
"""Where OSV publishes its per-ecosystem exports (``<base>/<Ecosystem>/all.zip``)."""


class VulnDBError(Exception):
    """Something about the vulnerability data failed: a file, a record, a download.

    The message names the input (file, record id, URL, ecosystem) and what to do.
    ``code`` is a short machine-readable reason.
    """

    def __init__(self, message: str, *, code: str = "VulnDBError") -> None:
        super().__init__(message)
        self.code = code


class VersionError(VulnDBError):
    """A version string cannot be parsed under its ecosystem's rules.

    The matcher catches it: a record whose bounds do not parse is skipped (and
    counted), an installed version that does not parse skips that package.
    """

    def __init__(self, version: str, ecosystem: str, reason: str = "") -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"invalid {ecosystem} version {version!r}{why}", code="InvalidVersion")
        self.version = version
        self.ecosystem = ecosystem
        self.reason = reason


class UnsupportedEcosystem(VersionError):
    """No version comparator exists for an ecosystem (only exact ``versions`` lists can match)."""

    def __init__(self, ecosystem: str, supported: tuple[str, ...] = ()) -> None:
        VulnDBError.__init__(
            self, f"no version comparator for ecosystem {ecosystem!r}"
                  + (f" (supported: {', '.join(supported)})" if supported else ""),
            code="UnsupportedEcosystem")
        self.version = ""
        self.ecosystem = ecosystem
        self.reason = "unsupported ecosystem"


class VersionScheme(abc.ABC):
    """How one ecosystem family orders versions.

    ``key`` returns a value ordered exactly like the ecosystem orders versions
    (``key(a) < key(b)`` iff ``a`` is older than ``b``; equal keys for versions
    the ecosystem considers equal), so callers may cache keys and compare them.
    """

    name: str
    """Short name of the scheme: ``dpkg``, ``apk``, ``rpm``, ``pep440``, ``semver``, ``maven``."""

    @abc.abstractmethod
    def key(self, version: str) -> Any:
        """Sort key of ``version``; raises :class:`VersionError` when it does not parse."""

    def compare(self, a: str, b: str) -> int:
        """-1, 0 or 1 as ``a`` is older than, equal to, or newer than ``b``."""
        ka, kb = self.key(a), self.key(b)
        return (ka > kb) - (ka < kb)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


DISTRO_ECOSYSTEMS = frozenset({
    "Debian", "Ubuntu", "Alpine", "Red Hat", "AlmaLinux", "Rocky Linux", "openSUSE", "SUSE",
    "Mageia", "openEuler", "Photon OS", "Azure Linux", "Chainguard", "Wolfi",
})
"""Ecosystems whose advisories name source/origin packages (here, not in ``match``, so the
store's package index reads it without importing the matcher)."""


def ecosystem_base(ecosystem: str) -> str:
    """``Debian:11`` -> ``Debian``; ``Ubuntu:22.04:LTS`` -> ``Ubuntu``; ``PyPI`` -> ``PyPI``."""
    return ecosystem.split(":", 1)[0].strip()


@dataclass(frozen=True)
class ImportReport:
    """What one import of OSV data did."""

    source: str
    """Source key the records were stored under (normally the ecosystem, e.g. ``PyPI``)."""
    location: str
    """File, folder or URL imported."""
    imported: int = 0
    """Records stored (new or replaced)."""
    withdrawn: int = 0
    """Withdrawn records dropped."""
    removed: int = 0
    """Records of the same source that were in the index but not in this export, deleted."""
    skipped: tuple[tuple[str, str], ...] = ()
    """Invalid records left out, as ``(file or record id, reason)``."""


@dataclass(frozen=True)
class UpdateResult:
    """Outcome of downloading one ecosystem's export."""

    ecosystem: str
    """Ecosystem as OSV names its folder (``PyPI``, ``Debian``)."""
    url: str
    """The URL fetched."""
    changed: bool
    """False when the server answered 304 Not Modified (nothing imported)."""
    report: ImportReport | None = None
    """The import report when the export changed."""


@dataclass(frozen=True)
class SourceStatus:
    """Freshness of one imported source."""

    ecosystem: str
    """Source key (the ecosystem)."""
    records: int
    """Records currently stored for it."""
    imported_at: datetime
    """When it was last imported (or confirmed unchanged by a 304), UTC."""
    age: timedelta
    """Time since ``imported_at`` at the moment the status was read."""
    location: str = ""
    """File or URL it came from."""
    etag: str | None = None
    """ETag of the downloaded export, when downloaded."""
    last_modified: str | None = None
    """Last-Modified of the downloaded export, when downloaded."""
    version: str | None = None
    """The data's own version, when it has one (KEV ``catalogVersion``, EPSS ``score_date``)."""

    def is_stale(self, max_age: timedelta) -> bool:
        """True when older than ``max_age``."""
        return self.age > max_age


@dataclass(frozen=True)
class MatchStats:
    """Counters a :class:`Matcher` keeps while it works (for logs and reports)."""

    packages: int = 0
    """Packages looked at."""
    findings: int = 0
    """Findings produced."""
    skipped_records: dict[str, str] = field(default_factory=dict)
    """Record id -> why it was skipped (a bound that does not parse, ...)."""
    skipped_packages: dict[str, str] = field(default_factory=dict)
    """``ecosystem/name@version`` -> why it was not matched (unparsable version)."""
