"""Layer blobs -> the wanted files of the merged filesystem, each layer read once as a stream.

The walker knows nothing of who wants the files: it is handed a :class:`WalkPlan` (which paths,
at what size; what to do with executables; which files to reduce as they stream past) and, for
the per-layer cache, an opaque key.

- ``tarstream``: a strict, forward-only tar reader that skips unwanted bodies in chunks;
- ``source``: gzip / zstd / plain, sniffed, with the byte and ratio limits;
- ``paths``: member names -> paths, symlinks resolved inside the root;
- ``read``: one layer on top of the layers below, one handler per tar entry type;
- ``overlay``: whiteouts, opaque directories, the stack of layers and the merged view;
- ``cache``: what each layer contributed, on disk, keyed by chain id and the caller's key;
- ``limits``: :class:`LayerLimits` and the one error type, :class:`LayerError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from .cache import LayerCache, walk_cached
    from .contents import ExecutableReader, LayerContents, ReducerFor, WalkedFile, WalkPlan, WalkResult, Wants
    from .limits import LayerError, LayerLimits
    from .overlay import LayerStack, walk_layers

# each name imported with its module on first use: the limits alone do not load the walker
__getattr__ = exports(__name__, {
    "LayerCache": ".cache:LayerCache", "walk_cached": ".cache:walk_cached",
    **{name: f".contents:{name}" for name in ("ExecutableReader", "LayerContents", "ReducerFor", "WalkedFile",
                                               "WalkPlan", "WalkResult", "Wants")},
    "LayerError": ".limits:LayerError", "LayerLimits": ".limits:LayerLimits",
    "LayerStack": ".overlay:LayerStack", "walk_layers": ".overlay:walk_layers",
})

__all__ = ["ExecutableReader", "LayerCache", "LayerContents", "LayerError", "LayerLimits", "LayerStack",
           "ReducerFor", "WalkPlan", "WalkResult", "WalkedFile", "Wants", "walk_cached",
           "walk_layers"]
