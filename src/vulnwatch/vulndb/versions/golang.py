"""Go versions: module versions (semver with ``v``) and the Go toolchain's own spellings.

Two spellings meet in the Go ecosystem:

- module versions, semantic versions with a leading ``v``: ``v1.2.3``, ``v2.0.0+incompatible``
  (build metadata, ignored), pseudo-versions ``v0.0.0-20210101000000-abcdef123456`` and
  ``v1.2.4-0.20210101000000-abcdef123456`` (pre-releases, which order by commit time as
  Go designed them to); the Go vulnerability database writes them without the ``v``;
- toolchain versions, as a binary's build info and ``runtime.Version()`` spell them:
  ``go1.23.4``, ``go1.21rc2``, ``go1.9beta1``, ``go1.20``, ``go1``. The Go vulnerability
  database's ``stdlib``/``toolchain`` records write these as semver (``1.23.4``,
  ``1.21.0-rc.2``, ``1.9.0-beta.1``, ``1.20.0``).

A toolchain version is read the way the Go vulnerability tooling (govulncheck) maps tags
to semver: ``goX.Y`` is the release ``X.Y.0`` (before Go 1.21 the first release of a minor
version was tagged without ``.0``), ``goX.YrcN``/``betaN``/``alphaN`` is the pre-release
``X.Y.0-rc.N`` (so ``go1.21rc2`` < ``go1.21.0``), ``go1`` is ``1.0.0``; what follows a
space or ``-`` (``go1.22.0 X:boringcrypto``, ``go1.21.0-bigcorp``) is not part of the
version, as in Go's ``go/version``. The same spellings without ``go`` (``1.21rc2``, as
in ``go.mod``'s ``go`` and ``toolchain`` lines) are accepted too. Everything else is
ordered as semver (:mod:`.semver`).

(``go/version`` orders ``go1.21`` as the *language* version, before ``go1.21rc1``; no
toolchain release is named like that from 1.21 on, and the vulnerability database never
writes it, so for matching it is the release ``1.21.0``, as govulncheck has it.)

Refused (:class:`VersionError`): ``devel`` toolchains (``devel go1.23-abc123 ...``, built
from an unreleased commit: no release to compare with) and anything neither spelling
accepts.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..interface import VersionError
from ._shared import guarded
from ._semver import SemverVersions, semver_key

_TOOLCHAIN = re.compile(r"(?P<major>\d+)(?:\.(?P<minor>\d+)(?:\.(?P<patch>\d+)|(?P<kind>alpha|beta|rc)(?P<n>\d+))?)?")


def toolchain_semver(version: str) -> str | None:
    """The semver spelling (``1.21.0-rc.2``) of a Go toolchain version (``go1.21rc2``,
    ``1.21rc2``), None when ``version`` is not spelled like one."""
    v = version.strip()
    if v.startswith("go"):
        v = re.split(r"[\s-]", v[2:], maxsplit=1)[0]
    m = _TOOLCHAIN.fullmatch(v)
    if not m:
        return None
    out = f"{m['major']}.{m['minor'] or 0}.{m['patch'] or 0}"
    if m["kind"]:
        out += f"-{m['kind']}.{m['n']}"
    return out


@lru_cache(maxsize=100_000)
def go_key(version: str) -> tuple:
    """Sort key, comparable with :func:`._semver.semver_key` keys; raises :class:`VersionError`."""
    v = version.strip()
    if v.startswith("devel"):
        raise VersionError(version, "Go", "a development toolchain (devel) has no release to compare with")
    if v.startswith("go"):
        semver = toolchain_semver(v)
        if semver is None:
            raise VersionError(version, "Go", "not a Go toolchain version like go1.21.3 or go1.21rc2")
        return semver_key(semver, "Go")
    try:
        return semver_key(v, "Go")
    except VersionError:
        semver = toolchain_semver(v)
        if semver is None:
            raise VersionError(version, "Go", "neither a module version (v1.2.3) nor a Go toolchain "
                                              "version (go1.21.3, go1.21rc2)") from None
        return semver_key(semver, "Go")


class GoVersions(SemverVersions):
    """The ``Go`` ecosystem: semver module versions and Go toolchain versions, in one order."""

    name = "go"

    def __init__(self) -> None:
        super().__init__("Go")

    @guarded
    def key(self, version: str) -> tuple:
        return go_key(version)
