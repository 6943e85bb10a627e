"""Alpine (apk-tools) versions: ``{digits}{.digits}...{letter}{_suffix{digits}}...{-r#}``.

Ordered as apk-tools orders them (token by token):

- numbers compare as numbers; a component after ``.`` that starts with ``0`` is
  compared by its count of leading zeros (fewer zeros sort after more), the way
  apk-tools treats ``1.02`` vs ``1.1``;
- a single lower-case letter after the numbers compares by character;
- suffixes ``_alpha < _beta < _pre < _rc`` sort before "no suffix", and
  ``_cvs < _svn < _git < _hg < _p`` after it; a suffix may carry a number;
- ``-rN`` is the package revision, compared as a number;
- when one version runs out first, it is the newer one unless the longer one
  continues with a pre-release suffix; otherwise the token kinds decide
  (a version continuing with a number sorts after one continuing with a letter,
  a suffix, a revision, in that order).

Strings apk-tools calls invalid (``1.0-foo``, unknown suffixes) still get an
order (apk compares them up to the first invalid token, as ``apk version -t``
does); :func:`apk_validate` tells whether a version is well-formed.
"""

from __future__ import annotations

import functools
from functools import lru_cache

from ..interface import VersionError, VersionScheme

# Token kinds, in apk-tools' order.
INVALID, DIGIT_OR_ZERO, DIGIT, LETTER, SUFFIX, SUFFIX_NO, REVISION_NO, END = -1, 0, 1, 2, 3, 4, 5, 6
_PRE = ("alpha", "beta", "pre", "rc")
_POST = ("cvs", "svn", "git", "hg", "p")
_MAX_DIGITS = 18


class _Cursor:
    __slots__ = ("s", "i")

    def __init__(self, s: str) -> None:
        self.s = s
        self.i = 0

    def left(self) -> int:
        return len(self.s) - self.i


def _next_kind(kind: int, cur: _Cursor) -> int:
    s, i = cur.s, cur.i
    n = INVALID
    if i >= len(s):
        n = END
    else:
        c = s[i]
        if kind in (DIGIT, DIGIT_OR_ZERO) and "a" <= c <= "z":
            n = LETTER
        elif kind == LETTER and c.isdigit():
            n = DIGIT
        elif kind == SUFFIX and c.isdigit():
            n = SUFFIX_NO
        else:
            if c == ".":
                n = DIGIT_OR_ZERO
            elif c == "_":
                n = SUFFIX
            elif c == "-":
                if i + 1 < len(s) and s[i + 1] == "r":
                    n = REVISION_NO
                    cur.i += 1
                else:
                    n = INVALID
            cur.i += 1
    if n < kind and not ((n == DIGIT_OR_ZERO and kind == DIGIT)
                         or (n == SUFFIX and kind == SUFFIX_NO)
                         or (n == DIGIT and kind == LETTER)):
        n = INVALID
    return n


def _token(kind: int, cur: _Cursor) -> tuple[int, int]:
    """Read one token of ``kind``; return (value, kind of the next token)."""
    s = cur.s
    if cur.left() <= 0:
        return 0, END
    i = cur.i
    value = 0
    next_kind = INVALID
    if kind == DIGIT_OR_ZERO and s[i] == "0":
        j = i
        while j < len(s) and s[j] == "0":
            j += 1
        value = -(j - i)
        next_kind = DIGIT
        i = j
    elif kind in (DIGIT, DIGIT_OR_ZERO, SUFFIX_NO, REVISION_NO):
        j = i
        while j < len(s) and s[j].isdigit():
            j += 1
        if j - i >= _MAX_DIGITS:
            return -1, INVALID
        value = int(s[i:j]) if j > i else 0
        i = j
    elif kind == LETTER:
        value = ord(s[i])
        i += 1
    elif kind == SUFFIX:
        rest = s[i:]
        for n, suffix in enumerate(_PRE):
            if rest.startswith(suffix):
                value = n - len(_PRE)
                i += len(suffix)
                break
        else:
            for n, suffix in enumerate(_POST):
                if rest.startswith(suffix):
                    value = n
                    i += len(suffix)
                    break
            else:
                return -1, INVALID
    else:
        return -1, INVALID
    cur.i = i
    if cur.left() == 0:
        return value, END
    if next_kind != INVALID:
        return value, next_kind
    return value, _next_kind(kind, cur)


def apk_compare(a: str, b: str) -> int:
    """-1, 0, 1 as apk-tools' ``apk version -t a b`` prints ``<``, ``=``, ``>``."""
    ca, cb = _Cursor(a), _Cursor(b)
    at = bt = DIGIT
    av = bv = 0
    while at == bt and at not in (END, INVALID) and av == bv:
        av, at = _token(at, ca)
        bv, bt = _token(bt, cb)
    if av < bv:
        return -1
    if av > bv:
        return 1
    if at == bt:
        return 0
    if at == SUFFIX and _token(at, _copy(ca))[0] < 0:
        return -1
    if bt == SUFFIX and _token(bt, _copy(cb))[0] < 0:
        return 1
    if at > bt:
        return -1
    if bt > at:
        return 1
    return 0


def _copy(cur: _Cursor) -> _Cursor:
    c = _Cursor(cur.s)
    c.i = cur.i
    return c


def apk_validate(version: str) -> bool:
    """True when apk-tools accepts ``version`` as well-formed."""
    cur = _Cursor(version)
    kind = DIGIT
    while kind not in (END, INVALID):
        _, kind = _token(kind, cur)
    return kind == END


_Key = functools.cmp_to_key(apk_compare)


@lru_cache(maxsize=100_000)
def apk_key(version: str):
    """Sort key (wraps :func:`apk_compare`); raises :class:`VersionError` for malformed versions."""
    if not version or not apk_validate(version):
        raise VersionError(version, "apk", "not of the form 1.2.3[a][_suffixN][-rN]")
    return _Key(version)


class ApkVersions(VersionScheme):
    """Alpine package versions (``Alpine``, ``Chainguard``, ``Wolfi``)."""

    name = "apk"

    def key(self, version: str):
        return apk_key(version)

    def compare(self, a: str, b: str) -> int:
        apk_key(a), apk_key(b)
        return apk_compare(a, b)
