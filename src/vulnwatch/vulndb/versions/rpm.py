"""RPM versions ``[epoch:]version[-release]``, ordered like rpm's ``rpmvercmp``.

``rpmvercmp`` walks both strings segment by segment: separators (anything that is
not a letter, digit, ``~`` or ``^``) are skipped; ``~`` sorts before everything,
even the end of the string; ``^`` sorts after the end of the string but before
anything else; a numeric segment is newer than an alphabetic one; numbers
compare numerically (leading zeros ignored), letters as strings; when one
string runs out, the longer one is newer.

Full EVR comparison: epoch (missing = 0) as a number, then version, then release, as
``rpm.vercmp`` (rpm 4.18's ``rpmverCmp``) does: a version with a release is newer than
the same version without one (``1.0-1`` > ``1.0``), whatever the release holds.

Refused (:class:`VersionError`), though ``rpm.vercmp`` would still order them: EVRs no
rpm package can carry, because rpmbuild rejects them: an empty string or an empty
version or release (``-1``, ``1.0-``), an epoch that is not a number (``x:1.0``: rpm
would read the whole as a version containing ``:``, a character rpmbuild forbids in
Version and Release), and whitespace.
"""

from __future__ import annotations

import functools
from functools import lru_cache

from ..interface import VersionError, VersionScheme
from ._shared import guarded


def _isalnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison of two version (or release) strings: -1, 0, 1."""
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        while i < la and not _isalnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < lb and not _isalnum(b[j]) and b[j] not in "~^":
            j += 1
        ca = a[i] if i < la else ""
        cb = b[j] if j < lb else ""
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i += 1
            j += 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ca and cb):
            break
        if ca.isdigit():
            ea = i
            while ea < la and a[ea].isdigit():
                ea += 1
            eb = j
            while eb < lb and b[eb].isdigit():
                eb += 1
            isnum = True
        else:
            ea = i
            while ea < la and a[ea].isascii() and a[ea].isalpha():
                ea += 1
            eb = j
            while eb < lb and b[eb].isascii() and b[eb].isalpha():
                eb += 1
            isnum = False
        sa, sb = a[i:ea], b[j:eb]
        if not sa:
            return -1  # cannot happen: segment starts at an alnum
        if not sb:
            return 1 if isnum else -1
        if isnum:
            sa = sa.lstrip("0")
            sb = sb.lstrip("0")
            if len(sa) != len(sb):
                return 1 if len(sa) > len(sb) else -1
        if sa != sb:
            return 1 if sa > sb else -1
        i, j = ea, eb
    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


def parse_evr(version: str) -> tuple[int, str, str | None]:
    """Split ``[epoch:]version[-release]``; raises :class:`VersionError`."""
    v = version.strip()
    if not v or any(c.isspace() for c in v):
        raise VersionError(version, "rpm", "empty or contains whitespace")
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        if not e.isdigit():
            raise VersionError(version, "rpm", "epoch is not a number")
        epoch = int(e)
    release: str | None = None
    if "-" in v:
        v, release = v.rsplit("-", 1)
        if not release:
            raise VersionError(version, "rpm", "empty release after '-'")
    if not v:
        raise VersionError(version, "rpm", "empty version")
    return epoch, v, release


def rpm_compare(a: str, b: str) -> int:
    """Compare two EVR strings the way ``rpm.vercmp`` does: -1, 0, 1."""
    ea, va, ra = parse_evr(a)
    eb, vb, rb = parse_evr(b)
    if ea != eb:
        return 1 if ea > eb else -1
    rc = rpmvercmp(va, vb)
    if rc == 0 and (ra is not None or rb is not None):
        # a release, whatever it holds, is newer than none (rpm's compare_values)
        rc = rpmvercmp(ra, rb) if ra is not None and rb is not None else (1 if ra is not None else -1)
    return rc


_Key = functools.cmp_to_key(rpm_compare)


@lru_cache(maxsize=100_000)
def rpm_key(version: str):
    """Sort key (wraps :func:`rpm_compare`); raises :class:`VersionError`."""
    parse_evr(version)
    return _Key(version)


class RpmVersions(VersionScheme):
    """RPM package versions (Red Hat, AlmaLinux, Rocky Linux, openSUSE, SUSE, ...)."""

    name = "rpm"

    @guarded
    def key(self, version: str):
        return rpm_key(version)

    def compare(self, a: str, b: str) -> int:
        return rpm_compare(a, b)
