"""Maven versions, ordered like Maven's ``ComparableVersion`` (maven-artifact 3.8.7 and 3.9).

The version is lower-cased and cut into items at ``.`` and ``-`` and wherever
digits and letters meet; ``-`` (and a digit/letter transition) opens a sub-list, and so
does a qualifier after ``.`` (``1.0.0.X1`` orders like ``1.0.0-X1``).
Numbers compare as numbers; qualifiers in the order
``alpha < beta < milestone < rc = cr < snapshot < "" = ga = final = release < sp``,
unknown qualifiers after all of these, alphabetically; ``a1``/``b1``/``m1`` mean
``alpha-1``/``beta-1``/``milestone-1``. Trailing "null" items (``0``, ``ga``,
``final``, ``release``, empty lists) are dropped, so ``1 = 1.0 = 1.0.0 = 1-ga``.
When items of different kinds meet: number > list > qualifier; a list that runs out
compares every remaining item of the other against "nothing".

Hand-written (no Python library implements ComparableVersion); the tests check it
against the real class of the installed Maven (``java -cp maven-artifact.jar
org.apache.maven.artifact.versioning.ComparableVersion``, 3.8.7 in Debian 12, whose
ComparableVersion is the one of Maven 3.9). Maven up to 3.8.6 did not open a sub-list for
a qualifier after ``.`` (MNG-7644) and so ordered ``2-1 < 2.0.a``; every Maven since
orders ``2.0.a < 2-1``, as here.

Digits are Java's ``Character.isDigit``: any decimal digit of the BMP, so ``1.٨`` is ``1.8``
(Maven 3.9 orders it; it is not refused). Maven 4's ComparableVersion differs from 3.9 in two
ways its own tests show and this module does not follow: only ASCII digits are digits, and
``1.0.final-redhat < 1.0-sp1-redhat`` (MNG-7714; 3.9 has ``>``). OSV's Maven ranges are
written against Maven 3's ordering.
"""

from __future__ import annotations

from functools import lru_cache

from ..interface import VersionError, VersionScheme
from ._shared import guarded

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_RELEASE_INDEX = str(_QUALIFIERS.index(""))

# Items: int (number), str (comparable qualifier string), list (sub-list).


def _qualifier(value: str, followed_by_digit: bool) -> str:
    if followed_by_digit and len(value) == 1:
        value = {"a": "alpha", "b": "beta", "m": "milestone"}.get(value, value)
    value = _ALIASES.get(value, value)
    try:
        return str(_QUALIFIERS.index(value))
    except ValueError:
        return f"{len(_QUALIFIERS)}-{value}"


def _is_null(item) -> bool:
    if isinstance(item, int):
        return item == 0
    if isinstance(item, str):
        return item == _RELEASE_INDEX
    return len(item) == 0


def _normalize(items: list) -> None:
    for i in range(len(items) - 1, -1, -1):
        if _is_null(items[i]):
            del items[i]
        elif not isinstance(items[i], list):
            break


def _is_digit(c: str) -> bool:
    """Java's ``Character.isDigit`` on one UTF-16 unit: any decimal digit of the BMP (``٨`` is 8;
    ``²`` is not a digit, nor is a digit outside the BMP, which Java sees as two surrogates)."""
    return c.isdecimal() and c <= "\uffff"


def _parse_item(is_digit: bool, buf: str):
    return int(buf) if is_digit else _qualifier(buf, False)


def parse_maven(version: str) -> list:
    """Items of a Maven version (nested lists of int and comparable qualifier strings)."""
    v = version.lower()
    items: list = []
    current = items
    stack = [items]
    is_digit = False
    start = 0

    def open_list() -> list:
        sub: list = []
        current.append(sub)
        stack.append(sub)
        return sub

    for i, c in enumerate(v):
        if c in ".-":
            current.append(0 if i == start else _parse_item(is_digit, v[start:i]))
            start = i + 1
            if c == "-":
                current = open_list()
        elif _is_digit(c):
            if not is_digit and i > start:
                # a qualifier followed by digits; ".X" counts as "-X" (1.0.0.X1 < 1.0.0-X2)
                if current:
                    current = open_list()
                current.append(_qualifier(v[start:i], True))
                start = i
                current = open_list()
            is_digit = True
        else:
            if is_digit and i > start:
                current.append(_parse_item(True, v[start:i]))
                start = i
                current = open_list()
            is_digit = False
    if len(v) > start:
        if not is_digit and current:  # a trailing ".X" counts as "-X" too
            current = open_list()
        current.append(_parse_item(is_digit, v[start:]))
    while stack:
        _normalize(stack.pop())
    return items


def _cmp(a, b) -> int:
    """ComparableVersion's Item.compareTo; ``b`` may be None (past the end)."""
    if isinstance(a, int):
        if b is None:
            return 0 if a == 0 else 1
        if isinstance(b, int):
            return (a > b) - (a < b)
        return 1
    if isinstance(a, str):
        if b is None:
            return (a > _RELEASE_INDEX) - (a < _RELEASE_INDEX)
        if isinstance(b, str):
            return (a > b) - (a < b)
        return -1
    # list
    if b is None:  # every item against "nothing", not just the first (MNG-6964)
        for item in a:
            result = _cmp(item, None)
            if result:
                return result
        return 0
    if isinstance(b, int):
        return -1
    if isinstance(b, str):
        return 1
    for i in range(max(len(a), len(b))):
        left = a[i] if i < len(a) else None
        right = b[i] if i < len(b) else None
        if left is None:
            result = 0 if right is None else -_cmp(right, left)
        else:
            result = _cmp(left, right)
        if result:
            return result
    return 0


def maven_compare(a: str, b: str) -> int:
    """-1, 0, 1 as ``new ComparableVersion(a).compareTo(new ComparableVersion(b))``."""
    return _cmp(parse_maven(a), parse_maven(b))


class _MavenKey:
    __slots__ = ("items",)

    def __init__(self, items: list) -> None:
        self.items = items

    def __lt__(self, other: "_MavenKey") -> bool:
        return _cmp(self.items, other.items) < 0

    def __gt__(self, other: "_MavenKey") -> bool:
        return _cmp(self.items, other.items) > 0

    def __le__(self, other: "_MavenKey") -> bool:
        return _cmp(self.items, other.items) <= 0

    def __ge__(self, other: "_MavenKey") -> bool:
        return _cmp(self.items, other.items) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _MavenKey) and _cmp(self.items, other.items) == 0

    __hash__ = None  # type: ignore[assignment]


@lru_cache(maxsize=100_000)
def maven_key(version: str) -> _MavenKey:
    """Sort key; raises :class:`VersionError` for an empty or blank version."""
    if not version or not version.strip() or any(c.isspace() for c in version):
        raise VersionError(version, "Maven", "empty or contains whitespace")
    return _MavenKey(parse_maven(version))


class MavenVersions(VersionScheme):
    """Maven versions (``ComparableVersion``)."""

    name = "maven"

    @guarded(ascii_digits=False)
    def key(self, version: str) -> _MavenKey:
        return maven_key(version)
