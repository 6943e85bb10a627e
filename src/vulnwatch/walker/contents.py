"""What the walker is asked for (:class:`WalkPlan`) and what it gives back: the files it kept
(:class:`WalkedFile`), per layer (:class:`LayerContents`, what a cache stores) and merged
(:class:`WalkResult`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO

__all__ = ["ExecutableReader", "LayerContents", "ReducerFor", "WalkPlan", "WalkResult", "WalkedFile", "Wants"]

Wants = Callable[[str], "int | None"]
"""``wants(path) -> max size`` to keep the file at ``path``, or None to skip it."""
ExecutableReader = Callable[[str, IO[bytes], int], "bytes | None"]
"""``reader(path, stream, size) -> bytes to keep`` for regular files with an exec bit."""
ReducerFor = Callable[[str], "ExecutableReader | None"]
"""``reducer_for(path)``: for a wanted file, the function that reads it as it streams past and
returns the small stand-in to keep (same signature as an executable reader), or None to keep
the file whole."""


@dataclass(frozen=True)
class WalkPlan:
    """Which files to keep, as plain functions: the walker knows nothing of who asks (the
    catalogers build one from their declarations, see :mod:`vulnwatch.catalogers.plan`)."""

    wants: Wants
    """``wants(path)``: the largest size to keep the file at ``path``, or None to skip it."""
    executable_reader: ExecutableReader | None = None
    """Offered regular files with an exec bit that nobody wants by path; what it returns is kept
    under :attr:`WalkResult.executables`."""
    reducer_for: ReducerFor | None = None
    """For a wanted file, the function that reads it as it streams past and returns the small
    stand-in to keep (memory then does not grow with the file), or None to keep it whole."""


@dataclass(frozen=True)
class WalkedFile:
    """A file kept by the walker: its final content in the merged filesystem."""

    path: str
    """Path in the image, relative to the root (``var/lib/dpkg/status``)."""
    data: bytes
    """Content (for executables: what the executable reader chose to keep)."""
    layer: str
    """The layer (as named by the caller, normally the diff id) that wrote this version."""
    mode: int = 0o644
    """Permission bits from the tar header."""


@dataclass(frozen=True)
class WalkResult:
    """The merged view of the wanted files after all layers and whiteouts."""

    files: Mapping[str, WalkedFile]
    """Wanted files by path. A file reachable through a symlink is also listed under
    the symlinked path when that path is wanted."""
    executables: Mapping[str, WalkedFile]
    """What the executable reader kept, by path."""
    symlinks: Mapping[str, str]
    """Final symlinks: path -> target as written in the tar."""
    warnings: tuple[str, ...] = ()
    """Remarks naming layer and path (skipped oversize files, unreadable hardlinks, ...)."""
    layers: tuple[str, ...] = ()
    """The layers read, bottom first."""

    def data(self) -> dict[str, bytes]:
        """Path -> bytes of the wanted files."""
        return {p: f.data for p, f in self.files.items()}

    def layer_of(self) -> dict[str, str]:
        """Path -> layer for wanted files and executables."""
        out = {p: f.layer for p, f in self.executables.items()}
        out.update({p: f.layer for p, f in self.files.items()})
        return out


@dataclass(frozen=True)
class LayerContents:
    """What one layer changes in the merged view of the wanted files: the per-layer
    result of :meth:`LayerStack.read`, applied by :meth:`LayerStack.apply`.

    It is computed on top of the layers below (their symlinks decide where a path
    lands and under which spelling it is wanted), so it is only valid on top of the
    same lower layers read with the same ``wants``, executable reader and limits:
    :mod:`vulnwatch.walker.cache` keys it by the layer's chain id for that reason.
    """

    layer: str
    """The layer's name as the caller gave it (normally its digest)."""
    files: Mapping[str, WalkedFile] = field(default_factory=dict)
    """Wanted files this layer writes, by path (in tar order)."""
    executables: Mapping[str, WalkedFile] = field(default_factory=dict)
    """What the executable reader kept from this layer's executables, by path."""
    symlinks: Mapping[str, str] = field(default_factory=dict)
    """Symlinks this layer adds: path -> target as written in the tar."""
    replaced: tuple[str, ...] = ()
    """Paths kept from the layers below (files, executables, symlinks) that an entry of
    this layer replaces at exactly that path."""
    deletions: tuple[tuple[str, bool], ...] = ()
    """Whiteouts, in tar order: ``(path, False)`` deletes ``path`` of the layers below,
    ``(directory, True)`` empties ``directory`` of the layers below (opaque)."""
    warnings: tuple[str, ...] = ()
    """Remarks about this layer, naming layer and path."""
    uncompressed_bytes: int = 0
    """Uncompressed bytes read from the blob (counted against ``LayerLimits.max_total_bytes``)."""
    entries: int = 0
    """Tar entries in the layer (counted against ``LayerLimits.max_entries``)."""
