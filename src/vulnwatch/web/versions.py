"""An ecosystem-agnostic version order, for choosing an upgrade target among fixed versions.

Runs of digits compare as numbers, letters as text, ``~`` before anything (Debian), an
``N:`` epoch first. Right for the versions advisories name as fixes (``1.26.18``,
``7.74.0-1.3+deb11u7``, ``1:2.3-4``); pre-release spellings (``1.0rc1``) sort after the
release. Only used to rank fixed versions of one package against each other.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

_TOKENS = re.compile(r"\d+|[A-Za-z]+|~|[^\dA-Za-z~]+")
_EPOCH = re.compile(r"^(\d+):")


@functools.lru_cache(maxsize=4096)
def version_key(version: str) -> tuple:
    m = _EPOCH.match(version)
    epoch, rest = (int(m.group(1)), version[m.end():]) if m else (0, version)
    key: list[tuple] = [(3, epoch, "")]
    for tok in _TOKENS.findall(rest):
        if tok.isdigit():
            key.append((3, int(tok), ""))
        elif tok == "~":
            key.append((0, 0, ""))
        elif tok.isalpha():
            key.append((2, 0, tok.lower()))
        else:
            key.append((1, 0, tok))
    return tuple(key)


def needed_fix(installed: str, fixed_versions: Sequence[str]) -> str | None:
    """The lowest fixed version above ``installed`` (else the lowest one), None if none."""
    if not fixed_versions:
        return None
    above = [v for v in fixed_versions if version_key(v) > version_key(installed)]
    return min(above or fixed_versions, key=version_key)
