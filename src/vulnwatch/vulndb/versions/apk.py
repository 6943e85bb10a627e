"""Alpine (apk-tools) versions: ``{digits}{.digits}...{letter}{_suffix{digits}}...{~hash}{-r#}``.

Three generations of apk-tools order them, and ``comparator_for`` picks by Alpine release:
apk-tools before 2.12.12 (Alpine up to 3.17, and the data of those releases), 2.12.12 to
2.14 (Alpine 3.18 to 3.22, Wolfi, Chainguard), and apk-tools 3 (Alpine 3.23 and later,
:func:`apk3_compare` below).

apk-tools 2 orders them token by token:

- numbers compare as numbers; a component after ``.`` that starts with ``0`` is
  compared by its count of leading zeros (fewer zeros sort after more), the way
  apk-tools treats ``1.02`` vs ``1.1``; before 2.12.12 every leading zero counted, so
  ``1.0`` ended in a "zero count" token and ``1.0_rc1`` sorted after it; from 2.12.12 on
  only the zeros after the first count (``zero_fix``);
- a single lower-case letter after the numbers compares by character;
- suffixes ``_alpha < _beta < _pre < _rc`` sort before "no suffix", and
  ``_cvs < _svn < _git < _hg < _p`` after it; a suffix may carry a number;
- ``-rN`` is the package revision, compared as a number;
- when one version runs out first, it is the newer one unless the longer one
  continues with a pre-release suffix; otherwise the token kinds decide
  (a version continuing with a number sorts after one continuing with a letter,
  a suffix, a revision, in that order).

Strings apk-tools calls invalid (``1.0-foo``, unknown suffixes, ``~hash`` before apk-tools
3) are refused by the schemes (:class:`VersionError`): apk-tools refuses them as package
versions (``apk_version_validate``), though :func:`apk_compare` still orders them up to
the first invalid token, as ``apk version -t`` does; :func:`apk_validate` tells whether a
version is well-formed.

Hand-written: no Python library implements apk-tools' ordering.
"""

from __future__ import annotations

import functools
import re
from functools import lru_cache

from ..interface import VersionError, VersionScheme
from ._shared import guarded

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


def _token(kind: int, cur: _Cursor, zero_fix: bool = False) -> tuple[int, int]:
    """Read one token of ``kind``; return (value, kind of the next token). ``zero_fix``: the
    leading-zero rule of apk-tools 2.12.12 and later (see :func:`apk_compare`)."""
    s = cur.s
    if cur.left() <= 0:
        return 0, END
    i = cur.i
    value = 0
    next_kind = INVALID
    if kind == DIGIT_OR_ZERO and s[i] == "0":
        j = i
        if zero_fix:  # count the zeros after the first; the last zero starts the number
            while j + 1 < len(s) and s[j + 1] == "0":
                j += 1
        else:
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


def apk_compare(a: str, b: str, zero_fix: bool = False) -> int:
    """-1, 0, 1 as apk-tools 2's ``apk version -t a b`` prints ``<``, ``=``, ``>``.

    ``zero_fix=False``: apk-tools before 2.12.12, which read every leading zero of a
    component after ``.`` as a count and so ordered ``1.0_rc1`` after ``1.0``;
    ``zero_fix=True``: apk-tools 2.12.12 to 2.14 (Alpine 3.18 to 3.22), where only the zeros
    after the first count (``6.0_pre1 < 6.0``)."""
    ca, cb = _Cursor(a), _Cursor(b)
    at = bt = DIGIT
    av = bv = 0
    while at == bt and at not in (END, INVALID) and av == bv:
        av, at = _token(at, ca, zero_fix)
        bv, bt = _token(bt, cb, zero_fix)
    if av < bv:
        return -1
    if av > bv:
        return 1
    if at == bt:
        return 0
    if at == SUFFIX and _token(at, _copy(ca), zero_fix)[0] < 0:
        return -1
    if bt == SUFFIX and _token(bt, _copy(cb), zero_fix)[0] < 0:
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
_KeyFixed = functools.cmp_to_key(functools.partial(apk_compare, zero_fix=True))


@lru_cache(maxsize=100_000)
def apk_key(version: str, zero_fix: bool = False):
    """Sort key (wraps :func:`apk_compare`); raises :class:`VersionError` for malformed versions."""
    if not version or not apk_validate(version):
        raise VersionError(version, "apk", "not of the form 1.2.3[a][_suffixN][-rN]")
    return (_KeyFixed if zero_fix else _Key)(version)


class ApkVersions(VersionScheme):
    """Alpine package versions as apk-tools 2 orders them (``Alpine`` up to 3.22,
    ``Chainguard``, ``Wolfi``); ``zero_fix`` as in :func:`apk_compare`."""

    def __init__(self, name: str = "apk", zero_fix: bool = False) -> None:
        self.name = name
        self.zero_fix = zero_fix
        """True for apk-tools 2.12.12 and later (see :func:`apk_compare`)."""

    @guarded
    def key(self, version: str):
        return apk_key(version, self.zero_fix)

    def compare(self, a: str, b: str) -> int:
        apk_key(a), apk_key(b)
        return apk_compare(a, b, self.zero_fix)


# ---------------------------------------------------------------- apk-tools 3

# apk-tools 3 (Alpine 3.23 and later) rewrote the version lexer; its documented format
# (apk-package(5)) is  number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}:
#
# - the numbers compare as numbers, except that when either of two numbers after a "."
#   starts with "0" they compare as strings ("1.02" < "1.1", "1.0" = "1.0", "1.05" < "1.1");
# - one lower-case letter may follow the last number (a letter followed by anything but a
#   suffix, hash or revision makes the version invalid: "1.0bc", "1.0a1");
# - suffixes _alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git < _hg < _p, each with
#   an optional number; the suffix name must be one of these exactly;
# - "~hash": lower-case hexadecimal digits naming the commit it was built from, compared as
#   strings; "-rN": the package revision, a number, at most once and last;
# - token by token; when one version has a token the other lacks, a pre-release suffix makes
#   it older, otherwise it is newer the earlier that token comes in the list above (a number
#   or letter beats a suffix, which beats a hash, which beats a revision, which beats the end);
# - an invalid version orders up to where it becomes invalid, then before any valid rest.
# Hand-written for the same reason as above.

_A3_INITIAL, _A3_DIGIT, _A3_LETTER, _A3_SUFFIX, _A3_SUFFIX_NO, _A3_HASH, _A3_REVISION, _A3_END, _A3_INVALID = range(9)
_A3_SUFFIXES = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}
_A3_DIGITS = re.compile(r"[0-9]*")
_A3_LOWER = re.compile(r"[a-z]*")
_A3_HEX = re.compile(r"[0-9a-f]*")


def _a3_tokens(v: str):
    """Yield ``(kind, text, number)`` tokens of an apk-tools 3 version, ending with END or INVALID."""
    m = _A3_DIGITS.match(v)
    if not m.group():
        yield _A3_INVALID, "", 0
        return
    kind, i = _A3_INITIAL, m.end()
    yield kind, m.group(), int(m.group())
    while True:
        if i >= len(v):
            yield _A3_END, "", 0
            return
        c = v[i]
        if "a" <= c <= "z" and kind <= _A3_DIGIT:
            kind, text, i = _A3_LETTER, c, i + 1
            yield kind, text, ord(c)
            continue
        if (c == "." and kind <= _A3_DIGIT) or ("0" <= c <= "9" and kind == _A3_SUFFIX):
            j = i + 1 if c == "." else i
            m = _A3_DIGITS.match(v, j)
            if m.group():
                kind, i = (_A3_DIGIT if c == "." else _A3_SUFFIX_NO), m.end()
                yield kind, m.group(), int(m.group())
                continue
        elif c == "_" and kind <= _A3_SUFFIX_NO:
            m = _A3_LOWER.match(v, i + 1)
            if m.group() in _A3_SUFFIXES:
                kind, i = _A3_SUFFIX, m.end()
                yield kind, m.group(), _A3_SUFFIXES[m.group()]
                continue
        elif c == "~" and kind < _A3_HASH:
            m = _A3_HEX.match(v, i + 1)
            if m.group():
                kind, i = _A3_HASH, m.end()
                yield kind, m.group(), 0
                continue
        elif c == "-" and kind < _A3_REVISION and v.startswith("-r", i):
            m = _A3_DIGITS.match(v, i + 2)
            if m.group():
                kind, i = _A3_REVISION, m.end()
                yield kind, m.group(), int(m.group())
                continue
        yield _A3_INVALID, "", 0
        return


def _a3_token_cmp(kind: int, a: tuple, b: tuple) -> int:
    if kind in (_A3_DIGIT, _A3_HASH) and (kind == _A3_HASH or a[1].startswith("0") or b[1].startswith("0")):
        x, y = a[1], b[1]  # byte-wise, then the shorter first (apk_blob_sort)
    else:
        x, y = a[2], b[2]
    return (x > y) - (x < y)


def apk3_compare(a: str, b: str) -> int:
    """-1, 0, 1 as apk-tools 3 orders ``a`` and ``b`` (``apk version -t``)."""
    ta, tb = _a3_tokens(a), _a3_tokens(b)
    while True:
        x, y = next(ta), next(tb)
        if x[0] != y[0] or x[0] >= _A3_END:
            break
        r = _a3_token_cmp(x[0], x, y)
        if r:
            return r
    if x[0] == y[0]:
        return 0
    if x[0] == _A3_SUFFIX and x[2] < 0:
        return -1
    if y[0] == _A3_SUFFIX and y[2] < 0:
        return 1
    return -1 if x[0] > y[0] else 1


def apk3_validate(version: str) -> bool:
    """True when apk-tools 3 accepts ``version`` as well-formed."""
    return all(kind != _A3_INVALID for kind, _t, _n in _a3_tokens(version))


_Key3 = functools.cmp_to_key(apk3_compare)


@lru_cache(maxsize=100_000)
def apk3_key(version: str):
    """Sort key (wraps :func:`apk3_compare`); raises :class:`VersionError` for malformed versions."""
    if not apk3_validate(version):
        raise VersionError(version, "apk", "not of the form 1.2.3[a][_suffixN][~hash][-rN] (apk-tools 3)")
    return _Key3(version)


class Apk3Versions(VersionScheme):
    """Alpine package versions as apk-tools 3 (Alpine 3.23 and later) orders them."""

    name = "apk3"

    @guarded
    def key(self, version: str):
        return apk3_key(version)

    def compare(self, a: str, b: str) -> int:
        apk3_key(a), apk3_key(b)
        return apk3_compare(a, b)
