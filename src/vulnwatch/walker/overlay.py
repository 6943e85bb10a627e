"""Layers applied bottom to top like overlayfs, keeping only the files a :class:`~.contents.WalkPlan`
wants: ``.wh.<name>`` deletes ``<name>`` of the layers below, ``.wh..wh..opq`` empties a directory
of the layers below; symlinks are recorded (never followed out of the image root) so a file
wanted at ``lib/apk/db/installed`` is found when ``lib -> usr/lib``.

:class:`LayerStack` splits the walk in two so layers can be cached (:mod:`.cache`): ``read``
streams one blob on top of the layers applied so far and returns what it contributes,
``apply`` puts such contents on the stack, ``result`` is the merged :class:`~.contents.WalkResult`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, BinaryIO

from .contents import ExecutableReader, LayerContents, WalkedFile, WalkPlan, WalkResult, Wants
from .limits import LayerError, LayerLimits
from .paths import resolve_path, under
from .read import LayerReader
from .source import Chunks, LayerSource, open_layer

__all__ = ["LayerStack", "MergedView", "walk_layers"]


class MergedView:
    """The merged filesystem of the layers applied so far (only what is kept)."""

    def __init__(self) -> None:
        self.files: dict[str, WalkedFile] = {}
        self.executables: dict[str, WalkedFile] = {}
        self.symlinks: dict[str, str] = {}

    def delete(self, path: str, *, keep_self: bool = False) -> None:
        for table in (self.files, self.executables, self.symlinks):
            doomed = [p for p in table if under(p, path) and not (keep_self and p == path)]
            for p in doomed:
                del table[p]

    def holds(self, path: str) -> bool:
        return path in self.files or path in self.executables or path in self.symlinks


class LayerStack:
    """Layers applied bottom to top, like overlayfs, keeping only what ``wants`` asks for.

    ``read(layer, stream)`` streams one blob on top of the layers applied so far and
    returns its :class:`LayerContents` without applying it; ``apply(contents)`` puts it
    on the stack (a read result or one from a cache); ``add`` does both; ``result()``
    is the merged :class:`WalkResult`. Limits that span layers (total bytes, entries)
    count applied layers, whether read or cached.
    """

    def __init__(self, plan: WalkPlan, *, limits: LayerLimits | None = None) -> None:
        self.plan = plan
        """What to keep."""
        self.limits = limits or LayerLimits()
        self.total_bytes = 0
        """Uncompressed bytes of the layers applied so far."""
        self.entries = 0
        """Tar entries of the layers applied so far."""
        self.kept_bytes = 0
        """Bytes kept by the layers applied so far (against ``LayerLimits.max_kept_bytes``)."""
        self._state = MergedView()
        self._warnings: list[str] = []
        self._names: list[str] = []

    def add(self, layer: str, stream: IO[bytes]) -> LayerContents:
        """Read ``stream`` on top of the stack and apply it; returns what it contributed."""
        contents = self.read(layer, stream)
        self.apply(contents)
        return contents

    def read(self, layer: str, stream: IO[bytes]) -> LayerContents:
        """Stream one layer blob (tar, gzip or zstd) once, on top of the layers applied so
        far, without changing the stack. Raises :class:`LayerError`."""
        source = open_layer(layer, stream, self.limits, self.total_bytes)
        if source is None:
            return LayerContents(layer)  # empty blob: an empty layer
        return LayerReader(layer, source, self.plan, self.limits, self._state, self.entries,
                           self.kept_bytes).read()

    def read_chunks(self, layer: str, chunks: Chunks | None) -> LayerContents:
        """:meth:`read` from the layer's decoded pieces (:func:`~.source.decoded_chunks`, maybe
        made in another thread: :mod:`.prefetch`); None is an empty blob."""
        if chunks is None:
            return LayerContents(layer)
        source = LayerSource(layer, chunks, self.limits, self.total_bytes)
        return LayerReader(layer, source, self.plan, self.limits, self._state, self.entries,
                           self.kept_bytes).read()

    def apply(self, contents: LayerContents) -> None:
        """Put one layer's contents on top: its whiteouts hide the layers below, then its
        entries go on top. Raises :class:`LayerError` when a limit spanning layers is hit."""
        lim = self.limits
        layer = contents.layer
        if self.entries + contents.entries > lim.max_entries:
            raise LayerError(layer, f"more than {lim.max_entries} tar entries (limits.max_tar_entries)",
                             code="LayerTooLarge")
        if self.total_bytes + contents.uncompressed_bytes > lim.max_total_bytes:
            raise LayerError(layer, f"image exceeds {lim.max_total_bytes} uncompressed bytes "
                             "(limits.max_image_bytes); raise the limit if the image is genuine",
                             code="LayerTooLarge")
        kept = (sum(len(f.data) for f in contents.files.values())
                + sum(len(f.data) for f in contents.executables.values()))
        if self.kept_bytes + kept > lim.max_kept_bytes:
            raise LayerError(layer, f"more than {lim.max_kept_bytes} bytes of package metadata kept from the image "
                             "(limits.max_metadata_bytes); an image this dense in metadata is refused (raise the "
                             "limit if it is genuine)", code="MetadataTooLarge")
        state = self._state
        for path, opaque in contents.deletions:
            state.delete(path, keep_self=opaque)
        for path in contents.replaced:
            state.files.pop(path, None)
            state.executables.pop(path, None)
            state.symlinks.pop(path, None)
        state.files.update(contents.files)
        state.executables.update(contents.executables)
        state.symlinks.update(contents.symlinks)
        self._warnings.extend(contents.warnings)
        self._names.append(layer)
        self.total_bytes += contents.uncompressed_bytes
        self.entries += contents.entries
        self.kept_bytes += kept

    def result(self) -> WalkResult:
        """The merged view of the wanted files after the layers applied so far."""
        state = self._state
        files = dict(state.files)
        _add_symlink_aliases(files, state, self.plan.wants, self.limits)
        return WalkResult(files=files, executables=dict(state.executables), symlinks=dict(state.symlinks),
                          warnings=tuple(self._warnings), layers=tuple(self._names))


def walk_layers(layers: Iterable[tuple[str, BinaryIO]], wants: Wants, *,
                executable_reader: ExecutableReader | None = None,
                limits: LayerLimits | None = None) -> WalkResult:
    """Stream each ``(layer name, blob stream)`` once, bottom layer first, and return the
    merged view of the files ``wants`` asks for.

    ``wants(path)`` returns the largest size to keep for ``path`` or None. When
    ``executable_reader`` is given, regular files with an exec bit that no one wants by
    path are offered to it (with their tar stream); whatever it returns is kept under
    :attr:`WalkResult.executables`. Raises :class:`LayerError`.
    """
    stack = LayerStack(WalkPlan(wants, executable_reader), limits=limits)
    for layer, stream in layers:
        stack.add(layer, stream)
    return stack.result()


def _add_symlink_aliases(files: dict[str, WalkedFile], state: MergedView, wants: Wants, limits: LayerLimits) -> None:
    """List files kept only because a symlinked spelling of their path is wanted under
    that spelling too (``etc/os-release`` -> ``../usr/lib/os-release``; ``lib -> usr/lib``)."""
    if not state.symlinks or not state.files:
        return
    by_ancestor: dict[str, list[str]] = {}
    for p in state.files:
        by_ancestor.setdefault(p, []).append(p)
        prefix = p
        while "/" in prefix:
            prefix = prefix.rpartition("/")[0]
            by_ancestor.setdefault(prefix, []).append(p)
    # only files kept for an alias's sake: a file wanted under its real path is not
    # listed twice (lib/python3/... and usr/lib/python3/... would be two packages)
    alias_only = {p for p in state.files if wants(p) is None}
    if not alias_only:
        return
    for link in state.symlinks:
        try:
            target = resolve_path(link, state.symlinks, max_hops=limits.max_symlink_hops)
        except LayerError:
            continue  # a loop nothing we keep goes through
        for real in by_ancestor.get(target, ()):
            if real not in alias_only:
                continue
            alias = link + real[len(target):]
            if alias in files:
                continue
            limit = wants(alias)
            src = state.files[real]
            if limit is not None and len(src.data) <= limit:
                files[alias] = WalkedFile(alias, src.data, src.layer, src.mode)
