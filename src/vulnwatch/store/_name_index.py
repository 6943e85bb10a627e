"""Which stored inventories hold a given package (SQL store, migration 9): the package index.

A re-match after an update of the advisory data need only look at the packages named by a
changed record (``VulnIndex.changes_since``), and only at the images holding one whose findings
moved. Reading every inventory to find them costs as much as the fleet, so the store keeps:

* ``fleet_packages``: each distinct package of the fleet (the fields matching depends on, with
  the image's distro), once: its id (:func:`package_id`), its folded name (:func:`name_key`) to
  look it up by, and the findings signature the data gave it when last re-matched (NULL: not
  known). A re-match evaluates each changed package once and compares: equal, no image holding
  it moved because of it;
* an inverted index, package -> images, brought up to date lazily a chunk of images at a time:
  one ``name_index_chunks`` row lists the chunk's image keys, one ``name_postings`` row per
  package lists the positions (in that list) of the images holding it; snapshots written with a
  new inventory have ``names_chunk`` NULL until indexed. Postings are only appended (storing an
  image stays one row write); an image re-written is indexed again in a later chunk, and its
  old postings only make it a candidate it is not (the caller checks each candidate), so the
  answer is a superset of the images holding the packages, never a subset.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from typing import NamedTuple

from ..vulndb.interface import DISTRO_ECOSYSTEMS, ecosystem_base

__all__ = ["IndexedPackage", "matching_key", "name_key", "package_id", "looked_up"]

_FOLD = re.compile(r"[-_.]+")


class IndexedPackage(NamedTuple):
    """A distinct package of the fleet, as the package index keeps it."""

    id: str
    distro: str | None
    row: tuple
    """The fields matching depends on (name, version, ecosystem, purl, source name, source version)."""
    signature: str | None
    """Its findings signature when last re-matched; None: not known."""


@functools.lru_cache(maxsize=1 << 17)
def name_key(name: str) -> str:
    """A package name folded so that every spelling the advisory index treats as one (PEP 503,
    case) is one key: ``Foo_Bar`` -> ``foo-bar``. Coarser than any ecosystem's own rule, so
    folding only ever adds candidates."""
    return _FOLD.sub("-", name).lower()


def matching_key(row: Sequence) -> tuple:
    """The fields of a package row (PackageRow order) that matching depends on."""
    return (row[0], row[1], row[2], row[3], row[4], row[5])


def package_id(distro: str | None, key: tuple) -> str:
    """The id of a distinct package (a :func:`matching_key`, on an image of ``distro``)."""
    text = "\x1f".join("" if v is None else str(v) for v in (distro, *key))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def looked_up(key: tuple) -> str:
    """The folded name a package is looked up under (a distribution's source package)."""
    name, _version, ecosystem, _purl, source = key[:5]
    if source and ecosystem and ecosystem_base(ecosystem) in DISTRO_ECOSYSTEMS:
        return name_key(source)
    return name_key(name)
