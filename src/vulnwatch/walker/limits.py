"""The walker's safety limits and its one error type.

Limits guard against hostile layers: per-file size, total uncompressed bytes, compression ratio
(decompression bombs), number of entries, symlink hops. Breaching one is a :class:`LayerError`
naming the layer, the path when known, and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LayerError", "LayerLimits"]


class LayerError(Exception):
    """A layer cannot be read safely. The message names the layer and, when known, the
    path inside it, and says which limit was hit or what is damaged."""

    def __init__(self, layer: str, message: str, *, path: str | None = None, code: str = "LayerUnreadable") -> None:
        where = f"layer {layer}" + (f", {path!r}" if path is not None else "")
        super().__init__(f"{where}: {message}")
        self.layer = layer
        self.path = path
        self.code = code


@dataclass(frozen=True)
class LayerLimits:
    """Safety limits for reading layers. The defaults suit real images."""

    max_file_size: int = 256 * 1024 * 1024
    """Upper bound for any kept file, whatever a cataloger asks for."""
    oversize_is_error: bool = True
    """True: a wanted file (package metadata a cataloger reads) over its size limit is a
    LayerError for the image (its packages could not be judged, so it is not reported as
    clean); False: the file is skipped with a warning."""
    max_total_bytes: int = 16 * 1024 * 1024 * 1024
    """Uncompressed bytes over all layers of one image."""
    max_ratio: float = 200.0
    """Largest uncompressed/compressed ratio tolerated for one layer (decompression bomb)..."""
    ratio_min_bytes: int = 64 * 1024 * 1024
    """... checked once a layer has produced this many uncompressed bytes."""
    max_entries: int = 2_000_000
    """Tar entries over all layers."""
    max_symlink_hops: int = 40
    """Symlinks followed while resolving one path (Linux uses 40); more is a loop."""
    max_executable_size: int = 256 * 1024 * 1024
    """Executables larger than this are not offered to the executable reader."""
    max_kept_bytes: int = 512 * 1024 * 1024
    """Bytes kept over all layers of one image (wanted files, executables' extracts, reduced
    archives), counted as they are kept: what the walk holds in memory (``limits.max_metadata_bytes``)."""
