"""Files -> packages: the ``Cataloger`` interface.

Modelled on Trivy's analyzers: each cataloger DECLARES which files it wants
(exact paths, path suffixes, fnmatch patterns, and optionally executables) and a
maximum file size. The layer walker (:mod:`vulnwatch.walker`) reads every layer
once as a stream and keeps only the files some cataloger wants; each cataloger is
then handed only its own files.

Paths are always relative to the image root, without a leading ``/`` or ``./``
(``var/lib/dpkg/status``).
"""

from __future__ import annotations

import abc
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO

from ..model import Package

DEFAULT_MAX_FILE_SIZE = 64 * 1024 * 1024
"""Default per-file limit: files larger than this are skipped with a warning."""


class CatalogError(Exception):
    """A file a cataloger wanted could not be read as a package database.

    The message names the cataloger and the file (and line or record when known) and
    says what to do. Catalogers raise it for damage that makes the whole file
    unusable; damage to one record is a warning instead.
    """

    def __init__(self, cataloger: str, path: str, message: str) -> None:
        super().__init__(f"{cataloger}: {path}: {message}")
        self.cataloger = cataloger
        self.path = path


class CatalogLimitError(CatalogError):
    """A limit of :class:`CatalogLimits` was reached while reading an image's package metadata
    (too many records, too many bytes, a zip bomb): unlike other catalog errors it fails the
    image (it is not a warning), naming the file and the ``limits.*`` key."""

    def __init__(self, cataloger: str, path: str, message: str, *, key: str) -> None:
        super().__init__(cataloger, path, f"{message} ({key}); the image is refused (raise the limit if it is "
                         "genuine)")
        self.key = key


@dataclass(frozen=True)
class CatalogLimits:
    """Bounds on what the catalogers read of one image (``limits`` in the configuration)."""

    max_packages: int = 100_000
    """Packages of one image, all catalogers together."""
    max_cataloger_packages: int = 50_000
    """Records one cataloger reads from one image (checked as they are read)."""
    max_cataloger_bytes: int = 256 * 1024 * 1024
    """Bytes of metadata handed to one cataloger for one image."""
    zip_max_depth: int = 3
    """Archive nesting read (1: the top-level archive only)."""
    zip_max_ratio: float = 100.0
    """Inflated/compressed ratio of one zip member, checked once it has inflated ``zip_ratio_min_bytes``."""
    zip_ratio_min_bytes: int = 1024 * 1024
    zip_max_inflated_bytes: int = 1024 * 1024 * 1024
    """Bytes inflated while reading one archive, nested archives included."""
    zip_max_members: int = 200_000
    """Entries of one archive, nested ones included."""

    def check_records(self, cataloger: str, path: str, count: int) -> None:
        """Raise :class:`CatalogLimitError` once ``count`` records exceed ``max_cataloger_packages``."""
        if count > self.max_cataloger_packages:
            raise CatalogLimitError(cataloger, path, f"more than {self.max_cataloger_packages} package records",
                                    key="limits.max_cataloger_packages")


@dataclass(frozen=True)
class Distro:
    """The operating system of an image, from ``etc/os-release``."""

    id: str
    """``ID=`` from os-release, lower case (``debian``, ``ubuntu``, ``alpine``, ``rhel``, ...)."""
    version_id: str
    """``VERSION_ID=`` from os-release (``12``, ``22.04``, ``3.19.1``); empty if absent."""
    ecosystem: str | None
    """OSV ecosystem with release (``Debian:12``, ``Ubuntu:22.04:LTS``, ``Alpine:v3.19``),
    None when the distribution is not one OSV knows."""
    pretty_name: str = ""
    """``PRETTY_NAME=`` for display."""
    codename: str = ""
    """``VERSION_CODENAME=`` when given (``bookworm``)."""

    @property
    def purl_distro(self) -> str:
        """The ``distro`` qualifier used in package URLs: ``debian-12``, ``alpine-3.19.1``."""
        return f"{self.id}-{self.version_id}" if self.version_id else self.id


@dataclass(frozen=True)
class CatalogContext:
    """What a cataloger may need beyond its own files."""

    distro: Distro | None = None
    """The image's operating system, None when no os-release was found."""
    layer_of: Mapping[str, str] = field(default_factory=dict)
    """Path -> digest (diff id) of the layer the file's final version came from."""
    limits: CatalogLimits = field(default_factory=CatalogLimits)
    """What a cataloger may read of this image."""

    @property
    def distro_ecosystem(self) -> str | None:
        """OSV ecosystem of the distro (``Debian:12``), None when unknown."""
        return self.distro.ecosystem if self.distro else None


@dataclass(frozen=True)
class CatalogResult:
    """Packages found by one cataloger, plus remarks about what it could not read."""

    packages: tuple[Package, ...] = ()
    """Packages found, in file order."""
    warnings: tuple[str, ...] = ()
    """Human-readable remarks naming the file (unsupported format, skipped record, ...)."""
    unread: tuple[tuple[str, str], ...] = ()
    """Package databases found and not read, as ``(path, reason)``: their packages are missing
    from the inventory (reported in the scan's coverage, never dropped silently)."""


class Cataloger(abc.ABC):
    """Reads packages out of the files it declared it wants.

    Subclasses set the class attributes below and implement :meth:`catalog`.
    :meth:`wants` is called for every path in every layer, so it must be cheap: it
    is a set lookup plus ``str.endswith`` plus (only when the subclass declares
    them) precompiled patterns.
    """

    name: str = ""
    """Short name (``dpkg``, ``apk``, ``python``...), used in warnings and the registry."""
    exact_paths: frozenset[str] = frozenset()
    """Paths wanted exactly (``var/lib/dpkg/status``)."""
    suffixes: tuple[str, ...] = ()
    """Path endings wanted (``.dist-info/METADATA``); also matched against the basename."""
    patterns: tuple[str, ...] = ()
    """fnmatch patterns (``*`` also crosses ``/``) for what suffixes cannot say."""
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    """Files larger than this are not read (the walker warns)."""
    wants_executables: bool = False
    """When True, the walker also offers regular files with an exec bit to
    :meth:`read_executable` (used by the Go cataloger)."""
    reduces: bool = False
    """When True, the walker hands each wanted file to :meth:`reduce` as it streams past,
    and keeps only what that returns: memory stays small whatever the file's size (used by
    the Java cataloger for archives)."""

    limits: CatalogLimits = CatalogLimits()
    """Bounds for what :meth:`reduce` reads (set by the catalog plan; :meth:`catalog` has them in
    its context too)."""

    _pattern_re: re.Pattern[str] | None = None

    def wants(self, path: str) -> bool:
        """Whether this cataloger wants the file at ``path`` (relative, no leading ``/``)."""
        if path in self.exact_paths:
            return True
        if self.suffixes and path.endswith(self.suffixes):
            return True
        if self.patterns:
            rx = type(self)._pattern_re
            if rx is None:
                rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns))
                type(self)._pattern_re = rx
            return rx.match(path) is not None
        return False

    def read_executable(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        """For catalogers with :attr:`wants_executables`: look at one executable as the
        walker streams past it and return the bytes to keep for :meth:`catalog` (may be a
        small extract), or None to keep nothing. Must not read more than ``size`` bytes."""
        return None

    def reduce(self, path: str, stream: IO[bytes], size: int) -> bytes | None:
        """For catalogers with :attr:`reduces`: read one wanted file as the walker streams
        past it (forward only, at most ``size`` bytes) and return a small stand-in that
        :meth:`catalog` reads like the original, or None to keep nothing."""
        return None

    @abc.abstractmethod
    def catalog(self, files: Mapping[str, bytes], context: CatalogContext) -> CatalogResult:
        """Packages described by ``files`` (path -> content, only paths this cataloger
        wanted). Raises :class:`CatalogError` only when nothing can be read at all."""
